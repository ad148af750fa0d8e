"""No FutureWarning or Hub message reaches the terminal in `train`, `run` or `report --model-card`.

Each command runs in a fresh process with every warning shown (`-W default`) and FutureWarnings
raised by Brie Bench's own modules turned into errors (`-W error::FutureWarning:brie_bench`);
what the libraries say must be silenced at its source or sent to the run log, never printed.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
#: Warnings on for everything, errors for FutureWarnings that the project's own code raises.
STRICT = ["-W", "default", "-W", "error::FutureWarning:brie_bench"]
NOISE = ("FutureWarning", "DeprecationWarning", "UserWarning", "metadata block was not found", "Traceback",
         "warnings.warn(")


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, *STRICT, "-m", "brie_bench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for noise in NOISE:
        assert noise not in output, f"{noise!r} reached the terminal of {args[:3]}:\n{output}"
    return done


@pytest.fixture
def env(tiny_cache: Path, tiny_base_path: Path, tiny_adapter_path: Path, tiny_judge_path: Path,
        tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BRIE_BENCH_", "PYTHONWARNINGS"))}
    return dict(clean, BRIE_BENCH_CACHE=str(tiny_cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                HF_HOME=str(tmp_path / "hf"), COLUMNS="100")


def test_train_prints_no_library_warning(env: dict[str, str], tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "training" / "configs" / "smoke.yaml").read_text(encoding="utf-8"))
    config["data"] = {"train": str(REPO / "training" / "samples" / "sample.jsonl")}
    config["training"].update(max_steps=2)
    path = tmp_path / "two-steps.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    done = _cli("train", str(path), "--output", str(tmp_path / "adapter"), env=env, cwd=tmp_path)
    assert "Training summary" in done.stdout + done.stderr


def test_run_and_first_model_card_print_no_library_warning(env: dict[str, str], tmp_path: Path) -> None:
    db = str(tmp_path / "smoke.db")
    _cli("--db", db, "run", str(REPO / "suites" / "smoke.yaml"), env=env, cwd=tmp_path)
    card = tmp_path / "card" / "README.md"
    card.parent.mkdir()
    _cli("report", "--db", db, "--model-card", str(card), env=env, cwd=tmp_path)  # a card created from nothing
    assert card.read_text(encoding="utf-8").startswith("---\n")
    card.write_text("# my model\n\nNo front matter yet.\n", encoding="utf-8")  # a user's card without any
    _cli("report", "--db", db, "--model-card", str(card), env=env, cwd=tmp_path)
    assert "No front matter yet." in card.read_text(encoding="utf-8")


def test_a_card_without_front_matter_is_parsed_without_a_hub_log_line(caplog: pytest.LogCaptureFixture) -> None:
    from brie_bench.modelcard import _parse_card

    with caplog.at_level(logging.WARNING):
        card = _parse_card("# my model\n\ntext\n")
    assert card.text.startswith("# my model") and not caplog.records
