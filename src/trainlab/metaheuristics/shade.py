"""SHADE: success-history based parameter adaptation for DE (Tanabe & Fukunaga, CEC 2013).

Per generation and individual i: pick r_i uniformly in {1..H}; CR_i ~ N(M_CR[r_i], 0.1) clipped to
[0, 1]; F_i ~ Cauchy(M_F[r_i], 0.1), redrawn while ≤ 0 and truncated to 1; p_i ~ U[2/N, p_max].
Mutation current-to-pbest/1: v_i = x_i + F_i (x_pbest − x_i) + F_i (x_r1 − x_r2), x_pbest uniform among
the max(2, round(p_i N)) best, r1 ∈ P \\ {i}, r2 ∈ P ∪ A \\ {i, r1}; coordinates out of the box go halfway
between the parent and the bound; binomial crossover; u_i replaces x_i if f(u_i) ≤ f(x_i). Parents
strictly improved upon go to the archive A (|A| ≤ round(archive_rate · N), random deletions); their
F_i, CR_i and Δf_i = |f(u_i) − f(x_i)| update memory slot k (cyclic): with w = Δf / ΣΔf,
M_F[k] = Σ w F² / Σ w F (weighted Lehmer mean) and M_CR[k] = Σ w CR (weighted arithmetic mean).
Defaults are the paper's: H = 100, p_max = 0.2, |A| = N, memories initialised to 0.5.

Implementation: the per-individual draws (r_i, F_i, CR_i, p_i, pbest, r1, r2, archive deletions) come from
the CPU generator; the gene operators run on the population's device and dtype, in place, in reused
buffers: the population and the archive share one buffer (rows [0, N) and [N, N + |A|)), so that
x_r2 ∈ P ∪ A is one ``index_select`` with no concatenation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from trainlab.core.config import ConfigError, check_choice, check_number, from_mapping
from trainlab.metaheuristics.base import SEARCHERS, Problem, Searcher
from trainlab.metaheuristics.de import binomial_crossover_, repair_, select_


@dataclass(frozen=True)
class SHADEConfig:
    memory_size: int = 100
    p_max: float = 0.2
    p: float | None = None
    """A fixed p-best rate (L-SHADE uses 0.11); ``None`` draws p_i ~ U[2/N, p_max] (SHADE)."""
    archive_rate: float = 1.0
    cr_mean: str = "arithmetic"
    terminal_cr: bool = False
    """L-SHADE's terminal value ⊥: a memory slot whose successful CRs were all 0 stays CR = 0 for good."""
    memory_init: float = 0.5

    def __post_init__(self) -> None:
        check_number("memory_size", self.memory_size, low=1, integer=True)
        check_number("p_max", self.p_max, low=0, high=1, low_open=True)
        if self.p is not None:
            check_number("p", self.p, low=0, high=1, low_open=True)
        check_number("archive_rate", self.archive_rate, low=0)
        check_choice("cr_mean", self.cr_mean, ("arithmetic", "lehmer"))
        check_choice("terminal_cr", self.terminal_cr, (True, False))
        check_number("memory_init", self.memory_init, low=0, high=1)


def weighted_lehmer_mean(values: Tensor, weights: Tensor) -> Tensor:
    """Σ w s² / Σ w s."""
    return (weights * values * values).sum() / (weights * values).sum()


def update_memory(
    m_f: Tensor, m_cr: Tensor, k: int, s_f: Tensor, s_cr: Tensor, delta: Tensor, cr_mean: str, terminal: bool
) -> int:
    """Write slot ``k`` of the memories from the successful F, CR and their improvements Δf (in place);
    return the next slot. Nothing changes when there was no success. NaN in ``m_cr`` is the terminal ⊥."""
    if len(s_f) == 0:
        return k
    w = delta / delta.sum() if float(delta.sum()) > 0 else torch.full_like(delta, 1.0 / len(delta))
    m_f[k] = weighted_lehmer_mean(s_f, w)
    if terminal and (bool(torch.isnan(m_cr[k])) or float(s_cr.max()) == 0.0):
        m_cr[k] = math.nan
    elif cr_mean == "lehmer":
        m_cr[k] = weighted_lehmer_mean(s_cr, w) if float(s_cr.max()) > 0 else 0.0
    else:
        m_cr[k] = (w * s_cr).sum()
    return (k + 1) % len(m_f)


