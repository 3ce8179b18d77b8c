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
  η/``div_final`` at t = T (the Myrtle5 schedule of Ruiz-García et al. 2021, as in
  Lavín Pallero 2021 §3.4.1: 0 → 0.02 at epoch 300 → 0.002 at 700).
* ``exponential``: η_t = η e^{−k e} with e = t / (steps per epoch) epochs and k = ``decay_rate``
  (Lavín Pallero 2021 §2.2.2.5); with one step per epoch this is PyTorch's ``ExponentialLR`` with γ = e^{−k}.
* ``inverse-time``: η_t = η / (a + k e), a = ``decay_offset`` (1), k = ``decay_rate`` (Lavín Pallero
  2021 §2.2.2.5).
* ``linear``: η_t = (1 − α)η + α τ-end, α = min(1, t / τ), τ = ``decay_epochs`` epochs, ending at
  η · ``end_factor`` (0.01) and constant afterwards (Goodfellow, Bengio & Courville 2016, eq. 8.14).

Warm-up composes with every decay except one-cycle and triangular (which have their own rise):
``warmup = "linear"`` multiplies η by (t + 1)/W for t < W (Goyal et al. 2017), ``warmup = "constant"`` uses
η · ``warmup_factor`` for t < W (He et al. 2016); the decay then starts at t = W as if from step 0 and
spreads over the remaining T − W planned steps. The named schedule ``warmup`` is linear warm-up followed
by ``constant``.
"""
from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trainlab.core.config import ConfigError
from trainlab.core.registry import Registry



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


@dataclass(frozen=True)
class Exponential(Schedule):
    """η e^{−k t / s}: ``decay_rate`` k per epoch of s = ``steps_per_epoch`` steps."""

    base_lr: float
    decay_rate: float
    steps_per_epoch: int = 1

    def lr(self, t: int) -> float:
        return self.base_lr * math.exp(-self.decay_rate * t / self.steps_per_epoch)


@dataclass(frozen=True)
class InverseTime(Schedule):
    """η / (a + k t / s): offset a, ``decay_rate`` k per epoch of s steps."""

    base_lr: float
    decay_rate: float
    offset: float = 1.0
    steps_per_epoch: int = 1

    def lr(self, t: int) -> float:
        return self.base_lr / (self.offset + self.decay_rate * t / self.steps_per_epoch)


@dataclass(frozen=True)
class LinearToConstant(Schedule):
    """(1 − α)η + α η·``end_factor`` with α = min(1, t / τ): linear decay to step τ, then constant."""

    base_lr: float
    decay_steps: int
    end_factor: float

    def lr(self, t: int) -> float:
        alpha = min(1.0, t / self.decay_steps)
        return (1 - alpha) * self.base_lr + alpha * self.base_lr * self.end_factor


@dataclass(frozen=True)
class WarmedUp(Schedule):
    """``warmup_lr(t)`` for t < W, then ``after`` shifted to start at step W."""

    after: Schedule
    warmup_steps: int
    kind: str = "linear"
    factor: float = 0.1

    def lr(self, t: int) -> float:
        if t >= self.warmup_steps:
            return self.after.lr(t - self.warmup_steps)
        peak = self.after.lr(0)
        if self.kind == "linear":
            return peak * (t + 1) / self.warmup_steps
        return peak * self.factor

    def momentum(self, t: int) -> float | None:
        return self.after.momentum(max(0, t - self.warmup_steps))


@dataclass(frozen=True)
class ScheduleOptions:
    """Everything a schedule may read: the base lr, the step geometry and each schedule's options."""

    lr: float
    steps_per_epoch: int
    total_steps: int | None
    step_epochs: float = 10.0
    gamma: float = 0.1
    min_lr: float = 0.0
    warmup_epochs: float = 1.0
    pct_start: float = 0.25
    div: float = 25.0
    div_final: float = 1e5
    moms: Sequence[float] | None = (0.95, 0.85, 0.95)
    decay_rate: float = 0.1
    decay_offset: float = 1.0
    decay_epochs: float = 10.0
    end_factor: float = 0.01

    def steps(self, epochs: float) -> int:
        return max(1, round(epochs * self.steps_per_epoch))

    @property
    def total(self) -> int:
        return max(1, self.total_steps or 1)


@dataclass(frozen=True)
class ScheduleEntry:
    """A registered schedule: its builder, whether it needs the planned total and whether warm-up composes."""

    build: Callable[[ScheduleOptions], Schedule]
    needs_total: bool = False
    warmup_composes: bool = True


SCHEDULE_REGISTRY: Registry[ScheduleEntry] = Registry("schedule")
WARMUPS = ("none", "linear", "constant")


