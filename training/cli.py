"""`brie-bench train CONFIG`: the click command the main CLI group adds.

Three modes, cheapest first, so a researcher can check everything before a
GPU is involved: ``--plan`` (step arithmetic, reads only the data),
``--check-data`` (every data check, loads only the tokenizer), and the run
itself. Bad input raises `InputError`; the group prints it on one line and
exits 2.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from brie_bench.errors import InputError
from brie_bench.textsafe import printable, safe_text
from brie_bench.training.config import TrainConfig, load_config, with_data
from brie_bench.training.data import DataReport, FileReport, TokenStats, add_token_stats
from brie_bench.training.data import check_data as run_checks
from brie_bench.training.plan import StepPlan, plan_steps
from brie_bench.training.run import TrainResult, inspect_data, load_tokenizer, train

#: How many structural problems `--check-data` lists before raising the first.
SHOW_PROBLEMS = 20


def markup_safe(value: object) -> str:
    """Data for a line that also carries rich markup: controls shown, brackets escaped (`[/x]` is text)."""
    return escape(printable(value))


def _world_size(option: int | None) -> int:
    """--num-processes, else $WORLD_SIZE (set by `accelerate launch`), else 1."""
    if option:
        return option
    from brie_bench import envvars

    return envvars.world_size()  # a bad value is one line naming WORLD_SIZE (exit 2), not a silent 1


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def print_plan(console: Console, config: TrainConfig, plan: StepPlan) -> None:
    console.print(f"[bold]Plan[/bold] for {markup_safe(config.base_model)} (no training)")
    for line in plan.lines():
        console.print(safe_text("  " + line))


def _display(path: str) -> str:
    """A path relative to the working directory where that is shorter."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _file_row(table: Table, f: FileReport, kind: str) -> None:
    table.add_row(kind, safe_text(_display(f.path)), str(f.example_count), str(len(f.duplicates)),
                  safe_text(", ".join(f"{role} {n}" for role, n in sorted(f.role_counts.items()))))


def _token_line(kind: str, stats: TokenStats | None) -> str | None:
    if stats is None:
        return None
    line = (f"{kind}: {stats.total:,} tokens, mean {stats.mean:.0f}, longest {stats.longest:,}; "
            f"{len(stats.truncated)} of {len(stats.lengths)} over max_length {stats.max_length:,}")
    if stats.no_assistant_left:
        line += f"; {len(stats.no_assistant_left)} lose every assistant token"
    return line


def print_data_report(console: Console, report: DataReport) -> None:
    """The `--check-data` summary: examples, tokens, truncations, roles, then warnings and problems."""
    table = Table(title="Data check", show_lines=False)
    for col in ("set", "file", "examples", "duplicates", "roles"):
        table.add_column(col, overflow="fold")
    for f in report.train:
        _file_row(table, f, "train")
    for f in report.validation:
        _file_row(table, f, "validation")
    console.print(table)
    roles = report.role_counts()
    console.print(safe_text(f"examples: {len(report.train_examples):,} train, {len(report.validation_examples):,} "
                            f"validation; roles: " + ", ".join(f"{r} {roles.get(r, 0):,}"
                                                               for r in ("system", "user", "assistant"))))
    for line in (_token_line("train", report.train_tokens), _token_line("validation", report.validation_tokens)):
        if line:
            console.print(safe_text(line))
    if report.leaked:
        console.print(f"[yellow]{len(report.leaked)} validation examples also appear in the training data[/yellow]")
    for warning in report.warnings():
        console.print(f"[yellow]warning[/yellow] {markup_safe(warning)}", highlight=False)
    for problem in report.problems[:SHOW_PROBLEMS]:
        console.print(f"[red]error[/red] {markup_safe(problem)}", highlight=False)
    if report.problem_count > SHOW_PROBLEMS:
        console.print(f"[red]... and {report.problem_count - SHOW_PROBLEMS} more errors[/red]")


def print_summary(console: Console, result: TrainResult) -> None:
    table = Table(title="Training summary", show_header=False)
    table.add_column("what")
    table.add_column("value")

    def loss(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    table.add_row("steps", f"{result.steps:,} (planned {result.plan.total_steps:,})")
    table.add_row("final train loss", f"{loss(result.final_train_loss)} (mean {loss(result.mean_train_loss)})")
    table.add_row("final eval loss", loss(result.final_eval_loss))
    table.add_row("wall time", f"{result.wall_time_s:.1f} s")
    table.add_row("adapter", f"{human_bytes(result.adapter_bytes)}, {result.trainable_parameters:,} parameters")
    table.add_row("output", safe_text(result.adapter_dir))
    table.add_row("manifest", safe_text(result.manifest_path))
    console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning[/yellow] {markup_safe(warning)}", highlight=False)


@click.command("train")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the adapter, its manifest and checkpoints (default: output_dir in the config).")
@click.option("--check-data", is_flag=True, help="Only check the data and print a summary; do not train.")
@click.option("--plan", "plan_only", is_flag=True, help="Only print the optimizer step arithmetic; do not train.")
@click.option("--train-file", multiple=True, type=click.Path(dir_okay=False),
              help="Train on this JSONL file instead of the config's data.train (repeatable).")
@click.option("--validation-file", multiple=True, type=click.Path(dir_okay=False),
              help="Validate on this JSONL file instead of the config's data.validation (repeatable).")
@click.option("--num-processes", type=click.IntRange(min=1), default=None,
              help="Data-parallel processes to plan for (default: $WORLD_SIZE or 1).")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --output folder, replacing its files.")
def train_command(config: Path, output: Path | None, check_data: bool, plan_only: bool,
                  train_file: tuple[str, ...], validation_file: tuple[str, ...],
                  num_processes: int | None, overwrite: bool) -> None:
    """Fine-tune a LoRA adapter on chat JSONL data as CONFIG describes (TRL + PEFT).

    Several GPUs: `accelerate launch -m brie_bench.training CONFIG ...` (see docs/training.md).
    """
    cfg = with_data(load_config(config), list(train_file) or None, list(validation_file) or None)
    out = Console()
    if check_data or plan_only:
        report: DataReport | None = None
        if check_data:
            report = run_checks(cfg.data.train, cfg.data.validation)
            if not report.problem_count:
                add_token_stats(report, load_tokenizer(cfg), cfg.training.max_length,
                                assistant_only_loss=cfg.training.assistant_only_loss)
            print_data_report(out, report)
            report.raise_for_problems()
        if plan_only:
            report = report or inspect_data(cfg)
            print_plan(out, cfg, plan_steps(len(report.train_examples), cfg.training,
                                            world_size=_world_size(num_processes)))
        return
    if num_processes:
        raise InputError("--num-processes only applies to --plan; launch with `accelerate launch` to train on "
                         "several GPUs")
    result = train(cfg, output, console=Console(stderr=True), overwrite=overwrite)
    if result.main_process:
        print_summary(out, result)


def run_standalone(command: click.Command, argv: list[str] | None, prog_name: str) -> int:
    """Run a click command outside the `brie-bench` group with the group's exit rules.

    `python -m brie_bench.training` (for `accelerate launch`) and `python -m
    brie_bench.training.merge` have no group around them: bad input is still one line
    and exit 2, a click usage error its own code, and Ctrl-C "aborted" with exit 1.
    """
    try:
        command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    return 0