@SEARCHERS.register("shade")
class SHADE(Searcher):
    """SHADE as ask/tell; the first ``ask`` returns the initial population."""

    name = "shade"
    config_class: type[SHADEConfig] = SHADEConfig

    def __init__(self, problem: Problem, population: Tensor, generator: torch.Generator, **options: object):
        self.config = from_mapping(self.config_class, options, where=self.name)
        self._union = population[:0]
        self._n = self._archive_len = 0
        super().__init__(problem, population, generator)
        if len(population) < 4:
            raise ConfigError("population_size", len(population), "at least 4 for current-to-pbest/1")
        self.reset_memory()
        self._trial: Tensor | None = None
        self._F = self._CR = population.new_empty(0)

    @property
    def x(self) -> Tensor:
        """The population, rows [0, N) of the population-and-archive buffer."""
        return self._union[: self._n]

    @x.setter
    def x(self, value: Tensor) -> None:
        """Replace the population (N may change); the archive is kept."""
        self._store(value, self.archive)

    @property
    def archive(self) -> Tensor:
        """The archive A, rows [N, N + |A|) of the population-and-archive buffer."""
        return self._union[self._n : self._n + self._archive_len]

    @archive.setter
    def archive(self, value: Tensor) -> None:
        self._store(self.x, value)

    def _store(self, x: Tensor, archive: Tensor) -> None:
        """A new population-and-archive buffer holding ``x`` and ``archive``, with room for a full archive."""
        n, a = len(x), len(archive)
        union = x.new_empty(n + max(a, int(round(self.config.archive_rate * n))), x.shape[1])
        union[:n] = x
        union[n : n + a] = archive.to(union)
        self._union, self._n, self._archive_len = union, n, a

    def reset_memory(self) -> None:
        h = self.config.memory_size
        self.m_f = torch.full((h,), self.config.memory_init, dtype=torch.float64)
        self.m_cr = torch.full((h,), self.config.memory_init, dtype=torch.float64)
        self.k = 0

    @property
    def archive_capacity(self) -> int:
        return int(round(self.config.archive_rate * len(self.x)))

    def sample_parameters(self, n: int) -> tuple[Tensor, Tensor]:
        """F_i (Cauchy, redrawn while ≤ 0, truncated at 1) and CR_i (normal, clipped) from random slots."""
        g = self.generator
        r = (torch.rand(n, generator=g, dtype=torch.float64) * len(self.m_f)).long()
        mu_cr = self.m_cr[r]
        cr = (mu_cr + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)).clamp(0.0, 1.0)
        cr = torch.where(torch.isnan(mu_cr), torch.zeros_like(cr), cr)
        f = torch.zeros(n, dtype=torch.float64)
        todo = torch.ones(n, dtype=torch.bool)
        while todo.any():
            u = torch.rand(int(todo.sum()), generator=g, dtype=torch.float64)
            f[todo] = self.m_f[r[todo]] + 0.1 * torch.tan(math.pi * (u - 0.5))
            todo = f <= 0
        return f.clamp(max=1.0), cr

    def pbest(self) -> Tensor:
        """For each i, an index drawn uniformly among the max(2, round(p_i N)) best individuals."""
        assert self.f is not None
        n = len(self.x)
        if self.config.p is None:
            p = 2.0 / n + torch.rand(n, generator=self.generator, dtype=torch.float64) * (self.config.p_max - 2.0 / n)
        else:
            p = torch.full((n,), self.config.p, dtype=torch.float64)
        count = torch.clamp(torch.round(p * n), min=2, max=n)
        order = torch.argsort(self.f.cpu(), stable=True)
        pick = (torch.rand(n, generator=self.generator, dtype=torch.float64) * count).long()
        return order[pick].to(self.device)

    def partners(self) -> tuple[Tensor, Tensor]:
        """r1 ∈ P \\ {i}; r2 ∈ P ∪ A \\ {i, r1} (indices ≥ N address the archive)."""
        n, total = len(self.x), len(self.x) + len(self.archive)
        i = torch.arange(n)
        r1 = torch.zeros(n, dtype=torch.long)
        r2 = torch.zeros(n, dtype=torch.long)
        todo = torch.ones(n, dtype=torch.bool)
        while todo.any():
            r1[todo] = (torch.rand(int(todo.sum()), generator=self.generator, dtype=torch.float64) * n).long()
            todo = r1 == i
        todo = torch.ones(n, dtype=torch.bool)
        while todo.any():
            r2[todo] = (torch.rand(int(todo.sum()), generator=self.generator, dtype=torch.float64) * total).long()
            todo = (r2 == i) | (r2 == r1)
        return r1.to(self.device), r2.to(self.device)

    def mutate(self, F: Tensor) -> Tensor:
        """v_i = x_i + F_i (x_pbest − x_i) + F_i (x_r1 − x_r2), all rows at once as v = C·[P; A] (one ``mm``
        into the reused trial buffer), where row i of C holds +F_i at pbest_i and r1_i, −F_i at r2_i, and
        1 − F_i at i (the x_i terms, summed as (F_i − F_i) + 1 = 1 exactly when pbest_i = i)."""
        x, n = self.x, len(self.x)
        union = self._union[: n + self._archive_len]
        r1, r2 = self.partners()
        pbest = self.pbest()
        rows, f = torch.arange(n), F.to(torch.float64)
        c = torch.zeros(n, len(union), dtype=torch.float64)
        for cols, value in ((pbest, f), (rows, -f), (r1, f), (r2, -f), (rows, torch.ones_like(f))):
            c.index_put_((rows, cols.cpu()), value, accumulate=True)
        return torch.mm(c.to(self.device, x.dtype), union, out=self.buffer("trial", n))

    def ask(self) -> Tensor:
        """The trial vectors (valid until the next ``ask``: they live in a reused buffer)."""
        if self.f is None:
            return self.x
        self._F, self._CR = self.sample_parameters(len(self.x))
        v = repair_(self, self.mutate(self._F), self.x, "midpoint")
        self._trial = binomial_crossover_(self, self.x, v, self._CR)
        return self._trial

    def add_to_archive(self, parents: Tensor) -> None:
        """Add ``parents`` (m, D); when |A| + m exceeds the capacity, a uniformly random subset of the |A| + m
        of the capacity's size is kept (the old members and parents deleted at random). Parents go into
        free archive rows, so members never move."""
        a, m, cap = self._archive_len, len(parents), self.archive_capacity
        start = self._n
        if len(self._union) < start + min(a + m, cap):
            self._store(self.x, self.archive)
        if a + m <= cap:
            self._union[start + a : start + a + m] = parents
            self._archive_len = a + m
            return
        keep = torch.randperm(a + m, generator=self.generator)[a + m - cap :]
        taken = torch.zeros(cap, dtype=torch.bool)
        taken[keep[keep < a]] = True
        rows = (~taken).nonzero().squeeze(1) + start
        new = keep[keep >= a] - a
        self._union[rows.to(self.device)] = parents[new.to(self.device)]
        self._archive_len = cap

    def tell(self, fitness: Tensor) -> None:
        if self.f is None:
            self.f = fitness.clone()
            self._note_best(self.x, self.f)
            return
        assert self._trial is not None
        fitness = fitness.to(self.f.dtype)
        improved = (fitness < self.f).cpu()
        delta = (self.f - fitness).abs().cpu().double()[improved]
        index = improved.nonzero().squeeze(1).to(self.device)
        if len(index):
            self.add_to_archive(torch.index_select(self.x, 0, index, out=self.buffer("work", len(index))))
        self.k = update_memory(
            self.m_f, self.m_cr, self.k, self._F[improved], self._CR[improved], delta,
            self.config.cr_mean, self.config.terminal_cr,
        )
        select_(self, self._trial, fitness)
        self._note_best(self.x, self.f)
        self.generation += 1
        self.after_generation()

    def after_generation(self) -> None:
        """Hook for subclasses (L-SHADE's population reduction)."""
