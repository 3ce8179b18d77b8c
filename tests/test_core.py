"""Core types: configuration errors, registries, budgets, metrics, results and the fit monitor."""
from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, r2_score
from torch import nn

from trainlab.core.budget import Budget, Spending
from trainlab.core.config import ConfigError, check_choice, check_number, from_mapping
from trainlab.data.task import Split, Task
from trainlab.losses import CrossEntropy, get_loss
from trainlab.losses.metrics import accuracy, balanced_accuracy, batch_mean, r2
from trainlab.core.registry import Registry
from trainlab.trainers.result import RunResult
from trainlab.core.seeding import derive_seed
from trainlab.trainers.base import Monitor, Trainer, task_metric


@contextlib.contextmanager
def _no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_config_errors_name_field_value_and_allowed() -> None:
    with pytest.raises(ConfigError, match=r"lr: got -0\.1; allowed: a number in \(0, inf\)"):
        check_number("lr", -0.1, low=0, low_open=True)
    with pytest.raises(ConfigError, match=r"optimizer: got 'adma'; allowed: one of adam, sgd"):
        check_choice("optimizer", "adma", ["adam", "sgd"])
    with pytest.raises(ConfigError, match="an integer"):
        check_number("epochs", 2.5, integer=True)
    with pytest.raises(ConfigError):
        check_number("lr", float("nan"))


def test_from_mapping_rejects_unknown_keys_with_prefix() -> None:
    @dataclass(frozen=True)
    class Cfg:
        lr: float = 0.1

        def __post_init__(self) -> None:
            check_number("lr", self.lr, low=0, low_open=True)

    assert from_mapping(Cfg, {"lr": 0.5}).lr == 0.5
    with pytest.raises(ConfigError, match=r"trainer\.adam\.lrr: .*allowed: an option among lr"):
        from_mapping(Cfg, {"lrr": 1}, where="trainer.adam")
    with pytest.raises(ConfigError, match=r"trainer\.adam\.lr: got 0"):
        from_mapping(Cfg, {"lr": 0}, where="trainer.adam")


def test_registry_unknown_name_lists_choices() -> None:
    reg: Registry[int] = Registry("model")
    reg.register("b")(2)
    reg.register("a")(1)
    assert reg.get("a") == 1 and reg.names() == ["a", "b"] and "b" in reg
    with pytest.raises(ConfigError, match="model: got 'c'; allowed: one of a, b"):
        reg.get("c")


def test_budget_validation_and_exhaustion() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        Budget()
    with pytest.raises(ConfigError, match="budget.epochs"):
        Budget(epochs=0)
    spent = Spending(forward_samples=70, backward_samples=30, steps=3)
    assert spent.sample_evals == 100
    assert spent.exhausted(Budget(sample_evals=100)) == "sample_evals"
    assert spent.exhausted(Budget(steps=4, epochs=1)) is None


def test_derive_seed_is_stable_and_distinct() -> None:
    assert derive_seed(1, "a") == derive_seed(1, "a")
    assert derive_seed(1, "a") != derive_seed(1, "b") != derive_seed(2, "a")


def test_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(200, 4)))
    y = torch.tensor(rng.integers(0, 4, size=200))
    pred = logits.argmax(1).numpy()
    assert balanced_accuracy(logits, y) == pytest.approx(balanced_accuracy_score(y.numpy(), pred))
    assert accuracy(logits, y) == pytest.approx((pred == y.numpy()).mean())
    yr = torch.tensor(rng.normal(size=(50, 1)))
    pr = yr + 0.3 * torch.tensor(rng.normal(size=(50, 1)))
    assert r2(pr, yr) == pytest.approx(r2_score(yr.numpy(), pr.numpy()))


def _sklearn_batch_mean(score, y: np.ndarray, pred: np.ndarray, batch: int) -> float:
    """fastai's AvgMetric written out: sklearn's score on each batch in order, weighted by the batch's size."""
    starts = range(0, len(y), batch)
    values = [score(y[i : i + batch], pred[i : i + batch]) for i in starts]
    return float(np.average(values, weights=[len(y[i : i + batch]) for i in starts]))


@pytest.mark.parametrize("batch", [1, 16, 64, 250])
def test_batch_mean_balanced_accuracy_matches_sklearn_per_batch(batch: int) -> None:
    rng = np.random.default_rng(1)
    y = torch.tensor(np.repeat([0, 1, 2, 3, 4, 5], [100, 60, 25, 8, 4, 3])[rng.permutation(200)])
    logits = torch.tensor(rng.normal(size=(200, 6))) + 2.0 * nn.functional.one_hot(y, 6)
    pred = logits.argmax(1).numpy()
    with pytest.warns(UserWarning) if batch < 200 else _no_warning():  # sklearn: classes absent from a batch
        expected = _sklearn_batch_mean(balanced_accuracy_score, y.numpy(), pred, batch)
    assert batch_mean(balanced_accuracy, logits, y, batch) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("batch", [2, 32, 45])
