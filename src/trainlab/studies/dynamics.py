"""Dynamic-loss studies (Ruiz-García et al. 2021; Lavín Pallero 2021): the dynamics panel of one long run,
the Hessian threshold at the onset of instability against 1/lr (many (A, T) simulations per learning rate, mean
with a 95 % confidence interval, as thesis 002's figs. 4.4 and 4.8), and the (A, T) contour figures of a swept
experiment.

The panel (Lavín Pallero 2021, figs. 3.5, 4.3, 4.7) stacks Γ(t), the dynamic loss F(t), the ordinary loss L(t),
L(t) − L(t−1), the training accuracy, the top-3 Hessian eigenvalues of F with the 2/lr line (the edge of
stability, Cohen et al. 2021) and the largest NTK eigenvalue. :class:`DynamicsCallback` logs the first five;
the curvature rows come from :class:`trainlab.diagnostics.CurvatureCallback`.
"""
from __future__ import annotations

import dataclasses
import math
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from scipy import stats

from trainlab.core.config import ConfigError, check_number
from trainlab.core.seeding import derive_seed
from trainlab.diagnostics import CurvatureCallback
from trainlab.core.budget import Budget
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


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t confidence interval ``x̄ ± t_{(1+c)/2, n−1} · s/√n`` of the finite ``values``
    (s the sample standard deviation); NaN bounds with fewer than two values.

    The t-interval is exact for normal data and, by the central limit theorem, close to its nominal coverage for
    the roughly 40 independent simulations per learning rate of thesis 002, whose thresholds are bounded and
    unimodal; a percentile bootstrap would be a second approximation of the same sampling distribution and
    under-covers at such sizes (Efron & Tibshirani 1993, chs. 13–14), so the classical interval is the one stated."""
    check_number("confidence", confidence, low=0, high=1, low_open=True, high_open=True)
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if len(data) == 0:
        return math.nan, math.nan, math.nan
    mean = float(data.mean())
    if len(data) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, len(data) - 1)) * float(data.std(ddof=1)) / math.sqrt(len(data))
    return mean, mean - half, mean + half


@dataclasses.dataclass(frozen=True)
class ThresholdStudy:
    """``simulations`` long runs per learning rate of ``lrs`` (thesis 002: 40 of 70,000 steps, width 100).

    Simulation 0 uses ``seed`` itself (the run ``trainlab dynamic-loss long-run --seed SEED`` makes), simulation
    i > 0 the seed ``derive_seed(seed, "threshold", i)``, each with an (A, T) pair drawn uniformly from
    ``amplitudes`` × ``periods`` by a generator seeded from ``seed``; both are the same for every learning rate,
    so the learning rates are compared on the same simulations. ``workers`` processes run simulations at once
    (one torch thread each). ``rel_jump`` and ``skip`` define the onset (:func:`instability_onset`)."""

    lrs: tuple[float, ...]
    simulations: int = 40
    amplitudes: tuple[float, ...] = (70.0,)
    periods: tuple[float, ...] = (5000.0,)
    steps: int = 70000
    loss: str = "dynamic_ce"
    width: int = 100
    seed: int = 0
    every: int = 10
    curvature_every: int = 50
    rel_jump: float = 1e-2
    skip: int = 0
    workers: int = 1

    def __post_init__(self) -> None:
        if not self.lrs:
            raise ConfigError("lrs", list(self.lrs), "at least one learning rate")
        for lr in self.lrs:
            check_number("lr", lr, low=0, low_open=True)
        for name in ("simulations", "steps", "width", "every", "curvature_every", "workers"):
            check_number(name, getattr(self, name), low=1, integer=True)
        for name, low in (("amplitudes", 1.0), ("periods", 0.0)):
            values = getattr(self, name)
            if not values:
                raise ConfigError(name, list(values), "at least one value")
            for value in values:
                check_number(name[:-1], value, low=low, low_open=name == "periods")
        check_number("rel_jump", self.rel_jump, low=0, low_open=True)
        check_number("skip", self.skip, low=0, integer=True)

    def draws(self) -> list[tuple[int, float, float]]:
        """(seed, A, T) of each simulation."""
        pairs = [(a, t) for a in self.amplitudes for t in self.periods]
        rng = np.random.default_rng(derive_seed(self.seed, "threshold-AT"))
        picks = rng.integers(0, len(pairs), size=self.simulations)
        seeds = [self.seed] + [derive_seed(self.seed, "threshold", i) for i in range(1, self.simulations)]
        return [(seed, *pairs[int(k)]) for seed, k in zip(seeds, picks)]

    def spec(self, lr: float, seed: int, amplitude: float, period: float) -> RunSpec:
        """Full-batch GD on the spiral with the dynamic loss, as ``trainlab dynamic-loss long-run``."""
        return RunSpec(
            "spiral", "spiral-mlp", "gd", Budget(steps=self.steps), seed=seed, loss=self.loss,
            model_options={"width": self.width, "init": "standard"},
            trainer_options={"lr": lr, "eval_every": self.steps},
            loss_options={"amplitude": amplitude, "period": period, "total_steps": self.steps},
        )


def _simulate(job: tuple[ThresholdStudy, int, float, int, float, float], data_dir: str | None = None) -> dict[str, Any]:
    study, index, lr, seed, amplitude, period = job
    callbacks = [DynamicsCallback(study.every), CurvatureCallback(every=study.curvature_every, top=1)]
    result = execute(study.spec(lr, seed, amplitude, period), data_dir=data_dir, callbacks=callbacks)
    onset = instability_onset(result, rel_jump=study.rel_jump, skip=study.skip) if result.status == "ok" else None
    return {"lr": lr, "inverse_lr": 1 / lr, "two_over_lr": 2 / lr, "simulation": index, "seed": seed,
            "amplitude": amplitude, "period": period, "status": result.status,
            "step": onset[0] if onset else math.nan, "threshold": onset[1] if onset else math.nan}


def threshold_study(study: ThresholdStudy, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Run every simulation of ``study``; one row per (lr, simulation) with ``amplitude``, ``period``, ``seed``,
    the run's ``status``, the onset ``step`` and the ``threshold`` (λ_max at the onset; NaN when the run never
    became unstable, see :func:`instability_onset`)."""
    jobs = [(study, i, lr, seed, a, t) for lr in study.lrs for i, (seed, a, t) in enumerate(study.draws())]
    where = None if data_dir is None else str(data_dir)
    if study.workers == 1:
        rows = [_simulate(job, where) for job in jobs]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(study.workers, mp_context=context, initializer=torch.set_num_threads,
                                 initargs=(1,)) as pool:
            rows = list(pool.map(_simulate, jobs, [where] * len(jobs)))
    return pd.DataFrame(rows)


