"""L-SHADE: SHADE with linear population size reduction (Tanabe & Fukunaga, CEC 2014).

After each generation the population shrinks to N_{G+1} = round(N_init + (N_min − N_init) · NFE / MAX_NFE)
by deleting its worst members, and the archive to round(r_arc · N_{G+1}). Paper defaults: N_init = 18 D
(here: the size of the initial population given), N_min = 4, H = 6, r_arc = 2.6, p = 0.11, weighted
Lehmer mean for CR with the terminal value ⊥.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trainlab.core.config import check_number
from trainlab.metaheuristics.base import SEARCHERS, Problem
from trainlab.metaheuristics.shade import SHADE, SHADEConfig


@dataclass(frozen=True)
class LSHADEConfig(SHADEConfig):
    memory_size: int = 6
    p: float | None = 0.11
    archive_rate: float = 2.6
    cr_mean: str = "lehmer"
    terminal_cr: bool = True
    min_population: int = 4
    max_evals: int = 0
    """MAX_NFE of the reduction schedule (required)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("min_population", self.min_population, low=4, integer=True)
        check_number("max_evals", self.max_evals, low=1, integer=True)


def population_schedule(n_init: int, n_min: int, evals: int, max_evals: int) -> int:
    """N = round(N_init + (N_min − N_init) · evals / max_evals), never below N_min."""
    frac = min(evals, max_evals) / max_evals
    return max(n_min, int(round(n_init + (n_min - n_init) * frac)))


@SEARCHERS.register("lshade")
class LSHADE(SHADE):
    name = "lshade"
    uses_max_evals = True
    config_class = LSHADEConfig
    config: LSHADEConfig

    def __init__(self, problem: Problem, population: Tensor, generator: torch.Generator, **options: object):
        super().__init__(problem, population, generator, **options)
        self.n_init = len(population)
        self.evals = 0

    def tell(self, fitness: Tensor) -> None:
        self.evals += int(torch.isfinite(fitness).sum())
        super().tell(fitness)

    def after_generation(self) -> None:
        assert self.f is not None
        target = population_schedule(self.n_init, self.config.min_population, self.evals, self.config.max_evals)
        if target < len(self.x):
            keep = torch.argsort(self.f.cpu(), stable=True)[:target].sort().values.to(self.device)
            self.x, self.f = self.x[keep], self.f[keep]
        excess = len(self.archive) - self.archive_capacity
        if excess > 0:
            keep = torch.randperm(len(self.archive), generator=self.generator)[excess:].sort().values
            self.archive = self.archive[keep.to(self.device)]
