"""Tiny random models: deterministic, atomic, offline, and loadable like real checkpoints."""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from pathlib import Path

import pytest

from brie_bench.testing import tiny
from brie_bench.errors import InputError


def _file_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_is_tiny_and_unknown_ids() -> None:
    assert tiny.TINY_IDS == ("tiny:qwen2", "tiny:qwen2-judge", "tiny:qwen2-lora")
    assert tiny.is_tiny("tiny:qwen2") and not tiny.is_tiny("Qwen/Qwen2.5-3B-Instruct")
    with pytest.raises(InputError, match="unknown tiny model 'tiny:gpt9'"):
        tiny.resolve("tiny:gpt9")
    with pytest.raises(InputError, match="not a tiny model id"):
        tiny.resolve("Qwen/Qwen2.5-3B-Instruct")


def test_cache_location_follows_env(tiny_cache: Path, tiny_base_path: Path, tiny_adapter_path: Path,
                                    tiny_judge_path: Path) -> None:
    assert os.environ["BRIE_BENCH_CACHE"] == str(tiny_cache)
    assert tiny.cache_root() == tiny_cache
    assert tiny_base_path == tiny_cache / "tiny" / "qwen2-v1"
    assert tiny.resolve("tiny:qwen2") == tiny_base_path  # no cache_dir argument: the env var
    # Built atomically: nothing but finished folders is left behind.
    assert sorted(p.name for p in (tiny_cache / "tiny").iterdir()) == [
        "qwen2-judge-v1", "qwen2-lora-v1", "qwen2-v1"]


def test_resolve_reuses_a_finished_build(tiny_base_path: Path) -> None:
    weights = tiny_base_path / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert tiny.resolve("tiny:qwen2", tiny_base_path.parent.parent) == tiny_base_path
    assert weights.stat().st_mtime_ns == before


def test_builds_are_deterministic_across_cache_dirs(tmp_path: Path, tiny_base_path: Path,
                                                    tiny_adapter_path: Path) -> None:
    other_adapter = tiny.resolve("tiny:qwen2-lora", tmp_path)  # builds its base into tmp_path too
    other_base = tiny.resolve("tiny:qwen2", tmp_path)
    assert other_base != tiny_base_path
    assert _file_hashes(other_base) == _file_hashes(tiny_base_path)
    assert _file_hashes(other_adapter) == _file_hashes(tiny_adapter_path)
    assert "model.safetensors" in _file_hashes(other_base)


def test_judge_model_has_other_weights(tiny_base_path: Path, tiny_judge_path: Path) -> None:
    base, judge = _file_hashes(tiny_base_path), _file_hashes(tiny_judge_path)
    assert base["model.safetensors"] != judge["model.safetensors"]
    assert base["tokenizer.json"] == judge["tokenizer.json"]


TEXTS = [
    "Winner: A",
    "Response B is better; it's a tie?  No!\nThe unexamined life isn't worth living.",
    "cafe\u0301 and na\u00efve thoughts \u2014 1234 \u2026 \u00c5ngstr\u00f6m",  # needs NFC
    "   leading spaces, tabs\tand\r\nnewlines\n\n",
    "\u4e2d\u6587 and emoji \U0001f9c0 are bytes we never trained on",
]


def test_tokenizer_ids_survive_save_and_reload(tiny_base_path: Path) -> None:
    from transformers import AutoTokenizer

    trained = tiny.build_tokenizer()
    loaded = AutoTokenizer.from_pretrained(tiny_base_path)
    assert type(loaded).__name__ == "Qwen2Tokenizer"  # the code path real Qwen checkpoints take
    for text in TEXTS:
        ids = trained.encode(text).ids
        assert loaded(text, add_special_tokens=False)["input_ids"] == ids, text
        assert loaded.decode(ids) == unicodedata.normalize("NFC", text)


def test_tokenizer_vocabulary_and_special_tokens(tiny_base_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base_path)
    assert 1000 <= len(tok) <= 2000
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    for special in tiny.SPECIAL_TOKENS:
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    for word in ("Winner", "Response", " tie", " A", "A", "B"):
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word
    assert len(tok("Winner: A", add_special_tokens=False)["input_ids"]) == 3


def test_chat_template_is_chatml(tiny_base_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base_path)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is being?"},
                {"role": "assistant", "content": "A question."}]
    assert tok.apply_chat_template(messages, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is being?<|im_end|>\n"
        "<|im_start|>assistant\nA question.<|im_end|>\n")
    prompt = tok.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nWhat is being?<|im_end|>\n<|im_start|>assistant\n")
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 3
    assert ids.count(tok.eos_token_id) == 2


def test_model_loads_offline_with_the_documented_shape(tiny_base_path: Path) -> None:
    import huggingface_hub.constants
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert huggingface_hub.constants.HF_HUB_OFFLINE  # the whole session is offline
    model = AutoModelForCausalLM.from_pretrained(tiny_base_path)
    cfg = model.config
    assert (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads,
            cfg.num_key_value_heads, cfg.intermediate_size) == ("qwen2", 64, 2, 4, 2, 128)
    tok = AutoTokenizer.from_pretrained(tiny_base_path)
    assert cfg.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == [tok.eos_token_id, tok.pad_token_id]
    with torch.no_grad():
        logits = model(**tok(["Winner: A"], return_tensors="pt")).logits
    assert logits.shape == (1, 3, len(tok)) and torch.isfinite(logits).all()


def test_lora_adapter_is_random_and_nonzero(tiny_adapter_path: Path) -> None:
    from safetensors.torch import load_file

    config = json.loads((tiny_adapter_path / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["peft_type"] == "LORA"
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    assert config["base_model_name_or_path"] == "tiny:qwen2"  # never an absolute cache path
    weights = load_file(tiny_adapter_path / "adapter_model.safetensors")
    b_weights = [t for name, t in weights.items() if "lora_B" in name]
    assert len(b_weights) == 4  # q_proj and v_proj in each of 2 layers
    assert all(t.abs().sum() > 0 for t in b_weights)  # PEFT's default B=0 would be a no-op


def test_build_random_qwen2_other_shapes(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    path = tiny.build_random_qwen2(tmp_path / "m", hidden=32, layers=1, heads=2, kv_heads=1,
                                   intermediate=48, vocab=2048, seed=5)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size) == (32, 1, 2048)
    again = tiny.build_random_qwen2(tmp_path / "m2", hidden=32, layers=1, heads=2, kv_heads=1,
                                    intermediate=48, vocab=2048, seed=5)
    other = AutoModelForCausalLM.from_pretrained(again)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        tiny.build_random_qwen2(tmp_path / "bad", vocab=100)


def test_cache_root_honours_xdg_cache_home(tmp_path, monkeypatch) -> None:
    """$BRIE_BENCH_CACHE first, then $XDG_CACHE_HOME/brie-bench, then ~/.cache/brie-bench."""
    monkeypatch.delenv("BRIE_BENCH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tiny.cache_root() == tmp_path / "xdg" / "brie-bench"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid under the spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tiny.cache_root() == tmp_path / "home" / ".cache" / "brie-bench"
    monkeypatch.setenv("BRIE_BENCH_CACHE", str(tmp_path / "mine"))
    assert tiny.cache_root() == tmp_path / "mine"
