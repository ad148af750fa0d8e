"""`numpy.unique` for the integer codes the statistics pass around, in one pass instead of a sort.

A report numbers its prompts 0..K-1 and hands those numbers to every interval, which
renumbers the prompts a statistic covers (`unique_inverse`) and counts them. On 100,000
judgments `np.unique` sorted each such column, over a hundred times a report: a fifth of a
second (benchmarks/report_scale.py). For non-negative integers no larger than a few times
the column's length, marking the values present in a boolean table gives the same
answers in linear time; anything else goes to `np.unique` as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Integer codes up to this many times the column's length (plus a constant) are ranked by a table.
_TABLE_PER_ROW = 4
_TABLE_SLACK = 4096


def _present(values: NDArray[Any]) -> NDArray[np.bool_] | None:
    """The table of values present (`table[v]` is True), when `values` are small non-negative integers."""
    if values.ndim != 1 or values.dtype.kind not in "iu" or values.size == 0:
        return None
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > _TABLE_PER_ROW * values.size + _TABLE_SLACK:
        return None
    table = np.zeros(high + 1, dtype=bool)
    table[values] = True
    return table


def unique_values(values: ArrayLike) -> NDArray[Any]:
    """`np.unique(values)` (sorted distinct values, the same dtype)."""
    v = np.asarray(values)
    table = _present(v)
    if table is None:
        return np.unique(v)
    return np.flatnonzero(table).astype(v.dtype, copy=False)


def unique_inverse(values: ArrayLike) -> NDArray[np.intp]:
    """`np.unique(values, return_inverse=True)[1]`, flat: each value's rank among the distinct values."""
    v = np.asarray(values)
    table = _present(v)
    if table is None:
        return np.unique(v, return_inverse=True)[1].reshape(-1).astype(np.intp, copy=False)
    rank: NDArray[np.intp] = np.cumsum(table, dtype=np.intp) - 1
    return np.asarray(rank[v], dtype=np.intp)


def count_unique(values: ArrayLike) -> int:
    """`np.unique(values).size`."""
    v = np.asarray(values)
    table = _present(v)
    return int(np.unique(v).size) if table is None else int(np.count_nonzero(table))
