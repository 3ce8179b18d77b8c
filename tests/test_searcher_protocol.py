"""Every built-in searcher speaks ask/tell: SHADE-ILS driven by plain ask/tell runs the same search (local
searches and restarts included) as SHADE-ILS driven by ``step`` with no evaluation limit."""
from __future__ import annotations

import sys

import pytest
import torch

from trainlab.core.seeding import torch_generator
from trainlab.metaheuristics import SHADEILS, Problem
from trainlab.metaheuristics.base import uniform_population
from trainlab.metaheuristics.benchmarks import rastrigin, value_and_grad


def _searcher(**options: object) -> tuple[SHADEILS, Problem]:
    problem = Problem(rastrigin, 4, -5.12, 5.12, value_and_grad=value_and_grad(rastrigin))
    population = uniform_population(8, 4, -5.12, 5.12, torch_generator(0, "population"))
    return SHADEILS(problem, population, torch_generator(0, "searcher"), de_evals=40, ls_evals=12, **options), problem


@pytest.mark.parametrize("options", [{}, {"restart_after": 1, "threshold": 1.0}])
def test_ask_tell_and_step_run_the_same_search(options: dict[str, object]) -> None:
    stepped, p1 = _searcher(**options)
    while len(stepped.log) < 6:
        stepped.step(sys.maxsize)
    told, p2 = _searcher(**options)
    while len(told.log) < 6:
        x = told.ask()
        told.tell(p2.evaluate(x))
    assert p1.evals == p2.evals and stepped.log == told.log
    assert stepped.best_f == told.best_f and torch.equal(stepped.best_x, told.best_x)
    assert told.restarts == stepped.restarts and (told.restarts > 0) == bool(options)
    assert p2.evals > 6 * 40  # the local searches spent evaluations beyond the told ones
