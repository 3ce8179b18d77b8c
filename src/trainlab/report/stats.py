"""Statistical comparison of trainers, after Demšar (2006), "Statistical Comparisons of Classifiers over
Multiple Data Sets", JMLR 7:1–30.

Every test takes a *paired table*: one row per block (a data set, or a seed of one task) and one column
per method, higher values better unless told otherwise (:func:`paired_table` builds it from a runs frame).

* :func:`pairwise_wilcoxon`: Wilcoxon signed-rank test (``scipy.stats.wilcoxon``; zero differences split
  between R+ and R−, Demšar §3.1.3) for every pair of methods, with Holm's step-down correction.
* :func:`holm`: Holm (1979) adjusted p-values, ``p̃_(i) = max_{j≤i} min(1, (m − j + 1) p_(j))``.
* :func:`friedman`: average ranks, Friedman's χ²_F (``scipy.stats.friedmanchisquare``, tie-corrected) and
  the Iman–Davenport F_F = (N − 1) χ²_F / (N (k − 1) − χ²_F).
* :func:`nemenyi`: Nemenyi all-pairs p-values (``scikit_posthocs.posthoc_nemenyi_friedman``) and the
  critical difference CD = q_α √(k (k + 1) / (6 N)), q_α = studentized range quantile / √2.

Failed and diverged runs: a cell of the paired table averages the ok runs it holds (one run when the
block includes the seed); a cell without any ok run is a failed cell. With ``failed="worst"`` (the
default) a failed cell gets a value below every finished cell's, by more than the observed range, so it
loses every comparison, its differences rank above every finite one, and two failed cells tie;
``failed="exclude"`` drops every block that contains one. Missing cells (never run, pending): methods
present in at most half as many blocks as the most widely run method are left out, then every block that
still misses a method is dropped.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from trainlab.core.config import ConfigError, check_choice, check_number

FAILED_POLICIES = ("worst", "exclude")
FINISHED = ("ok", "diverged", "failed")


@dataclass(frozen=True)
class PairedTable:
    """Blocks × methods values (higher is better), and what was done to build it."""

    values: pd.DataFrame
    n_failed: int
    dropped_methods: tuple[str, ...]
    dropped_blocks: tuple[str, ...]
    excluded_blocks: tuple[str, ...]
    policy: str

    def note(self) -> str:
        """One sentence for the report saying how failed runs and missing cells were handled."""
        parts = []
        if self.n_failed:
            if self.policy == "worst":
                parts.append(f"{self.n_failed} failed/diverged run(s); cells without any ok run counted as worse than"
                             " every finished cell")
            else:
                parts.append(f"{len(self.excluded_blocks)} block(s) with failed/diverged runs excluded")
        if self.dropped_methods:
            parts.append("method(s) run on too few blocks left out: " + ", ".join(self.dropped_methods))
        if self.dropped_blocks:
            parts.append(f"{len(self.dropped_blocks)} incomplete block(s) dropped: " + ", ".join(self.dropped_blocks))
        return "; ".join(parts) + ("." if parts else "")


def paired_table(
    runs: pd.DataFrame,
    value: str,
    *,
    methods: str | Sequence[str] = "label",
    blocks: Sequence[str] = ("task", "model", "seed"),
    higher_is_better: bool = True,
    failed: str = "worst",
) -> PairedTable:
    """Pivot a runs frame into blocks × methods, averaging ``value`` over the rows of each cell (e.g. the
    seeds, when ``blocks`` omits ``seed``). Values are negated when ``higher_is_better`` is False, so the
    result is always "higher is better". Rows with a status other than ok/diverged/failed are ignored.
    Runs that failed/diverged or whose value is NaN/inf are failures; a cell none of whose runs
    succeeded is a failed cell (handled by the policy ``failed``); other cells average their ok runs."""
    check_choice("failed", failed, FAILED_POLICIES)
    methods = [methods] if isinstance(methods, str) else list(methods)
    blocks = list(blocks)
    needed = [*methods, *blocks, value, "status"]
    missing = [c for c in needed if c not in runs.columns]
    if missing:
        raise ConfigError("runs", missing, "a runs frame with columns " + ", ".join(needed))
    if not blocks:
        raise ConfigError("blocks", blocks, "at least one column that identifies a block")
    data = runs[runs["status"].isin(FINISHED)].copy()
    sign = 1.0 if higher_is_better else -1.0
    data["_v"] = sign * pd.to_numeric(data[value], errors="coerce").astype(float)
    data["_bad"] = (data["status"] != "ok") | ~np.isfinite(data["_v"])
    data["_m"] = _joined(data[methods])
    data["_b"] = _joined(data[blocks])
    n_failed = int(data["_bad"].sum())
    good = data[~data["_bad"]].pivot_table(index="_b", columns="_m", values="_v", aggfunc="mean")
    bad = data.pivot_table(index="_b", columns="_m", values="_bad", aggfunc="min")
    present = data.pivot_table(index="_b", columns="_m", values="_v", aggfunc="size", fill_value=0)
    good = good.reindex(index=present.index, columns=present.columns)
    bad = bad.reindex(index=present.index, columns=present.columns).fillna(False).astype(bool)
    coverage = (present > 0).sum(axis=0)
    kept = coverage.index[coverage > coverage.max() / 2]
    dropped_methods = tuple(map(str, coverage.index.difference(kept)))
    complete = (present[kept] > 0).all(axis=1)
    dropped = tuple(map(str, present.index[~complete]))
    good, bad = good.loc[complete, kept], bad.loc[complete, kept]
    excluded: tuple[str, ...] = ()
    if failed == "exclude":
        has_bad = bad.any(axis=1)
        excluded = tuple(map(str, good.index[has_bad]))
        good = good[~has_bad]
    elif bad.to_numpy().any():
        finite = good.to_numpy()[~bad.to_numpy()]
        finite = finite[np.isfinite(finite)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        good = good.mask(bad, low - (high - low) - 1.0)
    good.index.name, good.columns.name = "block", "method"
    return PairedTable(good, n_failed, dropped_methods, dropped, excluded, failed)


def _joined(columns: pd.DataFrame) -> pd.Series:
    """Each row's values as one ``" / "``-joined string (an empty Series for an empty frame)."""
    rows = columns.astype(str).itertuples(index=False, name=None)
    return pd.Series([" / ".join(row) for row in rows], index=columns.index, dtype=object)


