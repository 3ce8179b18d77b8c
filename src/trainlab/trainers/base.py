"""The trainer interface and the bookkeeping every trainer shares.

A trainer is configured once (a frozen dataclass of options) and then ``fit(model, task, budget, seed)``
returns a :class:`~trainlab.trainers.result.RunResult`. :class:`Monitor` does what all trainers have in common:
count spending, record one history row per epoch, keep the best-validation weights, notice divergence,
call the callbacks and decide when the budget is spent.
"""
from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from trainlab.core.budget import Budget, Spending
from trainlab.core.config import ConfigError
from trainlab.trainers.callbacks import Callback, Penalty, TrainState
from trainlab.data.task import SPLITS, Split, Task
from trainlab.core.environment import environment
from trainlab.losses import LOSSES, Loss, get_loss
from trainlab.losses.metrics import METRICS
from trainlab.core.registry import Registry
from trainlab.trainers.history import SELECTIONS, History, Keep
from trainlab.trainers.result import RunResult

__all__ = ["SELECTIONS", "TRAINERS", "Monitor", "Trainer", "describe_objects", "evaluate", "make_trainer", "predict",
           "resolve_loss"]

TRAINERS: Registry[Callable[..., "Trainer"]] = Registry("trainer")


class Trainer(ABC):
    """Base class: subclasses set ``name`` and implement :meth:`fit`; ``config`` is a frozen dataclass.

    ``budget_units`` declares the :class:`~trainlab.core.budget.Budget` limits the trainer spends (the
    :class:`~trainlab.core.budget.Spending` fields its :class:`Monitor` ticks advance); a budget with any other
    limit could never stop it, so :meth:`check_budget` refuses it before anything runs.
    """

    name: str = ""
    budget_units: ClassVar[tuple[str, ...]] = ("epochs", "steps", "sample_evals", "seconds")

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def fit(
        self,
        model: nn.Module,
        task: Task,
        budget: Budget,
        seed: int,
        callbacks: Sequence[Callback] = (),
        loss: Loss | None = None,
    ) -> RunResult:
        """Train ``model`` on ``task`` within ``budget``; ``loss`` defaults to the task's loss."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.config)}

    def check_budget(self, budget: Budget) -> Budget:
        """``budget`` if this trainer spends every limit it sets, else a :class:`ConfigError` naming the trainer
        and the unit."""
        for unit, value in budget.to_dict().items():
            if unit not in self.budget_units:
                allowed = f"a limit the {self.name!r} trainer spends: {', '.join(self.budget_units)}"
                raise ConfigError(f"budget.{unit}", value, allowed)
        return budget


def make_trainer(name: str, **options: Any) -> Trainer:
    """The trainer registered as ``name``, configured with ``options`` (unknown options raise ConfigError)."""
    return TRAINERS.get(name)(**options)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 8192) -> Tensor:
    """Outputs of ``model`` in eval mode on ``x``, computed in chunks of ``batch_size``."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def evaluate(model: nn.Module, split: Split, loss: Loss, metric: str, step: int = 0) -> tuple[float, float]:
    """(loss, metric) of ``model`` in eval mode on ``split``."""
    outputs = predict(model, split.x)
    return loss(outputs, split.y, step).item(), METRICS.get(metric)(outputs, split.y)


