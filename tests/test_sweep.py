"""The sweep engine: bit-for-bit equality of a cell inside a sweep of many and alone, agreement with
``execute`` (the ``gd`` trainer) and with a float64 ``gd`` fit, the model it stacks, validation, the store."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.data import load_task
from trainlab.experiments.spec import RunSpec, execute
from trainlab.experiments.store import ResultStore
from trainlab.losses import get_loss
from trainlab.models import build_model, count_parameters
from trainlab.trainers.result import RunResult
from trainlab.core.seeding import torch_generator
from trainlab.experiments.sweep import run_sweep
from trainlab.trainers import make_trainer
from trainlab.trainers.base import evaluate

WIDTH = 24


def cell(seed: int = 0, lr: float = 1.0, steps: int = 30, eval_every: int = 10, loss: str = "dynamic_ce", **loss_options: Any) -> RunSpec:
    options = {"amplitude": 1.0, "period": 10, **loss_options}
    return RunSpec(
        "spiral", "spiral-mlp", "gd", Budget(steps=steps), seed=seed, loss=loss,
        task_options={"points": 40}, model_options={"width": WIDTH},
        trainer_options={"lr": lr, "eval_every": eval_every}, loss_options=options,
    )


def without_seconds(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def grid(loss: str, lr: float, **extra: Any) -> list[RunSpec]:
    return [
        cell(seed, lr * scale, loss=loss, amplitude=a, period=t, **extra)
        for seed, scale, a, t in [(0, 1.0, 1.0, 10), (1, 0.5, 5.0, 10), (2, 1.0, 20.0, 7), (0, 0.8, 3.0, 4), (3, 1.0, 5.0, 25)]
    ]


@pytest.mark.parametrize(
    ("loss", "lr", "extra"),
    [("dynamic_ce", 1.0, {}), ("dynamic_mse1", 0.075, {}), ("dynamic_mse2", 0.075, {"rescale": True})],
)
def test_cell_in_a_sweep_of_many_equals_the_cell_alone(loss: str, lr: float, extra: dict[str, Any]) -> None:
    specs = grid(loss, lr, **extra)
    many = run_sweep(specs)
    for i in (1, 3):
        alone = run_sweep([specs[i]])[0]
        assert alone.state_dict is not None and many[i].state_dict is not None
        assert alone.state_dict.keys() == many[i].state_dict.keys()
        for key in alone.state_dict:
            assert torch.equal(alone.state_dict[key], many[i].state_dict[key]), key
        assert without_seconds(alone.history) == without_seconds(many[i].history)
        assert alone.final == many[i].final and alone.best_epoch == many[i].best_epoch
    # cells really are different configurations
    assert len({round(r.final["train_loss"], 6) for r in many}) == len(specs)


def test_chunking_does_not_change_any_cell() -> None:
    specs = grid("dynamic_ce", 1.0)
    whole = run_sweep(specs)
    chunked = run_sweep(specs, chunk_size=2)
    for a, b in zip(whole, chunked):
        assert a.state_dict is not None and b.state_dict is not None
        assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


@pytest.mark.parametrize(("loss", "lr"), [("dynamic_ce", 1.0), ("dynamic_mse2", 0.075)])
def test_sweep_matches_execute_with_the_gd_trainer(loss: str, lr: float) -> None:
    """Same initial weights (``torch_generator(seed, "init")``) and the same loss step convention as the
    ``gd`` trainer. Equality is to rounding (float32, 30 steps), not bit for bit: ``execute`` uses
    ``nn.Linear``/``addmm``, autograd and ``torch.optim.SGD``, whose summation orders may differ."""
    specs = grid(loss, lr)[1:3]
    swept = run_sweep(specs)
    for spec, result in zip(specs, swept):
        single = execute(spec)
        assert single.status == result.status == "ok"
        assert [r["epoch"] for r in single.history] == [r["epoch"] for r in result.history] == [0, 10, 20, 30]
        for a, b in zip(single.history, result.history):
            assert a.keys() == b.keys()
            for key in a:
                if key != "seconds":
                    assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
        assert single.best_epoch == result.best_epoch
        assert dataclasses.replace(single.spending, seconds=0) == dataclasses.replace(result.spending, seconds=0)
        assert single.state_dict is not None and result.state_dict is not None
        for key, value in single.state_dict.items():
            torch.testing.assert_close(result.state_dict[key], value, rtol=1e-4, atol=1e-5)
        assert result.config["run_id"] == single.config["run_id"] == spec.run_id()
        # CPU time: the sweep's job CPU shared equally by its cells
        assert result.environment["cpu_shared_by"] == len(specs) and result.environment["cpu_seconds"] > 0
        assert single.environment["cpu_seconds"] > 0 and "cpu_shared_by" not in single.environment


def test_float64_sweep_matches_a_float64_gd_fit() -> None:
    """In float64 the sweep and the ``gd`` trainer (on a float64 copy of the task and model) agree to 1e-10."""
    spec = cell(seed=4, lr=1.0, steps=60, eval_every=20, amplitude=8.0, period=9)
    result = run_sweep([spec], dtype="float64")[0]
    task = load_task("spiral", points=40)
    task = dataclasses.replace(
        task, train=_double(task.train), val=_double(task.val), test=_double(task.test)
    )
    model = build_model("spiral-mlp", (2,), 3, width=WIDTH, generator=torch_generator(4, "init")).double()
    fitted = make_trainer("gd", lr=1.0, eval_every=20).fit(
        model, task, spec.budget, 4, loss=get_loss("dynamic_ce", amplitude=8.0, period=9)
    )
    assert fitted.state_dict is not None and result.state_dict is not None
    for key, value in fitted.state_dict.items():
        assert result.state_dict[key].dtype == torch.float64
        torch.testing.assert_close(result.state_dict[key], value, rtol=1e-10, atol=1e-12)
    for a, b in zip(fitted.history, result.history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-10)


def _double(split: Any) -> Any:
    return dataclasses.replace(split, x=split.x.double())


def test_results_load_into_build_model_and_reproduce_final_metrics() -> None:
    """The stacked network is ``spiral-mlp``: its weights load into ``build_model`` and give the same metrics."""
    spec = cell(seed=2, steps=20, amplitude=4.0)
    result = run_sweep([spec, cell(seed=5, steps=20)])[0]
    model = build_model("spiral-mlp", (2,), 3, width=WIDTH)
    assert result.state_dict is not None
    assert sum(v.numel() for v in result.state_dict.values()) == count_parameters(model) == 2 * WIDTH + WIDTH + WIDTH * 3 + 3
    model.load_state_dict(result.state_dict)
    task = load_task("spiral", points=40)
    for split in ("train", "val", "test"):
        loss, metric = evaluate(model, task.split(split), get_loss("cross_entropy"), task.metric)
        assert loss == pytest.approx(result.final[f"{split}_loss"], rel=1e-6)
        assert metric == result.final[f"{split}_metric"]


def test_divergence_is_recorded_like_the_gd_trainer() -> None:
    spec = cell(seed=1, lr=40.0, steps=30, eval_every=7, loss="dynamic_mse1", amplitude=3.0)
    swept = run_sweep([spec, cell(seed=1, lr=0.05, eval_every=7, loss="dynamic_mse1")])
    single = execute(spec)
    assert single.status == swept[0].status == "diverged"
    assert swept[0].message == single.message
    assert [r["epoch"] for r in swept[0].history] == [r["epoch"] for r in single.history]
    assert swept[0].spending.steps == single.spending.steps
    assert swept[0].spending.epochs == single.spending.epochs
    assert swept[1].status == "ok" and swept[1].spending.steps == 30


def test_incompatible_specs_are_refused_by_field() -> None:
    base = cell()
    with pytest.raises(ConfigError, match=r"specs\[1\]\.budget"):
        run_sweep([base, dataclasses.replace(base, budget=Budget(steps=5))])
    with pytest.raises(ConfigError, match=r"specs\[0\]\.trainer: got 'adam'"):
        run_sweep([dataclasses.replace(base, trainer="adam")])
    with pytest.raises(ConfigError, match=r"specs\[0\]\.trainer_options\.weight_decay"):
        run_sweep([dataclasses.replace(base, trainer_options={"lr": 1.0, "weight_decay": 0.1})])
    with pytest.raises(ConfigError, match=r"specs\[1\]\.model_options"):
        run_sweep([base, dataclasses.replace(base, model_options={"width": 8})])
    with pytest.raises(ConfigError, match=r"specs\[1\]\.loss_options"):
        run_sweep([
            cell(loss="dynamic_mse2"), cell(loss="dynamic_mse2", rescale=True),
        ])
    with pytest.raises(ConfigError, match="model"):
        run_sweep([dataclasses.replace(base, model="mlp1", model_options={})])
    with pytest.raises(ConfigError, match="budget"):
        run_sweep([dataclasses.replace(base, budget=Budget(seconds=3.0))])
    with pytest.raises(ConfigError, match="dtype"):
        run_sweep([base], dtype="float16")


def test_results_go_to_the_store(tmp_path: Path) -> None:
    specs = [cell(seed=s, steps=10, amplitude=2.0) for s in range(2)]
    with ResultStore(tmp_path / "store.sqlite") as store:
        results = run_sweep(specs, store=store)
        for spec, result in zip(specs, results):
            assert store.status(spec.run_id()) == "ok"
            saved = store.result(spec.run_id())
            assert saved.final == pytest.approx(result.final)
            assert len(saved.history) == len(result.history)


# ------------------------------------------------------------------ dynamics panel, threshold, CLI


def test_dynamics_callback_against_the_monitor_and_gamma() -> None:
    from trainlab.studies.dynamics import DynamicsCallback
    from trainlab.losses import gamma

    spec = cell(seed=3, steps=12, eval_every=12, amplitude=6.0, period=5, total_steps=12)
    result = execute(spec, callbacks=[DynamicsCallback(every=1)])
    rows = result.records["dynamics"]
    assert [r["step"] for r in rows] == list(range(13))
    assert rows[-1]["loss"] == pytest.approx(result.history[-1]["train_loss"], rel=1e-6)
    assert rows[-1]["accuracy"] == result.history[-1]["train_metric"]
    for before, after in zip(rows, rows[1:]):
        assert after["loss_change"] == pytest.approx(after["loss"] - before["loss"], abs=1e-7)
        assert after["gamma"] == pytest.approx(gamma(after["step"], 3, amplitude=6.0, period=5, total_steps=12).tolist())
    static_at_end = rows[-1]["step"] >= 12 - 5
    assert static_at_end and rows[-1]["dynamic_loss"] == pytest.approx(rows[-1]["loss"])


def test_instability_onset_and_threshold_table() -> None:
    """Onset = first rise of L by more than rel_jump·L; threshold = the last λ_max measured before it."""
    from trainlab.studies.dynamics import instability_onset, threshold_table

    losses = [1.0, 0.9, 0.8, 0.7, 0.75, 0.6]
    dynamics = [{"step": t, "loss": v, "loss_change": v - (losses[t - 1] if t else float("nan"))} for t, v in enumerate(losses)]
    curvature = [{"step": 0, "eigenvalues": [1.0, 0.5]}, {"step": 2, "eigenvalues": [1.8, 0.7]}, {"step": 4, "eigenvalues": [2.2, 1.0]}]
    result = run_sweep([cell(steps=2)])[0]
    result.records = {"dynamics": dynamics, "curvature": curvature}
    assert instability_onset(result) == (4, 2.2)
    assert instability_onset(result, rel_jump=0.1) is None
    table = threshold_table([result])
    assert table.loc[0, "lr"] == 1.0 and table.loc[0, "threshold"] == 2.2 and table.loc[0, "step"] == 4


def test_cli_gamma_and_long_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from trainlab.cli.sweep import dynamic_loss

    runner = CliRunner()
    out = runner.invoke(dynamic_loss, ["gamma", "-A", "5", "-T", "10", "--out", str(tmp_path / "g.png")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "g.png").stat().st_size > 0
    out = runner.invoke(dynamic_loss, ["long-run", "--steps", "40", "--width", "8", "-A", "10", "-T", "8",
                                       "--every", "2", "--curvature-every", "20", "--out", str(tmp_path / "run")])
    assert out.exit_code == 0, out.output
    saved = RunResult.load(tmp_path / "run", weights=False)
    assert len(saved.records["dynamics"]) == 21 and len(saved.records["curvature"]) == 3
    assert (tmp_path / "run" / "dynamics.png").is_file()


@pytest.mark.parametrize("select", ["trained", "all"])
@pytest.mark.parametrize("lr", [1.0, 8.0])
def test_a_cell_and_a_plain_run_record_the_same_history_and_select_the_same_epoch(lr: float, select: str) -> None:
    """On the same (float64) trajectory the sweep and ``Monitor`` record the same rows (keys in order, epochs,
    values) and select the same epoch: at lr 8 the untrained epoch 0 has the lowest validation loss, so
    ``select="all"`` picks it and ``"trained"`` a trained epoch."""
    spec = dataclasses.replace(cell(seed=4, lr=lr, steps=60, eval_every=5, amplitude=8.0, period=9),
                               trainer_options={"lr": lr, "eval_every": 5, "select": select})
    swept = run_sweep([spec, cell(seed=1, steps=60, eval_every=5)], dtype="float64")[0]
    task = load_task("spiral", points=40)
    task = dataclasses.replace(task, train=_double(task.train), val=_double(task.val), test=_double(task.test))
    model = build_model("spiral-mlp", (2,), 3, width=WIDTH, generator=torch_generator(4, "init")).double()
    fitted = make_trainer("gd", lr=lr, eval_every=5, select=select).fit(
        model, task, spec.budget, 4, loss=get_loss("dynamic_ce", amplitude=8.0, period=9)
    )
    assert [list(row) for row in swept.history] == [list(row) for row in fitted.history]
    for a, b in zip(without_seconds(fitted.history), without_seconds(swept.history)):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12)
    val = {int(r["epoch"]): r["val_loss"] for r in fitted.history}
    candidates = [e for e in val if select == "all" or e > 0]
    assert swept.best_epoch == fitted.best_epoch == min(candidates, key=val.__getitem__)
    assert swept.final == pytest.approx(fitted.final, rel=1e-9, abs=1e-12)
    if lr == 8.0:
        assert (fitted.best_epoch == 0) == (select == "all")
