"""A bad environment variable is bad input: one line naming it, exit 2, before any work.

`BRIE_BENCH_LEASE_S=nan` once reached SQLite as a NULL lease expiry
("NOT NULL constraint failed: leases.expires_at"); the retry variables fell
back to their defaults in silence. Every numeric variable is now read by
`brie_bench.envvars`, and the CLI group checks them all before a command runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from brie_bench import envvars
from brie_bench.cli import cli
from brie_bench.errors import InputError
from brie_bench.limits import RetryPolicy
from helpers import FIXTURE_PLUGINS, rows, scripted_suite, write_yaml

NUMERIC = ("BRIE_BENCH_LEASE_S", "BRIE_BENCH_RETRY_BASE_S", "BRIE_BENCH_RETRY_CAP_S")
BAD = ("nan", "inf", "-inf", "-1", "abc", "1e999", "0x10")


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, env=env)
    return result.exit_code, result.stderr


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("name", NUMERIC)
def test_each_numeric_variable_refuses_a_bad_value_in_one_line_naming_it(tmp_path: Path, name: str,
                                                                          value: str) -> None:
    code, err = invoke(["--db", str(tmp_path / "none.db"), "runs"], {name: value})
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"error: {name}: must be a finite number")
    assert repr(value) in err and "Traceback" not in err
    assert not (tmp_path / "none.db").exists()  # refused before the command opened anything


@pytest.mark.parametrize("value", ["0", "-0.5", "nan"])
def test_a_zero_or_negative_lease_is_refused_but_a_zero_retry_wait_is_allowed(tmp_path: Path, value: str) -> None:
    code, err = invoke(["--db", str(tmp_path / "none.db"), "runs"], {"BRIE_BENCH_LEASE_S": value})
    assert code == 2 and "BRIE_BENCH_LEASE_S" in err
    policy_env = {"BRIE_BENCH_RETRY_BASE_S": "0", "BRIE_BENCH_RETRY_CAP_S": " 0.5 "}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in policy_env.items():
            mp.setenv(k, v)
        policy = RetryPolicy()
    assert (policy.base_s, policy.cap_s) == (0.0, 0.5)


def test_valid_and_empty_values_are_read_and_the_lease_is_kept_within_its_range(monkeypatch) -> None:
    monkeypatch.setenv("BRIE_BENCH_LEASE_S", "0.01")
    assert envvars.lease_s() == 0.5
    monkeypatch.setenv("BRIE_BENCH_LEASE_S", "")
    assert envvars.lease_s() == envvars.DEFAULT_LEASE_S
    monkeypatch.setenv("BRIE_BENCH_LEASE_S", "7.5")
    assert envvars.lease_s() == 7.5


@pytest.mark.parametrize("name, reader", [("WORLD_SIZE", envvars.world_size), ("RANK", envvars.rank)])
@pytest.mark.parametrize("value", ["abc", "1.5", "nan", "-1", "--1", "99999999999999999999"])
def test_training_process_variables_refuse_what_is_not_a_whole_number(monkeypatch, name: str, reader,
                                                                      value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match=f"^{name}: must be a whole number"):
        reader()


def test_flag_and_path_readers(monkeypatch) -> None:
    for value, expected in (("1", True), ("Yes", True), ("off", False), ("", True)):
        monkeypatch.setenv("BRIE_BENCH_TEST_FLAG", value)
        assert envvars.flag("BRIE_BENCH_TEST_FLAG", True) is expected
    monkeypatch.setenv("BRIE_BENCH_TEST_FLAG", "maybe")
    with pytest.raises(InputError, match="^BRIE_BENCH_TEST_FLAG: must be one of"):
        envvars.flag("BRIE_BENCH_TEST_FLAG", True)
    monkeypatch.setenv("BRIE_BENCH_CACHE", "~/x")
    assert envvars.cache_dir() == Path.home() / "x"


@pytest.mark.parametrize("value", ["abc", "0", "nan"])
def test_train_plan_refuses_a_bad_world_size_in_one_line(value: str) -> None:
    config = Path(__file__).parents[2] / "training" / "configs" / "smoke.yaml"
    code, err = invoke(["train", str(config), "--plan"], {"WORLD_SIZE": value})
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: WORLD_SIZE: must be a whole number")


def test_run_with_a_nan_lease_stops_before_any_call_and_stores_nothing(tmp_path: Path) -> None:
    """The issue's case, as a user runs it: no NOT NULL constraint error, no run, no lease."""
    suite = write_yaml(tmp_path / "s.yaml", scripted_suite(
        judges={"marker": {"type": "marker"}}, sections=[{"name": "s", "prompts": ["What is being?"]}]))
    db = tmp_path / "r.db"
    done = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "--plugins-dir", str(FIXTURE_PLUGINS),
                           "run", str(suite)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, BRIE_BENCH_LEASE_S="nan", COLUMNS="200"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == ("error: BRIE_BENCH_LEASE_S: must be a finite number above 0, not 'nan' "
                                   "(unset it to use the default)")
    assert "NOT NULL" not in done.stdout + done.stderr
    assert not db.exists() or rows(db, "SELECT * FROM runs") == []
