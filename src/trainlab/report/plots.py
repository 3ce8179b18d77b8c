"""Figures of a report: learning curves with seed bands, critical-difference diagrams, (A, T) contour
plots of dynamic-loss sweeps and curvature panels of callback records.

Every function draws on a matplotlib ``Axes`` (a new ``Figure`` when none is given; pyplot's global
state is never touched, so this works headless with the Agg backend) and returns it;
:func:`save_figure` writes PNG and SVG files with deterministic names.
"""
from __future__ import annotations

import hashlib
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from trainlab.core.config import ConfigError, check_choice, check_number

FIGURE_FORMATS = ("png", "svg")


def new_axes(figsize: tuple[float, float] = (6.0, 4.0), nrows: int = 1, ncols: int = 1) -> Any:
    """A fresh figure (not registered with pyplot) and its axes (one ``Axes`` or an array of them)."""
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=True)
    return axes


def save_figure(fig: Figure, stem: str | Path, formats: Sequence[str] = FIGURE_FORMATS, dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``<stem>.<fmt>`` for each format (``png``, ``svg``, ``pdf``); return the paths.
    The saved area is cropped to everything drawn, so long labels and outside legends are kept whole."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        check_choice("formats", fmt, ("png", "svg", "pdf"))
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.05,
                    metadata={"Date": None} if fmt == "svg" else None)
        paths.append(path)
    return paths


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(name, missing, "columns present in the frame: " + ", ".join(map(str, frame.columns)))


# ---------------------------------------------------------------------------------------------- contour
_NAMES = {
    "loss_options.amplitude": "amplitude A",
    "loss_options.period": "period T (steps)",
    "trainer_options.lr": "learning rate",
    "model_options.width": "width",
    "budget.epochs": "epochs",
    "budget.steps": "steps",
}


def axis_label(column: str) -> str:
    """A reader's name for a results column: ``loss_options.amplitude`` → "amplitude A",
    ``final_test_metric`` → "test metric (selected model)", ``end_train_metric`` → "train metric (end of
    training)", other dotted options → their last part."""
    if column in _NAMES:
        return _NAMES[column]
    if column.startswith("final_"):
        return column.removeprefix("final_").replace("_", " ") + " (selected model)"
    if column.startswith("end_"):
        return column.removeprefix("end_").replace("_", " ") + " (end of training)"
    return column.split(".")[-1].replace("_", " ")


def contour_grid(frame: pd.DataFrame, x: str, y: str, value: str, *, agg: str = "mean") -> pd.DataFrame:
    """``agg`` (mean, median, min, max, std, count) of ``value`` over the rows sharing each (``x``, ``y``)
    cell, typically the seeds of one sweep point. Rows of the result are ``y`` values (ascending), columns
    are ``x`` values (ascending); cells never run are NaN."""
    _require(frame, (x, y, value), "frame")
    check_choice("agg", agg, ("mean", "median", "min", "max", "std", "count"))
    data = frame[[x, y, value]].astype({value: float})
    grid = data.pivot_table(index=y, columns=x, values=value, aggfunc=agg, dropna=False)
    return grid.sort_index().sort_index(axis=1)


