"""The report as JSON: `Report.to_json_dict()`, the same records the HTML is drawn from (docs/report-schema.md)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from brie_bench.report.schema import Record


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types only: NaN and infinities become null (JSON has neither), numpy scalars become Python."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def render_json(report: Record) -> str:
    """Indented, strict JSON (no NaN), keys in the records' field order so related figures stay together.

    A `Report` (or the run-vs-run `Comparison`) is written through its `to_json_dict()`.
    """
    return json.dumps(to_jsonable(report.to_json_dict()), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
