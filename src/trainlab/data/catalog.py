"""The task registry: each entry knows its options dataclass, its raw data sets and how to build a Task."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from trainlab.data.task import Task
from trainlab.core.registry import Registry

Builder = Callable[[Any, Path, torch.device, bool], Task]
"""``build(options, data_root, device, download) -> Task``."""


@dataclass(frozen=True)
class TaskEntry:
    """A registered task: ``options`` is a frozen dataclass validated on construction."""

    name: str
    description: str
    kind: Literal["classification", "regression"]
    options: type
    build: Builder
    datasets: tuple[str, ...]
    """Keys of :data:`trainlab.data.root.DATASETS` holding the raw files (empty: nothing to download)."""
    input_shape: str
    outputs: str
    metric: str
    """Headline metric, known without loading the data."""

    @property
    def loss(self) -> str:
        """Default loss: ``cross_entropy`` for classification, ``mse`` for regression."""
        return "cross_entropy" if self.kind == "classification" else "mse"


TASKS: Registry[TaskEntry] = Registry("task")


def register(entry: TaskEntry) -> TaskEntry:
    """Add ``entry`` to :data:`TASKS` under its name."""
    return TASKS.register(entry.name)(entry)
