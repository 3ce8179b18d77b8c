"""Loss functions by name. Every loss maps (outputs, targets, step) to a scalar mean over samples.

``step`` is the optimisation step ``t``; static losses ignore it, dynamic losses (Ruiz-García et al. 2021) use it.
All losses are pure tensor functions, so they work under ``torch.func`` transforms (vmap, grad, hessian).

Static losses (Furió Agustí 2024, appendix B; per sample, then averaged over samples): ``mse``, ``mae``,
``huber``, ``cross_entropy``, ``kl_divergence``, ``hellinger``; ``binary_cross_entropy`` (a sigmoid per
output) and ``multiclass_hinge``. Classification outputs are logits; the
probability-based losses apply a softmax first. Class-index targets are one-hot encoded.

Dynamic losses (Ruiz-García et al. 2021 "Tilting the playing field"; Lavín Pallero 2021 for the dynamic MSE and
the equation numbers below): ``dynamic_ce``, ``dynamic_mse1``, ``dynamic_mse2``, driven by the class factors
Γ(t) of :class:`DynamicSchedule`.
"""
from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from trainlab.core.config import ConfigError, check_number, from_mapping
from trainlab.core.registry import Registry

if TYPE_CHECKING:
    from matplotlib.axes import Axes

LOSSES: Registry[type["Loss"]] = Registry("loss")


class Loss(ABC):
    """Base class: ``per_sample`` returns shape (N,); calling the loss returns its mean."""

    name: str = ""

    @abstractmethod
    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor: ...

    def __call__(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        return self.per_sample(outputs, targets, step).mean()

    def static(self) -> Loss:
        """The ordinary loss this one reduces to when nothing changes in time (itself for static losses)."""
        return self

    def config(self) -> dict[str, Any]:
        """The name and every parameter, such that ``get_loss(**config())`` rebuilds the loss."""
        params: dict[str, Any] = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}
        return {"name": self.name, **params}


def as_target_matrix(outputs: Tensor, targets: Tensor) -> Tensor:
    """Targets shaped like ``outputs``: one-hot for class indices, reshaped for values."""
    if targets.dtype in (torch.int64, torch.int32):
        return F.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)
    return targets.reshape(outputs.shape).to(outputs.dtype)


def per_sequence(values: Tensor) -> Tensor:
    """Per-sample values (N,) from per-step values (N, T, …): the mean over steps (sequence outputs)."""
    return values if values.ndim == 1 else values.flatten(1).mean(1)


def _class_indices(loss: str, targets: Tensor) -> Tensor:
    if targets.dtype not in (torch.int64, torch.int32):
        raise ConfigError(f"{loss}.targets", f"tensor of {targets.dtype}", "class indices (int64), one per sample")
    return targets


