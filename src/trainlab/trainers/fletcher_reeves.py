"""Fletcher–Reeves nonlinear conjugate gradients (Fletcher & Reeves 1964), full batch.

On the flat parameter vector θ (see :class:`~trainlab.trainers.second_order.FlatObjective`)::

    d₀ = −g₀;  θₖ₊₁ = θₖ + αₖdₖ (strong Wolfe: f decreases by c₁αgᵀd, |φ'(α)| ≤ c₂|gᵀd|)
    βₖ = ‖gₖ₊₁‖² / ‖gₖ‖²;  dₖ₊₁ = −gₖ₊₁ + βₖdₖ

With c₂ < ½ every dₖ is a descent direction (Al-Baali 1985; Nocedal & Wright 2006, lemma 5.6); the
default c₂ = 0.1 is Nocedal & Wright's recommendation for CG. The direction is reset to −g every
``restart_every`` iterations (default: the number of parameters D, Powell's n-step restart) and
whenever it is not a descent direction. On a convex quadratic with exact line searches the iterates
are those of linear CG (Hestenes & Stiefel 1952), which the tests check.

The line search is SciPy's ``scipy.optimize.line_search`` (Wolfe conditions, cubic/quadratic zoom);
value and gradient are computed together and shared between its calls. One iteration is one epoch;
spending and batch-norm handling are those of the other full-batch trainers (``cg``, ``bfgs``, ``newton``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
import torch
from torch import Tensor, nn

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError, check_number, from_mapping
from trainlab.data.task import Task
from trainlab.losses import Loss
from trainlab.trainers.base import TRAINERS, Monitor, Trainer
from trainlab.trainers.callbacks import Callback
from trainlab.trainers.result import RunResult
from trainlab.trainers.second_order import FlatObjective, _check_dtype, _finish_iteration, fixed_objective


@dataclass(frozen=True)
class FletcherReevesConfig:
    """Options of ``cg-fr``: Wolfe constants ``c1`` < ``c2`` < 1, ``restart_every`` (None: D),
    stop at max |gradient| <= ``gtol``."""

    c1: float = 1e-4
    c2: float = 0.1
    restart_every: int | None = None
    gtol: float = 1e-5
    max_params: int = 1_000_000
    dtype: str = "float64"

    def __post_init__(self) -> None:
        check_number("c1", self.c1, low=0, high=1, low_open=True, high_open=True)
        check_number("c2", self.c2, low=0, high=1, low_open=True, high_open=True)
        if self.c2 <= self.c1:
            raise ConfigError("c2", self.c2, f"a number in (c1={self.c1:g}, 1)")
        if self.restart_every is not None:
            check_number("restart_every", self.restart_every, low=1, integer=True)
        check_number("gtol", self.gtol, low=0)
        check_number("max_params", self.max_params, low=1, integer=True)
        _check_dtype(self.dtype)


class _Evaluations:
    """f and ∇f at NumPy points, each point evaluated once (SciPy asks for them separately)."""

    def __init__(self, objective: FlatObjective):
        self.objective = objective
        self.device = objective.x.device
        self.cache: dict[bytes, tuple[Tensor, Tensor]] = {}

    def at(self, x: np.ndarray) -> tuple[Tensor, Tensor]:
        key = x.tobytes()
        if key not in self.cache:
            if len(self.cache) > 8:
                self.cache.clear()
            theta = torch.as_tensor(x, dtype=self.objective.dtype, device=self.device)
            self.cache[key] = self.objective.value_and_grad(theta)
        return self.cache[key]

    def f(self, x: np.ndarray) -> float:
        return float(self.at(x)[0])

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self.at(x)[1].cpu().numpy().astype(np.float64)


@TRAINERS.register("cg-fr")
class FletcherReeves(Trainer):
    """Fletcher–Reeves nonlinear CG with a strong-Wolfe line search (see the module docstring)."""

    name = "cg-fr"

    def __init__(self, **options: Any):
        super().__init__(from_mapping(FletcherReevesConfig, options, where="trainer.cg-fr"))

    def fit(
        self,
        model: nn.Module,
        task: Task,
        budget: Budget,
        seed: int,
        callbacks: Sequence[Callback] = (),
        loss: Loss | None = None,
    ) -> RunResult:
        cfg: FletcherReevesConfig = self.config
        loss, objective = fixed_objective(self.name, model, task, loss, cfg.max_params, cfg.dtype)
        restart_every = cfg.restart_every or objective.size
        monitor = Monitor(self, model, task, loss, budget, seed, callbacks)
        monitor.begin()
        evals = _Evaluations(objective)
        x = objective.get().cpu().numpy().astype(np.float64)
        value, grad = evals.f(x), evals.grad(x)
        direction, since_restart, previous = -grad, 0, None
        while monitor.status == "ok":
            if np.abs(grad).max() <= cfg.gtol:
                monitor.message = f"converged: max |gradient| <= gtol={cfg.gtol:g} at step {monitor.state.step}"
                break
            alpha, *_ = scipy.optimize.line_search(
                evals.f, evals.grad, x, direction, grad, value, previous, c1=cfg.c1, c2=cfg.c2
            )
            if alpha is None:
                if since_restart == 0:
                    monitor.message = f"line search failed along −g at step {monitor.state.step}"
                    break
                direction, since_restart = -grad, 0
                continue
            x = x + alpha * direction
            previous, value = value, evals.f(x)
            new_grad = evals.grad(x)
            beta = float(new_grad @ new_grad) / float(grad @ grad)
            direction = -new_grad + beta * direction
            grad, since_restart = new_grad, since_restart + 1
            if since_restart >= restart_every or float(grad @ direction) >= 0:
                direction, since_restart = -grad, 0
            objective.set(torch.as_tensor(x, dtype=objective.dtype, device=evals.device))
            if _finish_iteration(monitor, objective, task, torch.tensor(value)):
                break
        forward, backward = objective.take_spent()
        if forward or backward:
            monitor.tick(forward, backward, steps=0)
        return monitor.finish({"trainer": self.describe()})