def threshold_summary(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per learning rate: ``simulations``, ``unstable`` (those with an onset), the threshold's ``mean``, ``std``
    and :func:`t_interval` bounds ``ci_low``/``ci_high`` over the unstable simulations, ``two_over_lr`` and
    ``mean_over_limit`` = mean / (2/lr)."""
    rows = []
    for lr, part in table.groupby("lr", sort=True):
        values = part["threshold"].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        mean, low, high = t_interval(finite, confidence)
        rows.append({"lr": lr, "inverse_lr": 1 / lr, "simulations": len(part), "unstable": len(finite),
                     "mean": mean, "std": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
                     "ci_low": low, "ci_high": high, "two_over_lr": 2 / lr, "mean_over_limit": mean * lr / 2})
    return pd.DataFrame(rows)


def threshold_figure(table: pd.DataFrame, confidence: float = 0.95) -> Figure:
    """λ_max at the onset of instability against 1/lr: each simulation (dots), the mean over simulations with
    its ``confidence`` t-interval (error bars and band), and the line 2/lr."""
    summary = threshold_summary(table, confidence).sort_values("inverse_lr")
    fig = Figure(figsize=(5.4, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.plot(table["inverse_lr"], table["threshold"], ".", color="0.6", markersize=3, label="single simulations")
    low = (summary["mean"] - summary["ci_low"]).fillna(0)
    high = (summary["ci_high"] - summary["mean"]).fillna(0)
    ax.errorbar(summary["inverse_lr"], summary["mean"], yerr=[low, high], fmt="o", color="C0", capsize=3,
                label=f"mean, {confidence:.0%} CI (t)")
    if summary["ci_low"].notna().sum() >= 2:
        ax.fill_between(summary["inverse_lr"], summary["ci_low"], summary["ci_high"], color="C0", alpha=0.2)
    ax.plot(summary["inverse_lr"], 2 * summary["inverse_lr"], "k--", label="2/lr")
    ax.set_xlabel("1/lr")
    ax.set_ylabel("λmax threshold")
    ax.legend(fontsize="small")
    return fig


def with_end_metrics(runs: pd.DataFrame, histories: pd.DataFrame) -> pd.DataFrame:
    """``runs`` plus ``end_{train,val,test}_metric``: the metrics of each run's last history row (the model
    at the end of training, which the thesis reports, rather than the best-validation selection)."""
    last = histories.sort_values("epoch").groupby("run_id").tail(1).set_index("run_id")
    out = runs.copy()
    for split in ("train", "val", "test"):
        out[f"end_{split}_metric"] = out["run_id"].map(last[f"{split}_metric"])
    return out


AMPLITUDE, PERIOD = "loss_options.amplitude", "loss_options.period"
_SCHEDULE_COLUMNS = (AMPLITUDE, PERIOD, "loss_options.total_steps", "loss_options.stop_at")
_ALWAYS = ("loss", "model_options.width", "task_options.angle")
_SETTING_PREFIXES = ("task_options.", "model_options.", "loss_options.", "trainer_options.", "budget.")


def setting_columns(runs: pd.DataFrame) -> list[str]:
    """The columns that tell the settings of a dynamic-loss experiment apart: ``loss``, the network width and the
    spiral's angle (when present), and every other option column (task, model, loss, trainer, budget) that
    varies among the ok runs, except the schedule's A and T (and the stop step, which follows the budget)."""
    ok = runs[runs["status"] == "ok"]
    columns = [c for c in ok.columns if c == "loss" or (c.startswith(_SETTING_PREFIXES) and c not in _SCHEDULE_COLUMNS)]
    return [c for c in columns if c in _ALWAYS or ok[c].astype(str).nunique() > 1]


