"""`train(config, output_dir) -> TrainResult`: LoRA SFT with TRL + PEFT, then the manifest.

Layout of the output folder (the adapter folder *is* the output folder, so
`--output DIR` is also what a suite names as the contender's adapter)::

    DIR/adapter_config.json, adapter_model.safetensors, tokenizer files
    DIR/README.md               the card (base_model: the Hub id where there is one)
    DIR/brie_manifest.json      provenance (see manifest.py)

and nothing else, so `hf upload` of DIR uploads only those. Trainer checkpoints
(with TRL's own cards, which name a cache folder and "None") go to
`training.checkpoint_dir` and are kept there, or, when that is null, to
DIR/checkpoints/checkpoint-N while training runs (a crashed run can resume
from them) and are removed once it ends.

Multi-GPU and multi-node runs go through `accelerate launch` (see
docs/training.md); this module only reads the world size the Trainer sees,
and only the main process writes the manifest and draws progress.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

from rich.console import Console

from brie_bench import atomic, envvars
from brie_bench.errors import InputError
from brie_bench.training.config import TrainConfig
from brie_bench.training.data import DataReport, check_data, to_records
from brie_bench.training.manifest import git_state, library_versions, write_manifest
from brie_bench.training.plan import StepPlan, plan_steps

CHECKPOINTS = "checkpoints"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass
class TrainResult:
    """What a finished run produced; `adapter_dir` loads with `PeftModel.from_pretrained`."""

    adapter_dir: Path
    manifest_path: Path
    plan: StepPlan
    steps: int
    #: The last logged training loss (what the curve ended at).
    final_train_loss: float | None
    #: The Trainer's mean training loss over the whole run.
    mean_train_loss: float | None
    final_eval_loss: float | None
    wall_time_s: float
    adapter_bytes: int
    trainable_parameters: int
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: False on the other processes of a multi-GPU run (they write nothing and print nothing).
    main_process: bool = True

    @property
    def output_dir(self) -> Path:
        return self.adapter_dir


def resolve_model_path(model_id: str, cache_dir: str | None = None) -> str:
    """A local folder for `tiny:` and real (`smollm2:`) ids, else the id itself (a Hub id or a local path)."""
    from brie_bench import real_models
    from brie_bench.testing import tiny

    if tiny.is_tiny(model_id):
        return str(tiny.resolve(model_id, cache_dir))
    if real_models.is_real(model_id):
        return str(real_models.resolve(model_id, cache_dir))
    return model_id


def exported_base_model(model_id: str) -> str:
    """The base model id that files leaving the project name: the Hub id of a built-in real model
    (`smollm2:135m-instruct` -> `HuggingFaceTB/SmolLM2-135M-Instruct`), else the id as given.

    `tiny:` ids have no Hub id (they are random models built at test time) and stay as they are.
    """
    from brie_bench import real_models

    return real_models.hub_id(model_id) or model_id


def checkpoint_folder(config: TrainConfig, out: Path) -> Path:
    """Where the Trainer writes checkpoints: `training.checkpoint_dir`, else DIR/checkpoints (temporary)."""
    chosen = config.training.checkpoint_dir
    return Path(chosen).expanduser().resolve() if chosen else out / CHECKPOINTS


def load_tokenizer(config: TrainConfig) -> Any:
    """The base model's tokenizer; it must have a chat template, because the data is chat."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(config.base_model), revision=config.revision)
    except InputError as exc:  # a real model id whose package is missing: keep its install command
        raise InputError(exc.detail, path=config.source, field="base_model") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the tokenizer of {config.base_model}: {_first_line(exc)}",
                         path=config.source, field="base_model") from None
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(f"the tokenizer of {config.base_model} has no chat template; chat data cannot be "
                         "formatted", path=config.source, field="base_model")
    return tokenizer


def inspect_data(config: TrainConfig, tokenizer: Any | None = None) -> DataReport:
    """Run every data check for `config` (token checks when a tokenizer is given); raise on structural errors."""
    report = check_data(config.data.train, config.data.validation, tokenizer=tokenizer,
                        max_length=config.training.max_length,
                        assistant_only_loss=config.training.assistant_only_loss)
    report.raise_for_problems()
    return report


