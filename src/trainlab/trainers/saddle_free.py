"""Saddle-free Newton for small models (Dauphin et al. 2014, "Identifying and attacking the saddle point
problem in high-dimensional non-convex optimization").

Newton's step −H⁻¹g moves *towards* a saddle point along directions of negative curvature. The
saddle-free step rescales the gradient by the absolute Hessian instead:

    H = V Λ Vᵀ (exact eigendecomposition);  |H|_λ = V (|Λ| + λI) Vᵀ;  Δ = −|H|_λ⁻¹ g

so every eigen-direction is descended with step 1/(|λᵢ| + λ); Δ is a descent direction (gᵀΔ < 0)
for any λ > 0. Dauphin et al. use a Krylov subspace for large networks; here the Hessian is exact
(D × D), so the trainer is for models of at most ``max_params`` parameters. Everything else (exact
Hessian by ``torch.func``, Levenberg–Marquardt adaptation of λ, Armijo line search, objective mode for
batch norm, spending) is the ``newton`` trainer's.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainlab.core.config import from_mapping
from trainlab.trainers.base import TRAINERS
from trainlab.trainers.second_order import Newton, NewtonConfig


def saddle_free_direction(hessian: Tensor, grad: Tensor, damping: float) -> tuple[Tensor, float]:
    """Δ = −V(|Λ| + λI)⁻¹Vᵀ g for the symmetric ``hessian`` = VΛVᵀ; λ is floored at 1e-12·max(1, max|Λ|)
    so that the system is never singular. Returns (Δ, λ used)."""
    eigenvalues, vectors = torch.linalg.eigh((hessian + hessian.T) / 2)
    lam = max(damping, 1e-12 * max(1.0, eigenvalues.abs().max().item()))
    return -vectors @ ((vectors.T @ grad) / (eigenvalues.abs() + lam)), lam


@TRAINERS.register("saddle-free-newton")
class SaddleFreeNewton(Newton):
    """Newton with |H| in place of H (see the module docstring); options are ``newton``'s."""

    name = "saddle-free-newton"

    def __init__(self, **options: Any):
        super(Newton, self).__init__(from_mapping(NewtonConfig, options, where="trainer.saddle-free-newton"))

    def direction(self, hessian: Tensor, grad: Tensor, damping: float) -> tuple[Tensor, float]:
        return saddle_free_direction(hessian, grad, damping)
