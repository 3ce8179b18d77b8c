"""Experiment machinery overheads, as ratios measured within one run (the machine is shared and noisy).

1. Store: time of ``ResultStore.save`` for a run of 50 history rows and a small weight set, relative to
   training that run (adam, spiral, 50 epochs).
2. Executors: wall time of a grid of short runs (8 × 30 epochs) and of longer runs (4 × 300 epochs) with a
   2-process pool (worker start-up included), and of the short grid on a started Ray instance (2 CPUs),
   relative to inline.
3. Planning: expanding and hashing a 600-run grid, per run, relative to one training run.

Usage: ``python bench/bench_experiments.py [--no-ray]``
"""
from __future__ import annotations

import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

from trainlab.core.budget import Budget
from trainlab.experiments import ResultStore, load_experiment, run_experiment
from trainlab.experiments.spec import RunSpec, execute

GRID = """
[experiment]
name = "bench"
seeds = 4
device = "cpu"
[defaults]
task = "spiral"
model = "spiral-mlp"
model_options = { width = 32 }
budget = { epochs = 30 }
[grid]
trainer = ["adam", "sgd"]
"""


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = RunSpec("spiral", "spiral-mlp", "adam", Budget(epochs=50), model_options={"width": 32})
        execute(spec)  # warm-up: imports and data
        train = min(_timed(lambda: execute(spec)) for _ in range(3))
        result = execute(spec)
        store = ResultStore(root / "s.sqlite")
        resolved = spec.resolved().to_dict()
        save = min(_timed(lambda i=i: store.save(f"r{i}", resolved, result)) for i in range(20))
        print(f"store.save / training run (50 epochs): {save / train:.4f}  ({len(result.history)} history rows)")

        path = root / "grid.toml"
        path.write_text(textwrap.dedent(GRID))
        exp = load_experiment(path)
        inline = _timed(lambda: run_experiment(exp, root / "inline", progress=False))
        pool = _timed(lambda: run_experiment(exp, root / "pool", executor="process", workers=2, progress=False))
        print(f"8 runs of 30 epochs, process pool (2 workers) / inline: {pool / inline:.2f}  (inline {inline:.1f} s)")
        path.write_text(textwrap.dedent(GRID.replace("epochs = 30", "epochs = 300").replace("seeds = 4", "seeds = 2")))
        longer = load_experiment(path)
        inline_long = _timed(lambda: run_experiment(longer, root / "inline-long", progress=False))
        pool_long = _timed(
            lambda: run_experiment(longer, root / "pool-long", executor="process", workers=2, progress=False)
        )
        print(f"4 runs of 300 epochs, process pool (2 workers) / inline: {pool_long / inline_long:.2f}"
              f"  (inline {inline_long:.1f} s)")
        if "--no-ray" not in sys.argv:
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            try:
                on_ray = _timed(lambda: run_experiment(exp, root / "ray", executor="ray", progress=False))
            finally:
                ray.shutdown()
            print(f"8 runs of 30 epochs, ray (2 CPUs, started) / inline: {on_ray / inline:.2f}")

        big = GRID.replace("seeds = 4", "seeds = 10").replace(
            '["adam", "sgd"]', '["adam", "sgd", "nag"]\n"trainer_options.lr" = [0.001, 0.003, 0.01, 0.03, 0.1]\n'
            '"model_options.width" = [8, 16, 32, 64]'
        )
        path.write_text(textwrap.dedent(big))
        start = time.perf_counter()
        n = len(load_experiment(path).runs)
        plan = (time.perf_counter() - start) / n
        print(f"planning per run / training run: {plan / train:.4f}  ({n} runs)")


if __name__ == "__main__":
    main()
