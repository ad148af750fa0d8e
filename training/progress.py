"""A rich progress display for training, fed by a transformers `TrainerCallback`.

Shows optimizer step, latest loss, learning rate and ETA on one line (on a
terminal; elsewhere, e.g. output sent to a log, a plain line every few steps:
a live display written to a file shows nothing until it ends), and
remembers every logged value so the summary and the manifest can report the
loss curve without parsing Trainer state files. Only the main process draws
(under `accelerate launch` every process runs the callback).
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback


#: Not on a terminal: about this many progress lines per run, and at least one a minute.
PLAIN_LINES = 20
PLAIN_EVERY_S = 60.0


class RichProgressCallback(TrainerCallback):
    """Draws step / loss / lr / ETA and keeps the log history (step, loss, eval_loss, learning_rate)."""

    def __init__(self, console: Console | None = None, *, show: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.show = show
        self.history: list[dict[str, Any]] = []
        #: Whether any logged loss/lr/grad norm was NaN or infinite (training diverged).
        self.non_finite = False
        self._progress: Progress | None = None
        self._task: Any = None
        self._loss: float | None = None
        self._lr: float | None = None
        self._eval_loss: float | None = None
        #: Plain-line mode (not a terminal): when training started, when the last line went out, and how often.
        self._plain_started: float | None = None
        self._plain_last = 0.0
        self._plain_every = 1
        self._plain_first = 0

    # -- helpers ---------------------------------------------------------------------
    def _fields(self) -> dict[str, str]:
        return {
            "loss": _num(self._loss),
            "lr": f"{self._lr:.2e}" if self._lr is not None else "-",
            "eval": f"  eval {_num(self._eval_loss)}" if self._eval_loss is not None else "",
        }

    # -- TrainerCallback -------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not (self.show and state.is_world_process_zero):
            return
        if not self.console.is_terminal:
            self._plain_started = self._plain_last = time.monotonic()
            self._plain_every = max(1, math.ceil(state.max_steps / PLAIN_LINES))
            self._plain_first = state.global_step
            return
        self._progress = Progress(
            TextColumn("[bold]step"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}{task.fields[eval]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=state.max_steps, completed=state.global_step,
                                             **self._fields())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=state.global_step, **self._fields())
        elif self._plain_started is not None:
            now, step = time.monotonic(), state.global_step
            if step % self._plain_every == 0 or step >= state.max_steps or now - self._plain_last >= PLAIN_EVERY_S:
                self._plain_line(step, state.max_steps, now)

    def _plain_line(self, step: int, total: int, now: float) -> None:
        """"step 3/21  loss 2.1234  lr 1.00e-03  elapsed 0:01:10  ETA 0:06:40": no colour, no redraw."""
        assert self._plain_started is not None
        elapsed = now - self._plain_started
        done = step - self._plain_first
        eta = "-" if done <= 0 else str(timedelta(seconds=round(elapsed / done * max(total - step, 0))))
        fields = self._fields()
        self.console.print(f"step {step}/{total}  loss {fields['loss']}  lr {fields['lr']}{fields['eval']}  "
                           f"elapsed {timedelta(seconds=round(elapsed))}  ETA {eta}", highlight=False, markup=False)
        self._plain_last = now

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        logs = logs or {}
        entry: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch}
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm", "train_loss"):
            value = logs.get(key)
            if isinstance(value, (int, float)):
                if math.isfinite(float(value)):
                    entry[key] = float(value)
                else:  # JSON cannot hold NaN; keep the fact, not the value
                    entry[key] = None
                    self.non_finite = True
        if len(entry) > 2:
            self.history.append(entry)
        self._loss = entry["loss"] if "loss" in entry else self._loss
        self._lr = entry["learning_rate"] if "learning_rate" in entry else self._lr
        self._eval_loss = entry["eval_loss"] if "eval_loss" in entry else self._eval_loss
        if self._progress is not None:
            self._progress.update(self._task, **self._fields())

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close(state.global_step)

    def close(self, completed: int | None = None) -> None:
        """Stop drawing (also called when training fails, so the terminal is left clean)."""
        if self._progress is not None:
            if completed is not None:
                self._progress.update(self._task, completed=completed, **self._fields())
            self._progress.stop()
            self._progress = None

    # -- results ---------------------------------------------------------------------
    def last(self, key: str) -> float | None:
        """The most recent logged value of `key` (e.g. "loss", "eval_loss")."""
        for entry in reversed(self.history):
            if key in entry:
                return entry[key]
        return None


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
