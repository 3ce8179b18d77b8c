"""Curriculum learning: training examples revealed from easy to hard (Bengio, Louradour, Collobert &
Weston 2009, "Curriculum learning", ICML; the pacing functions of Hacohen & Weinshall 2019, "On the power
of curriculum learning in training deep networks", ICML, and Platanios et al. 2019, "Competence-based
curriculum learning for neural machine translation", NAACL).

Difficulty, fixed before training (lower is easier), comes from exactly one of:

* ``reference``: a run of the same architecture (a run folder, ``EXPERIMENT_DIR/RUN_ID`` or a run id, as
  the model option ``init_from``); each training example's difficulty is its loss under that run's
  selected weights (evaluation mode, this run's loss), the "transfer teacher" of Hacohen & Weinshall;
* ``scores``: a file with one number per training example, in the order of the task's training split
  (``.npy``, or text readable by ``numpy.loadtxt``).

Examples are ranked by difficulty (a stable sort: ties keep the split's order). At the e-th epoch
(e = 0, 1, …) the ``n_e = min(N, max(2, ⌈g(e)·N⌉))`` easiest of the N training examples are available
(two at least, so that batch norm can train), shuffled into mini-batches as the gradient trainers do,
with the pacing function g (f₀ = ``start_fraction``, T = ``ramp_epochs``, K = ``stages``,
p = min(1, e/T)):

    linear:  g(e) = f₀ + (1 − f₀)·p
    root:    g(e) = √(f₀² + (1 − f₀²)·p)            (Platanios et al. 2019)
    step:    g(e) = f₀ + (1 − f₀)·⌊K·p⌋/K           ("baby steps": K equal increments)

so from epoch T on the whole training set is used. One ``optimizer`` runs throughout (its state carries
over when the set grows).

Budget: an epoch is one pass over the examples available at that epoch, so early epochs cost fewer
sample evaluations than full ones (``sample_evals`` is the fair budget against full-data training);
the reference's forward pass over the training set is counted as forward samples of this run, the
reference run's own training is not (it is another run, named in the records).
``result.records["curriculum"]`` has one row per epoch: the fraction g(e) and the examples n_e.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.core.seeding import torch_generator
from trainlab.data.task import Split, Task
from trainlab.losses import Loss
from trainlab.models.warm_start import warm_start
from trainlab.trainers.base import TRAINERS, Monitor, Trainer, predict, resolve_loss
from trainlab.trainers.callbacks import Callback
from trainlab.trainers.gradient import train_epoch
from trainlab.trainers.optimizers import OPTIMIZERS, inner_optimizer_config, inner_optimizer_description, make_optimizer, optimizer_options
from trainlab.trainers.result import RunResult

PACINGS = ("linear", "root", "step")


@dataclass(frozen=True)
class CurriculumConfig:
    """Options of ``curriculum`` (see the module docstring): the ``optimizer`` and its options,
    ``batch_size`` (None: full batch), the difficulty source (``reference`` or ``scores``) and the pacing
    function (``pacing``, ``start_fraction``, ``ramp_epochs``, ``stages``)."""

    optimizer: str = "adam"
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = 64
    reference: str | None = None
    scores: str | None = None
    pacing: str = "linear"
    start_fraction: float = 0.2
    ramp_epochs: int = 10
    stages: int = 4

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, [n for n in OPTIMIZERS.names() if n != "lbfgs"])
        object.__setattr__(self, "optimizer_options", optimizer_options(self.optimizer, **dict(self.optimizer_options)))
        if self.batch_size is not None:
            check_number("batch_size", self.batch_size, low=1, integer=True)
        if self.reference is None and self.scores is None:
            raise ConfigError("reference", None, "a run (folder, EXPERIMENT_DIR/RUN_ID or run id), or scores = a "
                                                 "file of per-example difficulties: one of the two is required")
        if self.reference is not None and self.scores is not None:
            raise ConfigError("scores", self.scores, "unset when reference is given (exactly one of the two)")
        for name in ("reference", "scores"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(name, value, "a non-empty path or run id")
        check_choice("pacing", self.pacing, PACINGS)
        check_number("start_fraction", self.start_fraction, low=0, high=1, low_open=True)
        check_number("ramp_epochs", self.ramp_epochs, low=1, integer=True)
        check_number("stages", self.stages, low=1, integer=True)


def pacing_fraction(pacing: str, epoch: int, start_fraction: float, ramp_epochs: int, stages: int) -> float:
    """g(epoch): the fraction of the training set available at the ``epoch``-th epoch (0-based)."""
    progress = min(1.0, epoch / ramp_epochs)
    if pacing == "linear":
        return start_fraction + (1 - start_fraction) * progress
    if pacing == "root":
        return math.sqrt(start_fraction**2 + (1 - start_fraction**2) * progress)
    return start_fraction + (1 - start_fraction) * math.floor(stages * progress) / stages


def available(n: int, fraction: float) -> int:
    """n_e = min(N, max(2, ⌈fraction·N⌉)) (the ceiling of a product that is an integer up to rounding
    error is that integer)."""
    return min(n, max(2, math.ceil(round(fraction * n, 9))))


def read_scores(path: str, n: int, field: str = "scores") -> Tensor:
    """The ``n`` per-example scores in the file ``path`` (``.npy`` or text)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(field, path, "an existing file (.npy, or text for numpy.loadtxt)")
    try:
        values = np.load(file) if file.suffix == ".npy" else np.loadtxt(file, ndmin=1)
    except ValueError as err:
        raise ConfigError(field, path, f"a file of numbers ({err})") from None
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != n or not np.isfinite(values).all():
        raise ConfigError(field, f"{path} ({len(values)} values)", f"{n} finite values, one per training example")
    return torch.as_tensor(values)


