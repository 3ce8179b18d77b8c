"""The live progress display and the final summary of ``trainlab train``."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trainlab.core.budget import Budget
from trainlab.data import TASKS
from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.trainers.result import RunResult


class RichProgress(Callback):
    """A live progress bar over epochs (or steps) with the latest losses and metrics."""

    def __init__(self, budget: Budget, console: Console):
        self.budget, self.console = budget, console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"), console=console, transient=False,
        )
        self.bar: Any = None

    def on_fit_start(self, state: TrainState) -> None:
        unit, total = ("epoch", self.budget.epochs) if self.budget.epochs else ("step", self.budget.steps)
        self.unit = unit
        self.progress.start()
        self.bar = self.progress.add_task(unit + "s", total=total, info="")

    def on_step_end(self, state: TrainState) -> None:
        if self.unit == "step":
            self.progress.update(self.bar, completed=state.step)

    def on_epoch_end(self, state: TrainState) -> None:
        row = state.history[-1]
        info = (
            f"train {row['train_loss']:.4g}/{row['train_metric']:.4f}  "
            f"val {row['val_loss']:.4g}/{row['val_metric']:.4f}"
        )
        done = state.epoch if self.unit == "epoch" else state.step
        self.progress.update(self.bar, completed=done, info=info)

    def on_fit_end(self, state: TrainState) -> None:
        self.progress.stop()


def summary_table(result: RunResult) -> Table:
    """The final summary: status, selected epoch, metrics of the selected model, spending."""
    table = Table(title=f"run {result.config.get('run_id', '')}: {result.status}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("selected epoch (best val loss)", str(result.best_epoch))
    metric = TASKS.get(result.config["task"]).metric if "task" in result.config else "metric"
    for key, value in result.final.items():
        table.add_row(key.replace("_metric", f" {metric}").replace("_loss", " loss"), f"{value:.4f}")
    for key, value in result.spending.to_dict().items():
        table.add_row(key, f"{value:.2f}" if isinstance(value, float) else f"{value:,}")
    return table
