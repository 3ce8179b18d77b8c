"""CMA-ES / sep-CMA-ES against pycma driven directly, and SNES against its published update and
against EvoTorch's SNES (a second implementation) on sphere and Rastrigin."""
from __future__ import annotations

import math

import cma
import numpy as np
import pytest
import torch

from trainlab.core.config import ConfigError
from trainlab.core.seeding import torch_generator
from trainlab.metaheuristics import minimize
from trainlab.metaheuristics.base import Problem, make_searcher
from trainlab.metaheuristics.benchmarks import rastrigin, sphere
from trainlab.metaheuristics.snes import snes_utilities


def ellipsoid(x: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1]
    return (10 ** (6 * torch.arange(d, dtype=x.dtype) / (d - 1)) * x * x).sum(-1)


ROTATION = torch.linalg.qr(torch.randn(10, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]


def rotated_ellipsoid(x: torch.Tensor) -> torch.Tensor:
    return ellipsoid(x @ ROTATION.T)


@pytest.mark.parametrize("name", ["cma-es", "sep-cma-es"])
def test_cma_searchers_follow_pycma_step_for_step(name: str) -> None:
    """The same x0, σ0 and normal draws given to pycma directly give the same means and best values."""
    x0 = torch.full((1, 6), 2.0, dtype=torch.float64)
    problem = Problem(sphere, 6, -10.0, 10.0)
    searcher = make_searcher(name, problem, x0, torch_generator(4, "s"), sigma0=0.5)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=torch_generator(4, "s")))
    rng = np.random.default_rng(seed)
    es = cma.CMAEvolutionStrategy(
        [2.0] * 6, 0.5,
        {"seed": math.nan, "randn": lambda lam, n: rng.standard_normal((lam, n)), "bounds": [-10.0, 10.0],
         "CMA_diagonal": name == "sep-cma-es", "verbose": -9, "verb_log": 0, "verb_disp": 0},
    )
    state = np.random.get_state()
    for _ in range(30):
        searcher.step(10**6)
        xs = es.ask()
        es.tell(xs, [float(v) for v in sphere(torch.tensor(np.array(xs)))])
        np.testing.assert_allclose(searcher.es.mean, es.mean, rtol=1e-12)
    assert searcher.best_f == pytest.approx(es.result.fbest, rel=1e-12)
    assert all(np.array_equal(a, b) for a, b in zip(state, np.random.get_state()) if isinstance(a, np.ndarray))


@pytest.mark.slow
def test_full_cma_learns_a_rotated_ellipsoid_that_sep_cma_cannot() -> None:
    """Ros & Hansen (2008): sep-CMA-ES is not rotation invariant; on a separable ellipsoid (condition 1e6)
    it is as good as CMA-ES, on the rotated one it is far behind. Median over 3 seeds, 10-D, 6,000 evals."""

    def median(fn: object, name: str) -> float:
        runs = [
            minimize(fn, name, dim=10, bounds=(-1e3, 1e3), max_evals=6000, seed=s,  # type: ignore[arg-type]
                     population=torch.ones(1, 10, dtype=torch.float64), sigma0=1.0).fun
            for s in range(3)
        ]
        return float(np.median(runs))

    assert median(ellipsoid, "sep-cma-es") < 1e-8 and median(ellipsoid, "cma-es") < 1e-8
    assert median(rotated_ellipsoid, "cma-es") < 1e-8
    assert median(rotated_ellipsoid, "sep-cma-es") > 1e3 * median(rotated_ellipsoid, "cma-es")


