"""Population trainers end to end: exact spending, batch-norm consistency, reproducibility, CLI and files."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.data import load_task
from trainlab.experiments.spec import RunSpec, execute
from trainlab.losses import get_loss
from trainlab.models import build_model
from trainlab.trainers.population.engine import ParamLayout
from trainlab.core.seeding import torch_generator
from trainlab.trainers import make_trainer
from trainlab.trainers.base import evaluate
from trainlab.trainers.population.trainer import ALGORITHMS

FAST = {"evals_per_epoch": 30}


@pytest.fixture(scope="module")
def bcw():
    return load_task("bcw")


def fit(task, name: str, epochs: int = 2, seed: int = 0, model: str = "mlp1", **options):
    net = build_model(model, task.input_shape, task.n_outputs, generator=torch_generator(seed, "init"))
    result = make_trainer(name, **{**FAST, **options}).fit(net, task, Budget(epochs=epochs), seed)
    return net, result


@pytest.mark.parametrize("name", [  # xNES's full covariance costs O(D³) per generation: ~6 s on mlp1's weights
    pytest.param(n, marks=pytest.mark.slow) if n.startswith("evotorch-xnes") else n for n in ALGORITHMS
])
def test_every_trainer_spends_exactly_and_keeps_its_promises(bcw, name: str) -> None:
    if name.startswith("evotorch-"):
        pytest.importorskip("evotorch", reason="an optional extra: pip install 'trainlab[evotorch]'")
    ils = {"options": {"de_evals": 20, "ls_evals": 5}} if "ils" in name else {}
    net, r = fit(bcw, name, **ils)  # shade-ils: 10 + 20 + 5 (LS) + 20 + 5 (the other LS) = 60 evaluations
    n = len(bcw.train)
    assert r.status == "ok" and r.spending.epochs == 2
    memetic = name.endswith("-gd")
    assert r.spending.evals == 2 * 30  # hybrids: 29 search evaluations + the gradient result's, per epoch
    gd_samples = 2 * n if memetic else 0
    assert r.spending.forward_samples == r.spending.evals * n + gd_samples
    if not memetic and "ils" not in name:
        assert r.spending.backward_samples == 0
    else:
        assert r.spending.backward_samples > 0
    # the selected weights are in the model and reproduce the recorded metrics
    loss, metric = evaluate(net, bcw.train, get_loss("cross_entropy"), bcw.metric)
    assert loss == pytest.approx(r.final["train_loss"], rel=1e-5)
    assert metric == pytest.approx(r.final["train_metric"])
    # elitism: the best individual's training loss never increases from epoch to epoch
    train = [row["train_loss"] for row in r.history]
    assert all(b <= a + 1e-6 for a, b in zip(train, train[1:]))


def test_fitness_is_the_loss_of_the_validated_model(bcw) -> None:
    """With batch statistics, the recalibrated eval-mode model's training loss equals the best fitness."""
    _, r = fit(bcw, "shade", epochs=3)
    best = r.records["search"][0]["best_fitness"]
    assert r.history[-1]["train_loss"] == pytest.approx(best, rel=1e-5, abs=1e-6)


def test_same_seed_same_run_and_shared_initial_population(bcw) -> None:
    _, a = fit(bcw, "shade", seed=3)
    _, b = fit(bcw, "shade", seed=3)
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    for key in a.state_dict:
        assert torch.equal(a.state_dict[key], b.state_dict[key])
    _, c = fit(bcw, "de", seed=3)
    assert strip(c.history)[0] == strip(a.history)[0]  # epoch 0: same initial model for every algorithm


def test_thesis_budget_convention() -> None:
    task = load_task("spiral")
    net = build_model("spiral-mlp", task.input_shape, task.n_outputs, width=16, generator=torch_generator(0, "init"))
    r = make_trainer("de").fit(net, task, Budget(epochs=20), seed=0)
    assert r.spending.evals == 4200 and r.spending.epochs == 20 and r.spending.steps == 420
    assert r.spending.forward_samples == 4200 * len(task.train)


def test_sample_budget_and_minibatch_fitness(bcw) -> None:
    net = build_model("mlp1", bcw.input_shape, bcw.n_outputs, generator=torch_generator(0, "init"))
    r = make_trainer("shade", evals_per_epoch=50, fitness_batch=64).fit(net, bcw, Budget(sample_evals=64 * 100), 0)
    assert r.spending.forward_samples == 64 * 100 and r.spending.evals == 100


