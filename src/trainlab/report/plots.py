"""Figures of a report: learning curves with seed bands, critical-difference diagrams, (A, T) contour
plots of dynamic-loss sweeps and curvature panels of callback records.

Every function draws on a matplotlib ``Axes`` (a new ``Figure`` when none is given; pyplot's global
state is never touched, so this works headless with the Agg backend) and returns it;
:func:`save_figure` writes PNG and SVG files with deterministic names.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
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


# -------------------------------------------------------------------------------------- learning curves
def plot_learning_curves(
    curves: pd.DataFrame,
    *,
    ax: Axes | None = None,
    x: str = "epoch",
    y: str = "val_metric",
    by: Sequence[str] = ("model", "label"),
    log_x: bool = False,
    title: str | None = None,
) -> Axes:
    """One line per group of ``curves`` (the output of :func:`trainlab.report.tables.learning_curves`):
    the mean over seeds with a ±1 std band."""
    _require(curves, (*by, "x", "mean", "std"), "curves")
    if ax is None:
        ax = new_axes((6.5, 4.2))
    groups = list(curves.groupby(list(by), sort=True))
    if len(groups) > 10:  # the default cycle repeats after 10 colours
        ax.set_prop_cycle(color=[colormaps["tab20"](i % 20) for i in range(len(groups))])
    names = [" / ".join(map(str, key if isinstance(key, tuple) else (key,))) for key, _ in groups]
    outside = len(names) > 6 or max(map(len, names), default=0) > 40
    for name, (_, part) in zip(names, groups):
        part = part.sort_values("x")
        label = textwrap.fill(name, 90, subsequent_indent="  ") if outside else name
        line, = ax.plot(part["x"], part["mean"], label=label, linewidth=1.4)
        std = part["std"].fillna(0.0)
        ax.fill_between(part["x"], part["mean"] - std, part["mean"] + std, color=line.get_color(), alpha=0.2)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if outside:  # many or long names: a figure legend below the axes; the figure grows to hold it
        fig = ax.figure
        handles, labels = ax.get_legend_handles_labels()
        width, height = fig.get_size_inches()
        fig.set_size_inches(width, height + 0.3 + 0.16 * sum(label.count("\n") + 1 for label in labels))
        fig.legend(handles, labels, loc="outside lower center", fontsize="x-small")
    else:
        ax.legend(fontsize="small", loc="best")
    return ax


# ------------------------------------------------------------------------------ critical difference
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
    left); methods whose post-hoc p-value is ≥ ``alpha`` are joined by a bar; a bar of length ``cd`` (the
    Nemenyi critical difference) is drawn above the axis. Drawn by
    ``scikit_posthocs.critical_difference_diagram``."""
    import scikit_posthocs as sp

    check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    if ax is None:  # room for the longest label on each side of a rank axis at least 3.5 in wide
        longest = max((len(str(label)) for label in mean_ranks.index), default=0) + 7
        ax = new_axes((max(7.0, 3.5 + 2 * 0.08 * longest), 1.4 + 0.35 * len(mean_ranks)))
    sp.critical_difference_diagram(
        mean_ranks, pvalues, alpha=alpha, ax=ax,
        label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}",
    )
    if cd is not None:
        check_number("cd", cd, low=0)
        bottom, _ = ax.get_ylim()
        top = 0.45 * (0 - bottom)
        start = float(mean_ranks.min())
        ax.set_ylim(bottom, top)
        ax.plot([start, start + cd], [0.75 * top] * 2, color="k", linewidth=1.5, marker="|", markersize=8)
        ax.text(start + cd / 2, 0.8 * top, f"CD = {cd:.3g}", ha="center", va="bottom", fontsize="small")
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
    of thesis 002: Γ(t), losses, accuracy, top Hessian eigenvalues, NTK eigenvalue.

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
