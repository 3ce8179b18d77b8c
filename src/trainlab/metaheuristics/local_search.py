"""Local searches of SHADE-ILS (Molina, LaTorre & Herrera 2018), each improving one point within an
evaluation limit, plus the improvement-ratio pool that chooses between them.

* :class:`MTSLS1` (Tseng & Chen 2008, as in the SHADE-ILS authors' code): x_j − SR_j, and if that is
  worse x_j + SR_j/2; keep what improves; a coordinate that did not improve halves its SR_j. One pass
  over the coordinates in random order, then passes in order of decreasing improvement, staying on a
  coordinate while it improves; SR_j below 1e-15 is reset to 0.2 (upper − lower).
* :class:`LBFGSB`: ``scipy.optimize.minimize(method="L-BFGS-B")`` with the problem's exact (backprop)
  gradient; every function+gradient call counts one evaluation and the limit is never exceeded.
* :class:`LSPool`: each method is applied once (in random order); afterwards the one whose last
  application gave the largest improvement ratio (f_before − f_after) / |f_before| (random if all 0).
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from scipy.optimize import Bounds, minimize
from torch import Tensor

from trainlab.metaheuristics.base import Problem


class LocalSearch(Protocol):
    name: str

    def run(self, x: Tensor, fx: float, limit: int) -> tuple[Tensor, float]: ...

    def reset(self) -> None: ...


class MTSLS1:
    """MTS-LS1 with persistent per-coordinate search ranges ``sr`` (reset by :meth:`reset`)."""

    name = "mts"

    def __init__(self, problem: Problem, generator: torch.Generator, initial_range: float = 0.2):
        self.problem, self.generator = problem, generator
        self.initial = initial_range * (problem.upper - problem.lower)
        self.sr = torch.full((problem.dim,), self.initial, dtype=torch.float64)

    def reset(self) -> None:
        self.sr.fill_(self.initial)

    def _try(self, x: Tensor, j: int, delta: float) -> tuple[Tensor, float]:
        y = x.clone()
        y[j] = min(max(float(y[j]) + delta, self.problem.lower), self.problem.upper)
        return y, float(self.problem.evaluate(y[None])[0])

    def _improve(self, x: Tensor, fx: float, j: int, budget: int) -> tuple[Tensor, float, int]:
        """Probe coordinate ``j``: x_j − SR_j, then (if strictly worse and budget remains) x_j + SR_j/2."""
        y, fy = self._try(x, j, -float(self.sr[j]))
        if fy < fx:
            return y, fy, 1
        if fy > fx and budget > 1:
            y, fy = self._try(x, j, 0.5 * float(self.sr[j]))
            if fy < fx:
                return y, fy, 2
            return x, fx, 2
        return x, fx, 1

    def run(self, x: Tensor, fx: float, limit: int) -> tuple[Tensor, float]:
        dim = self.problem.dim
        order = torch.randperm(dim, generator=self.generator).tolist()
        gain = [0.0] * dim
        spent = pos = 0
        first_pass = True
        while spent < limit:
            j = order[pos]
            y, fy, used = self._improve(x, fx, j, limit - spent)
            spent += used
            gain[j] = fx - fy
            if fy < fx:
                x, fx = y, fy
                if not first_pass:  # stay on j; re-rank when the next coordinate had gained more
                    if gain[j] < gain[order[(pos + 1) % dim]]:
                        order = sorted(range(dim), key=lambda i: -gain[i])
                    continue
            else:
                self.sr[j] /= 2
            pos += 1
            if pos == dim:
                if first_pass:
                    first_pass = False
                    order = sorted(range(dim), key=lambda i: -gain[i])
                pos = 0
        self.sr[self.sr < 1e-15] = self.initial
        return x, fx


class _Exhausted(Exception):
    pass


class LBFGSB:
    """L-BFGS-B from SciPy with backprop gradients (float64 on the SciPy side)."""

    name = "lbfgsb"

    def __init__(self, problem: Problem, generator: torch.Generator | None = None):
        self.problem = problem

    def reset(self) -> None:
        """Stateless between applications."""

    def run(self, x: Tensor, fx: float, limit: int) -> tuple[Tensor, float]:
        best: list[object] = [x, fx]
        spent = [0]

        def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
            if spent[0] >= limit:
                raise _Exhausted
            point = torch.as_tensor(z, dtype=x.dtype, device=x.device)
            f, g = self.problem.evaluate_grad(point)
            spent[0] += 1
            value = float(f)
            if value < best[1]:  # type: ignore[operator]
                best[0], best[1] = point.clone(), value
            return value, g.detach().double().cpu().numpy()

        d = self.problem.dim
        bounds = Bounds(np.full(d, self.problem.lower), np.full(d, self.problem.upper))
        try:
            minimize(fun, x.detach().double().cpu().numpy(), jac=True, method="L-BFGS-B", bounds=bounds,
                     options={"maxfun": limit, "maxiter": limit})
        except _Exhausted:
            pass
        return best[0], best[1]  # type: ignore[return-value]


def improvement_ratio(before: float, after: float) -> float:
    """(before − after) / |before|, 0 when before is 0."""
    return 0.0 if before == 0 else (before - after) / abs(before)


class LSPool:
    """Chooses the local search by the improvement ratio of each method's last application."""

    def __init__(self, methods: list[LocalSearch], generator: torch.Generator):
        self.methods, self.generator = methods, generator
        self.reset()

    def reset(self) -> None:
        self.ratios = {m.name: 0.0 for m in self.methods}
        perm = torch.randperm(len(self.methods), generator=self.generator).tolist()
        self.pending = [self.methods[i] for i in perm]

    def choose(self) -> LocalSearch:
        if self.pending:
            return self.pending.pop(0)
        values = [self.ratios[m.name] for m in self.methods]
        if max(values) <= 0:
            return self.methods[int(torch.randint(len(self.methods), (1,), generator=self.generator))]
        return self.methods[int(np.argmax(values))]

    def record(self, method: LocalSearch, ratio: float) -> None:
        self.ratios[method.name] = max(ratio, 0.0)