def plan_for(config: TrainConfig, *, world_size: int = 1) -> tuple[StepPlan, DataReport]:
    """The step plan of `config` from its (checked) training data, without a tokenizer or model."""
    report = inspect_data(config)
    return plan_steps(len(report.train_examples), config.training, world_size=world_size), report


def use_bf16(config: TrainConfig) -> bool:
    """Resolve `bf16: auto`; refuse `bf16: true` where the hardware cannot do it."""
    import torch

    supported = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    wanted = config.training.bf16
    if wanted == "auto":
        return supported
    if wanted and not supported:
        raise InputError("bf16 is not supported on this machine (needs a CUDA GPU with bf16); use bf16: auto",
                         path=config.source, field="training.bf16")
    return bool(wanted)


def _check_output(config: TrainConfig, out: Path, overwrite: bool = False) -> Path | bool | None:
    """Refuse to write into a non-empty folder (unless `overwrite`); work out what to resume from.

    Resuming writes into the run's own folder, so it needs no `overwrite`.
    """
    from transformers.trainer_utils import get_last_checkpoint

    _refuse_links(config, out)
    resume = config.training.resume_from_checkpoint
    ckpt_dir = checkpoint_folder(config, out)
    if config.training.checkpoint_dir and ckpt_dir.is_relative_to(out):
        raise InputError(f"checkpoint_dir {ckpt_dir} is inside the output folder, which is uploaded as it is; "
                         "choose a folder outside it, or null to remove checkpoints once training ends",
                         path=config.source, field="training.checkpoint_dir")
    if resume is True:
        last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
        if last is None:
            raise InputError(f"resume_from_checkpoint: true, but {ckpt_dir} holds no checkpoint",
                             path=config.source, field="training.resume_from_checkpoint")
        return Path(last)
    if isinstance(resume, str):
        return Path(resume)
    if overwrite:
        return None
    if any((out / name).exists() for name in ("adapter_config.json", "brie_manifest.json")):
        raise InputError(f"{out} already holds a trained adapter; choose another --output, pass --overwrite, "
                         "or set training.resume_from_checkpoint to continue", path=config.source, field="output_dir")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder", path=config.source, field="output_dir")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"{out} is not empty: training would overwrite files there (tokenizer_config.json, "
                         "README.md, ...); choose an empty folder or pass --overwrite",
                         path=config.source, field="output_dir")
    return None


def _refuse_links(config: TrainConfig, out: Path) -> None:
    """Refuse an output folder holding a symbolic link anywhere (exit 2), before any time is spent training.

    With --overwrite or a resume, training writes into an existing folder, and the
    libraries (PEFT's README, the tokenizer, checkpoints) write through whatever
    link is there: a planted `README.md -> ~/.bashrc` would put the card outside the
    folder. Our own files go through `brie_bench.atomic`, which never follows one.
    """
    import os

    if not out.is_dir():
        return
    for folder, dirs, files in os.walk(out):  # followlinks=False: a linked folder is listed, not entered
        for name in sorted(dirs + files):
            path = Path(folder) / name
            if path.is_symlink():
                raise InputError(f"{path} is a symbolic link: training would write through it; remove it or "
                                 "choose another --output", path=config.source, field="output_dir")


def _check_assistant_only(config: TrainConfig, tokenizer: Any) -> None:
    """TRL needs {% generation %} markers for assistant-only loss; say so before loading a model."""
    if not config.training.assistant_only_loss:
        return
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return
    try:
        get_training_chat_template(tokenizer)
    except (ValueError, NotImplementedError):
        raise InputError("assistant_only_loss needs a chat template with {% generation %} markers, and TRL has "
                         f"no training template for the one of {config.base_model}", path=config.source,
                         field="training.assistant_only_loss") from None


