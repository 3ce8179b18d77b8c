"""The problem/searcher split (as in EvoTorch) and the ask/tell protocol (as in CMA-ES, Optuna).

A :class:`Problem` is a batched fitness on (P, D) tensors with box bounds, optionally a gradient and a
sampler of fresh individuals; it counts every evaluation. A :class:`Searcher` knows nothing of
networks: ``ask()`` returns candidates, ``tell(fitness)`` consumes their fitness; ``step(limit)`` does
one ask/evaluate/tell round spending at most ``limit`` evaluations. :func:`minimize` drives a searcher
on a plain function until an evaluation budget is spent.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from trainlab.core.config import ConfigError, check_number
from trainlab.core.registry import Registry
from trainlab.core.seeding import torch_generator

SEARCHERS: Registry[type["Searcher"]] = Registry("searcher")


@dataclass
class Problem:
    """Minimise ``fitness``: (P, D) → (P,) over the box [lower, upper]^D.

    ``value_and_grad(x) -> (f, ∇f)`` for one (D,) point enables gradient local search; ``sample(n, gen)``
    draws fresh individuals for restarts (uniform in the box by default). ``evals`` counts evaluations
    (a gradient evaluation counts one); ``on_evaluate(n, fitness, grad)`` is called after each batch so
    that a trainer can account for what was spent.
    """

    fitness: Callable[[Tensor], Tensor]
    dim: int
    lower: float
    upper: float
    value_and_grad: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None
    sample: Callable[[int, torch.Generator], Tensor] | None = None
    on_evaluate: Callable[[int, Tensor, bool], None] | None = None
    evals: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        check_number("dim", self.dim, low=1, integer=True)
        check_number("lower", self.lower)
        check_number("upper", self.upper)
        if not self.lower < self.upper:
            raise ConfigError("bounds", (self.lower, self.upper), "lower < upper")

    def evaluate(self, x: Tensor) -> Tensor:
        f = self.fitness(x)
        self.evals += len(x)
        if self.on_evaluate is not None:
            self.on_evaluate(len(x), f, False)
        return f

    def evaluate_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.value_and_grad is None:
            raise ConfigError("problem.value_and_grad", None, "a gradient function for gradient local search")
        f, g = self.value_and_grad(x)
        self.evals += 1
        if self.on_evaluate is not None:
            self.on_evaluate(1, f.reshape(1), True)
        return f, g

    def random(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` fresh individuals: ``sample`` if given, else uniform in the box."""
        if self.sample is not None:
            return self.sample(n, generator)
        return self.lower + (self.upper - self.lower) * torch.rand(n, self.dim, generator=generator, dtype=torch.float64)


