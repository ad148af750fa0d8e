"""Training config: the shipped recipes, defaults, and one-line errors with file, field and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from brie_bench.errors import InputError
from brie_bench.training import (
    CONFIGS_DIR,
    LoraSettings,
    TrainConfig,
    TrainingSettings,
    config_path,
    load_config,
    with_data,
)
from brie_bench.training.__main__ import main as training_main
from brie_bench.training.cli import train_command

EXAMPLE = {"messages": [{"role": "user", "content": "What is wonder?"},
                        {"role": "assistant", "content": "The beginning of philosophy."}]}


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(EXAMPLE) + "\n", encoding="utf-8")
    return path


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_shipped_configs_exist_and_load() -> None:
    names = sorted(p.name for p in CONFIGS_DIR.glob("*.yaml"))
    assert names == ["brie-v2-0.5b.yaml", "brie-v2-3b.yaml", "mini-brie.yaml", "smoke.yaml"]
    for name in names:
        config = load_config(CONFIGS_DIR / name)
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in config.data.train)


def test_defaults_are_the_published_3b_recipe() -> None:
    t = TrainingSettings()
    lora = LoraSettings()
    assert TrainConfig.model_fields["base_model"].default == "Qwen/Qwen2.5-3B-Instruct"
    assert (lora.r, lora.alpha, lora.dropout, lora.bias, lora.task_type, lora.target_modules) == (
        16, 32, 0.05, "none", "CAUSAL_LM", None)
    assert (t.epochs, t.per_device_batch_size, t.gradient_accumulation_steps, t.effective_batch_size) == (2, 2, 4, 8)
    assert (t.learning_rate, t.lr_scheduler, t.warmup_steps, t.max_length, t.bf16) == (
        2e-4, "linear", 20, 2048, "auto")


def test_3b_yaml_spells_out_exactly_the_defaults_and_05b_differs_only_in_base() -> None:
    big = load_config(config_path("brie-v2-3b"))
    small = load_config(config_path("brie-v2-0.5b"))
    assert big.base_model == "Qwen/Qwen2.5-3B-Instruct"
    assert small.base_model == "Qwen/Qwen2.5-0.5B-Instruct"
    assert big.lora == LoraSettings() and big.training == TrainingSettings()
    assert small.lora == big.lora and small.training == big.training and small.data == big.data


def test_smoke_config_uses_the_tiny_model_on_cpu() -> None:
    smoke = load_config(config_path("smoke"))
    assert smoke.base_model == "tiny:qwen2"
    assert smoke.training.bf16 is False
    assert smoke.data.validation, "the smoke run must exercise evaluation too"


def test_data_paths_resolve_against_the_config_folder(tmp_path: Path, data_file: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_config(tmp_path, "data:\n  train: train.jsonl\n")
    monkeypatch.chdir("/")
    config = load_config(cfg)
    assert config.data.train == [str(data_file.resolve())]
    assert config.source == str(cfg)


@pytest.mark.parametrize("body, field, line, words", [
    ("data:\n  train: train.jsonl\nlora:\n  r: 16\n  rank: 8\n", "lora.rank", 5, "known keys"),
    ("data:\n  train: train.jsonl\ntraining:\n  learning_rate: fast\n", "training.learning_rate", 4, "number"),
    ("data:\n  train: train.jsonl\ntraining:\n  epochs: 0\n", "training.epochs", 4, "greater than 0"),
    ("data:\n  train: train.jsonl\ntraining:\n  bf16: sometimes\n", "training.bf16", 4, None),
    ("data:\n  train: train.jsonl\nlora:\n  bias: some\n", "lora.bias", 4, None),
    ("data:\n  train: [train.jsonl, missing.jsonl]\n", "data.train[1]", 2, "not found"),
    ("data:\n  train: train.jsonl\ntraining:\n  eval_steps: 10\n", "training.eval_steps", 4, "validation"),
    ("data:\n  train: train.jsonl\n  validation: train.jsonl\n", "data.validation", 3, "both"),
    ("lora:\n  r: 8\n", "data", None, "missing"),
    ("data:\n  train: train.jsonl\ntraining:\n  resume_from_checkpoint: nowhere\n",
     "training.resume_from_checkpoint", 4, "not found"),
])
def test_bad_configs_name_file_field_and_line(tmp_path: Path, data_file: Path, body: str, field: str,
                                              line: int | None, words: str | None) -> None:
    cfg = write_config(tmp_path, body)
    with pytest.raises(InputError) as info:
        load_config(cfg)
    err = info.value
    assert err.path == str(cfg)
    assert err.field == field
    if line is not None:
        assert err.line == line
    if words:
        assert words in str(err)
    assert "\n" not in str(err)


def test_yaml_syntax_and_shape_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="invalid YAML"):
        load_config(write_config(tmp_path, "data: [unclosed\n"))
    with pytest.raises(InputError, match="mapping"):
        load_config(write_config(tmp_path, "- just\n- a list\n"))
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_with_data_overrides_relative_to_the_working_directory(tmp_path: Path, data_file: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    base = load_config(config_path("brie-v2-3b"))
    monkeypatch.chdir(tmp_path)
    mine = with_data(base, ["train.jsonl"], [])
    assert mine.data.train == [str(data_file.resolve())]
    assert mine.data.validation == []
    assert mine.training == base.training and mine.base_model == base.base_model
    with pytest.raises(InputError, match="not found"):
        with_data(base, ["nope.jsonl"])


def test_cli_input_error_propagates_for_the_group_and_exits_2_standalone(tmp_path: Path, data_file: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    cfg = write_config(tmp_path, "data:\n  train: train.jsonl\nlora:\n  alpha: -1\n")
    result = CliRunner().invoke(train_command, [str(cfg), "--plan"])
    assert isinstance(result.exception, InputError)  # the brie-bench group turns this into exit 2
    assert training_main([str(cfg), "--plan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lora.alpha" in err and f"{cfg}:4" in err
