"""Report benchmark: ratios measured within one run (the machine is shared and noisy).

On a synthetic experiment (T tasks × 4 trainers × 10 seeds × 50 epochs of history):

1. statistics and tables only (summaries, paired tables, Wilcoxon + Holm, Friedman, Nemenyi,
   learning curves, time-to-target) vs the whole ``build_report`` with PNG figures: the share of
   the report's time spent on statistics;
2. scaling: the statistics for 2T tasks vs T tasks (expected ≈ 2: linear in the number of runs).

Usage: ``.venv/bin/python bench/bench_report.py [--tasks 4] [--repeats 3]``
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np
import pandas as pd

from trainlab.report import (
    build_report,
    friedman,
    learning_curves,
    nemenyi,
    paired_table,
    pairwise_wilcoxon,
    summary_table,
    time_to_target,
)
from timing import best_of

TRAINERS = {"adam": 0.9, "nag": 0.85, "rmsprop": 0.8, "shade": 0.6}


def experiment(tasks: int, seeds: int = 10, epochs: int = 50) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    runs, hist = [], []
    for t in range(tasks):
        for label, top in TRAINERS.items():
            for seed in range(seeds):
                run_id = f"t{t}-{label}-{seed}"
                curve = top * (1 - np.exp(-np.arange(epochs + 1) / 8)) + rng.normal(0, 0.02, epochs + 1)
                seconds = np.cumsum(rng.uniform(0.5, 1.5, epochs + 1))
                hist.append(pd.DataFrame({"run_id": run_id, "epoch": np.arange(epochs + 1), "val_metric": curve,
                                          "sample_evals": 1000 * np.arange(epochs + 1), "seconds": seconds}))
                runs.append({"run_id": run_id, "task": f"t{t}", "model": "mlp2", "label": label, "seed": seed,
                             "status": "ok", "final_test_metric": curve[-1], "evals": epochs,
                             "sample_evals": 1000 * epochs, "seconds": seconds[-1], "metric": "accuracy"})
    return pd.DataFrame(runs), pd.concat(hist, ignore_index=True)


def statistics(runs: pd.DataFrame, hist: pd.DataFrame) -> None:
    summary_table(runs)
    for task, part in runs.groupby("task"):
        pairwise_wilcoxon(paired_table(part, "final_test_metric", blocks=("model", "seed")).values)
        for x in ("epoch", "sample_evals", "seconds"):
            learning_curves(hist, part, x=x)
    table = paired_table(runs, "final_test_metric", blocks=("task", "model")).values
    friedman(table)
    nemenyi(table)
    pairwise_wilcoxon(table)
    time_to_target(hist, runs)



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    small, large = experiment(args.tasks), experiment(2 * args.tasks)
    stats_small = best_of(lambda: statistics(*small), args.repeats)
    stats_large = best_of(lambda: statistics(*large), args.repeats)
    with tempfile.TemporaryDirectory() as out:
        full = best_of(lambda: build_report(*small, out, formats=("png",)), 1)
    print(f"{args.tasks} tasks x {len(TRAINERS)} trainers x 10 seeds ({len(small[0])} runs)")
    print(f"statistics+tables / full report with PNG figures: {stats_small / full:.3f}")
    print(f"statistics for {2 * args.tasks} tasks / {args.tasks} tasks: {stats_large / stats_small:.2f}")


if __name__ == "__main__":
    main()
