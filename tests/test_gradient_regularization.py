"""Regularisation against closed forms and PyTorch: penalties (gradients, ridge solution), decoupled
weight decay (= AdamW), clipping, Polyak/EMA averaging, early stopping, dropout rate."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.core.budget import Budget
from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.core.config import ConfigError
from trainlab.data.task import Split, Task
from trainlab.losses import get_loss
from trainlab.trainers import make_trainer
from trainlab.trainers.regularization import EarlyStopping, WeightAverager, make_penalty, set_dropout


def lsq_task(n: int = 60, d: int = 4, seed: int = 0) -> Task:
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(n, d)))
    y = torch.tensor(rng.normal(size=(n, 1)))
    split = Split(x, y)
    return Task("lsq", "regression", split, split, split, 1, "mse", "r2")


def test_penalty_values_and_gradients_follow_the_notes() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    params = dict(model.named_parameters())
    lam1, lam2, lam3, m = 0.3, 0.2, 0.1, 3.0
    penalty = make_penalty(model, l1=lam1, l2=lam2, lm=lam3, m=m)
    assert penalty is not None and penalty.names == ("0.weight", "2.weight")
    value = penalty(params)
    value.backward()
    for name, p in params.items():
        w = p.detach()
        if name.endswith("bias"):
            assert p.grad is None or torch.all(p.grad == 0)
            continue
        want = lam1 * w.sign() + lam2 * w + lam3 * w.sign() * w.abs() ** (m - 1)
        torch.testing.assert_close(p.grad, want)
    weights = [params["0.weight"].detach(), params["2.weight"].detach()]
    want_value = sum(lam1 * w.abs().sum() + lam2 / 2 * (w**2).sum() + lam3 / m * (w.abs() ** m).sum() for w in weights)
    torch.testing.assert_close(value.detach(), want_value)
    assert make_penalty(model) is None


class LastIterate(Callback):
    """Keeps the training weights after the latest step (the result holds the best-validation ones)."""

    def on_step_end(self, state: TrainState) -> None:
        self.weight = state.model.weight.detach().clone()


def test_gd_with_l2_converges_to_the_ridge_solution() -> None:
    """argmin (1/N)‖Xw − y‖² + (λ/2)‖w‖² = (2XᵀX/N + λI)⁻¹ 2Xᵀy/N."""
    t = lsq_task()
    x, y = t.train.x.numpy(), t.train.y.numpy()
    lam = 0.5
    model = nn.Linear(4, 1, bias=False).double()
    last = LastIterate()
    make_trainer("gd", lr=0.2, l2=lam, eval_every=1000).fit(model, t, Budget(steps=400), seed=0, callbacks=[last])
    n = len(x)
    want = np.linalg.solve(2 * x.T @ x / n + lam * np.eye(4), 2 * x.T @ y / n)
    np.testing.assert_allclose(last.weight.numpy().T, want, atol=1e-10)


def test_decoupled_weight_decay_on_adam_equals_pytorch_adamw() -> None:
    t = lsq_task()
    torch.manual_seed(0)
    a = nn.Linear(4, 1, bias=False).double()
    b = nn.Linear(4, 1, bias=False).double()
    b.load_state_dict(a.state_dict())
    make_trainer("adam", lr=0.05, decoupled_weight_decay=0.3, batch_size=16, eval_every=100).fit(
        a, t, Budget(steps=7), seed=2
    )
    make_trainer("adamw", lr=0.05, weight_decay=0.3, batch_size=16, eval_every=100).fit(b, t, Budget(steps=7), seed=2)
    torch.testing.assert_close(a.weight, b.weight)


def test_clip_by_norm_and_value_one_sgd_step() -> None:
    t = lsq_task()
    x, y = t.train.x.numpy(), t.train.y.numpy()
    w0 = np.full((4, 1), 3.0)
    grad = 2 / len(x) * x.T @ (x @ w0 - y)
    for opts, step in (
        ({"clip_norm": 0.5}, grad * 0.5 / (np.linalg.norm(grad) + 1e-6)),  # PyTorch adds 1e-6
        ({"clip_value": 0.1}, np.clip(grad, -0.1, 0.1)),
    ):
        model = nn.Linear(4, 1, bias=False).double()
        with torch.no_grad():
            model.weight.fill_(3.0)
        make_trainer("gd", lr=0.1, **opts).fit(model, t, Budget(steps=1), seed=0)
        np.testing.assert_allclose(model.weight.detach().numpy().T, w0 - 0.1 * step, rtol=1e-12)
    assert np.abs(grad).max() > 0.1 and np.linalg.norm(grad) > 0.5


def test_weight_averager_polyak_and_ema() -> None:
    model = nn.Linear(2, 1)
    iterates = []
    poly, ema = WeightAverager(model, "polyak"), WeightAverager(model, "ema", decay=0.9)
    for k in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(float(k + 1))
        iterates.append([p.detach().clone() for p in model.parameters()])
        poly.update(model)
        ema.update(model)
    for i, avg in enumerate(poly.average()):
        torch.testing.assert_close(avg, torch.stack([it[i] for it in iterates]).mean(0))
    for i, avg in enumerate(ema.average()):
        want = iterates[0][i]
        for it in iterates[1:]:
            want = 0.9 * want + 0.1 * it[i]
        torch.testing.assert_close(avg, want)
    current = [p.detach().clone() for p in model.parameters()]
    with poly.swapped():
        torch.testing.assert_close(list(model.parameters())[0].detach(), poly.average()[0])
    torch.testing.assert_close([p.detach() for p in model.parameters()], current)


class Iterates(Callback):
    def on_step_end(self, state: TrainState) -> None:
        state.log("w", w=state.model.weight.detach().clone())


def test_trainer_evaluates_and_returns_the_polyak_average() -> None:
    t = lsq_task()
    model = nn.Linear(4, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(2.0)
    result = make_trainer("gd", lr=0.05, averaging="polyak").fit(model, t, Budget(steps=30), seed=0, callbacks=[Iterates()])
    mean = torch.stack([r["w"] for r in result.records["w"]]).mean(0)
    assert result.best_epoch == 30  # averaged weights keep improving on this convex problem
    torch.testing.assert_close(model.weight.detach(), mean)
    mse = get_loss("mse")(t.val.x @ mean.T, t.val.y).item()
    assert result.history[-1]["val_loss"] == pytest.approx(mse, rel=1e-10)


def test_early_stopping_rule_and_selected_epoch() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x @ torch.randn(5, 2, generator=g)).argmax(1)
    t = Task("flip", "classification", Split(x[:150], y[:150]), Split(x[150:], 1 - y[150:]), Split(x[150:], y[150:]),
             2, "cross_entropy", "accuracy")
    result = make_trainer("adam", lr=0.05, patience=3).fit(nn.Linear(5, 2), t, Budget(epochs=50), seed=0)
    vals = [r["val_loss"] for r in result.history]
    stop = len(vals) - 1
    assert "early stopping" in result.message and stop < 50
    assert min(vals[: stop - 2]) <= min(vals[stop - 2 :])  # no improvement over the last 3 epochs
    assert result.best_epoch == 1 + int(np.argmin(vals[1:]))  # the best trained epoch (select = "trained")
    cb = EarlyStopping(patience=2, min_delta=0.5)
    state = TrainState(model=nn.Linear(1, 1), task=t, loss=get_loss("mse"), seed=0)
    for epoch, val in enumerate([3.0, 2.7, 2.6, 1.0]):
        state.epoch = epoch
        state.history.append({"epoch": epoch, "val_loss": val})
        cb.on_epoch_end(state)
        if state.stop:
            break
    assert state.stop and state.epoch == 2  # 2.7 and 2.6 improve by less than min_delta


def test_dropout_rate_is_set_or_refused() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Linear(3, 3), nn.Dropout(0.1))
    assert set_dropout(model, 0.2) == 2
    assert all(m.p == 0.2 for m in model if isinstance(m, nn.Dropout))
    t = lsq_task(d=3)
    with pytest.raises(ConfigError, match=r"trainer\.gd\.dropout: got 0\.3"):
        make_trainer("gd", dropout=0.3).fit(nn.Linear(3, 1).double(), t, Budget(steps=1), seed=0)
    with pytest.raises(ConfigError, match=r"trainer\.sgd\.dropout"):
        make_trainer("sgd", dropout=1.0)
