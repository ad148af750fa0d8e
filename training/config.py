"""The training config: a YAML file validated like a suite.

Defaults are the published Brie v2 3B recipe, so a config only has to say
what differs from it (see `configs/brie-v2-3b.yaml`, which spells every value
out for the record). Errors are `InputError`s that name the file, the field
path and the line, through the same `yamlload` helpers the suite loader uses,
so the CLI reports them in one line and exits 2.

Paths to data files and checkpoints are resolved against the config file's
folder, not the working directory: a config and its data travel together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from brie_bench.errors import InputError
from brie_bench.yamlload import LineIndex, format_loc, load_yaml, validation_error

#: The published Brie v2 recipe's base model.
DEFAULT_BASE_MODEL = "Qwen/Qwen2.5-3B-Instruct"

Scheduler = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSettings(_Strict):
    """LoRA hyperparameters; `target_modules: null` keeps PEFT's per-architecture default.

    For Qwen2 that default is q_proj and v_proj, which is what the published
    adapter trained (3,686,400 parameters on Qwen2.5-3B at r=16).
    """

    r: int = Field(default=16, ge=1, le=4096)
    alpha: int = Field(default=32, ge=1, le=1_000_000)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    bias: Literal["none", "all", "lora_only"] = "none"
    task_type: Literal["CAUSAL_LM"] = "CAUSAL_LM"
    #: A list of module names, "all-linear", or null (PEFT's default). Validated by hand, not as a
    #: pydantic union, so an error names the field rather than a union branch.
    target_modules: Any = None

    @field_validator("target_modules")
    @classmethod
    def _modules(cls, value: Any) -> list[str] | str | None:
        if value is None or value == "all-linear":
            return value
        if isinstance(value, list) and value and all(isinstance(m, str) and m.strip() for m in value):
            return value
        raise ValueError("target_modules must be a non-empty list of module names, 'all-linear' or null")


class DataSettings(_Strict):
    """Chat JSONL files. One file or a list; validation is optional."""

    train: list[str] = Field(min_length=1)
    validation: list[str] = Field(default_factory=list)

    @field_validator("train", "validation", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        if value is None:
            return []
        return value


class TrainingSettings(_Strict):
    """Optimiser, schedule and bookkeeping. Defaults: the published Brie v2 3B run."""

    epochs: float = Field(default=2, gt=0, le=10_000)
    #: Stop after this many optimizer steps instead of counting epochs (for quick trials).
    max_steps: int | None = Field(default=None, ge=1)
    per_device_batch_size: int = Field(default=2, ge=1, le=65_536)
    gradient_accumulation_steps: int = Field(default=4, ge=1, le=65_536)
    learning_rate: float = Field(default=2e-4, gt=0, lt=1)
    lr_scheduler: Scheduler = "linear"
    warmup_steps: int = Field(default=20, ge=0)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    max_length: int = Field(default=2048, ge=8, le=1_048_576)
    #: "auto": bf16 mixed precision where the accelerator supports it, fp32 elsewhere (CPU).
    bf16: Literal["auto", True, False] = "auto"
    #: Recompute activations in the backward pass (TRL's default); trades ~20% speed for memory.
    activation_checkpointing: bool = True
    #: Compute the loss on assistant turns only (TRL swaps in a training chat template when needed).
    assistant_only_loss: bool = False
    logging_steps: int = Field(default=10, ge=1)
    #: Evaluate every N optimizer steps; null evaluates once per epoch (needs data.validation).
    eval_steps: int | None = Field(default=None, ge=1)
    #: Save a checkpoint every N optimizer steps; null saves once per epoch.
    save_steps: int | None = Field(default=None, ge=1)
    save_total_limit: int | None = Field(default=2, ge=1)
    #: Where Trainer checkpoints go. null: the output folder's `checkpoints/`, removed once training
    #: ends, so the folder holds only what is uploaded; a path (relative to the config file): kept there.
    checkpoint_dir: str | None = Field(default=None, min_length=1)
    #: true: resume from the newest checkpoint (in checkpoint_dir, else the output folder); a path: from it.
    resume_from_checkpoint: Any = None
    seed: int = Field(default=42, ge=0, le=2**32 - 1)

    @field_validator("resume_from_checkpoint")
    @classmethod
    def _resume(cls, value: Any) -> bool | str | None:
        if value is None or isinstance(value, bool) or (isinstance(value, str) and value.strip()):
            return value
        raise ValueError("resume_from_checkpoint must be true, false, null or a checkpoint folder")

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step on one device."""
        return self.per_device_batch_size * self.gradient_accumulation_steps


