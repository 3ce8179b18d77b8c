"""The trainer contract: every trainer declares the budget units it spends, and a budget in any other unit is
refused before anything runs (Python API, ``trainlab train``, an experiment file's ``--dry-run``)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from trainlab.cli.experiments import run
from trainlab.cli.train import train
from trainlab.core.budget import LIMITS, Budget
from trainlab.core.config import ConfigError
from trainlab.data import load_task
from trainlab.models import build_model
from trainlab.trainers import TRAINERS, make_trainer
from trainlab.trainers.callbacks import Callback, TrainState

SPIRAL = ["--task", "spiral", "--model", "spiral-mlp", "--set", "task.points=30", "--set", "model.width=4"]


class _Started(Callback):
    def __init__(self) -> None:
        self.started = False

    def on_fit_start(self, state: TrainState) -> None:
        self.started = True


def test_every_trainer_declares_units_that_are_budget_limits() -> None:
    for name in TRAINERS:
        units = make_trainer(name).budget_units
        assert units and set(units) <= set(LIMITS), name
        for unit in units:
            make_trainer(name).check_budget(Budget(**{unit: 1}))
        for unit in set(LIMITS) - set(units):
            with pytest.raises(ConfigError, match=rf"budget\.{unit}.*'{name}' trainer"):
                make_trainer(name).check_budget(Budget(epochs=1, **{unit: 1}))


def test_gradient_trainers_refuse_an_evaluation_budget_before_training() -> None:
    task = load_task("spiral", points=30)
    model = build_model("spiral-mlp", task.input_shape, task.n_outputs, width=4)
    before = [p.detach().clone() for p in model.parameters()]
    for name in ("adam", "sgd", "gd", "lbfgs", "newton", "bfgs"):
        spy = _Started()
        with pytest.raises(ConfigError) as err:
            make_trainer(name).fit(model, task, Budget(evals=50), seed=0, callbacks=[spy])
        assert str(err.value) == (
            f"budget.evals: got 50; allowed: a limit the '{name}' trainer spends: epochs, steps, sample_evals, seconds"
        )
        assert not spy.started
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_population_trainers_spend_evaluations() -> None:
    assert "evals" in make_trainer("shade").budget_units
    make_trainer("shade").check_budget(Budget(evals=50))


def test_train_command_refuses_the_budget_without_loading_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data were loaded before the budget was checked")

    monkeypatch.setattr("trainlab.experiments.spec.load_task", no_data)
    res = CliRunner().invoke(train, [*SPIRAL, "--trainer", "adam", "--evals", "50", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        "Error: budget.evals: got 50; allowed: a limit the 'adam' trainer spends: epochs, steps, sample_evals, seconds"
    ]
    assert not (tmp_path / "r").exists()


def test_dry_run_of_an_experiment_refuses_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(textwrap.dedent("""
        [experiment]
        name = "bad-budget"
        device = "cpu"

        [defaults]
        task = "spiral"
        model = "spiral-mlp"
        budget = { evals = 50 }

        [grid]
        trainer = ["shade", "adam"]
    """))
    res = CliRunner().invoke(run, [str(path), "--dry-run", "--out", str(tmp_path / "out")])
    assert res.exit_code == 1
    line, = res.output.strip().splitlines()
    assert "budget.evals" in line and "'adam' trainer" in line and "50" in line
    assert not (tmp_path / "out").exists()