def _one_cycle(o: ScheduleOptions) -> Schedule:
    cycle = None if o.moms is None else (float(o.moms[0]), float(o.moms[1]), float(o.moms[2]))
    return OneCycle(o.lr, o.total, o.pct_start, o.div, o.div_final, cycle)


SCHEDULE_REGISTRY.register("constant")(ScheduleEntry(lambda o: Constant(o.lr)))
SCHEDULE_REGISTRY.register("warmup")(ScheduleEntry(lambda o: Constant(o.lr)))
SCHEDULE_REGISTRY.register("step")(ScheduleEntry(lambda o: StepDecay(o.lr, o.steps(o.step_epochs), o.gamma)))
SCHEDULE_REGISTRY.register("cosine")(ScheduleEntry(lambda o: Cosine(o.lr, o.total, o.min_lr), needs_total=True))
SCHEDULE_REGISTRY.register("exponential")(
    ScheduleEntry(lambda o: Exponential(o.lr, o.decay_rate, o.steps_per_epoch))
)
SCHEDULE_REGISTRY.register("inverse-time")(
    ScheduleEntry(lambda o: InverseTime(o.lr, o.decay_rate, o.decay_offset, o.steps_per_epoch))
)
SCHEDULE_REGISTRY.register("linear")(
    ScheduleEntry(lambda o: LinearToConstant(o.lr, o.steps(o.decay_epochs), o.end_factor))
)
SCHEDULE_REGISTRY.register("one-cycle")(ScheduleEntry(_one_cycle, needs_total=True, warmup_composes=False))
SCHEDULE_REGISTRY.register("triangular")(
    ScheduleEntry(
        lambda o: Triangular(o.lr, o.total, o.pct_start, o.min_lr, o.lr / o.div_final),
        needs_total=True,
        warmup_composes=False,
    )
)

SCHEDULES = tuple(SCHEDULE_REGISTRY.names())
NEEDS_TOTAL = tuple(name for name in SCHEDULES if SCHEDULE_REGISTRY.get(name).needs_total)


def make_schedule(
    name: str,
    *,
    lr: float,
    steps_per_epoch: int,
    total_steps: int | None,
    warmup: str = "none",
    warmup_factor: float = 0.1,
    where: str = "schedule",
    **options: Any,
) -> Schedule:
    """The schedule ``name`` for base (or maximum) learning rate ``lr``, optionally after a warm-up.

    ``options`` are :class:`ScheduleOptions` fields (``step_epochs``, ``gamma``, ``decay_rate``...).
    ``total_steps`` is required by ``cosine``, ``one-cycle`` and ``triangular``; ``where`` prefixes
    error fields.
    """
    entry = SCHEDULE_REGISTRY.get(name) if name in SCHEDULE_REGISTRY else None
    if entry is None:
        raise ConfigError(where, name, "one of " + ", ".join(SCHEDULES))
    if name in NEEDS_TOTAL and total_steps is None:
        raise ConfigError(
            where, name, "a budget in epochs, steps or sample_evals (this schedule needs the total number of steps)"
        )
    if warmup not in WARMUPS:
        raise ConfigError(f"{where}.warmup", warmup, "one of " + ", ".join(WARMUPS))
    if name == "warmup":
        if warmup == "constant":
            raise ConfigError(f"{where}.warmup", warmup, "none or linear with schedule 'warmup' (linear warm-up)")
        warmup = "linear"
    if warmup != "none" and not entry.warmup_composes:
        raise ConfigError(f"{where}.warmup", warmup, f"none (schedule {name!r} has its own warm-up)")
    opts = ScheduleOptions(lr, steps_per_epoch, total_steps, **options)
    if warmup == "none":
        return entry.build(opts)
    w = opts.steps(opts.warmup_epochs)
    rest = None if total_steps is None else max(1, total_steps - w)
    after = entry.build(dataclasses.replace(opts, total_steps=rest))
    return WarmedUp(after, w, warmup, warmup_factor)


def apply_schedule(
    optimizer: torch.optim.Optimizer, schedule: Schedule, t: int, momentum_key: str | None
) -> tuple[float, float | None]:
    """Write η_t (and the momentum, into ``momentum_key`` of each param group) and return them."""
    lr = schedule.lr(t)
    mom = schedule.momentum(t) if momentum_key is not None else None
    for group in optimizer.param_groups:
        group["lr"] = lr
        if mom is not None and momentum_key == "betas":
            group["betas"] = (mom, group["betas"][1])
        elif mom is not None and momentum_key is not None:
            group[momentum_key] = mom
    return lr, mom
