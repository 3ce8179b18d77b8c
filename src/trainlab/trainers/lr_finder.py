"""Learning-rate range test (Smith 2017; fastai's ``lr_find``).

Train for at most ``num_steps`` mini-batch steps with η_i = η_min (η_max/η_min)^(i/num_steps), i = 0 … n−1
(fastai's ``LRFinder``: ``SchedExp`` at position ``train_iter / num_it``), recording the loss. The loss is
smoothed exponentially with bias correction, s_i = a_i / (1 − β^(i+1)) with a_i = β a_{i−1} + (1 − β) ℓ_i
(β = 0.98, fastai's ``AvgSmoothLoss``), and the sweep stops early once s_i > 4 · min_j s_j or ℓ_i is not
finite. The suggestion rules see the smoothed curve sliced as fastai's ``Learner.lr_find`` slices it,
``[num_steps // 10 : −5]``, cut before its first non-finite value; they are transcriptions of fastai 2.7's
``fastai/callback/schedule.py`` (Howard & Gugger 2020, fastai ≥ 2.5):

* ``valley`` (default, fastai's default since 2.5): the longest run of decreasing losses (a longest
  decreasing subsequence, O(n²)), from ``start`` to ``end``; the suggestion is the lr at
  ``start + int(L/3) + int(L/6)`` with L = end − start, about half-way down the valley.
* ``steep``: the lr where the loss falls fastest, argmin over i of (s_{i+1} − s_i)/(log η_{i+1} − log η_i).
* ``minimum``: the lr of the minimum smoothed loss, divided by 10.
* ``slide``: walking left from the last point with a window of ``lr_diff = 15`` points, the lr at the window's
  left end when the loss gradients (``numpy.gradient``, per index) at its two ends first differ by at most
  ``thresh = 0.005`` (the leftmost lr considered if they never do).

A suggestion whose point lies in the first or last 5 % of the considered log-lr range is flagged
``at_edge``: the curve gave the rule nothing to choose from and the value is an artefact of the range.
Step i trains on the batch step i of a run with the same seed and batch size trains on
(:func:`trainlab.trainers.batching.batch_stream`, the gradient trainers' batching loop, with the run's
``"batches"`` and ``"augment"`` generators), epoch after epoch, and with the run's batch-norm handling (per-sample
batches freeze it: :func:`trainlab.trainers.batching.frozen_batch_norm`). The model's weights, buffers and
train/eval mode are restored afterwards.
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
from trainlab.models.batchnorm import recalibrate
from trainlab.trainers.batching import batch_starts, batch_stream, frozen_batch_norm, training_forward
from trainlab.trainers.callbacks import Penalty
from trainlab.trainers.optimizers import make_optimizer

SUGGESTIONS = ("valley", "steep", "minimum", "slide")
EDGE_FRACTION = 0.05
"""A suggestion within this fraction of the considered log-lr range from either end is flagged ``at_edge``."""
EDGE_WARNING = (
    "the LR finder's suggestion sits at the edge of its sweep (first or last 5 % of the considered lr range):"
    " the loss curve did not constrain it; widen lr_find_min/lr_find_max or try another lr_find_suggest rule"
)


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
    at_edge: bool = False

    def to_record(self) -> dict[str, Any]:
        return {
            "lrs": self.lrs,
            "losses": self.losses,
            "smoothed": self.smoothed,
            "suggestion": self.suggestion,
            "method": self.method,
            "stopped_early": self.stopped_early,
            "at_edge": self.at_edge,
        }

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Save the smoothed loss against lr (log scale) with the suggestion marked, as a PNG."""
        return plot_lr_find(self.lrs, self.smoothed, self.suggestion, path, raw=self.losses, title=title)


def plot_lr_find(
    lrs: list[float], smoothed: list[float], suggestion: float, path: str | Path, raw: list[float] | None = None,
    title: str | None = None,
) -> Path:
    """Write the LR-finder plot to ``path`` (PNG, Agg backend), titled ``title`` (default: "Learning-rate
    range test" with the number of steps)."""
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
    ax.set_title(title if title is not None else f"Learning-rate range test ({len(lrs)} steps)")
    ax.legend()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    return out


@dataclass(frozen=True)
class Suggestion:
    """A rule's suggested lr, the point of the curve it came from (lr, loss) and whether it is at the edge."""

    lr: float
    point_lr: float
    point_loss: float
    at_edge: bool