@torch.no_grad()
def reference_losses(model: nn.Module, reference: str, task: Task, loss: Loss) -> Tensor:
    """Each training example's loss under the selected weights of run ``reference`` (same architecture
    as ``model``), in evaluation mode."""
    teacher = copy.deepcopy(model)
    warm_start(teacher, reference, field="trainer.curriculum.reference")
    return loss.static().per_sample(predict(teacher, task.train.x), task.train.y).detach().double().cpu()


class Curriculum(Trainer):
    """Curriculum learning with a ``torch.optim`` optimizer (see the module docstring)."""

    name = "curriculum"

    def __init__(self, **options: Any):
        super().__init__(inner_optimizer_config("curriculum", CurriculumConfig, {"optimizer": "adam", **options}))

    def describe(self) -> dict[str, Any]:
        return inner_optimizer_description(self.name, self.config)

    def fit(
        self,
        model: nn.Module,
        task: Task,
        budget: Budget,
        seed: int,
        callbacks: Sequence[Callback] = (),
        loss: Loss | None = None,
    ) -> RunResult:
        cfg: CurriculumConfig = self.config
        loss_fn = resolve_loss(task, loss)
        n = len(task.train)
        monitor = Monitor(self, model, task, loss_fn, budget, seed, callbacks)
        if cfg.reference is not None:
            difficulty = reference_losses(model, cfg.reference, task, loss_fn)
            monitor.spend(forward_samples=n)
        else:
            difficulty = read_scores(str(cfg.scores), n, field="trainer.curriculum.scores")
        order = torch.argsort(difficulty, stable=True).to(task.train.y.device)
        monitor.state.lr = float(cfg.optimizer_options["lr"])
        optimizer = make_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad],
                                   **cfg.optimizer_options)
        batches = torch_generator(seed, "batches", device=task.device)
        rows: list[dict[str, Any]] = []
        monitor.begin()
        stop = not monitor.ok
        epoch = 0
        while not stop:
            fraction = pacing_fraction(cfg.pacing, epoch, cfg.start_fraction, cfg.ramp_epochs, cfg.stages)
            chosen = order[: available(n, fraction)]
            seen = dataclasses.replace(task, train=Split(task.train.x[chosen], task.train.y[chosen]))
            stats = train_epoch(model, seen, loss_fn, optimizer, batch_size=cfg.batch_size, generator=batches,
                                monitor=monitor)
            rows.append({"epoch": epoch + 1, "fraction": fraction, "examples": len(chosen)})
            epoch += 1
            stop = (stats.stopped and not monitor.ok) or monitor.end_epoch()
        result = monitor.finish({"trainer": self.describe()})
        result.records["curriculum"] = rows
        return result


TRAINERS.register("curriculum")(Curriculum)
