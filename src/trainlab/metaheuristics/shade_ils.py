"""SHADE-ILS (Molina, LaTorre & Herrera, CEC 2018): SHADE alternating with an iterated local search.

One iteration: put the current best x_c into the population (over its best member if better), run SHADE
for ``de_evals`` evaluations (whole generations; memories persist between iterations), then apply to
x_c the local search chosen by :class:`~trainlab.metaheuristics.local_search.LSPool` (MTS-LS1 or
L-BFGS-B with exact gradients) for ``ls_evals`` evaluations. With I = (f_start − f_end) / |f_start| over
the iteration: if I < ``threshold`` (5 %) MTS-LS1's search ranges are reset and a counter grows, else it
is zeroed; after ``restart_after`` (3) such iterations in a row the search restarts: x_c becomes a random
population member plus U(±``perturbation``·(upper − lower)) noise, the population is drawn afresh
(``Problem.random``), and memories, ranges and the LS pool are reset. The best point ever evaluated is
kept in ``best_x``/``best_f``.

As a searcher it advances one unit per :meth:`step` (the initial evaluation, one SHADE generation, or
one local search), so that a caller can cut the run at any evaluation count.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trainlab.core.config import ConfigError, check_number, from_mapping
from trainlab.metaheuristics.base import SEARCHERS, Problem, Searcher
from trainlab.metaheuristics.local_search import LBFGSB, MTSLS1, LSPool, improvement_ratio
from trainlab.metaheuristics.shade import SHADE

LS_METHODS = {"mts": MTSLS1, "lbfgsb": LBFGSB}


@dataclass(frozen=True)
class SHADEILSConfig:
    de_evals: int | None = None
    """Evaluations of SHADE per iteration; default min(50 D, 25 000) as in the authors' code."""
    ls_evals: int | None = None
    """Evaluations of local search per iteration; default min(10 D, 5 000)."""
    methods: tuple[str, ...] = ("mts", "lbfgsb")
    threshold: float = 0.05
    restart_after: int = 3
    perturbation: float = 0.01
    memory_size: int | None = None
    """SHADE's H; default the population size (capped at 100) as in the authors' code."""

    def __post_init__(self) -> None:
        for key in ("de_evals", "ls_evals", "memory_size"):
            if getattr(self, key) is not None:
                check_number(key, getattr(self, key), low=1, integer=True)
        object.__setattr__(self, "methods", tuple(self.methods))
        if not self.methods or any(m not in LS_METHODS for m in self.methods):
            raise ConfigError("methods", self.methods, "a non-empty subset of " + ", ".join(LS_METHODS))
        check_number("threshold", self.threshold, low=0)
        check_number("restart_after", self.restart_after, low=1, integer=True)
        check_number("perturbation", self.perturbation, low=0)


