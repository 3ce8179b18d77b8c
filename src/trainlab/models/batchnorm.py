"""Batch norm as a function: the two modes a network's batch-norm layers run in, and recalibration.

Batch norm (Ioffe & Szegedy 2015, ICML) normalises a channel c over a set B of activations,
BN(h) = γ (h − μ) / √(σ² + ε) + β, with one of two choices of (μ, σ²):

* ``"batch"``: the statistics of the batch being evaluated, μ_B = mean over B and the *biased*
  σ²_B = mean over B of (h − μ_B)², over every dimension but the channel one; running statistics are
  neither read nor written. This is the function a training-mode forward computes and differentiates
  (``"train"`` is accepted as torch's name for it). It is written with plain tensor operations, which
  ``torch.func.vmap`` batches far faster than ``torch.batch_norm``'s batching rule, and which
  ``torch.func`` differentiates to any order.
* ``"eval"``: the layer's running statistics (``running_mean``, ``running_var``), so every sample is
  normalised on its own.

Recalibration (:func:`recalibrate`) links the two: it sets every layer's running statistics to the
full-set statistics of its inputs, computed in batch mode over given batches, layer by layer (each
layer's inputs are those the layers before it produce in batch mode). The running variance stored is
the *biased* full-set variance — deliberately, not torch's unbiased running estimate — so that after
recalibrating on the set a batch-mode loss was computed on, the eval-mode model computes exactly that
function: the model that is validated is the model that was optimised. (A layer normalised with the
unbiased N/(N−1)·σ² would scale every normalised activation by √((σ² + ε)/(N/(N−1)·σ² + ε)) ≈ 1 − 1/(2N).)
With one batch this is torch's cumulative average (``momentum=None``) after one training-mode forward,
times (N−1)/N; with several batches, the sample-weighted pooled mean and variance over all of them.
Dropout is off while recalibrating.

Used by the population engine (fitness), the second-order trainers (their objective), the gradient
trainers (per-sample SGD with frozen batch norm) and the curvature diagnostics.
"""
from __future__ import annotations

import contextlib
import types
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor, nn

from trainlab.core.config import check_choice

BN_MODES = ("batch", "eval")
"""Batch statistics, or running statistics (see the module docstring)."""
BN_ALIASES = {"train": "batch"}
"""Other names accepted for a mode: torch's ``train`` (a training-mode forward) is ``batch``."""


def check_bn_mode(value: str, field: str = "bn") -> str:
    """The mode ``value`` names (:data:`BN_MODES`, or an alias in :data:`BN_ALIASES`); a
    :class:`~trainlab.core.config.ConfigError` naming ``field`` otherwise."""
    check_choice(field, value, (*BN_MODES, *BN_ALIASES))
    return BN_ALIASES.get(value, value)


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every batch-norm layer of ``model`` (``BatchNorm1d/2d/3d`` and their subclasses)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def normalise(h: Tensor, dims: list[int], eps: float) -> Tensor:
    """(h − μ) / √(σ² + ε) with the mean μ and the biased variance σ² of ``h`` over ``dims``."""
    centred = h - h.mean(dims, keepdim=True)
    return centred * torch.rsqrt((centred * centred).mean(dims, keepdim=True) + eps)


def channel_dims(x: Tensor) -> list[int]:
    """The dimensions batch norm reduces over for an input (N, C, ...): all but the channel one."""
    return [0, *range(2, x.ndim)]


def batch_statistics_forward(self: nn.modules.batchnorm._BatchNorm, x: Tensor) -> Tensor:
    """A batch-norm layer's forward in ``"batch"`` mode: :func:`normalise` over :func:`channel_dims`, then
    γ and β when the layer is affine. Running statistics are untouched."""
    y = normalise(x, channel_dims(x), self.eps)
    if self.affine:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
    return y


@contextlib.contextmanager
def bn_mode(model: nn.Module, mode: str, *, keep_others: bool = False) -> Iterator[None]:
    """Run ``model``'s batch-norm layers in ``mode`` (:data:`BN_MODES`) for the duration.

    Every other module is put in eval mode (dropout off, a deterministic function), unless
    ``keep_others`` leaves their training flags as they are (a training step with frozen batch norm:
    ``bn_mode(model, "eval", keep_others=True)``). In ``"batch"`` mode each layer's forward is
    :func:`batch_statistics_forward`, which works inside ``torch.func.functional_call``, ``vmap`` and
    ``grad``. The model's modes and forwards are restored afterwards.
    """
    mode = check_bn_mode(mode)
    modes = {m: m.training for m in model.modules()}
    norms = batch_norm_layers(model)
    if keep_others:
        for m in norms:
            m.eval()
    else:
        model.eval()
    patched = {m: m.__dict__.get("forward") for m in norms} if mode == "batch" else {}
    for m in patched:
        m.forward = types.MethodType(batch_statistics_forward, m)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for m, previous in patched.items():
            if previous is None:
                del m.forward
            else:
                m.forward = previous  # type: ignore[method-assign]
        for module, training in modes.items():
            module.training = training


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Set every batch-norm layer's running statistics to the mean and biased variance of its inputs over
    all of ``batches`` (inputs of ``model``), each batch run in ``"batch"`` mode with dropout off (see the
    module docstring). Layers without running statistics are left alone. Returns the number of samples
    passed (0, and nothing run, when the model has no layer to recalibrate)."""
    norms = [m for m in batch_norm_layers(model) if m.track_running_stats]
    if not norms:
        return 0
    sums: dict[nn.Module, tuple[Tensor, Tensor, int]] = {}

    def record(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        h = inputs[0].transpose(0, 1).reshape(inputs[0].shape[1], -1).double()
        total, squares, count = sums.get(module, (torch.zeros(()), torch.zeros(()), 0))
        sums[module] = (total + h.sum(1), squares + (h * h).sum(1), count + h.shape[1])

    hooks = [m.register_forward_pre_hook(record) for m in norms]
    samples = 0
    try:
        with bn_mode(model, "batch"):
            for x in batches:
                model(x)
                samples += len(x)
    finally:
        for hook in hooks:
            hook.remove()
    for m in norms:
        if m not in sums:
            continue
        total, squares, count = sums[m]
        mean = total / count
        running_mean, running_var = m.running_mean, m.running_var
        assert isinstance(running_mean, Tensor) and isinstance(running_var, Tensor)
        running_mean.copy_(mean)
        running_var.copy_((squares / count - mean * mean).clamp_min(0))
    return samples


def split(x: Tensor, batch_size: int | None) -> list[Tensor]:
    """``x`` in consecutive batches of ``batch_size`` rows (one batch when ``None``)."""
    size = batch_size or len(x)
    return [x[i : i + size] for i in range(0, len(x), size)]