def test_batch_mean_r2_matches_sklearn_per_batch(batch: int) -> None:
    rng = np.random.default_rng(2)
    # rows ordered by target, so each batch's variance is small; 100 rows leave no 1-row batch (R² undefined)
    y = np.sort(rng.normal(size=100))[:, None] * 5
    pred = y + rng.normal(size=(100, 1))
    expected = _sklearn_batch_mean(r2_score, y, pred, batch)
    got = batch_mean(r2, torch.tensor(pred), torch.tensor(y), batch)
    assert got == pytest.approx(expected, rel=1e-9)
    assert got < r2(torch.tensor(pred), torch.tensor(y))


def test_batch_mean_of_accuracy_is_the_whole_split_accuracy() -> None:
    rng = np.random.default_rng(3)
    logits, y = torch.tensor(rng.normal(size=(77, 3))), torch.tensor(rng.integers(0, 3, size=77))
    assert batch_mean(accuracy, logits, y, 10) == pytest.approx(accuracy(logits, y), abs=1e-12)
    with pytest.raises(ValueError, match="batch_size"):
        batch_mean(accuracy, logits, y, 0)


def test_task_metric_follows_the_task_protocol() -> None:
    task = _tiny_task()
    logits = torch.randn(len(task.test), 2, generator=torch.Generator().manual_seed(4))
    assert task_metric(task)(logits, task.test.y) == accuracy(logits, task.test.y)
    assert task.describe()["metric_protocol"] == {"kind": "whole"}
    batched = dataclasses.replace(task, metric="balanced_accuracy", metric_batch_size=8)
    assert batched.describe()["metric_protocol"] == {"kind": "batch-mean", "batch_size": 8, "order": "split"}
    pred = logits.argmax(1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn: a batch may lack a predicted class
        expected = _sklearn_batch_mean(balanced_accuracy_score, task.test.y.numpy(), pred, 8)
    assert task_metric(batched)(logits, task.test.y) == pytest.approx(expected, abs=1e-12)


def test_losses_against_closed_forms() -> None:
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    expected = [-math.log(math.exp(2) / (math.exp(2) + 1)), -math.log(1 / (1 + math.e))]
    assert CrossEntropy().per_sample(z, y).tolist() == pytest.approx(expected)
    assert get_loss("mse")(z, y).item() == pytest.approx(((1 + 0) + (1 + 1)) / 2)


def _tiny_task(n: int = 40) -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3 * n, 2, generator=g)
    y = (x[:, 0] > 0).long()
    parts = [Split(x[i * n : (i + 1) * n], y[i * n : (i + 1) * n]) for i in range(3)]
    return Task("toy", "classification", *parts, n_outputs=2, loss="cross_entropy", metric="accuracy")


@dataclass(frozen=True)
class _NoOptions:
    pass


class _Dummy(Trainer):
    name = "dummy"

    def fit(self, *args, **kwargs):  # pragma: no cover - not used
        raise NotImplementedError


def test_monitor_selects_best_validation_epoch_and_detects_divergence(tmp_path) -> None:
    task = _tiny_task()
    model = nn.Linear(2, 2)
    mon = Monitor(_Dummy(_NoOptions()), model, task, CrossEntropy(), Budget(epochs=5), seed=0)
    mon.begin()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        loss = CrossEntropy()(model(task.train.x), task.train.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert not mon.tick(len(task.train), len(task.train), loss=loss.detach())
        assert not mon.end_epoch()
    best = min(range(4), key=lambda e: mon.state.history[e]["val_loss"])
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    assert mon.tick(1, 1, loss=torch.tensor(float("nan")))
    result = mon.finish()
    assert result.status == "diverged" and "step 4" in result.message
    assert result.best_epoch == best
    assert result.final["val_loss"] == mon.state.history[best]["val_loss"]
    assert torch.isfinite(model.weight).all(), "the best weights are restored"
    assert result.spending.forward_samples == 3 * 40 + 1 and result.spending.steps == 4
    result.save(tmp_path)
    back = RunResult.load(tmp_path)
    assert back.to_dict() == result.to_dict()
    assert torch.equal(back.state_dict["weight"], result.state_dict["weight"])
