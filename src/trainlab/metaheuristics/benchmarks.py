"""Standard test functions, batched: each maps (P, D) to (P,); all have minimum 0 at the origin.

Sphere Σ x²; Rosenbrock Σ 100 (x_{j+1} − x_j²)² + (1 − x_j)² (minimum 0 at (1, …, 1)); Rastrigin
10 D + Σ (x² − 10 cos 2πx); Ackley −20 exp(−0.2 √(mean x²)) − exp(mean cos 2πx) + 20 + e. Bounds are
the usual ones (CEC 2005 / 2013 conventions).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from trainlab.core.registry import Registry

FUNCTIONS: Registry[Callable[[Tensor], Tensor]] = Registry("function")
BOUNDS = {"sphere": (-100.0, 100.0), "rosenbrock": (-100.0, 100.0), "rastrigin": (-5.12, 5.12), "ackley": (-32.0, 32.0)}


@FUNCTIONS.register("sphere")
def sphere(x: Tensor) -> Tensor:
    return (x * x).sum(-1)


@FUNCTIONS.register("rosenbrock")
def rosenbrock(x: Tensor) -> Tensor:
    return (100.0 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1.0 - x[..., :-1]) ** 2).sum(-1)


@FUNCTIONS.register("rastrigin")
def rastrigin(x: Tensor) -> Tensor:
    return 10.0 * x.shape[-1] + (x * x - 10.0 * torch.cos(2 * math.pi * x)).sum(-1)


@FUNCTIONS.register("ackley")
def ackley(x: Tensor) -> Tensor:
    d = x.shape[-1]
    return (
        -20.0 * torch.exp(-0.2 * torch.sqrt((x * x).sum(-1) / d))
        - torch.exp(torch.cos(2 * math.pi * x).sum(-1) / d)
        + 20.0
        + math.e
    )


def value_and_grad(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """f(x) and ∇f(x) of a batched function at one point (D,), by autograd."""

    def vg(x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            f = fn(x[None])[0]
            (g,) = torch.autograd.grad(f, x)
        return f.detach(), g

    return vg
