"""The instability-threshold study: t confidence intervals against scipy and the closed form, the study's
(A, T) draws, its summary and figure and one tiny study end to end."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trainlab.core.config import ConfigError
from trainlab.studies.dynamics import ThresholdStudy, t_interval, threshold_figure, threshold_study, threshold_summary


def test_t_interval_equals_the_closed_form_and_scipy() -> None:
    data = [1.0, 2.0, 3.0, 4.0, 5.0]
    mean, low, high = t_interval(data)
    # x̄ = 3, s = √2.5, t_{0.975, 4} = 2.776445105 (tables), half-width = t · s / √5
    assert mean == 3.0
    assert high - mean == pytest.approx(2.776445105 * math.sqrt(2.5) / math.sqrt(5), rel=1e-9)
    rng = np.random.default_rng(4)
    for n, level in ((40, 0.95), (7, 0.9), (2, 0.99)):
        sample = rng.normal(3.0, 0.7, size=n)
        expected = stats.t.interval(level, n - 1, loc=sample.mean(), scale=stats.sem(sample))
        mean, low, high = t_interval(sample, level)
        assert (low, high) == pytest.approx(expected, rel=1e-12)


def test_t_interval_ignores_non_finite_values_and_needs_two() -> None:
    mean, low, high = t_interval([2.0, math.nan, 4.0])
    assert mean == 3.0 and (low, high) == pytest.approx(stats.t.interval(0.95, 1, loc=3.0, scale=1.0))
    assert math.isnan(t_interval([5.0])[1]) and math.isnan(t_interval([])[0])
    with pytest.raises(ConfigError, match="confidence"):
        t_interval([1.0, 2.0], 1.0)


def test_95_percent_intervals_cover_the_mean_about_95_percent_of_the_time() -> None:
    """Coverage over 4000 samples of n = 40 from a skewed (gamma) law: within 3 binomial standard errors of 0.95
    (the t-interval's coverage for gamma(k=4) at n = 40 is within 0.5 % of nominal)."""
    rng = np.random.default_rng(0)
    trials, hits = 4000, 0
    for _ in range(trials):
        _, low, high = t_interval(rng.gamma(4.0, 1.0, size=40))
        hits += low <= 4.0 <= high
    assert abs(hits / trials - 0.95) < 3 * math.sqrt(0.95 * 0.05 / trials) + 0.005


def test_summary_counts_unstable_simulations_and_uses_the_interval() -> None:
    table = pd.DataFrame({"lr": [1.0] * 4 + [0.5] * 3, "threshold": [1.0, 2.0, math.nan, 3.0, 4.0, 4.5, 5.0]})
    table["inverse_lr"] = 1 / table["lr"]
    summary = threshold_summary(table).set_index("lr")
    assert summary.loc[1.0, "simulations"] == 4 and summary.loc[1.0, "unstable"] == 3
    assert (summary.loc[1.0, "ci_low"], summary.loc[1.0, "ci_high"]) == pytest.approx(
        stats.t.interval(0.95, 2, loc=2.0, scale=stats.sem([1.0, 2.0, 3.0])))
    assert summary.loc[0.5, "mean_over_limit"] == pytest.approx(4.5 / 4.0)
    fig = threshold_figure(table)
    assert fig.axes[0].get_xlabel() == "1/lr"


def test_draws_are_seeded_shared_across_learning_rates_and_cover_the_pairs() -> None:
    study = ThresholdStudy(lrs=(1.0, 2.0), simulations=40, amplitudes=(30.0, 70.0), periods=(100.0, 500.0))
    draws = study.draws()
    assert draws == ThresholdStudy(lrs=(0.5,), simulations=40, amplitudes=(30.0, 70.0), periods=(100.0, 500.0)).draws()
    assert len({seed for seed, _, _ in draws}) == 40
    assert {(a, t) for _, a, t in draws} == {(30.0, 100.0), (30.0, 500.0), (70.0, 100.0), (70.0, 500.0)}
    with pytest.raises(ConfigError, match="simulations"):
        ThresholdStudy(lrs=(1.0,), simulations=0)
    with pytest.raises(ConfigError, match="amplitude"):
        ThresholdStudy(lrs=(1.0,), amplitudes=(0.5,))


def test_the_study_runs_each_simulation_once_per_learning_rate() -> None:
    study = ThresholdStudy(lrs=(1.0, 2.0), simulations=2, amplitudes=(30.0,), periods=(50.0,), steps=120, width=8,
                           curvature_every=10, every=10)
    table = threshold_study(study)
    assert len(table) == 4 and set(table["status"]) == {"ok"}
    seeds = table.groupby("lr")["seed"].apply(tuple)
    assert seeds.loc[1.0] == seeds.loc[2.0] and len(set(seeds.loc[1.0])) == 2
    unstable = table[table["threshold"].notna()]
    assert (unstable["step"] % 1 == 0).all() and (unstable["threshold"] > 0).all()
