"""AdaDelta and RMSProp with Nesterov momentum against their published iterations, run in NumPy on a
quadratic f(x) = ½xᵀAx − bᵀx (gradient Ax − b)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.core.config import ConfigError
from trainlab.trainers import make_optimizer, make_trainer

RNG = np.random.default_rng(0)
M = RNG.normal(size=(6, 6))
A = M @ M.T / 6 + 0.5 * np.eye(6)
B = RNG.normal(size=6)
X0 = RNG.normal(size=6)


def run_torch(name: str, steps: int, **options: float) -> list[np.ndarray]:
    x = torch.tensor(X0, requires_grad=True)
    opt = make_optimizer(name, [x], **options)
    a, b = torch.tensor(A), torch.tensor(B)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * x @ a @ x - b @ x).backward()
        opt.step()
        out.append(x.detach().numpy().copy())
    return out


@pytest.mark.parametrize("lr", [1.0, 0.3])
def test_adadelta_is_zeilers_iteration(lr: float) -> None:
    """Zeiler (2012), algorithm 1, with PyTorch's extra factor lr on the applied update."""
    rho, eps = 0.9, 1e-6
    x, eg2, edx2 = X0.copy(), np.zeros(6), np.zeros(6)
    want = []
    for _ in range(25):
        g = A @ x - B
        eg2 = rho * eg2 + (1 - rho) * g**2
        dx = -np.sqrt(edx2 + eps) / np.sqrt(eg2 + eps) * g
        edx2 = rho * edx2 + (1 - rho) * dx**2
        x = x + lr * dx
        want.append(x.copy())
    np.testing.assert_allclose(run_torch("adadelta", 25, lr=lr), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_rmsprop_nesterov_is_algorithm_8_6_of_the_deep_learning_book(momentum: float) -> None:
    """θ̃ = θ + αv; g = ∇f(θ̃); r ← ρr + (1−ρ)g²; v ← αv − εg/(√r + δ); θ ← θ + v. Parameters hold θ + αv."""
    lr, rho, eps = 0.05, 0.9, 1e-8
    theta, v, r = X0.copy(), np.zeros(6), np.zeros(6)
    want = []
    for _ in range(40):
        g = A @ (theta + momentum * v) - B
        r = rho * r + (1 - rho) * g**2
        v = momentum * v - lr * g / (np.sqrt(r) + eps)
        theta = theta + v
        want.append(theta + momentum * v)
    got = run_torch("rmsprop-nesterov", 40, lr=lr, rho=rho, momentum=momentum)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)  # rounding grows where g ≈ 0 (g/√r ~ ±1)
    if momentum == 0.0:
        x = torch.tensor(X0, requires_grad=True)
        ref = torch.optim.RMSprop([x], lr=lr, alpha=rho, eps=eps)
        for _ in range(40):
            ref.zero_grad()
            (0.5 * x @ torch.tensor(A) @ x - torch.tensor(B) @ x).backward()
            ref.step()
        np.testing.assert_allclose(got[-1], x.detach().numpy(), rtol=1e-6)


def test_new_optimizers_are_trainers_with_validated_options() -> None:
    assert make_trainer("adadelta").describe()["rho"] == 0.9
    assert make_trainer("rmsprop-nesterov", momentum=0.5).describe()["momentum"] == 0.5
    with pytest.raises(ConfigError, match=r"trainer\.adadelta\.rho: got 1\.5; allowed: a number in \[0, 1\)"):
        make_trainer("adadelta", rho=1.5)
    with pytest.raises(ConfigError, match=r"trainer\.rmsprop-nesterov\.alpha"):
        make_trainer("rmsprop-nesterov", alpha=0.9)
