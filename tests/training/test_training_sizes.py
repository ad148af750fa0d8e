"""Adapter sizes as a check on correctness, computed on the meta device (no weights, no download).

If the shipped LoRA defaults (r=16, PEFT's default q_proj/v_proj targets)
drifted, the adapter would no longer be the published one; these numbers
are the published adapter's parameter counts.
"""

from __future__ import annotations

import pytest

from brie_bench.training import LoraSettings, adapter_parameter_count, config_path, load_config

QWEN25_3B = dict(model_type="qwen2", hidden_size=2048, num_hidden_layers=36, num_attention_heads=16,
                 num_key_value_heads=2, intermediate_size=11008, vocab_size=151936, tie_word_embeddings=True)
QWEN25_05B = dict(model_type="qwen2", hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True)


@pytest.mark.parametrize("name, architecture, expected", [
    ("brie-v2-3b", QWEN25_3B, 3_686_400),
    ("brie-v2-0.5b", QWEN25_05B, 1_081_344),
])
def test_shipped_lora_config_gives_the_published_adapter_size(name: str, architecture: dict,
                                                              expected: int) -> None:
    lora = load_config(config_path(name)).lora
    assert adapter_parameter_count(architecture, lora) == expected


def test_count_follows_the_formula_and_reacts_to_settings() -> None:
    """r x (in + out) per adapted projection: q (hidden -> hidden) and v (hidden -> kv_heads x head_dim)."""
    hidden, layers, heads, kv = 2048, 36, 16, 2
    head_dim = hidden // heads
    per_layer = 16 * (hidden + hidden) + 16 * (hidden + kv * head_dim)
    assert per_layer * layers == 3_686_400
    assert adapter_parameter_count(QWEN25_3B, LoraSettings(r=8)) == 3_686_400 // 2
    assert adapter_parameter_count(QWEN25_3B, LoraSettings(target_modules=["q_proj"])) == 16 * 2 * hidden * layers
    # The fp32 adapter file of the published run: about 14.7 MB of weights.
    assert 3_686_400 * 4 == 14_745_600
