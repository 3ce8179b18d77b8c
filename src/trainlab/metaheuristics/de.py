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


def binomial_crossover_(searcher: Searcher, x: Tensor, v: Tensor, cr: Tensor | float) -> Tensor:
    """In place on ``v``: u_ij = v_ij where U_ij < CR_i or j = j_rand(i), else x_ij; returns ``v``.

    The U_ij are uniform on the grid {0, 2⁻¹⁶, …, 1 − 2⁻¹⁶}: four 16-bit fields of each full-range 64-bit
    word of :attr:`~Searcher.device_generator` (a quarter of the generator calls of float32 uniforms, which
    cost a third of a SHADE generation on a 1.4 M-gene population). The comparison is exact: with
    U_ij = k / 2¹⁶, U_ij < CR_i ⟺ k < ⌈2¹⁶ CR_i⌉, so a gene crosses with probability ⌈2¹⁶ CR_i⌉ / 2¹⁶ (within
    2⁻¹⁶ of CR_i, exactly 0 and 1 at CR_i = 0 and 1), and float32 and float64 searches draw the same
    choices. The choice becomes a 0/1 weight in a reused buffer, and ``torch.lerp`` with a weight of
    exactly 0 or 1 returns exactly x_ij or v_ij (ATen computes x + w (v − x) for w < ½ and
    v − (v − x)(1 − w) otherwise)."""
    n, d = x.shape
    words = searcher.buffer("crossover_draws", n, torch.int64, columns=(d + 3) // 4)
    words.random_(-(2**63), None, generator=searcher.device_generator)
    draws = words.view(torch.int16)[:, :d]
    limit = torch.ceil(torch.as_tensor(cr, dtype=torch.float64).reshape(-1, 1).expand(n, 1) * 2**16).long()
    # a signed field s is k − 2¹⁵, so k < limit ⟺ s ≤ limit − 2¹⁵ − 1 (clamped into int16; CR = 0 fixed below)
    threshold = (limit - 2**15 - 1).clamp(-(2**15), 2**15 - 1).to(device=x.device, dtype=torch.int16)
    weight = torch.le(draws, threshold, out=searcher.buffer("crossover", n, x.dtype))
    never = (limit <= 0).squeeze(1).nonzero().squeeze(1)
    if len(never):
        weight[never.to(x.device)] = 0.0
    weight[torch.arange(n, device=x.device), searcher.randint(d, n)] = 1.0
    return torch.lerp(x, v, weight, out=v)


def binomial_crossover(searcher: Searcher, x: Tensor, v: Tensor, cr: Tensor | float) -> Tensor:
    """u_ij = v_ij where U_ij < CR_i or j = j_rand(i), else x_ij (a new tensor; see :func:`binomial_crossover_`)."""
    return binomial_crossover_(searcher, x, v.clone(), cr)


def repair_(searcher: Searcher, v: Tensor, parent: Tensor, how: str) -> Tensor:
    """In place on ``v``: out-of-box coordinates repaired by rule ``how`` (module docstring); returns ``v``.
    One min/max pass decides whether anything is out of the box; only then are masks built."""
    lo, hi = searcher.problem.lower, searcher.problem.upper
    low, high = torch.aminmax(v)
    if not (float(low) < lo or float(high) > hi):
        return v
    if how == "clip":
        return v.clamp_(lo, hi)
    below, above = v < lo, v > hi
    if how == "midpoint":
        return v.copy_(torch.where(below, (lo + parent) / 2, torch.where(above, (hi + parent) / 2, v)))
    fresh = lo + (hi - lo) * searcher.rand(*v.shape)
    return v.copy_(torch.where(below | above, fresh, v))


def repair(searcher: Searcher, v: Tensor, parent: Tensor, how: str) -> Tensor:
    """Out-of-box coordinates of ``v`` repaired by rule ``how`` (a new tensor; see :func:`repair_`)."""
    return repair_(searcher, v.clone(), parent, how)


def select_(searcher: Searcher, trial: Tensor, fitness: Tensor) -> Tensor:
    """Greedy selection in place: rows i with f(u_i) ≤ f(x_i) of ``searcher.x`` become ``trial``'s (only
    those rows are copied, through a reused buffer), ``searcher.f`` takes their fitness; returns the
    accepted mask (P,)."""
    x, f = searcher.x, searcher.f
    assert f is not None
    accept = fitness <= f
    index = accept.nonzero().squeeze(1)
    if len(index) == len(x):
        x.copy_(trial)
    elif len(index):
        x.index_copy_(0, index, torch.index_select(trial, 0, index, out=searcher.buffer("work", len(index))))
    torch.where(accept, fitness.to(f.dtype), f, out=f)
    return accept


@SEARCHERS.register("de")
class DE(Searcher):
    """DE/rand/1/bin with fixed F and CR; the first ``ask`` returns the initial population."""

    name = "de"

    def __init__(self, problem: Problem, population: Tensor, generator: torch.Generator, **options: float | str):
        super().__init__(problem, population, generator)
        self.config = from_mapping(DEConfig, options, where=self.name)
        self._trial: Tensor | None = None

    def mutate(self) -> Tensor:
        """v_i = x_r1 + F (x_r2 − x_r3), all rows at once as v = C·x (one matrix product into the reused
        trial buffer; row i of C holds 1 at r1, F at r2 and −F at r3)."""
        x, n = self.x, len(self.x)
        r = distinct_indices(self, n, 3).cpu()
        c = torch.zeros(n, n, dtype=torch.float64)
        rows = torch.arange(n)
        for k, weight in enumerate((1.0, self.config.F, -self.config.F)):
            c[rows, r[:, k]] = weight
        return torch.mm(c.to(x.device, x.dtype), x, out=self.buffer("trial", n))

    def ask(self) -> Tensor:
        """The trial vectors (valid until the next ``ask``: they live in a reused buffer)."""
        if self.f is None:
            return self.x
        v = repair_(self, self.mutate(), self.x, self.config.repair)
        self._trial = binomial_crossover_(self, self.x, v, self.config.CR)
        return self._trial

    def tell(self, fitness: Tensor) -> None:
        if self.f is None:
            self.f = fitness.clone()
            self._note_best(self.x, self.f)
            return
        assert self._trial is not None
        select_(self, self._trial, fitness)
        self._note_best(self.x, self.f)
        self.generation += 1
