"""One run's history rows and the selection of its model: the rule :class:`~trainlab.trainers.base.Monitor` and
the sweep engine (:mod:`trainlab.experiments.sweep`) share.

A history row is ``{"epoch", <split>_loss, <split>_metric for train/val/test, the spending, "lr"}``. The
selected model is the one of the recorded row with the lowest validation loss (as in Morales Muñoz 2025);
:data:`SELECTIONS` says which rows are candidates. A row whose training loss is not finite marks the run
diverged and is never selected.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from trainlab.core.budget import Spending
from trainlab.core.config import check_choice
from trainlab.data.task import SPLITS

SELECTIONS = ("trained", "all")
"""Candidates for the selected model: trained epochs only (fastai's ``SaveModelCallback``, which compares
epochs at their end, so never the initial weights), or every recorded epoch including epoch 0."""


class Keep(Enum):
    """What the caller of :meth:`History.add` must snapshot of the weights that produced the row."""

    NOTHING = 0
    INITIAL = 1
    """Epoch 0 under ``select="trained"``: the fallback, selected only if no trained epoch ever is."""
    BEST = 2
    """The new selected model."""


@dataclass(frozen=True)
class Verdict:
    """What :meth:`History.add` concluded from a row: the weights to keep, and why the run diverged (empty
    unless the row's training loss is not finite)."""

    keep: Keep
    divergence: str = ""


class History:
    """History rows and the selection rule (:data:`SELECTIONS`); the caller keeps the weights it is told to."""

    def __init__(self, select: str = "trained"):
        check_choice("select", select, SELECTIONS)
        self.select = select
        self.rows: list[dict[str, float]] = []
        self.best_val = math.inf
        self.best_epoch = 0

    @staticmethod
    def row(epoch: int, scores: Mapping[str, tuple[float, float]], spending: Spending,
            lr: float | None = None) -> dict[str, float]:
        """The history row of ``epoch``: (loss, metric) per split from ``scores``, the spending (its ``epochs``
        is the row's ``epoch``) and the learning rate in force."""
        row: dict[str, float] = {"epoch": epoch}
        for name in SPLITS:
            row[f"{name}_loss"], row[f"{name}_metric"] = scores[name]
        row.update({key: value for key, value in spending.to_dict().items() if key != "epochs"})
        if lr is not None:
            row["lr"] = lr
        return row

    def add(self, row: dict[str, float]) -> Verdict:
        """Append ``row``; returns which weights (those that produced it) the caller must keep and whether the
        run diverged."""
        self.rows.append(row)
        epoch = int(row["epoch"])
        initial = epoch == 0 and self.select == "trained"
        keep = Keep.INITIAL if initial else Keep.NOTHING
        if not math.isfinite(row["train_loss"]):
            return Verdict(keep, f"non-finite training loss at epoch {epoch}")
        if not initial and row["val_loss"] < self.best_val:
            self.best_val, self.best_epoch = row["val_loss"], epoch
            keep = Keep.BEST
        return Verdict(keep)

    @property
    def selected(self) -> dict[str, float]:
        """The selected row (epoch 0 when no candidate was ever selected)."""
        return next(row for row in self.rows if row["epoch"] == self.best_epoch)

    def final(self) -> dict[str, Any]:
        """The selected row's losses and metrics (``RunResult.final``)."""
        chosen = self.selected
        return {key: chosen[key] for key in chosen if key.split("_")[0] in SPLITS}
