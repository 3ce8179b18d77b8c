"""Curvature of a saved run: rebuild its model, data and objective, measure, write JSON and plots.

A run directory holds ``result.json`` (its ``config`` is the resolved ``RunSpec``) and ``model.pt``
(the selected weights), as written by ``RunResult.save``; a checkpoint is a ``.pt`` state dict next
to such a ``result.json``. The objective is the run's loss at the step of the selected epoch plus the
trainer's L1/L2/Lm penalty (when its options have them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.core.seeding import torch_generator
from trainlab.data import load_task
from trainlab.diagnostics.gradients import gradient_norms
from trainlab.diagnostics.hessian import hessian_density, hessian_top, hessian_trace
from trainlab.diagnostics.ntk import NTK
from trainlab.diagnostics.objective import Objective
from trainlab.diagnostics.stability import stability_limit
from trainlab.experiments.spec import RunSpec
from trainlab.losses import Loss, get_loss
from trainlab.models import build_model
from trainlab.trainers.callbacks import Penalty
from trainlab.trainers.regularization import make_penalty
from trainlab.trainers.result import RunResult, load_weights, weights_digest

SPLITS = ("train", "val", "test")


@dataclass
class LoadedRun:
    """A saved run rebuilt: model with the selected weights, its task, loss, penalty, step, lr, momentum."""

    model: nn.Module
    task: Any
    loss: Loss
    penalty: Penalty | None
    step: int
    lr: float | None
    momentum: float
    directory: Path
    config: dict[str, Any] = field(default_factory=dict)


def load_run(path: str | Path, *, data_dir: str | Path | None = None, device: str | None = None) -> LoadedRun:
    """Rebuild the run saved at ``path`` (a run directory or a ``.pt`` checkpoint inside one)."""
    path = Path(path)
    directory, weights = (path.parent, path) if path.is_file() else (path, path / "model.pt")
    if not (directory / "result.json").is_file():
        raise ConfigError("path", str(path), "a run directory with result.json, or a .pt checkpoint beside one")
    if not weights.is_file():
        raise ConfigError("path", str(path), f"a run with saved weights ({weights.name} is missing)")
    result = RunResult.load(directory, weights=False)
    config = {k: v for k, v in result.config.items() if k != "run_id"}
    try:
        spec = RunSpec.from_dict(config)
    except (TypeError, KeyError) as err:
        raise ConfigError(str(directory / "result.json"), None, f"the config of a trainlab run ({err})") from None
    device = device or (spec.device if torch.cuda.is_available() or not spec.device.startswith("cuda") else "cpu")
    task = load_task(spec.task, data_dir=data_dir, device=device, **spec.task_options)
    model = build_model(spec.model, task.input_shape, task.n_outputs, generator=torch_generator(spec.seed, "init"),
                        data=(task.train.x, task.train.y), **spec.model_options)
    state = load_weights(weights, weights_digest(directory) if weights.name == "model.pt" else None)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(str(weights), None, f"weights of the run's model {spec.model} ({first})") from None
    model = model.to(device)
    options = dict(spec.trainer_options)
    penalty = make_penalty(model, **{k: options[k] for k in ("l1", "l2", "lm", "m") if k in options})
    row = next((r for r in result.history if r.get("epoch") == result.best_epoch), {})
    momentum = dict(options.get("optimizer_options", {})).get("momentum", 0.0)
    return LoadedRun(
        model=model,
        task=task,
        loss=get_loss(spec.loss or task.loss, **spec.loss_options),
        penalty=penalty,
        step=int(row.get("steps", 0)),
        lr=row.get("lr"),
        momentum=float(momentum or 0.0),
        directory=directory,
        config=config,
    )


def curvature_report(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: Loss,
    *,
    step: int = 0,
    penalty: Penalty | None = None,
    lr: float | None = None,
    momentum: float = 0.0,
    top: int = 3,
    density: bool = False,
    trace: bool = False,
    ntk: int = 0,
    ntk_subset: int = 100,
    grad_norms: bool = True,
    probes: int = 10,
    lanczos_steps: int = 80,
    matvecs: int = 60,
    bn: str = "eval",
    dtype: torch.dtype = torch.float64,
    chunk_size: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Every requested diagnostic of ``loss(model(x), y, step) + penalty`` as a JSON-ready dict."""
    objective = Objective(model, x, y, loss, step=step, penalty=penalty, bn=bn, dtype=dtype, chunk_size=chunk_size)
    out: dict[str, Any] = {"samples": len(x), "parameters": objective.dim, "step": step, "bn": bn,
                           "dtype": str(dtype).replace("torch.", ""), "loss": float(objective.value())}
    if top:
        eigen = hessian_top(objective, top, seed=seed)
        out["hessian_top"] = {"values": eigen.values.tolist(), "residuals": eigen.residuals.tolist(),
                              "hvps": eigen.n_matvec, "converged": eigen.converged}
        if lr is not None:
            limit = stability_limit(lr, momentum)
            out["stability"] = {"lr": lr, "momentum": momentum, "sharpness": eigen.values[0].item(),
                                "limit": limit, "ratio": eigen.values[0].item() / limit}
    if density:
        slq = hessian_density(objective, probes=probes, steps=lanczos_steps, seed=seed)
        grid = slq.grid()
        out["density"] = {"grid": grid.tolist(), "values": slq.density(grid).tolist(), "sigma": slq.default_sigma(),
                          "nodes": [n.tolist() for n in slq.nodes], "weights": [w.tolist() for w in slq.weights],
                          "hvps": slq.n_matvec}
    if trace:
        estimate = hessian_trace(objective, matvecs=matvecs, seed=seed)
        out["trace"] = {"value": estimate.value, "stderr": estimate.stderr, "method": "hutch++", "hvps": estimate.n_matvec}
    if ntk:
        kernel = NTK(model, x[:ntk_subset], bn=bn, dtype=dtype)
        out["ntk"] = {"values": kernel.eigenvalues(min(ntk, kernel.dim), seed=seed).tolist(),
                      "samples": kernel.n_samples, "outputs": kernel.n_outputs}
    if grad_norms:
        out["grad_norms"] = gradient_norms(objective)
    return out


