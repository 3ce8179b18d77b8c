"""The population engine: many parameter vectors of one network, evaluated in batched form.

A *genome* is the flat vector of a model's trainable parameters (in ``named_parameters`` order); a
population is a (P, D) tensor. :class:`ParamLayout` maps genomes to parameter dicts as views (no
per-individual model copies); :class:`PopulationEvaluator` returns the P losses with
``torch.func.functional_call`` vectorised with ``torch.func.vmap`` over chunks of individuals, as one
stacked forward (:func:`stacked_forward`, plain Sequential networks), or as a loop over individuals,
whichever is fastest on the device (``mode="auto"`` measures them once).

Batch norm is never shared between individuals and dropout is off during fitness; the modes are those
of :mod:`trainlab.models.batchnorm`:

* ``bn="batch"`` (default): every individual normalises with the statistics of the batch it is
  evaluated on (its own activations), running statistics are neither read nor written. After
  :func:`~trainlab.models.batchnorm.recalibrate` over the same data the eval-mode model computes the same
  function, so the fitness is the loss of the model that is validated.
* ``bn="eval"``: every individual uses the model's fixed running statistics (buffers are not genes).
"""
from __future__ import annotations

import math
import time

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.losses import Loss
from trainlab.models.batchnorm import bn_mode, check_bn_mode, normalise
from trainlab.models.functional import ParamLayout

MODES = ("auto", "stacked", "vmap", "loop")
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


_ELEMENTWISE = (
    nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Identity, nn.Dropout
)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def stackable(model: nn.Module) -> bool:
    """Whether :func:`stacked_forward` supports ``model``: nested ``nn.Sequential`` of Linear, Conv2d
    (zero padding, groups 1), BatchNorm1d/2d, element-wise activations, dropout, 2-d pooling, Flatten;
    or a model with its own ``stacked_forward(params, x)`` (recurrent networks)."""
    if callable(getattr(model, "stacked_forward", None)):
        return True
    for m in model.modules():
        if isinstance(m, nn.Sequential) or isinstance(m, (nn.Linear, *_BN, *_ELEMENTWISE, *_POOLS)):
            continue
        if isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros":
            continue
        if isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1:
            continue
        return False
    return True


def stacked_forward(model: nn.Module, params: dict[str, Tensor], x: Tensor, bn: str, buffers: dict[str, Tensor]) -> Tensor:
    """Outputs (N, P, ...) of P individuals (``params`` shaped (P, *shape)) of a :func:`stackable` model.

    Activations are kept as (N, P, *features): Linear layers are one batched matmul, convolutions one
    grouped convolution over the P·C channels, batch norm normalises per individual (``bn="batch"``) or
    with the shared running statistics (``bn="eval"``). Until the first layer with genes the input is
    shared by all individuals and is not replicated. A model with its own ``stacked_forward`` runs it.
    """
    own = getattr(model, "stacked_forward", None)
    if callable(own):
        return own(params, x)
    h, shared = x, True
    p_count = next(iter(params.values())).shape[0]
    for name, m in model.named_modules():
        if isinstance(m, nn.Sequential):
            continue
        pre = f"{name}."
        if isinstance(m, nn.Linear):
            w = params[pre + "weight"]
            if shared:
                h = (h @ w.reshape(-1, w.shape[-1]).T).view(len(h), p_count, -1)
            else:
                h = torch.matmul(h.transpose(0, 1), w.transpose(1, 2)).transpose(0, 1)
            if m.bias is not None:
                h = h + params[pre + "bias"]
            shared = False
        elif isinstance(m, nn.Conv2d):
            w = params[pre + "weight"]
            b = params[pre + "bias"].reshape(-1) if m.bias is not None else None
            inp = h if shared else h.reshape(len(h), -1, *h.shape[3:])
            out = nn.functional.conv2d(inp, w.reshape(-1, *w.shape[2:]), b, m.stride, m.padding, m.dilation,
                                       1 if shared else p_count)
            h, shared = out.view(len(out), p_count, -1, *out.shape[2:]), False
        elif isinstance(m, _BN):
            dims = [0, *range(2 if shared else 3, h.ndim)]
            if bn == "batch":
                h = normalise(h, dims, m.eps)
            else:
                shape = (1,) * (1 if shared else 2) + (-1,) + (1,) * (h.ndim - (2 if shared else 3))
                mean = buffers[pre + "running_mean"].reshape(shape)
                h = (h - mean) * torch.rsqrt(buffers[pre + "running_var"].reshape(shape) + m.eps)
            if m.affine:
                if shared:
                    h = h.unsqueeze(1)
                shape = (1, p_count, -1) + (1,) * (h.ndim - 3)
                h = h * params[pre + "weight"].reshape(shape) + params[pre + "bias"].reshape(shape)
                shared = False
        elif isinstance(m, _POOLS):
            inp = h if shared else h.reshape(len(h), -1, *h.shape[3:])
            out = m(inp)
            h = out if shared else out.view(len(out), p_count, -1, *out.shape[2:])
        elif isinstance(m, nn.Flatten):
            h = h.reshape(len(h), -1) if shared else h.reshape(len(h), p_count, -1)
        elif isinstance(m, nn.Dropout):
            continue
        else:
            h = m(h)
    if shared:
        h = h.unsqueeze(1).expand(len(h), p_count, *h.shape[1:])
    return h


