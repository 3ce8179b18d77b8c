"""One run, fully described: :class:`RunSpec`, its identity hash, and :func:`execute`.

Every way of running something (``trainlab train``, experiment grids, sweeps, the quick start) goes
through a ``RunSpec``, so a run's identity is the same wherever it was started.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError, check_number
from trainlab.core.environment import environment
from trainlab.core.seeding import torch_generator
from trainlab.data import load_task, task_config, task_identity
from trainlab.diagnostics import Diagnostics, diagnostics_config
from trainlab.losses import get_loss
from trainlab.models import build_model, model_config
from trainlab.trainers import make_trainer
from trainlab.trainers.callbacks import Callback
from trainlab.trainers.result import RunResult

MAX_SEED = 2**63 - 1
"""Seeds are stored as SQLite integers (int64)."""


@dataclass(frozen=True)
class RunSpec:
    """task × model × trainer (with options) × loss × budget × seed, on a device; ``diagnostics`` is the
    ``diagnostics`` table (:mod:`trainlab.diagnostics.config`) of what to record while training. A spec
    without diagnostics has the identity it had before they existed (the key is left out of ``to_dict``)."""

    task: str
    model: str
    trainer: str
    budget: Budget
    seed: int = 0
    loss: str | None = None
    task_options: Mapping[str, Any] = field(default_factory=dict)
    model_options: Mapping[str, Any] = field(default_factory=dict)
    trainer_options: Mapping[str, Any] = field(default_factory=dict)
    loss_options: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    diagnostics: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_number("seed", self.seed, low=0, high=MAX_SEED, integer=True)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["budget"] = self.budget.to_dict()
        for key in ("task_options", "model_options", "trainer_options", "loss_options"):
            out[key] = dict(out[key])
        if self.diagnostics:
            out["diagnostics"] = dict(self.diagnostics)
        else:
            del out["diagnostics"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        data = dict(data)
        data["budget"] = Budget(**data["budget"])
        return cls(**data)

    def resolved(self) -> RunSpec:
        """The same spec with every default filled in, so that equal runs get equal identities."""
        made = make_trainer(self.trainer, **self.trainer_options)
        made.check_budget(self.budget)
        trainer = made.describe()
        trainer.pop("name")
        loss_options = dict(self.loss_options)
        if self.loss is None and loss_options:
            raise ConfigError("loss_options", loss_options, "loss options only with a named loss (--loss or loss = ...)")
        if self.loss is not None:
            loss_options = get_loss(self.loss, **self.loss_options).config()
            loss_options.pop("name")
        return dataclasses.replace(
            self,
            task_options=task_config(self.task, **self.task_options),
            model_options=model_config(self.model, **self.model_options),
            trainer_options=trainer,
            loss_options=loss_options,
            diagnostics=diagnostics_config(self.diagnostics).to_dict(),
        )

    def run_id(self) -> str:
        """A 16-hex-digit hash of the resolved configuration."""
        return resolved_id(self.resolved().to_dict())


def resolved_id(resolved: Mapping[str, Any]) -> str:
    """The run id of a resolved spec given as ``RunSpec.resolved().to_dict()``: a hash of all of it, except
    task options added later that are at their default (:func:`~trainlab.data.task_identity`), so that adding
    an option that keeps the earlier behaviour leaves every stored run's id as it was."""
    identity = {**resolved, "task_options": task_identity(resolved["task"], resolved["task_options"])}
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def execute(
    spec: RunSpec,
    data_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
) -> RunResult:
    """Load the task, build and initialise the model from the run seed, and fit.

    Configuration errors raise :class:`ConfigError`; any other exception becomes a ``failed`` result
    carrying the traceback, so that one bad run never stops an experiment. The result's environment
    records the run's wall time and CPU time (this process, every thread, user + system; data loading
    included) as ``wall_seconds`` and ``cpu_seconds``; with ``spec.diagnostics``, the part of them its
    :class:`~trainlab.diagnostics.Diagnostics` callback took is ``diagnostics_seconds`` and
    ``diagnostics_cpu_seconds`` (kept out of the trainer's ``spending.seconds``).
    """
    resolved = spec.resolved()
    config = {"run_id": resolved.run_id(), **resolved.to_dict()}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    diagnostics = Diagnostics(resolved.diagnostics) if resolved.diagnostics else None
    if diagnostics is not None:
        callbacks = [*callbacks, diagnostics]
    try:
        task = load_task(spec.task, data_dir=data_dir, device=spec.device, **spec.task_options)
        model = build_model(
            spec.model,
            task.input_shape,
            task.n_outputs,
            generator=torch_generator(spec.seed, "init"),
            data=(task.train.x, task.train.y),
            **spec.model_options,
        ).to(spec.device)
        trainer = make_trainer(spec.trainer, **spec.trainer_options)
        loss = get_loss(spec.loss, **spec.loss_options) if spec.loss else None
        result = trainer.fit(model, task, spec.budget, spec.seed, callbacks, loss=loss)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - a failed run is a result, not a crash
        result = RunResult.failed(config, environment(torch.device(spec.device)), err)
    result.config = config
    result.environment.update(cpu_seconds=time.process_time() - cpu0, wall_seconds=time.perf_counter() - wall0)
    if diagnostics is not None:
        result.environment.update(diagnostics_seconds=diagnostics.seconds, diagnostics_cpu_seconds=diagnostics.cpu_seconds)
    return result
