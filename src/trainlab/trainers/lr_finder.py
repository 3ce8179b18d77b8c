"""Learning-rate range test (Smith 2017; fastai's ``lr_find``).

Train for at most ``num_steps`` mini-batch steps with η_i = η_min (η_max/η_min)^(i/(n−1)), recording the
loss. The loss is smoothed exponentially with bias correction, s_i = a_i / (1 − β^(i+1)) with
a_i = β a_{i−1} + (1 − β) ℓ_i (β = 0.98), and the sweep stops early once s_i > 4 · min_j s_j or ℓ_i is
not finite. Suggestions, on the smoothed curve without its first 10 % and last 5 points (as fastai):

* ``steep`` (default): the η where s falls fastest, argmin of Δs / Δlog η (fastai's ``steep``).
* ``min10``: the η of the minimum of s, divided by 10 (fastai's ``minimum``).

The model's weights, buffers and train/eval mode are restored afterwards.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainlab.core.config import check_choice, check_number
from trainlab.core.seeding import torch_generator
from trainlab.data.task import Task
from trainlab.losses import Loss
from trainlab.trainers.base import resolve_loss
from trainlab.trainers.callbacks import Penalty
from trainlab.trainers.optimizers import make_optimizer

SUGGESTIONS = ("steep", "min10")


@dataclass
class LRFinderResult:
    """The sweep: learning rates, raw and smoothed losses, the suggested lr and what it spent."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    method: str
    stopped_early: bool
    forward_samples: int
    backward_samples: int

    def to_record(self) -> dict[str, Any]:
        return {
            "lrs": self.lrs,
            "losses": self.losses,
            "smoothed": self.smoothed,
            "suggestion": self.suggestion,
            "method": self.method,
            "stopped_early": self.stopped_early,
        }

    def plot(self, path: str | Path) -> Path:
        """Save the smoothed loss against lr (log scale) with the suggestion marked, as a PNG."""
        return plot_lr_find(self.lrs, self.smoothed, self.suggestion, path, raw=self.losses)


def plot_lr_find(
    lrs: list[float], smoothed: list[float], suggestion: float, path: str | Path, raw: list[float] | None = None
) -> Path:
    """Write the LR-finder plot to ``path`` (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    if raw is not None:
        ax.plot(lrs, raw, color="0.8", linewidth=0.8, label="loss")
    ax.plot(lrs, smoothed, color="C0", label="smoothed loss")
    ax.axvline(suggestion, color="C3", linestyle="--", label=f"suggested lr = {suggestion:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    finite = [s for s in smoothed if math.isfinite(s)]
    if finite:
        ax.set_ylim(min(finite) - 0.05 * abs(min(finite)), min(max(finite), 4 * min(finite) + 1e-12) * 1.05)
    ax.legend()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    return out


def suggest_lr(lrs: list[float], smoothed: list[float], method: str = "steep") -> float:
    """The suggested lr from a sweep (see the module docstring)."""
    check_choice("lr_find.suggest", method, SUGGESTIONS)
    lr = np.asarray(lrs, dtype=float)
    s = np.asarray(smoothed, dtype=float)
    n = len(lr)
    lo, hi = (n // 10, n - 5) if n >= 20 else (0, n)
    lr, s = lr[lo:hi], s[lo:hi]
    keep = np.isfinite(s)
    lr, s = lr[keep], s[keep]
    if len(lr) < 2:
        return float(lrs[0])
    if method == "min10":
        return float(lr[np.argmin(s)] / 10)
    slopes = np.diff(s) / np.diff(np.log(lr))
    return float(lr[np.argmin(slopes)])


def lr_find(
    model: nn.Module,
    task: Task,
    loss: Loss | str | None = None,
    *,
    optimizer: str = "adam",
    optimizer_options: dict[str, Any] | None = None,
    batch_size: int | None = 64,
    lr_min: float = 1e-7,
    lr_max: float = 10.0,
    num_steps: int = 100,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
    suggest: str = "steep",
    seed: int = 0,
    penalty: Penalty | None = None,
) -> LRFinderResult:
    """Run the exponential lr sweep on ``task.train`` and restore ``model`` afterwards."""
    check_number("lr_find.lr_min", lr_min, low=0, low_open=True)
    check_number("lr_find.lr_max", lr_max, low=lr_min, low_open=True)
    check_number("lr_find.num_steps", num_steps, low=2, integer=True)
    check_number("lr_find.beta", beta, low=0, high=1, high_open=True)
    check_number("lr_find.diverge_factor", diverge_factor, low=1, low_open=True)
    check_choice("lr_find.suggest", suggest, SUGGESTIONS)
    if batch_size is not None:
        check_number("lr_find.batch_size", batch_size, low=1, integer=True)
    loss_fn = resolve_loss(task, loss)
    saved = copy.deepcopy(model.state_dict())
    was_training = model.training
    opt = make_optimizer(optimizer, model.parameters(), **{**(optimizer_options or {}), "lr": lr_min})
    params = dict(model.named_parameters())
    gen = torch_generator(seed, "lr_find", device=task.device)
    x_all, y_all = task.train.x, task.train.y
    n = len(y_all)
    b = n if batch_size is None or batch_size >= n else batch_size
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best, stopped = 0.0, math.inf, False
    perm = torch.randperm(n, generator=gen, device=x_all.device)
    pos = 0
    model.train()
    try:
        for i in range(num_steps):
            lr = lr_min * (lr_max / lr_min) ** (i / (num_steps - 1))
            if b < n:
                if pos + b > n:
                    perm, pos = torch.randperm(n, generator=gen, device=x_all.device), 0
                idx = perm[pos : pos + b]
                pos += b
                x, y = x_all[idx], y_all[idx]
            else:
                x, y = x_all, y_all
            if task.augment is not None:
                x = task.augment(x, gen)
            for group in opt.param_groups:
                group["lr"] = lr

            def closure() -> torch.Tensor:
                opt.zero_grad(set_to_none=True)
                value = loss_fn(model(x), y, i)
                objective = value + penalty(params) if penalty is not None else value
                objective.backward()
                return value.detach()

            if isinstance(opt, torch.optim.LBFGS):
                value = float(opt.step(closure))  # type: ignore[arg-type]
            else:
                value = float(closure())
                opt.step()
            lrs.append(lr)
            losses.append(value)
            if not math.isfinite(value):
                smoothed.append(math.inf)
                stopped = True
                break
            avg = beta * avg + (1 - beta) * value
            s = avg / (1 - beta ** (i + 1))
            smoothed.append(s)
            best = min(best, s)
            if s > diverge_factor * best:
                stopped = True
                break
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
    steps = len(lrs)
    return LRFinderResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion=suggest_lr(lrs, smoothed, suggest),
        method=suggest,
        stopped_early=stopped,
        forward_samples=steps * b,
        backward_samples=steps * b,
    )
