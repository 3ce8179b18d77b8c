"""``trainlab report --against``: published beside measured, on a hand-made runs frame."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from trainlab.core.config import ConfigError
from trainlab.report.against import compare, load_anchors, random_adjusted, thesis_outliers


def _runs(values: dict[tuple[str, str, str], list[float]]) -> pd.DataFrame:
    rows = []
    for (task, model, label), vals in values.items():
        for seed, v in enumerate(vals):
            rows.append({"task": task, "model": model, "label": label, "trainer": label, "seed": seed,
                         "status": "ok" if math.isfinite(v) else "diverged", "final_test_metric": v})
    return pd.DataFrame(rows)


def test_packaged_thesis000_is_the_shared_appendix() -> None:
    anchors = load_anchors("thesis000")
    assert len(anchors) == 175 and set(anchors["trainer"]) == {
        "nag", "rmsprop", "adam", "shade", "shade-ils", "shade-gd", "shade-ils-gd"}
    row = anchors[(anchors.task == "bhp") & (anchors.model == "mlp5") & (anchors.trainer == "adam")].iloc[0]
    assert row.test_metric == -3.55


def test_outliers_are_far_from_their_familys_median() -> None:
    anchors = load_anchors("thesis000")
    flagged = anchors[thesis_outliers(anchors) & anchors.trainer.isin(["nag", "rmsprop", "adam"])]
    cells = set(zip(flagged.task, flagged.model, flagged.trainer))
    assert {("bhp", "mlp5", "adam"), ("bhp", "mlp11", "adam"), ("bhp", "mlp2", "adam")} <= cells
    assert ("bhp", "mlp5", "nag") not in cells and not any(t == "bcw" for t, _, _ in cells)


def test_cells_deltas_counts_and_wilcoxon() -> None:
    anchors = load_anchors("thesis000")
    measured = {
        ("bcw", "mlp1", "nag"): [0.94, 0.96, 0.95],      # mean 0.95 = published: Δ 0
        ("bcw", "mlp2", "nag"): [0.93, 0.94, 0.95],      # published 0.97: Δ -0.03
        ("bcw", "mlp5", "nag"): [0.96, 0.97, float("nan")],  # one diverged seed, published 1.0
        ("bhp", "mlp5", "adam"): [0.85, 0.86, 0.87],     # thesis outlier (published -3.55)
    }
    result = compare(_runs(measured), anchors)
    cells = result.cells.set_index(["task", "model", "trainer"])
    assert cells.loc[("bcw", "mlp1", "nag"), "delta"] == pytest.approx(0.0, abs=1e-12)
    assert cells.loc[("bcw", "mlp2", "nag"), "delta"] == pytest.approx(-0.03)
    assert bool(cells.loc[("bcw", "mlp2", "nag"), "flag"]) and not bool(cells.loc[("bcw", "mlp1", "nag"), "flag"])
    assert cells.loc[("bcw", "mlp5", "nag"), "n"] == 2
    assert cells.loc[("bcw", "mlp5", "nag"), "mean"] == pytest.approx(0.965)
    assert cells.loc[("bcw", "mlp2", "nag"), "std"] == pytest.approx(np.std([0.93, 0.94, 0.95], ddof=1))
    assert cells.loc[("bcw", "mlp2", "nag"), "dif_rel"] == pytest.approx(-0.03 / 0.97)
    assert cells.loc[("bcw", "mlp2", "nag"), "ra_measured"] == pytest.approx((0.94 - 0.5) / 0.5)
    assert bool(cells.loc[("bhp", "mlp5", "adam"), "thesis_outlier"])
    summary = result.summary.set_index("cells")
    assert summary.loc["all cells", "within ±0.02"] == 1 and summary.loc["all cells", "within ±0.05"] == 3
    assert summary.loc["without thesis outliers", "n"] == 3
    row = result.wilcoxon.set_index("trainer").loc["all"]
    d = np.array([0.0, -0.03, -0.035])
    assert row["p"] == pytest.approx(stats.wilcoxon(d, zero_method="zsplit").pvalue)


def test_ra_is_the_thesis_tables_formula() -> None:
    # thesis Resultados, experiment 2: AdamW 0.977 and RMSProp 0.981 on MNIST/LeNet-5 give RA 0.977
    assert random_adjusted((0.977 + 0.981) / 2, "mnist") == pytest.approx(0.977, abs=5e-4)
    assert math.isnan(random_adjusted(0.8, "bhp"))


def test_bad_anchors_and_no_match_are_one_line_errors(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("task,model\nbcw,mlp1\n")
    with pytest.raises(ConfigError, match="columns"):
        load_anchors(bad)
    with pytest.raises(ConfigError, match="--against"):
        load_anchors(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="no matching cells"):
        compare(_runs({("spiral", "spiral-mlp", "adam"): [0.9]}), load_anchors("thesis000"))


def test_cli_bad_anchors_file_is_a_one_line_error(tmp_path) -> None:
    from trainlab.cli.report import report

    (tmp_path / "exp").mkdir()
    res = CliRunner().invoke(report, [str(tmp_path / "exp"), "--against", str(tmp_path / "nope.csv")])
    assert res.exit_code != 0 and "--against" in res.output and "Traceback" not in res.output
