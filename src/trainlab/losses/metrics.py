"""Headline metrics computed on output tensors (logits or predictions) and targets."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from trainlab.core.registry import Registry

Metric = Callable[[Tensor, Tensor], float]
METRICS: Registry[Metric] = Registry("metric")


@METRICS.register("accuracy")
def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Fraction of samples whose arg-max output equals the class index (of steps, for sequence
    outputs (N, T, C) against targets (N, T))."""
    return (outputs.argmax(dim=-1) == targets).double().mean().item()


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


def batch_mean(metric: Metric, outputs: Tensor, targets: Tensor, batch_size: int) -> float:
    """``metric`` on consecutive batches of ``batch_size`` rows (the split's own order; the last batch may be
    smaller), averaged with the batch sizes as weights.

    This is what fastai (Howard & Gugger 2020) reports for a metric given as a plain function: its ``AvgMetric``
    adds ``metric(batch) × len(batch)`` over the evaluation batches and divides by the number of rows. For a
    mean over rows (accuracy) it equals the whole-split value; for balanced accuracy and R² it does not: each
    batch averages recalls over the classes present in that batch only, and divides by that batch's own target
    variance (R² of a 1-row or constant-target batch is undefined: NaN or −inf here, NaN or 0 in scikit-learn).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: got {batch_size}; allowed: an integer >= 1")
    total, rows = 0.0, 0
    for i in range(0, len(targets), batch_size):
        size = len(targets[i : i + batch_size])
        total += metric(outputs[i : i + batch_size], targets[i : i + batch_size]) * size
        rows += size
    return total / rows


@METRICS.register("string_accuracy")
def string_accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Fraction of sequences (N, T, C) in which, at every step with k > 0 allowed symbols (multi-hot
    ``targets``), the k largest outputs are exactly the allowed ones (Hochreiter & Schmidhuber 1997)."""
    allowed = targets > 0.5
    lowest_allowed = torch.where(allowed, outputs, torch.full_like(outputs, math.inf)).amin(-1)
    highest_other = torch.where(allowed, torch.full_like(outputs, -math.inf), outputs).amax(-1)
    ok = (lowest_allowed > highest_other) | ~allowed.any(-1)
    return ok.all(-1).double().mean().item()
