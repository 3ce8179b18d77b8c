"""Exports read back by the tools' own readers: TensorBoard's EventAccumulator and MLflow's client see
exactly the histories and options in the store (oracle: the store's frames). Skipped, with the reason,
when the optional extra is not installed."""
from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

from trainlab.core.budget import Spending
from trainlab.experiments.store import ResultStore
from trainlab.report.export import run_folder, scalar_tag, to_mlflow, to_tensorboard
from trainlab.trainers.result import RunResult


def _spec(seed: int, lr: float) -> dict:
    return {"task": "bcw", "model": "mlp1", "trainer": "adam", "loss": "cross_entropy", "seed": seed,
            "device": "cpu", "budget": {"epochs": 4}, "task_options": {}, "model_options": {"width": 8},
            "trainer_options": {"lr": lr, "betas": [0.9, 0.999]}, "loss_options": {}}


def _store(tmp_path):
    rng = np.random.default_rng(3)
    store = ResultStore(tmp_path / "exp" / "store.sqlite")
    for i, (lr, status) in enumerate(((0.01, "ok"), (0.1, "ok"), (1.0, "diverged"))):
        history = [{"epoch": e, "train_loss": float(rng.uniform(0.1, 1)), "val_loss": float(rng.uniform(0.1, 1)),
                    "val_metric": float(rng.uniform(0.5, 1)), "sample_evals": 300 * e, "seconds": 0.25 * e}
                   for e in range(5)]
        if status == "diverged":
            history[-1]["train_loss"] = math.nan
        result = RunResult(status=status, history=history, final={"test_metric": float(rng.uniform(0.5, 1))},  # type: ignore[arg-type]
                           best_epoch=2, spending=Spending(600, 600, 20, 0, 4, 1.0))
        store.register(f"r{i}", _spec(i, lr), experiment="demo", label=f"adam-{lr:g}", seed_index=0)
        store.save(f"r{i}", _spec(i, lr), result, metric="accuracy")
    runs, history = store.runs_frame(), store.history_frame()
    store.close()
    return tmp_path / "exp", runs, history


def test_scalar_tags():
    assert scalar_tag("val_metric") == "val/metric" and scalar_tag("sample_evals") == "spending/sample_evals"
    assert scalar_tag("epoch") is None and scalar_tag("lr") == "lr"


def test_tensorboard_export_reads_back(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed: pip install 'trainlab[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exp, runs, history = _store(tmp_path)
    folders = to_tensorboard(exp, tmp_path / "tb")
    assert len(folders) == 3
    for run in runs.to_dict("records"):
        folder = tmp_path / "tb" / run_folder(run)
        acc = EventAccumulator(str(folder))
        acc.Reload()
        rows = history[history.run_id == run["run_id"]].sort_values("epoch")
        for column in ("train_loss", "val_metric", "seconds"):
            events = acc.Scalars(scalar_tag(column))
            expected = [(int(e), v) for e, v in zip(rows["epoch"], rows[column]) if math.isfinite(v)]
            assert [(ev.step, ev.value) for ev in events] == [(s, pytest.approx(v, rel=1e-6)) for s, v in expected]
    # the CLI writes the same folders
    from trainlab.cli import main

    result = CliRunner().invoke(main, ["export", str(exp), "--format", "tensorboard", "--out", str(tmp_path / "tb2")])
    assert result.exit_code == 0, result.output
    assert "3 runs written" in result.output


def test_tensorboard_callback_logs_live(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed: pip install 'trainlab[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from trainlab.core.budget import Budget
    from trainlab.experiments.spec import RunSpec, execute
    from trainlab.report.export import TensorBoardLogger

    spec = RunSpec(task="spiral", model="spiral-mlp", trainer="sgd", budget=Budget(epochs=3), seed=1,
                   model_options={"width": 8}, trainer_options={"lr": 0.1})
    result = execute(spec, callbacks=[TensorBoardLogger(tmp_path / "live")])
    acc = EventAccumulator(str(tmp_path / "live"))
    acc.Reload()
    got = [(ev.step, ev.value) for ev in acc.Scalars("val/loss")]
    assert got == [(row["epoch"], pytest.approx(row["val_loss"], rel=1e-6)) for row in result.history[1:]]
    assert [ev.step for ev in acc.Scalars("step/lr")] == list(range(1, result.spending.steps + 1))


@pytest.mark.slow  # MLflow creates and migrates its SQLite schema: about 15 s
def test_mlflow_export_reads_back(tmp_path):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install 'trainlab[mlflow]'")
    from mlflow import MlflowClient

    exp, runs, history = _store(tmp_path)
    uri = to_mlflow(exp, tmp_path / "mlf")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("demo")
    found = {r.data.tags["trainlab.run_id"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(found) == {"r0", "r1", "r2"}
    for run in runs.to_dict("records"):
        logged = found[run["run_id"]]
        assert logged.data.params["trainer_options.lr"] == str(run["trainer_options.lr"])
        assert logged.data.tags["status"] == run["status"] and logged.data.tags["label"] == run["label"]
        assert logged.info.status == ("FINISHED" if run["status"] == "ok" else "FAILED")
        rows = history[history.run_id == run["run_id"]].sort_values("epoch")
        series = sorted((m.step, m.value) for m in client.get_metric_history(logged.info.run_id, "val_metric"))
        assert series == [(int(e), pytest.approx(v)) for e, v in zip(rows["epoch"], rows["val_metric"])]
        assert logged.data.metrics["final_test_metric"] == pytest.approx(run["final_test_metric"])
