"""What a user sees: "did you mean" for registry names, the one-line answer to a CUDA request on a build
without CUDA, the labelled progress of ``train`` and the cost-weighted ETA of an experiment."""
from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console

from trainlab.core.budget import Budget, Spending
from trainlab.trainers.callbacks import TrainState
from trainlab.core.config import ConfigError
from trainlab.data import resolve_device
from trainlab.experiments.config import load_experiment
from trainlab.experiments.executors import Outcome
from trainlab.experiments.progress import ProgressDisplay, run_name, varied_options
from trainlab.core.registry import Registry, did_you_mean
from trainlab.trainers.result import RunResult
from trainlab.trainers.base import TRAINERS


def test_registry_suggests_close_names():
    with pytest.raises(ConfigError, match=r"did you mean 'adam' or 'adamw'\?"):
        TRAINERS.get("adma")
    reg: Registry[int] = Registry("thing")
    reg.register("cross_entropy")(1)
    assert did_you_mean("crossentropy", reg.names()) == " (did you mean 'cross_entropy'?)"
    assert did_you_mean("zzz", reg.names()) == ""
    with pytest.raises(ConfigError) as err:
        reg.get("zzz")
    assert "did you mean" not in str(err.value) and "cross_entropy" in str(err.value)


def test_misspelt_options_get_suggestions():
    from trainlab.models import build_model
    from trainlab.trainers import make_trainer

    with pytest.raises(ConfigError, match=r"trainer\.adam\.lrr: .*\(did you mean 'lr'\?\)$"):
        make_trainer("adam", lrr=0.1)
    with pytest.raises(ConfigError, match=r"did you mean 'population_size'"):
        make_trainer("shade", pop_sise=10)
    with pytest.raises(ConfigError, match=r"\(did you mean 'widths'\?\)$"):
        build_model("mlp2", (4,), 2, widht=3)
    with pytest.raises(ConfigError) as err:
        make_trainer("adam", zzz=1)
    assert "did you mean" not in str(err.value)


def test_cuda_request_without_cuda_is_one_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ConfigError, match="device") as err:
        resolve_device("cuda")
    text = str(err.value)
    assert "\n" not in text
    if torch.version.cuda is None:
        assert "no CUDA support" in text and "download.pytorch.org/whl/" in text
    else:
        assert "no CUDA device is visible" in text
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")


class _Task:
    metric = "accuracy"


def test_train_progress_labels_metrics_in_the_budget_unit():
    from trainlab.cli.progress import RichProgress

    out = io.StringIO()
    bar = RichProgress(Budget(evals=300), Console(file=out, width=300, force_terminal=False))
    state = TrainState(model=torch.nn.Linear(1, 1), task=_Task(), loss=None, seed=0)  # type: ignore[arg-type]
    bar.on_fit_start(state)
    state.spending = Spending(evals=150)
    state.epoch = 1
    state.history.append({"train_loss": 0.5, "train_metric": 0.75, "val_loss": 0.625, "val_metric": 0.8})
    bar.on_epoch_end(state)
    assert bar.progress.tasks[0].completed == 150 and bar.progress.tasks[0].total == 300
    bar.on_fit_end(state)
    text = out.getvalue()
    assert "150/300 evals" in text and "ETA" in text
    assert "train loss 0.5, train accuracy 0.75, val loss 0.625, val accuracy 0.8" in text


def _outcome(run_id: str) -> Outcome:
    return Outcome(run_id, RunResult(status="ok", history=[], final={}, best_epoch=0, spending=Spending(),
                                     config={}, environment={}), "accuracy", "", "")


def test_experiment_eta_weights_remaining_runs_by_their_measured_cost():
    from importlib.resources import files

    runs = list(load_experiment(files("trainlab.experiments") / "quickstart.toml").runs)
    assert len(runs) == 60
    now = [0.0]
    display = ProgressDisplay("q", runs, Console(file=io.StringIO()), False, parallelism=2, clock=lambda: now[0])
    assert display.remaining() is None  # nothing to estimate from yet
    pick = {(r.label, r.spec.task, r.spec.model, r.seed_index): r.run_id for r in runs}
    a, b, c = pick["sgd", "bcw", "mlp1", 0], pick["shade", "bcw", "mlp1", 0], pick["sgd", "bcw", "mlp1", 1]
    display.event(("start", a, ""))
    now[0] = 10.0
    display.finished(_outcome(a))
    assert display.remaining() == pytest.approx(59 * 10 / 2)
    display.event(("start", b, ""))
    now[0] = 40.0
    display.finished(_outcome(b))
    # sgd/bcw/mlp1 2 × 10 (same cell), sgd/bcw/mlp2 3 × 10 (same label and task), shade/bcw 5 × 30,
    # the 18 other bcw runs and the 30 spiral runs at the mean of all measured runs, 20; over 2 workers
    assert display.remaining() == pytest.approx((20 + 30 + 150 + 48 * 20) / 2)
    display.event(("start", c, ""))
    display.event(("epoch", c, 5))  # half of its 10 epochs done
    assert display.remaining() == pytest.approx((20 - 5 + 30 + 150 + 48 * 20) / 2)
    # a sweep job reports the fraction of its steps done for all its runs at once
    d, e = pick["sgd", "bcw", "mlp2", 0], pick["sgd", "bcw", "mlp2", 1]
    display.event(("start", d, ""))
    display.event(("start", e, ""))
    display.event(("sweep", (d, e), 0.25))
    assert display.live[d] == display.live[e] == 0.25
    assert display.remaining() == pytest.approx((20 - 5 + 30 - 2 * 2.5 + 150 + 48 * 20) / 2)
    # live runs are named by the options that vary within a trainer label
    varied = varied_options(runs)
    assert varied[:2] == ["model", "task"] or varied[:2] == ["task", "model"]
    assert "model_options.width" in varied and "trainer_options.batch_size" not in varied
    assert run_name(pick_run(runs, c), varied).startswith("sgd ") and "#1" in run_name(pick_run(runs, c), varied)


