"""Step arithmetic: how many optimizer steps a config makes, without training.

This mirrors `transformers.Trainer.set_initial_training_values` (and how
Accelerate shards batches across processes) so that `brie-bench train
--plan` can tell the researcher, before any GPU time, that the published
recipe (1,153 examples, 2 epochs, batch 2 x accumulation 4) makes 290
steps. The test suite checks this function against a real Trainer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from brie_bench.training.config import TrainingSettings


@dataclass(frozen=True)
class StepPlan:
    """Every number between "N examples" and "S optimizer steps"."""

    examples: int
    epochs: float
    per_device_batch_size: int
    gradient_accumulation_steps: int
    world_size: int
    #: Examples per optimizer step across all processes.
    effective_batch_size: int
    #: Batches one process sees per epoch (the last one may be short).
    batches_per_epoch: int
    #: Optimizer steps per epoch; a trailing partial accumulation still makes a step.
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    #: True when `max_steps` set the total instead of the epoch count.
    capped_by_max_steps: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The arithmetic in words, one step per line, for `--plan`."""
        world = f" x {self.world_size} processes" if self.world_size > 1 else ""
        out = [
            f"examples                 {self.examples:,}",
            f"effective batch          {self.per_device_batch_size} per device x "
            f"{self.gradient_accumulation_steps} accumulation{world} = {self.effective_batch_size}",
            f"batches per epoch        ceil({self.examples:,} / {self.per_device_batch_size * self.world_size})"
            f" = {self.batches_per_epoch:,} per process",
            f"steps per epoch          ceil({self.batches_per_epoch:,} / {self.gradient_accumulation_steps})"
            f" = {self.steps_per_epoch:,}",
        ]
        if self.capped_by_max_steps:
            out.append(f"optimizer steps          {self.total_steps:,} (max_steps)")
        else:
            out.append(f"optimizer steps          ceil({_fmt(self.epochs)} epochs x {self.steps_per_epoch:,})"
                       f" = {self.total_steps:,}")
        out.append(f"warmup steps             {self.warmup_steps:,}")
        if self.warmup_steps >= self.total_steps:
            out.append(f"note: warmup ({self.warmup_steps:,}) does not end before training does "
                       f"({self.total_steps:,} steps); the learning rate never reaches its peak")
        return out


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def plan_steps(examples: int, training: TrainingSettings, *, world_size: int = 1) -> StepPlan:
    """The optimizer step count for `examples` training examples under `training` settings.

    `world_size` is the number of data-parallel processes (`accelerate launch
    --num_processes`): Accelerate splits each global batch list evenly across
    processes, so one process sees ceil(ceil(N / batch) / world) batches.
    """
    if examples < 1:
        raise ValueError("a plan needs at least one training example")
    if world_size < 1:
        raise ValueError("world_size must be at least 1")
    batch = training.per_device_batch_size
    accum = training.gradient_accumulation_steps
    batches = math.ceil(examples / (batch * world_size))  # == ceil(ceil(N / batch) / world)
    per_epoch = max(batches // accum + int(batches % accum > 0), 1)
    capped = training.max_steps is not None
    total = training.max_steps if capped else math.ceil(training.epochs * per_epoch)
    return StepPlan(
        examples=examples,
        epochs=training.epochs,
        per_device_batch_size=batch,
        gradient_accumulation_steps=accum,
        world_size=world_size,
        effective_batch_size=batch * accum * world_size,
        batches_per_epoch=batches,
        steps_per_epoch=per_epoch,
        total_steps=int(total),
        warmup_steps=training.warmup_steps,
        capped_by_max_steps=capped,
    )
