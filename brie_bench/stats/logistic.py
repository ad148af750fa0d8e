"""Logistic regression with fractional targets and bounded coefficients, for the controlled win rates.

One fit serves the length-controlled rate (`stats.bias`) and the style-controlled rate
(`stats.style`): scipy.optimize and statsmodels are not imported at run time, and both
rates need the same two things from it, ties as half a win and a finite answer when the
data separate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from brie_bench.stats import special

#: Coefficients stop here: separated data have no finite maximum, and ±30 on the logit
#: scale is already a probability within 1e-13 of 0 or 1.
LOGIT_BOUND: float = 30.0


def logistic_fit(y: NDArray[Any], design: NDArray[Any], weights: NDArray[Any] | None = None,
                 bound: float = LOGIT_BOUND) -> tuple[NDArray[np.float64], bool]:
    """Maximum likelihood for P = σ(design @ θ) with fractional targets y in [0, 1] and row weights.

    A tie (y = 0.5) is half a win and half a loss. The log-likelihood is concave, so a
    projected Newton method with step halving finds the maximum; coefficients are
    bounded to ±`bound` so that separated data (no finite maximum) still return, with
    the offending coefficient at the bound. Returns (θ, converged).
    """
    x = np.asarray(design, dtype=float)
    t = np.asarray(y, dtype=float)
    w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=float)
    k = x.shape[1]

    def nll(theta: NDArray[Any]) -> float:
        eta = x @ theta
        return float(np.sum(w * (np.logaddexp(0.0, eta) - t * eta)))

    theta = np.zeros(k)
    current = nll(theta)
    for _ in range(300):
        prob = special.expit(x @ theta)
        grad = x.T @ (w * (prob - t))
        hess = x.T @ (x * (w * prob * (1.0 - prob))[:, None])
        blocked = ((theta <= -bound) & (grad > 0)) | ((theta >= bound) & (grad < 0))
        free = ~blocked
        if not free.any() or float(np.max(np.abs(grad[free]))) <= 1e-10 * max(1.0, float(w.sum())):
            return theta, True
        step = np.zeros(k)
        sub = hess[np.ix_(free, free)]
        try:
            step[free] = np.linalg.solve(sub, grad[free])
        except np.linalg.LinAlgError:
            step[free] = np.linalg.pinv(sub) @ grad[free]
        size = 1.0
        while True:
            candidate = np.clip(theta - size * step, -bound, bound)
            value = nll(candidate)
            if value <= current + 1e-12 * abs(current) or size < 1e-12:
                break
            size /= 2.0
        moved = float(np.max(np.abs(candidate - theta)))
        theta, current = candidate, min(value, current)
        if moved < 1e-12:
            return theta, True
    return theta, False
