"""`brie-bench export`: one row per judgment, as JSON Lines or CSV, for analysis elsewhere.

Rows carry the prompt, both answers under their labels, the stored assignment,
the parsed verdict and the unblinded winner, so nothing needs the database to
be re-analysed. Values are written as stored: model output is not altered
(spreadsheet users should import CSV as text, since an answer may start with '=').
"""

from __future__ import annotations

import csv
import json
import math
from typing import Any, Iterator, TextIO

from brie_bench.report.rows import outcome_of
from brie_bench.store import Store

COLUMNS = (
    "run_id", "unit_key", "section", "prompt_id", "prompt", "sample_index", "judge", "judge_type", "judge_model",
    "baseline", "candidate", "order_index", "label_a", "label_b", "candidate_label", "verdict", "winner",
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


def write_jsonl(rows: Iterator[dict[str, Any]], out: TextIO) -> int:
    """Write one JSON object per line; returns the number of rows."""
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n


def write_csv(rows: Iterator[dict[str, Any]], out: TextIO) -> int:
    """Write CSV with a header (scores as a JSON string); returns the number of rows."""
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    n = 0
    for row in rows:
        if row.get("scores") is not None:
            row = {**row, "scores": json.dumps(row["scores"], ensure_ascii=False, sort_keys=True)}
        writer.writerow(row)
        n += 1
    return n
