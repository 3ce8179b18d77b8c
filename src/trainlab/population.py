"""The population engine: many parameter vectors of one network, evaluated in batched form.

A *genome* is the flat vector of a model's trainable parameters (in ``named_parameters`` order); a
population is a (P, D) tensor. :class:`ParamLayout` maps genomes to parameter dicts as views (no
per-individual model copies); :class:`PopulationEvaluator` returns the P losses with
``torch.func.functional_call``, either vectorised with ``torch.func.vmap`` over chunks of individuals
or as a loop over individuals, whichever is faster on the device (``mode="auto"`` measures both once).

Batch norm is never shared between individuals and dropout is off during fitness:

* ``bn="batch"`` (default): every individual normalises with the statistics of the batch it is
  evaluated on (its own activations), running statistics are neither read nor written. After
  :func:`recalibrate_bn` over the same data the eval-mode model computes the same function, so the
  fitness is the loss of the model that is validated.
* ``bn="eval"``: every individual uses the model's fixed running statistics (buffers are not genes).
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from trainlab.config import ConfigError, check_choice, check_number
from trainlab.losses import Loss

MODES = ("auto", "vmap", "loop")
BN_MODES = ("batch", "eval")
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class ParamLayout:
    """Names, shapes and offsets of a model's trainable parameters inside a genome of length ``dim``."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    offsets: tuple[int, ...]
    dim: int

    @classmethod
    def of(cls, model: nn.Module) -> ParamLayout:
        names, shapes, offsets, dim = [], [], [], 0
        for name, p in model.named_parameters():
            if p.requires_grad:
                names.append(name)
                shapes.append(p.shape)
                offsets.append(dim)
                dim += p.numel()
        return cls(tuple(names), tuple(shapes), tuple(offsets), dim)

    def flatten(self, model: nn.Module) -> Tensor:
        """The genome (D,) of ``model``'s current parameters."""
        params = dict(model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, genomes: Tensor) -> dict[str, Tensor]:
        """Views of ``genomes`` (..., D) as parameters shaped (..., *shape)."""
        lead = genomes.shape[:-1]
        return {
            n: genomes[..., o : o + math.prod(s)].reshape(*lead, *s)
            for n, s, o in zip(self.names, self.shapes, self.offsets)
        }

    @torch.no_grad()
    def load(self, model: nn.Module, genome: Tensor) -> None:
        """Copy ``genome`` (D,) into ``model``'s parameters."""
        params = dict(model.named_parameters())
        for n, v in self.unflatten(genome).items():
            params[n].copy_(v)


