"""LoRA supervised fine-tuning (TRL + PEFT) that produces the adapters Brie Bench evaluates.

Installed as `brie_bench.training`. Importing it is cheap: each public name
imports its submodule on first use, and torch, transformers, TRL and PEFT load
only when a run, a tokenizer or a size check needs them.

Public API::

    load_config(path) -> TrainConfig          # YAML, validated like suites (InputError, exit 2)
    check_data(train, validation, ...) -> DataReport
    plan_steps(examples, training, world_size=1) -> StepPlan
    train(config, output_dir) -> TrainResult  # adapter + brie_manifest.json
    read_manifest(adapter_dir) -> dict | None
    adapter_parameter_count(architecture, lora) -> int
"""

from __future__ import annotations

import importlib
from pathlib import Path as _Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brie_bench.training.config import (
        DataSettings,
        LoraSettings,
        TrainConfig,
        TrainingSettings,
        config_from_data,
        load_config,
        with_data,
    )
    from brie_bench.training.data import DataReport, check_data
    from brie_bench.training.lora import adapter_parameter_count, lora_config
    from brie_bench.training.manifest import MANIFEST_NAME, read_manifest
    from brie_bench.training.plan import StepPlan, plan_steps
    from brie_bench.training.run import TrainResult, plan_for, train

#: Where each public name lives. The submodules import on first use (PEP 562), so that finding
#: `brie_bench.training.cli` for `brie-bench --help` does not build the pydantic config models.
_EXPORTS = {
    "DataSettings": "config", "LoraSettings": "config", "TrainConfig": "config", "TrainingSettings": "config",
    "config_from_data": "config", "load_config": "config", "with_data": "config",
    "DataReport": "data", "check_data": "data",
    "adapter_parameter_count": "lora", "lora_config": "lora",
    "MANIFEST_NAME": "manifest", "read_manifest": "manifest",
    "StepPlan": "plan", "plan_steps": "plan",
    "TrainResult": "run", "plan_for": "run", "train": "run",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "DataSettings", "LoraSettings", "TrainConfig", "TrainingSettings", "config_from_data", "load_config",
    "with_data", "DataReport", "check_data", "adapter_parameter_count", "lora_config", "MANIFEST_NAME",
    "read_manifest", "StepPlan", "plan_steps", "TrainResult", "plan_for", "train", "CONFIGS_DIR",
    "config_path",
]

#: The shipped configs (brie-v2-3b.yaml, brie-v2-0.5b.yaml, smoke.yaml).
CONFIGS_DIR = _Path(__file__).parent / "configs"


def config_path(name: str) -> _Path:
    """The path of a shipped config by name, e.g. "smoke" or "brie-v2-3b"."""
    return CONFIGS_DIR / (name if name.endswith(".yaml") else name + ".yaml")