def sft_config(config: TrainConfig, checkpoints: Path, *, bf16: bool, has_eval: bool) -> Any:
    """TRL's SFTConfig for `config` (every value explicit: TRL's defaults differ from Trainer's)."""
    from trl import SFTConfig

    t = config.training
    eval_strategy = "no" if not has_eval else ("steps" if t.eval_steps else "epoch")
    return SFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps is not None else -1,
        per_device_train_batch_size=t.per_device_batch_size,
        per_device_eval_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        max_length=t.max_length,
        bf16=bf16,
        fp16=False,
        activation_checkpointing=t.activation_checkpointing,
        assistant_only_loss=t.assistant_only_loss,
        packing=False,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        eval_strategy=eval_strategy,
        eval_steps=t.eval_steps,
        save_strategy="steps" if t.save_steps else "epoch",
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        data_seed=t.seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=_has_cuda(),
    )


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@contextmanager
def _quiet_library_bars() -> Iterator[None]:
    """Hide datasets'/transformers' tqdm bars while ours is drawn; restore the caller's settings after."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets_on = datasets.utils.logging.is_progress_bar_enabled()
    hf_on = hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_on:
            datasets.enable_progress_bars()
        if hf_on:
            hf_logging.enable_progress_bar()


@contextmanager
def _quiet_library_warnings() -> Iterator[None]:
    """Silence the library deprecations that Brie Bench's own code cannot fix, for the training only.

    PEFT (`PeftModel.__init__`) and TRL read `model.is_gradient_checkpointing`, which transformers
    deprecated in favour of `is_activation_checkpointing`: a FutureWarning per model, addressed to
    those libraries' authors, that told a user of `brie-bench train` nothing. Only that message
    is filtered; every other warning still shows.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def train(config: TrainConfig, output_dir: str | Path | None = None, *, console: Console | None = None,
          overwrite: bool = False,
          show_progress: bool = True) -> TrainResult:
    """Train a LoRA adapter as `config` says, write it and its manifest to `output_dir`, and report.

    Raises `InputError` for anything wrong with the config or data, before a
    model is loaded wherever that is possible.
    """
    with _quiet_library_bars(), _quiet_library_warnings():
        return _train(config, output_dir, console=console, show_progress=show_progress, overwrite=overwrite)


def _train(config: TrainConfig, output_dir: str | Path | None, *, console: Console | None, overwrite: bool = False,
           show_progress: bool) -> TrainResult:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, PrinterCallback, set_seed
    from trl import SFTTrainer

    from brie_bench.training.lora import lora_config, trainable_parameters
    from brie_bench.training.progress import RichProgressCallback

    console = console or Console(stderr=True)
    target = output_dir if output_dir is not None else config.output_dir
    if target is None:
        raise InputError("no output folder: pass --output DIR or set output_dir in the config",
                         path=config.source, field="output_dir")
    out = Path(target).expanduser().resolve()
    resume = _check_output(config, out, overwrite)
    started = datetime.now(UTC)
    clock = time.perf_counter()

    tokenizer = load_tokenizer(config)
    report = inspect_data(config, tokenizer)
    _check_assistant_only(config, tokenizer)
    bf16 = use_bf16(config)
    warnings = report.warnings()
    if envvars.rank() == 0:  # before a long run, not only in the summary
        for warning in warnings:
            console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)

    set_seed(config.training.seed)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            resolve_model_path(config.base_model), revision=config.revision,
            dtype=torch.bfloat16 if bf16 else torch.float32,
        )
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load {config.base_model}: {_first_line(exc)}", path=config.source,
                         field="base_model") from None
    train_ds = Dataset.from_list(to_records(report.train_examples))
    eval_ds = Dataset.from_list(to_records(report.validation_examples)) if report.validation else None
    progress = RichProgressCallback(console, show=show_progress)
    args = sft_config(config, checkpoint_folder(config, out), bf16=bf16, has_eval=eval_ds is not None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=lora_config(config.lora), callbacks=[progress])
    trainer.remove_callback(PrinterCallback)
    main = trainer.is_world_process_zero()
    plan = plan_steps(len(report.train_examples), config.training, world_size=trainer.args.world_size)
    prepared = len(trainer.train_dataset)
    if prepared != len(report.train_examples):
        warnings.append(f"TRL kept {prepared} of {len(report.train_examples)} training examples "
                        "(examples with no trainable token after truncation are dropped)")

    try:
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    finally:
        progress.close()
    eval_loss = progress.last("eval_loss")
    last_eval_step = max((e["step"] for e in progress.history if "eval_loss" in e), default=None)
    if eval_ds is not None and last_eval_step != trainer.state.global_step:
        eval_loss = trainer.evaluate().get("eval_loss")
    if progress.non_finite:
        warnings.append("a logged loss or gradient norm was NaN or infinite: training diverged")

    trainer.save_model(str(out))
    _keep_only_the_upload(out, config, main=trainer.is_world_process_zero())
    finished = datetime.now(UTC)
    wall = time.perf_counter() - clock
    trainable = trainable_parameters(trainer.model)
    result = TrainResult(
        adapter_dir=out, manifest_path=out / "brie_manifest.json", plan=plan, steps=trainer.state.global_step,
        final_train_loss=progress.last("loss"), mean_train_loss=_finite(output.training_loss),
        final_eval_loss=_finite(eval_loss), wall_time_s=wall, adapter_bytes=adapter_bytes(out),
        trainable_parameters=trainable, warnings=warnings, main_process=main,
    )
    if main:
        _point_adapter_at_base(out, config)
        _model_card_base_model(out, config)
        result.manifest = build_manifest(config, report, result, started=started, finished=finished, bf16=bf16,
                                         model=model, prepared_examples=prepared, history=progress.history,
                                         resumed_from=str(resume) if resume else None)
        write_manifest(out, result.manifest)
        _write_card(out, config, result.manifest)
    return result