def contour(
    frame: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    *,
    ax: Axes | None = None,
    agg: str = "mean",
    static: float | None = 1.0,
    static_column: str | None = None,
    levels: int = 11,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    log_x: bool = False,
    log_y: bool = False,
    title: str | None = None,
    colorbar: bool = True,
    show_points: bool = True,
) -> Axes:
    """Filled contour plot of ``agg(value)`` over the grid of two swept columns of ``frame``.

    ``frame`` has one row per run (e.g. ``ResultStore.runs_frame()`` filtered to one task/model/loss);
    ``x`` and ``y`` are dotted option columns such as ``"loss_options.period"`` and
    ``"loss_options.amplitude"``; ``value`` is e.g. ``"final_train_metric"``. Cells are averaged over
    seeds (:func:`contour_grid`); NaN cells are left blank. ``static`` marks the static-loss line
    (amplitude A = 1) with a dashed red line on ``static_column`` (default: whichever of ``x``/``y`` has
    "amplitude" in its name; no line when neither has or ``static`` is None). ``vmin``/``vmax`` fix the
    colour scale so that figures can be compared (e.g. 0 and 1 for accuracy). Sampled cells are shown as
    small dots when ``show_points``. A grid with a single row or column is drawn as coloured points.
    """
    check_number("levels", levels, low=2, integer=True)
    grid = contour_grid(frame, x, y, value, agg=agg)
    if ax is None:
        ax = new_axes((5.5, 4.2))
    xs = grid.columns.to_numpy(dtype=float)
    ys = grid.index.to_numpy(dtype=float)
    z = np.ma.masked_invalid(grid.to_numpy(dtype=float))
    lo = float(z.min()) if vmin is None and z.count() else vmin
    hi = float(z.max()) if vmax is None and z.count() else vmax
    if lo is None or hi is None:
        raise ConfigError("value", value, f"a column with at least one finite value in the {x} × {y} grid")
    if hi <= lo:
        hi = lo + 1e-12
    bounds = np.linspace(lo, hi, levels)
    if len(xs) >= 2 and len(ys) >= 2:
        filled = ax.contourf(xs, ys, z, levels=bounds, cmap=cmap, extend="both")
        ax.contour(xs, ys, z, levels=bounds, colors="k", linewidths=0.3, alpha=0.5)
    else:
        gx, gy = np.meshgrid(xs, ys)
        filled = ax.scatter(gx.ravel(), gy.ravel(), c=z.ravel(), cmap=cmap, vmin=lo, vmax=hi, s=80)
    if show_points:
        gx, gy = np.meshgrid(xs, ys)
        done = ~np.ma.getmaskarray(z)
        ax.plot(gx[done], gy[done], "k.", markersize=2, alpha=0.6)
    column = static_column or next((c for c in (y, x) if "amplitude" in c), None)
    if static is not None and column is not None:
        if column not in (x, y):
            raise ConfigError("static_column", column, f"{x!r} or {y!r}")
        line = ax.axhline if column == y else ax.axvline
        label = f"static ({column.split('.')[-1]} = {static:g})"
        line(static, color="tab:red", linestyle="--", linewidth=2.0, clip_on=False, label=label)
        ax.legend(loc="upper right", fontsize="small")
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    for axis, values in ((ax.xaxis, xs), (ax.yaxis, ys)):
        if len(values) <= 12:
            axis.set_ticks(values, labels=[f"{v:g}" for v in values])
            axis.set_minor_locator(NullLocator())
    ax.margins(0.02)
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    ax.set_title(title if title is not None else f"{agg} {axis_label(value)}")
    if colorbar:
        ax.figure.colorbar(filled, ax=ax, label=axis_label(value))
    return ax


# ----------------------------------------------------------------------------------------- colours
#: One colour per registered trainer, the same in every figure of every report (hues of the first-order
#: methods first, so that the usual comparison, SGD / NAG / Adam / RMSProp / SHADE, gets tab10's five
#: most distinct colours).
TRAINER_COLOURS = {
    "sgd": "#1f77b4", "nag": "#ff7f0e", "adam": "#2ca02c", "rmsprop": "#d62728", "shade": "#9467bd",
    "momentum": "#17becf", "adagrad": "#bcbd22", "adamw": "#8c564b", "gd": "#7f7f7f", "lbfgs": "#e377c2",
    "newton": "#393b79", "cg": "#637939", "bfgs": "#843c39", "de": "#7b4173", "lshade": "#a55194",
    "shade-ils": "#6b6ecf", "shade-gd": "#8ca252", "shade-ils-gd": "#bd9e39",
}
_OTHER_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
LINESTYLES = ("-", "--", ":", "-.")


def base_label(label: object) -> str:
    """A trainer label without the options :func:`trainlab.report.cells.name_cells` appended and without
    a leading ``"model / "``: ``"sgd(loss=mse)"`` → ``"sgd"``, ``"mlp1 / adam#1a2b3c4d"`` → ``"adam"``."""
    return str(label).rsplit(" / ", 1)[-1].split("(", 1)[0].split("#", 1)[0].strip()


