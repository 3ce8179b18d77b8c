"""Distribution-based searchers of EvoTorch (Toklu et al. 2023) as ask/tell searchers: ``evotorch-snes``,
``evotorch-pgpe`` and ``evotorch-xnes``.

They use EvoTorch's functional distribution API only (no EvoTorch ``Problem``, which would own the
evaluation loop): each generation ``ask`` draws λ samples from the search distribution with
``distribution.sample(λ, generator=...)``, the trainer (or :func:`~trainlab.metaheuristics.base.minimize`)
evaluates them through trainlab's :class:`~trainlab.metaheuristics.base.Problem`, and ``tell`` calls
``distribution.compute_gradients(samples, fitness, objective_sense="min", ranking_method=...)`` and
``distribution.update_parameters(gradients, learning_rates=..., optimizers=...)``, as EvoTorch's own
``GaussianSearchAlgorithm`` does, with the defaults of its ``SNES``, ``PGPE`` and ``XNES`` classes:

* ``evotorch-snes``: separable NES (Schaul, Glasmachers & Schmidhuber 2011), EvoTorch's
  ``ExpSeparableGaussian``; λ = 4 + ⌊3 ln D⌋, ranking ``nes`` (the rank utilities), η_μ = 1,
  η_σ = 0.2 (3 + ln D)/√D.
* ``evotorch-pgpe``: PGPE (Sehnke et al. 2010) with symmetric (mirrored) sampling, EvoTorch's
  ``SymmetricSeparableGaussian`` (gradients divided by the number of directions), ranking ``centered``,
  the centre moved by the ClipUp optimizer (Toklu et al. 2020; maximum speed 2 η_μ, momentum 0.9), σ's
  relative change per generation limited to ``stdev_max_change`` = 0.2. EvoTorch has no defaults for
  λ and the learning rates; trainlab's are λ = 4 + ⌊3 ln D⌋ rounded up to even, η_μ = 0.15 (ClipUp's
  maximum speed 0.3) and η_σ = 0.1 (Toklu et al. 2020's recommendations for ClipUp with PGPE).
* ``evotorch-xnes``: exponential NES (Glasmachers et al. 2010), EvoTorch's ``ExpGaussian`` (a full
  D×D factor A of the covariance, O(D³) per generation: for small D); λ = 4 + ⌊3 ln D⌋, ranking ``nes``,
  η_μ = 1, η_A = 0.6 (3 + ln D)/(D√D).

Options (all searchers): ``sigma0`` (None: the initial population's mean per-gene standard deviation, as
for CMA-ES), ``popsize``, ``center_lr``, ``stdev_lr`` (absolute values, not EvoTorch's multiples of the
default), ``ranking`` (EvoTorch's ranking methods); PGPE also ``optimizer`` (``clipup``, ``adam``,
``sgd`` or ``none`` for a plain learning rate), ``max_speed`` (ClipUp) and ``stdev_max_change``.
The mean starts at the initial population's first row (for a trainer, the model's own initialisation).

Randomness: the samples are drawn with the searcher's own ``torch.Generator`` (same seed, same search).
Samples outside the box [lower, upper] are evaluated clipped to it; the distribution is updated with
the unclipped samples, as trainlab's ``snes`` does. Unevaluated candidates (+inf) and non-finite fitness
values are ranked last (the worst finite value plus 1). ``inject`` (the memetic gradient result) moves
the mean to the offered point when it is better than every point seen so far.

EvoTorch is an optional extra, imported only when one of these searchers is built.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import Tensor

from trainlab.core.config import ConfigError, check_choice, check_number, from_mapping
from trainlab.metaheuristics.base import SEARCHERS, Problem, Searcher
from trainlab.metaheuristics.cmaes import initial_sigma, worst_last

RANKINGS = ("nes", "centered", "linear", "normalized", "raw")
"""EvoTorch's fitness-shaping methods (``evotorch.ranking.rank``)."""
CENTER_OPTIMIZERS = ("clipup", "adam", "sgd", "none")


def import_evotorch(name: str) -> ModuleType:
    """EvoTorch's ``distributions`` module, or a one-line error naming the extra that installs it."""
    try:
        import evotorch.distributions
        import evotorch.optimizers  # noqa: F401
        import evotorch.tools  # noqa: F401
    except ImportError:
        raise ConfigError("searcher", name, "an installed EvoTorch: pip install 'trainlab[evotorch]'") from None
    return evotorch


