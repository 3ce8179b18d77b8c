"""An example trainlab plugin: one optimizer, one searcher and one model, registered on import.

Installed (``pip install ./examples/plugin``), it is found through the ``trainlab.plugins`` entry point declared
in ``pyproject.toml``; its names then work everywhere trainlab takes a name: ``trainlab train``, experiment
files (also in process-pool and Ray workers) and the Python API. See docs/plugins.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from trainlab.core.config import check_number, from_mapping
from trainlab.metaheuristics import SEARCHERS, Problem, Searcher
from trainlab.models import MODELS, ModelEntry, ModelOptions
from trainlab.models.init import activation
from trainlab.trainers.optimizers import OPTIMIZERS, OptimizerSpec

# 1. An optimizer: torch's Adamax (Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015, §7.1),
#    u_t = max(β2 u_{t−1}, |g_t|), θ_t = θ_{t−1} − η/(1 − β1^t) · m_t / u_t. It is also the gradient trainer
#    "example-adamax" (every registered optimizer is one).
OPTIMIZERS.register("example-adamax")(
    OptimizerSpec(torch.optim.Adamax, {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
                  momentum_key="betas")
)


# 2. An ask/tell searcher: the (1+λ) evolution strategy with Rechenberg's 1/5th success rule (Rechenberg,
#    "Evolutionsstrategie", 1973; Beyer & Schwefel, Natural Computing 2002, §3). It becomes the population
#    trainer "example-es" (every registered searcher is one).
@dataclass(frozen=True)
class OnePlusLambdaConfig:
    sigma: float = 0.1
    """Initial mutation step, as a fraction of the box width."""
    factor: float = 1.5
    """σ ← σ·factor after a generation with more than 1/5 successful offspring, σ ← σ/factor^(1/4) otherwise."""

    def __post_init__(self) -> None:
        check_number("sigma", self.sigma, low=0, low_open=True)
        check_number("factor", self.factor, low=1, low_open=True)


@SEARCHERS.register("example-es")
class OnePlusLambda(Searcher):
    """Parent x, offspring y_i = clamp(x + σ N(0, I)), i = 1..λ (λ = the population size); the best offspring
    replaces x when it is at least as good."""

    name = "example-es"

    def __init__(self, problem: Problem, population: Tensor, generator: torch.Generator, **options: object):
        super().__init__(problem, population, generator)
        self.config = from_mapping(OnePlusLambdaConfig, options, where=self.name)
        self.sigma = self.config.sigma * (problem.upper - problem.lower)
        self.parent_f = math.inf
        self._asked: Tensor | None = None

    def ask(self) -> Tensor:
        if self.f is None:  # the first generation evaluates the initial population
            self._asked = self.x
            return self._asked
        noise = torch.randn(self.x.shape, generator=self.generator, dtype=torch.float64).to(self.device, self.x.dtype)
        self._asked = (self.best_x + self.sigma * noise).clamp(self.problem.lower, self.problem.upper)
        return self._asked

    def tell(self, fitness: Tensor) -> None:
        assert self._asked is not None, "tell() follows ask()"
        successes = int((fitness < self.parent_f).sum()) if self.f is not None else 0
        if self.f is not None:
            self.sigma *= self.config.factor if successes > len(fitness) / 5 else self.config.factor ** -0.25
        self.x, self.f = self._asked, fitness
        self._note_best(self._asked, fitness)
        self.parent_f = self.best_f
        self.generation += 1


# 3. A model: one hidden layer of ``width`` units.
@dataclass(frozen=True)
class TinyOptions(ModelOptions):
    width: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("width", self.width, low=1, integer=True)


def build_tiny(options: TinyOptions, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(input_shape), options.width), activation(options.activation),
        nn.Linear(options.width, n_outputs),
    )


MODELS.register("example-mlp")(ModelEntry(TinyOptions, build_tiny, "one hidden layer of `width` units", ((2,), 3)))