# ----------------------------------------------------------------------------------------------- Holm
def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values, in the input order.

    With p_(1) ≤ … ≤ p_(m): p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)). Rejecting H_(i) when
    p̃_(i) ≤ α is Holm's procedure at family-wise level α (Demšar 2006, §3.2.2). NaN p-values are kept
    as NaN and do not count in m.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ConfigError("pvalues", p.tolist(), "probabilities in [0, 1]")
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


# ------------------------------------------------------------------------------------------- Wilcoxon
def signed_rank_sums(d: np.ndarray) -> tuple[float, float]:
    """Demšar's (2006, §3.1.3) R+ (sum of the ranks of |d_i| over d_i > 0) and R−, the ranks of zero
    differences split evenly between both sums."""
    d = np.asarray(d, dtype=float)
    ranks = stats.rankdata(np.abs(d))
    half = ranks[d == 0].sum() / 2
    return float(ranks[d > 0].sum() + half), float(ranks[d < 0].sum() + half)


def pairwise_wilcoxon(table: pd.DataFrame, *, alpha: float = 0.05, decimals: int = 12) -> pd.DataFrame:
    """Wilcoxon signed-rank test of every pair of columns of ``table`` (blocks × methods, higher better),
    Holm-corrected over all pairs.

    Differences are rounded to ``decimals`` so that floating-point noise does not break ties. Zero
    differences are handled as in Demšar (``zero_method="zsplit"``, one dropped when their number is
    odd); p-values are exact for small
    samples without ties and normal-approximated otherwise (SciPy's defaults). Columns: ``a``, ``b``,
    ``n``, ``wins`` (blocks where a > b), ``losses``, ``ties``, ``median_diff`` (median of a − b),
    ``r_plus`` (rank sum where a > b), ``r_minus``, ``statistic`` = min(R+, R−), ``p``, ``p_holm``,
    ``significant`` (p_holm ≤ alpha), ``better`` (the better method when significant, else "").
    """
    check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    rows = []
    for a, b in itertools.combinations(table.columns, 2):
        pair = table[[a, b]].dropna()
        d = np.round(pair[a].to_numpy(float) - pair[b].to_numpy(float), decimals)
        row = {"a": a, "b": b, "n": d.size, "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
               "ties": int((d == 0).sum()), "median_diff": float(np.median(d)) if d.size else math.nan}
        zeros = np.flatnonzero(d == 0)
        if zeros.size % 2:
            d = np.delete(d, zeros[0])
        if d.size and np.any(d != 0):
            row["r_plus"], row["r_minus"] = signed_rank_sums(d)
            res = stats.wilcoxon(d, zero_method="zsplit")
            row["statistic"], row["p"] = float(res.statistic), float(res.pvalue)
        else:
            row.update(r_plus=math.nan, r_minus=math.nan, statistic=math.nan, p=1.0 if row["n"] else math.nan)
        rows.append(row)
    columns = ["a", "b", "n", "wins", "losses", "ties", "median_diff", "r_plus", "r_minus", "statistic", "p"]
    out = pd.DataFrame(rows, columns=columns)
    out["p_holm"] = holm(out["p"].to_numpy()) if len(out) else []
    out["significant"] = out["p_holm"] <= alpha
    out["better"] = np.where(out["significant"], np.where(out["median_diff"] > 0, out["a"], out["b"]), "")
    return out


