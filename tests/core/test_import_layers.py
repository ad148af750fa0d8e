"""The package's layers, read from its source: no import cycle, and nothing below the report imports it.

docs/architecture.md states the rule: the store, the engine and the statistics never depend
on the report, so a change to how a report looks cannot break a run or a figure. A rule in
prose drifts; this test parses every module under brie_bench/ (every import, including those
inside functions and under TYPE_CHECKING) and checks it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "brie_bench"

#: Modules that must never import anything from brie_bench.report.
BELOW_REPORT_FILES = ("store.py", "engine.py", "batches.py", "leases.py", "limits.py", "outputs.py",
                      "judging_port.py")
BELOW_REPORT_DIRS = ("stats",)

#: Cycles not yet broken, each as the set of its modules (none: planning takes its cost estimate
#: from `cost_estimate` and its pilot variance as data, `planning.PilotVariance`).
KNOWN_CYCLES: set[frozenset[str]] = set()


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package's __init__)."""
    found: dict[str, tuple[Path, bool]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The package module a dotted name lives in (`brie_bench.stats.Interval` -> `brie_bench.stats`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _raw_imports(module: str) -> list[tuple[str, str | None]]:
    """(module imported from, name imported or None) for every brie_bench import in `module`."""
    path, is_package = MODULES[module]
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.startswith("brie_bench")]
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            if source.startswith("brie_bench"):
                found += [(source, a.name) for a in node.names]
    return found


def _reexports(package: str) -> dict[str, str]:
    """What a package's __init__ re-exports: name -> the module it comes from."""
    out: dict[str, str] = {}
    for source, name in _raw_imports(package):
        owner = _owner(source)
        if name is not None and owner is not None and owner != package:
            out[name] = owner
    return out


def _edges(module: str) -> set[str]:
    """The brie_bench modules `module` imports.

    `from pkg import sub` is the submodule; `from pkg import name` that pkg's __init__
    re-exports from a submodule is that submodule (the __init__ is only a doorway, so a
    submodule of pkg reaching a sibling through it is not a cycle through the __init__).
    """
    out: set[str] = set()
    for source, name in _raw_imports(module):
        full = f"{source}.{name}" if name else source
        if full in MODULES:
            out.add(full)
            continue
        owner = _owner(source)
        if owner is None:
            continue
        if name and MODULES[owner][1]:
            out.add(_reexports(owner).get(name, owner))
        else:
            out.add(owner)
    out.discard(module)
    return out


GRAPH = {m: _edges(m) for m in MODULES}


def _cycles() -> list[frozenset[str]]:
    """The graph's strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_the_parser_sees_imports_at_every_depth() -> None:
    """The checks below mean something only if imports in functions and re-exports are seen."""
    assert "brie_bench.batches" in GRAPH["brie_bench.engine"]  # module level
    assert "brie_bench.planning" in GRAPH["brie_bench.run"]  # inside a function
    assert "brie_bench.judging_port" in GRAPH["brie_bench.batches"]
    assert len(MODULES) > 40


def test_no_import_cycle_between_modules() -> None:
    cycles = set(_cycles())
    new = {tuple(sorted(c)) for c in cycles - KNOWN_CYCLES}
    assert not new, f"import cycles: {sorted(new)}"
    gone = KNOWN_CYCLES - cycles
    assert not gone, f"known cycles now broken, remove them from KNOWN_CYCLES: {sorted(map(sorted, gone))}"


def test_the_engine_batches_and_judging_port_do_not_import_each_other_back() -> None:
    assert "brie_bench.engine" not in GRAPH["brie_bench.batches"]
    assert "brie_bench.engine" not in GRAPH["brie_bench.judging_port"]
    assert "brie_bench.batches" not in GRAPH["brie_bench.judging_port"]


def test_nothing_below_the_report_imports_it() -> None:
    below = [f"brie_bench.{f.removesuffix('.py')}" for f in BELOW_REPORT_FILES]
    below += [m for m in MODULES if any(m == f"brie_bench.{d}" or m.startswith(f"brie_bench.{d}.")
                                        for d in BELOW_REPORT_DIRS)]
    assert "brie_bench.stats.intervals" in below
    offending = {m: sorted(t for t in GRAPH[m] if t == "brie_bench.report" or t.startswith("brie_bench.report."))
                 for m in below}
    assert not {m: t for m, t in offending.items() if t}, offending


def test_planning_imports_neither_report_nor_run() -> None:
    imported = {t for t in GRAPH["brie_bench.planning"]
                if t in ("brie_bench.run", "brie_bench.report") or t.startswith("brie_bench.report.")}
    assert not imported, sorted(imported)
