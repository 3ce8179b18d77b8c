"""The dense Hessian of small models, its top eigenpairs (Lanczos), spectral density (stochastic Lanczos
quadrature) and trace (Hutchinson, Hutch++), all through an :class:`~trainlab.diagnostics.objective.Objective`'s
Hessian-vector products (:mod:`trainlab.diagnostics.hvp`)."""
from __future__ import annotations

import torch
from torch import Tensor

from trainlab.core.config import check_choice
from trainlab.core.seeding import torch_generator
from trainlab.diagnostics.lanczos import (
    Eigen,
    SpectralDensity,
    TraceEstimate,
    hutchinson_trace,
    hutchpp_trace,
    spectral_density,
    top_eigen,
)
from trainlab.diagnostics.objective import Objective

TRACE_METHODS = ("hutch++", "hutchinson")


def dense_hessian(objective: Objective, batch: int = 256) -> Tensor:
    """The (D, D) Hessian of ``objective`` as H·I, ``batch`` columns per vectorised HVP (small models only).

    (``torch.func.hessian``'s nested vmap mis-handles batch norm with batch statistics in torch 2.13.)
    """
    eye = torch.eye(objective.dim, dtype=objective.theta.dtype, device=objective.theta.device)
    return torch.cat([objective.hvp(block) for block in eye.split(batch)])


def hessian_eigh(objective: Objective) -> tuple[Tensor, Tensor]:
    """All eigenvalues (descending) and eigenvectors (columns) of the dense Hessian."""
    values, vectors = torch.linalg.eigh(dense_hessian(objective))
    return values.flip(0), vectors.flip(1)


def hessian_top(objective: Objective, k: int = 3, *, seed: int = 0, tol: float = 1e-8,
                max_steps: int = 300, vectors: bool = False) -> Eigen:
    """The ``k`` largest Hessian eigenvalues (and vectors) by Lanczos from a start seeded by ``seed``."""
    theta = objective.theta
    return top_eigen(objective.hvp, objective.dim, k, generator=torch_generator(seed, "hessian-top"),
                     dtype=theta.dtype, device=theta.device, tol=tol, max_steps=max_steps, vectors=vectors)


def hessian_density(objective: Objective, *, probes: int = 10, steps: int = 80, seed: int = 0,
                    batch: int | None = None) -> SpectralDensity:
    """Hessian spectral density by stochastic Lanczos quadrature (see :func:`spectral_density`)."""
    theta = objective.theta
    return spectral_density(objective.hvp, objective.dim, generator=torch_generator(seed, "hessian-density"),
                            probes=probes, steps=min(steps, objective.dim), batch=batch,
                            dtype=theta.dtype, device=theta.device)


def hessian_trace(objective: Objective, *, matvecs: int = 30, method: str = "hutch++", seed: int = 0,
                  batch: int | None = None) -> TraceEstimate:
    """tr H from ``matvecs`` HVPs by Hutch++ (default) or Hutchinson."""
    check_choice("method", method, TRACE_METHODS)
    theta = objective.theta
    generator = torch_generator(seed, "hessian-trace")
    if method == "hutch++":
        return hutchpp_trace(objective.hvp, objective.dim, generator=generator, matvecs=matvecs, batch=batch,
                             dtype=theta.dtype, device=theta.device)
    return hutchinson_trace(objective.hvp, objective.dim, generator=generator, probes=matvecs, batch=batch,
                            dtype=theta.dtype, device=theta.device)
