"""Hostile plugins: failing imports, stray exits and output, and `--plugins-dir`.

* A plugin that calls `sys.exit` at import is a failed plugin with a message, not a silent end.
* Plugin files are imported once per command.
* A plugin that fails part-way through registering keeps nothing registered.
* A judge backend whose constructor raises gives one line (exit 2), as a contender's does.
* `timeout_s`: an answer that comes later than `timeout_s` is never stored, even from a
  plugin that blocks the event loop (recorded as a timeout that says so); work run in a
  worker thread is cut at `timeout_s`.
* `--plugins-dir` reads only regular files of bounded size: a symlink to /dev/zero, a FIFO
  and an oversized file are each refused in one line, at once, and the rest load.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from brie_bench.cli import cli
from brie_bench.plugin_manager import MAX_PLUGIN_BYTES, load_plugins
from hostile.kit import query, summary

HOSTILE = Path(__file__).parents[1] / "reliability_plugins"

GOOD = '''
from brie_bench.api import Judge, JudgeResult, hookimpl

class Good(Judge):
    name = "good"
    needs_backend = False
    async def judge(self, pair):
        return JudgeResult("tie", raw="tie")

@hookimpl
def register_judges(register):
    register(Good)
'''


def brie(*args: str, timeout: int = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "brie_bench", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, COLUMNS="200", **env))


def plugin_dir(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    (folder / "good.py").write_text(GOOD, encoding="utf-8")
    for name, text in files.items():
        (folder / f"{name}.py").write_text(text, encoding="utf-8")
    return folder


def test_sys_exit_at_import_is_a_failed_plugin_not_the_end(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, quitter="import sys\nsys.exit(0)\n")
    result = brie("--plugins-dir", str(folder), "plugins")
    assert result.returncode == 0, result.stderr
    assert "good" in result.stdout
    assert "quitter.py" in result.stdout and "sys.exit(0)" in result.stdout, result.stdout


def test_plugin_files_are_imported_once_per_command(tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    folder = plugin_dir(tmp_path, counted=f"open({str(log)!r}, 'a').write('imported\\n')\n" + GOOD.replace(
        '"good"', '"counted"'))
    for command in (["plugins"], ["runs"]):
        log.write_text("")
        brie("--plugins-dir", str(folder), *command, "--db", str(tmp_path / "none.db"))
        assert log.read_text().count("imported") == 1, command


def test_a_plugin_that_fails_part_way_keeps_nothing(tmp_path: Path) -> None:
    half = '''
from brie_bench.api import Judge, JudgeResult, ModelBackend, hookimpl

class First(Judge):
    name = "first"
    needs_backend = False

class Taken(ModelBackend):
    name = "openai"

class Mine(ModelBackend):
    name = "mine"

@hookimpl
def register_judges(register):
    register(First)
    raise RuntimeError("second registration broke")

@hookimpl
def register_backends(register):
    register(Mine)
'''
    clash = '''
from brie_bench.api import ModelBackend, hookimpl

class Fresh(ModelBackend):
    name = "fresh"

class Taken(ModelBackend):
    name = "openai"

@hookimpl
def register_backends(register):
    register(Fresh)
    register(Taken)
'''
    registry = load_plugins(plugin_dir(tmp_path, half=half, clash=clash), entry_points=False)
    assert "first" not in registry.judges and "mine" not in registry.backends  # nothing of `half`
    assert "fresh" not in registry.backends                                    # nothing of `clash`
    assert registry.origins[("backend", "openai")] == "built-in"
    assert "good" in registry.judges
    causes = dict(registry.failures)
    assert "second registration broke" in causes["brie_bench_local_plugin_half"]
    assert "already registered" in causes["brie_bench_local_plugin_clash"]


def test_a_judge_backend_whose_constructor_raises_is_one_line(tmp_path: Path) -> None:
    broken = '''
from brie_bench.api import ModelBackend, hookimpl

class Broken(ModelBackend):
    name = "broken"
    def __init__(self, *args, **kwargs):
        raise RuntimeError("cannot reach the GPU")

@hookimpl
def register_backends(register):
    register(Broken)
'''
    folder = plugin_dir(tmp_path, broken=broken)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "s", "contenders": {"a": {"backend": "openai", "model": "m", "options": {"require_key": False,
                                                                                       "base_url": "http://127.0.0.1:9/v1"}},
                                    "b": {"backend": "openai", "model": "n", "options": {"require_key": False,
                                                                                       "base_url": "http://127.0.0.1:9/v1"}}},
        "judges": {"critic": {"type": "llm", "backend": "broken", "model": "x"}},
        "sections": [{"name": "s", "prompts": ["hi"]}]}), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--plugins-dir", str(folder), "validate", str(suite)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "judges.critic" in lines[0] and "cannot reach the GPU" in lines[0], result.stderr


def blocking_suite(tmp_path: Path, **options: Any) -> Path:
    data = {
        "name": "blocking", "baseline": "baseline",
        "contenders": {"baseline": {"backend": "malformed", "model": "base", "options": options,
                                    "limits": {"timeout_s": 0.3, "max_attempts": 1, "max_concurrency": 1}},
                       "brie": {"backend": "malformed", "model": "brie"}},
        "judges": {"j": {"type": "malformed"}},
        "sections": [{"name": "s", "prompts": ["fine?", "a [bad] one?"]}],
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how,message", [("block_s", "blocked the event loop"), ("thread_block_s", "timed out after")])
def test_no_answer_later_than_timeout_s_is_stored(tmp_path: Path, how: str, message: str) -> None:
    path = blocking_suite(tmp_path, **{how: 1.5})
    db = tmp_path / "db.sqlite"
    result = CliRunner().invoke(cli, ["--db", str(db), "--plugins-dir", str(HOSTILE), "run", str(path)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    counts = summary(result.stdout)
    assert (counts["gen_new"], counts["gen_failed"]) == (3, 1)
    errors = query(db, "SELECT kind, message FROM errors WHERE final=1")
    assert len(errors) == 1 and errors[0]["kind"] == "timeout" and message in errors[0]["message"], errors
    assert not query(db, "SELECT * FROM generations WHERE text LIKE '%[bad]%' AND model='base'")


def test_plugins_dir_reads_only_bounded_regular_files(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path)
    (folder / "zero.py").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.py")
    (folder / "big.py").write_text("# padding\n" * (MAX_PLUGIN_BYTES // 10 + 10), encoding="utf-8")
    result = brie("--plugins-dir", str(folder), "plugins", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "good" in result.stdout
    failed = [l for l in result.stdout.splitlines() if l.startswith("failed: ")]
    assert len(failed) == 3, result.stdout
    by_name = {name: next(l for l in failed if f"{name}.py" in l) for name in ("zero", "fifo", "big")}
    assert "not a regular file" in by_name["zero"] and "not a regular file" in by_name["fifo"]
    assert "more than" in by_name["big"]
