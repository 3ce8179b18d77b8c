"""The ``diagnostics`` table of runs and experiment files: validated configuration, records checked against dense
oracles at the step they were logged, the store round trip, the report's plots, the cost kept out of the budget,
and the stability limits of the update rules against torch's own optimizers."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch.func import functional_call

from trainlab.cli import main
from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.diagnostics import Diagnostics, diagnostics_config, stability_limit, update_limit
from trainlab.experiments import ResultStore, parse_experiment, run_experiment
from trainlab.experiments.spec import RunSpec, execute
from trainlab.experiments.sweep import check_compatible
from trainlab.losses import get_loss
from trainlab.report import write_report
from trainlab.trainers.callbacks import Callback, TrainState

TINY = dict(task="spiral", model="spiral-mlp", trainer="gd", loss="mse", task_options={"points": 20},
            model_options={"width": 6}, trainer_options={"lr": 0.3})
TABLE = {"curvature": {"every": 5, "top_k": 3, "trace": True}, "sharpness": {"every": 2},
         "ntk": {"every": 10, "top_k": 2, "subset": 12}, "gradient_norm": {"every": 1}, "subset": None}


class Snapshots(Callback):
    """Copies of the weights at chosen steps (the oracle's inputs)."""

    def __init__(self, steps: tuple[int, ...]):
        self.steps, self.states = steps, {}

    def on_step_end(self, state: TrainState) -> None:
        if state.step in self.steps:
            self.states[state.step] = (copy.deepcopy(state.model).double(), state.task)


def _dense_top(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (descending) of the dense Hessian of the MSE loss, by torch.autograd.functional.hessian."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])
    loss = get_loss("mse")
    model.eval()

    def f(flat: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = flat[i : i + math.prod(shape)].reshape(shape)
            i += math.prod(shape)
        return loss(functional_call(model, params, (x.double(),)), y, 0)

    hessian = torch.autograd.functional.hessian(f, theta)
    return torch.linalg.eigvalsh(hessian).flip(0)


def test_recorded_eigenvalues_equal_the_dense_hessian_at_their_step() -> None:
    snaps = Snapshots((10, 20))
    spec = RunSpec(budget=Budget(steps=20), seed=1, diagnostics=TABLE, **TINY)  # type: ignore[arg-type]
    result = execute(spec, callbacks=[snaps])
    assert result.status == "ok"
    rows = {r["step"]: r for r in result.records["curvature"]}
    assert sorted(rows) == [0, 5, 10, 15, 20]
    for step in (10, 20):
        model, task = snaps.states[step]
        dense = _dense_top(model, task.train.x, task.train.y)
        assert rows[step]["eigenvalues"] == pytest.approx(dense[:3].tolist(), rel=1e-5)
        assert rows[step]["trace"] - 4 * rows[step]["trace_stderr"] <= float(dense.sum()) <= rows[step]["trace"] + 4 * rows[step]["trace_stderr"]
        sharp = next(r for r in result.records["sharpness"] if r["step"] == step)
        assert sharp["sharpness"] == pytest.approx(float(dense[0]), rel=1e-5)
        assert sharp["limit"] == pytest.approx(2 / 0.3) and sharp["ratio"] == pytest.approx(float(dense[0]) * 0.3 / 2, rel=1e-5)
    assert [r["step"] for r in result.records["sharpness"]] == list(range(0, 21, 2))
    assert [r["step"] for r in result.records["gradient_norm"]] == list(range(21))
    assert [r["step"] for r in result.records["ntk"]] == [0, 10, 20]
    assert len(result.records["ntk"][0]["eigenvalues"]) == 2
    grads = result.records["gradient_norm"][-1]
    assert grads["total"] == pytest.approx(math.sqrt(sum(v**2 for v in grads["layers"].values())), rel=1e-10)


def test_diagnostics_leave_training_untouched_and_outside_the_time_budget() -> None:
    plain = execute(RunSpec(budget=Budget(steps=15), seed=2, **TINY))  # type: ignore[arg-type]
    watched = execute(RunSpec(budget=Budget(steps=15), seed=2, diagnostics=TABLE, **TINY))  # type: ignore[arg-type]
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in plain.history] == \
           [{k: v for k, v in r.items() if k not in drop} for r in watched.history]
    for name, value in plain.state_dict.items():
        assert torch.equal(value, watched.state_dict[name])
    env = watched.environment
    assert 0 < env["diagnostics_seconds"] <= env["wall_seconds"]
    assert env["diagnostics_seconds"] == pytest.approx(sum(r["seconds"] for rows in watched.records.values() for r in rows))


class Pause(Callback):
    """Declares a long pause: the trainer must leave it out of ``spending.seconds``."""

    def on_fit_start(self, state: TrainState) -> None:
        state.excluded_seconds += 1e6


def test_excluded_seconds_are_left_out_of_the_spending() -> None:
    result = execute(RunSpec(budget=Budget(steps=3), **TINY), callbacks=[Pause()])  # type: ignore[arg-type]
    assert -1e6 < result.spending.seconds < 0


class Excluded(Callback):
    def on_fit_end(self, state: TrainState) -> None:
        self.seconds = state.excluded_seconds


def test_the_python_api_callback_adds_exactly_its_own_time_to_the_state() -> None:
    cb, probe = Diagnostics({"sharpness": {"every": 2}}), Excluded()
    result = execute(RunSpec(budget=Budget(steps=4), **TINY), callbacks=[cb, probe])  # type: ignore[arg-type]
    assert [r["step"] for r in result.records["sharpness"]] == [0, 2, 4]
    assert probe.seconds == cb.seconds > 0


def test_the_table_resolves_defaults_and_keeps_old_identities() -> None:
    spec = RunSpec(budget=Budget(steps=4), **TINY)  # type: ignore[arg-type]
    assert "diagnostics" not in spec.to_dict()
    off = RunSpec(budget=Budget(steps=4), diagnostics={"curvature": False}, **TINY)  # type: ignore[arg-type]
    assert off.run_id() == spec.run_id()
    on = RunSpec(budget=Budget(steps=4), diagnostics={"curvature": True}, **TINY)  # type: ignore[arg-type]
    explicit = RunSpec(budget=Budget(steps=4), diagnostics={"curvature": {"every": 50, "top_k": 3}, "bn": "eval"}, **TINY)  # type: ignore[arg-type]
    assert on.run_id() == explicit.run_id() != spec.run_id()
    assert RunSpec.from_dict(on.resolved().to_dict()).run_id() == on.run_id()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"curvatur": True}, "diagnostics.curvatur: got True; allowed: a key among curvature, sharpness, ntk, gradient_norm, subset, bn, dtype, tol (did you mean 'curvature'?)"),
        ({"curvature": {"top": 3}}, "diagnostics.curvature.top: got 3; allowed: an option among every, top_k, trace, trace_matvecs (did you mean 'top_k'?)"),
        ({"sharpness": {"every": 0}}, "diagnostics.sharpness.every: got 0; allowed: an integer in [1, inf)"),
        ({"ntk": 5}, "diagnostics.ntk: got 5; allowed: a table of ntk options, true (defaults) or false (off)"),
        ({"gradient_norm": {"by": "layer"}}, "diagnostics.gradient_norm.by: got 'layer'; allowed: one of module, parameter"),
        ({"sharpness": True, "dtype": "float16"}, "diagnostics.dtype: got 'float16'; allowed: one of float64, float32"),
    ],
)
def test_bad_tables_are_refused_naming_field_value_and_allowed(table: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        diagnostics_config(table)
    assert str(err.value) == message


def test_bad_configuration_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    args = ["train", "--task", "spiral", "--model", "spiral-mlp", "--trainer", "gd", "--steps", "2",
            "--out", str(tmp_path / "run")]
    out = CliRunner().invoke(main, [*args, "--diagnostics", "curvature = { top = 3 }"])
    assert out.exit_code == 1 and "Traceback" not in out.output
    lines = out.output.strip().splitlines()
    assert lines == ["Error: diagnostics.curvature.top: got 3; allowed: an option among every, top_k, trace, "
                     "trace_matvecs (did you mean 'top_k'?)"]
    out = CliRunner().invoke(main, [*args, "--set", "diagnostics.sharpness.every=-1"])
    assert out.exit_code == 1 and out.output.strip().splitlines() == [
        "Error: diagnostics.sharpness.every: got -1; allowed: an integer in [1, inf)"]
    assert not (tmp_path / "run" / "result.json").exists()


def _experiment(extra: str = "", **tables: dict) -> dict:
    data = {
        "experiment": {"name": "diag", "seeds": 2},
        "defaults": {"task": "spiral", "model": "spiral-mlp", "loss": "mse", "budget": {"steps": 12},
                     "task_options": {"points": 20}, "model_options": {"width": 6},
                     "diagnostics": {"curvature": {"every": 4}, "subset": 30}},
        "trainers": {"gd": {"algorithm": "gd", "lr": 0.3},
                     "heavy": {"algorithm": "momentum", "lr": 0.05, "batch_size": 60,
                               "diagnostics": {"sharpness": {"every": 3}}}},
        "grid": {"trainer": ["gd", "heavy"]},
    }
    for key, value in tables.items():
        data[key] = value
    return data


def test_experiment_files_place_the_table_per_cell_and_name_the_key_of_an_error() -> None:
    exp = parse_experiment(_experiment(), source="diag.toml")
    by_label = {r.label: r.resolved["diagnostics"] for r in exp.runs}
    assert by_label["gd"]["curvature"] == {"every": 4, "top_k": 3, "trace": False, "trace_matvecs": 30}
    assert "sharpness" not in by_label["gd"] and by_label["heavy"]["sharpness"] == {"every": 3}
    assert by_label["heavy"]["subset"] == 30
    grid = _experiment(grid={"trainer": ["gd", "heavy"], "diagnostics.curvature.every": [2, 4]})
    assert sorted(r.resolved["diagnostics"]["curvature"]["every"] for r in parse_experiment(grid).runs) == [2] * 4 + [4] * 4
    bad = _experiment()
    bad["trainers"]["heavy"]["diagnostics"] = {"sharpness": {"evry": 3}}
    with pytest.raises(ConfigError) as err:
        parse_experiment(bad, source="diag.toml")
    assert str(err.value).startswith("diag.toml: trainers.heavy.diagnostics.sharpness.evry: got 3; allowed: an option among every")
    assert "(did you mean 'every'?)" in str(err.value)


def test_the_sweep_engine_refuses_cells_with_diagnostics() -> None:
    spec = RunSpec(budget=Budget(steps=4), diagnostics={"sharpness": True}, **TINY)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="specs\\[0\\].diagnostics"):
        check_compatible([spec])