class Searcher(ABC):
    """Base class of ask/tell searchers; ``population`` (P, D) is the initial population (not yet evaluated).

    The search runs on the population's device and in its dtype (the population trainers: float32 by
    default, float64 selectable). Randomness comes only from ``generator`` (a CPU ``torch.Generator``, never
    reseeded): per-individual draws (indices, F, CR) are taken from it directly; the (P, D) draws of the
    gene operators come from :attr:`device_generator`, a generator on the population's device seeded from
    ``generator`` the first time it is needed. Same seed, device and dtype: the same search.
    Large temporaries live in :meth:`buffer` scratch tensors, reused between generations.
    ``best_x``/``best_f`` is the best point evaluated so far.
    """

    name = ""
    uses_max_evals = False
    """True when the searcher's schedule needs the total budget (option ``max_evals``)."""

    def __init__(self, problem: Problem, population: Tensor, generator: torch.Generator):
        if population.ndim != 2 or population.shape[1] != problem.dim:
            raise ConfigError("population", tuple(population.shape), f"a (P, {problem.dim}) tensor")
        self.problem, self.generator = problem, generator
        self._device_generator: torch.Generator | None = None
        self._buffers: dict[str, Tensor] = {}
        self.x = population.clone()
        self.f: Tensor | None = None
        self.best_x = population[0].clone()
        self.best_f = math.inf
        self.generation = 0

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def device_generator(self) -> torch.Generator:
        """The generator of the (P, D) draws, on the population's device, seeded from ``generator``."""
        if self._device_generator is None or self._device_generator.device != self.device:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
            self._device_generator = torch.Generator(device=self.device)
            self._device_generator.manual_seed(seed)
        return self._device_generator

    def rand(self, *shape: int) -> Tensor:
        """U[0, 1) numbers in the population's dtype, drawn on its device by :attr:`device_generator`."""
        return torch.rand(*shape, generator=self.device_generator, dtype=self.x.dtype, device=self.device)

    def buffer(self, name: str, rows: int, dtype: torch.dtype | None = None, columns: int | None = None) -> Tensor:
        """A scratch (rows, columns) tensor on the population's device (columns D and the population's dtype
        unless given), kept between calls (its content is whatever was left in it); allocated again only
        when more rows are needed."""
        dtype = dtype or self.x.dtype
        columns = self.x.shape[1] if columns is None else columns
        buf = self._buffers.get(name)
        if (
            buf is None or len(buf) < rows or buf.shape[1] != columns or buf.dtype != dtype
            or buf.device != self.device
        ):
            buf = self._buffers[name] = torch.empty(rows, columns, dtype=dtype, device=self.device)
        return buf[:rows]

    def randint(self, high: int | Tensor, *shape: int) -> Tensor:
        """Integers in [0, high) (``high`` may be a tensor of per-row limits)."""
        u = torch.rand(*shape, generator=self.generator, dtype=torch.float64)
        return (u * torch.as_tensor(high, dtype=torch.float64)).long().to(self.device)

    @abstractmethod
    def ask(self) -> Tensor:
        """Candidates to evaluate next, (n, D)."""

    @abstractmethod
    def tell(self, fitness: Tensor) -> None:
        """Consume the fitness (n,) of the last ``ask``."""

    def _note_best(self, x: Tensor, f: Tensor) -> None:
        i = int(torch.argmin(f))
        if float(f[i]) < self.best_f:
            self.best_f, self.best_x = float(f[i]), x[i].clone()

    def inject(self, x: Tensor, f: float) -> None:
        """Offer an outside point (a memetic gradient epoch's result): it replaces the worst member when
        better."""
        if self.f is None:
            return
        i = int(torch.argmax(self.f))
        if f < float(self.f[i]):
            self.x[i], self.f[i] = x.to(self.x.dtype), f
        if f < self.best_f:
            self.best_f, self.best_x = f, x.clone()

    def step(self, limit: int) -> int:
        """One ask/evaluate/tell round spending at most ``limit`` evaluations; candidates past the limit
        get fitness +inf (never selected). Returns the evaluations spent."""
        x = self.ask()
        n = min(len(x), limit)
        f = torch.full((len(x),), math.inf, dtype=x.dtype, device=x.device)
        if n:
            f[:n] = self.problem.evaluate(x[:n]).to(x.dtype)
        self.tell(f)
        return n


def uniform_population(n: int, dim: int, lower: float, upper: float, generator: torch.Generator) -> Tensor:
    return lower + (upper - lower) * torch.rand(n, dim, generator=generator, dtype=torch.float64)


@dataclass
class SearchResult:
    x: Tensor
    fun: float
    evals: int
    generations: int
    history: list[tuple[int, float]]


def make_searcher(name: str, problem: Problem, population: Tensor, generator: torch.Generator, **options: Any) -> Searcher:
    """The searcher registered as ``name`` (de, shade, lshade, shade-ils) with its paper's defaults overridden by
    ``options``."""
    return SEARCHERS.get(name)(problem, population, generator, **options)


def minimize(
    fn: Callable[[Tensor], Tensor],
    searcher: str,
    *,
    dim: int,
    bounds: tuple[float, float],
    max_evals: int,
    seed: int = 0,
    population: Tensor | None = None,
    population_size: int = 100,
    value_and_grad: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
    **options: Any,
) -> SearchResult:
    """Minimise the batched function ``fn`` ((P, D) → (P,)) with ``searcher`` within ``max_evals``.

    The initial population is ``population`` or ``population_size`` points uniform in ``bounds``; its
    evaluation is part of the budget. Everything random derives from ``seed``.
    """
    check_number("max_evals", max_evals, low=1, integer=True)
    problem = Problem(fn, dim, float(bounds[0]), float(bounds[1]), value_and_grad=value_and_grad)
    gen = torch_generator(seed, "searcher", searcher)
    if population is None:
        population = uniform_population(population_size, dim, problem.lower, problem.upper, torch_generator(seed, "population"))
    if SEARCHERS.get(searcher).uses_max_evals:
        options.setdefault("max_evals", max_evals)
    algo = make_searcher(searcher, problem, population, gen, **options)
    history = []
    while problem.evals < max_evals:
        algo.step(max_evals - problem.evals)
        history.append((problem.evals, algo.best_f))
    return SearchResult(algo.best_x, algo.best_f, problem.evals, algo.generation, history)
