"""Tables of a report, computed from the store's frames (``runs_frame()``, ``history_frame()``):
per-configuration summaries with ranks, learning curves over seeds, and time-to-target.

All functions take plain DataFrames so they work on any frame with the documented columns.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from trainlab.core.config import ConfigError, check_choice, check_number

GROUP = ("task", "model", "label")
SPENDING = ("evals", "sample_evals", "seconds", "cpu_seconds")
TABLE_FORMATS = ("md", "csv", "tex")


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(name, missing, "a frame with columns " + ", ".join(columns))


def summary_table(
    runs: pd.DataFrame,
    *,
    value: str = "final_test_metric",
    by: Sequence[str] = GROUP,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """One row per ``by`` group (task × model × trainer label): run counts by status, mean, std (ddof 1),
    median, min and max of ``value`` over the seeds that finished ``ok``, mean spending over all finished
    runs, and ``rank``: the rank of the group's mean within its task (1 = best, ties averaged, groups
    without any ok run ranked last). Pending/running runs count in ``n`` and ``missing`` only."""
    _require(runs, (*by, value, "status"), "runs")
    by = list(by)
    data = runs.copy()
    data["_v"] = pd.to_numeric(data[value], errors="coerce").astype(float)
    ok = data["status"].eq("ok") & np.isfinite(data["_v"])
    finished = data["status"].isin(("ok", "diverged", "failed"))
    groups = data.groupby(by, sort=True, dropna=False)
    out = pd.DataFrame({
        "n": groups.size(),
        "ok": ok.groupby([data[c] for c in by]).sum(),
        "diverged": data["status"].eq("diverged").groupby([data[c] for c in by]).sum(),
        "failed": data["status"].eq("failed").groupby([data[c] for c in by]).sum(),
    })
    out["missing"] = out["n"] - finished.groupby([data[c] for c in by]).sum()
    good = data[ok].groupby(by)["_v"]
    out = out.join(pd.DataFrame({
        "mean": good.mean(), "std": good.std(ddof=1), "median": good.median(), "min": good.min(), "max": good.max(),
    }))
    spend = [c for c in SPENDING if c in data.columns]
    if spend:
        out = out.join(data[finished].groupby(by)[spend].mean())
    for col, name in (("lr", "lr"), ("best_epoch", "epoch")):
        if col in data.columns:
            chosen = pd.to_numeric(data.loc[ok, col], errors="coerce").groupby([data.loc[ok, c] for c in by])
            out = out.join(pd.DataFrame({f"{name}_median": chosen.median(), f"{name}_min": chosen.min(),
                                         f"{name}_max": chosen.max()}))
    out = out.reset_index()
    within = "task" if "task" in by else None
    ranked = out.groupby(within)["mean"] if within else out["mean"]
    out["rank"] = ranked.rank(ascending=not higher_is_better, method="average", na_option="bottom")
    out.insert(len(by), "value", value)
    return out


def mean_std(mean: float, std: float, digits: int = 4) -> str:
    """``"m ± s"`` with ``digits`` significant digits; ``"–"`` when there is no mean."""
    if mean is None or not math.isfinite(mean):
        return "–"
    if std is None or not math.isfinite(std):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {std:.{max(2, digits - 2)}g}"


def display_summary(summary: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The summary as strings for a report: ``mean ± std``, median, ok/diverged/failed counts, ``pending``
    (runs not finished, shown when there are any), spending
    (columns that are zero throughout, such as fitness evaluations of gradient trainers, are left out),
    the lr used and the selected epoch (median, with [min–max] when the seeds differ), rank, one row per
    group (the task column is kept for splitting per task)."""
    out = pd.DataFrame({c: summary[c] for c in ("task", "model", "label") if c in summary.columns})
    out["mean ± std"] = [mean_std(m, s, digits) for m, s in zip(summary["mean"], summary["std"])]
    out["median"] = [f"{m:.{digits}g}" if math.isfinite(m) else "–" for m in summary["median"]]
    out["ok/div/fail"] = [f"{o}/{d}/{f}" for o, d, f in zip(summary["ok"], summary["diverged"], summary["failed"])]
    if "missing" in summary.columns and (summary["missing"] > 0).any():
        out["pending"] = summary["missing"].astype(int)
    for col in SPENDING:
        values = summary[col].astype(float) if col in summary.columns else pd.Series(dtype=float)
        if (values.fillna(0) != 0).any():
            out[col] = [f"{v:.3g}" if math.isfinite(v) else "–" for v in values]
    if "lr_median" in summary.columns and np.isfinite(summary["lr_median"].astype(float)).any():
        out["lr used"] = [_spread(m, lo, hi, "{:.2g}") for m, lo, hi in
                          zip(summary["lr_median"], summary["lr_min"], summary["lr_max"])]
    if "epoch_median" in summary.columns:
        out["epoch"] = [_spread(m, lo, hi, "{:.0f}") for m, lo, hi in
                        zip(summary["epoch_median"], summary["epoch_min"], summary["epoch_max"])]
    out["rank"] = [f"{r:g}" for r in summary["rank"]]
    return out


