"""Thesis 000 computed its metrics with fastai's metric wrapper: a plain function passed as a metric is
averaged over evaluation batches (fastai's ``AvgMetric``: the per-batch value weighted by batch size), not
computed on the whole split. This script re-evaluates the selected models of a ``thesis000-mlp-gd`` store on
their test split under three protocols and counts, for each, the cells within ±0.02 / ±0.05 of Appendix A:

- ``whole``: the metric on the whole test split (trainlab's default);
- ``file order``: per batch of the run's batch size, the test rows in data-file order (trainlab's test split
  keeps the file order), weighted mean;
- ``shuffled``: the same over ``--perms`` random orders of the test rows (mean over the orders).

Balanced accuracy for classification, R² for regression, each batch by scikit-learn (``balanced_accuracy_score``,
``r2_score``), as the thesis's ``balanced_accuracy_func`` and fastai's ``AvgMetric`` do.

Regression cells also get R² with scikit-learn's arguments swapped, ``r2_score(predictions, targets)`` (the
predictions' variance as denominator): the order in which fastai calls a metric function (``func(pred, targ)``).

Usage: python bench/thesis000_metric_check.py runs/thesis000-mlp-gd [--perms 20] [--tasks bcw bhp wqc wqr] [--csv F]
"""
from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import balanced_accuracy_score, r2_score

from trainlab.core.seeding import torch_generator
from trainlab.data import load_task
from trainlab.experiments.store import ResultStore
from trainlab.models import build_model
from trainlab.report.against import load_anchors, thesis_outliers
from trainlab.trainers.base import predict


PROTOCOLS = ("whole", "file order", "shuffled")


def batch_mean(y: np.ndarray, pred: np.ndarray, batch: int, metric: Callable[..., float],
               order: np.ndarray | None = None) -> float:
    """fastai's AvgMetric: ``metric`` per batch of ``batch`` rows (in ``order``), weighted by batch size."""
    if order is not None:
        y, pred = y[order], pred[order]
    values, sizes = [], []
    for i in range(0, len(y), batch):
        values.append(metric(y[i : i + batch], pred[i : i + batch]))
        sizes.append(len(y[i : i + batch]))
    return float(np.average(values, weights=sizes))


def evaluate_store(folder: str, tasks: list[str], perms: int) -> pd.DataFrame:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
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
            model = build_model(run["model"], task.input_shape, task.n_outputs,
                                generator=torch_generator(0, "init"), init="glorot-uniform")
            model.load_state_dict(result.state_dict)
            out = predict(model, task.test.x)
            classification = task.kind == "classification"
            pred = (out.argmax(1) if classification else out[:, 0]).numpy()
            y = task.test.y.numpy().reshape(len(pred))
            metric = balanced_accuracy_score if classification else r2_score
            batch = int(run["trainer_options.batch_size"])
            shuffled = [batch_mean(y, pred, batch, metric, rng.permutation(len(y))) for _ in range(perms)]
            row = {"task": run["task"], "model": run["model"], "trainer": run["trainer"],
                   "whole": metric(y, pred), "file order": batch_mean(y, pred, batch, metric),
                   "shuffled": float(np.mean(shuffled)), "shuffled sd": float(np.std(shuffled))}
            if classification:
                row.update({f"swapped {p}": row[p] for p in PROTOCOLS})
            else:
                swapped = [batch_mean(pred, y, batch, metric, rng.permutation(len(y))) for _ in range(perms)]
                row.update({"swapped whole": metric(pred, y), "swapped file order": batch_mean(pred, y, batch, metric),
                            "swapped shuffled": float(np.mean(swapped)),
                            "test MSE": float(np.mean((pred - y) ** 2)), "test var": float(np.var(y)),
                            "pred var": float(np.var(pred))})
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--tasks", nargs="+", default=["bcw", "bhp", "wqc", "wqr"])
    parser.add_argument("--perms", type=int, default=20)
    parser.add_argument("--csv", help="also write the per-cell table to this CSV file")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn: a batch may lack a predicted class
        runs = evaluate_store(args.folder, args.tasks, args.perms)
    cells = runs.groupby(["task", "model", "trainer"], sort=False).mean().reset_index()
    anchors = load_anchors("thesis000")
    anchors = anchors.assign(outlier=thesis_outliers(anchors))
    cells = cells.merge(anchors[["task", "model", "trainer", "test_metric", "outlier"]], how="left")
    protocols = [*PROTOCOLS, *(f"swapped {p}" for p in PROTOCOLS)]
    print(cells.round(3).to_string(index=False))
    if args.csv:
        cells.to_csv(args.csv, index=False)
    kept = cells[~cells["outlier"].astype(bool)]
    print(f"\ncells (thesis outliers left out): {len(kept)}")
    for task in [*args.tasks, "all"]:
        part = kept if task == "all" else kept[kept["task"] == task]
        counts = []
        for p in protocols:
            d = (part[p] - part["test_metric"]).abs()
            counts.append(f"{p}: {(d <= 0.02 + 1e-9).sum()} / {(d <= 0.05 + 1e-9).sum()}")
        print(f"{task:4s} ({len(part)} cells) within ±0.02 / ±0.05 -> " + "; ".join(counts))


if __name__ == "__main__":
    main()
