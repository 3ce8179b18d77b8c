"""Across modules: a saved run's configuration rebuilds the same run, and the same spec gives the same numbers."""
from __future__ import annotations

import pytest
import torch

from trainlab.core.budget import Budget
from trainlab.experiments.spec import RunSpec, execute
from trainlab.models import build_model
from trainlab.trainers.result import RunResult

SPECS = [
    RunSpec(task="spiral", model="spiral-mlp", trainer="adam", budget=Budget(epochs=3), seed=3,
            model_options={"width": 16}, trainer_options={"lr": 0.01, "batch_size": 50}),
    RunSpec(task="spiral", model="spiral-mlp", trainer="gd", budget=Budget(steps=5), seed=1,
            loss="dynamic_ce", loss_options={"amplitude": 5.0, "period": 2}, model_options={"width": 8}),
    RunSpec(task="spiral", model="mlp1", trainer="shade", budget=Budget(evals=60), seed=2),
    RunSpec(task="spiral", model="spiral-mlp", trainer="bfgs", budget=Budget(epochs=3), seed=0,
            model_options={"width": 4}),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.trainer)
def test_saved_config_reproduces_the_run(spec: RunSpec, tmp_path) -> None:
    first = execute(spec)
    assert first.status == "ok", first.message
    first.save(tmp_path)
    loaded = RunResult.load(tmp_path)
    config = dict(loaded.config)
    run_id = config.pop("run_id")
    rebuilt = RunSpec.from_dict(config)
    assert rebuilt.run_id() == run_id == spec.run_id()

    again = execute(rebuilt)
    drop = {"seconds"}
    strip = lambda rows: [{k: v for k, v in row.items() if k not in drop} for row in rows]  # noqa: E731
    assert strip(again.history) == strip(first.history)
    assert all(torch.equal(again.state_dict[k], first.state_dict[k]) for k in first.state_dict)

    task_shape = {"spiral": ((2,), 3)}[spec.task]
    model = build_model(spec.model, *task_shape, **dict(rebuilt.model_options))
    model.load_state_dict(loaded.state_dict)
    assert first.environment["torch"] == torch.__version__ and first.config["trainer"] == spec.trainer
