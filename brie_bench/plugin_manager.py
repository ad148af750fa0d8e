"""Plugin discovery: built-ins, entry points (group `brie_bench`) and `--plugins-dir` files.

Built-in plugins (the modules of `brie_bench.plugins`) are registered
through the same pluggy manager as third-party ones, so they obey the same
contract. A plugin that fails to import or to register is recorded with its
cause and skipped; the rest keep working.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pluggy

from brie_bench import hookspecs
from brie_bench.api import PROJECT_NAME, Judge, ModelBackend

ENTRY_POINT_GROUP = "brie_bench"


@dataclass
class Registry:
    backends: dict[str, type[ModelBackend]] = field(default_factory=dict)
    judges: dict[str, type[Judge]] = field(default_factory=dict)
    origins: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> where from
    failures: list[tuple[str, str]] = field(default_factory=list)      # (plugin, cause)
    manager: pluggy.PluginManager | None = None


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _load_builtins(pm: pluggy.PluginManager, sources: dict[str, str], failures: list[tuple[str, str]]) -> None:
    import brie_bench.plugins as builtin_pkg

    for info in sorted(pkgutil.iter_modules(builtin_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        modname = f"{builtin_pkg.__name__}.{info.name}"
        try:
            module = importlib.import_module(modname)
            pm.register(module, name=modname)
            sources[modname] = "built-in"
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the rest
            failures.append((modname, _describe(exc)))


def _load_entry_points(pm: pluggy.PluginManager, sources: dict[str, str], failures: list[tuple[str, str]]) -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        name = f"entry point {ep.name}"
        try:
            obj = ep.load()
            if pm.is_registered(obj):
                continue
            pm.register(obj, name=f"ep:{ep.name}")
            dist = ep.dist.name if ep.dist else "?"
            sources[f"ep:{ep.name}"] = f"entry point {ep.name} ({dist})"
        except Exception as exc:  # noqa: BLE001
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
            spec = importlib.util.spec_from_file_location(modname, path)
            if spec is None or spec.loader is None:
                raise ImportError("cannot load")
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            spec.loader.exec_module(module)
            pm.register(module, name=modname)
            sources[modname] = f"file {path}"
        except Exception as exc:  # noqa: BLE001
            sys.modules.pop(modname, None)
            failures.append((str(path), _describe(exc)))


def _collect(pm: pluggy.PluginManager, hook_name: str, kind: str, base: type, table: dict[str, Any],
             registry: Registry, sources: dict[str, str]) -> None:
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order: built-ins first
        origin = sources.get(impl.plugin_name, impl.plugin_name)

        def register(cls: type, _origin: str = origin, _plugin: str = impl.plugin_name) -> None:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise TypeError(f"{cls!r} is not a subclass of {base.__name__}")
            if not cls.name:
                raise TypeError(f"{cls.__name__} has no `name`")
            if cls.name in table:
                raise ValueError(f"{kind} {cls.name!r} is already registered by "
                                 f"{registry.origins[(kind, cls.name)]}")
            table[cls.name] = cls
            registry.origins[(kind, cls.name)] = _origin

        try:
            impl.function(register=register)
        except Exception as exc:  # noqa: BLE001
            registry.failures.append((impl.plugin_name, _describe(exc)))


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
    _collect(pm, "register_backends", "backend", ModelBackend, registry.backends, registry, sources)
    _collect(pm, "register_judges", "judge", Judge, registry.judges, registry, sources)
    return registry


def register_commands(registry: Registry, cli: Any, on_error: Callable[[str, str], None]) -> None:
    """Let plugins add subcommands to the CLI group."""
    if registry.manager is None:
        return
    for impl in registry.manager.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:  # noqa: BLE001
            on_error(impl.plugin_name, _describe(exc))
