"""Full-batch second-order trainers for small models: damped Newton, nonlinear CG and BFGS.

All three minimise f(θ) = loss(model(X_train; θ), y_train) over the flat vector θ of every trainable
parameter, evaluated with ``torch.func.functional_call`` on the whole training split.

* ``newton``: Δ = −(H + λI)⁻¹ g with the exact Hessian H (``torch.func.jacrev`` of the gradient,
  i.e. D Hessian-vector products computed ``hessian_chunk`` at a time), a Cholesky solve, λ raised ×10
  until H + λI is positive definite, then a backtracking Armijo line search (c₁ = 1e-4, halving from
  ``step_size``) or a fixed step. With ``adaptive`` (Levenberg–Marquardt style) λ is divided by 10 after
  a step whose first probe is accepted and multiplied by 10 otherwise.
* ``cg``: SciPy's nonlinear conjugate gradients, Polak–Ribière+
  (β = max(0, gₖ₊₁ᵀ(gₖ₊₁ − gₖ)/gₖᵀgₖ)) with a strong-Wolfe line search (c₁ = 1e-4, c₂ = 0.4) and a
  sufficient-descent restart.
* ``bfgs``: SciPy's BFGS with a dense inverse-Hessian approximation and a strong-Wolfe line search
  (c₁ = 1e-4, c₂ = 0.9).

CG and BFGS are driven by exact back-propagated gradients. ReLU networks are only piecewise smooth,
so a Wolfe line search can fail at a kink ("precision loss"); ``restarts`` then restarts SciPy from
the current iterate (steepest descent again, BFGS matrix reset). One "epoch" is one iteration.

Objective mode. Dropout (and every other module) is in eval mode; batch-norm layers normalise with
the statistics of the full training batch and do not touch their running statistics
(:mod:`trainlab.models.batchnorm`, mode ``"batch"``), so f is a deterministic function of θ. After each
iteration the running statistics are recalibrated on the training split (one extra forward pass;
:func:`trainlab.models.batchnorm.recalibrate`), so the eval-mode model that is monitored computes exactly f.

Spending, per training sample: a loss evaluation is 1 forward; a loss-and-gradient evaluation is
1 forward + 1 backward; the Hessian is counted as D Hessian-vector products of 1 forward + 1 backward
each (plus the gradient); the batch-norm refresh is 1 forward. Line-search probes are counted.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, jacrev

from trainlab.core.budget import Budget
from trainlab.trainers.callbacks import Callback
from trainlab.core.config import ConfigError, check_choice, check_number, from_mapping
from trainlab.data.task import Split, Task
from trainlab.losses import Loss
from trainlab.models.batchnorm import bn_mode, recalibrate
from trainlab.models.functional import ParamLayout
from trainlab.trainers.result import RunResult
from trainlab.trainers.base import TRAINERS, Monitor, Trainer, resolve_loss

DTYPES = {"float32": torch.float32, "float64": torch.float64}
ARMIJO_C1 = 1e-4
MAX_HALVINGS = 30
MAX_DAMPING_RAISES = 40


class FlatObjective:
    """f(θ) = loss(model(x; θ), y, step) on a whole split, θ the flat vector of trainable parameters.

    Counts what it spends in ``forward_samples``/``backward_samples`` (see the module docstring).
    """

    def __init__(self, model: nn.Module, split: Split, loss: Loss, dtype: torch.dtype):
        self.model, self.loss, self.dtype = model, loss, dtype
        self.layout = ParamLayout.of(model)
        self.size = self.layout.dim
        fixed = [*model.named_buffers(), *((n, p.detach()) for n, p in model.named_parameters() if not p.requires_grad)]
        self.buffers = {n: b.to(dtype) if b.is_floating_point() else b for n, b in fixed}
        self.x = split.x.to(dtype)
        self.y = split.y.to(dtype) if split.y.is_floating_point() else split.y
        self.n = len(split)
        self.step = 0
        self.forward_samples = 0
        self.backward_samples = 0

    def get(self) -> Tensor:
        """The model's current θ (a copy, in the objective's dtype)."""
        return self.layout.flatten(self.model).to(self.dtype)

    def set(self, theta: Tensor) -> None:
        """Write θ into the model's parameters."""
        self.layout.load(self.model, theta)

    def _f(self, theta: Tensor) -> Tensor:
        tensors = self.layout.unflatten(theta)
        with bn_mode(self.model, "batch"):
            outputs = functional_call(self.model, {**self.buffers, **tensors}, (self.x,))
        return self.loss(outputs, self.y, self.step)

    @torch.no_grad()
    def value(self, theta: Tensor) -> Tensor:
        self.forward_samples += self.n
        return self._f(theta)

    def value_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        self.forward_samples += self.n
        self.backward_samples += self.n
        grad, value = grad_and_value(self._f)(theta)
        return value.detach(), grad.detach()

    def value_grad_hessian(self, theta: Tensor, chunk_size: int) -> tuple[Tensor, Tensor, Tensor]:
        """f, ∇f and the exact Hessian ∇²f (reverse-over-reverse, ``chunk_size`` columns at a time)."""

        def grad_with_aux(t: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
            grad, value = grad_and_value(self._f)(t)
            return grad, (grad, value)

        hessian, (grad, value) = jacrev(grad_with_aux, has_aux=True, chunk_size=chunk_size)(theta)
        self.forward_samples += self.n * (1 + self.size)
        self.backward_samples += self.n * (1 + self.size)
        return value.detach(), grad.detach(), hessian.detach()

    def take_spent(self) -> tuple[int, int]:
        """(forward, backward) samples spent since the last call."""
        spent = (self.forward_samples, self.backward_samples)
        self.forward_samples = self.backward_samples = 0
        return spent


def _check_size(trainer: str, model: nn.Module, max_params: int) -> None:
    size = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if size > max_params:
        raise ConfigError(
            "model",
            f"{size:,} trainable parameters",
            f"at most max_params={max_params:,} for trainer {trainer!r} "
            f"(raise trainer.{trainer}.max_params or use a first-order trainer)",
        )


def _finish_iteration(monitor: Monitor, objective: FlatObjective, task: Task, loss_value: Tensor) -> bool:
    """Recalibrate batch norm, tick one step with everything spent, end the epoch; ``True`` to stop."""
    objective.forward_samples += recalibrate(objective.model, [task.train.x])
    forward, backward = objective.take_spent()
    stop = monitor.tick(forward, backward, steps=1, loss=loss_value)
    return monitor.end_epoch() or stop


def _check_dtype(dtype: str) -> None:
    check_choice("dtype", dtype, DTYPES)


@dataclass(frozen=True)
class NewtonConfig:
    """Options of ``newton`` (see the module docstring for the algorithm)."""

    damping: float = 1e-3
    adaptive: bool = True
    line_search: str = "armijo"
    step_size: float = 1.0
    gtol: float = 1e-10
    max_params: int = 5_000
    hessian_chunk: int = 64
    dtype: str = "float64"

    def __post_init__(self) -> None:
        check_number("damping", self.damping, low=0)
        check_choice("adaptive", self.adaptive, (True, False))
        check_choice("line_search", self.line_search, ("armijo", "none"))
        check_number("step_size", self.step_size, low=0, low_open=True)
        check_number("gtol", self.gtol, low=0)
        check_number("max_params", self.max_params, low=1, integer=True)
        check_number("hessian_chunk", self.hessian_chunk, low=1, integer=True)
        _check_dtype(self.dtype)


def damped_newton_direction(hessian: Tensor, grad: Tensor, damping: float) -> tuple[Tensor, float]:
    """Δ = −(H + λI)⁻¹ g by Cholesky, with λ raised (×10, from at least 1e-8·max(1, max|Hᵢᵢ|)) until
    H + λI is positive definite; returns (Δ, λ used)."""
    eye = torch.eye(len(grad), dtype=hessian.dtype, device=hessian.device)
    floor = 1e-8 * max(1.0, hessian.diagonal().abs().max().item())
    lam = damping
    for _ in range(MAX_DAMPING_RAISES):
        factor, info = torch.linalg.cholesky_ex(hessian + lam * eye)
        if int(info) == 0:
            return -torch.cholesky_solve(grad.unsqueeze(1), factor).squeeze(1), lam
        lam = max(10 * lam, floor)
    raise FloatingPointError(f"H + λI is not positive definite for λ up to {lam:g}")


def fixed_objective(
    trainer: str, model: nn.Module, task: Task, loss: Loss | None, max_params: int, dtype: str
) -> tuple[Loss, FlatObjective]:
    """The loss and the training-set :class:`FlatObjective` of a trainer whose line searches need a fixed
    objective: the model's size is checked and a dynamic loss is refused."""
    _check_size(trainer, model, max_params)
    resolved = resolve_loss(task, loss)
    if resolved.static() is not resolved:
        raise ConfigError("loss", resolved.name, f"a static loss (trainer {trainer!r} needs a fixed objective)")
    return resolved, FlatObjective(model, task.train, resolved, DTYPES[dtype])


@TRAINERS.register("newton")
class Newton(Trainer):
    """Damped Newton with the exact Hessian, Levenberg–Marquardt damping and an Armijo line search."""

    name = "newton"

    def __init__(self, **options: Any):
        super().__init__(from_mapping(NewtonConfig, options, where="trainer.newton"))

    def fit(
        self,
        model: nn.Module,
        task: Task,
        budget: Budget,
        seed: int,
        callbacks: Sequence[Callback] = (),
        loss: Loss | None = None,
    ) -> RunResult:
        cfg: NewtonConfig = self.config
        _check_size(self.name, model, cfg.max_params)
        loss = resolve_loss(task, loss)
        objective = FlatObjective(model, task.train, loss, DTYPES[cfg.dtype])
        monitor = Monitor(self, model, task, loss, budget, seed, callbacks)
        monitor.set_rates(lr=cfg.step_size)
        monitor.begin()
        theta, lam = objective.get(), cfg.damping
        while True:
            objective.step = monitor.state.step
            value, grad, hessian = objective.value_grad_hessian(theta, cfg.hessian_chunk)
            if grad.abs().max().item() <= cfg.gtol:
                monitor.note(f"converged: max |gradient| <= gtol={cfg.gtol:g} at step {monitor.state.step}")
                forward, backward = objective.take_spent()
                monitor.tick(forward, backward, steps=0, loss=value)
                break
            try:
                direction, lam = self.direction(hessian, grad, lam)
            except FloatingPointError as err:
                monitor.diverged(str(err))
                break
            theta, new_value, first_accepted = self._step(objective, theta, value, grad, direction)
            if cfg.adaptive:
                lam = lam / 10 if first_accepted else max(10 * lam, 1e-8)
            objective.set(theta)
            if _finish_iteration(monitor, objective, task, new_value):
                break
        return monitor.finish({"trainer": self.describe()})

    def direction(self, hessian: Tensor, grad: Tensor, damping: float) -> tuple[Tensor, float]:
        """The search direction and the damping used (:func:`damped_newton_direction`)."""
        return damped_newton_direction(hessian, grad, damping)

    def _step(
        self, objective: FlatObjective, theta: Tensor, value: Tensor, grad: Tensor, direction: Tensor
    ) -> tuple[Tensor, Tensor, bool]:
        """(new θ, its loss, whether the first step length was accepted)."""
        cfg: NewtonConfig = self.config
        if cfg.line_search == "none":
            new = theta + cfg.step_size * direction
            return new, objective.value(new), True
        slope = torch.dot(grad, direction).item()
        alpha = cfg.step_size
        for probe in range(MAX_HALVINGS):
            candidate = theta + alpha * direction
            trial = objective.value(candidate)
            if bool(torch.isfinite(trial)) and trial.item() <= value.item() + ARMIJO_C1 * alpha * slope:
                return candidate, trial, probe == 0
            alpha /= 2
        return theta, value, False


@dataclass(frozen=True)
class ScipyConfig:
    """Options of ``cg`` and ``bfgs``: stop when max |gradient| <= ``gtol`` (SciPy's test); after a
    line-search failure restart SciPy from the current iterate up to ``restarts`` times."""

    gtol: float = 1e-5
    restarts: int = 0
    max_params: int = 1_000_000
    dtype: str = "float64"

    def __post_init__(self) -> None:
        check_number("gtol", self.gtol, low=0)
        check_number("restarts", self.restarts, low=0, integer=True)
        check_number("max_params", self.max_params, low=1, integer=True)
        _check_dtype(self.dtype)


@dataclass(frozen=True)
class BFGSConfig(ScipyConfig):
    """Options of ``bfgs``; the default size limit keeps the D×D inverse Hessian under 800 MB."""

    max_params: int = 10_000


class _ScipyTrainer(Trainer):
    """Runs ``scipy.optimize.minimize(method=method)``; one SciPy iteration is one epoch."""

    method = ""
    minimize: Callable[..., scipy.optimize.OptimizeResult] = staticmethod(scipy.optimize.minimize)
    """The SciPy solver; a seam that tests replace to script iterations and line-search failures."""

    def fit(
        self,
        model: nn.Module,
        task: Task,
        budget: Budget,
        seed: int,
        callbacks: Sequence[Callback] = (),
        loss: Loss | None = None,
    ) -> RunResult:
        cfg: ScipyConfig = self.config
        loss, objective = fixed_objective(self.name, model, task, loss, cfg.max_params, cfg.dtype)
        monitor = Monitor(self, model, task, loss, budget, seed, callbacks)
        monitor.begin()
        device = objective.x.device

        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = objective.value_and_grad(torch.as_tensor(x, dtype=objective.dtype, device=device))
            return value.item(), grad.cpu().numpy().astype(np.float64)

        stopped = []

        def callback(intermediate_result: scipy.optimize.OptimizeResult) -> None:
            objective.set(torch.as_tensor(intermediate_result.x, dtype=objective.dtype, device=device))
            if _finish_iteration(monitor, objective, task, torch.tensor(intermediate_result.fun)):
                stopped.append(True)
                raise StopIteration

        options = {"gtol": cfg.gtol, "maxiter": 2**62}
        for restart in range(cfg.restarts + 1):
            x0 = objective.get().cpu().numpy().astype(np.float64)
            result = self.minimize(fun, x0, jac=True, method=self.method, callback=callback, options=options)
            if stopped or result.success or result.nit == 0:
                break
        forward, backward = objective.take_spent()
        if forward or backward:
            monitor.tick(forward, backward, steps=0)
        if not stopped and not monitor.message:
            monitor.note(f"scipy {self.method}: {result.message}" + (f" ({restart} restarts)" if restart else ""))
        return monitor.finish({"trainer": self.describe()})


@TRAINERS.register("cg")
class ConjugateGradient(_ScipyTrainer):
    """Nonlinear conjugate gradients (Polak–Ribière+, strong Wolfe line search) via SciPy."""

    name = "cg"
    method = "CG"

    def __init__(self, **options: Any):
        super().__init__(from_mapping(ScipyConfig, options, where="trainer.cg"))


@TRAINERS.register("bfgs")
class BFGS(_ScipyTrainer):
    """BFGS (dense inverse-Hessian update, strong Wolfe line search) via SciPy."""

    name = "bfgs"
    method = "BFGS"

    def __init__(self, **options: Any):
        super().__init__(from_mapping(BFGSConfig, options, where="trainer.bfgs"))
