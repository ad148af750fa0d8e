"""Signals and a plugin's stray exceptions and threads.

* SIGTERM and SIGHUP stop a real `python -m brie_bench run` like Ctrl-C: the same message,
  exit 143 or 129, the run marked interrupted and no lease left `held`.
* A judge blocked in `time.sleep` does not swallow the first Ctrl-C, and a second Ctrl-C
  prints no traceback.
* Ctrl-C while plugins load exits 130 with the message, no traceback.
* A plugin raising KeyboardInterrupt, GeneratorExit or its own BaseException fails only its
  unit, as SystemExit does.
* A plugin's non-daemon thread does not keep the process alive once the run is over.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.suite import load_suite
from helpers import FIXTURE_PLUGINS, scripted_suite, write_yaml
from hostile.kit import loopback, loopback_suite, model_calls, query, write_suite

MESSAGE = "interrupted: everything finished so far is stored; rerun the same command to resume"

#: Judges that misbehave on purpose; each writes `<marker>` when it starts its first call.
PLUGIN = '''
import threading
import time
from pathlib import Path

from brie_bench.api import Judge, JudgeOptions, JudgeResult, hookimpl


class SleepyOptions(JudgeOptions):
    marker: str = ""
    seconds: float = 60.0


class SleepyJudge(Judge):
    """Blocks the event loop in time.sleep: a plugin that never learnt asyncio."""

    name = "sleepy"
    Options = SleepyOptions
    needs_backend = False

    async def judge(self, pair):
        Path(self.options.marker).write_text("sleeping")
        time.sleep(self.options.seconds)
        return JudgeResult(label="A", raw="Winner: A")


class RaiserOptions(JudgeOptions):
    what: str = "KeyboardInterrupt"


class Custom(BaseException):
    pass


class RaiserJudge(Judge):
    """Raises a BaseException that is not an Exception on one prompt, answers A on the others."""

    name = "raiser"
    Options = RaiserOptions
    needs_backend = False

    async def judge(self, pair):
        if "number 0?" in pair.prompt:
            raise {"KeyboardInterrupt": KeyboardInterrupt, "GeneratorExit": GeneratorExit,
                   "Custom": Custom}[self.options.what]("from the plugin")
        return JudgeResult(label="A", raw="Winner: A")


class ThreadOptions(JudgeOptions):
    pass


class ThreadJudge(Judge):
    """Starts a non-daemon thread that never ends, then answers."""

    name = "threader"
    Options = ThreadOptions
    needs_backend = False

    async def judge(self, pair):
        if not any(t.name == "forever" for t in threading.enumerate()):
            threading.Thread(target=threading.Event().wait, name="forever").start()
        return JudgeResult(label="A", raw="Winner: A")


@hookimpl
def register_judges(register):
    register(SleepyJudge)
    register(RaiserJudge)
    register(ThreadJudge)
'''


@pytest.fixture()
def plugins_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy(FIXTURE_PLUGINS / "scripted.py", folder / "scripted.py")
    (folder / "misbehaving.py").write_text(PLUGIN, encoding="utf-8")
    return folder


def brie(db: Path, *args: str, plugins: Path | None = None) -> subprocess.Popen:
    extra = ["--plugins-dir", str(plugins)] if plugins else []
    return subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), *extra, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, COLUMNS="200"))


def wait_for(condition: Any, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert condition(), "timed out waiting"


def assert_interrupted(proc: subprocess.Popen, code: int, db: Path | None = None) -> None:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, (proc.returncode, out + err)
    assert "Traceback" not in out + err and "Aborted!" not in err, out + err
    assert MESSAGE in " ".join(err.split()), err
    if db is not None:
        assert query(db, "SELECT status FROM runs")[0]["status"] == "interrupted"
        assert not query(db, "SELECT * FROM leases WHERE state='held'"), "the run left leases held"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["sigterm_exits_143", "sighup_exits_129"])
def test_a_stop_signal_ends_a_run_like_ctrl_c_with_no_held_lease(tmp_path: Path, signum: int, code: int) -> None:
    with loopback(latency_s=0.4, max_lifetime_s=110) as srv:
        suite = write_suite(tmp_path / "suite.yaml", loopback_suite(srv, prompts=8, limits={"max_concurrency": 2}))
        db = tmp_path / "db.sqlite"
        proc = brie(db, "run", str(suite))
        wait_for(lambda: len(model_calls(srv)) >= 3)  # some stored, two in flight with their leases held
        assert query(db, "SELECT * FROM leases WHERE state='held'"), "nothing was leased when the signal came"
        proc.send_signal(signum)
        assert_interrupted(proc, code, db)


def sleepy_suite(tmp_path: Path, marker: Path) -> Path:
    return write_yaml(tmp_path / "suite.yaml", scripted_suite(
        judges={"sleepy": {"type": "sleepy", "options": {"marker": str(marker)}}},
        sections=[{"name": "s", "prompts": ["What is being number 1?", "What is being number 2?"]}]))


@pytest.mark.timeout(120)
def test_the_first_ctrl_c_stops_a_judge_blocked_in_time_sleep(tmp_path: Path, plugins_dir: Path) -> None:
    marker = tmp_path / "sleeping"
    db = tmp_path / "db.sqlite"
    proc = brie(db, "run", str(sleepy_suite(tmp_path, marker)), plugins=plugins_dir)
    wait_for(marker.exists)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert_interrupted(proc, 130, db)
    assert time.monotonic() - sent < 30, "the first Ctrl-C waited for the judge's 60 s sleep"


@pytest.mark.timeout(120)
def test_a_second_ctrl_c_while_a_judge_blocks_prints_no_traceback(tmp_path: Path, plugins_dir: Path) -> None:
    marker = tmp_path / "sleeping"
    db = tmp_path / "db.sqlite"
    proc = brie(db, "run", str(sleepy_suite(tmp_path, marker)), plugins=plugins_dir)
    wait_for(marker.exists)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert_interrupted(proc, 130)


@pytest.mark.timeout(120)
def test_ctrl_c_while_plugins_load_exits_130_without_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    marker = tmp_path / "loading"
    (folder / "slow_import.py").write_text(
        f"import time\nfrom pathlib import Path\nPath({str(marker)!r}).write_text('x')\ntime.sleep(60)\n",
        encoding="utf-8")
    proc = brie(tmp_path / "db.sqlite", "plugins", plugins=folder)
    wait_for(marker.exists)
    proc.send_signal(signal.SIGINT)
    assert_interrupted(proc, 130)


@pytest.mark.parametrize("what", ["KeyboardInterrupt", "GeneratorExit", "Custom"])
def test_a_plugin_raising_a_base_exception_fails_only_its_unit(tmp_path: Path, plugins_dir: Path, what: str) -> None:
    path = write_yaml(tmp_path / "suite.yaml", scripted_suite(
        judges={"raiser": {"type": "raiser", "options": {"what": what}}},
        sections=[{"name": "s", "prompts": [f"What is being number {i}?" for i in range(3)]}]))
    db = tmp_path / "db.sqlite"
    code = execute_run(load_suite(path), load_plugins(plugins_dir), db=str(db), console=Console(quiet=True))
    assert code == 1  # one unit failed; the run went on and finished
    assert len(query(db, "SELECT * FROM judgments")) == 2
    errors = query(db, "SELECT kind, message FROM errors WHERE final=1")
    assert len(errors) == 1 and errors[0]["kind"] == "plugin_error" and what in errors[0]["message"], errors
    assert query(db, "SELECT status FROM runs")[0]["status"] == "incomplete"
    assert not query(db, "SELECT * FROM leases WHERE state='held'")


@pytest.mark.timeout(120)
def test_a_plugins_non_daemon_thread_does_not_keep_the_process_alive(tmp_path: Path, plugins_dir: Path) -> None:
    path = write_yaml(tmp_path / "suite.yaml", scripted_suite(
        judges={"threader": {"type": "threader"}}, sections=[{"name": "s", "prompts": ["What is being number 1?"]}]))
    db = tmp_path / "db.sqlite"
    proc = brie(db, "run", str(path), plugins=plugins_dir)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the process stayed alive after its run ended (a plugin's thread kept it)")
    assert proc.returncode == 0, out + err
    assert "generations: 2 new" in " ".join(out.split()), out
    assert yaml.safe_load(path.read_text())  # the suite is untouched (sanity)
    assert query(db, "SELECT status FROM runs")[0]["status"] == "complete"
