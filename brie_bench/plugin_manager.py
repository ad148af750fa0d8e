"""Plugin discovery: built-ins, entry points (group `brie_bench`) and `--plugins-dir` files.

Built-in plugins (`BUILTIN_PLUGINS`, modules of `brie_bench.plugins`) are registered
through the same pluggy manager as third-party ones, so they obey the same
contract. A plugin that fails to import or to register is recorded with its
cause and skipped, wholly: nothing it registered before failing is kept, and
a plugin that calls `sys.exit` while loading is a failed plugin, not the end
of the command. `--plugins-dir` files are read only when they are regular
files of at most `MAX_PLUGIN_BYTES` (a FIFO or a link to /dev/zero is refused,
never read).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Mapping

if TYPE_CHECKING:  # pluggy and the contract (pydantic) load with the plugins: see `plugins_may_add_commands`
    import pluggy

    from brie_bench.api import Judge, ModelBackend

    #: A class a plugin may register: a backend or a judge.
    PluginClass = type[ModelBackend] | type[Judge]

ENTRY_POINT_GROUP = "brie_bench"

#: The built-in plugins (the top-level `plugins/` folder, installed as `brie_bench.plugins`), loaded in
#: this order. Listed, not discovered (as simonw/llm's DEFAULT_PLUGINS): a stray file in that folder
#: is never imported, and adding a built-in is a reviewed one-line change here.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "brie_bench.plugins.anthropic_backend",
    "brie_bench.plugins.gemini_backend",
    "brie_bench.plugins.hf",
    "brie_bench.plugins.human_judge",
    "brie_bench.plugins.llm_judge",
    "brie_bench.plugins.openai_backend",
)

#: The built-in plugins that implement `register_commands` (none do). While it is empty, and no
#: --plugins-dir or entry point is given, `brie-bench` loads no plugin before click parses: a
#: command loads them only when it needs backends or judges. Were one listed, every command would
#: load the plugins first, so its commands show in `--help`. `tests/core/test_startup_lazy_cli.py`
#: checks this matches the modules.
BUILTIN_COMMAND_PLUGINS: tuple[str, ...] = ()

#: A local plugin file larger than this is refused unread (a plugin is source code, not data).
MAX_PLUGIN_BYTES = 1024 * 1024

#: What a plugin may raise while loading without ending the command (SystemExit: `sys.exit()`).
_LOAD_FAILURES = (Exception, SystemExit)


@dataclass
class Registry:
    backends: dict[str, type[ModelBackend]] = field(default_factory=dict)
    judges: dict[str, type[Judge]] = field(default_factory=dict)
    origins: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> where from
    failures: list[tuple[str, str]] = field(default_factory=list)      # (plugin, cause)
    manager: pluggy.PluginManager | None = None


def __getattr__(name: str) -> Any:
    """`PluginClass` at run time, built on first use so importing this module does not load the contract."""
    if name == "PluginClass":
        from brie_bench.api import Judge, ModelBackend

        return type[ModelBackend] | type[Judge]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _new_manager() -> pluggy.PluginManager:
    import pluggy

    from brie_bench import hookspecs
    from brie_bench.api import PROJECT_NAME

    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}) while loading"
    return (f"{type(exc).__name__}: {exc}".splitlines() or [type(exc).__name__])[0]


def read_plugin_file(path: Path, limit: int = MAX_PLUGIN_BYTES) -> bytes:
    """The bytes of a local plugin file, refusing anything but a regular file of at most `limit` bytes.

    Opened without blocking (a FIFO would otherwise wait forever for a writer) and checked
    on the open descriptor, so a symlink to /dev/zero or a FIFO is refused before any read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImportError("not a regular file (a FIFO, device or socket); refused unread")
        if info.st_size > limit:
            raise ImportError(f"{info.st_size:,} bytes, more than the {limit:,} a plugin file may have")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ImportError(f"more than the {limit:,} bytes a plugin file may have")
        return data
    finally:
        os.close(fd)


