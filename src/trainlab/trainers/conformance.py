"""Conformance checks for plugin authors, in the style of scikit-learn's ``check_estimator`` (Buitinck et al.,
"API design for machine learning software: experiences from the scikit-learn project", ECML PKDD workshop 2013).

Each ``check_*`` builds the registered object by name, exercises the contract trainlab relies on, and raises
``AssertionError`` naming the broken rule (it returns the list of rules checked when everything holds)::

    from trainlab.trainers.conformance import check_optimizer, check_searcher, check_trainer
    check_optimizer("adamax"); check_searcher("one-plus-lambda"); check_trainer("one-plus-lambda")

The problems are tiny (a 6-dimensional sphere, the 3-arm spiral with a 4-unit network), so a check takes
about a second.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from trainlab.core.budget import LIMITS, Budget
from trainlab.core.config import ConfigError
from trainlab.core.seeding import torch_generator
from trainlab.data import load_task
from trainlab.metaheuristics import SEARCHERS, Problem, Searcher, make_searcher
from trainlab.metaheuristics.base import uniform_population
from trainlab.models import build_model
from trainlab.trainers.base import make_trainer
from trainlab.trainers.optimizers import OPTIMIZERS, make_optimizer
from trainlab.trainers.result import RunResult


def _rule(ok: bool, rules: list[str], rule: str) -> None:
    if not ok:
        raise AssertionError(f"broken rule: {rule}")
    rules.append(rule)


def check_optimizer(name: str) -> list[str]:
    """An optimizer registered in ``OPTIMIZERS``: its defaults validate, unknown options are a ConfigError, and
    with its defaults it decreases the convex quadratic f(θ) = ½ θᵀ diag(1..6) θ over 100 steps."""
    rules: list[str] = []
    spec = OPTIMIZERS.get(name)
    theta = torch.nn.Parameter(torch.ones(6, dtype=torch.float64))
    scales = torch.arange(1, 7, dtype=torch.float64)
    optimizer = make_optimizer(name, [theta])
    _rule(isinstance(optimizer, torch.optim.Optimizer), rules, "make_optimizer returns a torch.optim.Optimizer")
    group = optimizer.param_groups[0]
    _rule(spec.momentum_key is None or spec.momentum_key in group, rules,
          "momentum_key names an entry of the param group (for one-cycle)")
    try:
        make_optimizer(name, [theta], no_such_option=1)
        refused = False
    except ConfigError:
        refused = True
    _rule(refused, rules, "an unknown option is a ConfigError")

    def closure() -> float:
        optimizer.zero_grad()
        value = 0.5 * (scales * theta * theta).sum()
        value.backward()
        return float(value.detach())

    start = closure()
    for _ in range(100):
        optimizer.step(closure)
    end = float(0.5 * (scales * theta.detach() ** 2).sum())
    _rule(math.isfinite(end) and end < start, rules, "100 steps with the defaults decrease a convex quadratic")
    return rules


def _sphere(x: Tensor) -> Tensor:
    return (x * x).sum(-1)


def _run_searcher(name: str, seed: int, evals: int, told: list[float] | None = None) -> tuple[Searcher, Problem]:
    problem = Problem(_sphere, 6, -5.0, 5.0)
    population = uniform_population(10, 6, -5.0, 5.0, torch_generator(seed, "population"))
    options = {"max_evals": evals} if SEARCHERS.get(name).uses_max_evals else {}
    searcher = make_searcher(name, problem, population, torch_generator(seed, "searcher"), **options)
    while problem.evals < evals:
        x = searcher.ask()
        n = min(len(x), evals - problem.evals)
        f = torch.full((len(x),), math.inf, dtype=x.dtype)
        f[:n] = problem.evaluate(x[:n]).to(x.dtype)
        if told is not None:
            told.extend(f[:n].tolist())
        searcher.tell(f)
    return searcher, problem


def check_searcher(name: str) -> list[str]:
    """A searcher registered in ``SEARCHERS``, driven by ask/tell alone on a 6-dimensional sphere in [−5, 5]⁶:
    candidates are (n, 6) and inside the box, ``best_f`` is the least fitness told and ``best_x`` has it,
    ``step(limit)`` never spends more than ``limit``, and runs depend only on the generator (not on torch's
    global random state)."""
    rules: list[str] = []
    told: list[float] = []
    torch.manual_seed(1)
    searcher, problem = _run_searcher(name, seed=0, evals=1000, told=told)
    x = searcher.ask()
    _rule(isinstance(x, Tensor) and x.ndim == 2 and x.shape[1] == 6 and len(x) >= 1, rules,
          "ask() returns an (n, D) tensor, also after many rounds")
    _rule(bool(((x >= -5.0) & (x <= 5.0)).all()), rules, "candidates stay inside the box")
    _rule(searcher.best_f == min(told), rules, "best_f is the least fitness told")
    _rule(abs(float(_sphere(searcher.best_x[None])[0]) - searcher.best_f) <= 1e-9 * max(1.0, abs(searcher.best_f)),
          rules, "best_x has fitness best_f")
    torch.manual_seed(2)
    again, _ = _run_searcher(name, seed=0, evals=1000)
    _rule(again.best_f == searcher.best_f and torch.equal(again.best_x, searcher.best_x), rules,
          "the same seed gives the same search, whatever torch's global random state")
    problem = Problem(_sphere, 6, -5.0, 5.0)
    population = uniform_population(10, 6, -5.0, 5.0, torch_generator(0, "population"))
    options = {"max_evals": 100} if SEARCHERS.get(name).uses_max_evals else {}
    stepper = make_searcher(name, problem, population, torch_generator(0, "searcher"), **options)
    for limit in (1, 3, 7, 1, 20):
        before = problem.evals
        spent = stepper.step(limit)
        _rule(spent == problem.evals - before <= limit, rules, f"step({limit}) spends at most {limit} and says so")
    return rules


def _fit(name: str, options: dict[str, Any], budget: Budget, seed: int = 0) -> RunResult:
    task = load_task("spiral", points=20)
    model = build_model("spiral-mlp", task.input_shape, task.n_outputs, width=4,
                        generator=torch_generator(seed, "init"))
    return make_trainer(name, **options).fit(model, task, budget, seed)


def check_trainer(name: str, small: Callable[[str], Budget] | None = None, **options: Any) -> list[str]:
    """A trainer registered in ``TRAINERS`` on the 3-arm spiral (60 points) with a 4-unit network: its
    configuration is JSON, it declares budget units among the budget's limits and refuses the others, each
    declared count unit stops it, the history holds every split, and the same seed gives the same run.
    ``small(unit)`` gives the budget used per unit (default: 2 of it; 60 evaluations; 0.5 s); ``options``
    configure the trainer (e.g. a small population)."""
    rules: list[str] = []
    trainer = make_trainer(name, **options)
    json.dumps(trainer.describe(), default=str)
    rules.append("describe() is JSON-serialisable")
    units = tuple(trainer.budget_units)
    _rule(bool(units) and set(units) <= set(LIMITS), rules, f"budget_units is a non-empty subset of {LIMITS}")
    for unit in set(LIMITS) - set(units):
        try:
            trainer.check_budget(Budget(**{unit: 1}))
            refused = False
        except ConfigError as err:
            refused = name in str(err) and unit in str(err)
        _rule(refused, rules, f"a {unit} budget is refused with a ConfigError naming the trainer and the unit")
    default: dict[str, Any] = {"evals": 60, "seconds": 0.5, "sample_evals": 2 * 60 * 20}
    for unit in units:
        limits: dict[str, Any] = {unit: default.get(unit, 2)}
        budget = small(unit) if small is not None else Budget(**limits)
        if unit != "epochs":
            with_total: dict[str, Any] = {**budget.to_dict(), "epochs": 50}
            budget = Budget(**with_total)  # a total for searchers that plan on one
        result = _fit(name, options, budget)
        spent = result.spending.sample_evals if unit == "sample_evals" else getattr(result.spending, unit)
        limit = budget.to_dict()[unit]
        _rule(result.status == "ok", rules, f"a {unit} budget runs to status ok")
        stopped_by_it = spent >= limit and result.spending.epochs < 50
        _rule(unit == "seconds" or stopped_by_it, rules, f"a {unit} budget stops the run once spent")
    first = _fit(name, options, Budget(epochs=2), seed=3)
    row = first.history[-1]
    _rule(all(f"{s}_{k}" in row for s in ("train", "val", "test") for k in ("loss", "metric")), rules,
          "history rows hold train/val/test loss and metric")
    second = _fit(name, options, Budget(epochs=2), seed=3)
    _rule([r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history], rules,
          "the same seed gives the same run")
    return rules
