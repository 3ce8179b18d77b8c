"""The levels table and the per-setting contour figure of dynamic-loss experiments, on a hand-made runs frame
whose means, seed sds and best cells are computed here independently."""
from __future__ import annotations

import itertools

import matplotlib
import numpy as np
import pandas as pd
import pytest

from trainlab.core.config import ConfigError
from trainlab.report import contour_grid
from trainlab.studies.dynamics import (
    _static_under_every_period,
    contour_figure,
    levels_display,
    levels_table,
    setting_columns,
)

matplotlib.use("Agg")


def runs_frame() -> pd.DataFrame:
    """Two angles × one width; static (A = 1, T = 100) and A ∈ {5, 10} × T ∈ {100, 300}; 3 seeds. Train accuracy
    is a known function of (angle, A, T, seed); at angle 3 the cells (5, 300) and (10, 100) tie on train and
    (5, 300) has the better test."""
    rows = []
    cells = [(1.0, 100)] + list(itertools.product([5.0, 10.0], [100, 300]))
    for angle, (a, t), seed in itertools.product([3.0, 4.0], cells, range(3)):
        train = 0.5 + 0.01 * seed + (0.0 if a == 1 else 0.15 * (a == 10) + 0.2 * (t == 300) + 0.1 * (a == 5))
        if angle == 3.0 and (a, t) in ((5.0, 300), (10.0, 100)):
            train = 0.9 + 0.01 * seed
        test = train + (0.02 if (a, t) == (5.0, 300) else -0.05) - 0.1 * (angle == 4.0)
        rows.append({"run_id": f"{angle}-{a}-{t}-{seed}", "status": "ok", "loss": "dynamic_mse1", "seed": seed,
                     "task_options.angle": angle, "task_options.arms": 3, "model_options.width": 100,
                     "loss_options.amplitude": a, "loss_options.period": t, "loss_options.total_steps": 1000,
                     "end_train_metric": train, "end_test_metric": test})
    rows.append({**rows[-1], "run_id": "failed", "status": "failed", "end_train_metric": np.nan})
    return pd.DataFrame(rows)


def test_setting_columns_are_what_varies_besides_the_schedule() -> None:
    assert setting_columns(runs_frame()) == ["loss", "task_options.angle", "model_options.width"]


def test_levels_table_against_hand_computed_means() -> None:
    runs = runs_frame()
    table = levels_table(runs)
    assert table["task_options.angle"].tolist() == [3.0, 4.0]
    ok = runs[runs["status"] == "ok"]
    for _, row in table.iterrows():
        part = ok[ok["task_options.angle"] == row["task_options.angle"]]
        static = part[part["loss_options.amplitude"] == 1.0]
        assert row["static_train"] == pytest.approx(static["end_train_metric"].mean())
        assert row["static_train_sd"] == pytest.approx(np.std(static["end_train_metric"], ddof=1))
        assert row["static_seeds"] == 3 and row["dynamic_cells"] == 4 and row["dynamic_seeds"] == 3
    at3, at4 = table.iloc[0], table.iloc[1]
    assert (at3["best_A"], at3["best_T"]) == (5.0, 300)  # tie on train with (10, 100), better test
    assert at3["dynamic_train"] == pytest.approx(0.91) and at3["dynamic_test"] == pytest.approx(0.93)
    assert (at4["best_A"], at4["best_T"]) == (10.0, 300)
    assert at4["dynamic_train"] == pytest.approx(0.86) and at4["dynamic_test"] == pytest.approx(0.71)
    assert (at4["top_test_A"], at4["top_test_T"]) == (5.0, 300) and at4["top_test"] == pytest.approx(0.81 + 0.02 - 0.1)
    shown = levels_display(table)
    assert list(shown.columns[:3]) == ["loss", "angle (π)", "width"] and shown.iloc[0, 1] == "3"
    assert shown["best dynamic (A, T)"].tolist() == ["(5, 300)", "(10, 300)"]
    assert shown["static train / test"].iloc[0] == "0.510 ± 0.010 / 0.460 ± 0.010"
    with pytest.raises(ConfigError, match="runs"):
        levels_table(runs.drop(columns=["end_test_metric"]))


def test_contours_get_a_row_per_setting_with_static_under_every_period() -> None:
    runs = runs_frame()
    part = runs[(runs["status"] == "ok") & (runs["task_options.angle"] == 3.0)]
    grid = contour_grid(_static_under_every_period(part), "loss_options.period", "loss_options.amplitude",
                        "end_train_metric")
    assert grid.loc[1.0].tolist() == pytest.approx([0.51, 0.51])  # the static mean under T = 100 and T = 300
    assert not grid.isna().any().any()
    fig = contour_figure(runs)
    assert len(fig.axes) >= 4  # two settings × (train, test), plus colour bars
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert "width 100, dynamic_mse1, angle 3π: train accuracy" in titles
    assert "width 100, dynamic_mse1, angle 4π: test accuracy" in titles
