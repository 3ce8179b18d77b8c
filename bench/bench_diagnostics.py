"""Benchmark of the curvature diagnostics on lenet5 / mnist (4,096 training samples), as ratios in one run.

1. Cost of one Hessian-vector product relative to one gradient, for each HVP mode.
2. Top-3 Hessian eigenvalues: Lanczos (full reorthogonalisation) against block power iteration, both
   stopped by the same residual test ``‖H x − θ x‖ ≤ tol·|θ_1|`` (same accuracy): HVPs and time;
   then power iteration given Lanczos's HVP budget: its relative eigenvalue errors.

Usage: ``.venv/bin/python bench/bench_diagnostics.py [--samples 4096] [--tol 1e-4] [--dtype float32]``
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table

from trainlab.data import load_task
from trainlab.diagnostics import Objective, hessian_top, subspace_iteration, top_eigen
from trainlab.losses import get_loss
from trainlab.models import build_model
from trainlab.core.seeding import torch_generator


def interleaved_ratios(fns: dict[str, Callable[[], object]], baseline: str, repeats: int) -> dict[str, float]:
    """Median over ``repeats`` rounds of time(fn) / time(baseline), every fn timed once per round (after a
    warm-up round), so that the machine's load drifts equally on numerator and denominator."""
    ratios: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        times = {}
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name] = time.perf_counter() - start
        if round_:
            for name in fns:
                ratios[name].append(times[name] / times[baseline])
    return {name: sorted(r)[len(r) // 2] for name, r in ratios.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    task = load_task("mnist")
    model = build_model("lenet5", task.input_shape, task.n_outputs, generator=torch_generator(0, "init"))
    x, y = task.train.x[: args.samples], task.train.y[: args.samples]
    console = Console()
    console.print(f"lenet5 / mnist, {len(x)} samples, {args.dtype}, {torch.get_num_threads()} threads")

    loss = get_loss("cross_entropy")
    v = torch.randn(sum(p.numel() for p in model.parameters()), generator=torch.Generator().manual_seed(0), dtype=dtype)
    modes = {mode: Objective(model, x, y, loss, dtype=dtype, hvp_mode=mode) for mode in ("graph", "forward", "reverse")}
    fns: dict[str, Callable[[], object]] = {"gradient": modes["graph"].gradient}
    fns.update({f"HVP, {mode}": (lambda o=o: o.hvp(v)) for mode, o in modes.items()})
    fns["HVP, graph incl. building it"] = lambda: Objective(model, x, y, loss, dtype=dtype).hvp(v)
    ratios = interleaved_ratios(fns, "gradient", args.repeats)
    table = Table(title=f"cost relative to one gradient (median of {args.repeats} interleaved rounds)")
    for col in ("operation", "time / gradient time"):
        table.add_column(col)
    for name, ratio in ratios.items():
        table.add_row(name, f"{ratio:.2f}")
    console.print(table)

    objective = Objective(model, x, y, get_loss("cross_entropy"), dtype=dtype)
    reference = hessian_top(objective, 3, tol=min(args.tol / 100, 1e-5), max_steps=300).values
    start = time.perf_counter()
    lanczos = top_eigen(objective.hvp, objective.dim, 3, generator=torch_generator(0, "bench"), dtype=dtype,
                        tol=args.tol)
    t_lanczos = time.perf_counter() - start
    start = time.perf_counter()
    power = subspace_iteration(objective.hvp, objective.dim, 3, generator=torch_generator(0, "bench"), dtype=dtype,
                               tol=args.tol, max_matvecs=1500)
    t_power = time.perf_counter() - start
    same_budget = subspace_iteration(objective.hvp, objective.dim, 3, generator=torch_generator(0, "bench"),
                                     dtype=dtype, tol=args.tol, max_matvecs=lanczos.n_matvec)

    def error(values: torch.Tensor) -> str:
        return f"{float(((values - reference).abs() / reference.abs()).max()):.1e}"

    table = Table(title=f"top-3 eigenvalues {[round(float(r), 4) for r in reference]}, residual tol {args.tol:g}")
    for col in ("method", "HVPs", "converged", "max rel. error", "time / Lanczos time"):
        table.add_column(col)
    table.add_row("Lanczos", str(lanczos.n_matvec), str(lanczos.converged), error(lanczos.values), "1.00")
    table.add_row("power iteration (same accuracy)", str(power.n_matvec), str(power.converged), error(power.values),
                  f"{t_power / t_lanczos:.2f}")
    table.add_row("power iteration (Lanczos's HVPs)", str(same_budget.n_matvec), str(same_budget.converged),
                  error(same_budget.values), "-")
    console.print(table)


if __name__ == "__main__":
    main()
