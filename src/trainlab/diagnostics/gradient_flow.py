"""Gradient flow through time in recurrent networks (vanishing and exploding gradients).

For a sample's loss L and the top layer's hidden states h_1 … h_T, backpropagation through time gives

    ∂L/∂h_t = ∂L/∂h_T · Π_{s=t+1}^{T} ∂h_s/∂h_{s−1}  (+ direct terms for sequence outputs),

so ‖∂L/∂h_t‖ shrinks or grows geometrically in T − t when the Jacobians' norms stay below or above 1
(Bengio, Simard & Frasconi 1994; Hochreiter 1991). For an Elman RNN, ∂h_s/∂h_{s−1} =
diag(tanh′)·W_hh, hence the spectral radius ρ(W_hh) < 1 is sufficient for vanishing and ρ > 1 necessary
for exploding gradients (Pascanu, Mikolov & Bengio 2013). :func:`hidden_gradient_norms` measures
‖∂L/∂h_t‖ (each sample's own loss, averaged over samples), :class:`GradientFlow` records it and the
spectral radii of the recurrent blocks during training, and :func:`plot_gradient_flow` draws it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.core.config import ConfigError, check_number
from trainlab.losses import Loss
from trainlab.models.recurrent import RecurrentNet, gate_spectral_radii

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _recurrent(model: torch.nn.Module) -> RecurrentNet:
    if not isinstance(model, RecurrentNet):
        raise ConfigError("model", type(model).__name__, "a recurrent network (rnn, lstm or gru)")
    return model


def hidden_gradient_norms(model: torch.nn.Module, x: Tensor, y: Tensor, loss: Loss, step: int = 0) -> Tensor:
    """‖∂L_i/∂h_t‖₂ averaged over the samples i of ``(x, y)``, for t = 1 … T: a (T,) tensor.

    L_i is sample i's own loss (``loss.per_sample``), so the values do not depend on the batch size."""
    net = _recurrent(model)
    with torch.enable_grad():
        out, states = net.hidden_states(x)
        value = loss.per_sample(out, y, step).sum()
        grads = torch.autograd.grad(value, states, allow_unused=True, materialize_grads=True)
    return torch.stack([g.norm(dim=-1).mean() for g in grads]).detach()


def decay_rate(norms: Tensor, skip_last: int = 1) -> float:
    """Least-squares slope of log‖∂L/∂h_t‖ against the distance T − t, over t ≤ T − ``skip_last``:
    negative when gradients vanish back in time, positive when they explode; exp(rate) is the factor
    applied per step back."""
    values = norms[: len(norms) - skip_last].double()
    keep = values > 0
    t = torch.arange(len(values), dtype=torch.float64)[keep]
    logs = values[keep].log()
    if len(t) < 2:
        return float("nan")
    tc = t - t.mean()
    return -float((tc * (logs - logs.mean())).sum() / (tc * tc).sum())


class GradientFlow(Callback):
    """Every ``every`` optimizer steps (and at the start) log ``gradient_flow`` rows: ‖∂L/∂h_t‖ for
    t = 1 … T on the first ``samples`` training samples, its log-slope and the recurrent blocks'
    spectral radii (:func:`~trainlab.models.recurrent.gate_spectral_radii`)."""

    def __init__(self, every: int = 100, samples: int = 256):
        self.every = check_number("every", every, low=1, integer=True)
        self.samples = check_number("samples", samples, low=1, integer=True)

    def _measure(self, state: TrainState) -> None:
        split = state.task.train
        x, y = split.x[: self.samples], split.y[: self.samples]
        norms = hidden_gradient_norms(state.model, x, y, state.loss.static(), state.step)
        state.log(
            "gradient_flow",
            norms=norms.tolist(),
            slope=decay_rate(norms),
            spectral_radius=gate_spectral_radii(_recurrent(state.model)),
        )

    def on_fit_start(self, state: TrainState) -> None:
        self._measure(state)

    def on_step_end(self, state: TrainState) -> None:
        if state.step % self.every == 0:
            self._measure(state)


def plot_gradient_flow(curves: Mapping[str, Sequence[float]], ax: Axes | None = None, title: str = "") -> Axes:
    """‖∂L/∂h_t‖ against t on a log scale, one line per entry of ``curves`` (label → norms)."""
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.subplots(figsize=(6, 3.5))[1]
    for label, norms in curves.items():
        ax.semilogy(range(1, len(norms) + 1), list(norms), label=label)
    ax.set_xlabel("time step t")
    ax.set_ylabel("‖∂L/∂h_t‖ (mean over samples)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax
