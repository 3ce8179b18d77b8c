"""The progress display of an experiment: runs done out of planned, status counts, the live runs named by
the parameters that vary in the grid with how far each has got, and an ETA weighted by what the remaining
runs are expected to cost.

Cost model: a run's expected wall time is the mean time measured for finished runs of the same cell
(its configuration without seed and learning rate: same task, model, trainer label, budget and options),
else of the same trainer label on the same task, else of every finished run, divided by the number of runs
a sweep job trained together. Before any run has finished, runs in progress give the estimate from how
far they have got (epochs out of the budget, or the sweep engine's steps). The remaining time is the sum
of the remaining runs' expected times, less the part live runs have done, over the executor's
parallelism.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trainlab.experiments.config import PlannedRun
from trainlab.experiments.executors import Event, Outcome


def _flat(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = repr(value)
    return out


def varied_options(runs: Sequence[PlannedRun]) -> list[str]:
    """Dotted option names (``task``, ``model_options.width``, ``trainer_options.lr``, ...) that take more
    than one value among the runs of one trainer label (the label itself is always shown), without
    ``seed``; ``task`` and ``model`` first. A task's options count as varied only among runs of the same
    task, a model's only among runs of the same model: bcw and the spiral have different options, which
    is not a variation a reader needs to see."""
    values: dict[tuple[object, ...], set[str | None]] = {}
    flats = [(r.label, _flat(r.resolved)) for r in runs]
    keys = {k for _, f in flats for k in f} - {"seed"}
    for label, flat in flats:
        for key in keys:
            scope: tuple[object, ...] = (label,)
            if key.startswith("task_options."):
                scope = (label, flat.get("task"))
            elif key.startswith("model_options."):
                scope = (label, flat.get("model"))
            values.setdefault((*scope, key), set()).add(flat.get(key))
    varied = {group[-1] for group, seen in values.items() if len(seen) > 1}
    return sorted((str(k) for k in varied), key=lambda k: (k not in ("task", "model"), k))


def run_name(run: PlannedRun, varied: Sequence[str]) -> str:
    """``"adam lr=0.01 width=100 #1"``: the label, the varied options' values (short names) and the seed
    index."""
    flat = _flat(run.resolved)
    parts = [f"{k.split('.')[-1]}={flat[k].strip(chr(39))}" for k in varied if k in flat]
    return " ".join([run.label, *parts, f"#{run.seed_index}"])


def _cell(run: PlannedRun) -> str:
    flat = _flat(run.resolved)
    return repr(sorted((k, v) for k, v in flat.items() if k not in ("seed", "trainer_options.lr")))


def _fmt(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressDisplay:
    """One progress bar for the whole experiment (see the module docstring); ``clock`` is a seam for tests."""

    def __init__(self, name: str, todo: Sequence[PlannedRun], console: Console | None, enabled: bool,
                 parallelism: int = 1, clock: Any = time.monotonic):
        self.runs = {r.run_id: r for r in todo}
        self.cells = {r.run_id: _cell(r) for r in todo}
        self.groups = {r.run_id: (r.label, r.spec.task) for r in todo}
        self.varied = varied_options(todo)
        self.parallelism, self.clock = max(1, parallelism), clock
        self.live: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.share: dict[str, int] = {}
        self.measured: dict[str, float] = {}
        self.done: set[str] = set()
        self.counts = {"ok": 0, "diverged": 0, "failed": 0}
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"), TextColumn("{task.fields[status]}"),
            console=console or Console(stderr=True), disable=not enabled, transient=False,
        )
        self.task = self.progress.add_task(name, total=len(todo), status="", eta="–")

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        self.progress.stop()

    def event(self, event: Event) -> None:
        """``("start", run_id, time)``, ``("epoch", run_id, epoch)`` or ``("sweep", run_ids, fraction)``."""
        kind, who, value = event[0], event[1], event[2]
        if kind == "start":
            self.live[who] = 0.0
            self.started[who] = self.clock()
        elif kind == "epoch" and who in self.live:
            epochs = self.runs[who].spec.budget.epochs if who in self.runs else None
            self.live[who] = min(1.0, float(value) / epochs) if epochs else self.live[who]
        elif kind == "sweep":
            for run_id in who:
                self.share[run_id] = len(who)
                if run_id in self.live:
                    self.live[run_id] = float(value)
        self.refresh()

    def finished(self, outcome: Outcome, share: int = 1) -> None:
        """Count a saved run; ``share`` runs were trained together in its job (a sweep)."""
        run_id = outcome.run_id
        start = self.started.get(run_id)
        if start is not None:
            self.measured[run_id] = (self.clock() - start) / max(share, self.share.get(run_id, 1))
        self.live.pop(run_id, None)
        self.done.add(run_id)
        self.counts[outcome.result.status] = self.counts.get(outcome.result.status, 0) + 1
        self.progress.advance(self.task)
        self.refresh()

    def remaining(self) -> float | None:
        """Expected seconds until every run is done, or None when there is nothing to estimate from."""
        by_cell: dict[str, list[float]] = {}
        by_group: dict[tuple[str, str], list[float]] = {}
        for run_id, seconds in self.measured.items():
            by_cell.setdefault(self.cells[run_id], []).append(seconds)
            by_group.setdefault(self.groups[run_id], []).append(seconds)
        every = list(self.measured.values()) or [
            (self.clock() - self.started[rid]) / f / self.share.get(rid, 1)
            for rid, f in self.live.items() if f > 0 and rid in self.started]
        if not every:
            return None
        total = 0.0
        for run_id in self.runs:
            if run_id in self.done:
                continue
            times = by_cell.get(self.cells[run_id]) or by_group.get(self.groups[run_id]) or every
            total += sum(times) / len(times) * (1.0 - self.live.get(run_id, 0.0))
        return total / self.parallelism

    def refresh(self) -> None:
        parts = [f"ok {self.counts['ok']}", f"diverged {self.counts['diverged']}", f"failed {self.counts['failed']}"]
        live = [f"{run_name(self.runs[rid], self.varied)} {100 * f:.0f}%"
                for rid, f in list(self.live.items())[:3] if rid in self.runs]
        if len(self.live) > 3:
            live.append(f"+{len(self.live) - 3} more")
        left = self.remaining()
        self.progress.update(self.task, eta="–" if left is None else _fmt(left),
                             status=" · ".join(parts) + (" | " + "; ".join(live) if live else ""))