def trainer_colour(label: object) -> str:
    """The fixed colour of a trainer label (its base name, :func:`base_label`): a registered trainer's
    colour from :data:`TRAINER_COLOURS`; any other name gets one of eight further colours chosen by a
    stable hash of the name (the same in every figure and every run of Python)."""
    base = base_label(label)
    if base in TRAINER_COLOURS:
        return TRAINER_COLOURS[base]
    digest = int.from_bytes(hashlib.sha256(base.encode()).digest()[:4], "big")
    return _OTHER_COLOURS[digest % len(_OTHER_COLOURS)]


def line_styles(labels: Sequence[object]) -> dict[str, tuple[str, str]]:
    """(colour, linestyle) per label: the trainer's colour, and a different line style for each further
    label of the same base trainer (e.g. ``sgd`` solid, ``sgd(loss=mse)`` dashed)."""
    seen: dict[str, int] = {}
    out = {}
    for label in dict.fromkeys(map(str, labels)):
        base = base_label(label)
        out[label] = (trainer_colour(label), LINESTYLES[seen.get(base, 0) % len(LINESTYLES)])
        seen[base] = seen.get(base, 0) + 1
    return out


# -------------------------------------------------------------------------------------- learning curves
LOG_X = ("evals", "sample_evals", "seconds")


