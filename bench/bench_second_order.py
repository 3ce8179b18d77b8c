"""Second-order trainers: cost of the exact Hessian, and spending to reach a target loss.

Prints ratios measured within this one run (the machine is shared and noisy):

1. time of one exact Hessian (``FlatObjective.value_grad_hessian``) over time of one gradient, against
   D, the number of parameters: the counting convention charges D + 1 gradient-equivalents.
2. for a convex problem (3-class logistic regression, D = 9) and a non-convex one (spiral task,
   spiral-mlp of width 24, D = 147): sample-evaluations and seconds to reach a target training loss,
   for newton, cg and bfgs (with and without restarts) and full-batch lbfgs and adam (lr 0.01),
   relative to bfgs.

Run: ``.venv/bin/python bench/bench_second_order.py``
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from rich.console import Console
from rich.table import Table
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.data.task import Split, Task
from trainlab.losses import get_loss
from trainlab.models import build_model
from trainlab.core.seeding import numpy_generator, torch_generator
from trainlab.trainers import make_trainer
from trainlab.trainers.second_order import FlatObjective
from timing import median_of

torch.set_num_threads(1)
console = Console()



def hessian_cost() -> None:
    from trainlab.data import load_task

    task = load_task("spiral")
    table = Table(title="exact Hessian cost vs one gradient (spiral, N = 300, float64)")
    for column in ("width", "D", "t(H) / t(g)", "(t(H) / t(g)) / (D + 1)"):
        table.add_column(column, justify="right")
    for width in (8, 32, 128):
        model = build_model("spiral-mlp", task.input_shape, task.n_outputs, width=width)
        objective = FlatObjective(model, task.train, get_loss("cross_entropy"), torch.float64)
        theta = objective.get()
        t_grad = median_of(lambda: objective.value_and_grad(theta), 20)
        t_hess = median_of(lambda: objective.value_grad_hessian(theta, 64), 3)
        ratio = t_hess / t_grad
        table.add_row(str(width), str(objective.size), f"{ratio:.1f}", f"{ratio / (objective.size + 1):.3f}")
    console.print(table)


def _blobs() -> tuple[Task, float]:
    rng = numpy_generator(0, "bench-blobs")
    y = rng.integers(0, 3, size=600)
    x = np.array([[0.0, 0.0], [1.5, 0.5], [0.5, 1.5]])[y] + rng.normal(size=(600, 2))
    split = Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
    best = log_loss(y, LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x, y).predict_proba(x))
    return Task("blobs", "classification", split, split, split, 3, "cross_entropy", "accuracy"), best


def _race(title: str, task: Task, build: Callable[[], nn.Module], target: float, budget: Budget) -> None:
    candidates = {
        "newton": ("newton", {}),
        "cg": ("cg", {}),
        "cg restarts=5": ("cg", {"restarts": 5}),
        "bfgs": ("bfgs", {}),
        "bfgs restarts=5": ("bfgs", {"restarts": 5}),
        "lbfgs": ("lbfgs", {"batch_size": None}),
        "adam lr=0.01": ("adam", {"batch_size": None, "lr": 0.01}),
    }
    rows = {}
    for label, (name, options) in candidates.items():
        try:
            trainer = make_trainer(name, **options)
        except ConfigError as err:
            console.print(f"[dim]{label}: skipped ({err})[/dim]")
            continue
        result = trainer.fit(build(), task, budget, seed=0)
        hit = next((row for row in result.history if row["train_loss"] <= target), None)
        rows[label] = (result, hit)
    table = Table(title=f"{title}: to train loss <= {target:.4f}, ratios to bfgs")
    for column in ("trainer", "iterations", "sample-evals", "x bfgs", "seconds x bfgs", "best train loss"):
        table.add_column(column, justify="right")
    table.add_column("stopped because")
    ref = rows["bfgs"][1]
    for name, (result, hit) in rows.items():
        final = min(row["train_loss"] for row in result.history)
        why = result.message.replace("Desired error not necessarily achieved due to ", "") or "budget"
        if hit is None or ref is None:
            table.add_row(name, "not reached", "—", "—", "—", f"{final:.5f}", why)
            continue
        table.add_row(
            name,
            str(int(hit["epoch"])),
            f"{int(hit['sample_evals']):,}",
            f"{hit['sample_evals'] / ref['sample_evals']:.2f}",
            f"{hit['seconds'] / ref['seconds']:.2f}",
            f"{final:.5f}",
            why,
        )
    console.print(table)


def main() -> None:
    hessian_cost()
    blobs, best = _blobs()

    def logistic() -> nn.Module:
        model = nn.Linear(2, 3)
        with torch.no_grad():
            model.weight.normal_(0, 0.1, generator=torch_generator(0, "bench"))
            model.bias.zero_()
        return model

    _race("logistic regression (D = 9, N = 600)", blobs, logistic, best + 1e-4, Budget(epochs=2_000))
    from trainlab.data import load_task

    spiral = load_task("spiral")
    _race(
        "spiral-mlp width 24 on spiral (D = 147, N = 300)",
        spiral,
        lambda: build_model("spiral-mlp", (2,), 3, width=24, generator=torch_generator(0, "init")),
        0.5,
        Budget(sample_evals=6_000_000, epochs=5_000),
    )


if __name__ == "__main__":
    main()