@dataclass(frozen=True)
class NESConfig:
    """``sigma0``, ``popsize`` λ, ``center_lr`` η_μ, ``stdev_lr`` η_σ and ``ranking``; None: the algorithm's
    default (module docstring)."""

    sigma0: float | None = None
    popsize: int | None = None
    center_lr: float | None = None
    stdev_lr: float | None = None
    ranking: str | None = None

    def __post_init__(self) -> None:
        if self.sigma0 is not None:
            check_number("sigma0", self.sigma0, low=0, low_open=True)
        if self.popsize is not None:
            check_number("popsize", self.popsize, low=2, integer=True)
        for field in ("center_lr", "stdev_lr"):
            if getattr(self, field) is not None:
                check_number(field, getattr(self, field), low=0, low_open=True)
        if self.ranking is not None:
            check_choice("ranking", self.ranking, RANKINGS)


@dataclass(frozen=True)
class PGPEConfig(NESConfig):
    """:class:`NESConfig` plus the centre's ``optimizer``, ClipUp's ``max_speed`` (None: 2 η_μ) and
    ``stdev_max_change`` (the largest relative change of σ per generation; None: unlimited)."""

    optimizer: str = "clipup"
    max_speed: float | None = None
    stdev_max_change: float | None = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("optimizer", self.optimizer, CENTER_OPTIMIZERS)
        if self.max_speed is not None:
            check_number("max_speed", self.max_speed, low=0, low_open=True)
        if self.stdev_max_change is not None:
            check_number("stdev_max_change", self.stdev_max_change, low=0, low_open=True)
        if self.popsize is not None and self.popsize % 2:
            raise ConfigError("popsize", self.popsize, "an even number (symmetric sampling)")


def default_popsize(dim: int) -> int:
    return 4 + int(math.floor(3 * math.log(dim)))


class EvoTorchSearcher(Searcher):
    """One of EvoTorch's Gaussian search distributions driven by ask/tell (see the module docstring)."""

    config_class: ClassVar[type[NESConfig]] = NESConfig
    default_ranking: ClassVar[str] = "nes"

    def __init__(self, problem: Problem, population: Tensor, generator: torch.Generator, **options: Any):
        super().__init__(problem, population, generator)
        self.config = from_mapping(self.config_class, options, where=self.name)
        self.evotorch = import_evotorch(self.name)
        d = problem.dim
        self.popsize = self.config.popsize or self.default_popsize(d)
        self.center_lr = self.config.center_lr or self.default_center_lr(d)
        self.stdev_lr = self.config.stdev_lr or self.default_stdev_lr(d)
        self.ranking = self.config.ranking or self.default_ranking
        sigma0 = self.config.sigma0 if self.config.sigma0 is not None else initial_sigma(population)
        mu = population[0].detach().double().cpu().clone()
        self.distribution = self.make_distribution(mu, torch.full((d,), float(sigma0), dtype=torch.float64))
        self._samples = torch.empty(0, d, dtype=torch.float64)

    def default_popsize(self, dim: int) -> int:
        return default_popsize(dim)

    def default_center_lr(self, dim: int) -> float:
        return 1.0

    @abstractmethod
    def default_stdev_lr(self, dim: int) -> float:
        """η_σ when ``stdev_lr`` is not given."""

    @abstractmethod
    def make_distribution(self, mu: Tensor, sigma: Tensor) -> Any:
        """EvoTorch's search distribution centred at ``mu`` with per-gene standard deviations ``sigma``."""

    def update(self, gradients: dict[str, Tensor]) -> Any:
        """The distribution after following ``gradients``."""
        return self.distribution.update_parameters(gradients, learning_rates={"mu": self.center_lr, "sigma": self.stdev_lr})

    @property
    def mu(self) -> Tensor:
        return self.distribution.parameters["mu"]

    def _clipped(self) -> Tensor:
        return self._samples.clamp(self.problem.lower, self.problem.upper)

    def ask(self) -> Tensor:
        self._samples = self.distribution.sample(self.popsize, generator=self.generator).detach()
        return self._clipped().to(self.device, self.x.dtype)

    def tell(self, fitness: Tensor) -> None:
        f = torch.tensor(worst_last(fitness), dtype=torch.float64)
        z = self._clipped().to(self.x.dtype)
        self._note_best(z, fitness.detach().cpu().to(self.x.dtype).nan_to_num(math.inf))
        self.x, self.f = z.to(self.device), fitness.to(self.device, self.x.dtype)
        gradients = self.distribution.compute_gradients(self._samples, f, objective_sense="min",
                                                        ranking_method=self.ranking)
        self.distribution = self.update(gradients)
        self.generation += 1

    def inject(self, x: Tensor, f: float) -> None:
        if f < self.best_f:
            self.best_f, self.best_x = f, x.clone()
            self.distribution = self.distribution.modified_copy(mu=x.detach().double().cpu().clone())


