"""The conformance checks pass on trainlab's own optimizers, searchers and trainers and on the example plugin's,
and each fails, naming the rule, on an object that breaks it."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

from trainlab.metaheuristics import DE, SEARCHERS
from trainlab.models import MODELS
from trainlab.trainers import OPTIMIZERS, TRAINERS
from trainlab.trainers.conformance import check_optimizer, check_searcher, check_trainer
from trainlab.trainers.gradient import GradientTrainer, gradient_config
from trainlab.trainers.optimizers import OptimizerSpec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin" / "trainlab_example_plugin.py"


@pytest.fixture
def scratch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test are undone after it."""
    from trainlab.trainers.population import trainer

    for registry in (MODELS, OPTIMIZERS, SEARCHERS, TRAINERS):
        monkeypatch.setattr(registry, "_items", dict(registry._items))
    monkeypatch.setattr(trainer, "ALGORITHMS", dict(trainer.ALGORITHMS))


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_builtin_optimizers_conform(name: str) -> None:
    assert "100 steps with the defaults decrease a convex quadratic" in check_optimizer(name)


@pytest.mark.parametrize("name", SEARCHERS.names())
def test_builtin_searchers_conform(name: str) -> None:
    assert "best_f is at most the least fitness told" in check_searcher(name)


@pytest.mark.parametrize(("name", "options"), [("gd", {"lr": 0.5}), ("de", {"population_size": 8, "evals_per_epoch": 16})])
def test_builtin_trainers_conform(name: str, options: dict[str, object]) -> None:
    assert "the same seed gives the same run" in check_trainer(name, **options)


_RECURRENT_ONLY = {
    "tbptt": "truncated BPTT needs a recurrent network; tests/test_recurrent_training.py checks it",
    "curriculum": "needs a difficulty file of the spiral's size; tests/test_curriculum.py checks it",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.skip(reason=_RECURRENT_ONLY[n])) if n in _RECURRENT_ONLY else n
    for n in TRAINERS.names()
])
def test_every_builtin_trainer_conforms(name: str) -> None:
    small = {"population_size": 10, "evals_per_epoch": 20} if name in ("de", "shade", "lshade", "shade-ils", "shade-gd", "shade-ils-gd") else {}
    small = {"epochs_per_layer": 1} if name == "layerwise" else small  # 2 epochs must leave one to fine-tune
    check_trainer(name, **small)


def test_the_example_plugin_conforms(scratch: None, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("trainlab_example_plugin", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "trainlab_example_plugin", module)
    spec.loader.exec_module(module)
    check_optimizer("example-adamax")
    check_searcher("example-es")
    check_trainer("example-es", population_size=8, evals_per_epoch=16)


def test_a_diverging_optimizer_fails(scratch: None) -> None:
    OPTIMIZERS.register("sgd-too-fast")(OptimizerSpec(torch.optim.SGD, {"lr": 10.0}))
    with pytest.raises(AssertionError, match="decrease a convex quadratic"):
        check_optimizer("sgd-too-fast")


def test_a_searcher_leaving_the_box_fails(scratch: None) -> None:
    @SEARCHERS.register("de-unbounded")
    class Unbounded(DE):
        def ask(self) -> Tensor:
            return super().ask() + 10.0

    with pytest.raises(AssertionError, match="inside the box"):
        check_searcher("de-unbounded")


def test_a_trainer_claiming_a_unit_it_does_not_spend_fails(scratch: None) -> None:
    class Claims(GradientTrainer):
        budget_units = ("epochs", "evals")

    TRAINERS.register("claims-evals")(lambda **options: Claims(gradient_config("gd", options), "claims-evals"))
    with pytest.raises(AssertionError, match="a evals budget stops the run once spent"):
        check_trainer("claims-evals")