class Monitor:
    """Shared bookkeeping of a fit; trainers call :meth:`begin`, :meth:`tick`, :meth:`end_epoch`, :meth:`finish`.

    ``tick`` after each optimizer step (or generation) with what it spent; ``end_epoch`` after each epoch.
    Both return ``True`` when training must stop (budget spent, divergence, or a callback asked).
    The history and the selected model follow :class:`~trainlab.trainers.history.History` (shared with the
    sweep engine): the lowest validation loss among the candidates ``select`` names (:data:`SELECTIONS`;
    default: the trainer config's ``select``, else ``trained``); with ``trained`` the initial weights
    (epoch 0) are chosen only when no trained epoch has a finite validation loss. History rows are recorded
    every ``eval_every`` epochs and at the last epoch; only recorded epochs are candidates.
    """

    def __init__(
        self,
        trainer: Trainer,
        model: nn.Module,
        task: Task,
        loss: Loss,
        budget: Budget,
        seed: int,
        callbacks: Sequence[Callback] = (),
        penalty: Penalty | None = None,
        eval_every: int = 1,
        select: str | None = None,
    ):
        self.trainer, self.budget, self.callbacks = trainer, trainer.check_budget(budget), list(callbacks)
        self.eval_every = eval_every
        self.history = History(select if select is not None else getattr(trainer.config, "select", "trained"))
        self._initial_state: dict[str, Tensor] = {}
        self.state = TrainState(model=model, task=task, loss=loss, seed=seed, penalty=penalty)
        self.state.history = self.history.rows
        self.monitor_loss = loss.static()
        self.best_state: dict[str, Tensor] = {}
        self.status = "ok"
        self.message = ""
        self._nonfinite: Tensor | bool = False
        self._t0 = 0.0

    @property
    def select(self) -> str:
        return self.history.select

    @property
    def best_epoch(self) -> int:
        return self.history.best_epoch

    @property
    def spending(self) -> Spending:
        return self.state.spending

    def spend(self, forward_samples: int = 0, backward_samples: int = 0) -> None:
        """Count samples spent outside an optimizer step (for example by an LR range test before training)."""
        self.spending.forward_samples += forward_samples
        self.spending.backward_samples += backward_samples

    def set_rates(self, lr: float | None = None, momentum: float | None = None) -> None:
        """The learning rate and momentum in force, shown to callbacks and recorded in the history (``lr``)."""
        if lr is not None:
            self.state.lr = lr
        if momentum is not None:
            self.state.momentum = momentum

    def set_records(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Store ``rows`` as ``RunResult.records[name]`` (replacing earlier rows of that name)."""
        self.state.records[name] = rows

    def diverged(self, message: str) -> None:
        """Mark the run diverged; training stops at the next :meth:`tick` or :meth:`end_epoch`."""
        self.status, self.message = "diverged", message

    def note(self, message: str) -> None:
        """Why training ended, when it ended normally (convergence, a solver's exit message)."""
        self.message = message

    @property
    def ok(self) -> bool:
        """Whether the run is still healthy (not diverged)."""
        return self.status == "ok"

    def begin(self) -> None:
        self._t0 = time.perf_counter()
        for cb in self.callbacks:
            cb.on_fit_start(self.state)
        self._record()

    def tick(
        self,
        forward_samples: int = 0,
        backward_samples: int = 0,
        steps: int = 1,
        evals: int = 0,
        loss: Tensor | float | None = None,
    ) -> bool:
        s = self.spending
        s.forward_samples += forward_samples
        s.backward_samples += backward_samples
        s.steps += steps
        s.evals += evals
        s.seconds = time.perf_counter() - self._t0
        self.state.step = s.steps
        if loss is not None:
            bad = ~torch.isfinite(torch.as_tensor(loss)).all()
            self._nonfinite = bad | self._nonfinite
        for cb in self.callbacks:
            cb.on_step_end(self.state)
        return self._should_stop(epoch_limit=False)

    def end_epoch(self) -> bool:
        self.spending.epochs += 1
        self.state.epoch = self.spending.epochs
        if self.state.epoch % self.eval_every == 0:
            self._record()
        for cb in self.callbacks:
            cb.on_epoch_end(self.state)
        return self._should_stop(epoch_limit=True)

    def _should_stop(self, epoch_limit: bool) -> bool:
        if self.status == "diverged":
            return True
        if isinstance(self._nonfinite, Tensor) and bool(self._nonfinite):
            self.status, self.message = "diverged", f"non-finite training loss at step {self.state.step}"
            return True
        if self.state.stop:
            self.message = self.state.stop_reason
            return True
        limit = self.spending.exhausted(self.budget)
        if limit == "epochs" and not epoch_limit:
            return False
        return limit is not None

    def _record(self) -> None:
        model, task = self.state.model, self.state.task
        scores = {name: evaluate(model, task.split(name), self.monitor_loss, task.metric, self.state.step)
                  for name in SPLITS}
        self.spending.seconds = time.perf_counter() - self._t0
        verdict = self.history.add(History.row(self.spending.epochs, scores, self.spending, self.state.lr))
        if verdict.keep is Keep.INITIAL:
            self._initial_state = copy.deepcopy(model.state_dict())
        elif verdict.keep is Keep.BEST:
            self.best_state = copy.deepcopy(model.state_dict())
        if verdict.divergence:
            self.status, self.message = "diverged", verdict.divergence

    def finish(self, config: dict[str, Any] | None = None) -> RunResult:
        """Load the selected weights into the model and build the result (``result.model`` is the model,
        with those weights); ``config`` gains the task, model and loss (:func:`describe_objects`)."""
        model = self.state.model
        if self.state.history and self.state.history[-1]["epoch"] != self.spending.epochs:
            self._record()
        if not self.best_state and self._initial_state:
            self.best_state = self._initial_state
        if self.best_state:
            model.load_state_dict(self.best_state)
        for cb in self.callbacks:
            cb.on_fit_end(self.state)
        return RunResult(
            status=self.status,  # type: ignore[arg-type]
            history=self.history.rows,
            final=self.history.final(),
            best_epoch=self.best_epoch,
            spending=self.spending,
            config={**describe_objects(self.state.task, model, self.state.loss),
                    **(config if config is not None else {"trainer": self.trainer.describe()})},
            environment=environment(self.state.task.device),
            message=self.message,
            records=self.state.records,
            state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            model=model,
        )


def describe_objects(task: Task, model: nn.Module, loss: Loss) -> dict[str, Any]:
    """What a result's config records of the objects a trainer was given: the task's summary, the model's
    name and options when :func:`trainlab.models.build_model` built it, the loss's name and parameters when
    it is a registered loss. A user's own model or loss is recorded by class and size, with a warning that
    this is not enough to rebuild it."""
    described: dict[str, Any] = {"task": task.describe()}
    built = getattr(model, "trainlab_model", None)
    if isinstance(built, dict):
        described["model"] = built
    else:
        kind = f"{type(model).__module__}.{type(model).__qualname__}"
        described["model"] = {"class": kind, "parameters": sum(p.numel() for p in model.parameters())}
        warnings.warn(f"model {kind} was not built by trainlab.models.build_model: the result records only its "
                      "class and parameter count; keep its code (and result.state_dict) to rebuild it",
                      stacklevel=4)
    if loss.name in LOSSES:
        described["loss"] = loss.config()
    else:
        kind = f"{type(loss).__module__}.{type(loss).__qualname__}"
        described["loss"] = {"class": kind}
        warnings.warn(f"loss {kind} is not a registered loss: the result records only its class; register it "
                      "(trainlab.losses.LOSSES) to record its parameters", stacklevel=4)
    return described


def resolve_loss(task: Task, loss: Loss | str | None) -> Loss:
    """The loss to minimise: an instance, a registered name, or the task's default."""
    if isinstance(loss, Loss):
        return loss
    return get_loss(loss or task.loss)