@SEARCHERS.register("evotorch-snes")
class EvoTorchSNES(EvoTorchSearcher):
    """SNES (Schaul, Glasmachers & Schmidhuber 2011) on EvoTorch's ``ExpSeparableGaussian``:
    μ ← μ + η_μ Σₖ uₖ (zₖ − μ), σ ← σ ⊙ exp(η_σ/2 Σₖ uₖ (sₖ² − 1)), uₖ the NES rank utilities."""

    name = "evotorch-snes"

    def default_stdev_lr(self, dim: int) -> float:
        return 0.2 * (3 + math.log(dim)) / math.sqrt(dim)

    def make_distribution(self, mu: Tensor, sigma: Tensor) -> Any:
        return self.evotorch.distributions.ExpSeparableGaussian({"mu": mu, "sigma": sigma}, dtype=torch.float64)


@SEARCHERS.register("evotorch-xnes")
class EvoTorchXNES(EvoTorchSearcher):
    """xNES (Glasmachers et al. 2010) on EvoTorch's ``ExpGaussian``: with local coordinates sₖ = A⁻¹(zₖ − μ),
    μ ← μ + η_μ A Σₖ uₖ sₖ, A ← A expm(η_A/2 Σₖ uₖ (sₖsₖᵀ − I))."""

    name = "evotorch-xnes"

    def default_stdev_lr(self, dim: int) -> float:
        return 0.6 * (3 + math.log(dim)) / (dim * math.sqrt(dim))

    def make_distribution(self, mu: Tensor, sigma: Tensor) -> Any:
        return self.evotorch.distributions.ExpGaussian({"mu": mu, "sigma": sigma}, dtype=torch.float64)

    def update(self, gradients: dict[str, Tensor]) -> Any:
        return self.distribution.update_parameters(gradients, learning_rates={"d": self.center_lr, "M": self.stdev_lr})


@SEARCHERS.register("evotorch-pgpe")
class EvoTorchPGPE(EvoTorchSearcher):
    """PGPE (Sehnke et al. 2010) with symmetric sampling on EvoTorch's ``SymmetricSeparableGaussian``:
    for the pairs μ ± εₖ, ∇μ = Σₖ (u⁺ₖ − u⁻ₖ)/2 εₖ / (λ/2), ∇σ = Σₖ (u⁺ₖ + u⁻ₖ)/2 (εₖ² − σ²)/σ / (λ/2) (u centred);
    μ follows ∇μ through ClipUp (Toklu et al. 2020), σ ← σ + η_σ ∇σ with a relative change of at most
    ``stdev_max_change``."""

    name = "evotorch-pgpe"
    config_class = PGPEConfig
    default_ranking = "centered"

    def __init__(self, problem: Problem, population: Tensor, generator: torch.Generator, **options: Any):
        super().__init__(problem, population, generator, **options)
        assert isinstance(self.config, PGPEConfig)
        self.stdev_max_change = self.config.stdev_max_change
        self.optimizer: Any = None
        if self.config.optimizer != "none":
            config = None
            if self.config.optimizer == "clipup":
                config = {"max_speed": self.config.max_speed or 2 * self.center_lr}
            cls = self.evotorch.optimizers.get_optimizer_class(self.config.optimizer, config)
            self.optimizer = cls(stepsize=self.center_lr, dtype=torch.float64, solution_length=problem.dim,
                                 device="cpu")

    def default_popsize(self, dim: int) -> int:
        n = default_popsize(dim)
        return n + n % 2

    def default_center_lr(self, dim: int) -> float:
        return 0.15

    def default_stdev_lr(self, dim: int) -> float:
        return 0.1

    def make_distribution(self, mu: Tensor, sigma: Tensor) -> Any:
        params = {"mu": mu, "sigma": sigma, "divide_mu_grad_by": "num_directions",
                  "divide_sigma_grad_by": "num_directions"}
        return self.evotorch.distributions.SymmetricSeparableGaussian(params, dtype=torch.float64)

    def update(self, gradients: dict[str, Tensor]) -> Any:
        if self.optimizer is None:
            updated = super().update(gradients)
        else:
            updated = self.distribution.update_parameters(gradients, learning_rates={"sigma": self.stdev_lr},
                                                          optimizers={"mu": self.optimizer})
        if self.stdev_max_change is None:
            return updated
        sigma = self.evotorch.tools.modify_tensor(self.distribution.sigma, updated.sigma,
                                                  max_change=self.stdev_max_change)
        return updated.modified_copy(sigma=sigma)