@contextlib.contextmanager
def fitness_mode(model: nn.Module, bn: str) -> Iterator[None]:
    """Everything in eval mode (dropout off); with ``bn="batch"`` batch-norm layers normalise with
    batch statistics and neither read nor update their running statistics. Restores the modes after."""
    modes = {m: (m.training, getattr(m, "track_running_stats", None)) for m in model.modules()}
    model.eval()
    if bn == "batch":
        for m in model.modules():
            if isinstance(m, _BN):
                m.train()
                m.track_running_stats = False
    try:
        yield
    finally:
        for m, (training, track) in modes.items():
            m.training = training
            if track is not None:
                m.track_running_stats = track


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: Tensor, batch_size: int | None = None) -> int:
    """Set every batch-norm layer's running statistics to the exact mean and (biased) variance of its
    inputs over ``x``, computed in batch-statistics mode (as in fitness with ``bn="batch"``) over
    batches of ``batch_size`` (all of ``x`` by default), dropout off. With one batch, the eval-mode
    model then computes exactly the function whose loss was the fitness. Returns the samples passed."""
    bns = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    if not bns:
        return 0
    sums: dict[nn.Module, list[Tensor | float]] = {}

    def record(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        h = inputs[0].transpose(0, 1).reshape(inputs[0].shape[1], -1).double()
        acc = sums.setdefault(module, [0.0, 0.0, 0])
        acc[0] = acc[0] + h.sum(1)
        acc[1] = acc[1] + (h * h).sum(1)
        acc[2] += h.shape[1]

    hooks = [m.register_forward_pre_hook(record) for m in bns]
    size = batch_size or len(x)
    try:
        with fitness_mode(model, "batch"):
            for i in range(0, len(x), size):
                model(x[i : i + size])
    finally:
        for h in hooks:
            h.remove()
    for m in bns:
        total, squares, count = sums[m]
        mean = total / count
        m.running_mean.copy_(mean)
        m.running_var.copy_((squares / count - mean * mean).clamp_min(0))
    return len(x)


class PopulationEvaluator:
    """Losses of a population of genomes of ``model`` on data, without copying the model.

    ``chunk_size`` bounds how many individuals one vmap call holds (memory); ``batch_size`` splits the
    samples (the loss is the sample-weighted mean over batches; with ``bn="batch"`` each batch is also
    the batch-norm batch). ``mode="auto"`` times vmap and the loop once on the first call and keeps the
    faster (``mode_used``). Buffers (running statistics) are frozen copies taken at construction, so
    nothing done to ``model`` later (recalibration, gradient epochs) changes the fitness function.
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
        check_choice("bn", bn, BN_MODES)
        if chunk_size is not None:
            check_number("chunk_size", chunk_size, low=1, integer=True)
        if batch_size is not None:
            check_number("batch_size", batch_size, low=1, integer=True)
        self.model, self.loss, self.mode, self.bn = model, loss, mode, bn
        self.chunk_size, self.batch_size = chunk_size, batch_size
        self.layout = ParamLayout.of(model)
        self.buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
        self.mode_used: str | None = None if mode == "auto" else mode

    def _single(self, genome: Tensor, x: Tensor, y: Tensor, step: int) -> Tensor:
        state = {**self.layout.unflatten(genome), **self.buffers}
        return self.loss(functional_call(self.model, state, (x,)), y, step)

    def _chunk(self, population: Tensor, x: Tensor, y: Tensor, step: int, mode: str) -> Tensor:
        if mode == "loop":
            return torch.stack([self._single(g, x, y, step) for g in population])
        buffers = self.buffers

        def one(params: dict[str, Tensor]) -> Tensor:
            return self.loss(functional_call(self.model, {**params, **buffers}, (x,)), y, step)

        return vmap(one)(self.layout.unflatten(population))

    def _chunks(self, n: int) -> int:
        return self.chunk_size or n

    def _run(self, population: Tensor, x: Tensor, y: Tensor, step: int, mode: str) -> Tensor:
        size = self.batch_size or len(x)
        chunk = self._chunks(len(population))
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
        with fitness_mode(self.model, self.bn):
            if self.mode_used is None:
                self.mode_used = self._pick(population, x, y, step)
            return self._run(population, x, y, step, self.mode_used)

    def _pick(self, population: Tensor, x: Tensor, y: Tensor, step: int) -> str:
        """The faster of vmap and loop on this model, device and population size (one timed call each,
        after a warm-up call)."""
        probe = population[: self._chunks(len(population))]
        times = {}
        for mode in ("loop", "vmap"):
            self._run(probe, x, y, step, mode)
            _sync(population.device)
            t0 = time.perf_counter()
            self._run(probe, x, y, step, mode)
            _sync(population.device)
            times[mode] = time.perf_counter() - t0
        return min(times, key=times.__getitem__)

    def value_and_grad(self, genome: Tensor, x: Tensor, y: Tensor, step: int = 0) -> tuple[Tensor, Tensor]:
        """Loss of one genome (D,) and its gradient by backpropagation (fitness mode)."""
        genome = genome.detach().requires_grad_(True)
        with fitness_mode(self.model, self.bn), torch.enable_grad():
            size = self.batch_size or len(x)
            value = sum(
                self._single(genome, x[i : i + size], y[i : i + size], step) * len(x[i : i + size])
                for i in range(0, len(x), size)
            ) / len(x)
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

    ``scheme="glorot"``: weight matrices and kernels Glorot-uniform U(±√(6/(fan_in+fan_out))) (thesis
    000); Linear/Conv biases U(±1/√fan_in) and batch-norm scale/shift 1 + U(±0.1) / U(±0.1), so that no
    gene is constant across the population (DE differences of a constant gene are 0 forever).
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

