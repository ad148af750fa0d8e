"""Start-up cost: what `--help` and `report --json` import, and what `report --json` reads.

Start-up time is mostly imports, so the guard is on the imports themselves (never on a
time): each command runs as a fresh process, and the modules it loaded are listed at
exit. `report --json` must not load scipy at all (scipy.stats and scipy.optimize cost most
of a second, scipy.special ~0.3 s: `brie_bench.stats.special` replaces it), torch,
jinja2, rich, the plugins or the plugin API; `--help` must load no scipy, numpy, torch,
pydantic, YAML, rich, plugins, or the modules of the commands it lists (they load only
when their command runs: see tests/core/test_startup_lazy_cli.py).
The JSON report is also checked to be the same whether or not the judges' own texts
were read, since the statistics never use them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.report_scale import build  # noqa: E402

from brie_bench.report.model import build_report_from_data  # noqa: E402
from brie_bench.report.rows import load_run  # noqa: E402
from brie_bench.store import Store  # noqa: E402

HEAVY = ("scipy.stats", "scipy.optimize", "torch", "transformers")
#: What neither command needs: templates, terminal rendering, the plugins and their contract.
NOT_FOR_REPORT = ("jinja2", "rich", "pluggy", "brie_bench.api", "brie_bench.plugins", "brie_bench.report.html")
#: `--help` finds the command modules (importing their packages' small __init__s) but loads none of them.
NOT_FOR_HELP = ("numpy", "scipy", "pydantic", "yaml", "asyncio", "importlib.metadata", "brie_bench.store",
                "brie_bench.training.cli", "brie_bench.training.config", "brie_bench.report.cli",
                "brie_bench.report.model", "brie_bench.web.cli") + NOT_FOR_REPORT

PROBE = """
import atexit, json, sys
def _dump():
    sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
atexit.register(_dump)
from brie_bench.cli import main
main(sys.argv[1:])
"""


def loaded_modules(*args: str) -> tuple[set[str], str]:
    """Run the CLI with `args` in a fresh interpreter; (modules loaded by exit, stdout)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], check=False, capture_output=True, text=True,
                          cwd=str(ROOT),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    return set(json.loads(line[len("MODULES "):])), done.stdout


def heavy(modules: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("startup") / "small.db"
    return db, build(db, 9)


def test_help_imports_no_statistics_models_or_templates() -> None:
    modules, out = loaded_modules("--help")
    assert "report" in out and "run" in out
    assert heavy(modules, HEAVY + NOT_FOR_HELP) == []


def test_report_json_imports_no_scipy_stats_optimize_jinja_or_torch(small_db: tuple[Path, str]) -> None:
    db, run_id = small_db
    modules, out = loaded_modules("--db", str(db), "report", run_id, "--json")
    report = json.loads(out)
    assert report["run"]["id"] == run_id and report["judges"]
    assert heavy(modules) == []
    assert heavy(modules, NOT_FOR_REPORT) == []  # no HTML renderer, no rich, no plugins
    assert "brie_bench.stats" in modules  # the statistics really ran (without scipy.stats or scipy.optimize)


def test_the_json_report_does_not_depend_on_reading_the_judges_texts(tmp_path: Path) -> None:
    db = tmp_path / "mid.db"
    run_id = build(db, 400)
    with Store(db, readonly=True) as store:
        lean = load_run(store, run_id, texts=False)
        full = load_run(store, run_id, texts=True)
    assert all(r.raw == "" and r.reasoning is None for r in lean.rows)
    assert any(r.raw for r in full.rows)
    assert [r.text_ft for r in lean.rows] == [r.text_ft for r in full.rows]  # answers are read either way
    a, b = build_report_from_data(lean).to_json_dict(), build_report_from_data(full).to_json_dict()
    a.pop("generated_at"), b.pop("generated_at")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