class TrainConfig(_Strict):
    """A whole training config. `source` is the file it came from (None when built in code)."""

    base_model: str = Field(default=DEFAULT_BASE_MODEL, min_length=1)
    #: Hub revision (branch, tag or commit) of the base model; recorded in the manifest.
    revision: str | None = None
    data: DataSettings
    lora: LoraSettings = Field(default_factory=LoraSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    #: Where the adapter goes when the CLI is not given --output (relative to the config file).
    output_dir: str | None = None

    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        """The file this config was loaded from, if any."""
        return self._source

    def train_files(self) -> list[Path]:
        return [Path(p) for p in self.data.train]

    def validation_files(self) -> list[Path]:
        return [Path(p) for p in self.data.validation]


def load_config(path: str | Path) -> TrainConfig:
    """Load, validate and resolve a training config file. Raises InputError naming file, field and line."""
    data, index = load_yaml(path)
    return config_from_data(data, path=str(path), index=index)


def config_from_data(data: Any, *, path: str = "<config>", index: LineIndex | None = None,
                     base_dir: Path | None = None) -> TrainConfig:
    """Validate already-parsed config data; relative paths resolve against `base_dir` (default: the file's folder)."""
    index = index or LineIndex()
    if not isinstance(data, dict):
        raise InputError("a training config must be a mapping of keys to values", path=path, line=index.line_for(()))
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, path, index, model=TrainConfig) from None
    base = base_dir if base_dir is not None else (Path(path).parent if path != "<config>" else Path.cwd())
    resolved = _resolve_paths(config, base, path, index)
    _check_consistency(resolved, path, index)
    return resolved


def _resolve_paths(config: TrainConfig, base: Path, path: str, index: LineIndex) -> TrainConfig:
    def resolve(rel: str) -> str:
        p = Path(rel).expanduser()
        return str(p if p.is_absolute() else (base / p).resolve())

    for section in ("train", "validation"):
        for i, rel in enumerate(getattr(config.data, section)):
            full = Path(resolve(rel))
            loc = ("data", section, i)
            if not full.exists():
                raise InputError(f"data file not found: {full}", path=path, field=format_loc(loc),
                                 line=index.line_for(loc))
            if full.is_dir():
                raise InputError(f"expected a JSONL file, found a folder: {full}", path=path,
                                 field=format_loc(loc), line=index.line_for(loc))
    data = config.data.model_copy(update={
        "train": [resolve(p) for p in config.data.train],
        "validation": [resolve(p) for p in config.data.validation],
    })
    training = config.training
    if isinstance(training.resume_from_checkpoint, str):
        training = training.model_copy(update={"resume_from_checkpoint": resolve(training.resume_from_checkpoint)})
    if training.checkpoint_dir:
        training = training.model_copy(update={"checkpoint_dir": resolve(training.checkpoint_dir)})
    output_dir = resolve(config.output_dir) if config.output_dir else None
    resolved = config.model_copy(update={"data": data, "training": training, "output_dir": output_dir})
    resolved._source = path
    return resolved


def _check_consistency(config: TrainConfig, path: str, index: LineIndex) -> None:
    """Cross-field rules pydantic cannot express per field; each error points at the offending key."""
    t = config.training
    if t.eval_steps is not None and not config.data.validation:
        loc = ("training", "eval_steps")
        raise InputError("eval_steps needs validation data (set data.validation)", path=path,
                         field=format_loc(loc), line=index.line_for(loc))
    if isinstance(t.resume_from_checkpoint, str) and not Path(t.resume_from_checkpoint).is_dir():
        loc = ("training", "resume_from_checkpoint")
        raise InputError(f"checkpoint folder not found: {t.resume_from_checkpoint}", path=path,
                         field=format_loc(loc), line=index.line_for(loc))
    if len(set(config.data.train)) != len(config.data.train):
        loc = ("data", "train")
        raise InputError("the same file is listed twice", path=path, field=format_loc(loc),
                         line=index.line_for(loc))
    overlap = set(config.data.train) & set(config.data.validation)
    if overlap:
        loc = ("data", "validation")
        raise InputError(f"{sorted(overlap)[0]} is both training and validation data", path=path,
                         field=format_loc(loc), line=index.line_for(loc))


def with_data(config: TrainConfig, train: list[str] | None = None,
              validation: list[str] | None = None) -> TrainConfig:
    """`config` with its data files replaced (paths relative to the working directory), checked again.

    Lets a shipped recipe such as brie-v2-3b.yaml run on the researcher's own
    data: ``brie-bench train brie-v2-3b.yaml --train-file mine.jsonl``.
    """
    if not train and validation is None:
        return config
    data = config.model_dump(mode="json")
    if train:
        data["data"]["train"] = list(train)
    if validation is not None:
        data["data"]["validation"] = list(validation)
    updated = config_from_data(data, path=config.source or "<config>", base_dir=Path.cwd())
    return updated