def _spread(median: float, low: float, high: float, fmt: str) -> str:
    """``"m"`` when every seed agrees, ``"m [lo–hi]"`` otherwise, ``"–"`` without a value."""
    if median is None or not math.isfinite(median):
        return "–"
    if low == high:
        return fmt.format(median)
    return f"{fmt.format(median)} [{fmt.format(low)}–{fmt.format(high)}]"


# ------------------------------------------------------------------------------------------- writers
def to_markdown(frame: pd.DataFrame, index: bool = False) -> str:
    """A GitHub-flavoured Markdown table (no dependency on ``tabulate``)."""
    data = frame.reset_index() if index else frame
    cells = [[_cell(v) for v in row] for row in data.itertuples(index=False)]
    header = [str(c) for c in data.columns]
    numeric = [pd.api.types.is_numeric_dtype(data[c]) for c in data.columns]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def to_latex(frame: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A ``booktabs`` LaTeX table (pandas ``Styler.to_latex``, which needs jinja2); text is escaped and
    ±, ×, – become math/dashes, so the table compiles with pdflatex."""
    styler = frame.style.hide(axis="index").format(_latex_cell)
    styler = styler.format_index(_latex_cell, axis=1)
    return styler.to_latex(hrules=True, caption=_latex_cell(caption) if caption else None, label=label,
                           position="htbp" if caption else None)


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "×": r"$\times$",
          "–": "--", "α": r"$\alpha$", "χ²": r"$\chi^2$"}
_LATEX_RE = re.compile("|".join(map(re.escape, _LATEX)))


def _latex_cell(value: object) -> str:
    if isinstance(value, float):
        return "--" if math.isnan(value) else f"{value:.4g}"
    return _LATEX_RE.sub(lambda m: _LATEX[m.group()], str(value))


def write_table(
    frame: pd.DataFrame, stem: str | Path, formats: Sequence[str] = TABLE_FORMATS, caption: str | None = None
) -> list[Path]:
    """Write ``frame`` as ``<stem>.md``, ``<stem>.csv`` and/or ``<stem>.tex``; return the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        check_choice("formats", fmt, TABLE_FORMATS)
        path = stem.with_name(f"{stem.name}.{fmt}")
        if fmt == "md":
            path.write_text(to_markdown(frame))
        elif fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            path.write_text(to_latex(frame, caption=caption))
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------------- learning curves
def _with_groups(history: pd.DataFrame, runs: pd.DataFrame, by: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    _require(history, ("run_id", *columns), "history")
    _require(runs, ("run_id", "status", *by), "runs")
    keep = runs.loc[runs["status"].eq("ok"), ["run_id", *by]]
    return history.merge(keep, on="run_id", how="inner")


def learning_curves(
    history: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    y: str = "val_metric",
    x: str = "epoch",
    by: Sequence[str] = GROUP,
    points: int = 100,
) -> pd.DataFrame:
    """Mean and std (ddof 1) over the seeds of each ``by`` group of ``y`` against ``x`` (``epoch``,
    ``sample_evals``, ``evals``, ``steps`` or ``seconds``), for runs that finished ``ok``.

    Where every run of a group has the same ``x`` values (epochs; deterministic spending), statistics
    are taken at those values over the runs that reached them (``n`` says how many). Otherwise (wall
    time) every run is linearly interpolated on ``points`` evenly spaced values over the range all its
    group's runs cover. Columns: ``*by, x, mean, std, min, max, n`` (min and max over the seeds).
    """
    check_number("points", points, low=2, integer=True)
    by = list(by)
    data = _with_groups(history, runs, by, (x, y)).dropna(subset=[x])
    frames = []
    for key, group in data.groupby(by, sort=True):
        series = [g.sort_values(x) for _, g in group.groupby("run_id", sort=False)]
        xs = [s[x].to_numpy(float) for s in series]
        shared = all(len(v) == len(xs[0]) and np.array_equal(v, xs[0]) for v in xs)
        if x == "epoch" or shared:
            stacked = group.groupby(x)[y]
            part = pd.DataFrame({"x": stacked.mean().index, "mean": stacked.mean().to_numpy(),
                                 "std": stacked.std(ddof=1).to_numpy(), "min": stacked.min().to_numpy(),
                                 "max": stacked.max().to_numpy(), "n": stacked.count().to_numpy()})
        else:
            lo, hi = max(v.min() for v in xs), min(v.max() for v in xs)
            grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
            values = np.stack([np.interp(grid, v, s[y].to_numpy(float)) for v, s in zip(xs, series)])
            part = pd.DataFrame({"x": grid, "mean": values.mean(axis=0),
                                 "std": values.std(axis=0, ddof=1) if len(series) > 1 else np.nan,
                                 "min": values.min(axis=0), "max": values.max(axis=0), "n": len(series)})
        for col, k in zip(by, key if isinstance(key, tuple) else (key,)):
            part[col] = k
        frames.append(part)
    if not frames:
        return pd.DataFrame(columns=[*by, "x", "mean", "std", "min", "max", "n"])
    return pd.concat(frames, ignore_index=True)[[*by, "x", "mean", "std", "min", "max", "n"]]


# ------------------------------------------------------------------------------------ time-to-target
def default_targets(
    history: pd.DataFrame, runs: pd.DataFrame, *, metric: str = "val_metric", quantile: float = 0.5,
    higher_is_better: bool = True,
) -> dict[str, float]:
    """Per task, the ``quantile`` of the best ``metric`` each ok run reached (its maximum over epochs, or
    minimum when lower is better), so that about a fraction 1 − quantile of the runs reach it."""
    check_number("quantile", quantile, low=0, high=1)
    data = _with_groups(history, runs, ("task",), (metric,))
    best = data.groupby(["task", "run_id"])[metric].agg("max" if higher_is_better else "min")
    q = quantile if higher_is_better else 1 - quantile
    return {str(task): float(v.quantile(q)) for task, v in best.groupby(level="task")}


def time_to_target(
    history: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    target: float | Mapping[str, float] | None = None,
    quantile: float = 0.5,
    metric: str = "val_metric",
    x: Sequence[str] = ("epoch", "evals", "sample_evals", "seconds"),
    by: Sequence[str] = GROUP,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """For each ``by`` group, how soon ``metric`` first reached the target (≥, or ≤ when lower is better).

    ``target`` is one number, a mapping task → number, or None for :func:`default_targets` at
    ``quantile``. Each ok run's first history row at or past the target gives its epoch, evals,
    sample_evals and seconds; the table has the median of each over the runs that reached it,
    ``reached`` (how many) and ``n`` (ok runs in the group). Columns absent from ``history`` are skipped.
    """
    by = list(by)
    xs = [c for c in x if c in history.columns]
    data = _with_groups(history, runs, by, (metric,))
    if target is None:
        targets = default_targets(history, runs, metric=metric, quantile=quantile, higher_is_better=higher_is_better)
    elif isinstance(target, Mapping):
        targets = {str(k): float(check_number(f"target.{k}", v)) for k, v in target.items()}
    else:
        check_number("target", target)
    rows = []
    for key, group in data.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        if target is not None and not isinstance(target, Mapping):
            goal = float(target)
        elif str(row.get("task")) in targets:
            goal = targets[str(row.get("task"))]
        else:
            raise ConfigError("target", target, f"a value for task {row.get('task')!r}")
        firsts = []
        for _, run in group.groupby("run_id", sort=False):
            run = run.sort_values("epoch") if "epoch" in run else run
            hit = run[metric] >= goal if higher_is_better else run[metric] <= goal
            if hit.any():
                firsts.append(run.loc[hit.idxmax(), xs])
        row.update(target=goal, n=group["run_id"].nunique(), reached=len(firsts))
        reached = pd.DataFrame(firsts)
        row.update({c: float(reached[c].median()) if len(reached) else math.nan for c in xs})
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, "target", "n", "reached", *xs])
