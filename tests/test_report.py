"""Tables, figures, the Markdown report and the ``report`` command of trainlab.report, on synthetic
frames (oracles: direct NumPy/pandas/SciPy computations of the same quantities) and on a real
ResultStore."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from trainlab.core.budget import Spending
from trainlab.core.config import ConfigError
from trainlab.report import (
    build_report,
    cd_diagram,
    cliques,
    contour,
    contour_grid,
    curvature_panel,
    expand_records,
    friedman,
    learning_curve_panels,
    learning_curves,
    mean_ranks,
    name_cells,
    nemenyi,
    paired_table,
    plot_learning_curves,
    records_panel,
    save_figure,
    summary_table,
    time_to_target,
    trainer_colour,
    write_report,
    write_table,
)
from trainlab.report.tables import default_targets, display_summary, to_latex, to_markdown
from trainlab.trainers.result import RunResult

LABELS = {"adam": 0.9, "sgd": 0.8, "de": 0.6}
EVAL_COST = {"adam": 100, "sgd": 100, "de": 300}


def synthetic(tasks=("t1", "t2"), seeds=5, epochs=6, diverged=("t1", "sgd", 3)):
    """Runs and histories of a small grid: val metric rises towards a per-trainer plateau."""
    rng = np.random.default_rng(0)
    runs, hist = [], []
    for task in tasks:
        for label, top in LABELS.items():
            for seed in range(seeds):
                run_id = f"{task}-{label}-{seed}"
                status = "diverged" if (task, label, seed) == diverged else "ok"
                curve = top * (1 - np.exp(-np.arange(epochs + 1) / 2)) + rng.normal(0, 0.01, epochs + 1)
                seconds = np.cumsum(rng.uniform(0.5, 1.5, epochs + 1)) - 0.5
                for e in range(epochs + 1):
                    hist.append({"run_id": run_id, "epoch": e, "val_metric": curve[e], "test_metric": curve[e],
                                 "sample_evals": EVAL_COST[label] * e, "evals": 10 * e, "seconds": seconds[e]})
                runs.append({"run_id": run_id, "experiment": "demo", "task": task, "model": "mlp1",
                             "label": label, "trainer": label, "seed": seed, "status": status,
                             "message": "loss became nan\nat epoch 3" if status != "ok" else "",
                             "final_test_metric": curve[-1] if status == "ok" else math.nan,
                             "final_train_metric": curve[-1] + 0.02, "metric": "accuracy",
                             "evals": 10 * epochs, "sample_evals": EVAL_COST[label] * epochs,
                             "seconds": seconds[-1]})
    return pd.DataFrame(runs), pd.DataFrame(hist)


# --------------------------------------------------------------------------------------------- tables
def test_summary_table_statistics_and_ranks():
    runs, _ = synthetic()
    runs.loc[runs["run_id"] == "t2-de-0", "status"] = "pending"
    s = summary_table(runs)
    row = s[(s.task == "t1") & (s.label == "sgd")].iloc[0]
    vals = runs[(runs.task == "t1") & (runs.label == "sgd") & (runs.status == "ok")]["final_test_metric"]
    assert (row["n"], row["ok"], row["diverged"], row["failed"], row["missing"]) == (5, 4, 1, 0, 0)
    assert row["mean"] == pytest.approx(vals.mean())
    assert row["std"] == pytest.approx(np.std(vals.to_numpy(), ddof=1))
    assert row["median"] == pytest.approx(np.median(vals))
    assert s[(s.task == "t2") & (s.label == "de")]["missing"].iloc[0] == 1
    for task, part in s.groupby("task"):
        np.testing.assert_allclose(part["rank"], stats.rankdata(-part["mean"].to_numpy()))
    assert set(s[s.label == "adam"]["rank"]) == {1.0}


def test_summary_ranks_ties_and_empty_groups():
    runs = pd.DataFrame({"task": "t", "model": "m", "label": ["a", "b", "c", "d"], "seed": 0,
                         "status": ["ok", "ok", "ok", "failed"], "final_test_loss": [0.5, 0.5, 0.2, math.nan]})
    s = summary_table(runs, value="final_test_loss", higher_is_better=False).set_index("label")
    assert s["rank"].to_dict() == {"a": 2.5, "b": 2.5, "c": 1.0, "d": 4.0}
    with pytest.raises(ConfigError, match="runs"):
        summary_table(runs, value="final_test_metric")


def test_learning_curves_by_epoch_and_interpolated_time():
    runs, hist = synthetic()
    curves = learning_curves(hist, runs, y="val_metric", x="epoch")
    part = curves[(curves.task == "t1") & (curves.label == "sgd")]
    ok_ids = runs[(runs.task == "t1") & (runs.label == "sgd") & (runs.status == "ok")]["run_id"]
    ref = hist[hist.run_id.isin(ok_ids)].pivot(index="epoch", columns="run_id", values="val_metric")
    np.testing.assert_allclose(part["mean"], ref.mean(axis=1))
    np.testing.assert_allclose(part["std"], ref.std(axis=1, ddof=1))
    assert set(part["n"]) == {4}  # the diverged seed is left out

    timed = learning_curves(hist, runs, x="seconds", points=7)
    part = timed[(timed.task == "t2") & (timed.label == "de")]
    ids = [f"t2-de-{s}" for s in range(5)]
    series = [hist[hist.run_id == i] for i in ids]
    lo, hi = max(s["seconds"].min() for s in series), min(s["seconds"].max() for s in series)
    grid = np.linspace(lo, hi, 7)
    values = np.stack([np.interp(grid, s["seconds"], s["val_metric"]) for s in series])
    np.testing.assert_allclose(part["x"], grid)
    np.testing.assert_allclose(part["mean"], values.mean(axis=0))
    np.testing.assert_allclose(part["std"], values.std(axis=0, ddof=1))

    # deterministic spending is shared by all seeds: no interpolation, exact values
    evals = learning_curves(hist, runs, x="sample_evals")
    assert set(evals[evals.label == "de"]["x"]) == {300 * e for e in range(7)}


def test_learning_curves_early_stopped_run_counts():
    runs, hist = synthetic(tasks=("t1",), diverged=None)
    hist = hist[~((hist.run_id == "t1-adam-0") & (hist.epoch > 3))]
    curves = learning_curves(hist, runs, x="epoch")
    part = curves[curves.label == "adam"].set_index("x")
    assert part.loc[3, "n"] == 5 and part.loc[4, "n"] == 4


def test_time_to_target_first_crossing():
    runs, hist = synthetic()
    out = time_to_target(hist, runs, target=0.5)
    for (task, label), row in out.set_index(["task", "label"]).iterrows():
        firsts = []
        for run_id in runs[(runs.task == task) & (runs.label == label) & (runs.status == "ok")]["run_id"]:
            h = hist[hist.run_id == run_id].sort_values("epoch")
            above = h[h.val_metric >= 0.5]
            if len(above):
                firsts.append(above.iloc[0])
        assert row["reached"] == len(firsts)
        if firsts:
            assert row["epoch"] == pytest.approx(np.median([f["epoch"] for f in firsts]))
            assert row["seconds"] == pytest.approx(np.median([f["seconds"] for f in firsts]))
    assert out.set_index(["task", "label"]).loc[("t1", "de"), "reached"] == 5

    targets = default_targets(hist, runs, quantile=0.5)
    ok = runs[runs.status == "ok"]
    best = hist[hist.run_id.isin(ok.run_id)].groupby("run_id")["val_metric"].max()
    t1 = best[[i for i in best.index if i.startswith("t1")]]
    assert targets["t1"] == pytest.approx(np.quantile(t1, 0.5))
    auto = time_to_target(hist, runs)
    assert (auto.groupby("task")["reached"].sum() >= 7).all()  # about half of the ok runs reach the median
    with pytest.raises(ConfigError, match="target"):
        time_to_target(hist, runs, target={"t1": 0.5})


def test_markdown_and_latex_writers(tmp_path):
    frame = pd.DataFrame({"name": ["a|b", "c"], "mean ± std": ["0.5 ± 0.1", "–"], "x": [1.5, math.nan]})
    text = to_markdown(frame)
    lines = text.strip().splitlines()
    assert lines[0] == "| name | mean ± std | x |" and lines[1] == "|---|---|---:|"
    assert lines[2] == r"| a\|b | 0.5 ± 0.1 | 1.5 |" and lines[3] == "| c | – | – |"
    tex = to_latex(frame.rename(columns={"x": "final_x"}), caption="50% of runs × 2")
    assert r"\toprule" in tex and r"$\pm$" in tex and "±" not in tex
    assert r"final\_x" in tex and r"\caption{50\% of runs $\times$ 2}" in tex and "c & -- & --" in tex
    paths = write_table(frame, tmp_path / "tables" / "t", ("md", "csv", "tex"))
    assert [p.name for p in paths] == ["t.md", "t.csv", "t.tex"]
    back = pd.read_csv(paths[1])
    assert back["name"].tolist() == ["a|b", "c"]
    with pytest.raises(ConfigError, match="formats"):
        write_table(frame, tmp_path / "t", ("xlsx",))


# -------------------------------------------------------------------------------------------- figures
def sweep_frame():
    rows = []
    for a in (1.0, 5.0, 10.0):
        for t in (50, 100, 200, 400):
            for seed in range(3):
                if (a, t) == (10.0, 400):
                    continue
                rows.append({"loss_options.amplitude": a, "loss_options.period": t, "seed": seed, "status": "ok",
                             "final_train_metric": 0.6 + 0.03 * a - t / 4000 + 0.01 * seed})
    return pd.DataFrame(rows)


def test_contour_grid_is_mean_over_seeds():
    frame = sweep_frame()
    grid = contour_grid(frame, "loss_options.period", "loss_options.amplitude", "final_train_metric")
    assert list(grid.index) == [1.0, 5.0, 10.0] and list(grid.columns) == [50, 100, 200, 400]
    ref = frame.groupby(["loss_options.amplitude", "loss_options.period"])["final_train_metric"].mean()
    for (a, t), v in ref.items():
        assert grid.loc[a, t] == pytest.approx(v)
    assert math.isnan(grid.loc[10.0, 400])
    with pytest.raises(ConfigError, match="frame"):
        contour_grid(frame, "loss_options.period", "nope", "final_train_metric")
    with pytest.raises(ConfigError, match="agg"):
        contour_grid(frame, "loss_options.period", "loss_options.amplitude", "final_train_metric", agg="sum")


def test_contour_marks_static_line_and_saves(tmp_path):
    ax = contour(sweep_frame(), "loss_options.period", "loss_options.amplitude", "final_train_metric",
                 vmin=0.0, vmax=1.0, log_x=True)
    static = [ln for ln in ax.lines if list(ln.get_ydata()) == [1.0, 1.0]]
    assert len(static) == 1 and "static" in static[0].get_label()
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "period T (steps)"
    assert ax.get_ylabel() == "amplitude A" and ax.get_title() == "mean train metric (selected model)"
    paths = save_figure(ax.figure, tmp_path / "c")
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths[1].read_text()
    # amplitude on the x axis: a vertical line; no amplitude column: no line
    ax = contour(sweep_frame(), "loss_options.amplitude", "loss_options.period", "final_train_metric")
    assert any(list(ln.get_xdata()) == [1.0, 1.0] for ln in ax.lines)
    frame = sweep_frame().rename(columns={"loss_options.amplitude": "lr"})
    ax = contour(frame, "loss_options.period", "lr", "final_train_metric", show_points=False)
    assert not ax.lines


def test_learning_curve_plot_and_cd_diagram_draw():
    runs, hist = synthetic()
    curves = learning_curves(hist, runs[runs.task == "t1"])
    ax = plot_learning_curves(curves, title="t1")
    assert len(ax.lines) == 3 and len(ax.collections) == 3
    mean_line = [ln for ln in ax.lines if ln.get_label().endswith("adam")][0]
    np.testing.assert_allclose(mean_line.get_ydata(), curves[curves.label == "adam"].sort_values("x")["mean"])

    table = pd.DataFrame({"a": [0.9, 0.8, 0.7, 0.9], "b": [0.8, 0.9, 0.6, 0.7], "c": [0.1, 0.2, 0.3, 0.8]})
    ranks = mean_ranks(table)
    assert ranks.to_dict() == {"a": 1.25, "b": 2.0, "c": 2.75}  # by hand: a 2,1,1,1; b 1,2,2,3; c 3,3,3,2
    ax = cd_diagram(ranks, nemenyi(table), cd=1.66, alpha=0.10, title="CD")
    texts = [t.get_text() for t in ax.texts]
    assert "a (1.25)" in texts and "(2.75) c" in texts and "CD = 1.66" in texts
    bar = [ln for ln in ax.lines if list(ln.get_xdata()) == [1.0, 1.0 + 1.66]]  # CD drawn from rank 1
    assert len(bar) == 1


def _overlaps(texts, renderer) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_text()]
    return [(a, b) for i, (a, p) in enumerate(boxes) for b, q in boxes[i + 1:] if p.overlaps(q)]


def test_cd_diagram_separates_ties_and_uses_trainer_colours():
    # four tied methods and one clearly worse: every label on its own row, colours those of the curves
    table = pd.DataFrame({"sgd": [0.5] * 6, "adam": [0.5] * 6, "nag": [0.5] * 6, "rmsprop": [0.5] * 6,
                          "shade": [0.1, 0.2, 0.1, 0.3, 0.2, 0.1]})
    ranks = mean_ranks(table)
    assert ranks["shade"] == 5 and ranks["sgd"] == 2.5  # four-way tie for ranks 1-4
    pvalues = nemenyi(table)
    ax = cd_diagram(ranks, pvalues, cd=2.0)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(ax.figure)
    canvas.draw()
    assert not _overlaps(ax.texts, canvas.get_renderer())
    colours = {t.get_text().strip("() 0123456789.").strip(): t.get_color() for t in ax.texts if "(" in t.get_text()}
    assert colours == {name: trainer_colour(name) for name in table.columns}
    # the bars are the maximal rank-consecutive groups with every Nemenyi p >= alpha (oracle: brute force)
    order = list(ranks.sort_values(kind="stable").index)
    brute = [order[i:j + 1] for i in range(5) for j in range(i + 1, 5)
             if all(pvalues.loc[a, b] >= 0.05 for a in order[i:j + 1] for b in order[i:j + 1] if a != b)]
    maximal = [c for c in brute if not any(set(c) < set(o) for o in brute)]
    assert cliques(ranks, pvalues) == maximal


def test_learning_curve_panels_bands_colours_and_log_axis():
    runs, hist = synthetic(tasks=("t1",))
    many = pd.concat([runs.assign(label=runs.label + suffix, run_id=runs.run_id + suffix)
                      for suffix in ("", "(lr=0.1)", "(lr=0.01)")], ignore_index=True)
    many_hist = pd.concat([hist.assign(run_id=hist.run_id + suffix)
                           for suffix in ("", "(lr=0.1)", "(lr=0.01)")], ignore_index=True)
    curves = learning_curves(many_hist, many, x="sample_evals")
    fig = learning_curve_panels(curves, x="sample_evals", max_lines=6)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 2 and all(len(ax.lines) <= 6 for ax in shown)  # 9 labels -> panels of 6 and 3
    assert sum(len(ax.lines) for ax in shown) == 9
    assert all(ax.get_xscale() == "log" for ax in shown)
    for ax in shown:
        for line in ax.lines:
            assert line.get_color() == trainer_colour(line.get_label())
            assert min(line.get_xdata()) > 0  # x = 0 left out on the log axis
    # the band never leaves the seeds' range (oracle: min/max of the raw values at each x)
    ok = hist.merge(runs.loc[runs.status == "ok", ["run_id", "label"]], on="run_id")
    raw = ok[ok.label == "adam"].groupby("sample_evals")["val_metric"].agg(["min", "max"])
    band = [c for c in shown[0].collections][0]
    ax = plot_learning_curves(curves[curves.label == "adam"], by=("label",), x="sample_evals")
    verts = ax.collections[0].get_paths()[0].vertices
    inner = verts[(verts[:, 0] > 0)]
    for xv, yv in inner:
        if xv in raw.index:
            assert raw.loc[xv, "min"] - 1e-12 <= yv <= raw.loc[xv, "max"] + 1e-12
    assert band is not None


def test_records_panel_draws_stability_limit():
    records = {"hessian": [{"step": s, "eig1": 10 + s, "eig2": 5.0} for s in range(5)],
               "ntk": [{"step": s, "top": 100.0 * s} for s in range(5)]}
    fig = records_panel(records, lr=0.5, momentum=0.9)
    h, ntk = fig.axes
    limit = [ln for ln in h.lines if "lr" in ln.get_label()]
    assert len(limit) == 1 and limit[0].get_ydata()[0] == pytest.approx(2 * 1.9 / 0.5)
    assert len(ntk.lines) == 1 and list(ntk.lines[0].get_ydata()) == [0.0, 100.0, 200.0, 300.0, 400.0]
    with pytest.raises(ConfigError, match="records"):
        records_panel({})
    with pytest.raises(ConfigError, match="columns"):
        records_panel(records, columns={"ntk": ["missing"]})


def test_expand_records_and_curvature_panel():
    rows = [{"step": s, "epoch": s, "loss": 1.0 / (s + 1), "eigenvalues": [3.0 + s, 2.0, 1.0], "sharpness": 3.0 + s,
             "limit": 4.0, "ratio": (3.0 + s) / 4.0, "ntk": [100.0 + s, 50.0],
             "grad_norms": {"0": 0.1 * (s + 1), "total": 0.2 * (s + 1)}} for s in range(4)]
    flat = expand_records(rows)
    assert flat["eigenvalues[0]"].tolist() == [3.0, 4.0, 5.0, 6.0] and flat["ntk[1]"].tolist() == [50.0] * 4
    assert flat["grad_norms.total"].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8])
    ragged = expand_records([{"step": 0, "v": [1.0]}, {"step": 1, "v": [2.0, 3.0]}])
    assert math.isnan(ragged.loc[0, "v[1]"]) and ragged.loc[1, "v[1]"] == 3.0
    fig = curvature_panel(rows)
    names = [ax.get_ylabel() for ax in fig.axes]
    assert names == ["loss", "Hessian eigenvalues", "sharpness / limit", "NTK eigenvalues", "gradient norms"]
    eig = fig.axes[1]
    limit = [ln for ln in eig.lines if ln.get_label() == "2(1+β)/lr"]
    assert len(limit) == 1 and list(limit[0].get_ydata()) == [4.0] * 4
    assert fig.axes[3].get_yscale() == "log"
    with pytest.raises(ConfigError, match="rows"):
        curvature_panel([{"step": 0, "other": 1.0}])


# --------------------------------------------------------------------------------------------- report
def _links(md: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", md)


def test_build_report_end_to_end(tmp_path):
    runs, hist = synthetic(tasks=("t1", "t2", "t3"))
    sweep = sweep_frame().assign(task="spiral", model="spiral-mlp", label="gd", loss="cross_entropy",
                                 final_test_metric=lambda f: f["final_train_metric"] - 0.05,
                                 run_id=lambda f: [f"s{i}" for i in range(len(f))])
    all_runs = pd.concat([runs, sweep], ignore_index=True)
    records = {"t1-adam-0": {"hessian": [{"step": s, "eig1": 1.0 + s} for s in range(4)],
                             "curvature": [{"step": s, "loss": 1.0, "eigenvalues": [1.0, 0.5]} for s in range(3)]}}
    path = build_report(all_runs, hist, tmp_path / "rep", records=records, title="Demo")
    md = path.read_text()
    assert md.startswith("# Demo")
    for link in _links(md):
        assert (path.parent / link).is_file(), link
    for name in ("summary_t1.md", "summary_t1.csv", "summary_t1.tex", "wilcoxon_t1.csv", "time_to_target_t1.csv",
                 "mean_ranks.csv", "nemenyi.csv", "wilcoxon_across.csv", "failures.csv"):
        assert (path.parent / "tables" / name).is_file(), name
    for name in ("curves_t1_epoch", "curves_t1_sample_evals", "curves_t1_seconds", "cd_diagram",
                 "contour_spiral_spiral-mlp_cross_entropy_gd", "records_t1-adam-0", "curvature_t1-adam-0"):
        assert (path.parent / "figures" / f"{name}.png").is_file(), name
        assert (path.parent / "figures" / f"{name}.svg").is_file(), name
    # the Friedman numbers in the text are those of the paired table of task × model means
    table = paired_table(runs, "final_test_metric", blocks=("task", "model")).values
    fr = friedman(table)
    assert f"χ²_F = {fr.chi2:.3f}" in md and f"F_F = {fr.ff:.3f}" in md
    assert "smallest possible two-sided p-value is 0.0625" in md  # 5 seeds
    assert "1 failed/diverged run(s)" in md and "method(s) run on too few blocks left out: gd" in md
    assert "loss became nan" not in md and "at epoch 3" in md  # last line of the message
    summary = pd.read_csv(path.parent / "tables" / "summary_t1.csv")
    assert summary["label"].tolist() == ["adam", "sgd", "de"]  # sorted by rank
    # every swept option gets a metric-against-parameter figure; every label its configuration column
    for axis in ("loss_options.period", "loss_options.amplitude"):
        assert (path.parent / "figures" / f"parameter_spiral_{axis}.png").is_file(), axis
    config = pd.read_csv(path.parent / "tables" / "config_t1.csv")
    assert list(config.columns) == ["option", "adam", "de", "sgd"]
    # report.html: one file, every figure of report.md embedded, no reference to another file
    page = (path.parent / "report.html").read_text()
    figures = {link for link in _links(md) if link.endswith(".png")}
    assert page.count('<img src="data:image/png;base64,') == len(figures) > 10
    assert "figures/" not in page and "tables/" not in page and page.count("<table>") == len(re.findall(r"^\|[-:|]+\|$", md, re.M))


def test_build_report_validates_options(tmp_path):
    runs, hist = synthetic(tasks=("t1",))
    with pytest.raises(ConfigError, match="value"):
        build_report(runs, hist, tmp_path, value="nope")
    with pytest.raises(ConfigError, match="curve_x"):
        build_report(runs, hist, tmp_path, curve_x=("minutes",))
    with pytest.raises(ConfigError, match="failed"):
        build_report(runs, hist, tmp_path, failed="ignore")
    md = build_report(runs, hist, tmp_path / "r", failed="exclude", formats=("png",), table_formats=("csv",))
    md = md.read_text()
    assert "No significance test: 1 block(s) of task × model cells" in md and "excluded from the tests" in md
    assert "Friedman" not in md
    assert not list((tmp_path / "r" / "figures").glob("*.svg"))


def _store_dir(tmp_path: Path) -> Path:
    from trainlab.experiments.store import ResultStore

    runs, hist = synthetic(tasks=("t1", "t2"), seeds=3, diverged=None)
    exp = tmp_path / "exp"
    store = ResultStore(exp / "store.sqlite")
    for row in runs.itertuples():
        h = hist[hist.run_id == row.run_id]
        history = [{"epoch": int(r.epoch), "val_metric": r.val_metric, "test_metric": r.test_metric,
                    "sample_evals": int(r.sample_evals), "evals": int(r.evals), "seconds": float(r.seconds)}
                   for r in h.itertuples()]
        result = RunResult(status="ok", history=history, final={"test_metric": row.final_test_metric},
                           best_epoch=6, spending=Spending(forward_samples=row.sample_evals, evals=row.evals,
                                                           seconds=row.seconds),
                           records={"hessian": [{"step": 0, "eig1": 2.0}, {"step": 1, "eig1": 3.0}],
                                    "curvature": [{"step": 0, "loss": 1.0, "eigenvalues": [2.0, 1.0]}]}
                           if row.run_id in ("t1-adam-0", "t1-adam-1") else {})
        spec = {"task": row.task, "model": row.model, "trainer": row.trainer, "seed": row.seed,
                "trainer_options": {"lr": 0.1}}
        store.save(row.run_id, spec, result, experiment="demo", label=row.label, metric="accuracy")
    store.close()
    return exp


def test_write_report_from_store_and_cli(tmp_path):
    exp = _store_dir(tmp_path)
    path = write_report(exp, formats=("png",), panels=1, curve_x=("epoch",))
    assert path == exp / "report" / "report.md"
    md = path.read_text()
    assert md.startswith("# Report: demo") and "records_t1-adam-0.png" in md and "curvature_t1-adam-0.png" in md
    assert "t1-adam-1.png" not in md  # panels=1
    summary = pd.read_csv(exp / "report" / "tables" / "summary_t1.csv")
    assert list(summary["ok/div/fail"]) == ["3/0/0"] * 3

    from trainlab.cli.report import report

    out = tmp_path / "cli-out"
    result = CliRunner().invoke(report, [str(exp), "--out", str(out), "--format", "png", "--alpha", "0.1"])
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file() and "report written" in result.output
    assert not list((out / "figures").glob("*.svg"))
    assert "α = 0.1" in (out / "report.md").read_text()
    bad = CliRunner().invoke(report, [str(tmp_path / "missing")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nostore = CliRunner().invoke(report, [str(empty)])
    assert nostore.exit_code == 1 and "no result store" in nostore.output
    wrong = CliRunner().invoke(report, [str(exp), "--value", "final_nope", "--out", str(out)])
    assert wrong.exit_code == 1 and "value: got 'final_nope'" in wrong.output


def test_write_report_of_partly_finished_store(tmp_path):
    # regression: a task with only pending/running runs crashed paired_table inside write_report
    from trainlab.experiments.store import ResultStore

    exp = _store_dir(tmp_path)
    with ResultStore.open(exp) as store:
        for label in LABELS:
            for seed in range(3):
                spec = {"task": "t3", "model": "mlp1", "trainer": label, "seed": seed, "trainer_options": {"lr": 0.1}}
                store.register(f"t3-{label}-{seed}", spec, experiment="demo", label=label, seed_index=seed)
        store.mark_running("t3-adam-0")
        counts = store.counts()
    assert (counts["ok"], counts["pending"], counts["running"]) == (18, 8, 1)
    md = write_report(exp, formats=("png",), curve_x=("epoch",)).read_text()
    assert "- not finished yet: 9 of 27 runs (pending 8, running 1)" in md
    assert "Not finished yet: 9 of 9 runs (pending 8, running 1) of this task" in md
    assert "n = 0 blocks. No run of this task has finished yet." in md
    t3 = pd.read_csv(exp / "report" / "tables" / "summary_t3.csv")
    assert t3["pending"].tolist() == [3, 3, 3] and t3["ok/div/fail"].tolist() == ["0/0/0"] * 3
    t1 = pd.read_csv(exp / "report" / "tables" / "summary_t1.csv")
    assert "pending" not in t1.columns and t1["ok/div/fail"].tolist() == ["3/0/0"] * 3
    # the across-task statistics use the two finished tasks only
    assert "Blocks are task × model cells (2)" in md


def option_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """spiral-mlp at width 100 and 1000 with adam and sgd, plus sgd with the MSE loss at width 100; bcw with
    a single width and a task option that differs between two noise levels of the spiral."""
    rows, hist = [], []
    cells = [("spiral", 0.1, 100, "adam", None, 0.80), ("spiral", 0.1, 1000, "adam", None, 0.90),
             ("spiral", 0.1, 100, "sgd", None, 0.60), ("spiral", 0.1, 1000, "sgd", None, 0.70),
             ("spiral", 0.1, 100, "sgd", "mse", 0.40), ("spiral", 0.3, 100, "adam", None, 0.50),
             ("bcw", None, 100, "adam", None, 0.95), ("bcw", None, 100, "sgd", None, 0.93)]
    for task, noise, width, label, loss, top in cells:
        for seed in range(4):
            run_id = f"{task}-{noise}-{width}-{label}-{loss}-{seed}"
            value = top + 0.01 * seed
            rows.append({"run_id": run_id, "task": task, "model": "spiral-mlp", "label": label, "trainer": label,
                         "loss": loss, "seed": seed, "status": "ok", "final_test_metric": value,
                         "task_options.noise": noise, "model_options.width": width,
                         "trainer_options.lr": 0.005 if label == "adam" else 0.05, "budget.epochs": 10})
            hist += [{"run_id": run_id, "epoch": e, "val_metric": value * e / 3} for e in range(4)]
    return pd.DataFrame(rows), pd.DataFrame(hist)


def test_name_cells_shows_options_that_vary_within_a_cell():
    runs, hist = option_runs()
    named = name_cells(runs)
    # oracle: the full configuration without the seed, straight from the option columns
    config = ["task", "task_options.noise", "model", "model_options.width", "label", "loss", "trainer_options.lr"]
    assert named.groupby(["task", "model", "label"]).ngroups == runs.groupby(config, dropna=False).ngroups == 8
    names = set(zip(named["task"], named["model"], named["label"]))
    assert names == {
        ("spiral(noise=0.1)", "spiral-mlp(width=100)", "adam"), ("spiral(noise=0.1)", "spiral-mlp(width=1000)", "adam"),
        ("spiral(noise=0.1)", "spiral-mlp(width=100)", "sgd"), ("spiral(noise=0.1)", "spiral-mlp(width=1000)", "sgd"),
        ("spiral(noise=0.1)", "spiral-mlp(width=100)", "sgd(loss=mse)"),
        ("spiral(noise=0.3)", "spiral-mlp(width=100)", "adam"),
        ("bcw", "spiral-mlp(width=100)", "adam"), ("bcw", "spiral-mlp(width=100)", "sgd"),
    }
    # the swept/ignored column stays out; the rest of the frame is untouched
    assert set(name_cells(runs, ignore=["model_options.width"])["model"]) == {"spiral-mlp"}
    pd.testing.assert_frame_equal(named.drop(columns=["task", "model", "label"]),
                                  runs.drop(columns=["task", "model", "label"]))
    with pytest.raises(ConfigError, match="runs"):
        name_cells(runs.drop(columns="label"))
    # the same names label the learning-curve legend
    curves = learning_curves(hist, named[named.task == "spiral(noise=0.1)"])
    ax = plot_learning_curves(curves)
    legend = sorted(t.get_text() for t in ax.get_legend().get_texts())
    assert legend == sorted(["spiral-mlp(width=1000) / adam", "spiral-mlp(width=1000) / sgd",
                             "spiral-mlp(width=100) / adam", "spiral-mlp(width=100) / sgd",
                             "spiral-mlp(width=100) / sgd(loss=mse)"])


def test_build_report_separates_option_cells(tmp_path):
    runs, hist = option_runs()
    path = build_report(runs, hist, tmp_path / "rep", formats=("png",), table_formats=("csv",))
    md = path.read_text()
    summary = pd.read_csv(path.parent / "tables" / "summary_spiral_noise_0.1.csv")
    means = runs[runs["task_options.noise"] == 0.1].groupby(
        ["model_options.width", "label", "loss"], dropna=False)["final_test_metric"].mean()
    expected = {(f"spiral-mlp(width={w})", f"{lab}(loss={loss})" if isinstance(loss, str) else lab): m
                for (w, lab, loss), m in means.items()}
    shown = {(m, lab): float(v.split(" ± ")[0]) for m, lab, v in zip(summary["model"], summary["label"],
                                                                      summary["mean ± std"])}
    assert shown == pytest.approx(expected, abs=5e-4)
    assert summary["label"].iloc[0] == "adam" and summary["model"].iloc[0] == "spiral-mlp(width=1000)"
    # the per-task Wilcoxon pairs trainers on the same (model, seed): sgd(loss=mse) exists at width 100 only
    wilcoxon = pd.read_csv(path.parent / "tables" / "wilcoxon_spiral_noise_0.1.csv")
    assert {frozenset(p) for p in zip(wilcoxon["a"], wilcoxon["b"])} == {frozenset(("adam", "sgd"))}
    assert "method(s) run on too few blocks left out: sgd(loss=mse)" in md
    assert "## Task `spiral(noise=0.3)`" in md and "## Task `bcw`" in md
    assert (path.parent / "figures" / "curves_spiral_noise_0.1_epoch.png").is_file()


def test_name_cells_leave_out_options_the_others_determine():
    rows = []
    for loss, amplitude, steps, rescale in [("ce", 1, 35, None), ("ce", 10, 35, None), ("mse1", 1, 50, None),
                                            ("mse1", 20, 50, None), ("mse2", 10, 50, False), ("mse2", 10, 50, True)]:
        for seed in range(2):
            rows.append({"run_id": f"{loss}{amplitude}{rescale}{seed}", "task": "spiral", "model": "m", "label": "gd",
                         "trainer": "gd", "loss": loss, "seed": seed, "loss_options.amplitude": amplitude,
                         "loss_options.rescale": rescale, "budget.steps": steps, "trainer_options.lr": 1.0 if loss == "ce" else 0.075})
    runs = pd.DataFrame(rows)
    labels = sorted(set(name_cells(runs)["label"]))
    # budget and lr come with the loss, so only loss, amplitude and (where it varies) rescale name the cells
    assert labels == ["gd(loss=ce, amplitude=1)", "gd(loss=ce, amplitude=10)", "gd(loss=mse1, amplitude=1)",
                      "gd(loss=mse1, amplitude=20)", "gd(loss=mse2, amplitude=10, rescale=False)",
                      "gd(loss=mse2, amplitude=10, rescale=True)"]
    # a budget that varies on its own stays in the names
    runs.loc[runs["seed"] == 1, "budget.steps"] = 99
    assert len(set(name_cells(runs)["label"])) == 12 and any("steps=99" in n for n in name_cells(runs)["label"])


def test_quickstart_cells_are_named_by_the_width_only(tmp_path):
    from trainlab.experiments.quickstart import quickstart_experiment
    from trainlab.experiments.store import ResultStore

    experiment = quickstart_experiment()
    with ResultStore(tmp_path / "store.sqlite") as store:
        for run in experiment.runs:
            store.register(run.run_id, run.resolved, experiment=experiment.name, label=run.label,
                           seed_index=run.seed_index)
        runs = store.runs_frame()
    named = name_cells(runs)
    # learning rates come with the label and the task, budgets with the task: only the spiral width varies
    for column in ("task", "label"):
        assert named[column].tolist() == runs[column].tolist()
    expected = [
        f"spiral-mlp(width={int(w)})" if m == "spiral-mlp" else m
        for m, w in zip(runs["model"], runs["model_options.width"])
    ]
    assert named["model"].tolist() == expected
    assert named.groupby(["task", "model", "label"]).ngroups == runs["config_id"].nunique()


def test_lr_used_selected_epoch_and_selection_warnings(tmp_path):
    runs, hist = synthetic(tasks=("t1",), seeds=3, diverged=None)
    runs["lr"] = [1e-3, 2e-3, 4e-3] * 3
    runs["best_epoch"] = [6, 5, 4, 6, 6, 6, 0, 3, 2]
    runs["lr_at_edge"] = [False] * 8 + [True]
    summary = summary_table(runs)
    row = summary.set_index("label").loc["adam"]
    assert (row["lr_median"], row["lr_min"], row["lr_max"]) == (2e-3, 1e-3, 4e-3)
    assert (row["epoch_median"], row["epoch_min"], row["epoch_max"]) == (5, 4, 6)
    shown = display_summary(summary).set_index("label")
    assert shown.loc["adam", "lr used"] == "0.002 [0.001–0.004]" and shown.loc["sgd", "epoch"] == "6"
    md = build_report(runs, hist, tmp_path / "rep").read_text()
    warnings = md[md.index("## Warnings"):]
    assert "1 run(s) selected their initial weights" in warnings and "t1-de-0" in warnings
    assert "1 run(s) used an LR-finder suggestion at the edge" in warnings and "t1-de-2" in warnings


def test_configuration_table_lists_each_labels_options_differing_first():
    from trainlab.report import configuration_table

    runs = pd.DataFrame({
        "label": ["sgd", "sgd", "adam", "shade"], "trainer": ["sgd", "sgd", "adam", "shade"],
        "trainer_options.batch_size": [32, 32, 32, np.nan], "trainer_options.lr": [0.1, 0.05, 0.01, np.nan],
        "trainer_options.population_size": [np.nan, np.nan, np.nan, 20], "task_options.noise": [0.1] * 4,
    })
    table = configuration_table(runs).set_index("option")
    assert list(table.columns) == ["adam", "sgd", "shade"]
    assert table.loc["lr"].tolist() == ["0.01", "0.05, 0.1", "–"]  # every value a label ran with
    assert table.loc["population_size"].tolist() == ["–", "–", "20"]
    assert "task_options.noise" not in table.index  # task options belong to the task, not to a label
    assert list(table.index).index("batch_size") > list(table.index).index("lr")  # same everywhere: after