class PopulationEvaluator:
    """Losses of a population of genomes of ``model`` on data, without copying the model.

    ``chunk_size`` bounds how many individuals one batched call holds (memory); ``batch_size`` splits
    the samples (the loss is the sample-weighted mean over batches; with ``bn="batch"`` each batch is
    also the batch-norm batch). ``mode="auto"`` times the applicable modes on the first call and keeps
    the fastest (``mode_used``, with ``chunk_used``). Buffers (running statistics) are frozen copies
    taken at construction, so nothing done to ``model`` later (recalibration, gradient epochs)
    changes the fitness function.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Loss,
        *,
        mode: str = "auto",
        bn: str = "batch",
        chunk_size: int | None = None,
        batch_size: int | None = None,
    ):
        check_choice("mode", mode, MODES)
        bn = check_bn_mode(bn)
        if chunk_size is not None:
            check_number("chunk_size", chunk_size, low=1, integer=True)
        if batch_size is not None:
            check_number("batch_size", batch_size, low=1, integer=True)
        self.model, self.loss, self.mode, self.bn = model, loss, mode, bn
        self.chunk_size, self.batch_size = chunk_size, batch_size
        self.layout = ParamLayout.of(model)
        self.buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
        self.stackable = stackable(model)
        if mode == "stacked" and not self.stackable:
            raise ConfigError("mode", mode, "auto, vmap or loop for this model (stacked needs a plain Sequential)")
        self.mode_used: str | None = None if mode == "auto" else mode
        self.chunk_used: int | None = None

    def _single(self, genome: Tensor, x: Tensor, y: Tensor, step: int) -> Tensor:
        state = {**self.layout.unflatten(genome), **self.buffers}
        return self.loss(functional_call(self.model, state, (x,)), y, step)

    def _chunk(self, population: Tensor, x: Tensor, y: Tensor, step: int, mode: str) -> Tensor:
        if mode == "loop":
            return torch.stack([self._single(g, x, y, step) for g in population])
        if mode == "stacked":
            out = stacked_forward(self.model, self.layout.unflatten(population), x, self.bn, self.buffers)
            p = len(population)
            flat = out.transpose(0, 1).reshape(p * len(x), *out.shape[2:])
            targets = y.repeat(p, *([1] * (y.ndim - 1)))
            return self.loss.per_sample(flat, targets, step).view(p, len(x)).mean(1)
        buffers = self.buffers

        def one(params: dict[str, Tensor]) -> Tensor:
            return self.loss(functional_call(self.model, {**params, **buffers}, (x,)), y, step)

        return vmap(one)(self.layout.unflatten(population))

    def _chunks(self, n: int) -> int:
        return self.chunk_size or self.chunk_used or n

    def _run(
        self, population: Tensor, x: Tensor, y: Tensor, step: int, mode: str, chunk: int | None = None
    ) -> Tensor:
        size = self.batch_size or len(x)
        chunk = chunk or self._chunks(len(population))
        total = torch.zeros(len(population), dtype=population.dtype, device=population.device)
        for i in range(0, len(x), size):
            xb, yb = x[i : i + size], y[i : i + size]
            parts = [self._chunk(population[j : j + chunk], xb, yb, step, mode) for j in range(0, len(population), chunk)]
            total += torch.cat(parts) * len(xb)
        return total / len(x)

    @torch.no_grad()
    def __call__(self, population: Tensor, x: Tensor, y: Tensor, step: int = 0) -> Tensor:
        """Losses (P,) of the genomes ``population`` (P, D) on ``(x, y)``."""
        if population.ndim != 2 or population.shape[1] != self.layout.dim:
            raise ValueError(f"population: got shape {tuple(population.shape)}; allowed: (P, {self.layout.dim})")
        with bn_mode(self.model, self.bn):
            if self.mode_used is None:
                self.mode_used = self._pick(population, x, y, step)
            return self._run(population, x, y, step, self.mode_used)

    def _pick(self, population: Tensor, x: Tensor, y: Tensor, step: int) -> str:
        """The fastest mode (and, unless ``chunk_size`` is set, the fastest chunk among P, 32 and 8 for
        the batched modes) on this model, device and population size, timed on up to 512 samples: after
        a warm-up call of each candidate, the best of three interleaved timed calls (robust to a busy
        machine). Probe calls are not counted as fitness evaluations."""
        n = len(population)
        x, y = x[:512], y[:512]
        chunks = [self.chunk_size] if self.chunk_size else sorted({n, min(n, 32), min(n, 8)}, reverse=True)
        modes = ("stacked", "vmap") if self.stackable else ("vmap",)
        candidates = [("loop", n)] + [(m, c) for m in modes for c in chunks]
        times = dict.fromkeys(candidates, float("inf"))
        for mode, chunk in candidates:
            self._run(population, x, y, step, mode, chunk)
        for _ in range(3):
            for mode, chunk in candidates:
                _sync(population.device)
                t0 = time.perf_counter()
                self._run(population, x, y, step, mode, chunk)
                _sync(population.device)
                times[(mode, chunk)] = min(times[(mode, chunk)], time.perf_counter() - t0)
        mode, chunk = min(times, key=times.__getitem__)
        if mode != "loop":
            self.chunk_used = chunk
        return mode

    def value_and_grad(self, genome: Tensor, x: Tensor, y: Tensor, step: int = 0) -> tuple[Tensor, Tensor]:
        """Loss of one genome (D,) and its gradient by backpropagation (fitness mode)."""
        genome = genome.detach().requires_grad_(True)
        with bn_mode(self.model, self.bn), torch.enable_grad():
            size = self.batch_size or len(x)
            total = self._single(genome, x[:size], y[:size], step) * len(x[:size])
            for i in range(size, len(x), size):  # in order, as Python's sum: the same value whatever the type
                total = total + self._single(genome, x[i : i + size], y[i : i + size], step) * len(x[i : i + size])
            value = total / len(x)
            (grad,) = torch.autograd.grad(value, genome)
        return value.detach(), grad


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fans(module: nn.Module) -> tuple[int, int]:
    return nn.init._calculate_fan_in_and_fan_out(module.weight)  # type: ignore[arg-type]


def initial_population(
    model: nn.Module,
    size: int,
    generator: torch.Generator,
    *,
    scheme: str = "glorot",
    layout: ParamLayout | None = None,
) -> Tensor:
    """A (size, D) population on ``model``'s device; row 0 is ``model``'s own parameters.

    ``scheme="glorot"``: weight matrices and kernels Glorot-uniform U(±√(6/(fan_in+fan_out))) (Glorot
    & Bengio 2010, as in Morales Muñoz 2025); Linear/Conv biases U(±1/√fan_in) and batch-norm scale/shift
    1 + U(±0.1) / U(±0.1), so that no gene is constant across the population (DE differences of a constant gene
    are 0 forever).
    ``scheme="model"``: every row is ``model``'s parameters plus nothing (a degenerate population
    meant for tests). Sampling uses ``generator`` on the CPU, so populations are device-independent.
    """
    check_number("population_size", size, low=1, integer=True)
    check_choice("init", scheme, ("glorot", "model"))
    layout = layout or ParamLayout.of(model)
    base = layout.flatten(model).cpu()
    pop = base.repeat(size, 1)
    if scheme == "model" or size == 1:
        return pop.to(layout_device(model))
    index = {n: (o, s) for n, s, o in zip(layout.names, layout.shapes, layout.offsets)}
    n = size - 1
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if full not in index:
                continue
            offset, shape = index[full]
            numel = math.prod(shape)
            if p_name == "weight" and p.ndim >= 2:
                fan_in, fan_out = _fans(module)
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                values = (torch.rand(n, numel, generator=generator) * 2 - 1) * bound
            elif isinstance(module, _BN):
                centre = 1.0 if p_name == "weight" else 0.0
                values = centre + (torch.rand(n, numel, generator=generator) * 2 - 1) * 0.1
            elif p_name == "bias" and getattr(module, "weight", None) is not None and module.weight.ndim >= 2:
                bound = 1.0 / math.sqrt(_fans(module)[0])
                values = (torch.rand(n, numel, generator=generator) * 2 - 1) * bound
            else:
                values = base[offset : offset + numel] + (torch.rand(n, numel, generator=generator) * 2 - 1) * 0.1
            pop[1:, offset : offset + numel] = values
    return pop.to(layout_device(model))


def layout_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device

