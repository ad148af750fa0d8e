"""Bootstrap draws over prompts (clusters), shared by every interval of a report.

Kept apart from the intervals because it is the performance-critical part: the draws
for a (prompts, resamples, seed) layout are made once and cached, and each bootstrap
statistic is then one matrix product (see benchmarks/report_scale.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brie_bench.stats.outcomes import _same_length

# Rows of bootstrap indices generated at once: bounds memory at about 16 MB of int32.
_CHUNK_CELLS = 1 << 22
# Working blocks of the shared-draw bootstrap: 128 K cells (1 MB as int64) stay in cache.
_SMALL_CELLS = 1 << 17


def cluster_resamples(n_clusters: int, n_boot: int, seed: int = 0) -> Iterator[NDArray[np.int32]]:
    """Yield bootstrap resamples of cluster indices, in chunks of shape (rows, n_clusters).

    Resample ``b`` (counting across chunks) is ``n_clusters`` indices drawn uniformly
    with replacement. The generator is ``numpy.random.default_rng(seed)`` and each
    chunk is one ``rng.integers(0, n_clusters, size=(rows, n_clusters), dtype=int32)``
    call, with rows fixed by n_clusters alone; so a given (n_clusters, n_boot, seed)
    always gives the same resamples, which keeps reports reproducible. Every
    bootstrap in this module draws through here.
    """
    if n_clusters <= 0 or n_boot <= 0:
        return
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // n_clusters)
    done = 0
    while done < n_boot:
        take = min(rows, n_boot - done)
        yield rng.integers(0, n_clusters, size=(take, n_clusters), dtype=np.int32)
        done += take


class _DrawCounts:
    """How often each cluster is drawn in each resample of `cluster_resamples(k, n_boot, seed)`.

    A report bootstraps dozens of statistics over the same prompts; they share one set
    of draws, so the counts (n_boot x k, one byte each) are made once and every
    statistic is then one matrix product over per-prompt sums instead of a gather over
    n_boot x k indices.
    """

    def __init__(self, k: int, n_boot: int, seed: int) -> None:
        counts = np.empty((n_boot, k), dtype=np.uint8)
        # Counted a few rows at a time: small buffers stay in cache and are reused, where
        # chunk-sized ones would be fresh memory (page faults) for every chunk.
        step = max(1, _SMALL_CELLS // k)
        offsets = np.arange(step, dtype=np.int64)[:, None] * k
        done = 0
        for idx in cluster_resamples(k, n_boot, seed):
            for start in range(0, len(idx), step):
                sub = idx[start:start + step]
                rows = len(sub)
                block = np.bincount((offsets[:rows] + sub).reshape(-1), minlength=rows * k)
                if k > 255 and block.max() > 255:  # pragma: no cover - a prompt drawn 256 times in one resample
                    raise OverflowError("draw count does not fit a byte")
                counts[done:done + rows] = block.reshape(rows, k)
                done += rows
        self.counts = counts

    def matmul(self, columns: NDArray[np.float64]) -> NDArray[np.float64]:
        """counts @ columns, exact for the float32-exact columns `_exact_in_float32` admits."""
        rhs = np.asarray(columns, dtype=np.float32)
        out = np.empty((self.counts.shape[0], rhs.shape[1]))
        step = max(1, _SMALL_CELLS // max(1, self.counts.shape[1]))
        for start in range(0, self.counts.shape[0], step):
            out[start:start + step] = self.counts[start:start + step].astype(np.float32) @ rhs
        return out


#: The draw counts of the last few (k, n_boot, seed): a report's statistics share their prompts.
_DRAWS: dict[tuple[int, int, int], _DrawCounts] = {}
_DRAWS_KEPT = 4


def _draw_counts(k: int, n_boot: int, seed: int) -> _DrawCounts:
    key = (k, n_boot, seed)
    found = _DRAWS.pop(key, None)
    if found is None:
        found = _DrawCounts(k, n_boot, seed)
    _DRAWS[key] = found  # most recently used last
    while len(_DRAWS) > _DRAWS_KEPT:
        _DRAWS.pop(next(iter(_DRAWS)))
    return found


def _exact_in_float32(sums: NDArray[Any], sizes: NDArray[np.float64], k: int) -> bool:
    """True when every resample total of `sums` and `sizes` is exact in float32 arithmetic.

    Halves and whole numbers (outcomes, ties, score differences, counts) whose
    largest possible total over k draws, doubled, stays below 2**24.
    """
    limit = float(2 ** 23)
    for col in (sums, sizes):
        if not np.all(col * 2.0 == np.round(col * 2.0)):
            return False
        if float(np.abs(col).max(initial=0.0)) * k >= limit:
            return False
    return True


def _cluster_codes(clusters: ArrayLike | None, n: int) -> NDArray[np.intp]:
    """Map arbitrary prompt ids (strings, ints) to 0..K-1; None means one cluster per row."""
    if clusters is None:
        return np.arange(n, dtype=np.intp)
    c = np.asarray(clusters)
    if c.ndim != 1:
        raise ValueError(f"clusters must be one-dimensional, got shape {c.shape}")
    _same_length("clusters", c, n)
    return np.unique(c, return_inverse=True)[1].astype(np.intp).reshape(-1)