def pick_run(runs, run_id):
    return next(r for r in runs if r.run_id == run_id)


# --------------------------------------------------------------------------------------- notebook API
def test_run_result_model_has_the_selected_weights_and_stays_in_process():
    import pickle

    from trainlab.experiments.spec import RunSpec, execute
    from trainlab.models import build_model

    result = execute(RunSpec(task="spiral", model="spiral-mlp", trainer="adam", budget=Budget(epochs=3), seed=2,
                             model_options={"width": 8}, trainer_options={"lr": 0.01}))
    assert result.status == "ok" and result.model is not None
    rebuilt = build_model("spiral-mlp", (2,), 3, width=8)
    rebuilt.load_state_dict(result.state_dict)
    x = torch.randn(5, 2)
    torch.testing.assert_close(result.model(x), rebuilt(x))  # oracle: the saved selected weights
    assert pickle.loads(pickle.dumps(result)).model is None


def test_user_objects_are_recorded_or_warned_about():
    from trainlab.data import load_task
    from trainlab.losses import get_loss
    from trainlab.models import build_model
    from trainlab.trainers import make_trainer

    task = load_task("spiral")
    model = build_model("spiral-mlp", task.input_shape, task.n_outputs, width=8)
    result = make_trainer("sgd", lr=0.1).fit(model, task, Budget(epochs=1), seed=0, loss=get_loss("mse"))
    assert result.config["model"]["name"] == "spiral-mlp" and result.config["model"]["width"] == 8
    assert result.config["loss"]["name"] == "mse" and result.config["task"]["name"] == "spiral"
    own = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    with pytest.warns(UserWarning, match="not built by trainlab.models.build_model"):
        result = make_trainer("sgd", lr=0.1).fit(own, task, Budget(epochs=1), seed=0)
    assert result.config["model"] == {"class": "torch.nn.modules.container.Sequential", "parameters": 27}


def test_set_threads_and_compare_from_a_dict(tmp_path):
    import trainlab
    from trainlab.experiments.spec import RunSpec, execute

    before = torch.get_num_threads()
    try:
        trainlab.set_threads(1)
        assert torch.get_num_threads() == 1
        with pytest.raises(ConfigError, match="threads"):
            trainlab.set_threads(0)
    finally:
        torch.set_num_threads(before)
    runs = trainlab.compare({"sgd": {"lr": 0.1}, "fast": {"algorithm": "adam", "lr": 0.01}}, task="spiral",
                            model="spiral-mlp", budget=Budget(epochs=2), seeds=2, out=tmp_path / "cmp",
                            progress=False, model_options={"width": 8})
    assert sorted(runs["label"]) == ["fast", "fast", "sgd", "sgd"] and set(runs["status"]) == {"ok"}
    row = runs[runs["label"] == "fast"].iloc[0]
    assert row["trainer"] == "adam" and row["trainer_options.lr"] == 0.01
    # oracle: the same run executed directly from its spec gives the same result
    again = execute(RunSpec(task="spiral", model="spiral-mlp", trainer="adam", budget=Budget(epochs=2),
                            seed=int(row["seed"]), model_options={"width": 8}, trainer_options={"lr": 0.01}))
    assert again.final["test_metric"] == pytest.approx(row["final_test_metric"], abs=1e-12)


def test_plan_table_has_one_row_per_grid_cell_with_its_varied_options(tmp_path):
    out = _trainlab("run", "experiments/lr-study.toml", "--dry-run", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    exp = load_experiment("experiments/lr-study.toml")
    cells = {(r.label, r.spec.model_options["width"], r.spec.trainer_options["lr"]) for r in exp.runs}
    rows = [line for line in (out.stdout + out.stderr).splitlines() if "spiral-mlp" in line]
    assert len(rows) == len(cells)  # oracle: distinct (label, width, lr) in the expanded experiment
    for label, width, lr in cells:
        assert any(f"│ {label} " in row and f"width={width} lr={lr:g}" in row for row in rows), (label, width, lr)


def test_train_with_missing_data_is_one_message_without_traceback(tmp_path):
    out = _trainlab("train", "--task", "mnist", "--model", "lenet5", "--trainer", "adam", "--epochs", "1",
                    "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"))
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr and "data set 'mnist' is not available" in out.stderr
    assert not (tmp_path / "run" / "result.json").exists()  # refused before training: nothing to record


def _trainlab(*args: str):
    """The command as a user runs it (a fresh process, so nothing is shared with other tests)."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", "from trainlab.cli import main; main()", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "200", "TRAINLAB_THREADS": "1"})


def test_task_and_model_options_vary_only_within_their_task_and_model():
    """One label over two tasks with different option sets: only what truly varies is named."""
    from trainlab.experiments.config import parse_experiment
    from trainlab.experiments.progress import varied_options

    exp = parse_experiment({
        "experiment": {"name": "two-tasks", "seeds": 1},
        "defaults": {"trainer": "adam", "budget": {"epochs": 1}},
        "grid": [{"task": ["bcw"], "model": ["mlp1"]},
                 {"task": ["spiral"], "model": ["spiral-mlp"], "model_options.width": [10, 20]}],
    })
    varied = varied_options(exp.runs)
    assert set(varied[:2]) == {"task", "model"} and varied[2:] == ["model_options.width"]
