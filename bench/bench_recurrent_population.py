"""Population evaluation of recurrent networks: the batched engine against a loop over individuals.

Loop: for each individual, ``functional_call`` of the model with its parameters (PyTorch's fused
``nn.RNN``/``nn.LSTM``/``nn.GRU`` kernels), i.e. :class:`PopulationEvaluator` with ``mode="loop"``.
Batched: ``mode="stacked"``, the cells unrolled over time with one batched matrix product per step for
all P individuals (:meth:`trainlab.models.recurrent.RecurrentNet.stacked_forward`). Both compute the
same P losses (checked here); the ratio is loop time / batched time, the best of ``--repeats`` calls
each, wall and CPU (process) time measured in the same run. Usage::

    PYTHONPATH=src nice -n 10 python bench/bench_recurrent_population.py [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from trainlab.data import load_task
from trainlab.losses import get_loss
from trainlab.models import build_model
from trainlab.trainers.population.engine import PopulationEvaluator, initial_population
from trainlab.core.seeding import torch_generator

CASES = [  # (model, width, adding length T, samples, population)
    ("rnn", 16, 20, 256, 20),
    ("lstm", 16, 20, 256, 20),
    ("gru", 16, 20, 256, 20),
    ("lstm", 32, 100, 256, 20),
]


def timed(fn, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    """Best wall and best CPU seconds of ``repeats`` calls after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table = Table(title=f"recurrent population evaluation, {args.threads} thread(s), best of {args.repeats}")
    for col in ("model", "T", "N", "P", "loop s (cpu)", "batched s (cpu)", "ratio wall", "ratio cpu", "max |Δ loss|"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, width, length, n, p in CASES:
        task = load_task("adding", length=length, n_train=n, n_val=2, n_test=2)
        model = build_model(name, task.input_shape, 1, width=width, generator=torch_generator(0, "init"))
        population = initial_population(model, p, torch_generator(0, "population"))
        loss = get_loss("mse")
        x, y = task.train.x, task.train.y
        loop = PopulationEvaluator(model, loss, mode="loop")
        stacked = PopulationEvaluator(model, loss, mode="stacked")
        diff = (loop(population, x, y) - stacked(population, x, y)).abs().max().item()
        lw, lc = timed(lambda: loop(population, x, y), args.repeats)
        sw, sc = timed(lambda: stacked(population, x, y), args.repeats)
        table.add_row(name, str(length), str(n), str(p), f"{lw:.3f} ({lc:.3f})", f"{sw:.3f} ({sc:.3f})",
                      f"{lw / sw:.2f}", f"{lc / sc:.2f}", f"{diff:.1e}")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
