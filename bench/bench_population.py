"""Population evaluation throughput: the engine against the thesis-style loop, as ratios in one run.

Thesis-style loop (thesis 000's implementation): for each individual, a NumPy vector is copied into the
model (``vector_to_parameters``) and the model runs forward in train mode over mini-batches of 64.
Engine: :class:`trainlab.trainers.population.engine.PopulationEvaluator` (``mode="auto"``, batch-norm in batch mode).
Throughput = individuals × samples / second; ratio = engine / loop. To show where the ratio is
bounded by arithmetic, each case also reports the forward FLOPs both paths execute (counted by
``torch.utils.flop_counter``) as GFLOP/s, against the device's dense matmul rate (a 1024³ float32
``torch.mm`` on the same threads): "ceiling" = matmul rate / loop rate is the most any implementation
could gain over the loop while doing the same float32 FLOPs. Usage::

    TRAINLAB_DATA=shared/datasets .venv/bin/python bench/bench_population.py [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.nn.utils import vector_to_parameters
from torch.utils.flop_counter import FlopCounterMode

from trainlab.data import load_task
from trainlab.losses import get_loss
from trainlab.models import build_model
from trainlab.trainers.population.engine import PopulationEvaluator, initial_population
from trainlab.core.seeding import torch_generator
from timing import best_of

CASES = {"mlp2/bcw": None, "mlp11/wqc": 1000, "lenet5/mnist": 256, "resnet15/mnist": 8}
"""Case → training samples used (None: the whole training split; image tasks are cut to keep the
thesis-style loop affordable on a CPU)."""


def thesis_loop(model: torch.nn.Module, population: np.ndarray, x: torch.Tensor, y: torch.Tensor, loss) -> list[float]:
    model.train()
    out = []
    with torch.no_grad():
        for genome in population:
            vector_to_parameters(torch.from_numpy(genome), model.parameters())
            total = 0.0
            for i in range(0, len(x), 64):
                total += float(loss(model(x[i : i + 64]), y[i : i + 64])) * len(x[i : i + 64])
            out.append(total / len(x))
    return out


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward pass of ``model`` over ``x`` (a multiply-add counts 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


def matmul_rate(device: str, repeats: int) -> float:
    """FLOP/s of a 1024 × 1024 × 1024 float32 matrix product on ``device``."""
    a = torch.randn(1024, 1024, device=device)
    b = torch.randn(1024, 1024, device=device)

    def mm() -> None:
        a.mm(b)
        if device == "cuda":
            torch.cuda.synchronize()

    return 2 * 1024**3 / best_of(mm, repeats, warmup=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="training samples for every case (default: per case)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = matmul_rate(device, 5)
    table = Table(title=f"population evaluation on {device} ({args.threads} thread(s)); "
                        f"1024³ matmul: {peak / 1e9:.1f} GFLOP/s")
    for col in ("model/task", "D", "P", "samples", "engine mode", "engine ind·samples/s", "loop ind·samples/s",
                "engine GFLOP/s", "loop GFLOP/s", "ratio", "ceiling"):
        table.add_column(col)
    for case in args.cases:
        model_name, task_name = case.split("/")
        task = load_task(task_name, device=device)
        samples = args.samples or CASES.get(case) or len(task.train)
        x, y = task.train.x[:samples], task.train.y[:samples]
        model = build_model(model_name, task.input_shape, task.n_outputs, generator=torch_generator(0, "init")).to(device)
        loss = get_loss(task.loss)
        flops = forward_flops(model.eval(), x)
        for size in args.sizes:
            pop = initial_population(model, size, torch_generator(0, "population"))
            evaluator = PopulationEvaluator(model, loss)
            t_engine = best_of(lambda: evaluator(pop, x, y), args.repeats, warmup=1)
            pop_np = pop.cpu().numpy()
            loop_model = build_model(model_name, task.input_shape, task.n_outputs).to(device)
            t_loop = best_of(lambda: thesis_loop(loop_model, pop_np, x, y, loss), args.repeats, warmup=1)
            work = size * len(x)
            table.add_row(case, str(pop.shape[1]), str(size), str(len(x)), f"{evaluator.mode_used} (chunk {evaluator.chunk_used or size})",
                          f"{work / t_engine:,.0f}", f"{work / t_loop:,.0f}", f"{size * flops / t_engine / 1e9:.2f}",
                          f"{size * flops / t_loop / 1e9:.2f}", f"{t_loop / t_engine:.1f}×", f"{peak * t_loop / (size * flops):.1f}×")
            Console().print(f"{case} P={size}: engine {evaluator.mode_used}/{evaluator.chunk_used} ratio {t_loop / t_engine:.2f}")
    Console(width=180).print(table)


if __name__ == "__main__":
    main()
