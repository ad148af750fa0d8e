"""Bootstrap draws over prompts (clusters): a `Draws` value that a report makes once and passes down.

Kept apart from the intervals because it is the performance-critical part: the draws
for a (prompts, resamples, seed) layout are counted once per `Draws`, and each bootstrap
statistic is then one matrix product (see benchmarks/report_scale.py). Nothing here is
cached between calls or kept per thread: a statistic's figures follow from its arguments.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brie_bench.stats.outcomes import _same_length
from brie_bench.stats.ranks import unique_inverse

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
    of draws (`Draws`), so the counts (n_boot x k; float32) are made once and every
    statistic is then one matrix product over per-prompt sums instead of a gather over
    n_boot x k indices.
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

    def matmul(self, columns: NDArray[Any]) -> NDArray[np.float64]:
        """counts @ columns, a few rows at a time (small blocks stay in cache).

        float32 columns are multiplied in float32, exact for the columns `_exact_in_float32`
        admits; float64 columns in float64 (exact to rounding for any values).
        """
        counts = self.counts
        dtype = np.float32 if np.asarray(columns).dtype == np.float32 else np.float64
        rhs = np.asarray(columns, dtype=dtype)
        if counts.dtype == dtype and dtype == np.float32:
            return np.asarray(np.matmul(counts, rhs), dtype=np.float64)  # one BLAS product over the whole matrix
        out = np.empty((counts.shape[0], rhs.shape[1]))
        step = max(1, _SMALL_CELLS // max(1, counts.shape[1]))
        for start in range(0, counts.shape[0], step):
            out[start:start + step] = np.matmul(counts[start:start + step].astype(dtype), rhs)
        return out


#: Prompts a statistic must cover before it uses a report's draws over the whole run; below this
#: `mean_ci` uses the cluster-t interval anyway, and a small subset is better served by its own draws.
SHARED_MIN_CLUSTERS = 30
#: The largest draw count matrix kept as float32 (n_boot x prompts): 64 M cells, 256 MB.
_MAX_CELLS = 1 << 26


class Draws:
    """The bootstrap draws over prompts numbered 0..n_clusters-1: a value, passed to every statistic that resamples.

    Why a value and not a context: a report computes dozens of intervals over subsets of one
    run's prompts (a judge, a section, a criterion). The report makes one `Draws` over the
    run's K prompts from (K, n_boot, seed) and hands it to each statistic, so the figures
    depend only on the arguments: the same in any thread, notebook or report. A statistic
    given none makes its own from (its prompt count, n_boot, seed).

    Resample b is `cluster_resamples(K, n_boot, seed)`'s row b. An interval over all K
    prompts uses exactly its own draws; one over a subset S uses the same resamples
    restricted to S: each prompt of S is drawn Binomial(K, 1/K) times, about Poisson(1),
    the Poisson (weighted) cluster bootstrap (docs/statistics.md says why that is sound).
    The counts (n_boot x K, float32, exact for counts) are made on first use, under a
    lock, so one `Draws` may be shared between threads.
    """

    __slots__ = ("n_clusters", "n_boot", "seed", "_counts", "_lock")

    def __init__(self, n_clusters: int, n_boot: int = 2000, seed: int = 0) -> None:
        if n_clusters < 0 or n_boot < 1:
            raise ValueError(f"need n_clusters >= 0 and n_boot >= 1, got {n_clusters}, {n_boot}")
        self.n_clusters, self.n_boot, self.seed = int(n_clusters), int(n_boot), int(seed)
        self._counts: _DrawCounts | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Draws(n_clusters={self.n_clusters}, n_boot={self.n_boot}, seed={self.seed})"

    @property
    def fits(self) -> bool:
        """Whether the count matrix is small enough to keep (`_MAX_CELLS`); else statistics gather per chunk."""
        return self.n_clusters * self.n_boot <= _MAX_CELLS

    def counts(self) -> _DrawCounts:
        """How often each prompt is drawn in each resample (made once, on first use)."""
        with self._lock:
            if self._counts is None:
                # float32 (one BLAS product, exact for counts) when it fits; else one byte a count.
                self._counts = _DrawCounts(self.n_clusters, self.n_boot, self.seed,
                                           np.float32 if self.fits else np.uint8)
            return self._counts

    def totals(self, blocks: Sequence[tuple[NDArray[np.int64], NDArray[np.float64]]]) -> list[NDArray[np.float64]]:
        """Per-resample totals of each block's columns, in as few matrix products as the exactness allows.

        A block is (sorted prompt numbers in 0..n_clusters-1, one row of columns per prompt).
        Blocks whose totals float32 holds exactly (halves and whole numbers: outcomes, score
        differences, counts) share one float32 product; any other block (probabilities) is
        multiplied in float64, so every block's totals are exact to float64 rounding whatever
        its values. One product for many statistics matters: each reads the whole matrix.
        """
        for prompts, _ in blocks:
            if len(prompts) and (int(prompts[0]) < 0 or int(prompts[-1]) >= self.n_clusters):
                raise ValueError(f"prompt numbers must lie in 0..{self.n_clusters - 1}")
        out: list[NDArray[np.float64]] = [np.zeros((self.n_boot, 0))] * len(blocks)
        exact = [i for i, (_, cols) in enumerate(blocks) if _exact_in_float32(cols[:, 0], cols[:, 1:], self.n_clusters)]
        rest = [i for i in range(len(blocks)) if i not in set(exact)]
        for group, dtype in ((exact, np.float32), (rest, np.float64)):
            if not group:
                continue
            full = np.zeros((self.n_clusters, sum(blocks[i][1].shape[1] for i in group)), dtype=dtype)
            at = []
            col = 0
            for i in group:
                prompts, columns = blocks[i]
                full[prompts, col:col + columns.shape[1]] = columns
                at.append((i, col, columns.shape[1]))
                col += columns.shape[1]
            product = self.counts().matmul(full)
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
    return unique_inverse(c)