def _weights_id(model_id: str) -> str | None:
    """For real model ids (`smollm2:...`): the package and file the weights were converted from."""
    from brie_bench import real_models

    return real_models.weights_id(model_id) if real_models.is_real(model_id) else None


def _hub_id(model_id: str) -> str | None:
    """The Hub id of `model_id`: mapped for built-in real ids, the id itself for a Hub-style id, else None."""
    from brie_bench import real_models
    from brie_bench.testing import tiny

    mapped = real_models.hub_id(model_id)
    if mapped or tiny.is_tiny(model_id) or real_models.is_real(model_id) or Path(model_id).expanduser().exists():
        return mapped
    return model_id


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _finite(value: Any) -> float | None:
    import math

    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def adapter_bytes(folder: Path) -> int:
    """Size of the adapter weights file (what the published "~14 MB" refers to)."""
    for name in ADAPTER_WEIGHTS:
        if (folder / name).is_file():
            return (folder / name).stat().st_size
    return 0


def _keep_only_the_upload(out: Path, config: TrainConfig, *, main: bool) -> None:
    """Leave DIR holding only what is uploaded: drop the temporary checkpoints and `training_args.bin`.

    `training_args.bin` is a pickle of TRL's arguments (it names local paths, and loading a pickle
    runs code); the manifest records the same settings as JSON. Checkpoints kept on purpose live in
    `training.checkpoint_dir`, outside DIR (`_check_output` refuses one inside).
    """
    import shutil

    if not main:
        return
    (out / "training_args.bin").unlink(missing_ok=True)
    if not config.training.checkpoint_dir:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)


def _point_adapter_at_base(out: Path, config: TrainConfig) -> None:
    """Record the base model's Hub id (never a local cache path or a Brie Bench-only id such as
    `smollm2:135m-instruct`) in adapter_config.json, so plain PEFT finds the base from the folder alone."""
    path = out / "adapter_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["base_model_name_or_path"] = exported_base_model(config.base_model)
    if config.revision:
        data["revision"] = config.revision
    atomic.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_card(out: Path, config: TrainConfig, manifest: dict[str, Any]) -> None:
    """Replace PEFT's auto-generated README (which names a local cache path) with a card the Hub reads."""
    from brie_bench.modelcard import training_card
    from brie_bench.training.manifest import MANIFEST_NAME

    text = training_card(base_model=exported_base_model(config.base_model), manifest=manifest, manifest_name=MANIFEST_NAME,
                         adapter_name=out.resolve().name)
    atomic.write_text(out / "README.md", text)  # replaces a file, never writes through a link


