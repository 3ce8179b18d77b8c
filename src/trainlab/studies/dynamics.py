"""Dynamic-loss studies (Ruiz-García et al. 2021; Lavín Pallero 2021): the dynamics panel of one long run,
the Hessian threshold at the onset of instability against 1/lr, and the (A, T) contour figures of a swept experiment.

The panel (Lavín Pallero 2021, figs. 3.5, 4.3, 4.7) stacks Γ(t), the dynamic loss F(t), the ordinary loss L(t),
L(t) − L(t−1), the training accuracy, the top-3 Hessian eigenvalues of F with the 2/lr line (the edge of
stability, Cohen et al. 2021) and the largest NTK eigenvalue. :class:`DynamicsCallback` logs the first five;
the curvature rows come from :class:`trainlab.diagnostics.CurvatureCallback`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from trainlab.core.config import ConfigError, check_number
from trainlab.diagnostics import CurvatureCallback
from trainlab.experiments.spec import RunSpec, execute
from trainlab.losses import DynamicLoss
from trainlab.report import contour, expand_records, records_panel
from trainlab.trainers.base import predict, task_metric
from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.trainers.result import RunResult


class DynamicsCallback(Callback):
    """Record ``"dynamics"``: step, Γ(t) (``gamma``), F(t) (``dynamic_loss``, the loss being minimised at
    step t), L(t) (``loss``, its static version), L(t) − L(t−1) (``loss_change``) and the training
    metric, on the whole training split, every ``every`` steps (L is evaluated at every step)."""

    def __init__(self, every: int = 1):
        self.every = check_number("every", every, low=1, integer=True)
        self.previous = math.nan

    def on_fit_start(self, state: TrainState) -> None:
        self.previous = math.nan
        self._measure(state)

    def on_step_end(self, state: TrainState) -> None:
        self._measure(state)

    def _measure(self, state: TrainState) -> None:
        split = state.task.train
        outputs = predict(state.model, split.x)
        loss = state.loss.static()(outputs, split.y, state.step).item()
        change, self.previous = loss - self.previous, loss
        if state.step % self.every:
            return
        row: dict[str, Any] = {
            "dynamic_loss": state.loss(outputs, split.y, state.step).item(),
            "loss": loss,
            "loss_change": change,
            state.task.metric: task_metric(state.task)(outputs, split.y),
        }
        if isinstance(state.loss, DynamicLoss):
            row["gamma"] = state.loss.schedule.factors(state.step, outputs.shape[-1]).tolist()
        state.log("dynamics", **row)


def long_run(
    spec: RunSpec,
    *,
    every: int = 10,
    curvature_every: int = 500,
    ntk_subset: int = 50,
    data_dir: str | Path | None = None,
) -> RunResult:
    """One run of ``spec`` with the dynamics (every ``every`` steps) and curvature (top-3 Hessian and
    largest NTK eigenvalue on ``ntk_subset`` training points, every ``curvature_every`` steps) records."""
    callbacks = [DynamicsCallback(every), CurvatureCallback(every=curvature_every, top=3, ntk=1, ntk_subset=ntk_subset)]
    return execute(spec, data_dir=data_dir, callbacks=callbacks)


def dynamics_panel(result: RunResult, title: str | None = None) -> Figure:
    """The stacked dynamics panel of a :func:`long_run` result (drawn with ``trainlab.report.records_panel``)."""
    for name in ("dynamics", "curvature"):
        if not result.records.get(name):
            raise ConfigError(f"result.records.{name}", None, "rows logged by long_run()")
    dynamics = expand_records(result.records["dynamics"])
    curvature = expand_records(result.records["curvature"])
    metric = next(c for c in ("accuracy", "balanced_accuracy", "r2") if c in dynamics.columns)
    gammas = [c for c in dynamics.columns if c.startswith("gamma[")]
    records = {"Γ(t)": dynamics, "F(t)": dynamics, "L(t)": dynamics, "L(t)−L(t−1)": dynamics, metric: dynamics,
               "Hessian top-3": curvature, "NTK λmax": curvature}
    columns = {"Γ(t)": gammas, "F(t)": ["dynamic_loss"], "L(t)": ["loss"], "L(t)−L(t−1)": ["loss_change"],
               metric: [metric], "Hessian top-3": [c for c in curvature.columns if c.startswith("eigenvalues[")],
               "NTK λmax": ["ntk[0]"]}
    if not gammas:
        records.pop("Γ(t)")
    lr = float(result.config.get("trainer_options", {}).get("lr", math.nan))
    return records_panel(
        records, columns=columns, lr=lr if lr > 0 else None, stability_records=("Hessian top-3",), title=title
    )


def instability_onset(result: RunResult, *, rel_jump: float = 1e-2, skip: int = 0) -> tuple[int, float] | None:
    """(step, λ_max) at the first instability of a :func:`long_run` result, or ``None`` if there is none.

    The onset is the first step after ``skip`` where the ordinary loss jumps up in one step,
    L(t) − L(t−1) > ``rel_jump``·L(t−1) (the start of the first bifurcation,
    Lavín Pallero 2021 §3.6); λ_max is the top Hessian eigenvalue of the last curvature measurement at or before
    that step (the threshold λ_max^th of Lavín Pallero 2021), so measure curvature densely (``curvature_every``)
    for a sharp threshold. The default 1 % is well above the smooth drift of L while Γ changes (of order 1/T per
    step) and below the jumps of a bifurcation; 1e-3 fired on ordinary in-period rises of L.
    """
    check_number("rel_jump", rel_jump, low=0)
    rows = result.records.get("dynamics", [])
    curvature = [(r["step"], r["eigenvalues"][0]) for r in result.records.get("curvature", []) if r.get("eigenvalues")]
    for row in rows:
        if row["step"] <= skip or not math.isfinite(row["loss_change"]):
            continue
        previous = row["loss"] - row["loss_change"]
        if row["loss_change"] > rel_jump * abs(previous):
            before = [value for step, value in curvature if step <= row["step"]]
            if before:
                return int(row["step"]), float(before[-1])
    return None


def threshold_table(results: Sequence[RunResult], **options: Any) -> pd.DataFrame:
    """One row per run: ``lr``, ``inverse_lr``, onset ``step`` and ``threshold`` (λ_max at the onset; NaN
    when the run never became unstable), for the λ_max^th-against-1/lr plot of Lavín
    Pallero 2021 (figs. 3.6, 4.4)."""
    rows = []
    for result in results:
        lr = float(result.config["trainer_options"]["lr"])
        onset = instability_onset(result, **options)
        rows.append({"lr": lr, "inverse_lr": 1 / lr, "step": onset[0] if onset else math.nan,
                     "threshold": onset[1] if onset else math.nan, "two_over_lr": 2 / lr})
    return pd.DataFrame(rows)


def threshold_figure(table: pd.DataFrame) -> Figure:
    """λ_max at the onset of instability against 1/lr, mean ± std over runs, with the line 2/lr."""
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.subplots()
    stats = table.groupby("inverse_lr")["threshold"].agg(["mean", "std"]).reset_index()
    ax.errorbar(stats["inverse_lr"], stats["mean"], yerr=stats["std"].fillna(0), fmt="o", label="λmax at onset")
    ax.plot(stats["inverse_lr"], 2 * stats["inverse_lr"], "k--", label="2/lr")
    ax.set_xlabel("1/lr")
    ax.set_ylabel("λmax threshold")
    ax.legend()
    return fig


def with_end_metrics(runs: pd.DataFrame, histories: pd.DataFrame) -> pd.DataFrame:
    """``runs`` plus ``end_{train,val,test}_metric``: the metrics of each run's last history row (the model
    at the end of training, which the thesis reports, rather than the best-validation selection)."""
    last = histories.sort_values("epoch").groupby("run_id").tail(1).set_index("run_id")
    out = runs.copy()
    for split in ("train", "val", "test"):
        out[f"end_{split}_metric"] = out["run_id"].map(last[f"{split}_metric"])
    return out


def contour_figure(runs: pd.DataFrame, *, value: str = "end", title: str | None = None) -> Figure:
    """Train and test accuracy (mean over seeds) over the (T, A) grid, one row of panels per width, from
    ``ResultStore.runs_frame()`` of a dynamic-loss experiment (with :func:`with_end_metrics` columns when
    ``value="end"``; ``value="final"`` uses the best-validation selection); A = 1 (static) is marked."""
    needed = ("model_options.width", "loss_options.period", "loss_options.amplitude")
    for column in needed:
        if column not in runs.columns:
            raise ConfigError("runs", column, "a runs frame of a spiral dynamic-loss sweep (" + ", ".join(needed) + ")")
    ok = runs[runs["status"] == "ok"]
    widths = sorted(ok["model_options.width"].unique())
    fig = Figure(figsize=(11.0, 4.2 * len(widths)), layout="constrained")
    axes = fig.subplots(len(widths), 2, squeeze=False)
    for row, width in zip(axes, widths):
        part = ok[ok["model_options.width"] == width]
        for ax, split in zip(row, ("train", "test")):
            contour(part, "loss_options.period", "loss_options.amplitude", f"{value}_{split}_metric", ax=ax,
                    vmin=0.3, vmax=1.0, log_x=True, title=f"width {width}: {split} accuracy")
    if title:
        fig.suptitle(title)
    return fig