@pytest.mark.parametrize("name", ["de", "lshade"])
def test_eval_budget_not_a_multiple_of_the_population_is_exact(bcw, name: str) -> None:
    net = build_model("mlp1", bcw.input_shape, bcw.n_outputs, generator=torch_generator(0, "init"))
    r = make_trainer(name).fit(net, bcw, Budget(evals=45), 0)
    assert r.spending.evals == 45 and r.spending.forward_samples == 45 * len(bcw.train)
    assert r.status == "ok" and r.spending.epochs == 1


def test_lshade_budget_and_option_errors(bcw) -> None:
    net = build_model("mlp1", bcw.input_shape, bcw.n_outputs)
    with pytest.raises(ConfigError, match="budget"):
        make_trainer("lshade").fit(net, bcw, Budget(seconds=5), 0)
    with pytest.raises(ConfigError, match="trainer.shade.population_size"):
        make_trainer("shade", population_size=2)
    with pytest.raises(ConfigError, match="trainer.de.bogus"):
        make_trainer("de", bogus=1)
    with pytest.raises(ConfigError, match="upper"):
        make_trainer("de", lower=1.0, upper=0.0)
    with pytest.raises(ConfigError, match="shade.F"):
        make_trainer("shade", options={"F": 0.5}).fit(net, bcw, Budget(epochs=1), 0)


def test_bn_eval_mode_is_selectable(bcw) -> None:
    net, r = fit(bcw, "de", bn="eval", mode="loop")
    assert r.status == "ok" and r.records["search"][0]["engine_mode"] == "loop"


def test_experiment_spec_and_cli(bcw, tmp_path) -> None:
    spec = RunSpec(task="bcw", model="mlp2", trainer="shade-ils", budget=Budget(epochs=1), trainer_options=FAST)
    r = execute(spec)
    assert r.status == "ok" and r.spending.evals == 30
    from trainlab.cli.train import train

    out = tmp_path / "run"
    res = CliRunner().invoke(train, ["--task", "bcw", "--model", "mlp1", "--trainer", "shade-gd", "--epochs", "1",
                                     "--set", "evals_per_epoch=20", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "result.json").read_text())
    assert saved["status"] == "ok" and saved["spending"]["evals"] == 20


def test_a_sample_budget_below_one_evaluation_is_refused(bcw) -> None:
    n_train = len(bcw.train.x)
    spec = RunSpec(task="bcw", model="mlp1", trainer="shade", budget=Budget(sample_evals=n_train - 1))
    with pytest.raises(ConfigError, match=f"budget.sample_evals: got {n_train - 1}; allowed: at least {n_train} "):
        execute(spec)
    r = execute(RunSpec(task="bcw", model="mlp1", trainer="shade", budget=Budget(sample_evals=3 * n_train)))
    assert r.status == "ok" and r.spending.evals == 3 and r.spending.sample_evals == 3 * n_train


def test_genomes_round_trip_through_the_model(bcw) -> None:
    net, r = fit(bcw, "de", epochs=1)
    layout = ParamLayout.of(net)
    assert torch.equal(layout.flatten(net), torch.cat([r.state_dict[n].reshape(-1) for n in layout.names]))


def test_float64_searcher_is_selectable_and_speed_options_are_validated(bcw) -> None:
    """``dtype = "float64"`` runs the search in float64 (the network stays float32) and, its fitness being
    the same float32 loss, keeps the promise that the selected model reproduces the best fitness."""
    _, r = fit(bcw, "shade", epochs=2, dtype="float64")
    best = r.records["search"][0]["best_fitness"]
    assert r.status == "ok" and r.history[-1]["train_loss"] == pytest.approx(best, rel=1e-5, abs=1e-6)
    with pytest.raises(ConfigError, match="trainer.shade.dtype"):
        make_trainer("shade", dtype="float16")
    with pytest.raises(ConfigError, match="compile"):
        make_trainer("shade", compile=True, mode="loop")
    with pytest.raises(ConfigError, match="fitness_dtype"):
        make_trainer("shade", fitness_dtype="float16")