@LOSSES.register("cross_entropy")
@dataclass(frozen=True)
class CrossEntropy(Loss):
    """ℓ(z, y) = −log softmax(z)_y; for sequence outputs (N, T, C) and targets (N, T), the mean over steps.

    Targets are class indices or rows of class probabilities. Calling the loss computes the mean with
    ``F.cross_entropy``'s own mean reduction (one fused autograd node, as a hand-written PyTorch loop does):
    the mean of :meth:`per_sample` up to rounding.
    """

    name = "cross_entropy"

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        if outputs.ndim > 2:
            return per_sequence(F.cross_entropy(outputs.movedim(-1, 1), targets, reduction="none"))
        return F.cross_entropy(outputs, targets, reduction="none")

    def __call__(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        if outputs.ndim > 2:
            return F.cross_entropy(outputs.movedim(-1, 1), targets)
        return F.cross_entropy(outputs, targets)


@LOSSES.register("mse")
@dataclass(frozen=True)
class MSE(Loss):
    """ℓ(z, y) = Σ_k (z_k − y_k)², summed over outputs (one-hot targets for class indices).

    This is Lavín Pallero's (2021) convention (``mean((f − Y)²)·C``), so its learning rates mean the same here.
    For sequence outputs (N, T, C), the mean over steps of that sum. Calling the loss takes the mean of
    :meth:`per_sample` (not the fused ``F.mse_loss``, whose backward has no forward-mode derivative against a
    constant target in torch 2.13, which forward-over-reverse Hessian-vector products need).
    """

    name = "mse"

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        return per_sequence(((outputs - as_target_matrix(outputs, targets)) ** 2).sum(dim=-1))


@LOSSES.register("mae")
@dataclass(frozen=True)
class MAE(Loss):
    """ℓ(z, y) = ‖z − y‖₁ = Σ_k |z_k − y_k| (Furió Agustí 2024, B.2.1)."""

    name = "mae"

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        return (outputs - as_target_matrix(outputs, targets)).abs().sum(dim=-1)


@LOSSES.register("huber")
@dataclass(frozen=True)
class Huber(Loss):
    """ℓ(z, y) = Σ_k L_δ(z_k − y_k), L_δ(r) = r²/2 if |r| ≤ δ else δ(|r| − δ/2) (Huber 1964;
    Furió Agustí 2024, B.2.1)."""

    delta: float = 1.0
    name = "huber"

    def __post_init__(self) -> None:
        check_number("delta", self.delta, low=0, low_open=True)

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        target = as_target_matrix(outputs, targets)
        return F.huber_loss(outputs, target, reduction="none", delta=self.delta).sum(dim=-1)


@LOSSES.register("kl_divergence")
@dataclass(frozen=True)
class KLDivergence(Loss):
    """ℓ(z, y) = D_KL(y ‖ softmax(z)) = Σ_k y_k log(y_k / softmax(z)_k), with 0·log 0 = 0 (Kullback & Leibler
    1951; Furió Agustí 2024, B.2.2).

    Targets are class indices (one-hot, where this equals cross-entropy) or rows of probabilities.
    """

    name = "kl_divergence"

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        target = as_target_matrix(outputs, targets)
        return F.kl_div(F.log_softmax(outputs, dim=-1), target, reduction="none").sum(dim=-1)


@LOSSES.register("hellinger")
@dataclass(frozen=True)
class Hellinger(Loss):
    """ℓ(z, y) = ‖√softmax(z) − √y‖₂ / √2, the Hellinger distance (Hellinger 1909; Furió Agustí 2024,
    B.2.2)."""

    name = "hellinger"

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        root_p = torch.exp(0.5 * F.log_softmax(outputs, dim=-1))
        root_y = as_target_matrix(outputs, targets).clamp_min(0).sqrt()
        return torch.linalg.vector_norm(root_p - root_y, dim=-1) / math.sqrt(2.0)


@LOSSES.register("binary_cross_entropy")
@dataclass(frozen=True)
class BinaryCrossEntropy(Loss):
    """ℓ(z, y) = −Σ_k [y_k log σ(z_k) + (1 − y_k) log(1 − σ(z_k))], one sigmoid per output.

    Class indices become one-hot rows (one-vs-rest logistic regression per class, Bishop 2006 §4.3.2);
    with a single output, integer targets 0/1 are that output's label. Value targets are probabilities.
    """

    name = "binary_cross_entropy"

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        if outputs.shape[-1] == 1 and targets.dtype in (torch.int64, torch.int32):
            target = targets.reshape(outputs.shape).to(outputs.dtype)
        else:
            target = as_target_matrix(outputs, targets)
        return F.binary_cross_entropy_with_logits(outputs, target, reduction="none").sum(dim=-1)


@LOSSES.register("multiclass_hinge")
@dataclass(frozen=True)
class MulticlassHinge(Loss):
    """ℓ(z, y) = (1/C) Σ_{k≠y} max(0, m − z_y + z_k)^p (Weston & Watkins 1999; PyTorch's ``MultiMarginLoss``).

    ``margin`` m (1) and ``power`` p (1, or 2 for the squared hinge); targets are class indices.
    """

    margin: float = 1.0
    power: int = 1
    name = "multiclass_hinge"

    def __post_init__(self) -> None:
        check_number("margin", self.margin, low=0, low_open=True)
        if self.power not in (1, 2) or isinstance(self.power, bool):
            raise ConfigError("power", self.power, "one of 1, 2")

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        y = _class_indices(self.name, targets)
        true = outputs.gather(-1, y.unsqueeze(-1))
        slack = (self.margin - true + outputs).clamp_min(0) ** self.power
        slack = slack * (1 - F.one_hot(y, outputs.shape[-1]).to(outputs.dtype))
        return slack.sum(dim=-1) / outputs.shape[-1]


# --------------------------------------------------------------------------------------------------
# Dynamic losses (Ruiz-García et al. 2021; Lavín Pallero 2021)


@dataclass(frozen=True)
class DynamicSchedule:
    """The class factors Γ(t) of Ruiz-García et al. (2021), as in Lavín Pallero (2021) eqs. (3.2)–(3.5).

    With period T, amplitude A ≥ 1 and C classes, at step t: t_T = t mod T, the emphasised class is
    i = ⌊t / T⌋ mod C, and g(t_T) = 1 + m·min(t_T, T − t_T) with m = 2(A − 1)/T rises linearly from 1
    to A over the first half of the period and falls back to 1 over the second. Raw factors:
    Γ̂_i = g(t_T), Γ̂_j = 1 for j ≠ i. Normalised factors: Γ_j = C·Γ̂_j / Σ_k Γ̂_k (they sum to C).

    Oscillations stop (A = 1) from step ``stop_at`` on, or — with ``total_steps`` — for the last
    period, t ≥ total_steps − T (the thesis's ``last_period_no_osc``); give at most one of the two.

    ``code_period`` follows the code printed in Lavín Pallero (2021, §5.10) instead of the formulas: its
    in-period counter runs 0, 1, …, ⌊T⌋ and is reset only once it exceeds T, so a period lasts
    P = ⌊T⌋ + 1 steps: t_T = t mod P and i = ⌊t / P⌋ mod C (g keeps its slope m = 2(A − 1)/T, so
    g = 1 at both t_T = 0 and t_T = T). Its ``last_period_no_osc`` is checked only when a period ends,
    so with ``total_steps`` = S the oscillations stop at the first period end after step S − T: from step
    kP with k the smallest integer ≥ 1 such that kP − 1 > S − T (fewer than T static steps, or none).
    """

    amplitude: float = 1.0
    period: float = 100
    normalise: bool = True
    stop_at: int | None = None
    total_steps: int | None = None
    code_period: bool = False

    def __post_init__(self) -> None:
        check_number("amplitude", self.amplitude, low=1)
        check_number("period", self.period, low=0, low_open=True)
        for flag in ("normalise", "code_period"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(flag, getattr(self, flag), "true or false")
        for key in ("stop_at", "total_steps"):
            if getattr(self, key) is not None:
                check_number(key, getattr(self, key), low=0, integer=True)
        if self.stop_at is not None and self.total_steps is not None:
            raise ConfigError("stop_at", self.stop_at, "None when total_steps is given (use one of the two)")

    @property
    def steps_per_period(self) -> float:
        """Steps between two changes of the emphasised class: T, or ⌊T⌋ + 1 with ``code_period``."""
        return math.floor(self.period) + 1 if self.code_period else self.period

    @property
    def static_from(self) -> float:
        """First step without oscillations (∞ when they never stop)."""
        if self.stop_at is not None:
            return self.stop_at
        if self.total_steps is not None:
            if self.code_period:
                p = self.steps_per_period
                return p * max(1, math.floor((self.total_steps - self.period + 1) / p) + 1)
            return self.total_steps - self.period
        return math.inf

    def g(self, t: Tensor | int) -> Tensor:
        """g(t_T) as float64, elementwise over ``t`` (1 where oscillations are stopped)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        t_in = torch.remainder(t, self.steps_per_period)
        slope = 2.0 * (self.amplitude - 1.0) / self.period
        g = 1.0 + slope * torch.minimum(t_in, self.period - t_in)
        return torch.where(t >= self.static_from, torch.ones_like(g), g)

    def factors(self, t: Tensor | int | Sequence[int], n_classes: int) -> Tensor:
        """Γ(t) (or Γ̂(t) when ``normalise`` is false): float64 of shape (C,) for a scalar t, (len(t), C) else."""
        check_number("n_classes", n_classes, low=1, integer=True)
        t = torch.as_tensor(t, dtype=torch.float64)
        g = self.g(t)
        emphasised = torch.remainder(torch.floor(t / self.steps_per_period), n_classes).long()
        raw = 1.0 + (g - 1.0).unsqueeze(-1) * F.one_hot(emphasised, n_classes).to(torch.float64)
        if self.normalise:
            return n_classes * raw / raw.sum(dim=-1, keepdim=True)
        return raw

    def plot(self, steps: int, n_classes: int, ax: Axes | None = None) -> Axes:
        """Draw Γ_j(t) for t = 0 … steps − 1, one line per class (Lavín Pallero 2021, fig. 3.1), titled with A
        and T; the legend sits outside the axes, right of the plot, so that it hides no curve."""
        from matplotlib.figure import Figure

        if ax is None:
            ax = Figure(figsize=(7.5, 2.8), layout="constrained").subplots()
        t = torch.arange(steps)
        values = self.factors(t, n_classes).numpy()
        for j in range(n_classes):  # classes not emphasised share Γ: thinner, dashed lines on top keep each visible
            ax.plot(t.numpy(), values[:, j], label=f"class {j}", linewidth=max(0.8, 3.0 - 0.7 * j),
                    linestyle=("-", "--", ":", "-.")[j % 4])
        ax.set_xlabel("step t")
        ax.set_ylabel("Γ(t)" if self.normalise else "Γ̂(t)")
        ax.set_title(f"{'Γ(t)' if self.normalise else 'Γ̂(t)'}: amplitude A = {self.amplitude:g}, "
                     f"period T = {self.period:g}"
                     f"{f' (printed code: {self.steps_per_period:g} steps)' if self.code_period else ' steps'}, "
                     f"{n_classes} classes")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0.0)
        return ax


def gamma(
    t: Tensor | int | Sequence[int],
    n_classes: int,
    *,
    amplitude: float,
    period: float,
    normalise: bool = True,
    stop_at: int | None = None,
    total_steps: int | None = None,
    code_period: bool = False,
) -> Tensor:
    """Γ(t) of Ruiz-García et al. 2021 (see :class:`DynamicSchedule`): shape (C,) for a scalar ``t``, (len(t), C)
    else."""
    schedule = DynamicSchedule(amplitude, period, normalise, stop_at, total_steps, code_period)
    return schedule.factors(t, n_classes)


@dataclass(frozen=True)
class DynamicLoss(Loss):
    """A loss whose class factors follow a :class:`DynamicSchedule`; ``weighted`` takes the factors
    explicitly, so that batched engines can supply one factor vector per configuration."""

    amplitude: float = 1.0
    period: float = 100
    normalise: bool = True
    stop_at: int | None = None
    total_steps: int | None = None
    code_period: bool = False

    def __post_init__(self) -> None:
        schedule = DynamicSchedule(
            self.amplitude, self.period, self.normalise, self.stop_at, self.total_steps, self.code_period
        )
        object.__setattr__(self, "_schedule", schedule)

    def config(self) -> dict[str, Any]:
        """As :meth:`Loss.config`, without ``code_period`` when it is false: the option came after the run ids
        of existing studies were fixed, and leaving its default out keeps those ids."""
        config = super().config()
        if not self.code_period:
            config.pop("code_period")
        return config

    @property
    def schedule(self) -> DynamicSchedule:
        return self._schedule  # type: ignore[attr-defined]

    def factors(self, step: int, n_classes: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        return self.schedule.factors(step, n_classes).to(dtype=dtype, device=device)

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        factors = self.factors(step, outputs.shape[-1], outputs.dtype, outputs.device)
        return self.weighted(outputs, _class_indices(self.name, targets), factors)

    def __call__(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        """The mean of :meth:`per_sample`; at amplitude 1 (every factor is 1 at every step) the static loss's
        own call, so that such a run trains bit for bit like one with :meth:`static`."""
        if self.amplitude == 1 and (static := self.static()) is not self:
            return static(outputs, _class_indices(self.name, targets), step)
        return super().__call__(outputs, targets, step)

    @abstractmethod
    def weighted(self, outputs: Tensor, targets: Tensor, factors: Tensor) -> Tensor:
        """Per-sample loss for class-index ``targets`` given the class factors ``factors`` of shape (C,)."""


@LOSSES.register("dynamic_ce")
@dataclass(frozen=True)
class DynamicCrossEntropy(DynamicLoss):
    """F = (1/N) Σ_j Γ_{y_j}(t) · (−log softmax(f(x_j))_{y_j}), Lavín Pallero 2021 eq. (3.1)."""

    name = "dynamic_ce"

    def weighted(self, outputs: Tensor, targets: Tensor, factors: Tensor) -> Tensor:
        return factors[targets] * F.cross_entropy(outputs, targets, reduction="none")

    def static(self) -> Loss:
        return CrossEntropy()


@LOSSES.register("dynamic_mse1")
@dataclass(frozen=True)
class DynamicMSE1(DynamicLoss):
    """F = (1/N) Σ_j Γ_{y_j}(t) · Σ_k (f_k(x_j) − ŷ_{jk})², Lavín Pallero 2021 version 1
    (``weighted_loss_MSE_old``)."""

    name = "dynamic_mse1"

    def weighted(self, outputs: Tensor, targets: Tensor, factors: Tensor) -> Tensor:
        return factors[targets] * ((outputs - as_target_matrix(outputs, targets)) ** 2).sum(dim=-1)

    def static(self) -> Loss:
        return MSE()


@LOSSES.register("dynamic_mse2")
@dataclass(frozen=True)
class DynamicMSE2(DynamicLoss):
    """F = (1/N) Σ_j Σ_k (f_k(x_j) − Γ̂_k(t) ŷ_{jk})², Lavín Pallero 2021 version 2, eq. (4.5).

    The one-hot target is multiplied by the raw factors, so the emphasised class's target becomes
    g(t_T) (``normalise`` defaults to false here). With ``rescale`` the loss is also multiplied by
    C / Σ_k Γ̂_k², as the thesis's code does (``weighted_loss_MSE_new``: ``·C²/(2 + amp²)`` for C = 3),
    which keeps the step size of the emphasised class bounded as A grows.
    """

    normalise: bool = False
    rescale: bool = False
    name = "dynamic_mse2"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.rescale, bool):
            raise ConfigError("rescale", self.rescale, "true or false")

    def weighted(self, outputs: Tensor, targets: Tensor, factors: Tensor) -> Tensor:
        target = as_target_matrix(outputs, targets) * factors
        loss = ((outputs - target) ** 2).sum(dim=-1)
        if self.rescale:
            loss = loss * (factors.shape[-1] / (factors**2).sum(dim=-1))
        return loss

    def static(self) -> Loss:
        return MSE()


def get_loss(name: str, **params: Any) -> Loss:
    """Instantiate the loss registered under ``name`` with ``params`` (unknown ones raise ConfigError)."""
    return from_mapping(LOSSES.get(name), params, where=f"loss.{name}")
