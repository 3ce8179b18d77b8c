"""Sweep engine against a loop of single runs of the same cells (ratios measured within one run).

    .venv/bin/python bench/bench_sweep.py [--cells 64] [--width 100] [--steps 300] [--threads 1] [--device cuda]

Cells are a grid of dynamic cross-entropy amplitudes × periods × seeds on the 3-arm spiral, trained
by full-batch GD (lr 1). The loop side runs ``execute(spec)`` (the ``gd`` trainer) once per cell; the
sweep side runs ``run_sweep(specs)``. Both record history every 100 steps. Each side is timed
``--repeats`` times, interleaved, and the best time of each is used, so that load from other processes
on a shared machine affects the ratio as little as possible. The last line is the sweep's throughput in
cells per second, the number to report on a GPU.
"""
from __future__ import annotations

import argparse
import itertools
import time

import torch

from trainlab.core.budget import Budget
from trainlab.experiments.spec import RunSpec, execute
from trainlab.experiments.sweep import run_sweep


def cells(n: int, width: int, steps: int, device: str = "cpu") -> list[RunSpec]:
    amplitudes = [1.0, 5.0, 10.0, 20.0]
    periods = [50, 100, 200, 400]
    seeds = range(max(1, -(-n // (len(amplitudes) * len(periods)))))
    grid = list(itertools.product(seeds, amplitudes, periods))[:n]
    return [
        RunSpec(
            "spiral", "spiral-mlp", "gd", Budget(steps=steps), seed=seed, loss="dynamic_ce",
            model_options={"width": width}, trainer_options={"lr": 1.0, "eval_every": 100},
            loss_options={"amplitude": a, "period": t}, device=device,
        )
        for seed, a, t in grid
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=64)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    specs = cells(args.cells, args.width, args.steps, args.device)
    run_sweep(specs[:2])  # warm-up: first use of torch.func imports and initialises it
    execute(specs[0])
    loop_times, sweep_times = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        single = [execute(s) for s in specs]
        loop_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        swept = run_sweep(specs)
        sweep_times.append(time.perf_counter() - t0)
    gap = max(abs(a.final["test_metric"] - b.final["test_metric"]) for a, b in zip(single, swept))
    loop, sweep = min(loop_times), min(sweep_times)
    print(f"cells={len(specs)} width={args.width} steps={args.steps} threads={args.threads} device={args.device}")
    print(f"loop of single runs: {loop:.2f} s  sweep: {sweep:.2f} s  ratio: {loop / sweep:.1f}x")
    print(f"sweep throughput: {len(specs) / sweep:.2f} cells/s at {args.steps} steps "
          f"({len(specs) * args.steps / sweep:,.0f} cell-steps/s)")
    print(f"largest |test accuracy difference| between the two: {gap:.4f}")


if __name__ == "__main__":
    main()