# ------------------------------------------------------------------------------------ Friedman/Nemenyi
@dataclass(frozen=True)
class FriedmanResult:
    """Friedman test over N blocks and k methods (Demšar 2006, §3.2.2)."""

    n_blocks: int
    n_methods: int
    mean_ranks: pd.Series
    chi2: float
    p_chi2: float
    ff: float
    p_ff: float
    tie_corrected: bool


def mean_ranks(table: pd.DataFrame) -> pd.Series:
    """Average rank of each column over the rows, rank 1 = best (highest value), ties averaged."""
    ranks = table.rank(axis=1, ascending=False, method="average")
    return ranks.mean(axis=0).rename("mean_rank")


def friedman(table: pd.DataFrame, *, tie_correction: bool = True) -> FriedmanResult:
    """Friedman test on ``table`` (blocks × methods, higher better, no NaN).

    With ``tie_correction`` (default) χ²_F is SciPy's tie-corrected statistic; without it, Demšar's
    formula χ²_F = 12N / (k(k+1)) [Σ_j R_j² − k(k+1)²/4]. The Iman–Davenport F_F = (N−1)χ²_F /
    (N(k−1) − χ²_F) follows F(k−1, (k−1)(N−1)).
    """
    if table.isna().to_numpy().any():
        raise ConfigError("table", "NaN cells", "a complete blocks × methods table (use paired_table)")
    n, k = table.shape
    if k < 3 or n < 2:
        raise ConfigError("table", f"{n} blocks × {k} methods", "at least 2 blocks and 3 methods for Friedman")
    ranks = mean_ranks(table)
    if tie_correction:
        chi2 = float(stats.friedmanchisquare(*table.to_numpy(float).T).statistic)
    else:
        chi2 = 12 * n / (k * (k + 1)) * (float((ranks**2).sum()) - k * (k + 1) ** 2 / 4)
    p_chi2 = float(stats.chi2.sf(chi2, k - 1))
    denominator = n * (k - 1) - chi2
    ff = (n - 1) * chi2 / denominator if denominator > 0 else math.inf
    p_ff = float(stats.f.sf(ff, k - 1, (k - 1) * (n - 1))) if math.isfinite(ff) else 0.0
    return FriedmanResult(n, k, ranks, chi2, p_chi2, ff, p_ff, tie_correction)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Critical value q_α of the two-tailed Nemenyi test for k methods: the 1 − α quantile of the
    studentized range with k groups and infinite degrees of freedom, divided by √2 (Demšar Table 5a)."""
    check_number("k", k, low=2, integer=True)
    check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks: CD = q_α √(k(k+1)/(6N))."""
    check_number("n", n, low=1, integer=True)
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * n))


def nemenyi(table: pd.DataFrame) -> pd.DataFrame:
    """Nemenyi all-pairs p-values after a Friedman test (symmetric methods × methods frame), from
    ``scikit_posthocs.posthoc_nemenyi_friedman``."""
    import scikit_posthocs as sp

    p = sp.posthoc_nemenyi_friedman(table.to_numpy(float))
    p.index = p.columns = list(table.columns)
    return p
