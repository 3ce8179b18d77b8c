"""Sharpness (the top Hessian eigenvalue) against the stability limit of gradient descent.

On a quadratic with curvature λ, gradient descent with step η is stable iff λ < 2/η; heavy-ball
momentum β (``v ← β v − η g``) raises the limit to 2(1+β)/η. Cohen et al. (2021) observe that
full-batch GD drives the sharpness up to about 2/η and keeps it there ("edge of stability").
"""
from __future__ import annotations

from dataclasses import dataclass

from trainlab.core.config import check_number
from trainlab.diagnostics.hessian import hessian_top
from trainlab.diagnostics.objective import Objective


def stability_limit(lr: float, momentum: float = 0.0) -> float:
    """``2(1+β)/η``: the largest curvature heavy-ball GD with learning rate η and momentum β can follow."""
    check_number("lr", lr, low=0, low_open=True)
    check_number("momentum", momentum, low=0, high=1, high_open=True)
    return 2.0 * (1.0 + momentum) / lr


@dataclass(frozen=True)
class Sharpness:
    """λ_max, the limit 2(1+β)/η and their ratio (≥ 1 means beyond the stability limit)."""

    sharpness: float
    limit: float

    @property
    def ratio(self) -> float:
        return self.sharpness / self.limit


def sharpness(objective: Objective, lr: float, momentum: float = 0.0, *, seed: int = 0,
              tol: float = 1e-6) -> Sharpness:
    """The top Hessian eigenvalue of ``objective`` (Lanczos) against ``stability_limit(lr, momentum)``."""
    limit = stability_limit(lr, momentum)
    top = hessian_top(objective, 1, seed=seed, tol=tol)
    return Sharpness(sharpness=float(top.values[0]), limit=limit)
