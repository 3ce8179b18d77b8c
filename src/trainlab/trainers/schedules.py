"""Learning-rate (and momentum) schedules as closed-form functions of the optimizer step ``t`` (0-based).

Every schedule is stepped once per optimizer step. Durations given in epochs are converted to steps
with the number of steps per epoch. Formulas:

* ``constant``: η_t = η.
* ``step``: η_t = η · γ^⌊t / s⌋ with s = ``step_epochs`` epochs.
* ``cosine``: η_t = η_min + (η − η_min)(1 + cos(π t / T)) / 2 over the T planned steps (Loshchilov & Hutter).
* ``warmup``: linear warm-up (notes 001 §4.5) η_t = η · min(1, (t + 1) / W) over W = ``warmup_epochs``
  epochs, then constant; with one step per epoch this is the notes' sequence η/n, 2η/n, …, η.
* ``one-cycle``: fastai's ``fit_one_cycle`` (Smith 2018): with p = t / T, two cosine phases split at
  ``pct_start`` (0.25): η from η_max/``div`` (25) up to η_max, then down to η_max/``div_final`` (1e5);
  momentum from ``moms[0]`` (0.95) down to ``moms[1]`` (0.85) and back up to ``moms[2]`` (0.95).
  Each phase is fastai's ``SchedCos``: start + (1 + cos(π(1 − pos)))(end − start)/2.
* ``triangular``: piecewise linear over the T planned steps: η_min at t = 0, η at t = ``pct_start`` · T, then
  η/``div_final`` at t = T (the Myrtle5 schedule of thesis 002: 0 → 0.02 at epoch 300 → 0.002 at 700).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainlab.core.config import ConfigError

SCHEDULES = ("constant", "step", "cosine", "warmup", "one-cycle", "triangular")
NEEDS_TOTAL = ("cosine", "one-cycle", "triangular")


class Schedule(ABC):
    """η_t (and optionally a momentum value) at optimizer step ``t``."""

    @abstractmethod
    def lr(self, t: int) -> float: ...

    def momentum(self, t: int) -> float | None:
        """Momentum at step ``t``, or ``None`` when the schedule leaves momentum alone."""
        return None


@dataclass(frozen=True)
class Constant(Schedule):
    base_lr: float

    def lr(self, t: int) -> float:
        return self.base_lr


@dataclass(frozen=True)
class StepDecay(Schedule):
    """η · γ^⌊t / step_size⌋."""

    base_lr: float
    step_size: int
    gamma: float

    def lr(self, t: int) -> float:
        return self.base_lr * self.gamma ** (t // self.step_size)


@dataclass(frozen=True)
class Cosine(Schedule):
    """η_min + (η − η_min)(1 + cos(π t / T)) / 2, held at η_min after T."""

    base_lr: float
    total_steps: int
    min_lr: float = 0.0

    def lr(self, t: int) -> float:
        pos = min(t, self.total_steps) / self.total_steps
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * pos)) / 2


@dataclass(frozen=True)
class Warmup(Schedule):
    """η · min(1, (t + 1) / W)."""

    base_lr: float
    warmup_steps: int

    def lr(self, t: int) -> float:
        return self.base_lr * min(1.0, (t + 1) / self.warmup_steps)


@dataclass(frozen=True)
class Triangular(Schedule):
    """Linear from ``start_lr`` to ``max_lr`` over [0, pct_start·T], then linear to ``end_lr`` at T."""

    max_lr: float
    total_steps: int
    pct_start: float
    start_lr: float
    end_lr: float

    def lr(self, t: int) -> float:
        pos = min(t / self.total_steps, 1.0)
        if pos < self.pct_start:
            return self.start_lr + (self.max_lr - self.start_lr) * pos / self.pct_start
        return self.max_lr + (self.end_lr - self.max_lr) * (pos - self.pct_start) / (1 - self.pct_start)


def sched_cos(start: float, end: float, pos: float) -> float:
    """fastai's ``SchedCos``: cosine interpolation from ``start`` (pos 0) to ``end`` (pos 1)."""
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def combined_cos(pct: float, start: float, middle: float, end: float, pos: float) -> float:
    """fastai's ``combined_cos``: ``start``→``middle`` over [0, pct], ``middle``→``end`` over [pct, 1]."""
    if pos < pct:
        return sched_cos(start, middle, pos / pct)
    return sched_cos(middle, end, (pos - pct) / (1 - pct))


@dataclass(frozen=True)
class OneCycle(Schedule):
    """fastai's one-cycle policy evaluated at p = t / T (see the module docstring)."""

    max_lr: float
    total_steps: int
    pct_start: float = 0.25
    div: float = 25.0
    div_final: float = 1e5
    moms: tuple[float, float, float] | None = (0.95, 0.85, 0.95)

    def lr(self, t: int) -> float:
        pos = min(t / self.total_steps, 1.0)
        return combined_cos(
            self.pct_start, self.max_lr / self.div, self.max_lr, self.max_lr / self.div_final, pos
        )

    def momentum(self, t: int) -> float | None:
        if self.moms is None:
            return None
        return combined_cos(self.pct_start, *self.moms, min(t / self.total_steps, 1.0))


def make_schedule(
    name: str,
    *,
    lr: float,
    steps_per_epoch: int,
    total_steps: int | None,
    step_epochs: float = 10.0,
    gamma: float = 0.1,
    min_lr: float = 0.0,
    warmup_epochs: float = 1.0,
    pct_start: float = 0.25,
    div: float = 25.0,
    div_final: float = 1e5,
    moms: Sequence[float] | None = (0.95, 0.85, 0.95),
    where: str = "schedule",
) -> Schedule:
    """The schedule ``name`` for base (or maximum) learning rate ``lr``.

    ``total_steps`` is required by ``cosine`` and ``one-cycle``; ``where`` prefixes error fields.
    """
    if name in NEEDS_TOTAL and total_steps is None:
        raise ConfigError(
            where, name, "a budget in epochs, steps or sample_evals (this schedule needs the total number of steps)"
        )
    if name == "constant":
        return Constant(lr)
    if name == "step":
        return StepDecay(lr, max(1, round(step_epochs * steps_per_epoch)), gamma)
    if name == "cosine":
        return Cosine(lr, max(1, total_steps or 1), min_lr)
    if name == "warmup":
        return Warmup(lr, max(1, round(warmup_epochs * steps_per_epoch)))
    if name == "one-cycle":
        cycle = None if moms is None else (float(moms[0]), float(moms[1]), float(moms[2]))
        return OneCycle(lr, max(1, total_steps or 1), pct_start, div, div_final, cycle)
    if name == "triangular":
        return Triangular(lr, max(1, total_steps or 1), pct_start, min_lr, lr / div_final)
    raise ConfigError(where, name, "one of " + ", ".join(SCHEDULES))


def apply_schedule(
    optimizer: torch.optim.Optimizer, schedule: Schedule, t: int, momentum_key: str | None
) -> tuple[float, float | None]:
    """Write η_t (and the momentum, into ``momentum_key`` of each param group) and return them."""
    lr = schedule.lr(t)
    mom = schedule.momentum(t) if momentum_key is not None else None
    for group in optimizer.param_groups:
        group["lr"] = lr
        if mom is not None:
            if momentum_key == "betas":
                group["betas"] = (mom, group["betas"][1])
            else:
                group[momentum_key] = mom
    return lr, mom