def _settings(runs: pd.DataFrame) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    ok = runs[runs["status"] == "ok"]
    columns = setting_columns(runs)
    keys = ok[columns].astype(str)
    out = []
    for _, part in ok.groupby([keys[c] for c in columns], sort=False):
        out.append(({c: part[c].iloc[0] for c in columns}, part))
    return sorted(out, key=lambda item: [str(v) if isinstance(v, str) else f"{float(v):020.6f}" for v in item[0].values()])


def _static_under_every_period(part: pd.DataFrame) -> pd.DataFrame:
    """``part`` with its A = 1 runs repeated under every T of the dynamic runs: the static loss is one result
    whatever T its file happened to give it."""
    static = part[part[AMPLITUDE] == 1.0]
    periods = sorted(part.loc[part[AMPLITUDE] != 1.0, PERIOD].unique())
    if static.empty or not periods:
        return part
    copies = [static.assign(**{PERIOD: t}) for t in periods]
    return pd.concat([part[part[AMPLITUDE] != 1.0], *copies], ignore_index=True)


def levels_table(runs: pd.DataFrame, *, value: str = "end") -> pd.DataFrame:
    """One row per setting (:func:`setting_columns`, e.g. loss × width × angle) of a dynamic-loss experiment: the
    static loss (A = 1) and the best dynamic cell (A > 1; highest mean train accuracy over seeds, ties broken by
    test), train and test accuracy as mean and seed sd, plus the highest mean test accuracy of any dynamic cell
    and its (A, T). ``value="end"`` reads the last history row (:func:`with_end_metrics`, what the thesis
    reports), ``"final"`` the best-validation selection."""
    for column in (AMPLITUDE, PERIOD, f"{value}_train_metric", f"{value}_test_metric"):
        if column not in runs.columns:
            raise ConfigError("runs", column, f"a runs frame of a dynamic-loss sweep with {value}_* metric columns")
    train, test = f"{value}_train_metric", f"{value}_test_metric"
    rows = []
    for setting, part in _settings(runs):
        cells = part.groupby([AMPLITUDE, PERIOD])[[train, test]].agg(["mean", "std", "count"])
        row: dict[str, Any] = dict(setting)
        static = part[part[AMPLITUDE] == 1.0]
        row.update(static_train=static[train].mean(), static_train_sd=static[train].std(),
                   static_test=static[test].mean(), static_test_sd=static[test].std(), static_seeds=len(static))
        dynamic = cells[cells.index.get_level_values(0) != 1.0]
        if dynamic.empty:
            rows.append(row)
            continue
        order = dynamic.sort_values([(train, "mean"), (test, "mean")], ascending=False)
        (a, t), best = order.index[0], order.iloc[0]
        row.update(best_A=a, best_T=t, dynamic_train=best[(train, "mean")], dynamic_train_sd=best[(train, "std")],
                   dynamic_test=best[(test, "mean")], dynamic_test_sd=best[(test, "std")],
                   dynamic_seeds=int(best[(train, "count")]), dynamic_cells=len(dynamic))
        (a, t) = dynamic[(test, "mean")].idxmax()
        row.update(top_test=dynamic[(test, "mean")].max(), top_test_A=a, top_test_T=t)
        rows.append(row)
    return pd.DataFrame(rows)


