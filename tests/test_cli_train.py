"""``trainlab train`` / ``trainlab lr-find`` through click's CliRunner: files written, options routed,
results identical to the Python API, clear errors."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from trainlab.core.budget import Budget
from trainlab.cli.train import lr_find, parse_settings, parse_value, train
from trainlab.experiments.spec import RunSpec, execute
from trainlab.trainers.result import RunResult

SPIRAL = ["--task", "spiral", "--model", "spiral-mlp", "--width", "16", "--device", "cpu"]


def test_parse_values_and_routes() -> None:
    assert parse_value("0.1") == 0.1 and parse_value("true") is True and parse_value("null") is None
    assert parse_value("[0.9, 0.99]") == [0.9, 0.99]
    assert parse_value("one-cycle") == "one-cycle"
    assert parse_value("'quoted'") == "quoted"  # a TOML string
    routed = parse_settings(["lr=0.5", "model.width=8", "task.n=50", "loss.A=2", "trainer.patience=3"])
    assert routed == {
        "trainer_options": {"lr": 0.5, "patience": 3},
        "model_options": {"width": 8},
        "task_options": {"n": 50},
        "loss_options": {"A": 2},
        "diagnostics": {},
    }
    nested = parse_settings(["diagnostics.curvature.every=50", "diagnostics.curvature.trace=true", "diagnostics.subset=64"])
    assert nested["diagnostics"] == {"curvature": {"every": 50, "trace": True}, "subset": 64}


def test_train_writes_result_and_weights_equal_to_the_python_api(tmp_path) -> None:
    out = tmp_path / "run"
    args = [*SPIRAL, "--trainer", "nag", "--epochs", "3", "--seed", "7", "--lr", "0.05", "--batch-size", "32",
            "--set", "momentum=0.8", "--schedule", "cosine", "--out", str(out)]
    res = CliRunner().invoke(train, args)
    assert res.exit_code == 0, res.output
    assert "result written" in res.output and "selected epoch" in res.output
    saved = RunResult.load(out)
    data = json.loads((out / "result.json").read_text())
    assert data["config"]["trainer"] == "nag" and data["config"]["trainer_options"]["momentum"] == 0.8
    assert data["config"]["trainer_options"]["schedule"] == "cosine" and data["environment"]
    spec = RunSpec("spiral", "spiral-mlp", "nag", Budget(epochs=3), seed=7, model_options={"width": 16},
                   trainer_options={"lr": 0.05, "batch_size": 32, "momentum": 0.8, "schedule": "cosine"})
    direct = execute(spec)
    assert _same_metrics(saved, direct)
    assert saved.config["run_id"] == direct.config["run_id"] == spec.run_id()
    assert saved.state_dict is not None and direct.state_dict is not None
    for key, value in direct.state_dict.items():
        assert torch.equal(saved.state_dict[key], value)


def test_a_saved_run_is_not_replaced_without_overwrite(tmp_path) -> None:
    out = tmp_path / "run"
    first = [*SPIRAL, "--trainer", "adam", "--epochs", "1", "--out", str(out)]
    assert CliRunner().invoke(train, first).exit_code == 0
    saved = (out / "result.json").read_bytes()
    second = [*SPIRAL, "--trainer", "sgd", "--epochs", "1", "--out", str(out)]
    res = CliRunner().invoke(train, second)
    assert res.exit_code == 1 and "--out" in res.output and "--overwrite" in res.output
    assert "Traceback" not in res.output and (out / "result.json").read_bytes() == saved
    res = CliRunner().invoke(train, [*second, "--overwrite"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "result.json").read_text())["config"]["trainer"] == "sgd"


def _same_metrics(a: RunResult, b: RunResult) -> bool:
    """Same history apart from wall time."""
    rows = [[{k: v for k, v in r.items() if k != "seconds"} for r in x.history] for x in (a, b)]
    return len(rows[0]) == 4 and rows[0] == rows[1]


def test_train_with_lr_find_saves_the_plot_and_uses_the_suggestion(tmp_path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(train, [*SPIRAL, "--steps", "5", "--lr-find", "--set", "lr_find_steps=30", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    result = RunResult.load(out, weights=False)
    assert result.history[-1]["lr"] == pytest.approx(result.records["lr_find"][0]["suggestion"])


def test_bad_options_are_clear_errors(tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(train, [*SPIRAL, "--trainer", "adam", "--set", "momentum=0.9", "--out", str(tmp_path)])
    assert res.exit_code != 0
    assert "trainer.adam.momentum: got 0.9; allowed: an option among" in res.output
    res = runner.invoke(train, [*SPIRAL, "--set", "nokey", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "key=value" in res.output
    res = runner.invoke(train, [*SPIRAL, "--schedule", "one-cycle", "--seconds", "1", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "trainer.adam.schedule" in res.output
    res = runner.invoke(train, [*SPIRAL, "--epochs", "1", "--schedule", "wavy", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "wavy" in res.output


def test_diverged_run_is_reported_not_crashed(tmp_path) -> None:
    out = tmp_path / "div"
    res = CliRunner().invoke(train, [*SPIRAL, "--trainer", "gd", "--lr", "1e6", "--loss", "mse", "--epochs", "30",
                                     "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "diverged" in res.output
    assert RunResult.load(out).status == "diverged"


def test_lr_find_command_prints_the_suggestion_and_plots(tmp_path) -> None:
    png = tmp_path / "lr.png"
    res = CliRunner().invoke(lr_find, [*SPIRAL, "--trainer", "sgd", "--num-steps", "40", "--lr-min", "1e-4",
                                       "--lr-max", "100", "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert "suggested lr (valley):" in res.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    res = CliRunner().invoke(lr_find, [*SPIRAL, "--trainer", "shade", "--out", str(png)])
    assert res.exit_code != 0 and "trainer: got 'shade'" in res.output
    res = CliRunner().invoke(lr_find, [*SPIRAL, "--trainer", "sgd", "--out", str(tmp_path / "lr.txt")])
    assert res.exit_code == 1 and "--out: got" in res.output and ".png" in res.output and "ValueError" not in res.output
    assert not (tmp_path / "lr.txt").exists()


def test_missing_data_is_refused_before_training_in_one_line(tmp_path) -> None:
    out = tmp_path / "failed"
    res = CliRunner().invoke(train, ["--task", "wqc", "--model", "mlp1", "--epochs", "1", "--device", "cpu",
                                     "--data-dir", str(tmp_path / "nowhere"), "--out", str(out)])
    assert res.exit_code == 1
    assert res.output.startswith("Error: data of task wqc") and res.output.count("\n") == 1
    assert not (out / "result.json").exists()


def test_train_population_trainer_with_an_evaluation_budget(tmp_path) -> None:
    out = tmp_path / "shade"
    res = CliRunner().invoke(train, [*SPIRAL, "--trainer", "shade", "--evals", "25", "--out", str(out)])
    assert res.exit_code == 0, res.output
    saved = RunResult.load(out, weights=False)
    assert saved.config["budget"] == {"evals": 25}
    assert saved.spending.evals == 25 and saved.spending.forward_samples == 25 * 300
