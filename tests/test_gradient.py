"""Gradient trainers: optimizer updates against hand-computed formulas, GD's O(1/k) bound, spending,
divergence, configuration errors and reproducibility, on small synthetic tasks."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.core.budget import Budget
from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.core.config import ConfigError
from trainlab.data.task import Split, Task
from trainlab.losses import Loss, get_loss
from trainlab.core.seeding import torch_generator
from trainlab.trainers import TRAINERS, make_optimizer, make_trainer
from trainlab.trainers.schedules import StepDecay
from trainlab.trainers.batching import batch_starts
from trainlab.trainers.gradient import (
    GRADIENT_TRAINERS,
    StepRule,
    planned_steps,
    train_epoch,
)


def regression_task(n: int = 64, d: int = 4, seed: int = 0) -> Task:
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(n, d)), dtype=torch.float64)
    y = torch.tensor(rng.normal(size=(n, 1)), dtype=torch.float64)
    split = Split(x, y)
    return Task("lsq", "regression", split, split, split, 1, "mse", "r2")


def classification_task(n: int = 300, seed: int = 0) -> Task:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = (x @ torch.randn(5, 3, generator=g)).argmax(1)
    a, b = int(0.7 * n), int(0.85 * n)
    return Task(
        "syn", "classification", Split(x[:a], y[:a]), Split(x[a:b], y[a:b]), Split(x[b:], y[b:]), 3,
        "cross_entropy", "accuracy",
    )


def linear_model(d: int, w0: np.ndarray) -> nn.Linear:
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(w0).reshape(1, d))
    return model


def lsq_grad(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """∇ of (1/N)‖Xw − y‖²."""
    return 2.0 / len(x) * x.T @ (x @ w - y)


def reference(name: str, opts: dict, x: np.ndarray, y: np.ndarray, w: np.ndarray, steps: int) -> np.ndarray:
    """Hand-written update rules (PyTorch's documented algorithms) on the least-squares problem."""
    lr = opts["lr"]
    v = np.zeros_like(w)
    s = np.zeros_like(w)
    for t in range(1, steps + 1):
        g = lsq_grad(x, y, w)
        if name == "sgd":
            w = w - lr * g
        elif name == "momentum":
            v = opts["momentum"] * v + g if t > 1 else g
            w = w - lr * v
        elif name == "nag":
            v = opts["momentum"] * v + g if t > 1 else g
            w = w - lr * (g + opts["momentum"] * v)
        elif name == "adagrad":
            s = s + g**2
            w = w - lr * g / (np.sqrt(s) + 1e-10)
        elif name == "rmsprop":
            s = opts["alpha"] * s + (1 - opts["alpha"]) * g**2
            w = w - lr * g / (np.sqrt(s) + 1e-8)
        elif name in ("adam", "adamw"):
            b1, b2 = opts["betas"]
            if name == "adamw":
                w = w * (1 - lr * opts["weight_decay"])
            v = b1 * v + (1 - b1) * g
            s = b2 * s + (1 - b2) * g**2
            w = w - lr * (v / (1 - b1**t)) / (np.sqrt(s / (1 - b2**t)) + 1e-8)
    return w


OPTIONS = {
    "sgd": {"lr": 0.05},
    "momentum": {"lr": 0.05, "momentum": 0.8},
    "nag": {"lr": 0.05, "momentum": 0.8},
    "adagrad": {"lr": 0.1},
    "rmsprop": {"lr": 0.01, "alpha": 0.9},
    "adam": {"lr": 0.01, "betas": (0.8, 0.95)},
    "adamw": {"lr": 0.01, "betas": (0.8, 0.95), "weight_decay": 0.1},
}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_first_steps_match_hand_computed_updates(name: str) -> None:
    task = regression_task()
    x, y = task.train.x.numpy(), task.train.y.numpy()
    w0 = np.random.default_rng(1).normal(size=(4, 1))
    model = linear_model(4, w0)
    opt = make_optimizer(name, model.parameters(), **OPTIONS[name])
    gen = torch_generator(0, "batches")
    for _ in range(4):
        stats = train_epoch(model, task, get_loss("mse"), opt, batch_size=None, generator=gen)
        assert stats.steps == 1 and stats.forward_samples == stats.backward_samples == 64
    expected = reference(name, OPTIONS[name], x, y, w0, 4)
    np.testing.assert_allclose(model.weight.detach().numpy().T, expected, rtol=1e-10, atol=1e-12)


class LossTrace(Callback):
    """Records the full-batch training loss after every step."""

    def on_step_end(self, state: TrainState) -> None:
        with torch.no_grad():
            value = state.loss(state.model(state.task.train.x), state.task.train.y).item()
        state.log("trace", loss=value)


def test_gd_meets_the_o_one_over_k_bound_of_theorem_3_2() -> None:
    """f(w_k) − f* ≤ ‖w_0 − w*‖² / (2ηk) for convex L-smooth f and η = 1/L (thesis 000, Th. 3.2)."""
    task = regression_task(n=80, d=6, seed=3)
    x, y = task.train.x.numpy(), task.train.y.numpy()
    n = len(x)
    lipschitz = np.linalg.eigvalsh(2.0 / n * x.T @ x).max()
    w_star = np.linalg.lstsq(x, y, rcond=None)[0]
    f_star = float(np.mean((x @ w_star - y) ** 2))
    w0 = np.random.default_rng(4).normal(size=(6, 1)) * 3
    model = linear_model(6, w0)
    result = make_trainer("gd", lr=float(1 / lipschitz)).fit(
        model, task, Budget(steps=200), seed=0, callbacks=[LossTrace()]
    )
    losses = np.array([row["loss"] for row in result.records["trace"]])
    k = np.arange(1, len(losses) + 1)
    bound = np.sum((w0 - w_star) ** 2) * lipschitz / (2 * k)
    assert len(losses) == 200
    assert np.all(losses - f_star <= bound + 1e-12)
    assert np.all(np.diff(losses) <= 1e-12)
    assert losses[-1] - f_star < 1e-2 * (losses[0] - f_star)


def test_lbfgs_reaches_the_least_squares_solution() -> None:
    task = regression_task(n=50, d=5, seed=5)
    x, y = task.train.x.numpy(), task.train.y.numpy()
    model = linear_model(5, np.zeros((5, 1)))
    result = make_trainer("lbfgs", tolerance_grad=1e-12, tolerance_change=1e-15).fit(
        model, task, Budget(steps=3), seed=0
    )
    w_star = np.linalg.lstsq(x, y, rcond=None)[0]
    np.testing.assert_allclose(model.weight.detach().numpy().T, w_star, atol=1e-6)
    assert result.spending.steps == 3
    assert result.spending.forward_samples % 50 == 0 and result.spending.forward_samples > 3 * 50


def test_every_gradient_trainer_is_registered_and_trains() -> None:
    """Each trainer lowers its training objective from three seeded inits (validation loss is not
    asserted: L-BFGS fits this separable set in one step and may be overconfident on held-out rows)."""
    task = classification_task()
    for name in GRADIENT_TRAINERS:
        assert name in TRAINERS
        lr = {"gd": 0.5, "sgd": 0.1, "momentum": 0.05, "nag": 0.05, "adagrad": 0.1, "adam": 0.02, "adamw": 0.02,
              "rmsprop-nesterov": 0.01}.get(name)
        opts = {"lr": lr} if lr else {}
        for seed in range(3):
            g = torch_generator(seed, "init")
            model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
            with torch.no_grad():
                for p in model.parameters():
                    p.uniform_(-0.4, 0.4, generator=g)
            result = make_trainer(name, **opts).fit(model, task, Budget(epochs=15), seed=seed)
            assert result.status == "ok", name
            first = result.history[0]["train_loss"]
            assert min(r["train_loss"] for r in result.history[1:]) < 0.8 * first, (name, seed)
            assert max(r["train_metric"] for r in result.history[1:]) > 0.7, (name, seed)


def test_spending_and_batches_are_exact() -> None:
    assert batch_starts(10, 3) == [0, 3, 6]  # 10 = 3 + 3 + 4: a lone last sample joins its neighbour
    assert batch_starts(11, 3) == [0, 3, 6, 9]
    assert batch_starts(10, None) == [0] == batch_starts(10, 50)
    task = classification_task(n=300)  # 210 training samples, batches of 64 -> 4 steps per epoch
    result = make_trainer("adam", batch_size=64).fit(
        nn.Linear(5, 3), task, Budget(epochs=3), seed=0
    )
    s = result.spending
    assert (s.steps, s.forward_samples, s.backward_samples, s.epochs) == (12, 630, 630, 3)
    assert [row["epoch"] for row in result.history] == [0, 1, 2, 3]
    result = make_trainer("adam", batch_size=64).fit(nn.Linear(5, 3), task, Budget(steps=6), seed=0)
    assert result.spending.steps == 6 and result.spending.forward_samples == 210 + 64 * 2
    budget = Budget(sample_evals=1000)
    result = make_trainer("adam", batch_size=64).fit(nn.Linear(5, 3), task, budget, seed=0)
    assert result.spending.sample_evals >= 1000 > result.spending.sample_evals - 128
    assert planned_steps(budget, 210, 64) == result.spending.steps
    assert planned_steps(Budget(epochs=3, steps=7), 210, 64) == 7
    assert planned_steps(Budget(seconds=3.0), 210, 64) is None


def test_same_seed_same_run_other_seed_other_batches() -> None:
    task = classification_task()

    def run(seed: int) -> list[float]:
        torch.manual_seed(123)  # the model init only; the trainer must not depend on global RNG
        model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
        return [r["train_loss"] for r in make_trainer("sgd", lr=0.1).fit(model, task, Budget(epochs=3), seed).history]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_divergence_is_a_result_not_an_exception() -> None:
    task = regression_task()
    model = linear_model(4, np.ones((4, 1)))
    result = make_trainer("gd", lr=1e6, select="all").fit(model, task, Budget(epochs=100), seed=0)
    assert result.status == "diverged"
    assert "non-finite" in result.message
    assert 0 < result.spending.steps < 100
    assert result.best_epoch == 0 and math.isfinite(result.final["train_loss"])
    # trained epochs only (the default): the last finite trained epoch is kept, not the initial weights
    trained = make_trainer("gd", lr=1e6).fit(linear_model(4, np.ones((4, 1))), task, Budget(epochs=100), seed=0)
    assert trained.status == "diverged" and trained.best_epoch >= 1 and math.isfinite(trained.final["train_loss"])


def test_invalid_and_unknown_options_name_the_option() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.adam\.momentum: got 0\.9; allowed: an option among .*betas"):
        make_trainer("adam", momentum=0.9)
    with pytest.raises(ConfigError, match=r"trainer\.nag\.lr: got -1"):
        make_trainer("nag", lr=-1)
    with pytest.raises(ConfigError, match=r"trainer\.sgd\.schedule: got 'cyclic'; allowed: one of constant"):
        make_trainer("sgd", schedule="cyclic")
    with pytest.raises(ConfigError, match=r"trainer\.adam\.betas"):
        make_trainer("adam", betas=[0.9])
    with pytest.raises(ConfigError, match=r"trainer\.gd\.batch_size"):
        make_trainer("gd", batch_size=32)
    with pytest.raises(ConfigError, match=r"trainer: got 'adma'"):
        make_trainer("adma")
    with pytest.raises(ConfigError, match=r"optimizer\.rmsprop\.betas"):
        make_optimizer("rmsprop", nn.Linear(2, 1).parameters(), betas=(0.9, 0.9))
    trainer = make_trainer("adam", schedule="one-cycle")
    with pytest.raises(ConfigError, match=r"trainer\.adam\.schedule: got 'one-cycle'.*epochs, steps or sample_evals"):
        trainer.fit(nn.Linear(5, 3), classification_task(), Budget(seconds=1.0), seed=0)


@pytest.mark.parametrize("name", GRADIENT_TRAINERS)
def test_describe_is_resolved_and_round_trips(name: str) -> None:
    described = make_trainer(name).describe()
    options = {k: v for k, v in described.items() if k != "name"}
    assert make_trainer(name, **options).describe() == described
    assert make_trainer(name, **json.loads(json.dumps(options))).describe() == described  # as stored
    defaults = {"adam": 1e-3, "adamw": 1e-3, "lbfgs": 1.0, "adadelta": 1.0, "rmsprop-nesterov": 1e-3}
    assert described["lr"] == defaults.get(name, 0.01)


def test_train_epoch_applies_augmentation_and_schedule_without_monitor() -> None:
    task = classification_task()
    calls: list[int] = []

    def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        calls.append(len(x))
        return x + 0.01 * torch.randn(x.shape, generator=gen)

    task.augment = augment
    model = nn.Linear(5, 3)
    opt = make_optimizer("sgd", model.parameters())
    rule = StepRule(schedule=StepDecay(0.1, 2, 0.5))
    stats = train_epoch(
        model, task, get_loss("cross_entropy"), opt, batch_size=50, generator=torch_generator(0, "b"), rule=rule, step=5
    )
    assert calls == [50, 50, 50, 50, 10]
    assert stats.steps == 5 and math.isfinite(stats.loss)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** (9 // 2))  # steps 5..9


class StepRecordingLoss(Loss):
    """Cross-entropy that records the step it is called with (as dynamic losses use it)."""

    name = "recording"

    def __init__(self) -> None:
        self.steps: list[int] = []

    def per_sample(self, outputs: torch.Tensor, targets: torch.Tensor, step: int = 0) -> torch.Tensor:
        if outputs.requires_grad:  # training calls only, not the monitor's evaluations
            self.steps.append(step)
        return torch.nn.functional.cross_entropy(outputs, targets, reduction="none")


def test_the_loss_sees_the_optimizer_step_index() -> None:
    loss = StepRecordingLoss()
    make_trainer("sgd", batch_size=64).fit(nn.Linear(5, 3), classification_task(), Budget(epochs=2), seed=0, loss=loss)
    assert loss.steps == list(range(8))  # 210 samples / 64 -> 4 steps per epoch
