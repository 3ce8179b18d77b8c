"""Headline metrics computed on output tensors (logits or predictions) and targets."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from trainlab.core.registry import Registry

Metric = Callable[[Tensor, Tensor], float]
METRICS: Registry[Metric] = Registry("metric")


@METRICS.register("accuracy")
def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Fraction of samples whose arg-max output equals the class index."""
    return (outputs.argmax(dim=1) == targets).double().mean().item()


@METRICS.register("balanced_accuracy")
def balanced_accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Mean over the classes present in ``targets`` of the per-class recall (sklearn's definition)."""
    pred = outputs.argmax(dim=1)
    classes = torch.unique(targets)
    recalls = torch.stack([(pred[targets == c] == c).double().mean() for c in classes])
    return recalls.mean().item()


@METRICS.register("r2")
def r2(outputs: Tensor, targets: Tensor) -> float:
    """Coefficient of determination 1 − SS_res / SS_tot, averaged over output columns."""
    y = targets.reshape(len(targets), -1).double()
    p = outputs.reshape(len(outputs), -1).double()
    ss_res = ((y - p) ** 2).sum(dim=0)
    ss_tot = ((y - y.mean(dim=0)) ** 2).sum(dim=0)
    return (1 - ss_res / ss_tot).mean().item()