def test_snes_generation_is_schaul_2011_algorithm_2() -> None:
    d, lam = 5, 8
    problem = Problem(sphere, d, -100.0, 100.0)
    mu0 = torch.linspace(-1, 1, d, dtype=torch.float64)[None]
    searcher = make_searcher("snes", problem, mu0, torch.Generator().manual_seed(1), popsize=lam, sigma0=0.3)
    z = searcher.ask()
    s = searcher._s.numpy()
    f = sphere(z).numpy()
    searcher.tell(torch.tensor(f))
    raw = np.maximum(0, np.log(lam / 2 + 1) - np.log(np.arange(1, lam + 1)))
    u = raw / raw.sum() - 1 / lam
    s_sorted = s[np.argsort(f)]
    eta_sigma = (3 + np.log(d)) / (5 * np.sqrt(d))
    np.testing.assert_allclose(searcher.mu.numpy(), mu0[0].numpy() + 0.3 * (u @ s_sorted), rtol=1e-12)
    np.testing.assert_allclose(searcher.sigma.numpy(), 0.3 * np.exp(eta_sigma / 2 * (u @ (s_sorted**2 - 1))), rtol=1e-12)
    assert float(snes_utilities(lam).sum()) == pytest.approx(0.0, abs=1e-15)
    assert searcher.popsize == 4 + int(3 * math.log(d)) or lam == 8


def _evotorch_snes(fn: object, d: int, generations: int, seed: int) -> float:
    from evotorch import Problem as EvoProblem
    from evotorch.algorithms import SNES as EvoSNES

    torch.manual_seed(seed)
    problem = EvoProblem("min", fn, solution_length=d, vectorized=True, initial_bounds=(-1, 1), dtype=torch.float64)
    searcher = EvoSNES(problem, stdev_init=1.0, center_init=torch.full((d,), 3.0, dtype=torch.float64))
    best = math.inf
    for _ in range(generations):
        searcher.step()
        best = min(best, float(searcher.population.evals.min()))
    return best


def test_snes_converges_linearly_on_the_sphere() -> None:
    """Schaul et al. (2011), fig. 2: log f falls linearly in the generations on the sphere. 10-D, 5 seeds:
    the median best value falls by at least 4 decades between generations 100 and 200."""
    d = 10
    lam = 4 + int(3 * math.log(d))
    at = {
        g: np.median([
            minimize(sphere, "snes", dim=d, bounds=(-1e9, 1e9), max_evals=lam * g, seed=s,
                     population=torch.full((1, d), 3.0, dtype=torch.float64), sigma0=1.0).fun
            for s in range(5)
        ])
        for g in (100, 200)
    }
    assert at[200] < 1e-6 and at[200] < 1e-4 * at[100]


@pytest.mark.slow
@pytest.mark.parametrize(("fn", "generations", "decades"), [(sphere, 200, 1.0), (rastrigin, 300, 0.5)])
def test_snes_matches_evotorch_snes(fn: object, generations: int, decades: float) -> None:
    """Same start (μ = 3, σ = 1), same default λ and learning rates: medians over 5 seeds agree within
    ``decades`` orders of magnitude (sphere: both reach ~1e-8 after 200 generations, linear convergence)."""
    pytest.importorskip("evotorch")
    import logging

    logging.getLogger("evotorch").setLevel(logging.WARNING)
    d = 10
    lam = 4 + int(3 * math.log(d))
    ours = [
        minimize(fn, "snes", dim=d, bounds=(-1e9, 1e9), max_evals=lam * generations, seed=s,  # type: ignore[arg-type]
                 population=torch.full((1, d), 3.0, dtype=torch.float64), sigma0=1.0).fun
        for s in range(5)
    ]
    theirs = [_evotorch_snes(fn, d, generations, s) for s in range(5)]
    assert abs(math.log10(np.median(ours)) - math.log10(np.median(theirs))) < decades, (ours, theirs)
    if fn is sphere:
        assert np.median(ours) < 1e-6


def test_searcher_options_are_validated() -> None:
    problem = Problem(sphere, 3, -1.0, 1.0)
    with pytest.raises(ConfigError, match=r"cma-es\.popsize: got 1"):
        make_searcher("cma-es", problem, torch.zeros(1, 3), torch.Generator(), popsize=1)
    with pytest.raises(ConfigError, match=r"snes\.center_lr: got 0"):
        make_searcher("snes", problem, torch.zeros(1, 3), torch.Generator(), center_lr=0)
