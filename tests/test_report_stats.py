"""Statistics of trainlab.report checked against Demšar (2006), "Statistical Comparisons of Classifiers
over Multiple Data Sets", JMLR 7:1–30: Table 2 (Wilcoxon), Table 5 (Nemenyi q_α), Table 6 (Friedman,
Iman–Davenport, CD) and the Holm example of §3.2.2; plus brute-force and SciPy oracles."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trainlab.core.config import ConfigError
from trainlab.report import (
    critical_difference,
    friedman,
    holm,
    mean_ranks,
    nemenyi,
    nemenyi_q,
    paired_table,
    pairwise_wilcoxon,
)

DATASETS = ["adult", "breast cancer", "breast cancer wisconsin", "cmc", "ionosphere", "iris", "liver disorders",
            "lung cancer", "lymphography", "mushroom", "primary tumor", "rheum", "voting", "wine"]
# Demšar Table 6: AUC of C4.5, C4.5+m, C4.5+cf, C4.5+m+cf. The paper prints 0.975 for both C4.5+cf and
# C4.5+m+cf on "voting" but ranks them 2 and 3 (the unrounded values differ), so C4.5+m+cf is 0.9749 here.
TABLE6 = pd.DataFrame(
    [[0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
     [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
     [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
     [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
     [0.972, 0.981, 0.975, 0.9749], [0.957, 0.978, 0.946, 0.970]],
    index=DATASETS, columns=["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"],
)
TABLE6_RANKS = {"C4.5": 3.143, "C4.5+m": 2.000, "C4.5+cf": 2.893, "C4.5+m+cf": 1.964}


def test_wilcoxon_reproduces_demsar_table2():
    # Table 2: C4.5 vs C4.5+m; R+ = 93, R- = 12, T = 12 <= 21 (exact critical value, N = 14, alpha 0.05).
    table = TABLE6[["C4.5+m", "C4.5"]]
    row = pairwise_wilcoxon(table).iloc[0]
    assert (row["a"], row["b"], row["n"]) == ("C4.5+m", "C4.5", 14)
    assert (row["wins"], row["losses"], row["ties"]) == (10, 2, 2)
    assert row["r_plus"] == pytest.approx(93.0)
    assert row["r_minus"] == pytest.approx(12.0)
    assert row["statistic"] == pytest.approx(12.0)
    # independent p-value: normal approximation of Demšar's z for T = 12 (ties make SciPy use it too)
    z = (12 - 14 * 15 / 4) / math.sqrt(14 * 15 * 29 / 24)
    assert z == pytest.approx(-2.55, abs=0.01)
    assert row["p"] < 0.05 and row["p"] == pytest.approx(2 * stats.norm.cdf(z), rel=0.05)
    assert row["better"] == "C4.5+m"


def test_wilcoxon_odd_zero_count_drops_one_zero():
    d = np.array([0.0, 1.0, -2.0, 3.0, 4.0, 5.0])
    table = pd.DataFrame({"a": d, "b": np.zeros_like(d)})
    row = pairwise_wilcoxon(table).iloc[0]
    # one zero dropped: ranks of |1, -2, 3, 4, 5| are 1..5, R- = 2, R+ = 13
    assert (row["r_plus"], row["r_minus"], row["statistic"]) == (13.0, 2.0, 2.0)
    assert row["p"] == pytest.approx(stats.wilcoxon(d[1:]).pvalue)


def test_holm_matches_demsar_example_and_brute_force():
    # Demšar §3.2.2: control C4.5 vs the others, z = (R_0 - R_i)/SE with SE = 0.488.
    se = math.sqrt(4 * 5 / (6 * 14))
    assert se == pytest.approx(0.488, abs=5e-4)
    z = np.array([(3.143 - 1.964) / se, (3.143 - 2.000) / se, (3.143 - 2.893) / se])
    np.testing.assert_allclose(z, [2.416, 2.342, 0.512], atol=2e-3)
    p = 2 * stats.norm.sf(z)
    np.testing.assert_allclose(p, [0.016, 0.019, 0.607], atol=2e-3)  # the paper rounds z first
    for pvalues in (p, [0.016, 0.019, 0.607]):
        adjusted = holm(pvalues)
        assert list(adjusted <= 0.05) == [True, True, False]  # "rejects the first and then the second"
    np.testing.assert_allclose(holm([0.016, 0.019, 0.607]), [0.048, 0.048, 0.607])
    # brute force: Holm's sequential rule, compare p_(i) with alpha/(m - i + 1), stop at the first failure
    rng = np.random.default_rng(3)
    for _ in range(200):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 8))
        for alpha in (0.01, 0.05, 0.1):
            order = np.argsort(p, kind="stable")
            reject = np.zeros(p.size, bool)
            for i, j in enumerate(order):
                if p[j] > alpha / (p.size - i):
                    break
                reject[j] = True
            np.testing.assert_array_equal(holm(p) <= alpha, reject)


def test_holm_edge_cases():
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    out = holm([0.01, np.nan, 0.04])
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.04)
    with pytest.raises(ConfigError, match="pvalues"):
        holm([1.5])


def test_friedman_reproduces_demsar_table6():
    ranks = mean_ranks(TABLE6)
    for name, published in TABLE6_RANKS.items():
        assert ranks[name] == pytest.approx(published, abs=5e-4)
    plain = friedman(TABLE6, tie_correction=False)
    assert plain.chi2 == pytest.approx(9.28, abs=0.01)
    assert plain.ff == pytest.approx(3.69, abs=0.01)
    # "The critical value of F(3, 39) for alpha = 0.05 is 2.85, so we reject the null-hypothesis."
    assert stats.f.ppf(0.95, 3, 39) == pytest.approx(2.85, abs=0.01) and plain.p_ff < 0.05
    # tie correction: chi2 / (1 - sum(t^3 - t) / (N k (k^2 - 1))); ties: iris, lung cancer, primary tumor
    # (pairs) and mushroom (all four)
    c = 1 - (3 * (2**3 - 2) + (4**3 - 4)) / (14 * 4 * (4**2 - 1))
    corrected = friedman(TABLE6)
    assert corrected.chi2 == pytest.approx(plain.chi2 / c, rel=1e-9)
    assert corrected.p_chi2 == pytest.approx(stats.chi2.sf(plain.chi2 / c, 3), rel=1e-9)


def test_nemenyi_critical_values_match_demsar_table5a():
    q05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    q10 = [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]
    for k, a, b in zip(range(2, 11), q05, q10):
        assert nemenyi_q(k, 0.05) == pytest.approx(a, abs=1.5e-3)
        assert nemenyi_q(k, 0.10) == pytest.approx(b, abs=1.5e-3)
    assert critical_difference(4, 14, 0.05) == pytest.approx(1.25, abs=5e-3)
    assert critical_difference(4, 14, 0.10) == pytest.approx(1.12, abs=5e-3)


def test_nemenyi_pvalues_agree_with_demsar_conclusions():
    p = nemenyi(TABLE6)
    assert list(p.columns) == list(TABLE6.columns)
    np.testing.assert_allclose(p.to_numpy(), p.to_numpy().T)
    # alpha 0.05: no pair differs; alpha 0.10: C4.5 worse than C4.5+m and C4.5+m+cf, nothing else
    assert (p.to_numpy()[~np.eye(4, dtype=bool)] > 0.05).all()
    significant = {(a, b) for a, b in itertools.combinations(TABLE6.columns, 2) if p.loc[a, b] < 0.10}
    assert significant == {("C4.5", "C4.5+m"), ("C4.5", "C4.5+m+cf")}
    # the p-value is the studentized-range tail of |R_i - R_j| / sqrt(k(k+1)/(6N)) * sqrt(2)
    ranks = mean_ranks(TABLE6)
    q = abs(ranks["C4.5"] - ranks["C4.5+m"]) / math.sqrt(4 * 5 / (6 * 14)) * math.sqrt(2)
    assert p.loc["C4.5", "C4.5+m"] == pytest.approx(stats.studentized_range.sf(q, 4, np.inf), rel=1e-3)


def test_friedman_rejects_bad_tables():
    with pytest.raises(ConfigError, match="table"):
        friedman(TABLE6.iloc[:, :2])
    with pytest.raises(ConfigError, match="table"):
        friedman(TABLE6.mask(TABLE6 > 0.99))


def _runs(values: dict[str, list[float]], statuses: dict[tuple[str, int], str] | None = None) -> pd.DataFrame:
    rows = []
    for label, vals in values.items():
        for seed, v in enumerate(vals):
            status = (statuses or {}).get((label, seed), "ok")
            rows.append({"task": "t", "model": "m", "label": label, "seed": seed, "status": status,
                         "final_test_metric": v if status == "ok" else math.nan})
    return pd.DataFrame(rows)


def test_paired_table_failed_runs_worst_or_excluded():
    runs = _runs({"a": [0.9, 0.8, 0.7], "b": [0.5, 0.6, 0.4]}, {("a", 1): "diverged", ("b", 2): "failed"})
    worst = paired_table(runs, "final_test_metric")
    v = worst.values
    assert worst.n_failed == 2 and v.shape == (3, 2)
    assert v.loc["t / m / 1", "a"] < v.to_numpy()[np.isfinite(v.to_numpy())].min() + 1e-12
    assert v.loc["t / m / 1", "a"] == v.loc["t / m / 2", "b"]  # two failures tie
    # a failure's difference ranks above every finite difference
    finite_gap = abs(0.9 - 0.5)
    assert abs(v.loc["t / m / 1", "b"] - v.loc["t / m / 1", "a"]) > finite_gap
    excluded = paired_table(runs, "final_test_metric", failed="exclude")
    assert list(excluded.values.index) == ["t / m / 0"] and len(excluded.excluded_blocks) == 2
    assert "excluded" in excluded.note()


def test_paired_table_lower_is_better_and_incomplete_blocks():
    runs = _runs({"a": [1.0, 2.0, 3.0], "b": [2.0, 1.0]})
    runs = pd.concat([runs, pd.DataFrame([{"task": "t", "model": "m", "label": "b", "seed": 2,
                                           "status": "pending", "final_test_metric": math.nan}])])
    pt = paired_table(runs, "final_test_metric", higher_is_better=False)
    assert pt.dropped_blocks == ("t / m / 2",)
    assert pt.values.loc["t / m / 0"].tolist() == [-1.0, -2.0]
    assert "incomplete" in pt.note()
    with pytest.raises(ConfigError, match="failed"):
        paired_table(runs, "final_test_metric", failed="drop")
    with pytest.raises(ConfigError, match="runs"):
        paired_table(runs, "nope")


def test_wilcoxon_all_ties_and_empty_pairs():
    tied = pairwise_wilcoxon(pd.DataFrame({"a": [0.5, 0.7, 0.7], "b": [0.5, 0.7, 0.7]})).iloc[0]
    assert (tied["ties"], tied["p"], tied["p_holm"], tied["significant"]) == (3, 1.0, 1.0, False)
    empty = pairwise_wilcoxon(pd.DataFrame({"a": [math.nan], "b": [1.0]})).iloc[0]
    assert empty["n"] == 0 and math.isnan(empty["p"])


def test_paired_table_of_unfinished_runs_is_empty():
    # regression: a task whose runs are all pending/running raised "Cannot set a DataFrame with multiple columns"
    runs = _runs({"a": [math.nan] * 2, "b": [math.nan] * 2}, {(m, s): "pending" for m in "ab" for s in range(2)})
    pt = paired_table(runs, "final_test_metric")
    assert pt.values.shape == (0, 0) and pt.n_failed == 0 and pt.note() == ""
    finished = _runs({"a": [0.9, 0.8], "b": [0.5, 0.6]}).assign(task="u")
    pt = paired_table(pd.concat([runs, finished]), "final_test_metric", blocks=("task", "seed"))
    assert pt.values.to_dict() == {"a": {"u / 0": 0.9, "u / 1": 0.8}, "b": {"u / 0": 0.5, "u / 1": 0.6}}
