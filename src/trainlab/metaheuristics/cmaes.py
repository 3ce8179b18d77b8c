"""CMA-ES and sep-CMA-ES as ask/tell searchers, backed by Hansen's ``cma`` package (pycma).

* ``cma-es``: CMA-ES (Hansen & Ostermeier 2001; Hansen 2016, "The CMA Evolution Strategy: a tutorial")
  with pycma's defaults: λ = 4 + ⌊3 ln D⌋, μ = λ/2 with log-rank weights, cumulative step-size
  adaptation, rank-one and rank-μ updates of the full covariance, active CMA (negative weights).
* ``sep-cma-es``: the separable variant (Ros & Hansen 2008), a diagonal covariance, O(D) per sample,
  for the high dimensions of network weights (pycma's ``CMA_diagonal = True``).

The mean starts at the initial population's first row (for a trainer, the model's own
initialisation); σ₀ (``sigma0``) defaults to the initial population's mean per-gene standard deviation,
so the first samples spread like the initialisation scheme (1 when the population has one row or no
spread). The box [lower, upper] is pycma's ``bounds`` (its boundary transformation).

Randomness: pycma samples through its ``randn`` option, which is given a NumPy generator seeded from the
searcher's ``torch.Generator``, so runs are reproducible and NumPy's global RNG is never touched.
Candidates the budget leaves unevaluated (fitness +inf) and non-finite fitness values are ranked last
(told as the worst finite value plus 1), since pycma ranks finite values only. ``inject`` (the memetic
hybrids' gradient result) goes through pycma's own ``inject(..., force=True)``: the point replaces a
sample of the next generation and takes part in the recombination if it ranks well.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import cma
import numpy as np
import torch
from torch import Tensor

from trainlab.core.config import check_choice, check_number, from_mapping
from trainlab.metaheuristics.base import SEARCHERS, Problem, Searcher


@dataclass(frozen=True)
class CMAConfig:
    """``sigma0`` (None: from the population), ``popsize`` λ (None: 4 + ⌊3 ln D⌋), ``active`` CMA."""

    sigma0: float | None = None
    popsize: int | None = None
    active: bool = True

    def __post_init__(self) -> None:
        if self.sigma0 is not None:
            check_number("sigma0", self.sigma0, low=0, low_open=True)
        if self.popsize is not None:
            check_number("popsize", self.popsize, low=2, integer=True)
        check_choice("active", self.active, (True, False))


def initial_sigma(population: Tensor) -> float:
    """The mean per-gene standard deviation of ``population`` (1 when it is one row or has no spread)."""
    if len(population) < 2:
        return 1.0
    sigma = float(population.double().std(dim=0).mean())
    return sigma if sigma > 0 and math.isfinite(sigma) else 1.0


def worst_last(fitness: Tensor) -> list[float]:
    """Fitness as floats with every non-finite value replaced by (worst finite value) + 1."""
    f = fitness.detach().double().cpu()
    finite = torch.isfinite(f)
    worst = float(f[finite].max()) + 1.0 if bool(finite.any()) else 0.0
    return torch.where(finite, f, torch.full_like(f, worst)).tolist()


@SEARCHERS.register("cma-es")
class CMAES(Searcher):
    """pycma's ``CMAEvolutionStrategy`` behind ask/tell (see the module docstring)."""

    name = "cma-es"
    diagonal: ClassVar[bool] = False

    def __init__(self, problem: Problem, population: Tensor, generator: torch.Generator, **options: Any):
        super().__init__(problem, population, generator)
        self.config = from_mapping(CMAConfig, options, where=self.name)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        cma_options: dict[str, Any] = {
            "seed": math.nan,
            "randn": lambda lam, n: rng.standard_normal((lam, n)),
            "bounds": [problem.lower, problem.upper],
            "CMA_diagonal": self.diagonal,
            "CMA_active": self.config.active,
            "verbose": -9,
            "verb_disp": 0,
            "verb_log": 0,
            "verb_filenameprefix": "",
            "tolfun": 0,
            "tolx": 0,
            "tolfunhist": 0,
            "tolflatfitness": math.inf,
            "tolstagnation": math.inf,
        }
        if self.config.popsize is not None:
            cma_options["popsize"] = self.config.popsize
        sigma0 = self.config.sigma0 if self.config.sigma0 is not None else initial_sigma(population)
        x0 = population[0].detach().double().cpu().numpy()
        self.es = cma.CMAEvolutionStrategy(x0, sigma0, cma_options)
        self._asked: list[np.ndarray] = []

    @property
    def popsize(self) -> int:
        return int(self.es.popsize)

    @property
    def sigma(self) -> float:
        return float(self.es.sigma)

    def ask(self) -> Tensor:
        self._asked = self.es.ask()
        return torch.as_tensor(np.asarray(self._asked), dtype=self.x.dtype).to(self.device)

    def tell(self, fitness: Tensor) -> None:
        x = torch.as_tensor(np.asarray(self._asked), dtype=self.x.dtype).to(self.device)
        self.es.tell(self._asked, worst_last(fitness))
        self._note_best(x, fitness.to(torch.float64).nan_to_num(math.inf))
        self.x, self.f = x, fitness.to(self.x.dtype)
        self.generation += 1

    def inject(self, x: Tensor, f: float) -> None:
        self.es.inject([x.detach().double().cpu().numpy()], force=True)
        if f < self.best_f:
            self.best_f, self.best_x = f, x.clone()


@SEARCHERS.register("sep-cma-es")
class SepCMAES(CMAES):
    """Separable CMA-ES (Ros & Hansen 2008): diagonal covariance."""

    name = "sep-cma-es"
    diagonal = True
