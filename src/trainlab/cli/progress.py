"""The live progress display and the final summary of ``trainlab train``."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from trainlab.core.budget import Budget
from trainlab.data import TASKS
from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.trainers.result import RunResult


UNITS = ("epochs", "steps", "evals", "sample_evals", "seconds")


class RichProgress(Callback):
    """A live progress bar in the unit of the run's budget (epochs, steps, fitness evaluations,
    sample-evaluations or seconds: the first limit set), with elapsed time, an ETA from the rate so far
    and the latest history row with labels (train/val loss and the task's metric)."""

    def __init__(self, budget: Budget, console: Console):
        self.budget, self.console = budget, console
        self.unit = next(u for u in UNITS if getattr(budget, u) is not None)
        self.total = float(getattr(budget, self.unit))
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            console=console, transient=False,
        )
        self.bar: Any = None

    def _spent(self, state: TrainState) -> float:
        if self.unit == "epochs":
            return float(state.epoch)
        if self.unit == "steps":
            return float(state.step)
        return float(getattr(state.spending, self.unit))

    def _count(self, done: float) -> str:
        if self.unit == "seconds":
            return f"{done:.0f}/{self.total:.0f} s"
        return f"{done:,.0f}/{self.total:,.0f} {self.unit.replace('_', '-')}"

    def _update(self, state: TrainState, info: str | None = None) -> None:
        done = min(self._spent(state), self.total)
        if info is None:
            self.progress.update(self.bar, completed=done, count=self._count(done))
        else:
            self.progress.update(self.bar, completed=done, count=self._count(done), info=info)

    def on_fit_start(self, state: TrainState) -> None:
        self.metric = state.task.metric
        self.progress.start()
        self.bar = self.progress.add_task("training", total=self.total, count=self._count(0.0), info="")

    def on_step_end(self, state: TrainState) -> None:
        self._update(state)

    def on_epoch_end(self, state: TrainState) -> None:
        row = state.history[-1]
        parts = [f"{split} {name} {row[f'{split}_{key}']:.4g}" for split in ("train", "val")
                 for key, name in (("loss", "loss"), ("metric", self.metric)) if f"{split}_{key}" in row]
        self._update(state, info=f"epoch {state.epoch}: " + ", ".join(parts))

    def on_fit_end(self, state: TrainState) -> None:
        self._update(state)
        self.progress.stop()


def summary_table(result: RunResult) -> Table:
    """The final summary: status, selected epoch, metrics of the selected model, spending."""
    table = Table(title=f"run {result.config.get('run_id', '')}: {result.status}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("selected epoch (best val loss)", str(result.best_epoch))
    metric = TASKS.get(result.config["task"]).metric if "task" in result.config else "metric"
    for key, value in result.final.items():
        if key == "lr":
            table.add_row("lr used", f"{value:.4g}")
        else:
            table.add_row(key.replace("_metric", f" {metric}").replace("_loss", " loss"), f"{value:.4f}")
    for key, value in result.spending.to_dict().items():
        table.add_row(key, f"{value:.2f}" if isinstance(value, float) else f"{value:,}")
    return table