def run_curvature(
    path: str | Path,
    *,
    out: str | Path | None = None,
    split: str = "train",
    subset: int | None = 1000,
    data_dir: str | Path | None = None,
    device: str | None = None,
    seed: int = 0,
    **options: Any,
) -> tuple[dict[str, Any], list[Path]]:
    """Load the run at ``path``, measure on ``subset`` samples of ``split`` (seeded), write the report.

    ``options`` go to :func:`curvature_report`; files go to ``out`` (default: the run directory).
    """
    check_choice("split", split, SPLITS)
    run = load_run(path, data_dir=data_dir, device=device)
    data = run.task.split(split)
    if subset is not None and check_number("subset", subset, low=1, integer=True) < len(data):
        index = torch.randperm(len(data), generator=torch_generator(seed, "curvature-subset"))[:subset].sort().values
        x, y = data.x[index.to(data.x.device)], data.y[index.to(data.y.device)]
    else:
        x, y = data.x, data.y
    report = curvature_report(run.model, x, y, run.loss, step=run.step, penalty=run.penalty, lr=run.lr,
                              momentum=run.momentum, seed=seed, **options)
    report = {"run": str(run.directory), "run_id": run.config.get("run_id"), "split": split, "seed": seed, **report}
    return report, save_report(report, out if out is not None else run.directory)


def save_report(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``curvature.json`` and PNG plots (top-k bars, density, NTK eigenvalues) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "curvature.json"]
    written[0].write_text(json.dumps(report, indent=2))
    if "hessian_top" in report:
        written.append(_bars(report["hessian_top"]["values"], "Hessian top eigenvalues", out / "curvature_top.png",
                             report.get("stability", {}).get("limit")))
    if "density" in report:
        written.append(_density(report["density"], out / "curvature_density.png"))
    if "ntk" in report:
        written.append(_bars(report["ntk"]["values"], "NTK top eigenvalues", out / "curvature_ntk.png", None))
    return written


def _bars(values: list[float], title: str, path: Path, limit: float | None) -> Path:
    fig = Figure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.bar([f"λ{i + 1}" for i in range(len(values))], values, color="tab:blue")
    if limit is not None:
        ax.axhline(limit, color="tab:red", linestyle="--", label="2(1+β)/lr")
        ax.legend()
    ax.set_title(title)
    fig.savefig(path, dpi=120)
    return path


def _density(density: dict[str, Any], path: Path) -> Path:
    fig = Figure(figsize=(5.5, 3.5), layout="constrained")
    ax = fig.subplots()
    values = np.asarray(density["values"])
    floor = values.max() * 1e-7
    ax.semilogy(density["grid"], np.maximum(values, floor), color="tab:blue")
    ax.set_ylim(bottom=floor)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (integrates to D)")
    ax.set_title(f"Hessian spectral density (SLQ, σ = {density['sigma']:.3g})")
    fig.savefig(path, dpi=120)
    return path
