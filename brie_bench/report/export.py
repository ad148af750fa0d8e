"""`brie-bench export`: one row per judgment, as JSON Lines or CSV, for analysis elsewhere.

Rows carry the prompt, both answers under their labels, the stored assignment,
the parsed verdict and the unblinded winner, so nothing needs the database to
be re-analysed.

Model output is hostile data. In CSV, a cell that starts with `=`, `+`, `-`
or `@` is a formula to a spreadsheet (`=HYPERLINK(...)`, `+cmd|...`), so such
cells get a leading `'` (the OWASP rule; plain numbers are left alone) unless
`raw` is asked for. Written to a terminal, control, C1 and bidi characters
are escaped (`textsafe`); in JSON Lines as `\\uXXXX`, which is the same JSON.
"""

from __future__ import annotations

import csv
import json
import math
from typing import Any, TextIO
from collections.abc import Iterator

from brie_bench.stats import outcome_of
from brie_bench.store import Store
from brie_bench.textsafe import csv_cell, json_line_safe, printable

COLUMNS = (
    "run_id", "unit_key", "section", "prompt_id", "prompt", "sample_index", "judge", "judge_type", "judge_model",
    "baseline", "candidate", "presentation_order", "label_a", "label_b", "candidate_label", "verdict", "winner",
    "outcome", "p_a", "scores", "reasoning", "invalid_reason", "raw", "text_a", "text_b",
    "input_tokens", "output_tokens", "latency_s", "created_at",
)
_OUTCOME_NAMES = {1.0: "win", 0.5: "tie", 0.0: "loss"}


def export_rows(store: Store, run_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Every judgment of a run (the latest when None) as a flat dict with the keys in `COLUMNS`."""
    run = store.run(run_id)
    prompts = {(s.get("name"), str(p.get("id"))): p.get("text", "")
               for s in store.suite_snapshot(run.id).get("sections") or [] for p in s.get("prompts") or []}
    for d in store.iter_judgments_with_texts(run.id):
        o = outcome_of(d.get("winner"), d["baseline"], d["candidate"])
        row = {k: d.get(k) for k in COLUMNS}
        row["prompt"] = prompts.get((d["section"], str(d["prompt_id"])), "")
        row["candidate_label"] = "A" if d["label_a"] == d["candidate"] else "B"
        row["outcome"] = "invalid" if math.isnan(o) else _OUTCOME_NAMES[o]
        yield row


def write_jsonl(rows: Iterator[dict[str, Any]], out: TextIO, *, raw: bool = False,
                terminal: bool = False) -> int:
    """Write one JSON object per line, always strict JSON (an infinite or NaN number is null); returns the row count.

    `terminal` (and not `raw`): C1 and bidi characters escaped as \\uXXXX too.
    """
    n = 0
    for row in rows:
        try:
            line = json.dumps(row, ensure_ascii=False, allow_nan=False)
        except ValueError:  # a stored inf or NaN (a latency from a browser, a score): strict JSON has no such value
            line = json.dumps(_finite(row), ensure_ascii=False, allow_nan=False)
        out.write((line if raw or not terminal else json_line_safe(line)) + "\n")
        n += 1
    return n


def _finite(value: Any) -> Any:
    """`value` with every infinite or NaN float replaced by None (JSON null), however deeply nested."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_csv(rows: Iterator[dict[str, Any]], out: TextIO, *, raw: bool = False, terminal: bool = False) -> int:
    """Write CSV with a header (scores as a JSON string); returns the number of rows.

    Unless `raw`: formula-looking cells get a leading `'`, and with `terminal`
    control characters are shown as escapes rather than sent to the screen.
    """
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    n = 0
    for row in rows:
        if row.get("scores") is not None:
            row = {**row, "scores": json.dumps(row["scores"], ensure_ascii=False, sort_keys=True)}
        if not raw:
            row = {k: csv_cell(printable(v) if terminal and isinstance(v, str) else v) for k, v in row.items()}
        writer.writerow(row)
        n += 1
    return n
