"""SNES, separable natural evolution strategies (Schaul, Glasmachers & Schmidhuber 2011, "High
dimensions and heavy tails for natural evolution strategies", algorithm 2).

A search distribution N(μ, diag(σ²)); per generation, with λ = 4 + ⌊3 ln D⌋ samples (``popsize``)::

    sₖ ~ N(0, I);  zₖ = μ + σ ⊙ sₖ;  sort by f(zₖ) (best first)
    ∇μ = Σₖ uₖ sₖ;  ∇σ = Σₖ uₖ (sₖ² − 1)
    μ ← μ + η_μ σ ⊙ ∇μ;  σ ← σ ⊙ exp(η_σ ∇σ / 2)

with the rank-based utilities uₖ = max(0, ln(λ/2 + 1) − ln k) / Σⱼ max(0, ln(λ/2 + 1) − ln j) − 1/λ,
η_μ = 1 (``center_lr``) and η_σ = (3 + ln D) / (5√D) (``stdev_lr``). μ starts at the initial
population's first row, σ at ``sigma0`` (default: the population's mean per-gene standard deviation,
as for CMA-ES). Samples outside the box [lower, upper] are evaluated clipped to it. ``inject`` (the
memetic gradient result) moves μ to the offered point when it is better than every point seen so far.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from trainlab.core.config import check_number, from_mapping
from trainlab.metaheuristics.base import SEARCHERS, Problem, Searcher
from trainlab.metaheuristics.cmaes import initial_sigma


@dataclass(frozen=True)
class SNESConfig:
    """``sigma0`` (None: from the population), ``popsize`` λ (None: 4 + ⌊3 ln D⌋), learning rates
    ``center_lr`` η_μ and ``stdev_lr`` η_σ (None: (3 + ln D)/(5√D))."""

    sigma0: float | None = None
    popsize: int | None = None
    center_lr: float = 1.0
    stdev_lr: float | None = None

    def __post_init__(self) -> None:
        if self.sigma0 is not None:
            check_number("sigma0", self.sigma0, low=0, low_open=True)
        if self.popsize is not None:
            check_number("popsize", self.popsize, low=2, integer=True)
        check_number("center_lr", self.center_lr, low=0, low_open=True)
        if self.stdev_lr is not None:
            check_number("stdev_lr", self.stdev_lr, low=0, low_open=True)


def snes_utilities(n: int) -> Tensor:
    """The utilities u₁ ≥ … ≥ uₙ of ranks 1 (best) … n; they sum to 0."""
    raw = torch.clamp(math.log(n / 2 + 1) - torch.log(torch.arange(1, n + 1, dtype=torch.float64)), min=0)
    return raw / raw.sum() - 1.0 / n


@SEARCHERS.register("snes")
class SNES(Searcher):
    """Separable NES as ask/tell (see the module docstring)."""

    name = "snes"

    def __init__(self, problem: Problem, population: Tensor, generator: torch.Generator, **options: Any):
        super().__init__(problem, population, generator)
        self.config = from_mapping(SNESConfig, options, where=self.name)
        d = problem.dim
        self.popsize = self.config.popsize or 4 + int(3 * math.log(d))
        self.center_lr = self.config.center_lr
        self.stdev_lr = self.config.stdev_lr or (3 + math.log(d)) / (5 * math.sqrt(d))
        self.mu = population[0].detach().double().cpu().clone()
        sigma0 = self.config.sigma0 if self.config.sigma0 is not None else initial_sigma(population)
        self.sigma = torch.full((d,), float(sigma0), dtype=torch.float64)
        self.utilities = snes_utilities(self.popsize)
        self._s = torch.empty(0, d, dtype=torch.float64)

    def ask(self) -> Tensor:
        self._s = torch.randn(self.popsize, self.problem.dim, generator=self.generator, dtype=torch.float64)
        z = (self.mu + self.sigma * self._s).clamp(self.problem.lower, self.problem.upper)
        return z.to(self.device, self.x.dtype)

    def tell(self, fitness: Tensor) -> None:
        f = fitness.detach().double().cpu().nan_to_num(math.inf)
        order = torch.argsort(f, stable=True)
        s = self._s[order]
        grad_mu = self.utilities @ s
        grad_sigma = self.utilities @ (s * s - 1)
        z = (self.mu + self.sigma * self._s).clamp(self.problem.lower, self.problem.upper)
        self._note_best(z.to(self.x.dtype), f)
        self.x, self.f = z.to(self.device, self.x.dtype), fitness.to(self.x.dtype)
        self.mu = self.mu + self.center_lr * self.sigma * grad_mu
        self.sigma = self.sigma * torch.exp(self.stdev_lr / 2 * grad_sigma)
        self.generation += 1

    def inject(self, x: Tensor, f: float) -> None:
        if f < self.best_f:
            self.best_f, self.best_x = f, x.clone()
            self.mu = x.detach().double().cpu().clone()
