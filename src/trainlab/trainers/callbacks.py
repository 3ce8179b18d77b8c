"""Training callbacks and the :class:`TrainState` they see.

Trainers call ``on_fit_start``, ``on_step_end`` after every optimizer step (or generation),
``on_epoch_end`` after each epoch's history row is recorded, and ``on_fit_end``. A callback may set
``state.stop = True`` to end training, and logs values with ``state.log(name, **values)``; logged
rows land in ``RunResult.records[name]``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from trainlab.core.budget import Spending
from trainlab.data.task import Task
from trainlab.losses import Loss

Penalty = Callable[[dict[str, Tensor]], Tensor]


@dataclass
class TrainState:
    """What a callback can see. ``penalty`` maps a parameter dict to the regulariser added to the loss,
    so the objective actually minimised at ``step`` is ``loss(model(x), y, step) + penalty(params)``.
    ``optimizer`` names the update rule (the trainer's ``optimizer`` option, else the trainer's name).
    A callback that measures rather than trains (diagnostics) adds its wall time to ``excluded_seconds``,
    which the trainer leaves out of ``spending.seconds``, so it never spends a time budget."""

    model: nn.Module
    task: Task
    loss: Loss
    seed: int
    spending: Spending = field(default_factory=Spending)
    epoch: int = 0
    step: int = 0
    lr: float | None = None
    momentum: float = 0.0
    optimizer: str | None = None
    penalty: Penalty | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stop: bool = False
    stop_reason: str = ""
    excluded_seconds: float = 0.0

    def log(self, name: str, **values: Any) -> None:
        self.records.setdefault(name, []).append({"step": self.step, "epoch": self.epoch, **values})


class Callback:
    """Base class with no-op hooks; override the ones you need."""

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_step_end(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_fit_end(self, state: TrainState) -> None: ...