def _load_builtins(pm: pluggy.PluginManager, sources: dict[str, str], failures: list[tuple[str, str]]) -> None:
    for modname in BUILTIN_PLUGINS:
        try:
            module = importlib.import_module(modname)
            pm.register(module, name=modname)
            sources[modname] = "built-in"
        except _LOAD_FAILURES as exc:  # noqa: BLE001 - a broken plugin must not break the rest
            failures.append((modname, _describe(exc)))


def _load_entry_points(pm: pluggy.PluginManager, sources: dict[str, str], failures: list[tuple[str, str]]) -> None:
    import importlib.metadata

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        name = f"entry point {ep.name}"
        try:
            obj = ep.load()
            if pm.is_registered(obj):
                continue
            pm.register(obj, name=f"ep:{ep.name}")
            dist = ep.dist.name if ep.dist else "?"
            sources[f"ep:{ep.name}"] = f"entry point {ep.name} ({dist})"
        except _LOAD_FAILURES as exc:  # noqa: BLE001
            failures.append((name, _describe(exc)))


def _load_dir(pm: pluggy.PluginManager, plugins_dir: str | Path, sources: dict[str, str],
              failures: list[tuple[str, str]]) -> None:
    folder = Path(plugins_dir)
    if not folder.is_dir():
        failures.append((str(folder), "plugins folder not found"))
        return
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        modname = f"brie_bench_local_plugin_{path.stem}"
        try:
            source = read_plugin_file(path)
            spec = importlib.util.spec_from_file_location(modname, path)
            if spec is None:
                raise ImportError("cannot load")
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - the user's own plugin file
            pm.register(module, name=modname)
            sources[modname] = f"file {path}"
        except _LOAD_FAILURES as exc:  # noqa: BLE001
            sys.modules.pop(modname, None)
            failures.append((str(path), _describe(exc)))


def _collect(pm: pluggy.PluginManager, registry: Registry, sources: dict[str, str]) -> None:
    """Ask every plugin for its backends and judges; keep a plugin's classes only if all of it worked.

    Each plugin's registrations are staged first: a hook that raises, or a class that is
    not valid or whose name is taken, fails the whole plugin and none of its classes
    (of either kind) is kept, so a plugin reported "failed" never half works.
    """
    from brie_bench.api import Judge, ModelBackend

    kinds: tuple[tuple[str, str, PluginClass, Mapping[str, PluginClass]], ...] = (
        ("register_backends", "backend", ModelBackend, registry.backends),
        ("register_judges", "judge", Judge, registry.judges))
    order: list[str] = []
    staged: dict[str, list[tuple[str, PluginClass]]] = {}
    failed: dict[str, str] = {}
    for hook_name, kind, base, _table in kinds:
        for impl in getattr(pm.hook, hook_name).get_hookimpls():  # registration order: built-ins first
            plugin = impl.plugin_name
            if plugin not in staged:
                order.append(plugin)
                staged[plugin] = []
            if plugin in failed:
                continue

            def register(cls: type, _kind: str = kind, _base: PluginClass = base, _plugin: str = plugin) -> None:
                if not (isinstance(cls, type) and issubclass(cls, _base)):
                    raise TypeError(f"{cls!r} is not a subclass of {_base.__name__}")
                if not cls.name:
                    raise TypeError(f"{cls.__name__} has no `name`")
                if any(k == _kind and c.name == cls.name for k, c in staged[_plugin]):
                    raise ValueError(f"{_kind} {cls.name!r} is registered twice")
                staged[_plugin].append((_kind, cls))

            try:
                impl.function(register=register)
            except _LOAD_FAILURES as exc:  # noqa: BLE001
                failed[plugin] = _describe(exc)
    tables = {kind: table for _, kind, _, table in kinds}
    for plugin in order:
        if plugin not in failed:
            for kind, cls in staged[plugin]:
                if cls.name in tables[kind]:
                    failed[plugin] = (f"ValueError: {kind} {cls.name!r} is already registered by "
                                      f"{registry.origins[(kind, cls.name)]}")
                    break
        if plugin in failed:
            registry.failures.append((plugin, failed[plugin]))
            continue
        for kind, cls in staged[plugin]:
            _install(registry, kind, cls)
            registry.origins[(kind, cls.name)] = sources.get(plugin, plugin)


