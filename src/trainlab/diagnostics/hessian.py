"""Hessian-vector products and the dense Hessian of small models.

``H v = d/dε ∇f(θ + ε v)`` at ε = 0 (Pearlmutter 1994), three ways (``mode``):

* ``"graph"`` (default): reverse-over-reverse with the gradient's autograd graph built once
  (``create_graph=True``) and reused by every product, ``H v = ∂(∇f · v)/∂θ``;
* ``"forward"``: forward-over-reverse with ``torch.func``, ``jvp(grad f, θ, v)``, recomputed per call;
* ``"reverse"``: reverse-over-reverse with ``torch.func``, ``vjp(grad f, θ)(v)``, recomputed per call.

A batch of vectors is one vectorised pass (``vmap`` / ``is_grads_batched``), never a Python loop.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp, vmap

from trainlab.core.config import ConfigError, check_choice
from trainlab.diagnostics.lanczos import (
    Eigen,
    SpectralDensity,
    TraceEstimate,
    hutchinson_trace,
    hutchpp_trace,
    spectral_density,
    top_eigen,
)
from trainlab.core.seeding import torch_generator

if TYPE_CHECKING:
    from trainlab.diagnostics.objective import Objective

HVP_MODES = ("graph", "forward", "reverse")
TRACE_METHODS = ("hutch++", "hutchinson")


def check_vectors(v: Tensor, dim: int) -> None:
    if v.dim() not in (1, 2) or v.shape[-1] != dim:
        raise ConfigError("v", tuple(v.shape), f"shape ({dim},) or (B, {dim})")


def gradient_graph(f: Callable[[Tensor], Tensor], theta: Tensor) -> tuple[Tensor, Tensor]:
    """(∇f, leaf): the gradient at a fresh leaf copy of θ, with its graph kept for :func:`graph_hvp`."""
    leaf = theta.detach().requires_grad_(True)
    return torch.autograd.grad(f(leaf), leaf, create_graph=True)[0], leaf


def graph_hvp(gradient: Tensor, leaf: Tensor, v: Tensor) -> Tensor:
    """∂(∇f · v)/∂θ through a kept gradient graph; (B, D) batches use ``is_grads_batched``."""
    check_vectors(v, leaf.numel())
    if not gradient.requires_grad:
        return torch.zeros_like(v)
    return torch.autograd.grad(gradient, leaf, v, retain_graph=True, is_grads_batched=v.dim() == 2,
                               allow_unused=True, materialize_grads=True)[0]


def hvp(f: Callable[[Tensor], Tensor], theta: Tensor, v: Tensor, *, mode: str = "forward") -> Tensor:
    """∇²f(θ) v for ``v`` of shape (D,) or (B, D) (``mode="graph"`` builds the graph for this call only)."""
    check_choice("hvp_mode", mode, HVP_MODES)
    check_vectors(v, theta.numel())
    if mode == "graph":
        return graph_hvp(*gradient_graph(f, theta), v)
    g = grad(f)
    if mode == "forward":
        single = lambda u: jvp(g, (theta,), (u,))[1]  # noqa: E731
    else:
        pullback = vjp(g, theta)[1]
        single = lambda u: pullback(u)[0]  # noqa: E731
    return single(v) if v.dim() == 1 else vmap(single)(v)


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
