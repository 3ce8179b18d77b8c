"""The Markdown report of an experiment: :func:`build_report` from the store's frames, and
:func:`write_report` that opens an experiment folder's store and calls it.

Layout of ``out`` (default ``<experiment_dir>/report``): ``report.md``, ``report.html`` (the same report
in one self-contained file: figures embedded, sortable tables; :mod:`trainlab.report.html`),
``tables/*.{md,csv,tex}``, ``figures/*.{png,svg}``; every name is derived from task/model/label names, so
reruns overwrite.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.experiments.store import ResultStore
from trainlab.report import html, plots, stats, tables
from trainlab.report.cells import config_columns, name_cells

CURVE_X = ("epoch", "sample_evals", "seconds")
MIN_BLOCKS = 3
UNFINISHED = ("pending", "running")
SWEEP_AXES = ("loss_options.period", "loss_options.amplitude")
Records = Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]]
DIAGNOSTICS = ("curvature", "sharpness", "ntk", "gradient_norm")
"""Record names of the ``diagnostics`` table (:mod:`trainlab.diagnostics.config`)."""


def _slug(text: object) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(text)).strip("_") or "x"


class _Report:
    """Accumulates Markdown text, tables and figures under one output folder. Two texts are kept: the
    Markdown of ``report.md`` (with links to the table and figure files) and the Markdown that
    ``report.html`` is rendered from (the same, without links to files, so the HTML file stands alone)."""

    def __init__(self, out: Path, formats: Sequence[str], table_formats: Sequence[str]):
        self.out, self.formats, self.table_formats = out, tuple(formats), tuple(table_formats)
        self.lines: list[str] = []
        self.html_lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)
        self.html_lines.extend(lines)

    def table(self, frame: pd.DataFrame, name: str, caption: str) -> None:
        paths = tables.write_table(frame, self.out / "tables" / name, self.table_formats, caption=caption)
        links = " · ".join(f"[{p.suffix[1:]}]({p.relative_to(self.out).as_posix()})" for p in paths)
        text = tables.to_markdown(frame)
        self.lines.extend([text, f"*{caption}* ({links})" if links else f"*{caption}*", ""])
        self.html_lines.extend([text, f"*{caption}*", ""])

    def figure(self, fig: Any, name: str, caption: str) -> None:
        formats = self.formats if "png" in self.formats else (*self.formats, "png")
        paths = plots.save_figure(fig, self.out / "figures" / name, formats)
        png = next(p for p in paths if p.suffix == ".png")
        shown = [p for p in paths if p.suffix[1:] in self.formats]
        image = next((p for p in shown if p.suffix in (".png", ".svg")), None)
        if image is not None:
            self.lines.extend([f"![{caption}]({image.relative_to(self.out).as_posix()})", ""])
        others = " · ".join(f"[{p.suffix[1:]}]({p.relative_to(self.out).as_posix()})" for p in shown)
        self.lines.extend([f"*{caption}* ({others})", ""])
        self.html_lines.extend([f"![{caption}]({png.relative_to(self.out).as_posix()})", "", f"*{caption}*", ""])

    def write(self, title: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "report.md"
        path.write_text("\n".join(self.lines).rstrip() + "\n")
        html.write_html("\n".join(self.html_lines), self.out, title=title)
        return path


def build_report(
    runs: pd.DataFrame,
    history: pd.DataFrame,
    out: str | Path,
    *,
    records: Records | None = None,
    diagnostics: Mapping[str, pd.DataFrame] | None = None,
    value: str = "final_test_metric",
    higher_is_better: bool | None = None,
    alpha: float = 0.05,
    failed: str = "worst",
    target: float | Mapping[str, float] | None = None,
    quantile: float = 0.5,
    curve_y: str = "val_metric",
    curve_x: Sequence[str] = CURVE_X,
    formats: Sequence[str] = plots.FIGURE_FORMATS,
    table_formats: Sequence[str] = tables.TABLE_FORMATS,
    title: str = "Experiment report",
) -> Path:
    """Write the report of the runs in ``runs`` (one row per run, as ``ResultStore.runs_frame()``) and
    their per-epoch ``history`` (as ``history_frame()``) into ``out``; return the path of ``report.md``.

    Runs are grouped by their full configuration without the seed: :func:`trainlab.report.cells.name_cells`
    renames task, model and label to show the options that vary inside a task × model × label group (e.g.
    ``spiral-mlp(width=1000)``), and these names are used in every table, test and figure. A partly
    finished store works: pending/running runs are counted (per task and in the overview) and left out
    of the statistics.

    Sections: status counts; per task a summary table (mean ± std, median over ok seeds, counts, spending,
    ranks), Wilcoxon + Holm between trainer labels paired on (model, seed), time-to-target and learning
    curves against each ``curve_x``; across tasks (blocks = task × model, seed means) Friedman, Nemenyi
    and a critical-difference diagram, plus Wilcoxon + Holm; contour plots for (period, amplitude)
    sweeps; per task, the ``diagnostics`` records (record name → ``ResultStore.records_frame(name)``) of every
    grid cell against the step (mean over seeds, band: their range; the stability limit dashed); curvature panels
    of ``records`` (run_id → ``RunResult.records``); failed-run messages.
    ``higher_is_better`` defaults to False when ``value`` names a loss. ``failed`` is the policy of
    :func:`trainlab.report.stats.paired_table` ("worst" or "exclude").

    Each task section also has the configuration of every trainer label (options as rows, labels as
    columns), learning curves in panels of at most six lines per model, and ``value`` against every
    swept numeric option. No significance test is run on fewer than 3 blocks (the report says why).
    ``report.html`` (:func:`trainlab.report.html.write_html`) is written beside ``report.md``.
    """
    check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    check_choice("failed", failed, stats.FAILED_POLICIES)
    for x in curve_x:
        check_choice("curve_x", x, ("epoch", "evals", "sample_evals", "steps", "seconds"))
    if value not in runs.columns:
        raise ConfigError("value", value, "a column of the runs frame: " + ", ".join(map(str, runs.columns)))
    higher = ("loss" not in value) if higher_is_better is None else higher_is_better
    out = Path(out)
    report = _Report(out, formats, table_formats)
    report.add(f"# {title}", "")
    _overview(report, runs, value, higher, failed)
    if runs.empty:
        return report.write(title)
    raw, runs = runs, name_cells(runs)
    if isinstance(target, Mapping):  # targets given for a base task name hold for each of its named cells
        bases = dict(zip(runs["task"].astype(str), raw["task"].astype(str)))
        target = {**{n: target[b] for n, b in bases.items() if b in target}, **target}
    summary = tables.summary_table(runs, value=value, higher_is_better=higher)
    ttt = None
    if not history.empty and curve_y in history.columns:
        ttt = tables.time_to_target(history, runs, target=target, quantile=quantile, metric=curve_y,
                                    higher_is_better="loss" not in curve_y)
    for task in sorted(runs["task"].dropna().unique(), key=str):
        _task_section(report, runs, history, summary, ttt, str(task), value, higher, alpha, failed, curve_y, curve_x)
        _parameters(report, raw[(runs["task"] == task).to_numpy()], str(task), value)
    _across_tasks(report, runs, value, higher, alpha, failed)
    _sweeps(report, raw)
    if diagnostics and any(len(f) for f in diagnostics.values()):
        _diagnostics(report, runs, diagnostics)
    if records:
        _curvature(report, runs, records)
    _selection_warnings(report, runs)
    _failures(report, runs)
    return report.write(title)


def _overview(report: _Report, runs: pd.DataFrame, value: str, higher: bool, failed: str) -> None:
    counts = runs["status"].value_counts() if "status" in runs else pd.Series(dtype=int)
    experiments = sorted(map(str, runs["experiment"].dropna().unique())) if "experiment" in runs else []
    metrics = sorted(map(str, runs["metric"].dropna().unique())) if "metric" in runs else []
    unfinished = int(counts.reindex(list(UNFINISHED)).fillna(0).sum())
    report.add(
        f"- experiment: {', '.join(experiments) or '–'}",
        f"- runs: {len(runs)} ({', '.join(f'{k} {v}' for k, v in counts.items()) or 'none'})",
        *([f"- not finished yet: {_unfinished(counts, len(runs))}; this report covers the "
           f"{len(runs) - unfinished} finished run(s)"] if unfinished else []),
        f"- compared value: `{value}` ({'higher' if higher else 'lower'} is better)"
        + (f"; headline metric: {', '.join(metrics)}" if metrics else ""),
        "- statistics use the runs that finished; pending/running runs are counted as pending. "
        + ("In the tests, a cell without any `ok` run (a failed or diverged run when cells are seeds) counts "
           "as worse than every finished cell; per-task ranks put configurations without any `ok` run last; "
           "means, medians and curves use `ok` runs only."
           if failed == "worst" else
           "Blocks containing a failed or diverged run are excluded from the tests; "
           "means, medians and curves use `ok` runs only."),
        "",
    )


def _unfinished(counts: pd.Series, total: int) -> str:
    """``"12 of 60 runs (pending 10, running 2)"`` from status counts."""
    parts = {k: int(counts.get(k, 0)) for k in UNFINISHED if counts.get(k, 0)}
    return f"{sum(parts.values())} of {total} runs (" + ", ".join(f"{k} {v}" for k, v in parts.items()) + ")"


def _task_section(
    report: _Report, runs: pd.DataFrame, history: pd.DataFrame, summary: pd.DataFrame, ttt: pd.DataFrame | None,
    task: str, value: str, higher: bool, alpha: float, failed: str, curve_y: str, curve_x: Sequence[str],
) -> None:
    slug = _slug(task)
    part = summary[summary["task"].astype(str) == task].sort_values("rank")
    metric = runs.loc[runs["task"].astype(str) == task, "metric"].dropna() if "metric" in runs else pd.Series([])
    report.add(f"## Task `{task}`" + (f" (metric: {metric.iloc[0]})" if len(metric) else ""), "")
    task_runs = runs[runs["task"].astype(str) == task]
    counts = task_runs["status"].value_counts()
    if counts.reindex(list(UNFINISHED)).fillna(0).sum():
        report.add(f"Not finished yet: {_unfinished(counts, len(task_runs))} of this task; the tables and tests "
                   "below use the finished runs.", "")
    report.table(tables.display_summary(part).drop(columns="task"), f"summary_{slug}",
                 f"{value} over seeds per model × trainer, ranked within the task")
    config = configuration_table(task_runs)
    if not config.empty:
        report.add("### Configuration of each trainer label", "")
        report.table(config, f"config_{slug}", "options of each trainer label in this task (several values: "
                     "the label ran with each; – : not an option of that trainer)")
    if task_runs["label"].nunique() >= 2:
        paired = stats.paired_table(task_runs, value, blocks=("model", "seed"), higher_is_better=higher, failed=failed)
        n = len(paired.values)
        floor = f" With n = {n} the smallest possible two-sided p-value is {2.0 ** (1 - n):.3g}." if 0 < n <= 10 else ""
        done = task_runs["status"].isin(stats.FINISHED).any()
        empty = "" if done else " No run of this task has finished yet."
        report.add(f"### Wilcoxon signed-rank tests, Holm-corrected (α = {alpha:g})", "",
                   f"Pairs of trainers compared on the same (model, seed); n = {n} blocks.{floor}{empty} "
                   + paired.note(), "")
        if 0 < n < MIN_BLOCKS:
            report.add(_too_few_blocks(n, "(model, seed) pairs"), "")
        elif n >= 1 and paired.values.shape[1] >= 2:
            report.table(_format_wilcoxon(stats.pairwise_wilcoxon(paired.values, alpha=alpha)),
                         f"wilcoxon_{slug}", "wins/losses/ties of a against b; R+ = rank sum where a is better")
    if ttt is not None:
        tpart = ttt[ttt["task"].astype(str) == task].drop(columns="task")
        if len(tpart):
            goal = tpart["target"].iloc[0]
            report.add("### Time to target", "",
                       f"First point where `{curve_y}` reached {goal:.4g}; medians over the seeds that reached it.", "")
            report.table(tpart.drop(columns="target"), f"time_to_target_{slug}", f"time to {curve_y} = {goal:.4g}")
    if not history.empty and curve_y in history.columns:
        for x in curve_x:
            if x not in history.columns:
                continue
            curves = tables.learning_curves(history, task_runs, y=curve_y, x=x)
            if curves.empty:
                continue
            label = curve_y.replace("_metric", f" {metric.iloc[0]}") if len(metric) else curve_y
            fig = plots.learning_curve_panels(curves, x=x, y=label,
                                              title=f"{task}: {label} against {plots.axis_label(x)}")
            caption = (f"{task}: mean {curve_y} over seeds against {x}, one panel per model; band: ± std, "
                       "clipped to the seeds' range" + ("; log x axis" if x in plots.LOG_X else ""))
            report.figure(fig, f"curves_{slug}_{_slug(x)}", caption)


def _too_few_blocks(n: int, what: str) -> str:
    return (f"No significance test: {n} block(s) of {what}, fewer than {MIN_BLOCKS}. With n = {n} the smallest "
            f"two-sided p-value a signed-rank test can give is {2.0 ** (1 - n):.3g}, so no difference could "
            "be called significant; run more seeds (or tasks) to test.")


def configuration_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The options of each trainer label in ``runs``: one row per option (trainer, loss, budget, device and
    every ``trainer_options.*`` / ``loss_options.*`` column with a value), one column per label, cells the
    distinct values that label ran with (", "-joined; "–" when the option does not apply). Options set to
    different values by the labels they apply to come first."""
    columns = [c for c in config_columns(runs) if not str(c).startswith(("task_options.", "model_options."))]
    labels = sorted(runs["label"].astype(str).unique())
    rows = []
    for column in columns:
        cells = {}
        for label in labels:
            values = runs.loc[runs["label"].astype(str) == label, column]
            texts = sorted({_value(v) for v in values if _present(v)})
            cells[label] = ", ".join(texts) if texts else "–"
        if any(v != "–" for v in cells.values()):
            rows.append({"option": str(column).removeprefix("trainer_options."), **cells})
    rows.sort(key=lambda row: len({row[label] for label in labels} - {"–"}) <= 1)  # options that differ first
    return pd.DataFrame(rows, columns=["option", *labels])


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _value(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def swept_parameters(runs: pd.DataFrame) -> list[str]:
    """Numeric option columns that take more than one value among runs of one task × model × label (the
    axes a grid swept), e.g. ``trainer_options.lr`` or ``model_options.width``."""
    keys = [c for c in ("task", "model", "label") if c in runs.columns]
    out = []
    for column in config_columns(runs):
        values = runs[column]
        if not plots.numeric_axis(list(values)):
            continue
        counts = values.groupby([runs[k].astype(str) for k in keys]).nunique() if keys else values.nunique()
        if int(pd.Series(counts).max()) > 1:
            out.append(str(column))
    return out


def _parameters(report: _Report, raw: pd.DataFrame, task: str, value: str) -> None:
    """``value`` against each swept option of the task, lines per (model, label) named by their other
    options."""
    if "status" not in raw or not raw["status"].eq("ok").any():
        return
    swept = swept_parameters(raw)
    if not swept:
        return
    report.add(f"### {value} against the swept options", "")
    for parameter in swept:
        named = name_cells(raw.drop(columns="config_id", errors="ignore"), ignore=[parameter])
        models = named["model"].astype(str)
        named["line"] = named["label"].astype(str) if models.nunique() == 1 else models + " / " + named["label"].astype(str)
        fig = plots.parameter_panels(named, [parameter], value, by="line", title=f"{task}: {value}")
        report.figure(fig, f"parameter_{_slug(task)}_{_slug(parameter)}",
                      f"{task}: mean {value} over seeds against {plots.axis_label(parameter)}; band: the seeds' "
                      "range, dots: single runs")


def _format_wilcoxon(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["a", "b", "n", "wins", "losses", "ties", "r_plus", "r_minus", "p", "p_holm", "better"]].copy()
    for col in ("p", "p_holm"):
        out[col] = [f"{p:.3g}" if math.isfinite(p) else "–" for p in out[col]]
    return out


def _across_tasks(report: _Report, runs: pd.DataFrame, value: str, higher: bool, alpha: float, failed: str) -> None:
    paired = stats.paired_table(runs, value, blocks=("task", "model"), higher_is_better=higher, failed=failed)
    table = paired.values
    report.add("## Across tasks", "",
               f"Blocks are task × model cells ({len(table)}), values are means over seeds. " + paired.note(), "")
    if 0 < len(table) < MIN_BLOCKS:
        report.add(_too_few_blocks(len(table), "task × model cells"), "")
        return
    if table.shape[1] < 3:
        report.add(f"Friedman needs at least 3 trainers; here {table.shape[1]}.", "")
        if table.shape[1] == 2 and len(table) >= 1:
            report.table(_format_wilcoxon(stats.pairwise_wilcoxon(table, alpha=alpha)), "wilcoxon_across",
                         "Wilcoxon signed-rank test across blocks")
        return
    fr = stats.friedman(table)
    k, n = fr.n_methods, fr.n_blocks
    cd = stats.critical_difference(k, n, alpha)
    report.add(
        f"Friedman (tie-corrected): χ²_F = {fr.chi2:.3f} (p = {fr.p_chi2:.3g}); Iman–Davenport "
        f"F_F = {fr.ff:.3f} with ({k - 1}, {(k - 1) * (n - 1)}) d.f. (p = {fr.p_ff:.3g}"
        + ("; every block ranks the trainers identically" if math.isinf(fr.ff) else "") + "). "
        f"Nemenyi critical difference at α = {alpha:g}: CD = {cd:.3f}.", "",
    )
    ranks = fr.mean_ranks.sort_values()
    report.table(ranks.rename("mean rank").rename_axis("trainer").reset_index(), "mean_ranks",
                 "average rank across blocks (1 = best)")
    pvalues = stats.nemenyi(table)
    report.table(pvalues.map(lambda p: f"{p:.3g}").rename_axis("trainer").reset_index(), "nemenyi",
                 "Nemenyi post-hoc p-values")
    ax = plots.cd_diagram(ranks, pvalues, cd=cd, alpha=alpha, title=f"Critical difference (Nemenyi, α = {alpha:g})")
    report.figure(ax.figure, "cd_diagram",
                  "critical-difference diagram: bars join trainers not significantly different")
    report.table(_format_wilcoxon(stats.pairwise_wilcoxon(table, alpha=alpha)), "wilcoxon_across",
                 f"Wilcoxon signed-rank tests across blocks, Holm-corrected (α = {alpha:g})")


def _sweeps(report: _Report, runs: pd.DataFrame) -> None:
    x, y = SWEEP_AXES
    if not {x, y} <= set(runs.columns):
        return
    ok = name_cells(runs[runs["status"].eq("ok")], ignore=SWEEP_AXES)
    keys = [c for c in ("task", "model", "loss", "label") if c in ok.columns]
    header = False
    for key, part in ok.groupby(keys, sort=True, dropna=False):
        if part[x].nunique() < 2 or part[y].nunique() < 2:
            continue
        if not header:
            report.add("## Dynamic-loss sweeps", "", "Mean over seeds of the final metric on the (period, amplitude) "
                       "grid; the dashed line is the static loss (A = 1).", "")
            header = True
        name = " / ".join(map(str, key))
        fig = plots.new_axes((11.0, 4.2), 1, 2)[0].figure
        for ax, column in zip(fig.axes[:2], ("final_train_metric", "final_test_metric")):
            plots.contour(part, x, y, column, ax=ax, vmin=0.0 if "metric" in column else None,
                          vmax=1.0 if "metric" in column else None, title=f"{name}: {column}")
        report.figure(fig, "contour_" + "_".join(_slug(k) for k in key), f"{name}: final train/test metric")


def _diagnostics(report: _Report, runs: pd.DataFrame, frames: Mapping[str, pd.DataFrame]) -> None:
    """Per task: sharpness with its stability limit, Hessian trace, NTK λ_max and gradient norm against the step,
    one line per grid cell, and a table of what the diagnostics found and what they cost."""
    report.add("## Diagnostics", "",
               "Recorded by the `diagnostics` table (docs/diagnostics.md) on the objective each trainer minimised, "
               "at the start and every `every` optimizer steps. Lines: mean over a cell's seeds; band: their range; "
               "dashed: the stability limit of the cell's update rule (2/lr for GD, 2(1+β)/lr with heavy-ball "
               "momentum β; none for adaptive methods).", "")
    cells = runs[["run_id", "task"]].copy()
    models = runs["model"].astype(str)
    cells["cell"] = models + " / " + runs["label"].astype(str)
    sharp = frames.get("sharpness")
    if sharp is None or sharp.empty:
        sharp = frames.get("curvature")
    quantities = [
        ("sharpness", sharp, "sharpness", "limit", False, "λ_max of the Hessian"),
        ("trace", frames.get("curvature"), "trace", None, False, "tr H (Hutch++)"),
        ("ntk", _first(frames.get("ntk"), "eigenvalues"), "eigenvalues", None, True, "λ_max of the NTK"),
        ("gradient_norm", frames.get("gradient_norm"), "total", None, True, "‖∇f‖₂"),
    ]
    for task in sorted(cells["task"].dropna().astype(str).unique()):
        ids = cells[cells["task"].astype(str) == task]
        drawn = False
        for name, frame, y, limit, log, label in quantities:
            if frame is None or frame.empty or y not in frame.columns:
                continue
            part = frame.merge(ids, on="run_id")
            if part.empty or not pd.to_numeric(part[y], errors="coerce").notna().any():
                continue
            if not drawn:
                report.add(f"### Task `{task}`", "")
                drawn = True
            ax = plots.diagnostic_curves(part, y=y, limit=limit if limit in part.columns else None, log_y=log,
                                         ylabel=label, title=f"{task}: {label}")
            caption = f"{task}: {label} against the optimizer step, one line per model / trainer label"
            if limit and limit in part.columns:
                caption += "; dashed: its stability limit"
            report.figure(ax.figure, f"diagnostics_{name}_{_slug(task)}", caption)
        if drawn:
            table = _diagnostics_table(runs[runs["task"].astype(str) == task], frames, sharp)
            report.table(table, f"diagnostics_{_slug(task)}",
                         "per cell: runs with records, mean λ_max at the last measurement, the largest λ_max / limit "
                         "seen, and the wall time of the diagnostics against that of training (the runs' `seconds`, which "
                         "leave the diagnostics out), summed over the cell's runs")


def _first(frame: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
    """``frame`` with a list column replaced by its first entry (the largest eigenvalue)."""
    if frame is None or frame.empty or column not in frame.columns:
        return frame
    out = frame.copy()
    out[column] = [v[0] if isinstance(v, (list, tuple)) and v else math.nan for v in out[column]]
    return out


def _diagnostics_table(runs: pd.DataFrame, frames: Mapping[str, pd.DataFrame], sharp: pd.DataFrame | None) -> pd.DataFrame:
    logged = set().union(*(set(f["run_id"]) for f in frames.values() if len(f)))
    rows = []
    for (model, label), part in runs.groupby([runs["model"].astype(str), runs["label"].astype(str)], sort=True):
        ids = set(part["run_id"]) & logged
        if not ids:
            continue
        row: dict[str, Any] = {"model": model, "label": label, "runs": len(ids)}
        if sharp is not None and not sharp.empty and "sharpness" in sharp.columns:
            mine = sharp[sharp["run_id"].isin(ids)]
            last = mine.sort_values("step").groupby("run_id").tail(1)
            row["last λ_max"] = f"{pd.to_numeric(last['sharpness']).mean():.4g}" if len(last) else "–"
            ratio = pd.to_numeric(mine["ratio"], errors="coerce") if "ratio" in mine.columns else pd.Series([], dtype=float)
            row["max λ_max / limit"] = f"{ratio.max():.3f}" if ratio.notna().any() else "–"
        if "diagnostics_seconds" in part.columns:
            cost = pd.to_numeric(part.loc[part["run_id"].isin(ids), "diagnostics_seconds"], errors="coerce").sum()
            wall = pd.to_numeric(part.loc[part["run_id"].isin(ids), "seconds"], errors="coerce").sum()
            row["diagnostics s"] = f"{cost:.3g}"
            row["training s"] = f"{wall:.3g}"
        rows.append(row)
    return pd.DataFrame(rows)


def _curvature(report: _Report, runs: pd.DataFrame, records: Records) -> None:
    report.add("## Curvature and dynamics panels", "")
    lrs = runs.set_index("run_id")["trainer_options.lr"] if "trainer_options.lr" in runs else pd.Series(dtype=float)
    for run_id, recs in records.items():
        named = {k: v for k, v in recs.items() if v and (k == "curvature" or k not in DIAGNOSTICS)}
        if not named:
            continue
        curvature = named.pop("curvature", None)
        if curvature:
            fig = plots.curvature_panel(curvature, title=f"curvature of run {run_id}")
            report.figure(fig, f"curvature_{_slug(run_id)}", f"curvature diagnostics of run {run_id}")
        if named:
            x = "step" if all("step" in v[0] for v in named.values()) else "epoch"
            lr = lrs.get(run_id)
            fig = plots.records_panel(named, x=x, lr=float(lr) if lr is not None and pd.notna(lr) else None,
                                      title=f"run {run_id}")
            report.figure(fig, f"records_{_slug(run_id)}", f"records of run {run_id}")


def _selection_warnings(report: _Report, runs: pd.DataFrame) -> None:
    """Warn about runs whose selected model is their initial weights, and LR-finder suggestions at the
    edge of their sweep (column ``lr_at_edge``, from the ``lr_find`` records)."""
    cols = [c for c in ("run_id", "task", "model", "label", "seed", "lr") if c in runs.columns]
    ok = runs["status"].eq("ok") if "status" in runs else pd.Series(True, index=runs.index)
    initial = runs[ok & runs["best_epoch"].eq(0)] if "best_epoch" in runs else runs.iloc[:0]
    edge = runs[ok & runs["lr_at_edge"].eq(True)] if "lr_at_edge" in runs else runs.iloc[:0]
    if initial.empty and edge.empty:
        return
    report.add("## Warnings", "")
    if not initial.empty:
        report.add(f"**{len(initial)} run(s) selected their initial weights (epoch 0)**: no trained epoch had a "
                   "lower validation loss (or a finite one), so their test numbers describe an untrained model.", "")
        report.table(initial[cols], "selected_initial_weights", "runs whose selected epoch is 0")
    if not edge.empty:
        report.add(f"**{len(edge)} run(s) used an LR-finder suggestion at the edge of its sweep** (first or last "
                   "5 % of the considered lr range): the loss curve did not constrain the rule.", "")
        report.table(edge[cols], "lr_at_edge", "runs whose LR-finder suggestion sits at the sweep's edge")


def _failures(report: _Report, runs: pd.DataFrame) -> None:
    bad = runs[runs["status"].isin(("diverged", "failed"))]
    if bad.empty:
        return
    cols = [c for c in ("run_id", "task", "model", "label", "seed", "status", "message") if c in bad.columns]
    frame = bad[cols].copy()
    if "message" in frame:
        frame["message"] = [(str(m).strip().splitlines() or [""])[-1][:120] for m in frame["message"]]
    report.add("## Failed and diverged runs", "")
    report.table(frame, "failures", "runs that did not finish ok (last line of their message)")


def write_report(
    experiment_dir: str | Path,
    out: str | Path | None = None,
    formats: Sequence[str] = plots.FIGURE_FORMATS,
    *,
    panels: int = 4,
    **options: Any,
) -> Path:
    """Open ``experiment_dir``'s result store and write its report to ``out`` (default
    ``<experiment_dir>/report``); return the path of ``report.md``. Panels of every callback record
    are drawn for the first ``panels`` runs that logged ``curvature`` rows (the diagnostics callback); the
    records of the ``diagnostics`` table are drawn per grid cell; ``options`` go to :func:`build_report`."""
    check_number("panels", panels, low=0, integer=True)
    experiment_dir = Path(experiment_dir)
    with ResultStore.open(experiment_dir) as store:
        runs, history = store.runs_frame(), store.history_frame()
        found = store.records_frame("lr_find")
        if "at_edge" in found.columns and not runs.empty:
            runs = runs.merge(found[["run_id", "at_edge"]].rename(columns={"at_edge": "lr_at_edge"}),
                              on="run_id", how="left")
        logged = store.records_frame("curvature")["run_id"].unique()[:panels] if panels else []
        records = {run_id: store.result(run_id, weights=False).records for run_id in logged}
        diagnostics = {name: store.records_frame(name) for name in DIAGNOSTICS}
    names = runs["experiment"].dropna() if "experiment" in runs else pd.Series(dtype=str)
    name = str(names.iloc[0]) if len(names) else experiment_dir.name
    return build_report(runs, history, out if out is not None else experiment_dir / "report", records=records,
                        diagnostics=diagnostics, formats=formats, title=f"Report: {name}", **options)
