"""The :class:`Task` every trainer consumes: resident tensors for three splits plus what to optimise."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

SPLITS = ("train", "val", "test")
"""The three splits of every task, in this order."""


@dataclass
class Split:
    """Inputs ``x`` (N, *input_shape) float and targets ``y``: class indices (N,) long or values (N, 1) float."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: str | torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class Task:
    """A data set with its splits, default loss and headline metric, and the record of its preprocessing."""

    name: str
    kind: Literal["classification", "regression"]
    train: Split
    val: Split
    test: Split
    n_outputs: int
    loss: str
    metric: str
    classes: list[str] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None
    """Optional training-time augmentation applied by trainers to each training mini-batch on its device."""
    metric_batch_size: int | None = None
    """``None``: the metric is computed on the whole split. An integer: on consecutive batches of that many rows
    in the split's order, averaged weighted by batch size (:func:`~trainlab.losses.metrics.batch_mean`, fastai's
    ``AvgMetric``; the protocol behind Morales Muñoz 2025's balanced accuracy). Trainers get the function from
    :func:`trainlab.trainers.base.task_metric`."""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.train.x.device

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"split: got {name!r}; allowed: train, val, test")
        return getattr(self, name)

    def metric_protocol(self) -> dict[str, Any]:
        """How the metric is computed: ``{"kind": "whole"}`` or ``{"kind": "batch-mean", "batch_size": b,
        "order": "split"}`` (batches follow the split's row order)."""
        if self.metric_batch_size is None:
            return {"kind": "whole"}
        return {"kind": "batch-mean", "batch_size": self.metric_batch_size, "order": "split"}

    def to(self, device: str | torch.device) -> Task:
        return dataclasses.replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (no tensors)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "n_outputs": self.n_outputs,
            "sizes": {s: len(self.split(s)) for s in SPLITS},
            "loss": self.loss,
            "metric": self.metric,
            "metric_protocol": self.metric_protocol(),
            "preprocessing": self.preprocessing,
        }