def suggest_window(lrs: list[float], smoothed: list[float], num_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of the sweep the rules see: ``[num_steps // 10 : −5]``, cut before the first non-finite loss."""
    lr = np.asarray(lrs, dtype=float)[num_steps // 10 : -5]
    s = np.asarray(smoothed, dtype=float)[num_steps // 10 : -5]
    bad = np.flatnonzero(~np.isfinite(s))
    if len(bad):
        lr, s = lr[: bad[0]], s[: bad[0]]
    return lr, s


def valley(lrs: np.ndarray, losses: np.ndarray) -> tuple[float, int]:
    """fastai's ``valley``: lr about half-way down the longest decreasing run; returns (lr, index)."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx]), idx


def steep(lrs: np.ndarray, losses: np.ndarray) -> tuple[float, int]:
    """fastai's ``steep``: the lr of the most negative slope of loss against log lr; returns (lr, index)."""
    grads = np.diff(losses) / np.diff(np.log(lrs))
    idx = int(np.argmin(grads))
    return float(lrs[idx]), idx


def minimum(lrs: np.ndarray, losses: np.ndarray) -> tuple[float, int]:
    """fastai's ``minimum``: the lr of the lowest loss divided by 10; returns (lr / 10, index of the minimum)."""
    idx = int(np.argmin(losses))
    return float(lrs[idx]) / 10, idx


def slide(
    lrs: np.ndarray, losses: np.ndarray, lr_diff: int = 15, thresh: float = 0.005, adjust_value: float = 1.0
) -> tuple[float, float]:
    """fastai's ``slide`` (interval slide rule); returns (lr, the lr of its point before ``adjust_value``)."""
    loss_grad = np.gradient(losses)
    r_idx = -1
    l_idx = r_idx - lr_diff
    local_min_lr = lrs[l_idx]
    while l_idx >= -len(losses) and abs(loss_grad[r_idx] - loss_grad[l_idx]) > thresh:
        local_min_lr = lrs[l_idx]
        r_idx -= 1
        l_idx -= 1
    return float(local_min_lr) * adjust_value, float(local_min_lr)


def apply_rule(
    lrs: list[float], smoothed: list[float], method: str = "valley", num_steps: int | None = None
) -> Suggestion:
    """The rule ``method`` applied to a recorded sweep (see the module docstring).

    ``num_steps`` is the sweep's planned length (default: the recorded length, i.e. a sweep that did not
    stop early). Too short a window (fewer than 2 points; ``slide`` needs 16) falls back to
    the first recorded lr, flagged ``at_edge``.
    """
    check_choice("lr_find.suggest", method, SUGGESTIONS)
    lr, s = suggest_window(lrs, smoothed, len(lrs) if num_steps is None else num_steps)
    need = 16 if method == "slide" else 2
    if len(lr) < need:
        return Suggestion(float(lrs[0]), float(lrs[0]), float(smoothed[0]), True)
    if method == "slide":
        value, point = slide(lr, s)
        loss = float(np.interp(np.log10(point), np.log10(lr), s))
    else:
        rule = {"valley": valley, "steep": steep, "minimum": minimum}[method]
        value, idx = rule(lr, s)
        point, loss = float(lr[idx]), float(s[idx])
    span = np.log(lr[-1]) - np.log(lr[0])
    where = (np.log(point) - np.log(lr[0])) / span if span > 0 else 0.0
    return Suggestion(value, point, loss, bool(where <= EDGE_FRACTION or where >= 1 - EDGE_FRACTION))


def suggest_lr(lrs: list[float], smoothed: list[float], method: str = "valley", num_steps: int | None = None) -> float:
    """The suggested lr of rule ``method`` (see :func:`apply_rule`)."""
    return apply_rule(lrs, smoothed, method, num_steps).lr


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
    suggest: str = "valley",
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
    params: dict[str, torch.Tensor] = dict(model.named_parameters())
    augment = torch_generator(seed, "augment", device=task.device) if task.augment is not None else None
    batches = batch_stream(task.train, batch_size, torch_generator(seed, "batches", device=task.device),
                           task.augment, augment)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best, stopped, samples, forward_only = 0.0, math.inf, False, 0, 0
    frozen = frozen_batch_norm(model, task.train, batch_size)
    steps_per_epoch = len(batch_starts(len(task.train.y), batch_size))
    model.train()
    try:
        for i, (x, y) in zip(range(num_steps), batches):
            lr = lr_min * (lr_max / lr_min) ** (i / num_steps)
            samples += len(y)
            if frozen and i % steps_per_epoch == 0:  # as the run recalibrates at each epoch's start
                forward_only += recalibrate(model, [task.train.x])
            for group in opt.param_groups:
                group["lr"] = lr

            def closure() -> torch.Tensor:
                opt.zero_grad(set_to_none=True)
                with training_forward(model, frozen):
                    outputs = model(x)
                value = loss_fn(outputs, y, i)
                objective = value + penalty(params) if penalty is not None else value
                objective.backward()
                return value.detach()

            if isinstance(opt, torch.optim.LBFGS):
                value = float(opt.step(closure))
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
    found = apply_rule(lrs, smoothed, suggest, num_steps)
    return LRFinderResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion=found.lr,
        method=suggest,
        stopped_early=stopped,
        forward_samples=samples + forward_only,
        backward_samples=samples,
        at_edge=found.at_edge,
    )
