"""After "fail, then rerun and succeed", no report counts the old failures as failed.

The first run of the smoke suite fails every generation for a real reason (the
model cache is a file, so the tiny models cannot be built); the rerun, with a
working cache, retries and succeeds. The run is then complete and every report
says 0 units still failed, and counts the earlier failed attempts as retried:
before, every later run printed "6 failed", the JSON said `"failed_units": 6`
on a complete run and the HTML "6 failed calls".
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from brie_bench.cli import cli
from helpers import rows

REPO = Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "suites" / "smoke.yaml")


def _invoke(db: Path, cache: Path, *args: str):
    return CliRunner().invoke(cli, ["--db", str(db), *args], env={"BRIE_BENCH_CACHE": str(cache), "COLUMNS": "80"})


def test_rerun_after_failures_counts_nothing_as_still_failed(tmp_path: Path, tiny_cache: Path,
                                                            tiny_adapter_path: Path, tiny_judge_path: Path) -> None:
    db = tmp_path / "brie-bench.db"
    broken = tmp_path / "not-a-folder"
    broken.write_text("a file where the model cache should be", encoding="utf-8")

    first = _invoke(db, broken, "run", SMOKE)
    assert first.exit_code == 1, first.output
    assert "generations: 0 new, 0 cached, 12 failed" in first.output, first.output
    assert "baseline: 6 generations still failed, 0 failed attempts retried" in first.output, first.output
    report = json.loads(_invoke(db, broken, "report", "--json").output)
    assert report["run"]["status"] == "incomplete"
    assert report["run"]["failed_units"] == 12 and report["run"]["retried_attempts"] == 0

    second = _invoke(db, tiny_cache, "run", SMOKE)
    assert second.exit_code == 0, second.output
    assert "generations: 12 new" in second.output and "judgments: 9 new" in second.output, second.output
    assert "baseline: 0 generations still failed, 6 failed attempts retried" in second.output, second.output
    assert "last error" not in second.output  # nobody is still failed
    tiny_row = next(line for line in second.output.splitlines() if line.startswith("tiny-judge"))
    assert tiny_row.split()[-2:] == ["0", "0"], tiny_row  # fail, retried

    # The logprob judge records what it read (it used to record 0 input tokens).
    tokens = [r["input_tokens"] for r in rows(db, "SELECT input_tokens FROM judgments")]
    assert len(tokens) == 9 and min(tokens) > 100, tokens

    report = json.loads(_invoke(db, tiny_cache, "report", "--json").output)
    assert report["schema_version"] == 3
    assert report["run"]["status"] == "complete"
    assert report["run"]["failed_units"] == 0
    assert report["run"]["retried_attempts"] == 12
    assert {f["name"]: (f["failed_units"], f["retried_attempts"]) for f in report["failures"]} == {
        "baseline": (0, 6), "brie": (0, 6)}
    assert report["failed_judges"] == []
    assert not [w for w in report["warnings"] if w["kind"] in ("status", "judge-failed")]

    html_path = tmp_path / "report.html"
    result = _invoke(db, tiny_cache, "report", "--html", str(html_path))
    assert result.exit_code == 0, result.output
    html = html_path.read_text(encoding="utf-8")
    assert "0 units still failed (a rerun retries them); 12 failed attempts retried" in html
    assert "failed calls" not in html


def test_failure_counting_rules() -> None:
    """Still failed = the unit is not done now; every other failed attempt was retried."""
    from brie_bench.summary import failures

    def err(name: str, key: str, kind: str = "judgment", final: bool = True, message: str = "m") -> dict:
        return {"name": name, "unit_key": key, "unit_kind": kind, "final": final, "kind": "k", "message": message}

    errors = [
        err("j", "u1", final=False), err("j", "u1", final=False),  # retried twice, then stored
        err("j", "u2", message="first run"), err("j", "u2", message="rerun"),  # failed on both runs
        err("j", "u3"),  # failed, then stored by a rerun
        err("j", "batch-9", kind="batch_poll"),  # polling a batch is not a unit
        err("g", "gen1", kind="generation", message="old"),
    ]
    got = failures(errors, done={"u1", "u3", "gen1"})
    assert (got["j"].failed, got["j"].retried, got["j"].message) == (1, 5, "rerun")
    assert (got["j"].unit_kind, got["g"].unit_kind) == ("judgment", "generation")
    assert (got["g"].failed, got["g"].retried) == (0, 1)
