"""Thesis 000 computed its metrics with fastai's metric wrapper: a plain function passed as a metric is
averaged over validation batches (fastai's ``AvgMetric``), not computed on the whole split. This script
re-evaluates the selected models of a ``thesis000-mlp-gd`` store on their test split both ways: balanced
accuracy for classification, R² for regression (sklearn's ``balanced_accuracy_score`` and ``r2_score``).

Usage: python bench/thesis000_metric_check.py runs/thesis000-mlp-gd [TASK ...]
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import balanced_accuracy_score, r2_score

from trainlab.core.seeding import torch_generator
from trainlab.data import load_task
from trainlab.experiments.store import ResultStore
from trainlab.models import build_model
from trainlab.trainers.base import predict


def batch_averaged(pred: np.ndarray, y: np.ndarray, batch: int, metric) -> float:  # noqa: ANN001
    """fastai's AvgMetric: the per-batch value weighted by batch size, batches in order (no shuffling)."""
    values, sizes = [], []
    for i in range(0, len(y), batch):
        values.append(metric(y[i : i + batch], pred[i : i + batch]))
        sizes.append(len(y[i : i + batch]))
    return float(np.average(values, weights=sizes))


def main(folder: str, tasks: list[str]) -> None:
    torch.set_num_threads(1)
    rows = []
    with ResultStore.open(folder) as store:
        runs = store.runs_frame()
        runs = runs[runs["status"].eq("ok") & runs["task"].isin(tasks)]
        loaded = {}
        for _, run in runs.iterrows():
            result = store.result(run["run_id"])
            task_options = result.config["task_options"]
            key = (run["task"], repr(sorted(task_options.items())))
            if key not in loaded:
                loaded[key] = load_task(run["task"], **task_options)
            task = loaded[key]
            model = build_model(run["model"], task.input_shape, task.n_outputs, generator=torch_generator(0, "init"),
                                init="glorot-uniform")
            model.load_state_dict(result.state_dict)
            out = predict(model, task.test.x)
            classification = task.kind == "classification"
            pred = (out.argmax(1) if classification else out[:, 0]).numpy()
            y = task.test.y.numpy().reshape(len(pred))
            metric = balanced_accuracy_score if classification else r2_score
            batch = int(run["trainer_options.batch_size"])
            rows.append({"task": run["task"], "model": run["model"], "trainer": run["label"],
                         "whole split": metric(y, pred), "per batch": batch_averaged(pred, y, batch, metric),
                         "test MSE": float(np.mean((pred - y) ** 2)) if not classification else np.nan,
                         "test target variance": float(np.var(y)) if not classification else np.nan,
                         "batch": batch})
    frame = pd.DataFrame(rows).groupby(["task", "model", "trainer"], sort=False).mean().round(3)
    print(frame.to_string())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["bcw", "wqc"])
