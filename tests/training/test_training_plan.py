"""Step arithmetic: the published 1,153 examples x 2 epochs at effective batch 8 make 290 steps.

`plan_steps` is checked against the real transformers Trainer (and, for the
published numbers, a real TRL SFTTrainer on a tiny model), so the `--plan`
output cannot drift from what training actually does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brie_bench.training import TrainingSettings, config_path, load_config, plan_for, plan_steps, with_data
from brie_bench.training.cli import train_command

PUBLISHED_EXAMPLES = 1153
PUBLISHED_STEPS = 290


@pytest.fixture(scope="module")
def published_size_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic chat dataset with as many examples as the published Brie v2 run (all distinct)."""
    path = tmp_path_factory.mktemp("plan") / "synthetic-1153.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(PUBLISHED_EXAMPLES):
            fh.write(json.dumps({"messages": [
                {"role": "user", "content": f"Question {i}: what is wonder?"},
                {"role": "assistant", "content": f"Answer {i}: the beginning of philosophy."},
            ]}) + "\n")
    return path


def test_published_recipe_makes_290_steps() -> None:
    plan = plan_steps(PUBLISHED_EXAMPLES, TrainingSettings())
    assert plan.effective_batch_size == 8
    assert plan.batches_per_epoch == 577  # ceil(1153 / 2)
    assert plan.steps_per_epoch == 145  # ceil(577 / 4): the short last accumulation still steps
    assert plan.total_steps == PUBLISHED_STEPS


def test_plan_for_the_shipped_3b_config_on_published_sized_data(published_size_data: Path) -> None:
    config = with_data(load_config(config_path("brie-v2-3b")), [str(published_size_data)], [])
    plan, report = plan_for(config)
    assert len(report.train_examples) == PUBLISHED_EXAMPLES
    assert plan.total_steps == PUBLISHED_STEPS


def test_cli_plan_prints_the_arithmetic_without_training(published_size_data: Path) -> None:
    result = CliRunner().invoke(train_command, [str(config_path("brie-v2-3b")), "--plan", "--train-file",
                                                str(published_size_data)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1,153" in result.output
    assert "2 per device x 4 accumulation = 8" in result.output
    assert "ceil(2 epochs x 145) = 290" in result.output
    assert "Training summary" not in result.output


def test_plan_variants() -> None:
    t = TrainingSettings()
    assert plan_steps(PUBLISHED_EXAMPLES, t, world_size=2).total_steps == 146  # ceil(ceil(1153/4)/4) * 2
    assert plan_steps(8, t).total_steps == 2
    assert plan_steps(9, t).total_steps == 4  # 5 batches -> 2 steps per epoch
    capped = plan_steps(PUBLISHED_EXAMPLES, t.model_copy(update={"max_steps": 50}))
    assert capped.total_steps == 50 and capped.capped_by_max_steps
    half = plan_steps(PUBLISHED_EXAMPLES, t.model_copy(update={"epochs": 0.5}))
    assert half.total_steps == 73  # ceil(0.5 * 145)
    assert any("warmup" in line and "never reaches" in line for line in plan_steps(8, t).lines())
    with pytest.raises(ValueError):
        plan_steps(0, t)


def _trainer_steps(model, examples: int, batch: int, accum: int, epochs: float, tmp: Path) -> int:
    """What a real transformers Trainer computes for the same numbers."""
    import torch
    from transformers import Trainer, TrainingArguments

    class Rows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return examples

        def __getitem__(self, i: int) -> dict:
            return {"input_ids": torch.tensor([1, 2]), "labels": torch.tensor([1, 2])}

    args = TrainingArguments(output_dir=str(tmp), per_device_train_batch_size=batch,
                             gradient_accumulation_steps=accum, num_train_epochs=epochs, report_to="none",
                             use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=Rows())
    return trainer.set_initial_training_values(args, trainer.get_train_dataloader())[-1]


@pytest.fixture(scope="module")
def small_model():
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                        num_key_value_heads=1, intermediate_size=8))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(examples=st.integers(1, 3000), batch=st.integers(1, 16), accum=st.integers(1, 16),
       epochs=st.sampled_from([1, 2, 3, 0.5, 1.5]))
def test_plan_matches_the_transformers_trainer(small_model, tmp_path: Path, examples: int, batch: int,
                                               accum: int, epochs: float) -> None:
    settings_ = TrainingSettings(epochs=epochs, per_device_batch_size=batch, gradient_accumulation_steps=accum)
    assert plan_steps(examples, settings_).total_steps == _trainer_steps(small_model, examples, batch, accum,
                                                                         epochs, tmp_path)


def test_real_sft_trainer_on_published_sized_data_plans_290_steps(tiny_base_path: Path, published_size_data: Path,
                                                                   tmp_path: Path) -> None:
    """TRL's own data preparation keeps all 1,153 examples and the Trainer plans 290 steps."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from brie_bench.training.data import read_chat_jsonl, to_records
    from brie_bench.training.lora import lora_config
    from brie_bench.training.run import sft_config
    from datasets import Dataset

    config = with_data(load_config(config_path("brie-v2-3b")), [str(published_size_data)], [])
    config = config.model_copy(update={"training": config.training.model_copy(
        update={"max_length": 64, "activation_checkpointing": False})})
    args = sft_config(config, tmp_path, bf16=False, has_eval=False)
    records = to_records(read_chat_jsonl(published_size_data).examples)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_base_path), args=args,
                         train_dataset=Dataset.from_list(records),
                         processing_class=AutoTokenizer.from_pretrained(tiny_base_path),
                         peft_config=lora_config(config.lora))
    assert len(trainer.train_dataset) == PUBLISHED_EXAMPLES
    max_steps = trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())[-1]
    assert max_steps == PUBLISHED_STEPS == plan_for(config)[0].total_steps
