"""Loss functions by name. Every loss maps (outputs, targets, step) to a scalar mean over samples.

``step`` is the optimisation step ``t``; static losses ignore it, dynamic losses (thesis 002) use it.
All losses are pure tensor functions, so they work under ``torch.func`` transforms (vmap, grad, hessian).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from trainlab.registry import Registry

LOSSES: Registry[type["Loss"]] = Registry("loss")


class Loss(ABC):
    """Base class: ``per_sample`` returns shape (N,); calling the loss returns its mean."""

    name: str = ""

    @abstractmethod
    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor: ...

    def __call__(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        return self.per_sample(outputs, targets, step).mean()

    def static(self) -> Loss:
        """The ordinary loss this one reduces to when nothing changes in time (itself for static losses)."""
        return self

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


def as_target_matrix(outputs: Tensor, targets: Tensor) -> Tensor:
    """Targets shaped like ``outputs``: one-hot for class indices, reshaped for values."""
    if targets.dtype in (torch.int64, torch.int32):
        return F.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)
    return targets.reshape(outputs.shape).to(outputs.dtype)


@LOSSES.register("cross_entropy")
class CrossEntropy(Loss):
    """ℓ(z, y) = −log softmax(z)_y."""

    name = "cross_entropy"

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        return F.cross_entropy(outputs, targets, reduction="none")


@LOSSES.register("mse")
class MSE(Loss):
    """ℓ(z, y) = Σ_k (z_k − y_k)², summed over outputs (one-hot targets for class indices)."""

    name = "mse"

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        return ((outputs - as_target_matrix(outputs, targets)) ** 2).sum(dim=-1)


def get_loss(name: str, **params: Any) -> Loss:
    """Instantiate the loss registered under ``name`` with ``params``."""
    return LOSSES.get(name)(**params)
