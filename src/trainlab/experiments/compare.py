""":func:`compare`, for notebooks and scripts: the Python form of a small experiment file: trainers given as a dict (label → options),
crossed with tasks, models and seeds, run into a result store, so that the same report, statistics and
exports work on it as on any experiment (``trainlab.report.write_report(out)``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.experiments.config import parse_experiment
from trainlab.experiments.runner import run_experiment
from trainlab.experiments.store import ResultStore


def compare(
    trainers: Mapping[str, Mapping[str, Any]],
    *,
    task: str | Sequence[str],
    model: str | Sequence[str],
    budget: Budget | Mapping[str, Any],
    seeds: int = 3,
    out: str | Path,
    name: str = "compare",
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    **defaults: Any,
) -> pd.DataFrame:
    """Train every trainer of ``trainers`` (label → ``{"algorithm": name, **options}``; ``algorithm``
    defaults to the label) on every task × model with ``seeds`` seeds and ``budget``; results go to the
    store in ``out`` (runs already there are not repeated); return ``ResultStore.runs_frame()``.

    ``defaults`` are further run fields for every run (``loss="mse"``, ``model_options={"width": 100}``,
    ``device="cpu"``). Example::

        runs = compare({"sgd": {"lr": 0.05}, "adam": {"lr": 0.005}, "shade": {}},
                       task="bcw", model="mlp1", budget=Budget(epochs=10), out="runs/cmp")
        runs.groupby("label")["final_test_metric"].mean()
    """
    if not trainers:
        raise ConfigError("trainers", {}, "a dict of at least one label → trainer options")
    limits = budget.to_dict() if isinstance(budget, Budget) else dict(budget)
    labels = {str(label): {"algorithm": str(label), **dict(options)} for label, options in trainers.items()}
    data = {
        "experiment": {"name": name, "seed": seed, "seeds": seeds},
        "defaults": {"budget": limits, **defaults},
        "trainers": labels,
        "grid": [{"task": [task] if isinstance(task, str) else list(task),
                  "model": [model] if isinstance(model, str) else list(model),
                  "trainer": list(labels)}],
    }
    experiment = parse_experiment(data, source="compare(...)", default_name=name)
    run_experiment(experiment, out, executor="process" if workers > 1 else "inline", workers=workers,
                   progress=progress)
    with ResultStore.open(out) as store:
        return store.runs_frame()
