"""Ranking several contenders: Bradley–Terry strengths with prompt-clustered bootstrap intervals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from brie_bench.stats import special

from brie_bench.stats.draws import _cluster_codes, cluster_resamples
from brie_bench.stats.outcomes import _check_level, _same_length


@dataclass(frozen=True, eq=False)
class BradleyTerry:
    """Bradley–Terry strengths for several contenders, with bootstrap intervals.

    `scores` are log-strengths relative to the `anchor` player (its score is 0), so
    P(i beats j) = sigmoid(scores[i] − scores[j]); `win_rate_vs_anchor` is that
    probability against the anchor. `low` / `high` are percentile bounds of the
    scores. A player not connected to the anchor by any chain of games has no
    defined score and is NaN.
    """

    scores: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    win_rate_vs_anchor: NDArray[np.float64]
    anchor: int
    n_games: int
    level: float
    converged: bool


def _bt_loglik(wins: NDArray[Any], theta: NDArray[Any]) -> NDArray[Any]:
    diff = theta[:, :, None] - theta[:, None, :]
    loglik: NDArray[Any] = -(wins * np.logaddexp(0.0, -diff)).sum(axis=(1, 2))
    return loglik


def _bt_newton(wins: NDArray[np.float64], ref: int, max_iter: int = 100,
               tol: float = 1e-10) -> tuple[NDArray[np.float64], bool]:
    """Maximise the Bradley–Terry likelihood for a batch of win matrices at once.

    wins[b, i, j] = (fractional) wins of i over j in batch member b; every player
    must be connected to the others and have positive wins and losses (the prior
    guarantees it), which makes the log-likelihood strictly concave once player
    `ref` is pinned at 0. Newton's method with step halving then converges in a
    few iterations, for all bootstrap resamples together (batched linear solves).
    Returns log-strengths with theta[:, ref] = 0.
    """
    batch, n = wins.shape[0], wins.shape[1]
    games = wins + np.swapaxes(wins, 1, 2)
    won = wins.sum(axis=2)
    free = np.array([i for i in range(n) if i != ref], dtype=np.intp)
    theta = np.zeros((batch, n))
    current = _bt_loglik(wins, theta)
    for _ in range(max_iter):
        sig = special.expit(theta[:, :, None] - theta[:, None, :])
        grad = won - (games * sig).sum(axis=2)
        curv = games * sig * (1.0 - sig)
        neg_hess = np.einsum("bi,ij->bij", curv.sum(axis=2), np.eye(n)) - curv
        sub = neg_hess[:, free][:, :, free]
        try:
            step_free = np.linalg.solve(sub, grad[:, free][:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step_free = (np.linalg.pinv(sub) @ grad[:, free][:, :, None])[:, :, 0]
        step = np.zeros_like(theta)
        step[:, free] = step_free
        size = np.ones(batch)
        for _ in range(40):  # halve the step wherever it would lower the likelihood
            candidate = theta + size[:, None] * step
            value = _bt_loglik(wins, candidate)
            worse = value < current - 1e-12 * np.abs(current)
            if not worse.any():
                break
            size = np.where(worse, size / 2.0, size)
        moved = np.max(np.abs(size[:, None] * step))
        theta, current = candidate, np.maximum(value, current)
        if moved < tol:
            return theta, True
    return theta, False


def _component(met: NDArray[np.bool_], start: int) -> NDArray[np.bool_]:
    """Players reachable from `start` through games actually played."""
    seen = np.zeros(len(met), dtype=bool)
    seen[start] = True
    frontier = [start]
    while frontier:
        nxt = np.flatnonzero(met[frontier].any(axis=0) & ~seen)
        seen[nxt] = True
        frontier = nxt.tolist()
    return seen


def bradley_terry(
    winner_idx: ArrayLike,
    loser_idx: ArrayLike,
    n_players: int,
    ties: ArrayLike | None = None,
    clusters: ArrayLike | None = None,
    anchor: int = 0,
    prior: float = 0.01,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> BradleyTerry:
    """Maximum-likelihood Bradley–Terry fit over pairwise games, with bootstrap CIs.

    For more than two contenders a win rate per pair no longer ranks them; BT gives
    one strength per contender that explains all pairwise results. Row k says
    `winner_idx[k]` beat `loser_idx[k]`; where `ties[k]` is true the game was a tie
    and counts as half a win each way. `prior` (> 0) adds that many virtual tied
    games to every pair of players that met, so the maximum exists even when a
    contender never loses; with more than a handful of real games its pull is
    negligible. The bootstrap resamples games, or whole prompts when `clusters` is
    given, and fits all resamples together; intervals are percentiles. Players not
    connected to the anchor get NaN, and if the anchor played no game everything is NaN.
    """
    _check_level(level)
    if prior <= 0:
        raise ValueError(f"prior must be positive (it keeps the maximum finite), got {prior}")
    win = np.asarray(winner_idx, dtype=np.intp).reshape(-1)
    lose = np.asarray(loser_idx, dtype=np.intp).reshape(-1)
    _same_length("loser_idx", lose, len(win))
    tie = np.zeros(len(win), bool) if ties is None else np.asarray(ties, dtype=bool).reshape(-1)
    _same_length("ties", tie, len(win))
    if n_players < 2:
        raise ValueError(f"need at least two players, got {n_players}")
    if not 0 <= anchor < n_players:
        raise ValueError(f"anchor {anchor} is not a player index")
    if len(win) and (min(win.min(), lose.min()) < 0 or max(win.max(), lose.max()) >= n_players):
        raise ValueError("player index out of range")
    if np.any(win == lose):
        raise ValueError("a player cannot play itself")

    nan_result = np.full(n_players, np.nan)
    met = np.zeros((n_players, n_players), dtype=bool)
    met[win, lose] = True
    met |= met.T
    if not met[anchor].any():
        return BradleyTerry(nan_result, nan_result.copy(), nan_result.copy(), nan_result.copy(),
                            anchor, int(len(win)), level, True)
    group = np.flatnonzero(_component(met, anchor))
    ref = int(np.flatnonzero(group == anchor)[0])
    size = len(group)
    local = np.full(n_players, -1, dtype=np.intp)
    local[group] = np.arange(size)
    keep = local[win] >= 0  # games inside the anchor's component
    w_loc, l_loc, tie_loc = local[win[keep]], local[lose[keep]], tie[keep]
    cell_win = w_loc * size + l_loc
    cell_rev = l_loc * size + w_loc
    amount_win = np.where(tie_loc, 0.5, 1.0)
    amount_rev = np.where(tie_loc, 0.5, 0.0)
    prior_w = np.where(met[np.ix_(group, group)], prior / 2.0, 0.0)

    full = np.zeros(size * size)
    np.add.at(full, cell_win, amount_win)
    np.add.at(full, cell_rev, amount_rev)
    theta, converged = _bt_newton(full.reshape(1, size, size) + prior_w, ref)

    def spread(local_values: NDArray[Any]) -> NDArray[Any]:
        out = np.full(n_players, np.nan)
        out[group] = local_values
        return out

    scores = spread(theta[0])
    low, high = nan_result.copy(), nan_result.copy()
    codes = _cluster_codes(clusters, len(win))[keep]
    if codes.size and n_boot > 0:
        g = np.unique(codes, return_inverse=True)[1].reshape(-1)
        k = int(g.max()) + 1
        per_cluster = np.zeros((k, size * size))
        np.add.at(per_cluster, (g, cell_win), amount_win)
        np.add.at(per_cluster, (g, cell_rev), amount_rev)
        if k >= 2:
            boots = []
            for idx in cluster_resamples(k, n_boot, seed):
                rows = len(idx)
                offsets = (np.arange(rows, dtype=np.int64)[:, None] * k + idx).reshape(-1)
                times = np.bincount(offsets, minlength=rows * k).reshape(rows, k).astype(float)
                batch = (times @ per_cluster).reshape(rows, size, size) + prior_w
                fitted, ok = _bt_newton(batch, ref)
                boots.append(fitted)
                converged = converged and ok
            alpha = 1.0 - level
            bounds = np.quantile(np.concatenate(boots), [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
            low, high = spread(bounds[0]), spread(bounds[1])
    return BradleyTerry(
        scores=scores,
        low=low,
        high=high,
        win_rate_vs_anchor=special.expit(scores),
        anchor=anchor,
        n_games=int(len(win)),
        level=level,
        converged=converged,
    )
