"""Every run records its CPU time beside its wall time (checked against the kernel's own accounting)."""
from __future__ import annotations

import math
import resource
import time
from pathlib import Path

import pandas as pd

from trainlab.core.budget import Budget
from trainlab.experiments.config import parse_experiment
from trainlab.experiments.runner import run_experiment
from trainlab.experiments.spec import RunSpec, execute
from trainlab.experiments.store import ResultStore
from trainlab.report.tables import display_summary, summary_table
from trainlab.trainers.callbacks import Callback, TrainState


def _rusage_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Burn(Callback):
    """Spends ``seconds`` of this process's CPU at the end of training (a busy loop on the CPU clock, so a
    loaded machine makes it take longer, never count less)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_fit_end(self, state: TrainState) -> None:
        end = time.process_time() + self.seconds
        while time.process_time() < end:
            pass


def test_execute_records_cpu_and_wall_time_as_the_kernel_counts_them() -> None:
    spec = RunSpec("bcw", "mlp1", "adam", Budget(epochs=1), seed=0)
    before = _rusage_cpu()
    result = execute(spec, callbacks=[_Burn(0.3)])
    kernel = _rusage_cpu() - before
    env = result.environment
    assert result.status == "ok"
    # the run's CPU is within what the kernel charged this process for the whole call (getrusage ticks are
    # coarse: allow 20 ms) and includes the busy loop's CPU; one thread's CPU never exceeds the wall clock
    assert 0 < env["cpu_seconds"] <= kernel + 0.02
    assert env["cpu_seconds"] >= 0.3 - 0.02
    assert env["wall_seconds"] >= 0.3 - 0.02 and math.isfinite(env["wall_seconds"])


def test_cpu_time_reaches_the_store_and_the_report(tmp_path: Path) -> None:
    experiment = parse_experiment({
        "experiment": {"name": "cpu", "seeds": 2},
        "defaults": {"task": "bcw", "model": "mlp1", "budget": {"epochs": 1}},
        "grid": {"trainer": ["adam", "sgd"]},
    })
    run_experiment(experiment, tmp_path / "cpu", progress=False)
    with ResultStore.open(tmp_path / "cpu") as store:
        runs = store.runs_frame()
    assert (runs["cpu_seconds"] > 0).all()
    shown = display_summary(summary_table(runs))
    assert "cpu_seconds" in shown.columns
    assert pd.to_numeric(shown["cpu_seconds"]).gt(0).all()