def test_records_round_trip_through_the_store_and_reach_the_report(tmp_path: Path) -> None:
    exp = parse_experiment(_experiment(), source="diag.toml")
    report = run_experiment(exp, tmp_path, progress=False)
    assert report.counts == {"ok": 4}
    planned = next(r for r in exp.runs if r.label == "heavy")
    direct = execute(planned.spec)
    with ResultStore.open(tmp_path) as store:
        stored = store.result(planned.run_id, weights=False)
        runs = store.runs_frame()
        frame = store.records_frame("sharpness")
    for name in ("curvature", "sharpness"):
        assert len(stored.records[name]) == len(direct.records[name]) > 0
        for a, b in zip(stored.records[name], direct.records[name]):
            assert a.keys() == b.keys()
            assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    assert set(frame["run_id"]) == {r.run_id for r in exp.runs if r.label == "heavy"}
    assert (runs["diagnostics_seconds"] > 0).all()
    path = write_report(tmp_path, formats=("png",))
    text = path.read_text()
    assert "## Diagnostics" in text and "figures/diagnostics_sharpness_spiral.png" in text
    assert (path.parent / "figures" / "diagnostics_sharpness_spiral.png").stat().st_size > 1000
    html = (path.parent / "report.html").read_text()
    assert "λ_max of the Hessian" in html and "data:image/png;base64" in html


