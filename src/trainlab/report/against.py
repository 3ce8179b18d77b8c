"""Published numbers beside measured ones: ``trainlab report DIR --against FILE.csv``.

An anchors file is a CSV with columns ``task, model, trainer, metric, train_loss, test_loss, test_metric``
(one published value per cell, e.g. Appendix A of Morales Muñoz 2025, shipped as ``--against thesis000``; see
``trainlab/report/anchors/README.md`` for its source). Runs are matched to cells by task, model and trainer
label (the ``[trainers.<label>]`` name, else the algorithm). For each cell the table gives the published
value, the mean ± std (ddof 1) over the ``ok`` seeds, Δ = mean − published and whether |Δ| exceeds the
tolerance (0.02 by default); the summary counts the cells within ±0.02 and ±0.05.

A published value is flagged as a *thesis outlier* when it lies more than ``outlier_gap`` (0.5 metric units
by default) from the median of the published values of its family (gradient trainers NAG/RMSProp/Adam, or
the metaheuristics) on the same task × model: e.g. its Adam bhp R² of −3.55 and −3.34 beside 0.79–0.86.
Outliers are shown but counted apart.

The thesis's summary statistics, computed on published and measured values alike:

* Dif_rel = (M − M_ref) / |M_ref| (Morales Muñoz 2025, Resultados, experiment 1), here with M the measured
  mean and M_ref the published value of the same cell;
* RA = (balanced accuracy − 1/C) / (1 − 1/C) for classification with C classes. This is the formula of the
  thesis's code and tables (it reproduces its RA columns, e.g. MNIST LeNet-5: (0.979 − 0.1) / 0.9 = 0.977);
  its text prints (acc − 1/C) / (1/C), which its tables do not follow;
* the Wilcoxon signed-rank test (Wilcoxon 1945; SciPy, two-sided, ``zero_method = "zsplit"``) of measured
  against published values over the cells of each trainer across tasks, and over all cells (outliers excluded).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.report.tables import to_markdown

ANCHOR_COLUMNS = ("task", "model", "trainer", "metric", "train_loss", "test_loss", "test_metric")
QUANTITIES = {"test_metric": "final_test_metric", "test_loss": "final_test_loss", "train_loss": "final_train_loss"}
PACKAGED = {"thesis000": "thesis000-appendix-a.csv"}
GRADIENT = ("nag", "rmsprop", "adam", "adamw", "sgd", "momentum")
CLASSES = {"bcw": 2, "wqc": 6, "mnist": 10, "fmnist": 10, "cifar10g": 10}
"""Classes per classification task for RA (wqc: the 6 classes the thesis counts)."""


def load_anchors(source: str | Path) -> pd.DataFrame:
    """A packaged anchors table by name (``thesis000``) or a CSV file; errors name the file and the column."""
    name = str(source)
    if name in PACKAGED:
        path = resources.files("trainlab.report") / "anchors" / PACKAGED[name]
        with resources.as_file(path) as file:
            frame = pd.read_csv(file)
    else:
        file = Path(name)
        if not file.is_file():
            raise ConfigError("--against", name, "a CSV file or one of: " + ", ".join(PACKAGED))
        try:
            frame = pd.read_csv(file)
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ConfigError("--against", name, f"a readable CSV file ({err})") from None
    missing = [c for c in ANCHOR_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"{name}: columns", missing, "the columns " + ", ".join(ANCHOR_COLUMNS))
    for col in ("train_loss", "test_loss", "test_metric"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    for col in ("task", "model", "trainer"):
        frame[col] = frame[col].astype(str)
    return frame


def _family(trainer: str) -> str:
    return "gradient" if trainer in GRADIENT else "metaheuristic"


def thesis_outliers(anchors: pd.DataFrame, quantity: str = "test_metric", gap: float = 0.5) -> pd.Series:
    """True for published values more than ``gap`` from the median of their family's published values on
    the same task × model (see the module docstring); a family of fewer than 3 values has no outliers."""
    out = pd.Series(False, index=anchors.index)
    fam = anchors["trainer"].map(_family)
    for _, group in anchors.groupby([anchors["task"], anchors["model"], fam]):
        values = group[quantity].dropna()
        if len(values) >= 3:
            out[values.index] = (values - values.median()).abs() > gap
    return out


def random_adjusted(value: float, task: str) -> float:
    """RA = (metric − 1/C) / (1 − 1/C) (the thesis code's formula); NaN for tasks without classes."""
    classes = CLASSES.get(task)
    if classes is None or not math.isfinite(value):
        return math.nan
    chance = 1 / classes
    return (value - chance) / (1 - chance)


def dif_rel(measured: float, reference: float) -> float:
    """(measured − reference) / |reference|; NaN when the reference is 0 or missing."""
    if not math.isfinite(reference) or reference == 0 or not math.isfinite(measured):
        return math.nan
    return (measured - reference) / abs(reference)


@dataclass
class Comparison:
    """The per-cell table, the counts and the Wilcoxon tests of one comparison."""

    cells: pd.DataFrame
    summary: pd.DataFrame
    wilcoxon: pd.DataFrame
    quantity: str
    tolerance: float


def compare(
    runs: pd.DataFrame,
    anchors: pd.DataFrame,
    *,
    quantity: str = "test_metric",
    tolerance: float = 0.02,
    outlier_gap: float = 0.5,
) -> Comparison:
    """Published against measured for every anchor cell that has runs (see the module docstring)."""
    check_choice("quantity", quantity, tuple(QUANTITIES))
    check_number("tolerance", tolerance, low=0, low_open=True)
    check_number("outlier_gap", outlier_gap, low=0, low_open=True)
    column = QUANTITIES[quantity]
    for col in ("task", "model", "status", column):
        if col not in runs.columns:
            raise ConfigError("runs", col, "a runs frame with task, model, status and " + column)
    label = runs["label"] if "label" in runs.columns else runs["trainer"]
    data = runs.assign(_label=label.astype(str), _v=pd.to_numeric(runs[column], errors="coerce"))
    ok = data[data["status"].eq("ok") & np.isfinite(data["_v"])]
    anchors = anchors.assign(outlier=thesis_outliers(anchors, quantity, outlier_gap))
    rows = []
    for _, a in anchors.iterrows():
        mine = data[(data["task"].astype(str) == a["task"]) & (data["model"].astype(str) == a["model"])
                    & (data["_label"] == a["trainer"])]
        if mine.empty:
            continue
        good = ok.loc[ok.index.intersection(mine.index), "_v"]
        mean = float(good.mean()) if len(good) else math.nan
        std = float(good.std(ddof=1)) if len(good) > 1 else math.nan
        published = float(a[quantity])
        delta = mean - published
        rows.append({
            "task": a["task"], "model": a["model"], "trainer": a["trainer"], "published": published,
            "n": int(len(good)), "runs": int(len(mine)), "mean": mean, "std": std, "delta": delta,
            "flag": bool(not math.isfinite(delta) or abs(delta) > tolerance),
            "within_0.02": bool(math.isfinite(delta) and abs(delta) <= 0.02),
            "within_0.05": bool(math.isfinite(delta) and abs(delta) <= 0.05),
            "thesis_outlier": bool(a["outlier"]),
            "dif_rel": dif_rel(mean, published),
            "ra_published": random_adjusted(published, a["task"]) if quantity == "test_metric" else math.nan,
            "ra_measured": random_adjusted(mean, a["task"]) if quantity == "test_metric" else math.nan,
        })
    cells = pd.DataFrame(rows)
    if cells.empty:
        raise ConfigError("--against", "no matching cells",
                          "runs whose task, model and trainer label appear in the anchors file")
    return Comparison(cells, _summary(cells), _wilcoxon(cells), quantity, tolerance)


def _summary(cells: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for name, part in (("all cells", cells), ("without thesis outliers", cells[~cells["thesis_outlier"]])):
        measured = part[np.isfinite(part["mean"])]
        rows.append({
            "cells": name, "n": len(part), "measured": len(measured),
            "within ±0.02": int(part["within_0.02"].sum()), "within ±0.05": int(part["within_0.05"].sum()),
            "share within ±0.02": part["within_0.02"].mean() if len(part) else math.nan,
            "share within ±0.05": part["within_0.05"].mean() if len(part) else math.nan,
            "mean Δ": float(measured["delta"].mean()) if len(measured) else math.nan,
            "median abs(Δ)": float(measured["delta"].abs().median()) if len(measured) else math.nan,
        })
    return pd.DataFrame(rows)


def _wilcoxon(cells: pd.DataFrame) -> pd.DataFrame:
    """Measured means against published values over cells (thesis outliers and unmeasured cells left out)."""
    usable = cells[~cells["thesis_outlier"] & np.isfinite(cells["mean"])]
    groups = [("all", usable)] + [(t, usable[usable["trainer"] == t]) for t in dict.fromkeys(usable["trainer"])]
    rows = []
    for name, part in groups:
        d = (part["mean"] - part["published"]).to_numpy()
        d = np.where(np.abs(d) < 1e-12, 0.0, d)  # a mean equal to the published value up to rounding is a tie
        if len(d) and np.any(d != 0):
            res = stats.wilcoxon(d, zero_method="zsplit")
            statistic, p = float(res.statistic), float(res.pvalue)
        else:
            statistic, p = math.nan, math.nan
        rows.append({"trainer": name, "cells": len(d), "higher": int((d > 0).sum()), "lower": int((d < 0).sum()),
                     "W": statistic, "p": p})
    return pd.DataFrame(rows)


def _fmt(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"


def display_cells(comparison: Comparison) -> pd.DataFrame:
    """The per-cell table as strings: published, mean ± std (n), Δ, flags, Dif_rel and RA."""
    c = comparison.cells
    out = pd.DataFrame({
        "task": c["task"], "model": c["model"], "trainer": c["trainer"],
        "published": [_fmt(v) for v in c["published"]],
        "measured (mean ± std)": [f"{_fmt(m)} ± {_fmt(s)}" if math.isfinite(s) else _fmt(m)
                                  for m, s in zip(c["mean"], c["std"])],
        "n": c["n"],
        "Δ": [_fmt(d) for d in c["delta"]],
        f"beyond ±{comparison.tolerance:g}": ["**yes**" if f else "" for f in c["flag"]],
        "thesis outlier": ["yes" if o else "" for o in c["thesis_outlier"]],
        "Dif_rel": [_fmt(v) for v in c["dif_rel"]],
    })
    if np.isfinite(c["ra_published"]).any():
        out["RA published"] = [_fmt(v) for v in c["ra_published"]]
        out["RA measured"] = [_fmt(v) for v in c["ra_measured"]]
    return out


def against_markdown(comparison: Comparison, source: str) -> str:
    """The comparison as a Markdown section."""
    summary = comparison.summary.copy()
    for col in ("share within ±0.02", "share within ±0.05"):
        summary[col] = [f"{v:.0%}" if math.isfinite(v) else "–" for v in summary[col]]
    for col in ("mean Δ", "median abs(Δ)"):
        summary[col] = [_fmt(v) for v in summary[col]]
    tests = comparison.wilcoxon.copy()
    tests["W"] = [_fmt(v, 1) for v in tests["W"]]
    tests["p"] = [f"{p:.3g}" if math.isfinite(p) else "–" for p in tests["p"]]
    return "\n".join([
        f"## Published against measured ({comparison.quantity}, anchors: {source})",
        "",
        f"Measured: mean ± std over the `ok` seeds; Δ = measured − published; flagged where |Δ| > "
        f"{comparison.tolerance:g}. A thesis outlier is a published value more than the outlier gap from the "
        "median of its family's published values on the same task × model. Dif_rel = (measured − published) / "
        "|published|; RA = (balanced accuracy − 1/C) / (1 − 1/C), the formula of the thesis's code and tables.",
        "",
        to_markdown(summary),
        "",
        to_markdown(display_cells(comparison)),
        "",
        "Wilcoxon signed-rank tests of measured against published values over cells (outliers excluded; "
        "two-sided, zsplit): `higher`/`lower` count cells where the measured mean is above/below the published value.",
        "",
        to_markdown(tests),
        "",
    ])


def write_against(comparison: Comparison, out: str | Path, source: str) -> tuple[Path, Path]:
    """Write ``against.md`` and ``against.csv`` (every per-cell number, unrounded) into ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    md, csv = folder / "against.md", folder / "against.csv"
    md.write_text(against_markdown(comparison, source))
    comparison.cells.to_csv(csv, index=False)
    return md, csv