def _install(registry: Registry, kind: str, cls: PluginClass) -> None:
    """Put a staged class in its kind's table (`register` already checked it subclasses that kind's base)."""
    from brie_bench.api import Judge, ModelBackend

    if kind == "backend" and issubclass(cls, ModelBackend):
        registry.backends[cls.name] = cls
    elif kind == "judge" and issubclass(cls, Judge):
        registry.judges[cls.name] = cls
    else:
        raise TypeError(f"{cls!r} was staged as a {kind} but is not one")


def load_plugins(plugins_dir: str | Path | None = None, *, entry_points: bool = True) -> Registry:
    """Build the registry of backends and judges from every plugin source."""
    pm = _new_manager()
    sources: dict[str, str] = {}
    failures: list[tuple[str, str]] = []
    _load_builtins(pm, sources, failures)
    if entry_points:
        _load_entry_points(pm, sources, failures)
    if plugins_dir:
        _load_dir(pm, plugins_dir, sources, failures)
    registry = Registry(failures=failures, manager=pm)
    _collect(pm, registry, sources)
    return registry


def plugins_may_add_commands(plugins_dir: str | Path | None) -> bool:
    """Whether any plugin source could add a subcommand: a --plugins-dir, an entry point, a built-in that does.

    `brie-bench` loads the plugins before click parses only then; built-in plugins
    add no commands, so `--help` and `report` do not import them (nor pydantic) otherwise.
    """
    if plugins_dir or BUILTIN_COMMAND_PLUGINS:
        return True
    quick = _entry_point_group_on_path(ENTRY_POINT_GROUP)
    if quick is not None:
        return quick
    import importlib.metadata

    return bool(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _entry_point_group_on_path(group: str) -> bool | None:
    """Whether an installed distribution declares entry points in `group`; None when this look cannot tell.

    Reads the `entry_points.txt` files where importlib.metadata finds them (the
    `*.dist-info` and `*.egg-info` folders on sys.path, `EGG-INFO` in `*.egg` folders)
    and matches section headers as it does, without importing it (about 20 ms, more
    than a third of what `--help` now takes). It never answers False where importlib.metadata would find the group (a
    shadowed duplicate distribution can make it answer True: the plugins then just load).
    A zip file on sys.path, or an import hook that lists distributions of its own,
    gets None: importlib.metadata is asked instead.
    """
    import importlib.machinery

    if any(finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions")
           for finder in sys.meta_path):
        return None
    for entry in sys.path:
        folder = entry or "."
        try:
            with os.scandir(folder) as children:
                names = [child.name for child in children]
        except NotADirectoryError:
            return None  # a zip file
        except OSError:
            continue  # missing or unreadable: importlib.metadata finds nothing there either
        infos = [name for name in names if name.lower().endswith((".dist-info", ".egg-info"))]
        if folder.lower().endswith(".egg"):
            infos.append("EGG-INFO")
        for info in infos:
            try:
                with open(os.path.join(folder, info, "entry_points.txt"), encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
            except OSError:
                continue
            if group in text and any(line.startswith("[") and line.endswith("]") and line.strip("[]") == group
                                     for line in map(str.strip, text.splitlines())):
                return True
    return False


def register_commands(registry: Registry, cli: Any, on_error: Callable[[str, str], None]) -> None:
    """Let plugins add subcommands to the CLI group."""
    if registry.manager is None:
        return
    for impl in registry.manager.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except _LOAD_FAILURES as exc:  # noqa: BLE001
            on_error(impl.plugin_name, _describe(exc))
