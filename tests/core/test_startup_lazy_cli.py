"""The CLI imports a command's module only when that command runs, and stays the same CLI.

`brie-bench --help` lists `train`, `report`, `export`, `import` and `judge` from a
static table (`brie_bench.cli.LAZY_COMMANDS`) instead of importing their modules,
and loads no plugin unless a plugin could add a command (a --plugins-dir, a
`brie_bench` entry point, or a built-in in `BUILTIN_COMMAND_PLUGINS`). These tests
hold the table to the real commands, the help text to what the eager CLI printed,
and check that entry-point plugins still add commands, found by the quick scan
that replaces importlib.metadata.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest

from brie_bench.cli import LAZY_COMMANDS, LazyCommand, cli
from helpers import hello_command_plugin
from brie_bench.plugin_manager import (
    BUILTIN_COMMAND_PLUGINS,
    BUILTIN_PLUGINS,
    ENTRY_POINT_GROUP,
    _entry_point_group_on_path,
)

REPO = Path(__file__).resolve().parents[2]

#: Every command listed by `--help` loaded for real first: what the CLI printed before start-up became lazy.
EAGER_HELP = """
import click
from brie_bench.cli import cli, main
ctx = click.Context(cli)
for name in list(cli.commands):
    cli.get_command(ctx, name)
main(["--help"])
"""


def _run(argv: list[str], *, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


def test_each_lazy_command_is_listed_with_its_real_short_help() -> None:
    ctx = click.Context(cli)
    for name, (module, attribute, _) in LAZY_COMMANDS.items():
        stub = LazyCommand(name, *LAZY_COMMANDS[name])
        real = getattr(__import__(module, fromlist=[attribute]), attribute)
        assert isinstance(real, click.Command) and real.name == name
        assert not real.hidden and not real.deprecated
        for limit in range(10, 121):  # every terminal width click may hand it
            assert stub.get_short_help_str(limit) == real.get_short_help_str(limit), (name, limit)
        assert cli.get_command(ctx, name) is real  # the group hands out the real command


def test_help_lists_the_same_as_the_eager_cli() -> None:
    lazy, eager = _run(["-m", "brie_bench", "--help"]), _run(["-c", EAGER_HELP])
    assert lazy.returncode == eager.returncode == 0, lazy.stderr + eager.stderr
    assert lazy.stdout == eager.stdout
    for name in (*LAZY_COMMANDS, "run", "runs", "validate", "plugins"):
        assert f"\n  {name} " in lazy.stdout, name


def test_a_lazy_command_runs_and_a_mistyped_one_still_gets_suggestions(tmp_path: Path) -> None:
    shown = _run(["-m", "brie_bench", "report", "--help"])
    assert shown.returncode == 0 and "--json" in shown.stdout
    wrong = _run(["-m", "brie_bench", "reprt"])
    assert wrong.returncode == 2
    assert "No such command 'reprt'" in wrong.stderr and "'report'" in wrong.stderr
    missing = _run(["-m", "brie_bench", "--db", str(tmp_path / "none.db"), "report", "--json"])
    assert missing.returncode == 2 and "database not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_builtin_command_plugins_are_exactly_those_that_add_commands() -> None:
    adds = set()
    for modname in BUILTIN_PLUGINS:
        tree = ast.parse((REPO / "plugins" / f"{modname.rsplit('.', 1)[1]}.py").read_text(encoding="utf-8"))
        if any(isinstance(node, ast.FunctionDef) and node.name == "register_commands" for node in tree.body):
            adds.add(modname)
    assert adds == set(BUILTIN_COMMAND_PLUGINS)


def test_the_training_package_imports_its_modules_on_first_use() -> None:
    probe = ("import sys, brie_bench.training as t\n"
             "assert 'pydantic' not in sys.modules and 'brie_bench.training.config' not in sys.modules\n"
             "assert all(getattr(t, n) is not None for n in t.__all__)\n"
             "from brie_bench.training import data, TrainConfig\n"
             "assert data.__name__ == 'brie_bench.training.data' and TrainConfig.__name__ == 'TrainConfig'\n"
             "print('ok')")
    done = _run(["-c", probe])
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def _install_entry_point_plugin(site: Path) -> None:
    """A third-party plugin installed as pip would leave it: a module and its .dist-info with an entry point."""
    (site / "brie_hello_plugin.py").write_text(
        hello_command_plugin("hello from an entry point", doc="Say hello from an installed plugin."),
        encoding="utf-8")
    info = site / "brie_hello_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brie-hello-plugin\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nhello = brie_hello_plugin\n", encoding="utf-8")


def test_an_entry_point_plugin_still_adds_a_command_to_help_and_runs_it(tmp_path: Path) -> None:
    _install_entry_point_plugin(tmp_path)
    shown = _run(["-m", "brie_bench", "--help"], pythonpath=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "hello" in shown.stdout and "Say hello from an installed plugin." in shown.stdout
    ran = _run(["-m", "brie_bench", "hello"], pythonpath=tmp_path)
    assert ran.returncode == 0 and ran.stdout.strip() == "hello from an entry point", ran.stderr


@pytest.mark.parametrize("installed", [False, True], ids=["none", "one"])
def test_the_quick_entry_point_scan_agrees_with_importlib_metadata(tmp_path: Path, installed: bool) -> None:
    if installed:
        _install_entry_point_plugin(tmp_path)
    (tmp_path / "other-2.0.dist-info").mkdir()  # a distribution that only mentions the group in a value
    (tmp_path / "other-2.0.dist-info" / "entry_points.txt").write_text(
        f"[console_scripts]\nother = {ENTRY_POINT_GROUP}.cli:main\n", encoding="utf-8")
    probe = ("import importlib.metadata as m\n"
             "from brie_bench.plugin_manager import _entry_point_group_on_path as quick\n"
             f"print(quick({ENTRY_POINT_GROUP!r}), bool(m.entry_points(group={ENTRY_POINT_GROUP!r})))")
    done = _run(["-c", probe], pythonpath=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(installed)] * 2


def test_the_quick_scan_defers_to_importlib_metadata_for_a_zip_on_the_path(tmp_path: Path) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x-1.0.dist-info/entry_points.txt", f"[{ENTRY_POINT_GROUP}]\nx = x\n")
    sys.path.insert(0, str(archive))
    try:
        assert _entry_point_group_on_path(ENTRY_POINT_GROUP) is None
    finally:
        sys.path.remove(str(archive))
    import importlib.metadata

    assert _entry_point_group_on_path(ENTRY_POINT_GROUP) is bool(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