def levels_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`levels_table` as text cells: ``train / test`` as ``mean ± sd`` over seeds, one column each for
    the static loss, the best dynamic cell and the dynamic cell with the highest test accuracy."""

    def pair(row: pd.Series, prefix: str) -> str:
        if not math.isfinite(row.get(f"{prefix}_train", math.nan)):
            return "–"
        return (f"{row[f'{prefix}_train']:.3f} ± {row[f'{prefix}_train_sd']:.3f} / "
                f"{row[f'{prefix}_test']:.3f} ± {row[f'{prefix}_test_sd']:.3f}")

    settings = [c for c in table.columns if c == "loss" or c.startswith(_SETTING_PREFIXES)]
    out = pd.DataFrame({_short_name(c): table[c].map(lambda v, c=c: _value(c, v)) for c in settings})
    out["static train / test"] = [pair(r, "static") for _, r in table.iterrows()]
    out["best dynamic (A, T)"] = [f"({r['best_A']:g}, {r['best_T']:g})" if "best_A" in r and math.isfinite(r["best_A"])
                                  else "–" for _, r in table.iterrows()]
    out["dynamic train / test"] = [pair(r, "dynamic") for _, r in table.iterrows()]
    out["highest test (A, T)"] = [f"{r['top_test']:.3f} ({r['top_test_A']:g}, {r['top_test_T']:g})"
                                  if "top_test" in r and math.isfinite(r["top_test"]) else "–" for _, r in table.iterrows()]
    return out


def _short_name(column: str) -> str:
    return {"task_options.angle": "angle (π)", "model_options.width": "width"}.get(column, column.split(".")[-1])


def _value(column: str, value: Any) -> str:
    return f"{float(value):g}" if column == "task_options.angle" else str(value)


def contour_figure(runs: pd.DataFrame, *, value: str = "end", title: str | None = None) -> Figure:
    """Train and test accuracy (mean over seeds) over the (T, A) grid, one row of panels per setting
    (:func:`setting_columns`: loss, width, spiral angle, ... where they vary), from ``ResultStore.runs_frame()``
    of a dynamic-loss experiment (with :func:`with_end_metrics` columns when ``value="end"``; ``value="final"``
    uses the best-validation selection); A = 1 (static) is marked and drawn under every T."""
    needed = ("model_options.width", PERIOD, AMPLITUDE)
    for column in needed:
        if column not in runs.columns:
            raise ConfigError("runs", column, "a runs frame of a spiral dynamic-loss sweep (" + ", ".join(needed) + ")")
    settings = _settings(runs)
    fig = Figure(figsize=(11.0, 4.2 * len(settings)), layout="constrained")
    axes = fig.subplots(len(settings), 2, squeeze=False)
    for row, (setting, part) in zip(axes, settings):
        label = ", ".join(_short(c, v) for c, v in setting.items() if c != "model_options.width")
        width = f"width {part['model_options.width'].iloc[0]}"
        for ax, split in zip(row, ("train", "test")):
            contour(_static_under_every_period(part), PERIOD, AMPLITUDE, f"{value}_{split}_metric", ax=ax,
                    vmin=0.3, vmax=1.0, log_x=True, title=f"{width}{', ' + label if label else ''}: {split} accuracy")
    if title:
        fig.suptitle(title)
    return fig


def _short(column: str, value: Any) -> str:
    if column == "loss":
        return str(value)
    if column == "task_options.angle":
        return f"angle {float(value):g}π"
    return f"{column.split('.')[-1]} {value}"
