"""Model cards through huggingface_hub: model-index built by the library, cards updated in place."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import EvalResult, ModelCard

from brie_bench.cli import cli
from brie_bench.modelcard import (BEGIN_MARKER, END_MARKER, DATASET_TYPE, eval_results, model_index,
                                  training_card, updated_card)
from brie_bench.report.model import build_report
from brie_bench.report.schema import Report
from brie_bench.store import Store
from helpers import run_suite, two_judge_suite, write_yaml

USER_CARD = """---
license: apache-2.0
base_model: Qwen/Qwen2.5-3B-Instruct
tags:
- philosophy
model-index:
- name: me/brie
  results:
  - task:
      type: text-generation
    dataset:
      name: MMLU
      type: cais/mmlu
    metrics:
    - type: accuracy
      value: 61.2
---

# Brie  

My own words, with  trailing spaces and odd   spacing.

<!-- a comment of mine -->

## Usage

```python
print("keep me")
```
"""


@pytest.fixture(scope="module")
def run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("modelcard")
    data = two_judge_suite()
    db = tmp / "r.db"
    assert run_suite(write_yaml(tmp / "suite.yaml", data), db) == 0
    return db


@pytest.fixture(scope="module")
def report(run_db: Path) -> Report:
    return build_report(Store(run_db, readonly=True))


def _ours(results: list[EvalResult]) -> list[EvalResult]:
    return [r for r in results if r.dataset_type == DATASET_TYPE]


def test_eval_results_hold_every_judge_and_the_consensus(report: Report) -> None:
    results = eval_results(report, "brie")
    overall = [r for r in results if r.dataset_config == "all" and r.metric_type == "win_rate"]
    by_judge = {r.metric_name.split("judge: ")[1].split(",")[0].rstrip(")"): r.metric_value for r in overall}
    for j in report.judges:
        if j.win_rate is None:  # a judge that carries no information gives no win rate, so no card entry
            assert j.information.statement and j.judge not in by_judge
        else:
            assert by_judge[j.judge] == round(100 * j.win_rate, 1)
    assert any(j.win_rate is not None for j in report.judges)
    # Two judges, one without information: no vote, as in every report form (report.majority).
    assert not any(name.startswith("majority vote") for name in by_judge)
    assert all(r.verified is False and r.task_type == "text-generation" for r in results)
    assert all(r.dataset_name.startswith(f"Brie Bench {report.run.suite}") for r in results)
    # The interval travels in metric_args (EvalResult has no field for it), and says whether it is trusted.
    for r in overall:
        assert {"ci95_low", "ci95_high", "trusted", "run"} <= set(r.metric_args)
        assert r.metric_args["run"] == report.run.id
    sections = {r.dataset_config for r in results}
    assert {"all", "philosophy", "brainstorm"} <= sections


def test_model_index_parses_back_through_the_hub_loader(report: Report, tmp_path: Path) -> None:
    index = model_index(report, "me/brie")
    assert index["model-index"][0]["name"] == "me/brie"
    card = updated_card(None, report, "tables", model_name="me/brie")
    path = tmp_path / "README.md"
    path.write_text(card, encoding="utf-8")
    loaded = ModelCard.load(path)
    assert loaded.data.model_name == "me/brie"
    got = {(r.metric_type, r.metric_name): r.metric_value for r in loaded.data.eval_results}
    want = {(r.metric_type, r.metric_name): r.metric_value for r in eval_results(report, "brie")}
    assert got == want


def test_update_in_place_keeps_the_users_card_and_is_idempotent(report: Report, run_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(USER_CARD, encoding="utf-8")
    runner = CliRunner()
    args = ["--db", str(run_db), "report", "--model-card", str(path)]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    once = path.read_text(encoding="utf-8")
    loaded = ModelCard.load(path)
    # The user's own result and metadata survive; ours are added.
    assert any(r.dataset_name == "MMLU" and r.metric_value == 61.2 for r in loaded.data.eval_results)
    assert loaded.data.license == "apache-2.0" and loaded.data.tags == ["philosophy"]
    assert len(_ours(loaded.data.eval_results)) == len(eval_results(report, "brie"))
    # Everything outside the marked section of the body is byte for byte the user's.
    body = USER_CARD.split("---\n", 2)[2]
    start, end = once.index(BEGIN_MARKER), once.index(END_MARKER) + len(END_MARKER)
    assert once.split("---\n", 2)[2].replace(once[start:end], "").rstrip("\n") == body.rstrip("\n")
    assert "| Judge |" in once[start:end]
    # A second update changes nothing.
    second = runner.invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert path.read_text(encoding="utf-8") == once
    assert "model card up to date" in " ".join(second.output.split())


def test_second_run_replaces_only_our_entries_and_our_section(report: Report) -> None:
    card = updated_card(USER_CARD, report, "first tables")
    changed = dataclasses.replace(report, judges=[dataclasses.replace(j, win_rate=0.25) if j.win_rate is not None
                                                  else j for j in report.judges])
    again = updated_card(card, changed, "second tables")
    assert "first tables" not in again and again.count(BEGIN_MARKER) == 1 and "second tables" in again
    loaded = ModelCard(again)
    ours = _ours(loaded.data.eval_results)
    assert len(ours) == len(eval_results(report, "brie"))  # replaced, not appended
    assert any(r.metric_value == 25.0 for r in ours)
    # A result for another suite is not ours to replace.
    other = dataclasses.replace(report, run=dataclasses.replace(report.run, suite="another-suite"))
    both = ModelCard(updated_card(again, other, "second tables"))
    assert len(_ours(both.data.eval_results)) == 2 * len(eval_results(report, "brie"))


def test_half_a_marker_pair_is_refused(report: Report, run_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(f"# Card\n\n{BEGIN_MARKER}\nno end\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--db", str(run_db), "report", "--model-card", str(path)])
    assert result.exit_code == 2 and "marker" in result.output and "Traceback" not in result.output


def test_training_card_names_the_model_id_and_the_data(tmp_path: Path) -> None:
    manifest = {"data": {"train": [{"path": "/somewhere/train.jsonl", "sha256": "ab" * 32, "examples": 12}],
                         "validation": []},
                "adapter": {"trainable_parameters": 1234, "lora": {"r": 8, "alpha": 16, "dropout": 0.05}}}
    text = training_card(base_model="HuggingFaceTB/SmolLM2-135M-Instruct", manifest=manifest,
                         manifest_name="brie_manifest.json", adapter_name="mini-brie")
    path = tmp_path / "README.md"
    path.write_text(text, encoding="utf-8")
    card = ModelCard.load(path)
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert {"peft", "lora"} <= set(card.data.tags) and card.data.library_name == "peft"
    assert "ab" * 32 in card.text and "(./brie_manifest.json)" in card.text
