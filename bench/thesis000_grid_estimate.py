"""Estimate the CPU time of thesis 000's MLP metaheuristic grid from a sample of its cells.

Runs chosen cells of ``experiments/thesis000/mlp-mh.toml`` (first seed) in this process, each at 1 and at
2 epochs of its trainer (210 evaluations each), and fits each cell's CPU time (process time of
``execute``, data loading included) as fixed + per-epoch cost; the estimate for the thesis budget is
fixed + 20 × per-epoch. Cells not run are estimated from a run cell of the same model (and task size,
``--like``), scaled by the trainer's factor measured on ``--factor-cell``. Usage::

    TRAINLAB_DATA=shared/datasets .venv/bin/python bench/thesis000_grid_estimate.py [--threads 1]
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from trainlab.core.budget import Budget
from trainlab.experiments.config import load_experiment
from trainlab.experiments.spec import execute

GRID = Path(__file__).resolve().parent.parent / "experiments" / "thesis000" / "mlp-mh.toml"
SAMPLE = ["mlp11/wqc/shade", "mlp11/wqc/shade-ils", "mlp11/wqc/shade-gd", "mlp11/wqc/shade-ils-gd",
          "mlp11/wqr/shade", "mlp11/bcw/shade", "mlp11/bhp/shade", "mlp5/wqc/shade", "mlp5/bcw/shade",
          "mlp2/wqc/shade", "mlp1/wqc/shade"]
LIKE = {"wqr": "wqc", "bhp": "bcw"}
"""Task → the sampled task of similar size whose figure stands in when a cell was not run."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=SAMPLE, help="model/task/trainer cells to run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=20, help="the grid's epoch budget")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    experiment = load_experiment(GRID)
    specs = {f"{r.spec.model}/{r.spec.task}/{r.spec.trainer}": r.spec for r in experiment.runs if r.seed_index == 0}
    measured: dict[str, tuple[float, float]] = {}
    for cell in args.cells:
        cpu = []
        for epochs in (1, 2):
            result = execute(dataclasses.replace(specs[cell], budget=Budget(epochs=epochs)))
            assert result.status == "ok", result.error
            cpu.append(float(result.environment["cpu_seconds"]))
        per_epoch = cpu[1] - cpu[0]
        measured[cell] = (cpu[0] - per_epoch, per_epoch)
        Console().print(f"{cell}: 1 epoch {cpu[0]:.1f} s, 2 epochs {cpu[1]:.1f} s CPU → "
                        f"{args.epochs} epochs ≈ {cpu[0] + (args.epochs - 1) * per_epoch:.0f} s")
    factor_base = "mlp11/wqc/shade"
    table = Table(title=f"thesis 000 MLP grid (1 seed, {args.epochs} epochs): estimated CPU seconds per cell")
    for col in ("cell", "source", "CPU s"):
        table.add_column(col)
    total = 0.0
    for cell in specs:
        model, task, trainer = cell.split("/")
        if cell in measured:
            fixed, per = measured[cell]
            est, source = fixed + args.epochs * per, "measured"
        else:
            base = next((f"{model}/{t}/shade" for t in (task, LIKE.get(task, task)) if f"{model}/{t}/shade" in measured), None)
            if base is None:
                base = next(c for c in measured if c.startswith(f"{model}/") and c.endswith("/shade"))
            fixed, per = measured[base]
            scale = 1.0
            factor_cell = f"mlp11/wqc/{trainer}"
            if trainer != "shade" and factor_cell in measured and factor_base in measured:
                scale = measured[factor_cell][1] / measured[factor_base][1]
            est, source = fixed + args.epochs * per * scale, f"{base} × {scale:.2f}"
        total += est
        table.add_row(cell, source, f"{est:.0f}")
    Console(width=160).print(table)
    Console().print(f"total ≈ {total:.0f} CPU s ≈ {total / 60:.0f} CPU min; with 2 workers ≥ {total / 120:.0f} min wall")


if __name__ == "__main__":
    main()
