"""Round trip: train the smoke config on the tiny random model (CPU, seconds), then load the adapter.

One real TRL + PEFT run is shared by the module (through the CLI, so the
progress display and summary are exercised too); the checks then ask whether
the adapter is real (loads with PEFT, changes logits, has exactly the
parameters the meta-device count predicts) and whether the manifest tells the
truth (hashes, counts, steps, sizes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from brie_bench.errors import InputError
from brie_bench.training import (
    MANIFEST_NAME,
    adapter_parameter_count,
    config_path,
    load_config,
    read_manifest,
    train,
)
from brie_bench.training.cli import train_command


@dataclass
class SmokeRun:
    base: Path  # the tiny base model folder
    out: Path  # the adapter folder
    output: str  # what the CLI printed (stdout and stderr)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmokeRun]:
    from brie_bench.testing import tiny

    cache = tmp_path_factory.getbasetemp() / "brie-bench-cache"
    out = tmp_path_factory.mktemp("smoke") / "adapter"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("BRIE_BENCH_CACHE", str(cache))
        base = tiny.resolve("tiny:qwen2")
        result = CliRunner().invoke(train_command, [str(config_path("smoke")), "--output", str(out)],
                                    env={"COLUMNS": "200"})
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == 0, result.output
        yield SmokeRun(base=base, out=out, output=result.output)


def test_adapter_loads_with_peft_and_changes_logits(smoke: SmokeRun) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smoke.out)  # the tokenizer travels with the adapter
    messages = [{"role": "user", "content": "What is attention, according to Simone Weil?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(smoke.base, dtype=torch.float32).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
    model = PeftModel.from_pretrained(base, smoke.out).eval()
    with torch.no_grad():
        tuned = model(ids).logits
        with model.disable_adapter():
            disabled = model(ids).logits
    assert torch.allclose(disabled, base_logits, atol=1e-6)
    # PEFT starts lora_B at zero, so any difference here was learned in training.
    assert (tuned - base_logits).abs().max().item() > 1e-3


def test_adapter_has_exactly_the_predicted_parameters(smoke: SmokeRun) -> None:
    from safetensors import safe_open
    from transformers import AutoConfig

    with safe_open(str(smoke.out / "adapter_model.safetensors"), "pt") as fh:
        stored = {name: fh.get_tensor(name) for name in fh.keys()}
    assert stored and all("lora_A" in n or "lora_B" in n for n in stored)
    assert {n.split(".")[-3] for n in stored} == {"q_proj", "v_proj"}  # PEFT's Qwen2 default
    assert all(t.abs().sum() > 0 for n, t in stored.items() if "lora_B" in n)  # B left zero-init = no training
    count = sum(t.numel() for t in stored.values())
    lora = load_config(config_path("smoke")).lora
    assert count == adapter_parameter_count(AutoConfig.from_pretrained(smoke.base), lora)
    manifest = read_manifest(smoke.out)
    assert manifest is not None
    assert manifest["adapter"]["trainable_parameters"] == count
    assert manifest["adapter"]["file_bytes"] == (smoke.out / "adapter_model.safetensors").stat().st_size
    config = json.loads((smoke.out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny:qwen2"  # the id, not a cache path


def test_manifest_records_provenance_truthfully(smoke: SmokeRun) -> None:
    manifest = read_manifest(smoke.out)
    assert manifest is not None
    config = load_config(config_path("smoke"))
    train_file, val_file = Path(config.data.train[0]), Path(config.data.validation[0])
    assert manifest["base_model"]["id"] == "tiny:qwen2"
    assert manifest["config"]["lora"]["r"] == 16 and manifest["config"]["training"]["seed"] == 0
    [train_entry] = manifest["data"]["train"]
    assert train_entry["sha256"] == hashlib.sha256(train_file.read_bytes()).hexdigest()
    assert train_entry["examples"] == 24 and manifest["data"]["validation"][0]["examples"] == 4
    assert manifest["data"]["validation"][0]["sha256"] == hashlib.sha256(val_file.read_bytes()).hexdigest()
    assert manifest["data"]["train_tokens"]["total"] > 0
    libs = manifest["libraries"]
    import peft
    import torch
    import transformers
    import trl

    assert (libs["torch"], libs["transformers"], libs["peft"], libs["trl"]) == (
        torch.__version__, transformers.__version__, peft.__version__, trl.__version__)
    assert manifest["steps"]["planned"] == manifest["steps"]["completed"] == 6
    losses = manifest["losses"]
    assert losses["final_train"] is not None and losses["final_eval"] is not None
    assert [e["step"] for e in losses["history"] if "loss" in e] == [1, 2, 3, 4, 5, 6]
    assert manifest["started_at"] <= manifest["finished_at"]
    assert manifest["hardware"]["bf16"] is False
    assert manifest["git"] is None or len(manifest["git"]["commit"]) == 40


def test_adapter_readme_is_a_hub_card_naming_the_model_id(smoke: SmokeRun) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(smoke.out / "README.md")
    assert card.data.base_model == load_config(config_path("smoke")).base_model == "tiny:qwen2"
    assert {"peft", "lora"} <= set(card.data.tags)
    manifest = read_manifest(smoke.out)
    assert manifest is not None
    assert manifest["data"]["train"][0]["sha256"] in card.text
    assert "(./brie_manifest.json)" in card.text


def test_cli_shows_progress_and_a_summary(smoke: SmokeRun) -> None:
    out = smoke.output
    assert "step" in out and "6/6" in out and "loss" in out and "lr" in out and "ETA" in out
    assert "Training summary" in out
    assert "6 (planned 6)" in out
    assert "final eval loss" in out and "wall time" in out
    assert "parameters" in out and "KB" in out


def test_refuses_to_overwrite_and_resumes_from_a_checkpoint(smoke: SmokeRun, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIE_BENCH_CACHE", str(smoke.base.parent.parent))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = load_config(config_path("smoke"))
    with pytest.raises(InputError, match="already holds a trained adapter"):
        train(config, smoke.out, show_progress=False)

    # Checkpoints are removed from the adapter folder once training ends, unless the config
    # keeps them elsewhere (training.checkpoint_dir); so resuming needs a run that kept them.
    assert not (smoke.out / "checkpoints").exists()
    copy = tmp_path / "adapter"
    kept = config.model_copy(update={"training": config.training.model_copy(
        update={"checkpoint_dir": str(tmp_path / "kept")})})
    train(kept, copy, show_progress=False)
    assert (tmp_path / "kept" / "checkpoint-6").is_dir() and not (copy / "checkpoints").exists()
    first = json.loads((copy / MANIFEST_NAME).read_text())
    longer = kept.model_copy(update={"training": kept.training.model_copy(
        update={"resume_from_checkpoint": True, "max_steps": 8})})
    result = train(longer, copy, show_progress=False)
    assert result.steps == 8 and result.plan.total_steps == 8
    manifest = read_manifest(copy)
    assert manifest is not None
    assert manifest["resumed_from"].endswith("checkpoint-6")
    assert manifest["steps"]["completed"] == 8
    assert [e["step"] for e in manifest["losses"]["history"] if "loss" in e] == [7, 8]  # only the resumed part
    assert manifest["started_at"] >= first["started_at"]


def test_resume_without_checkpoints_and_missing_output_are_input_errors(tmp_path: Path) -> None:
    config = load_config(config_path("smoke"))
    resume = config.model_copy(update={"training": config.training.model_copy(
        update={"resume_from_checkpoint": True})})
    with pytest.raises(InputError, match="holds no checkpoint"):
        train(resume, tmp_path / "fresh", show_progress=False)
    with pytest.raises(InputError, match="no output folder"):
        train(config, None, show_progress=False)


def test_read_manifest_edge_cases(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) is None  # a folder without a manifest
    assert read_manifest("Qwen/some-hub-adapter") is None  # a Hub id, not a local folder
    (tmp_path / MANIFEST_NAME).write_text("{broken", encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text('{"format": "something-else"}', encoding="utf-8")
    with pytest.raises(InputError, match="not a Brie Bench training manifest"):
        read_manifest(tmp_path)


GENERATION_CHATML = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def test_assistant_only_loss_needs_a_template_trl_can_mask(smoke: SmokeRun, tmp_path: Path) -> None:
    config = load_config(config_path("smoke"))
    masked = config.model_copy(update={"training": config.training.model_copy(
        update={"assistant_only_loss": True, "max_steps": 2, "save_steps": 100})})
    # The tiny ChatML template has no {% generation %} markers and TRL has no training version of it.
    with pytest.raises(InputError, match="generation"):
        train(masked, tmp_path / "refused", show_progress=False)

    # A copy of the base whose template marks assistant turns trains, with loss on assistant tokens only.
    base = tmp_path / "base-with-markers"
    shutil.copytree(smoke.base, base)
    (base / "chat_template.jinja").write_text(GENERATION_CHATML, encoding="utf-8")
    marked = masked.model_copy(update={"base_model": str(base)})
    result = train(marked, tmp_path / "masked", show_progress=False)
    assert result.steps == 2 and result.final_train_loss is not None
    manifest = read_manifest(tmp_path / "masked")
    assert manifest is not None and manifest["config"]["training"]["assistant_only_loss"] is True


#: What `hf upload` of an adapter folder may upload: the adapter, its card, the manifest, the tokenizer.
UPLOAD = {"adapter_config.json", "adapter_model.safetensors", "README.md", MANIFEST_NAME}
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt", "added_tokens.json", "tokenizer.model"}


def test_adapter_folder_holds_exactly_what_is_uploaded(smoke: SmokeRun) -> None:
    """No checkpoints (TRL's cards name a cache folder and "None"), no pickled training args."""
    names = {p.name for p in smoke.out.iterdir()}
    assert UPLOAD <= names and names <= UPLOAD | TOKENIZER_FILES, sorted(names)
    assert all(p.is_file() for p in smoke.out.iterdir())
    card = (smoke.out / "README.md").read_text(encoding="utf-8")
    assert "None" not in card and str(smoke.base) not in card and "/tmp" not in card
    assert str(smoke.base) not in (smoke.out / "adapter_config.json").read_text(encoding="utf-8")


def test_adapter_loads_with_plain_peft_from_what_the_folder_says(smoke: SmokeRun) -> None:
    """The base named by adapter_config.json and the card, then plain `PeftModel.from_pretrained`.

    `tiny:` ids have no Hub id, so the test builds that base where a user would download it;
    the mapping to a Hub id is checked on the real id below, without downloading anything.
    """
    from huggingface_hub import ModelCard
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from brie_bench.testing import tiny

    named = PeftConfig.from_pretrained(smoke.out).base_model_name_or_path
    assert named == ModelCard.load(smoke.out / "README.md").data.base_model == "tiny:qwen2"
    base = AutoModelForCausalLM.from_pretrained(tiny.resolve(named))
    model = PeftModel.from_pretrained(base, smoke.out)
    ids = AutoTokenizer.from_pretrained(smoke.out)("Simone Weil", return_tensors="pt")["input_ids"]
    assert model(ids).logits.shape[-1] == base.config.vocab_size
    manifest = read_manifest(smoke.out)
    assert manifest is not None
    assert manifest["base_model"]["id"] == "tiny:qwen2" and manifest["base_model"]["hub_id"] is None


def test_real_model_ids_become_hub_ids_in_every_file_that_leaves(smoke: SmokeRun, tmp_path: Path) -> None:
    """`smollm2:135m-instruct` is Brie Bench's id; PEFT and the Hub know `HuggingFaceTB/SmolLM2-135M-Instruct`.

    Runs the same writers `train` runs on a copy of the trained folder, with the mini-Brie base id:
    no conversion, no download (the real round trip is tests/plugins/test_real_smollm.py, slow).
    """
    from huggingface_hub import ModelCard

    from brie_bench import real_models
    from brie_bench.training import run as training_run

    hub = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert real_models.hub_id("smollm2:135m-instruct") == hub
    assert all(real_models.hub_id(i) for i in real_models.REAL_IDS)  # every built-in real id has one
    assert real_models.hub_id("tiny:qwen2") is None and real_models.hub_id("Qwen/Qwen2.5-3B-Instruct") is None
    assert training_run._hub_id("smollm2:135m-instruct") == hub
    assert training_run._hub_id("Qwen/Qwen2.5-3B-Instruct") == "Qwen/Qwen2.5-3B-Instruct"
    assert training_run._hub_id("tiny:qwen2") is None

    mini = load_config(config_path("mini-brie"))
    assert mini.base_model == "smollm2:135m-instruct"
    out = tmp_path / "mini"
    shutil.copytree(smoke.out, out)
    training_run._point_adapter_at_base(out, mini)
    manifest = read_manifest(out)
    assert manifest is not None
    training_run._write_card(out, mini, manifest)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == hub
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == hub and "smollm2:" not in card.text


def test_checkpoint_dir_inside_the_output_folder_is_refused(tmp_path: Path) -> None:
    config = load_config(config_path("smoke"))
    inside = config.model_copy(update={"training": config.training.model_copy(
        update={"checkpoint_dir": str(tmp_path / "out" / "ckpt")})})
    with pytest.raises(InputError, match="inside the output folder"):
        train(inside, tmp_path / "out", show_progress=False)


def test_merged_copy_serves_like_any_model_folder(smoke: SmokeRun, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`transformers serve` reads config.json first, which an adapter folder lacks; the merged copy has one
    and answers exactly as base + adapter do (docs/scaling.md)."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM

    from brie_bench.local_server import model_folder
    from brie_bench.training.merge import main as merge_main

    monkeypatch.setenv("BRIE_BENCH_CACHE", str(smoke.base.parent.parent))
    with pytest.raises(ValueError):
        AutoConfig.from_pretrained(smoke.out)  # why an adapter folder cannot be served as it is
    merged = tmp_path / "merged"
    assert merge_main([str(smoke.out), str(merged)]) == 0  # the base found offline, from the manifest's id
    assert merge_main([str(smoke.out), str(merged)]) == 2  # never over an existing folder
    assert AutoConfig.from_pretrained(merged).model_type == "qwen2"
    assert Path(model_folder(str(merged))) == merged
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smoke.base), smoke.out)(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(merged)(ids).logits
    assert torch.allclose(tuned, plain, atol=1e-5)


def test_progress_is_plain_lines_when_not_on_a_terminal(smoke: SmokeRun) -> None:
    """Output sent to a log got nothing until the end; now a plain line every few steps."""
    lines = [line for line in smoke.output.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == [f"{i}/6" for i in range(1, 7)]  # 6 steps < 20 lines: each
    assert all("loss " in line and " elapsed " in line and " ETA " in line for line in lines)
    assert "\x1b[" not in smoke.output  # no colour codes or redraws in a log
