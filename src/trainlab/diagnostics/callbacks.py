"""A training callback that records curvature diagnostics every ``every`` steps.

Each measurement is one row of ``RunResult.records["curvature"]`` (``state.log``) with the step, the
objective value, the top Hessian eigenvalues of the objective actually minimised at that step (loss
with its dynamic weights at ``state.step`` plus ``state.penalty``), the sharpness against the
stability limit ``2(1+β)/lr`` from ``state.lr`` and ``state.momentum``, and optionally the largest
NTK eigenvalues, a Hutch++ trace estimate and per-layer gradient norms.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.core.config import check_choice, check_number
from trainlab.diagnostics.gradients import gradient_norms
from trainlab.diagnostics.hessian import hessian_top, hessian_trace
from trainlab.diagnostics.ntk import NTK
from trainlab.diagnostics.objective import Objective
from trainlab.diagnostics.stability import stability_limit
from trainlab.models.batchnorm import check_bn_mode
from trainlab.core.seeding import torch_generator

DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass(frozen=True)
class CurvatureOptions:
    """What to measure: ``top`` Hessian eigenvalues (0: none), ``ntk`` NTK eigenvalues (0: none),
    ``trace`` HVPs for a Hutch++ trace (0: none), ``grad_norms`` per module; on ``subset`` training
    samples (drawn once from the run seed; ``None``: all) every ``every`` steps and at the start."""

    every: int = 100
    top: int = 3
    ntk: int = 0
    ntk_subset: int | None = 50
    ntk_trace_outputs: bool = False
    trace: int = 0
    grad_norms: bool = False
    subset: int | None = None
    bn: str = "eval"
    dtype: str = "float64"
    tol: float = 1e-6
    chunk_size: int | None = None

    def __post_init__(self) -> None:
        check_number("every", self.every, low=1, integer=True)
        check_number("top", self.top, low=0, integer=True)
        check_number("ntk", self.ntk, low=0, integer=True)
        check_number("trace", self.trace, low=0, integer=True)
        if self.trace:
            check_number("trace", self.trace, low=6, integer=True)
        for name in ("subset", "ntk_subset", "chunk_size"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), low=1, integer=True)
        check_bn_mode(self.bn)
        check_choice("dtype", self.dtype, DTYPES)
        check_number("tol", self.tol, low=0, low_open=True)


class CurvatureCallback(Callback):
    """Log curvature diagnostics as ``state.log("curvature", ...)`` every ``every`` optimizer steps.

    Keyword arguments are those of :class:`CurvatureOptions`. Row fields: ``loss`` (objective value
    on the subset), ``eigenvalues`` (descending), ``sharpness``, ``limit`` and ``ratio`` (when the
    trainer sets ``state.lr``), ``ntk``, ``trace``/``trace_stderr``, ``grad_norms``.
    """

    def __init__(self, **options: Any):
        self.options = CurvatureOptions(**options)
        self.indices: Tensor | None = None

    def on_fit_start(self, state: TrainState) -> None:
        n = len(state.task.train)
        size = self.options.subset
        if size is None or size >= n:
            self.indices = torch.arange(n)
        else:
            gen = torch_generator(state.seed, "curvature-subset")
            self.indices = torch.randperm(n, generator=gen)[:size].sort().values
        self.measure(state)

    def on_step_end(self, state: TrainState) -> None:
        if state.step % self.options.every == 0:
            self.measure(state)

    def measure(self, state: TrainState) -> None:
        """Compute the configured diagnostics at the current weights and log one row."""
        opt, split = self.options, state.task.train
        if self.indices is None:
            self.indices = torch.arange(len(split))
        index = self.indices.to(split.x.device)
        x, y = split.x[index], split.y[index]
        objective = Objective.from_state(state, x, y, bn=opt.bn, dtype=DTYPES[opt.dtype], chunk_size=opt.chunk_size)
        row: dict[str, Any] = {"loss": float(objective.value())}
        if opt.top:
            eigen = hessian_top(objective, opt.top, seed=state.seed, tol=opt.tol)
            row["eigenvalues"] = eigen.values.tolist()
            row["sharpness"] = row["eigenvalues"][0]
            if state.lr is not None and state.lr > 0:
                row["limit"] = stability_limit(state.lr, state.momentum)
                row["ratio"] = row["sharpness"] / row["limit"]
        if opt.trace:
            estimate = hessian_trace(objective, matvecs=opt.trace, seed=state.seed)
            row["trace"], row["trace_stderr"] = estimate.value, estimate.stderr
        if opt.ntk:
            count = len(x) if opt.ntk_subset is None else min(opt.ntk_subset, len(x))
            ntk = NTK(state.model, x[:count], trace_outputs=opt.ntk_trace_outputs, bn=opt.bn, dtype=DTYPES[opt.dtype])
            row["ntk"] = ntk.eigenvalues(min(opt.ntk, ntk.dim), seed=state.seed).tolist()
        if opt.grad_norms:
            row["grad_norms"] = gradient_norms(objective)
        state.log("curvature", **row)
