"""A report is a function of (rows, settings, seed): the same figures in any thread, built once or twice.

Its bootstrap draws (`stats.Draws`), prompt numbering and collapsed comparisons are made
per `build_report_from_data` call and passed down, with no per-thread or per-process
state. Two threads building two different reports at once must each get exactly what
it gets alone, and one thread building the same report twice must get it twice.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from brie_bench.report.model import build_report_from_data
from brie_bench.report.rows import RunData, load_run
from brie_bench.store import Store
from helpers import synthetic_run

def _build_run(db: Path, judgments: int, seed: int) -> RunData:
    """A synthetic run (`helpers.synthetic_run`), loaded."""
    run_id = synthetic_run(db, judgments, seed)
    with Store(db, readonly=True) as store:
        return load_run(store, run_id, texts=False)


def _figures(data: RunData) -> str:
    """The report as JSON, without the one field that is meant to change (the time it was made)."""
    report: dict[str, Any] = build_report_from_data(data).to_json_dict()
    report.pop("generated_at")
    return json.dumps(report, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunData, RunData]:
    tmp = tmp_path_factory.mktemp("pure")
    return _build_run(tmp / "a.db", 400, 0), _build_run(tmp / "b.db", 560, 1)


def test_the_reports_use_bootstrap_draws_over_a_subset_of_prompts(runs: tuple[RunData, RunData]) -> None:
    """Otherwise the purity tests below would not exercise the draws at all."""
    for data in runs:
        report = build_report_from_data(data).to_json_dict()
        methods = {c["difference"]["method"] for c in report["criteria"]}
        assert "cluster-bootstrap" in methods
        # One judge's criteria cover only the prompts it judged validly: a subset of the run's.
        assert report["run"]["n_prompts"] >= 30


def test_two_threads_building_different_reports_get_what_each_gets_alone(runs: tuple[RunData, RunData]) -> None:
    alone = [_figures(data) for data in runs]
    assert alone[0] != alone[1]
    got: dict[int, list[str]] = {0: [], 1: []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(i: int) -> None:
        try:
            start.wait()
            for _ in range(3):
                got[i].append(_figures(runs[i]))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert got[0] == [alone[0]] * 3
    assert got[1] == [alone[1]] * 3


def test_the_same_report_twice_in_one_thread_is_the_same(runs: tuple[RunData, RunData]) -> None:
    first = _figures(runs[0])
    _figures(runs[1])  # another report in between leaves nothing behind
    assert _figures(runs[0]) == first
