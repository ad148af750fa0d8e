"""Click commands `report`, `export` and `import legacy`; brie_bench.cli adds them to the `brie-bench` group.

This module does not import brie_bench.cli at load time: brie_bench.cli imports
*this* module while it is being built, and a cycle would leave the commands
unregistered. The options come from brie_bench.cli_options (which imports
neither), and the root's --db is resolved lazily.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from brie_bench.cli import err_console, out_console
from brie_bench.cli_options import common_options
from brie_bench.errors import InputError
from brie_bench.gcpause import collector_paused
from brie_bench.textsafe import printable, safe_text

if TYPE_CHECKING:
    from brie_bench.report.schema import Report

DEFAULT_REPORT_DIR = "reports"
#: What a run id may hold before it becomes part of a file name (ids are made as 20260101-120000-ab12cd).
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
FOLLOW_SYMLINKS_HELP = "Write an output path that is a symbolic link to the file it points to (else refused)."


def _db(ctx: click.Context, db_opt: str | None, plugins_dir_opt: str | None, *, must_exist: bool = True) -> str:
    from brie_bench.cli import resolve_common

    db, _ = resolve_common(ctx, db_opt, plugins_dir_opt)
    from brie_bench.store_api import target_missing

    if must_exist and target_missing(db):
        raise InputError("database not found (run `brie-bench run SUITE` first)", path=db)
    return db


def checked_run_id(run_id: Any, db: str | None = None) -> str:
    """A run id read from a database, refused (one line, exit 2) unless it is made of safe characters.

    Report file names are built from run ids; a hostile database could hold
    `../../../tmp/x` and make `report --html` write outside `reports/`.
    """
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise InputError(f"the database holds an invalid run id {printable(repr(run_id))[:120]} "
                         "(only letters, digits, '-' and '_' are allowed): refusing to use it", path=db)
    return run_id


def _split_target(value: str | None, suffixes: tuple[str, ...], runs: list[str]) -> str | None:
    """An optional-value flag's value: a path when it looks like one, else a RUN id click mistook for the value.

    `brie-bench report --html RUN` would otherwise write a file named after the run.
    Returns "" for "no path given" and None when the flag was not used.
    """
    if value is None or value == "":
        return value
    if value.lower().endswith(suffixes) or os.sep in value or Path(value).is_dir():
        return value
    runs.append(value)
    return ""


def _emit(path: str, text: str, *, db: str, follow_symlinks: bool) -> None:
    """Write `text` to `path`, or to stdout when the flag was given without a path."""
    if path:
        _write_text(path, text, db=db, follow_symlinks=follow_symlinks)
    else:
        sys.stdout.write(text)


def _write_text(path: str, text: str, *, db: str, follow_symlinks: bool) -> None:
    """Write one output file atomically (brie_bench.atomic): whole or not at all, never over `db` or through a link."""
    from brie_bench.atomic import write_text

    try:
        write_text(path, text, db=db, follow_symlinks=follow_symlinks)
    except OSError as exc:
        raise InputError(f"cannot write file: {exc.strerror or exc}", path=path) from None
    err_console().print(safe_text(f"wrote {path}"))


def _check_targets(paths: list[str | None], *, db: str, follow_symlinks: bool) -> None:
    """Refuse a link or the database as an output before anything is rendered or written (exit 2)."""
    from brie_bench.atomic import check_target

    for path in paths:
        if path:
            check_target(path, db=db, follow_symlinks=follow_symlinks)


@click.command("report")
@click.argument("runs", nargs=-1, metavar="[RUN] [RUN_B]")
@click.option("--html", "html_opt", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="Self-contained HTML report (default path: reports/<run-id>.html).")
@click.option("--markdown", "md_opt", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="Markdown tables for a model card (stdout unless PATH ends in .md).")
@click.option("--json", "json_opt", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="Every figure as JSON, schema in docs/report-schema.md (stdout unless PATH ends in .json).")
@click.option("--model-index", is_flag=True, help="Add the Hugging Face model-index YAML block to --markdown.")
@click.option("--model-name", default=None, help="Model name for --model-index (default: the candidate's name).")
@click.option("--model-card", "card_opt", default=None, metavar="PATH",
              help="Merge this run's results into a model card (README.md) in place: its model-index and the "
                   "marked Brie Bench section; created from a small template if missing.")
@click.option("--candidate", default=None, help="Which candidate a --model-card describes, when a run has several.")
@click.option("--follow-symlinks", is_flag=True, help=FOLLOW_SYMLINKS_HELP)
@common_options
@click.pass_context
# The whole command, so the collector runs again only once the report's objects are freed (a
# pause inside, in load_run or build_report_from_data, would be followed by a pass over them all).
@collector_paused()
def report_command(ctx: click.Context, runs: tuple[str, ...], html_opt: str | None, md_opt: str | None,
                   json_opt: str | None, model_index: bool, model_name: str | None, card_opt: str | None,
                   candidate: str | None, follow_symlinks: bool, db_opt: str | None,
                   plugins_dir_opt: str | None) -> None:
    """Report a run (default: the latest); with two runs, compare them side by side.

    With no format flag, prints tables. Use --html=PATH (or put RUN first) when the
    path could be mistaken for a run id.
    """
    # Each output format imports its renderer only when asked for (jinja2 is for --html alone).
    from brie_bench.report.model import build_report_from_data
    from brie_bench.report.rows import load_run
    from brie_bench.store import Store

    run_ids = list(runs)
    html_path = _split_target(html_opt, (".html", ".htm"), run_ids)
    md_path = _split_target(md_opt, (".md", ".markdown"), run_ids)
    json_path = _split_target(json_opt, (".json",), run_ids)
    if model_index and md_path is None:
        md_path = ""
    if len(run_ids) > 2:
        raise InputError(f"report takes at most two runs, got {len(run_ids)}: {' '.join(run_ids)}")
    db = _db(ctx, db_opt, plugins_dir_opt)
    follow = follow_symlinks
    html_target = html_path if html_path and not Path(html_path).is_dir() else None
    _check_targets([html_target, md_path, json_path, card_opt], db=db, follow_symlinks=follow)
    with Store(db, readonly=True) as store:
        if len(run_ids) == 2:
            _compare(store, run_ids, html_path, md_path, json_path, db=db, follow_symlinks=follow)
            return
        # The judges' own answers, and every answer's text, are read only for the HTML list of comparisons:
        # otherwise a text is read when the report names its comparison, so the report is built here.
        data = load_run(store, run_ids[0] if run_ids else None, texts=html_path is not None, lazy=html_path is None)
        checked_run_id(data.run.id, db)
        report = build_report_from_data(data)
    if html_path is not None:
        from brie_bench.report.html import write_html

        target = Path(html_path or DEFAULT_REPORT_DIR)
        if html_path == "" or target.is_dir():
            target = target / f"{data.run.id}.html"
        try:
            written = write_html(report, data, target, db=db, follow_symlinks=follow)
        except OSError as exc:
            raise InputError(f"cannot write file: {exc.strerror or exc}", path=str(target)) from None
        err_console().print(safe_text(f"wrote {written}"))
    if md_path is not None or card_opt is not None:
        from brie_bench.report.markdown import render_markdown
    if md_path is not None:
        text = render_markdown(report, model_index=model_index, model_name=model_name)
        _emit(md_path, text, db=db, follow_symlinks=follow)
    if json_path is not None:
        from brie_bench.report.jsonout import render_json

        text = render_json(report)
        _emit(json_path, text, db=db, follow_symlinks=follow)
    if card_opt is not None:
        _update_model_card(Path(card_opt), report, render_markdown(report), model_name, candidate, db=db,
                           follow_symlinks=follow)
    if html_path is None and md_path is None and json_path is None and card_opt is None:
        from brie_bench.report.terminal import print_report

        print_report(out_console(), report)


def _update_model_card(path: Path, report: Report, section: str, model_name: str | None,
                       candidate: str | None, *, db: str, follow_symlinks: bool) -> None:
    """Merge the run into the card at `path` (see brie_bench.modelcard); rewrite it only if something changed.

    The card is read as bytes and written back atomically with no newline translation,
    so CRLF line endings (and a leading byte-order mark) survive and a full disk leaves
    the old card whole.
    """
    from rich.text import Text

    from brie_bench.atomic import check_target
    from brie_bench.modelcard import updated_card

    check_target(path, db=db, follow_symlinks=follow_symlinks)
    bom = "\ufeff"
    try:
        existing = path.read_bytes().decode("utf-8") if path.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the model card: {getattr(exc, 'strerror', None) or exc}",
                         path=str(path)) from None
    had_bom = existing is not None and existing.startswith(bom)
    body = existing[1:] if existing is not None and had_bom else existing
    try:
        text = updated_card(body, report, section, model_name=model_name, candidate=candidate)
    except InputError as exc:
        raise InputError(exc.detail, path=str(path), field=exc.field, line=exc.line) from None
    if had_bom:
        text = bom + text
    if text == existing:
        err_console().print(Text(f"model card up to date: {path}"))
        return
    _write_text(str(path), text, db=db, follow_symlinks=follow_symlinks)


def _compare(store: Any, run_ids: list[str], html_path: str | None, md_path: str | None,
             json_path: str | None, *, db: str, follow_symlinks: bool) -> None:
    """`report RUN_A RUN_B`: both runs side by side with paired differences over shared prompts."""
    from brie_bench.report.compare import build_comparison, print_comparison, render_comparison_html, \
        render_comparison_markdown
    from brie_bench.report.jsonout import render_json
    from brie_bench.report.rows import load_run

    a, b = load_run(store, run_ids[0]), load_run(store, run_ids[1])
    for data in (a, b):
        checked_run_id(data.run.id, getattr(store, "path", None))
    comparison = build_comparison(a, b)
    if html_path is not None:
        target = Path(html_path or DEFAULT_REPORT_DIR)
        if html_path == "" or target.is_dir():
            target = target / f"{a.run.id}_vs_{b.run.id}.html"
        _write_text(str(target), render_comparison_html(comparison), db=db, follow_symlinks=follow_symlinks)
    if md_path is not None:
        text = render_comparison_markdown(comparison)
        _emit(md_path, text, db=db, follow_symlinks=follow_symlinks)
    if json_path is not None:
        text = render_json(comparison)
        _emit(json_path, text, db=db, follow_symlinks=follow_symlinks)
    if html_path is None and md_path is None and json_path is None:
        print_comparison(out_console(), comparison)


@click.command("export")
@click.argument("run", required=False)
@click.option("--jsonl", "fmt", flag_value="jsonl", help="JSON Lines, one judgment per line (the default).")
@click.option("--csv", "fmt", flag_value="csv", help="CSV with a header row.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="File to write (default: stdout).")
@click.option("--raw", is_flag=True,
              help="Values exactly as stored: no ' before CSV cells starting with = + - @, no escaping on stdout.")
@click.option("--follow-symlinks", is_flag=True, help=FOLLOW_SYMLINKS_HELP)
@common_options
@click.pass_context
def export_command(ctx: click.Context, run: str | None, fmt: str | None, output: str | None, raw: bool,
                   follow_symlinks: bool, db_opt: str | None, plugins_dir_opt: str | None) -> None:
    """Write one row per judgment of RUN (default: the latest) as --jsonl (the default) or --csv.

    With no format flag: CSV when -o names a .csv file, else JSON Lines (on stdout, like
    `report --json`).

    CSV cells that a spreadsheet would run as a formula (starting with = + - @) get a
    leading ' and, on stdout, control characters are escaped; --raw turns both off.
    """
    from brie_bench.atomic import atomic_open
    from brie_bench.report.export import export_rows, write_csv, write_jsonl
    from brie_bench.store import Store

    if fmt is None:  # a default, not an error: JSON Lines, unless the file asked for is a .csv
        fmt = "csv" if output and output.lower().endswith(".csv") else "jsonl"
    db = _db(ctx, db_opt, plugins_dir_opt)
    _check_targets([output], db=db, follow_symlinks=follow_symlinks)
    writer = write_jsonl if fmt == "jsonl" else write_csv
    with Store(db, readonly=True) as store:
        rows = export_rows(store, run)
        if output:
            try:
                with atomic_open(output, newline="", db=db, follow_symlinks=follow_symlinks) as fh:
                    n = writer(rows, fh, raw=raw)
            except OSError as exc:
                raise InputError(f"cannot write file: {exc.strerror or exc}", path=output) from None
            err_console().print(safe_text(f"wrote {n} judgments to {output}"))
        else:
            writer(rows, sys.stdout, raw=raw, terminal=True)


@click.group("import")
def import_command() -> None:
    """Import results written by other tools."""


@import_command.command("legacy")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--baseline-name", default="baseline", show_default=True, help="Name for the baseline contender.")
@click.option("--candidate-name", default="brie", show_default=True, help="Name for the fine-tuned contender.")
@click.option("--name", default=None, help="Suite name for the imported run (default: from the file names).")
@click.option("--new", "new_run", is_flag=True, help="Import again even if these files were imported before.")
@click.option("--judge", "judge_name", default=None, metavar="NAME",
              help="Judge of lines that have no judge_model field (else inferred from a field naming it).")
@click.option("--judge-family", "judge_family", multiple=True, metavar="NAME=JUDGE,JUDGE",
              help="Count these judges as one judge, NAME, in the report (headline and agreement), e.g. "
                   "claude=claude-3-5-sonnet-20241022,claude-opus-4-20250514. Repeatable.")
@common_options
@click.pass_context
def import_legacy_command(ctx: click.Context, files: tuple[str, ...], baseline_name: str, candidate_name: str,
                          name: str | None, new_run: bool, judge_name: str | None, judge_family: tuple[str, ...],
                          db_opt: str | None, plugins_dir_opt: str | None) -> None:
    """Import the original Brie Bench's JSONL files (one judgment per line) into a run."""
    from rich.table import Table
    from rich.text import Text

    from brie_bench.report.legacy import FAMILY_FIELD, import_legacy, parse_judge_family
    from brie_bench.store import Store

    families: dict[str, list[str]] = {}
    for value in judge_family:
        family, members = parse_judge_family(value)
        if family in families:
            raise InputError(f"family {family!r} is given twice", field=FAMILY_FIELD)
        families[family] = members
    db = _db(ctx, db_opt, plugins_dir_opt, must_exist=False)
    with Store(db) as store:
        result = import_legacy(store, files, baseline=baseline_name, candidate=candidate_name, name=name,
                               new=new_run, judge=judge_name, judge_families=families)
    out = out_console()
    if result.reused:
        out.print(safe_text(f"already imported as run {result.run_id} (use --new to import again)"))
    else:
        out.print(safe_text(f"imported run {result.run_id}: {result.lines} lines, {result.comparisons} comparisons over "
                       f"{result.prompts} prompts, judges: {', '.join(result.judges)}; "
                       f"{result.duplicates} byte-identical duplicate line(s) skipped, "
                       f"{result.replicates} re-judgment(s) kept as replicates"))
    for family, members in result.judge_families.items():
        out.print(safe_text(f"judge family {family}: {', '.join(members)} (one judge in the report)"))
    out.print(Text("warning: labels were not randomised in these files ('Response A' was always the baseline)",
                   style="yellow"))
    if result.disagreements:
        table = Table(title=f"{len(result.disagreements)} stored verdict(s) read differently by Brie Bench's parser")
        for col in ("file:line", "judge", "stored winner", "Brie Bench reads", "why"):
            table.add_column(col, overflow="fold")
        for d in result.disagreements:
            table.add_row(safe_text(f"{d['file']}:{d['line']}"), safe_text(d["judge"]), safe_text(d["stored"]),
                          safe_text(d["parsed"]), safe_text(d.get("reason") or ""))
        out.print(table)
    else:
        out.print(Text("every stored winner matches Brie Bench's reading"))
    out.print(safe_text(f"next: brie-bench --db {db} report {result.run_id} --html"))
