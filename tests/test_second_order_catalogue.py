"""Fletcher–Reeves CG against linear CG on a quadratic, and saddle-free Newton against a dense
eigendecomposition and on a saddle that attracts Newton's method."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.data.task import Split, Task
from trainlab.trainers import make_trainer
from trainlab.trainers.saddle_free import saddle_free_direction


def lsq_task(n: int = 40, d: int = 5) -> tuple[Task, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, d)) * np.linspace(0.3, 3.0, d)
    y = rng.normal(size=(n, 1))
    split = Split(torch.tensor(x), torch.tensor(y))
    return Task("lsq", "regression", split, split, split, 1, "mse", "r2"), x, y


def linear(d: int, w0: np.ndarray) -> nn.Linear:
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(w0).reshape(1, d))
    return model


def test_fletcher_reeves_with_exact_line_searches_is_linear_cg() -> None:
    """f(w) = ‖Xw − y‖²/N = ½wᵀAw − bᵀw + c with A = 2XᵀX/N, b = 2Xᵀy/N: Hestenes–Stiefel iterates."""
    task, x, y = lsq_task()
    n, d = x.shape
    a, b = 2 * x.T @ x / n, 2 * x.T @ y[:, 0] / n
    w0 = np.random.default_rng(2).normal(size=d)
    w, r = w0.copy(), b - a @ w0
    p, iterates = r.copy(), []
    for _ in range(d):
        alpha = r @ r / (p @ a @ p)
        w = w + alpha * p
        r_new = r - alpha * a @ p
        p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
        iterates.append(w.copy())
    for k in (1, 2, d):
        model = linear(d, w0)
        make_trainer("cg-fr", c1=1e-12, c2=1e-9, gtol=0.0).fit(model, task, Budget(steps=k), seed=0)
        np.testing.assert_allclose(model.weight.detach().numpy()[0], iterates[k - 1], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(iterates[-1], np.linalg.solve(a, b), rtol=1e-8)


def test_fletcher_reeves_trains_a_small_network_to_a_stationary_point() -> None:
    task, _, _ = lsq_task()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    result = make_trainer("cg-fr", gtol=1e-6).fit(model, task, Budget(steps=400), seed=0)
    assert result.status == "ok"
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    assert result.spending.forward_samples >= 40 * result.spending.steps


def test_saddle_free_direction_is_the_absolute_hessian_solve() -> None:
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    eig = np.array([-3.0, -0.5, 0.2, 1.0, 4.0, -2.0])
    h, g = q @ np.diag(eig) @ q.T, rng.normal(size=6)
    want = -np.linalg.solve(q @ np.diag(np.abs(eig) + 0.1) @ q.T, g)
    got, lam = saddle_free_direction(torch.tensor(h), torch.tensor(g), 0.1)
    assert lam == 0.1
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    assert float(got @ torch.tensor(g)) < 0


def test_saddle_free_newton_escapes_the_saddle_of_a_two_layer_scalar_network() -> None:
    """f(w₁, w₂) = (w₂w₁ − 1)² has a saddle at 0 (Hessian eigenvalues ±2) and minima on w₁w₂ = 1;
    from near the saddle the ``newton`` trainer (λ raised until H + λI is positive definite, i.e. λ > 2)
    hardly moves in 3 steps, saddle-free Newton reaches a minimum."""
    split = Split(torch.ones(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64))
    task = Task("scalar", "regression", split, split, split, 1, "mse", "r2")

    def model() -> nn.Module:
        net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)).double()
        with torch.no_grad():
            net[0].weight.fill_(0.01)
            net[1].weight.fill_(-0.02)
        return net

    options = {"damping": 0.0, "adaptive": False, "line_search": "none"}
    newton = make_trainer("newton", **options).fit(model(), task, Budget(steps=3), seed=0)
    assert newton.history[-1]["train_loss"] == pytest.approx(1.0, abs=1e-3)
    net = model()
    sfn = make_trainer("saddle-free-newton", damping=1e-3).fit(net, task, Budget(steps=30), seed=0)
    assert sfn.history[-1]["train_loss"] < 1e-8
    assert float((net[1].weight * net[0].weight).detach()) == pytest.approx(1.0, abs=1e-4)


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.cg-fr\.c2: got 0\.0001; allowed: a number in \(c1=0\.001, 1\)"):
        make_trainer("cg-fr", c1=1e-3, c2=1e-4)
    with pytest.raises(ConfigError, match=r"trainer\.saddle-free-newton\.damping"):
        make_trainer("saddle-free-newton", damping=-1)
