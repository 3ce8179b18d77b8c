"""The trainer contract: every trainer declares the budget units it spends, and a budget in any other unit is
refused before anything runs (Python API, ``trainlab train``, an experiment file's ``--dry-run``)."""
from __future__ import annotations

from typing import Any

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


REQUIRED: dict[str, dict[str, Any]] = {"curriculum": {"scores": "scores.npy"}}
"""Options without a default (the file is not read when the trainer is made)."""


def test_every_trainer_declares_units_that_are_budget_limits() -> None:
    for name in TRAINERS:
        units = make_trainer(name, **REQUIRED.get(name, {})).budget_units
        assert units and set(units) <= set(LIMITS), name
        for unit in units:  # (with an epoch limit too: L-SHADE plans on a known total)
            make_trainer(name, **REQUIRED.get(name, {})).check_budget(Budget(**{"epochs": 1, unit: 1}))
        for unit in set(LIMITS) - set(units):
            with pytest.raises(ConfigError, match=rf"budget\.{unit}.*'{name}' trainer"):
                make_trainer(name, **REQUIRED.get(name, {})).check_budget(Budget(epochs=1, **{unit: 1}))


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


@pytest.fixture
def scratch_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test are undone after it."""
    from trainlab.metaheuristics import SEARCHERS
    from trainlab.trainers import OPTIMIZERS
    from trainlab.trainers.population.trainer import ALGORITHMS

    for registry in (OPTIMIZERS, SEARCHERS, TRAINERS):
        monkeypatch.setattr(registry, "_items", dict(registry._items))
    monkeypatch.setattr("trainlab.trainers.population.trainer.ALGORITHMS", dict(ALGORITHMS))


def test_a_registered_optimizer_is_a_gradient_trainer(scratch_registries: None) -> None:
    from trainlab.trainers import OPTIMIZERS
    from trainlab.trainers.gradient import gradient_trainers
    from trainlab.trainers.optimizers import OptimizerSpec

    OPTIMIZERS.register("adamax")(OptimizerSpec(torch.optim.Adamax, {"lr": 2e-3, "betas": (0.9, 0.999)}, momentum_key="betas"))
    assert "adamax" in gradient_trainers()
    trainer = make_trainer("adamax", lr=0.05, batch_size=10)
    task = load_task("spiral", points=30)
    model = build_model("spiral-mlp", task.input_shape, task.n_outputs, width=4)
    initial = [p.detach().clone() for p in model.parameters()]
    result = trainer.fit(model, task, Budget(epochs=2), seed=0)
    assert result.status == "ok" and result.config["trainer"]["name"] == "adamax"
    assert result.config["trainer"]["lr"] == 0.05 and result.config["trainer"]["betas"] == (0.9, 0.999)
    assert result.spending.steps == 2 * -(-len(task.train) // 10)
    assert not all(torch.equal(a, b) for a, b in zip(initial, model.parameters()))
    with pytest.raises(ConfigError, match=r"trainer\.adamax\.momentum"):
        make_trainer("adamax", momentum=0.9)


def test_a_registered_searcher_is_a_population_trainer(scratch_registries: None) -> None:
    from trainlab.metaheuristics import SEARCHERS, DE

    @SEARCHERS.register("de-copy")
    class DECopy(DE):
        name = "de-copy"

    task = load_task("spiral", points=30)
    results = []
    for name in ("de", "de-copy"):
        model = build_model("spiral-mlp", task.input_shape, task.n_outputs, width=4)
        results.append(make_trainer(name, population_size=8).fit(model, task, Budget(evals=40), seed=3))
    # the same algorithm under two names: the same run, evaluation for evaluation
    assert [row["train_loss"] for row in results[0].history] == [row["train_loss"] for row in results[1].history]
    assert results[1].spending.evals == 40 and results[1].config["trainer"]["name"] == "de-copy"


def test_a_searcher_that_plans_on_the_total_needs_a_total(scratch_registries: None) -> None:
    make_trainer("lshade").check_budget(Budget(epochs=2))
    with pytest.raises(ConfigError, match=r"budget: .*'lshade' trainer plans on the total budget"):
        make_trainer("lshade").check_budget(Budget(steps=5))
    make_trainer("lshade", options={"max_evals": 100}).check_budget(Budget(steps=5))
