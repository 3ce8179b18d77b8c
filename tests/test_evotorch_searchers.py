"""EvoTorch's distribution-based searchers (evotorch-snes, evotorch-pgpe, evotorch-xnes) driven by trainlab:
progress on the sphere, agreement with EvoTorch's own SNES and PGPE run through its Problem API (a second
driver of the same distributions), reproducibility, the population trainer's exact budget and the error
when the extra is missing."""
from __future__ import annotations

import logging
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.core.seeding import torch_generator
from trainlab.metaheuristics import Problem, make_searcher, minimize
from trainlab.metaheuristics.benchmarks import sphere
from trainlab.metaheuristics.evotorch_nes import default_popsize

NAMES = ("evotorch-snes", "evotorch-pgpe", "evotorch-xnes")
D = 10
START = torch.full((1, D), 3.0, dtype=torch.float64)  # f = 90 on the sphere


@pytest.fixture(autouse=True)
def _evotorch() -> None:
    pytest.importorskip("evotorch", reason="EvoTorch is an optional extra: pip install 'trainlab[evotorch]'")
    logging.getLogger("evotorch").setLevel(logging.WARNING)


def _ours(name: str, evals: int, seed: int, **options: object) -> float:
    return minimize(sphere, name, dim=D, bounds=(-1e9, 1e9), max_evals=evals, seed=seed, population=START,
                    sigma0=1.0, **options).fun  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES)
def test_each_searcher_makes_progress_on_the_sphere(name: str) -> None:
    """From μ = 3 (f = 90), σ = 1, 2,000 evaluations: below 1 on every one of 3 seeds."""
    for seed in range(3):
        assert _ours(name, 2000, seed) < 1.0, (name, seed)


def _evotorch_best(algorithm: str, generations: int, seed: int) -> float:
    from evotorch import Problem as EvoProblem
    from evotorch.algorithms import PGPE, SNES

    torch.manual_seed(seed)
    problem = EvoProblem("min", sphere, solution_length=D, vectorized=True, initial_bounds=(-1, 1), dtype=torch.float64)
    center = START[0].clone()
    if algorithm == "snes":
        searcher = SNES(problem, stdev_init=1.0, center_init=center)
    else:  # trainlab's defaults for what EvoTorch's PGPE requires; EvoTorch's own for the rest
        searcher = PGPE(problem, popsize=10, center_learning_rate=0.15, stdev_learning_rate=0.1, stdev_init=1.0,
                        center_init=center)
    best = math.inf
    for _ in range(generations):
        searcher.step()
        best = min(best, float(searcher.population.evals.min()))
    return best


@pytest.mark.parametrize(("algorithm", "generations", "decades"), [("snes", 120, 0.5), ("pgpe", 120, 0.5)])
def test_agrees_with_evotorchs_own_algorithm(algorithm: str, generations: int, decades: float) -> None:
    """Same start, λ = 10 and learning rates; different random streams, so the claim is statistical: the
    medians of the best value over 5 seeds agree within ``decades`` orders of magnitude (a wrong ranking,
    learning rate or optimizer moves them by several)."""
    lam = 10
    ours = [_ours(f"evotorch-{algorithm}", lam * generations, s) for s in range(5)]
    theirs = [_evotorch_best(algorithm, generations, s) for s in range(5)]
    assert abs(math.log10(np.median(ours)) - math.log10(np.median(theirs))) < decades, (ours, theirs)
    assert np.median(ours) < 1e-2 * 90


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_search_and_samples_stay_in_the_box(name: str) -> None:
    a = minimize(sphere, name, dim=4, bounds=(-1, 1), max_evals=200, seed=3, population_size=5, sigma0=5.0)
    torch.manual_seed(123)  # torch's global state plays no part
    b = minimize(sphere, name, dim=4, bounds=(-1, 1), max_evals=200, seed=3, population_size=5, sigma0=5.0)
    c = minimize(sphere, name, dim=4, bounds=(-1, 1), max_evals=200, seed=4, population_size=5, sigma0=5.0)
    assert a.history == b.history and torch.equal(a.x, b.x)
    assert a.history != c.history
    problem = Problem(sphere, 4, -1.0, 1.0)
    searcher = make_searcher(name, problem, torch.zeros(1, 4), torch_generator(0, "s"), sigma0=5.0)
    x = searcher.ask()
    assert bool(((x >= -1) & (x <= 1)).all()) and bool((x.abs() == 1).any())  # σ = 5: some samples were clipped


def test_pgpe_population_trainer_honours_an_evaluation_budget_exactly() -> None:
    from trainlab.data import load_task
    from trainlab.models import build_model
    from trainlab.trainers import make_trainer

    try:
        task = load_task("bcw")
    except (FileNotFoundError, ConfigError) as e:
        pytest.skip(f"bcw data set absent: {e}")
    net = build_model("mlp1", task.input_shape, task.n_outputs, generator=torch_generator(0, "init"))
    result = make_trainer("evotorch-pgpe", evals_per_epoch=1000).fit(net, task, Budget(evals=77), 0)
    assert result.status == "ok"
    assert result.spending.evals == 77  # 10 initial + 67 in λ-sized generations, the last one cut
    assert result.spending.forward_samples == 77 * len(task.train)
    lam = default_popsize(sum(p.numel() for p in net.parameters()))
    lam += lam % 2
    search = result.records["search"][0]
    assert search["evals"] == 77 and search["generations"] == math.ceil(67 / lam)
    assert math.isfinite(result.final["train_loss"])


def test_options_are_validated() -> None:
    problem = Problem(sphere, 3, -1.0, 1.0)
    with pytest.raises(ConfigError, match=r"evotorch-pgpe\.popsize: got 7"):
        make_searcher("evotorch-pgpe", problem, torch.zeros(1, 3), torch.Generator(), popsize=7)
    with pytest.raises(ConfigError, match=r"evotorch-snes\.ranking: got 'best'"):
        make_searcher("evotorch-snes", problem, torch.zeros(1, 3), torch.Generator(), ranking="best")
    with pytest.raises(ConfigError, match=r"evotorch-xnes\.optimizer"):
        make_searcher("evotorch-xnes", problem, torch.zeros(1, 3), torch.Generator(), optimizer="adam")


def test_missing_extra_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in [m for m in sys.modules if m == "evotorch" or m.startswith("evotorch.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "evotorch", None)
    problem = Problem(sphere, 3, -1.0, 1.0)
    with pytest.raises(ConfigError) as e:
        make_searcher("evotorch-snes", problem, torch.zeros(1, 3), torch.Generator())
    assert "\n" not in str(e.value) and "pip install 'trainlab[evotorch]'" in str(e.value)


def test_importing_trainlab_does_not_import_evotorch() -> None:
    code = ("import sys, trainlab, trainlab.metaheuristics, trainlab.trainers, trainlab.cli; "
            "assert 'evotorch-pgpe' in trainlab.trainers.TRAINERS and 'evotorch-pgpe-gd' in trainlab.trainers.TRAINERS; "
            "assert 'evotorch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_non_finite_fitness_is_ranked_last_and_never_the_best() -> None:
    problem = Problem(sphere, 3, -1.0, 1.0)
    searcher = make_searcher("evotorch-snes", problem, torch.zeros(1, 3), torch_generator(0, "s"))
    x = searcher.ask()
    f = sphere(x)
    f[0], f[1] = math.nan, math.inf
    searcher.tell(f)
    assert searcher.best_f == float(f[2:].min()) and torch.isfinite(searcher.distribution.parameters["mu"]).all()
