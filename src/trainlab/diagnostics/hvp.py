"""Hessian-vector products of a function of a flat parameter vector.

``H v = d/dε ∇f(θ + ε v)`` at ε = 0 (Pearlmutter 1994), three ways (``mode``):

* ``"graph"`` (default): reverse-over-reverse with the gradient's autograd graph built once
  (``create_graph=True``) and reused by every product, ``H v = ∂(∇f · v)/∂θ``;
* ``"forward"``: forward-over-reverse with ``torch.func``, ``jvp(grad f, θ, v)``, recomputed per call;
* ``"reverse"``: reverse-over-reverse with ``torch.func``, ``vjp(grad f, θ)(v)``, recomputed per call.

A batch of vectors is one vectorised pass (``vmap`` / ``is_grads_batched``), never a Python loop.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp, vmap

from trainlab.core.config import ConfigError, check_choice

HVP_MODES = ("graph", "forward", "reverse")


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