def _model_card_base_model(out: Path, config: TrainConfig) -> None:
    """Write the model *id* as `base_model` in the README front matter PEFT writes (not a local cache path).

    PEFT copies `base_model_name_or_path` as loaded, which for `tiny:`/local ids
    is a folder on this machine: it leaks a path and breaks the Hub's model tree.
    """
    path = out / "README.md"
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return
    end = text.find("\n---", 4)
    if end < 0:
        return
    front = text[4:end]
    local = resolve_model_path(config.base_model)
    if local != config.base_model:  # e.g. tags: [base_model:adapter:/home/.../tiny-qwen2]
        front = front.replace(local, exported_base_model(config.base_model))
    lines = front.split("\n")
    value = json.dumps(exported_base_model(config.base_model))  # a JSON string is a valid YAML scalar, quoted safely
    lines = [f"base_model: {value}" if line.startswith("base_model:") else line for line in lines]
    if not any(line.startswith("base_model:") for line in lines):
        lines.insert(0, f"base_model: {value}")
    atomic.write_text(path, "---\n" + "\n".join(lines) + text[end:])


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


def build_manifest(config: TrainConfig, report: DataReport, result: TrainResult, *, started: datetime,
                   finished: datetime, bf16: bool, model: Any, prepared_examples: int,
                   history: list[dict[str, Any]], resumed_from: str | None) -> dict[str, Any]:
    """Everything the report needs to say where an adapter came from."""
    def files(reports: list[Any]) -> list[dict[str, Any]]:
        return [{"path": f.path, "sha256": f.sha256, "bytes": f.bytes, "examples": f.example_count,
                 "duplicates": len(f.duplicates)} for f in reports]

    def tokens(stats: Any) -> dict[str, Any] | None:
        if stats is None:
            return None
        return {"total": stats.total, "longest": stats.longest, "mean": round(stats.mean, 1),
                "truncated": len(stats.truncated), "no_assistant_left": len(stats.no_assistant_left)}

    project = Path(config.source).resolve().parent if config.source else Path.cwd()
    return {
        "base_model": {
            "id": config.base_model,
            #: What the card and adapter_config.json name (None where the id has no Hub id, e.g. tiny:).
            "hub_id": _hub_id(config.base_model),
            "revision": config.revision,
            "resolved_commit": getattr(model.config, "_commit_hash", None),
            "weights": _weights_id(config.base_model),
        },
        "config": config.model_dump(mode="json"),
        "config_file": str(Path(config.source).resolve()) if config.source else None,
        "data": {
            "train": files(report.train),
            "validation": files(report.validation),
            "train_examples": len(report.train_examples),
            "train_examples_after_preparation": prepared_examples,
            "validation_examples": len(report.validation_examples),
            "validation_in_train": len(report.leaked),
            "role_counts": dict(report.role_counts()),
            "train_tokens": tokens(report.train_tokens),
            "validation_tokens": tokens(report.validation_tokens),
        },
        "libraries": library_versions(),
        "git": git_state(project),
        "hardware": {"device": _device(), "bf16": bf16, "world_size": result.plan.world_size},
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "wall_time_s": round(result.wall_time_s, 3),
        "resumed_from": resumed_from,
        "steps": {"planned": result.plan.total_steps, "completed": result.steps, "plan": result.plan.as_dict()},
        "losses": {
            "final_train": result.final_train_loss,
            "mean_train": result.mean_train_loss,
            "final_eval": result.final_eval_loss,
            "history": history,
        },
        "adapter": {
            "trainable_parameters": result.trainable_parameters,
            "file_bytes": result.adapter_bytes,
            "lora": config.lora.model_dump(mode="json"),
        },
        "warnings": result.warnings,
    }