@SEARCHERS.register("shade-ils")
class SHADEILS(Searcher):
    name = "shade-ils"

    def __init__(self, problem: Problem, population: Tensor, generator: torch.Generator, **options: object):
        super().__init__(problem, population, generator)
        self.config = from_mapping(SHADEILSConfig, options, where=self.name)
        d = problem.dim
        self.de_evals = self.config.de_evals or min(50 * d, 25_000)
        self.ls_evals = self.config.ls_evals or min(10 * d, 5_000)
        self.memory_size = self.config.memory_size or min(len(population), 100)
        self.shade = SHADE(problem, population, generator, memory_size=self.memory_size)
        self.local = [LS_METHODS[m](problem, generator) for m in self.config.methods]
        self.pool = LSPool(self.local, generator)
        self.cur_x, self.cur_f = population[0].clone(), float("inf")
        self.phase, self.de_spent, self.start_f = "init", 0, float("inf")
        self.worse, self.restarts = 0, 0
        self.log: list[dict[str, object]] = []

    @property
    def x(self) -> Tensor:  # type: ignore[override]
        return self.shade.x

    @x.setter
    def x(self, value: Tensor) -> None:
        """The population lives in ``shade`` (the base class's assignment, made before ``shade`` exists, is the
        initial population ``shade`` is built from)."""
        if "shade" in self.__dict__:
            self.shade.x = value

    @property
    def f(self) -> Tensor | None:  # type: ignore[override]
        return self.shade.f

    @f.setter
    def f(self, value: Tensor | None) -> None:
        """The population's fitness lives in ``shade``."""
        if "shade" in self.__dict__:
            self.shade.f = value

    def ask(self) -> Tensor:
        if self.phase == "ls":
            raise RuntimeError("shade-ils: the local-search phase is driven by step(), not ask/tell")
        return self.shade.ask()

    def tell(self, fitness: Tensor) -> None:
        self.shade.tell(fitness)
        self.generation = self.shade.generation
        i = int(torch.argmin(self.shade.f))
        if float(self.shade.f[i]) < self.cur_f:
            self.cur_x, self.cur_f = self.shade.x[i].clone(), float(self.shade.f[i])
        self._note(self.cur_x, self.cur_f)

    def _note(self, x: Tensor, f: float) -> None:
        if f < self.best_f:
            self.best_x, self.best_f = x.clone(), f

    def _inject_current(self) -> None:
        """Put x_c into the population over its best member when x_c is better."""
        f = self.shade.f
        assert f is not None
        i = int(torch.argmin(f))
        if self.cur_f < float(f[i]):
            self.shade.x[i] = self.cur_x
            f[i] = self.cur_f

    def step(self, limit: int) -> int:
        if self.phase == "init":
            spent = Searcher.step(self, limit)
            self.phase, self.start_f = "de", self.cur_f
            return spent
        if self.phase == "de":
            if self.de_spent == 0:
                self._inject_current()
            spent = Searcher.step(self, limit)
            self.de_spent += spent
            if self.de_spent >= self.de_evals:
                self.phase, self.de_spent = "ls", 0
            return spent
        method = self.pool.choose()
        before = self.cur_f
        start = self.problem.evals
        x, fx = method.run(self.cur_x, self.cur_f, min(self.ls_evals, limit))
        if fx < self.cur_f:
            self.cur_x, self.cur_f = x, fx
        self._note(self.cur_x, self.cur_f)
        self.pool.record(method, improvement_ratio(before, self.cur_f))
        spent = self.problem.evals - start
        spent += self._end_iteration(limit - spent)
        self.phase = "de"
        return spent

    def _end_iteration(self, limit: int) -> int:
        ratio = improvement_ratio(self.start_f, self.cur_f)
        self.log.append({"evals": self.problem.evals, "best": self.best_f, "ratio": ratio, "restart": False})
        if ratio >= self.config.threshold:
            self.worse = 0
        else:
            self.worse += 1
            for m in self.local:
                if m.name == "mts":
                    m.reset()
        spent = 0
        if self.worse >= self.config.restart_after and limit >= 1 + len(self.shade.x):
            spent = self.restart()
            self.log[-1]["restart"] = True
        self.start_f = self.cur_f
        return spent

    def restart(self) -> int:
        """Perturb a random member into the new x_c, draw a fresh population, reset memories and LS state."""
        self.worse, self.restarts = 0, self.restarts + 1
        n, lo, hi = len(self.shade.x), self.problem.lower, self.problem.upper
        pick = self.shade.x[int(torch.randint(n, (1,), generator=self.generator))]
        noise = (self.rand(self.problem.dim) * 2 - 1) * self.config.perturbation * (hi - lo)
        self.cur_x = (pick + noise).clamp(lo, hi)
        self.cur_f = float(self.problem.evaluate(self.cur_x[None])[0])
        self._note(self.cur_x, self.cur_f)
        fresh = self.problem.random(n, self.generator).to(self.shade.x.device, self.shade.x.dtype)
        self.shade = SHADE(self.problem, fresh, self.generator, memory_size=self.memory_size)
        spent = Searcher.step(self.shade, n)
        self._note(self.shade.best_x, self.shade.best_f)
        self.pool.reset()
        for m in self.local:
            m.reset()
        return 1 + spent

    def inject(self, x: Tensor, f: float) -> None:
        """Offer an outside point (a memetic gradient epoch's result): it becomes x_c when better."""
        if f < self.cur_f:
            self.cur_x, self.cur_f = x.clone(), f
        self._note(x, f)
