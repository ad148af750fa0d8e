"""LoRA configuration, and adapter sizes computed without any weights.

`adapter_parameter_count` builds a model's *architecture* on PyTorch's meta
device (no memory, no download) and applies the LoRA config with PEFT. The
result is the number the real run will report, so the test suite can check
that the shipped defaults reproduce the published adapter (3,686,400
parameters on Qwen2.5-3B) on a laptop.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Mapping

from brie_bench.training.config import LoraSettings


def lora_config(settings: LoraSettings) -> Any:
    """A `peft.LoraConfig` from the config's `lora` section (PEFT picks target modules when unset)."""
    from peft import LoraConfig, TaskType

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        bias=settings.bias,
        task_type=TaskType[settings.task_type],
        target_modules=settings.target_modules,
    )


def trainable_parameters(model: Any) -> int:
    """Parameters that receive gradients (for a PEFT model: the adapter)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def adapter_parameter_count(architecture: Any, settings: LoraSettings | None = None) -> int:
    """Trainable parameters LoRA adds to `architecture`, built on the meta device.

    `architecture` is a `transformers.PretrainedConfig` or a mapping of its
    values (it must include `model_type`, e.g. "qwen2").
    """
    import torch
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

    if isinstance(architecture, PretrainedConfig):
        config = architecture
    elif isinstance(architecture, Mapping):
        values = dict(architecture)
        model_type = values.pop("model_type")
        config = AutoConfig.for_model(model_type, **values)
    else:
        raise TypeError("architecture must be a PretrainedConfig or a mapping with model_type")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
        peft_model = get_peft_model(model, lora_config(settings or LoraSettings()))
    return trainable_parameters(peft_model)
