"""Regularisation: weight penalties, decoupled weight decay, dropout rate, early stopping, weight averaging.

Penalties and decoupled decay act on the *weights* W: parameters with at least two dimensions (linear
and convolution kernels), not biases nor batch-norm scales, as in notes 001 ("W_t is θ_t with the
biases set to 0"). With λ > 0:

* L1: λ‖W‖₁;  L2: (λ/2)‖W‖₂²;  Lm: (λ/m) Σ|w|^m (notes 001 §4.1), so that ∇ = λ·sign(W)·|W|^(m−1).
* Decoupled weight decay (Loshchilov & Hutter 2019): W ← W − η_t λ W before each optimizer step
  (whose gradient was taken at the undecayed W), as ``torch.optim.AdamW`` does.
* Polyak averaging θ̂_t = (1/t) Σ θ_i and its exponential form θ̂_t = α θ̂_{t−1} + (1 − α) θ_t (Goodfellow
  et al. §8.7.3), via ``torch.optim.swa_utils.AveragedModel``; batch-norm buffers are the trained model's.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from trainlab.trainers.callbacks import Callback, Penalty, TrainState
from trainlab.core.config import ConfigError


def weight_names(model: nn.Module) -> list[str]:
    """Names of the parameters that penalties act on: trainable ones with ``ndim >= 2``."""
    return [n for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]


@dataclass(frozen=True)
class WeightPenalty:
    """Σ_m (λ_m / m) Σ_{w ∈ W} |w|^m over the parameters ``names``; a :data:`~trainlab.trainers.callbacks.Penalty`.

    ``terms`` holds (λ, m) pairs: L1 is (λ, 1), L2 is (λ, 2), Lm is (λ, m).
    """

    names: tuple[str, ...]
    terms: tuple[tuple[float, float], ...]

    def __call__(self, params: dict[str, Tensor]) -> Tensor:
        weights = [params[n] for n in self.names]
        total = weights[0].new_zeros(())
        for lam, m in self.terms:
            if m == 1:
                s = sum(w.abs().sum() for w in weights)
            elif m == 2:
                s = sum(w.square().sum() for w in weights)
            else:
                s = sum(w.abs().pow(m).sum() for w in weights)
            total = total + (lam / m) * s
        return total


def make_penalty(model: nn.Module, l1: float = 0.0, l2: float = 0.0, lm: float = 0.0, m: float = 3.0) -> Penalty | None:
    """The combined L1/L2/Lm penalty on ``model``'s weights, or ``None`` when every λ is 0."""
    terms = tuple((lam, order) for lam, order in ((l1, 1.0), (l2, 2.0), (lm, m)) if lam > 0)
    names = tuple(weight_names(model))
    if not terms or not names:
        return None
    return WeightPenalty(names, terms)


def decay_weights(weights: list[Tensor], factor: float) -> None:
    """Decoupled weight decay W ← (1 − factor) W in place, with factor = η_t λ."""
    with torch.no_grad():
        torch._foreach_mul_(weights, 1.0 - factor)


def set_dropout(model: nn.Module, rate: float, where: str = "dropout") -> int:
    """Set the drop probability of every dropout layer of ``model`` to ``rate``; returns how many."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if not layers:
        raise ConfigError(where, rate, "only for models with dropout layers (this model has none)")
    for layer in layers:
        layer.p = rate
    return len(layers)


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved by more than ``min_delta`` for ``patience``
    recorded epochs (the selected model stays the best-validation one)."""

    def __init__(self, patience: int, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best = math.inf
        self.wait = 0

    def on_fit_start(self, state: TrainState) -> None:
        self.best, self.wait = math.inf, 0

    def on_epoch_end(self, state: TrainState) -> None:
        if not state.history or state.history[-1]["epoch"] != state.epoch:
            return
        val = state.history[-1]["val_loss"]
        if val < self.best - self.min_delta:
            self.best, self.wait = val, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            state.stop = True
            state.stop_reason = f"early stopping: no validation improvement for {self.patience} epochs"


class WeightAverager:
    """Polyak (running mean) or EMA averages of a model's parameters, updated after each step."""

    def __init__(self, model: nn.Module, kind: str, decay: float = 0.999):
        multi = get_ema_multi_avg_fn(decay) if kind == "ema" else None
        self.averaged = AveragedModel(model, multi_avg_fn=multi, use_buffers=False)
        self._params: list[Tensor] = list(model.parameters())

    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    def average(self) -> list[Tensor]:
        return list(self.averaged.module.parameters())

    def load_into(self) -> None:
        """Copy the averaged parameters into the trained model (for good)."""
        with torch.no_grad():
            torch._foreach_copy_(self._params, self.average())

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """Temporarily put the averaged parameters into the trained model (evaluation, selection)."""
        saved = [p.detach().clone() for p in self._params]
        self.load_into()
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self._params, saved)
