"""DE/rand/1/bin (Storn & Price 1997).

For each target x_i: v_i = x_r1 + F (x_r2 − x_r3) with r1, r2, r3 distinct and ≠ i; binomial
crossover u_ij = v_ij if U_j < CR or j = j_rand, else x_ij; greedy selection x_i ← u_i if
f(u_i) ≤ f(x_i). Out-of-box mutant coordinates are repaired (``repair``): ``"random"`` redraws them
uniformly in the box (as SciPy's ``differential_evolution``), ``"midpoint"`` moves them halfway between
the parent and the violated bound (as SHADE), ``"clip"`` clips them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trainlab.core.config import ConfigError, check_choice, check_number, from_mapping
from trainlab.metaheuristics.base import SEARCHERS, Problem, Searcher

REPAIRS = ("random", "midpoint", "clip")


@dataclass(frozen=True)
class DEConfig:
    F: float = 0.5
    CR: float = 0.9
    repair: str = "random"

    def __post_init__(self) -> None:
        check_number("F", self.F, low=0, high=2, low_open=True)
        check_number("CR", self.CR, low=0, high=1)
        check_choice("repair", self.repair, REPAIRS)


def distinct_indices(searcher: Searcher, n: int, k: int) -> Tensor:
    """(n, k) indices into a population of n: per row, k distinct indices all different from the row."""
    if n < k + 1:
        raise ConfigError("population_size", n, f"at least {k + 1} for this mutation")
    keys = torch.rand(n, n, generator=searcher.generator, dtype=torch.float64)
    keys.fill_diagonal_(2.0)
    return keys.argsort(dim=1)[:, :k].to(searcher.device)


def binomial_crossover(searcher: Searcher, x: Tensor, v: Tensor, cr: Tensor | float) -> Tensor:
    """u_ij = v_ij where U_ij < CR_i or j = j_rand(i), else x_ij."""
    n, d = x.shape
    cr = torch.as_tensor(cr, dtype=x.dtype, device=x.device).reshape(-1, 1)
    mask = searcher.rand(n, d) < cr
    mask[torch.arange(n, device=x.device), searcher.randint(d, n)] = True
    return torch.where(mask, v, x)


def repair(searcher: Searcher, v: Tensor, parent: Tensor, how: str) -> Tensor:
    lo, hi = searcher.problem.lower, searcher.problem.upper
    below, above = v < lo, v > hi
    if not (below.any() or above.any()):
        return v
    if how == "clip":
        return v.clamp(lo, hi)
    if how == "midpoint":
        return torch.where(below, (lo + parent) / 2, torch.where(above, (hi + parent) / 2, v))
    fresh = lo + (hi - lo) * searcher.rand(*v.shape)
    return torch.where(below | above, fresh, v)


@SEARCHERS.register("de")
class DE(Searcher):
    """DE/rand/1/bin with fixed F and CR; the first ``ask`` returns the initial population."""

    name = "de"

    def __init__(self, problem: Problem, population: Tensor, generator: torch.Generator, **options: float | str):
        super().__init__(problem, population, generator)
        self.config = from_mapping(DEConfig, options, where=self.name)
        self._trial: Tensor | None = None

    def mutate(self) -> Tensor:
        r = distinct_indices(self, len(self.x), 3)
        return self.x[r[:, 0]] + self.config.F * (self.x[r[:, 1]] - self.x[r[:, 2]])

    def ask(self) -> Tensor:
        if self.f is None:
            return self.x
        v = repair(self, self.mutate(), self.x, self.config.repair)
        self._trial = binomial_crossover(self, self.x, v, self.config.CR)
        return self._trial

    def tell(self, fitness: Tensor) -> None:
        if self.f is None:
            self.f = fitness.clone()
            self._note_best(self.x, self.f)
            return
        assert self._trial is not None
        better = fitness <= self.f
        self.x = torch.where(better[:, None], self._trial, self.x)
        self.f = torch.where(better, fitness, self.f)
        self._note_best(self.x, self.f)
        self.generation += 1