def _band(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """mean ± std, clipped to the range the seeds' values span at each x (``min``/``max`` columns when the
    frame has them), so that a band never leaves the metric's range (no accuracy above 1)."""
    mean = part["mean"].to_numpy(float)
    std = part["std"].fillna(0.0).to_numpy(float)
    lo, hi = mean - std, mean + std
    if {"min", "max"} <= set(part.columns):
        lo = np.maximum(lo, part["min"].to_numpy(float))
        hi = np.minimum(hi, part["max"].to_numpy(float))
    return lo, hi


def plot_learning_curves(
    curves: pd.DataFrame,
    *,
    ax: Axes | None = None,
    x: str = "epoch",
    y: str = "val_metric",
    by: Sequence[str] = ("model", "label"),
    log_x: bool | None = None,
    title: str | None = None,
) -> Axes:
    """One line per group of ``curves`` (the output of :func:`trainlab.report.tables.learning_curves`):
    the mean over seeds with a band of ±1 std clipped to the seeds' range (:func:`_band`). A line's
    colour is its trainer's (:func:`trainer_colour`, from the last of ``by``). ``log_x`` (default: True for
    evals, sample-evaluations and seconds) draws a logarithmic x axis and leaves out x = 0.
    :func:`learning_curve_panels` splits many groups into panels of at most six lines."""
    _require(curves, (*by, "x", "mean", "std"), "curves")
    if ax is None:
        ax = new_axes((6.5, 4.2))
    log = x in LOG_X if log_x is None else log_x
    groups = list(curves.groupby(list(by), sort=True))
    styles = line_styles([key[-1] if isinstance(key, tuple) else key for key, _ in groups])
    for key, part in groups:
        keys = key if isinstance(key, tuple) else (key,)
        name = " / ".join(map(str, keys))
        part = part.sort_values("x")
        if log:
            part = part[part["x"] > 0]
        colour, style = styles[str(keys[-1])]
        ax.plot(part["x"], part["mean"], label=textwrap.fill(name, 48, subsequent_indent="  "),
                linewidth=1.5, color=colour, linestyle=style)
        lo, hi = _band(part)
        ax.fill_between(part["x"], lo, hi, color=colour, alpha=0.15, linewidth=0)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(axis_label(x) + (" (log scale)" if log else ""))
    ax.set_ylabel(y)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if groups:
        ax.legend(fontsize="x-small" if len(groups) > 3 else "small", loc="best")
    return ax


def learning_curve_panels(
    curves: pd.DataFrame,
    *,
    x: str = "epoch",
    y: str = "val_metric",
    panel: str = "model",
    line: str = "label",
    max_lines: int = 6,
    ncols: int = 2,
    log_x: bool | None = None,
    title: str | None = None,
) -> Figure:
    """Learning curves with one panel per value of ``panel`` (a model) and at most ``max_lines`` lines
    (trainer labels) per panel; a model with more labels gets several panels. Panels share the y axis.
    Each panel is drawn by :func:`plot_learning_curves`, so colours are the trainers' everywhere."""
    _require(curves, (panel, line, "x", "mean", "std"), "curves")
    check_number("max_lines", max_lines, low=1, integer=True)
    check_number("ncols", ncols, low=1, integer=True)
    panels = []
    for key, part in curves.groupby(panel, sort=True):
        labels = sorted(part[line].astype(str).unique())
        chunks = [labels[i:i + max_lines] for i in range(0, len(labels), max_lines)]
        for j, chunk in enumerate(chunks):
            name = str(key) + (f" ({j + 1}/{len(chunks)})" if len(chunks) > 1 else "")
            panels.append((name, part[part[line].astype(str).isin(chunk)]))
    if not panels:
        raise ConfigError("curves", "an empty frame", "learning curves of at least one group")
    cols = min(ncols, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(5.4 * cols, 3.7 * rows + (0.4 if title else 0.0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    for ax, (name, part) in zip(axes, panels):
        plot_learning_curves(part, ax=ax, x=x, y=y, by=(line,), log_x=log_x, title=name)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- metric vs parameter
def numeric_axis(values: Sequence[object]) -> bool:
    """True when every non-missing value is a number (so the values can be an x axis)."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return bool(present) and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in present)


def metric_vs_parameter(
    runs: pd.DataFrame,
    parameter: str,
    value: str = "final_test_metric",
    *,
    by: str = "label",
    ax: Axes | None = None,
    log_x: bool | None = None,
    title: str | None = None,
) -> Axes:
    """``value`` against a swept option ``parameter`` (e.g. ``trainer_options.lr``): one line per ``by``
    group through the mean over the ``ok`` runs at each parameter value, with the seeds' range (min–max)
    as a band and every run as a dot. ``log_x`` defaults to True when all values are positive and span
    a factor of 10 or more. Numeric parameters only."""
    _require(runs, (parameter, value, by, "status"), "runs")
    ok = runs[runs["status"].eq("ok")]
    if not numeric_axis(list(ok[parameter])):
        raise ConfigError("parameter", parameter, "a column with numeric values")
    data = pd.DataFrame({"p": ok[parameter].astype(float), "v": pd.to_numeric(ok[value], errors="coerce"),
                         "g": ok[by].astype(str)}).dropna()
    if ax is None:
        ax = new_axes((5.4, 3.7))
    styles = line_styles(sorted(data["g"].unique()))
    for name, part in data.groupby("g", sort=True):
        colour, style = styles[str(name)]
        stats_ = part.groupby("p")["v"].agg(["mean", "min", "max"]).sort_index()
        ax.plot(stats_.index, stats_["mean"], marker="o", markersize=4, color=colour, linestyle=style,
                label=textwrap.fill(str(name), 48, subsequent_indent="  "))
        ax.fill_between(stats_.index, stats_["min"], stats_["max"], color=colour, alpha=0.15, linewidth=0)
        ax.plot(part["p"], part["v"], ".", color=colour, markersize=3, alpha=0.5)
    xs = data["p"].unique()
    log = (len(xs) > 0 and xs.min() > 0 and xs.max() >= 10 * xs.min()) if log_x is None else log_x
    if log:
        ax.set_xscale("log")
    if 0 < len(xs) <= 12:
        ax.set_xticks(sorted(xs), labels=[f"{v:g}" for v in sorted(xs)])
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(axis_label(parameter) + (" (log scale)" if log else ""))
    ax.set_ylabel(axis_label(value))
    ax.set_title(title if title is not None else f"{axis_label(value)} against {axis_label(parameter)}")
    ax.grid(alpha=0.3)
    if len(styles):
        ax.legend(fontsize="x-small" if len(styles) > 3 else "small", loc="best")
    return ax


def parameter_panels(
    runs: pd.DataFrame,
    parameters: Sequence[str],
    value: str = "final_test_metric",
    *,
    by: str = "label",
    max_lines: int = 6,
    ncols: int = 3,
    title: str | None = None,
) -> Figure:
    """:func:`metric_vs_parameter` for each of ``parameters``, one panel per parameter (several when more
    than ``max_lines`` groups), panels sharing the y axis."""
    check_number("max_lines", max_lines, low=1, integer=True)
    panels = []
    for parameter in parameters:
        groups = sorted(runs[by].astype(str).unique())
        chunks = [groups[i:i + max_lines] for i in range(0, len(groups), max_lines)]
        for j, chunk in enumerate(chunks):
            name = axis_label(parameter) + (f" ({j + 1}/{len(chunks)})" if len(chunks) > 1 else "")
            panels.append((parameter, name, runs[runs[by].astype(str).isin(chunk)]))
    if not panels:
        raise ConfigError("parameters", list(parameters), "at least one swept option column")
    cols = min(ncols, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(5.0 * cols, 3.7 * rows + (0.4 if title else 0.0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    for ax, (parameter, name, part) in zip(axes, panels):
        metric_vs_parameter(part, parameter, value, by=by, ax=ax, title=name)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


# ------------------------------------------------------------------------------ critical difference
def cliques(mean_ranks: pd.Series, pvalues: pd.DataFrame, alpha: float = 0.05) -> list[list[str]]:
    """Maximal runs of methods, consecutive in rank order, of which no pair differs significantly (every
    post-hoc p-value ≥ ``alpha``): the bars of a critical-difference diagram (Demšar 2006, §3.2.2).
    Single methods are not returned."""
    order = [str(m) for m in mean_ranks.sort_values(kind="stable").index]
    p = pvalues.copy()
    p.index, p.columns = p.index.astype(str), p.columns.astype(str)
    spans = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and all(p.loc[order[k], order[j + 1]] >= alpha for k in range(i, j + 1)):
            j += 1
        if j > i:
            spans.append((i, j))
    maximal = [s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)]
    return [order[i:j + 1] for i, j in maximal]


def cd_diagram(
    mean_ranks: pd.Series,
    pvalues: pd.DataFrame,
    *,
    cd: float | None = None,
    alpha: float = 0.05,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Critical-difference diagram (Demšar 2006, Fig. 1): average ranks on an axis (best, rank 1, on the
    left); each method is a marker on the axis joined by an elbow line to its label, the better half on
    the left and the rest on the right, each label on its own row so tied methods never overlap; methods
    whose post-hoc p-values are all ≥ ``alpha`` (:func:`cliques`) are joined by a thick bar, each bar on
    its own row; the Nemenyi critical difference ``cd`` is drawn above the axis. Markers, lines and
    labels have the trainers' colours (:func:`trainer_colour`)."""
    check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    ranks = mean_ranks.sort_values(kind="stable")
    names = [str(m) for m in ranks.index]
    k = len(names)
    if k < 2:
        raise ConfigError("mean_ranks", list(names), "average ranks of at least 2 methods")
    bars = cliques(ranks, pvalues, alpha)
    half = math.ceil(k / 2)
    rows = max(half, k - half)
    if ax is None:
        longest = max(len(n) for n in names) + 7
        ax = new_axes((max(7.0, 4.0 + 2 * 0.075 * longest), 1.6 + 0.32 * (rows + len(bars))))
    lo, hi = 1, max(k, math.ceil(float(ranks.max())))
    ax.set_xlim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    ax.hlines(0, lo, hi, color="k", linewidth=1.0)
    for r in range(lo, hi + 1):
        ax.vlines(r, 0, 0.12, color="k", linewidth=1.0)
        ax.text(r, 0.2, str(r), ha="center", va="bottom", fontsize="small")
    bar_y = [-0.35 - 0.3 * i for i in range(len(bars))]
    for y, members in zip(bar_y, bars):
        xs = [float(ranks[m]) for m in ranks.index if str(m) in members]
        ax.hlines(y, min(xs) - 0.03, max(xs) + 0.03, color="k", linewidth=3.5)
    first = (bar_y[-1] if bar_y else 0.0) - 0.45
    for i, (method, rank) in enumerate(ranks.items()):
        left = i < half
        row = i if left else k - 1 - i
        y = first - 0.42 * row
        colour = trainer_colour(method)
        end = lo - 0.04 * (hi - lo) if left else hi + 0.04 * (hi - lo)
        ax.plot([rank, rank, end], [0, y, y], color=colour, linewidth=1.3, solid_joinstyle="miter")
        ax.plot([rank], [0], "o", color=colour, markersize=5, zorder=3)
        text = f"{method} ({rank:.2f})" if left else f"({rank:.2f}) {method}"
        ax.text(end, y, text, ha="right" if left else "left", va="center", color=colour, fontsize="small")
    top = 0.65
    if cd is not None:
        check_number("cd", cd, low=0)
        ax.plot([lo, lo + cd], [0.75] * 2, color="k", linewidth=1.5, marker="|", markersize=8)
        ax.text(lo + cd / 2, 0.82, f"CD = {cd:.3g}", ha="center", va="bottom", fontsize="small")
        top = 1.2
    ax.set_ylim(first - 0.42 * (rows - 1) - 0.3, top)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


# --------------------------------------------------------------------------------------- curvature
def expand_records(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Callback rows as a flat frame: a list value ``v`` becomes columns ``v[0]``, ``v[1]``, …; a mapping
    value ``g`` becomes ``g.<key>`` columns (e.g. the per-layer ``grad_norms`` of the curvature callback)."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    out = {}
    for col in frame.columns:
        values = frame[col]
        sample = next((v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))), None)
        if isinstance(sample, (list, tuple)):
            width = max(len(v) for v in values if isinstance(v, (list, tuple)))
            for j in range(width):
                out[f"{col}[{j}]"] = [v[j] if isinstance(v, (list, tuple)) and j < len(v) else np.nan for v in values]
        elif isinstance(sample, Mapping):
            keys = list(dict.fromkeys(k for v in values if isinstance(v, Mapping) for k in v))
            for key in keys:
                out[f"{col}.{key}"] = [v.get(key, np.nan) if isinstance(v, Mapping) else np.nan for v in values]
        else:
            out[col] = values.to_numpy()
    return pd.DataFrame(out, index=frame.index)


def records_panel(
    records: Mapping[str, pd.DataFrame | Sequence[Mapping[str, Any]]],
    *,
    x: str = "step",
    columns: Mapping[str, Sequence[str]] | None = None,
    lr: float | None = None,
    momentum: float = 0.0,
    stability_records: Sequence[str] = ("hessian", "sharpness"),
    log_y: Sequence[str] = (),
    title: str | None = None,
) -> Figure:
    """A stacked panel of what callbacks logged in one run (``RunResult.records``), e.g. the dynamics panel
    of Lavín Pallero (2021): Γ(t), losses, accuracy, top Hessian eigenvalues, NTK eigenvalue.

    One subplot per record name (in the given order), plotting ``columns[name]`` (default: every numeric
    column of :func:`expand_records` except ``x``, ``step`` and ``epoch``) against ``x``. On the subplots
    of ``stability_records`` the stability limit of gradient descent, 2(1 + β)/lr (β = heavy-ball
    ``momentum``), is drawn when ``lr`` is given. Record names in ``log_y`` get a logarithmic y axis.
    """
    names = list(records)
    if not names:
        raise ConfigError("records", {}, "at least one record name with rows")
    if lr is not None:
        check_number("lr", lr, low=0, low_open=True)
    panels = []
    for name in names:
        frame = expand_records(records[name])
        _require(frame, (x,), f"records[{name!r}]")
        wanted = list(columns[name]) if columns and name in columns else [
            c for c in frame.columns
            if c not in (x, "step", "epoch", "run_id") and pd.api.types.is_numeric_dtype(frame[c])
        ]
        _require(frame, wanted, f"columns[{name!r}]")
        limit = 2 * (1 + momentum) / lr if lr is not None and name in stability_records else None
        panels.append((name, frame, wanted, limit, name in log_y))
    return _panel(panels, x, title)


def curvature_panel(
    rows: pd.DataFrame | Sequence[Mapping[str, Any]], *, x: str = "step", title: str | None = None
) -> Figure:
    """The rows of ``trainlab.diagnostics.CurvatureCallback`` (record ``"curvature"``) as stacked plots:
    objective ``loss``; top Hessian ``eigenvalues`` with the logged stability ``limit`` 2(1 + β)/lr
    (dashed); ``ratio`` = sharpness / limit with the line 1; NTK ``ntk`` eigenvalues and the Hessian
    ``trace`` (log scale); per-layer ``grad_norms`` (log scale). Fields that were not logged are skipped."""
    frame = expand_records(rows)
    _require(frame, (x,), "rows")
    groups = [("loss", ["loss"], False), ("Hessian eigenvalues", _prefixed(frame, "eigenvalues["), False),
              ("sharpness / limit", ["ratio"], False), ("NTK eigenvalues", _prefixed(frame, "ntk["), True),
              ("Hessian trace", ["trace"], False), ("gradient norms", _prefixed(frame, "grad_norms."), True)]
    panels = []
    for name, cols, log in groups:
        cols = [c for c in cols if c in frame.columns]
        if not cols:
            continue
        limit: Any = None
        if name == "Hessian eigenvalues" and "limit" in frame.columns:
            limit = frame["limit"]
        elif name == "sharpness / limit":
            limit = 1.0
        panels.append((name, frame, cols, limit, log))
    if not panels:
        allowed = "curvature rows with loss, eigenvalues, ratio, ntk, trace or grad_norms"
        raise ConfigError("rows", list(frame.columns), allowed)
    return _panel(panels, x, title)


def _prefixed(frame: pd.DataFrame, prefix: str) -> list[str]:
    return [c for c in frame.columns if c.startswith(prefix)]


def _panel(panels: list[tuple[str, pd.DataFrame, list[str], Any, bool]], x: str, title: str | None) -> Figure:
    fig = Figure(figsize=(7.0, 1.9 * len(panels) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True, squeeze=True))
    for ax, (name, frame, cols, limit, log) in zip(axes, panels):
        for col in cols:
            ax.plot(frame[x], frame[col].astype(float), label=col, linewidth=1.0)
        if isinstance(limit, pd.Series):
            ax.plot(frame[x], limit.astype(float), "k--", linewidth=1.0, label="2(1+β)/lr")
        elif limit is not None:
            ax.axhline(limit, color="k", linestyle="--", linewidth=1.0,
                       label="1" if name == "sharpness / limit" else f"2(1+β)/lr = {limit:.3g}")
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if len(cols) > 1 or limit is not None:
            ax.legend(fontsize="x-small", loc="best", ncols=2 if len(cols) > 4 else 1)
    axes[-1].set_xlabel(x)
    if title:
        fig.suptitle(title)
    return fig


def diagnostic_curves(
    frame: pd.DataFrame,
    *,
    y: str,
    x: str = "step",
    by: str = "cell",
    limit: str | None = None,
    log_y: bool = False,
    ylabel: str | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """One line per ``by`` value (a grid cell): the mean of ``y`` over its runs against ``x``, with a band from
    the runs' minimum to maximum; ``limit`` (a column, e.g. the stability limit 2(1+β)/lr of each row) is
    drawn dashed in the line's colour, labelled once. Rows with a non-finite ``y`` are left out."""
    _require(frame, [x, y, by] + ([limit] if limit else []), "frame")
    if ax is None:
        ax = new_axes((7.0, 3.6))
    data = frame[[by, x, y] + ([limit] if limit else [])].copy()
    data[y] = pd.to_numeric(data[y], errors="coerce")
    data = data[np.isfinite(data[y])]
    drawn_limit = False
    for index, (name, part) in enumerate(data.groupby(by, sort=True)):
        colour = f"C{index % 10}"
        stats = part.groupby(x)[y].agg(["mean", "min", "max"]).sort_index()
        ax.plot(stats.index, stats["mean"], color=colour, linewidth=1.2, label=str(name))
        if (stats["max"] > stats["min"]).any():
            ax.fill_between(stats.index, stats["min"], stats["max"], color=colour, alpha=0.15, linewidth=0)
        if limit:
            line = pd.to_numeric(part[limit], errors="coerce").groupby(part[x]).mean().sort_index()
            line = line[np.isfinite(line)]
            if len(line):
                ax.plot(line.index, line.to_numpy(), color=colour, linestyle="--", linewidth=1.0,
                        label=None if drawn_limit else "stability limit 2(1+β)/lr (dashed)")
                drawn_limit = True
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(axis_label(x) if x != "step" else "optimizer step")
    ax.set_ylabel(ylabel or y)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", loc="best")
    if title:
        ax.set_title(title, fontsize="medium")
    return ax
