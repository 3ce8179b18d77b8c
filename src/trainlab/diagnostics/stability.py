"""Sharpness (the top Hessian eigenvalue) against the stability limit of gradient descent.

On a quadratic with curvature λ, gradient descent with step η is stable iff λ < 2/η; heavy-ball
momentum β (``v ← β v − η g``) raises the limit to 2(1+β)/η, and Nesterov momentum in torch's form
(``v ← β v + g``, step ``η (g + β v)``) gives 2(1+β)/((1+2β)η): the iteration matrix on λx²/2 has an
eigenvalue −1 exactly when ηλ(1+2β) = 2(1+β). Cohen et al. (2021) observe that full-batch GD drives the
sharpness up to about 2/η and keeps it there ("edge of stability"). Adaptive methods are stable up to a
limit on their *preconditioned* sharpness (Cohen et al. 2022), so :func:`update_limit` gives none for them.
"""
from __future__ import annotations

from dataclasses import dataclass

from trainlab.core.config import check_number
from trainlab.diagnostics.hessian import hessian_top
from trainlab.diagnostics.objective import Objective


HEAVY_BALL = ("sgd", "momentum")
"""Update rules (trainlab optimizer names) whose limit is 2(1+β)/η; ``nag`` has the Nesterov limit."""


def stability_limit(lr: float, momentum: float = 0.0, nesterov: bool = False) -> float:
    """``2(1+β)/η`` (heavy ball) or ``2(1+β)/((1+2β)η)`` (Nesterov): the largest curvature GD with learning
    rate η and momentum β can follow."""
    check_number("lr", lr, low=0, low_open=True)
    check_number("momentum", momentum, low=0, high=1, high_open=True)
    limit = 2.0 * (1.0 + momentum) / lr
    return limit / (1.0 + 2.0 * momentum) if nesterov else limit


def update_limit(optimizer: str | None, lr: float | None, momentum: float = 0.0) -> float | None:
    """The stability limit of a trainer's update rule, or ``None`` where the curvature alone sets none.

    ``optimizer`` is the trainlab optimizer (``TrainState.optimizer``): ``sgd``/``momentum`` → heavy ball,
    ``nag`` → Nesterov, ``None`` (a state built by hand) → heavy ball with the given rates, anything else
    (Adam, RMSProp, second-order and population trainers) → ``None``; also ``None`` without a positive lr."""
    if lr is None or lr <= 0:
        return None
    if optimizer is None or optimizer in HEAVY_BALL:
        return stability_limit(lr, momentum)
    if optimizer == "nag":
        return stability_limit(lr, momentum, nesterov=True)
    return None


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
