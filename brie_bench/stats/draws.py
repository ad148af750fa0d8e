"""Bootstrap draws over prompts (clusters), shared by every interval of a report.

Kept apart from the intervals because it is the performance-critical part: the draws
for a (prompts, resamples, seed) layout are made once and cached, and each bootstrap
statistic is then one matrix product (see benchmarks/report_scale.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
    of draws, so the counts (n_boot x k, one byte each; float32 for a report's shared
    draws, see `shared_draws`) are made once and every statistic is then one matrix
    product over per-prompt sums instead of a gather over n_boot x k indices.
    """

    def __init__(self, k: int, n_boot: int, seed: int, dtype: type[np.generic] = np.uint8) -> None:
        counts = np.empty((n_boot, k), dtype=dtype)
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
                if dtype is np.uint8 and k > 255 and block.max() > 255:  # pragma: no cover - drawn 256 times
                    raise OverflowError("draw count does not fit a byte")
                counts[done:done + rows] = block.reshape(rows, k)
                done += rows
        self.counts = counts

    def matmul(self, columns: NDArray[np.float64]) -> NDArray[np.float64]:
        """counts @ columns in float32, a few rows at a time (small blocks stay in cache); exact for
        the float32-exact columns `_exact_in_float32` admits."""
        counts = self.counts
        rhs = np.asarray(columns, dtype=np.float32)
        out = np.empty((counts.shape[0], rhs.shape[1]))
        step = max(1, _SMALL_CELLS // max(1, counts.shape[1]))
        for start in range(0, counts.shape[0], step):
            out[start:start + step] = counts[start:start + step].astype(np.float32) @ rhs
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


#: Prompts a statistic must cover before it uses the run's shared draws; below this the report
#: uses the cluster-t interval anyway, and a small subset is better served by its own draws.
SHARED_MIN_CLUSTERS = 30
#: The largest shared draw set (n_boot x prompts, kept as float32): 64 M cells, 256 MB.
_SHARED_MAX_CELLS = 1 << 26


class _SharedDraws:
    """One set of draws over every prompt of a run, made on first use (see `shared_draws`).

    Kept as float32 (exact for counts): every statistic is then one BLAS product of the
    whole matrix with its per-prompt sums, zero for prompts it does not cover, which is
    cheaper than gathering a subset's columns.
    """

    def __init__(self, n_clusters: int, n_boot: int, seed: int) -> None:
        self.n_clusters, self.n_boot, self.seed = n_clusters, n_boot, seed
        self._counts: NDArray[np.float32] | None = None

    def counts(self) -> NDArray[np.float32]:
        if self._counts is None:
            self._counts = _DrawCounts(self.n_clusters, self.n_boot, self.seed, np.float32).counts
        return self._counts


_LOCAL = threading.local()


@contextmanager
def shared_draws(n_clusters: int, n_boot: int, seed: int) -> Iterator[None]:
    """Within the block, mean bootstraps over prompts numbered 0..n_clusters-1 share one set of draws.

    Why: a report computes dozens of intervals over different subsets of one run's
    prompts (a judge, a section, a criterion). Drawing for each subset size separately
    made the draws most of a 100,000-judgment report (benchmarks/report_scale.py).
    Here the run's K prompts are resampled once (n_boot multinomial draws of K); an
    interval over a subset S of them uses the same resamples restricted to S: each
    prompt of S is drawn Binomial(K, 1/K) times, about Poisson(1), so over a subset
    this is the Poisson (weighted) cluster bootstrap, and over all K prompts it is
    exactly the multinomial one. The statistic is a ratio (the drawn prompts' row sums
    over their row counts), so the varying number of drawn prompts cancels to first
    order (docs/statistics.md). Only statistics whose `clusters` are these integer
    prompt numbers, with at least `SHARED_MIN_CLUSTERS` prompts and the same n_boot
    and seed, take part; all others draw for themselves as outside the block. Per
    thread, so concurrent reports in one process never share draws.
    """
    previous = getattr(_LOCAL, "shared", None)
    fits = 0 < n_clusters and n_clusters * n_boot <= _SHARED_MAX_CELLS
    _LOCAL.shared = _SharedDraws(n_clusters, n_boot, seed) if fits else None
    try:
        yield
    finally:
        _LOCAL.shared = previous


def shared_totals(blocks: Sequence[tuple[NDArray[np.int64], NDArray[np.float64]]], n_boot: int,
                  seed: int) -> list[NDArray[np.float64] | None]:
    """Per-resample totals of each block's columns, from the shared draws, in one matrix product.

    A block is (sorted run prompt numbers, one row of columns per prompt). Its entry is
    None when no shared draw set applies to it (outside `shared_draws`, another layout,
    too few prompts, numbers outside the run, or totals that float32 would not hold
    exactly); the caller then draws for itself. Computing several statistics' totals
    in one product matters: each product reads the whole n_boot x prompts matrix.
    """
    shared: _SharedDraws | None = getattr(_LOCAL, "shared", None)
    out: list[NDArray[np.float64] | None] = [None] * len(blocks)
    if shared is None or shared.n_boot != n_boot or shared.seed != seed:
        return out
    usable = [i for i, (prompts, columns) in enumerate(blocks)
              if len(prompts) >= SHARED_MIN_CLUSTERS and int(prompts[0]) >= 0 and int(prompts[-1]) < shared.n_clusters
              and _exact_in_float32(columns[:, 0], columns[:, 1:], shared.n_clusters)]
    if not usable:
        return out
    full = np.zeros((shared.n_clusters, sum(blocks[i][1].shape[1] for i in usable)), dtype=np.float32)
    at = []
    col = 0
    for i in usable:
        prompts, columns = blocks[i]
        full[prompts, col:col + columns.shape[1]] = columns
        at.append((i, col, columns.shape[1]))
        col += columns.shape[1]
    product = np.asarray(shared.counts() @ full, dtype=np.float64)
    for i, start, width in at:
        out[i] = product[:, start:start + width]
    return out


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