@pytest.mark.parametrize(("nesterov", "momentum"), [(True, 0.9), (True, 0.5), (False, 0.9)])
def test_stability_limits_separate_convergence_from_divergence_for_torch_sgd(nesterov: bool, momentum: float) -> None:
    """torch.optim.SGD (heavy ball or Nesterov) on λx²/2 converges at 0.97 × the limit and diverges at 1.03 ×."""
    lr = 0.1
    limit = update_limit("nag" if nesterov else "momentum", lr, momentum)
    assert limit == pytest.approx(stability_limit(lr, momentum, nesterov=nesterov))
    for curvature, converges in ((0.97 * limit, True), (1.03 * limit, False)):
        x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([x], lr=lr, momentum=momentum, nesterov=nesterov)
        for _ in range(2000):
            opt.zero_grad()
            (0.5 * curvature * x.square()).sum().backward()
            opt.step()
        assert abs(x.item()) < 1e-3 if converges else abs(x.item()) > 1e3


def test_adaptive_and_second_order_rules_have_no_gd_limit() -> None:
    assert update_limit("adam", 0.01) is None and update_limit("newton", 1.0) is None
    assert update_limit("sgd", None) is None
    assert update_limit(None, 0.5, 0.0) == pytest.approx(4.0)


@pytest.mark.slow
def test_a_process_pool_records_the_same_diagnostics_as_inline(tmp_path: Path) -> None:
    exp = parse_experiment(_experiment(), source="diag.toml")
    run_experiment(exp, tmp_path / "inline", progress=False)
    run_experiment(exp, tmp_path / "pool", executor="process", workers=2, progress=False)
    with ResultStore.open(tmp_path / "inline") as a, ResultStore.open(tmp_path / "pool") as b:
        for name in ("curvature", "sharpness"):
            left = a.records_frame(name).drop(columns="seconds").sort_values(["run_id", "step"]).reset_index(drop=True)
            right = b.records_frame(name).drop(columns="seconds").sort_values(["run_id", "step"]).reset_index(drop=True)
            assert len(left) > 0 and list(left["run_id"]) == list(right["run_id"])
            assert left["step"].tolist() == right["step"].tolist()
            assert right["sharpness"].to_numpy() == pytest.approx(left["sharpness"].to_numpy(), rel=1e-6)
