"""Truncated backpropagation through time, BPTT(k1, k2) (Williams & Peng 1990; Sutskever 2013, §2.8).

Every gradient trainer already trains recurrent networks with *full* BPTT (the loss of the whole
sequence differentiated through every step). ``tbptt`` instead walks each mini-batch of sequences
forward k1 steps at a time; after each stretch it differentiates the loss of those k1 steps'
outputs through the last k2 ≥ k1 steps only (the state k2 steps back is a constant), and takes one
optimizer step:

    for e = e_1 < e_2 < … < e_J = T (e_j − e_{j−1} = k1, the first stretch possibly shorter):
        h_{e−k2} ← the (detached) state at e − k2;  run steps e − k2 … e from it;
        g ← ∇ (|stretch| / T) · ℓ(outputs of steps e − k1 … e);  clip g;  θ ← optimizer step(g)

With a sequence-to-sequence read-out the stretch losses sum to the full-sequence loss, so BPTT(T, T)
is full BPTT; with a sequence-to-one read-out only the last stretch has a loss (one update per batch,
gradients through its last k2 steps). k2 must be a multiple of k1, so that each window starts at a
stretch boundary whose state was kept. Steps after a parameter update are computed with the new
parameters; states kept from earlier stretches are not recomputed (the usual online approximation).

Spending: each update counts the batch's sequences once forward and once backward (a sample
evaluation here is one stretch window of one sequence, not a whole sequence).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.core.budget import Budget
from trainlab.trainers.callbacks import Callback
from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.data.task import Task
from trainlab.losses import Loss
from trainlab.models.recurrent import RecurrentNet
from trainlab.trainers.result import RunResult
from trainlab.core.seeding import torch_generator
from trainlab.trainers.base import TRAINERS, Monitor, Trainer, resolve_loss
from trainlab.trainers.batching import epoch_batches
from trainlab.trainers.optimizers import OPTIMIZERS, make_optimizer, optimizer_options


@dataclass(frozen=True)
class TBPTTConfig:
    """``k1`` steps between updates, ``k2`` steps back-propagated (default k1; a multiple of k1), the
    ``optimizer`` with its options, mini-batch size and gradient clipping (by norm, then by value)."""

    k1: int = 10
    k2: int | None = None
    optimizer: str = "adam"
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = 64
    clip_norm: float | None = None
    clip_value: float | None = None
    eval_every: int = 1

    def __post_init__(self) -> None:
        check_number("k1", self.k1, low=1, integer=True)
        if self.k2 is None:
            object.__setattr__(self, "k2", self.k1)
        check_number("k2", self.k2, low=self.k1, integer=True)
        if self.k2 % self.k1:  # type: ignore[operator]
            raise ConfigError("k2", self.k2, f"a multiple of k1 = {self.k1}")
        check_choice("optimizer", self.optimizer, [n for n in OPTIMIZERS.names() if n != "lbfgs"])
        object.__setattr__(self, "optimizer_options", optimizer_options(self.optimizer, **dict(self.optimizer_options)))
        if self.batch_size is not None:
            check_number("batch_size", self.batch_size, low=1, integer=True)
        for name in ("clip_norm", "clip_value"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), low=0, low_open=True)
        check_number("eval_every", self.eval_every, low=1, integer=True)


def stretch_ends(steps: int, k1: int) -> list[int]:
    """Ends e_1 < … < e_J = ``steps`` of the stretches, k1 apart (the first one possibly shorter)."""
    return list(range(steps % k1 or k1, steps + 1, k1))


def _state_at(model: RecurrentNet, x: Tensor, state: Any) -> Any:
    """The recurrent state after running ``x`` from ``state`` (None: zeros), without a graph."""
    with torch.no_grad():
        return model.rnn(x, state)[1]


def _detach(state: Any) -> Any:
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class TBPTTTrainer(Trainer):
    """BPTT(k1, k2) with one ``torch.optim`` optimizer (see the module docstring)."""

    name = "tbptt"

    def describe(self) -> dict[str, Any]:
        out = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)}
        return {"name": self.name, **{k: v for k, v in out.items() if k != "optimizer_options"},
                **dict(self.config.optimizer_options)}  # fmt: skip

    def fit(
        self,
        model: nn.Module,
        task: Task,
        budget: Budget,
        seed: int,
        callbacks: Sequence[Callback] = (),
        loss: Loss | None = None,
    ) -> RunResult:
        if not isinstance(model, RecurrentNet):
            raise ConfigError("trainer.tbptt.model", type(model).__name__, "a recurrent network (rnn, lstm, gru)")
        cfg = self.config
        loss_fn = resolve_loss(task, loss)
        monitor = Monitor(self, model, task, loss_fn, budget, seed, callbacks, eval_every=cfg.eval_every)
        optimizer = make_optimizer(cfg.optimizer, model.parameters(), **cfg.optimizer_options)
        monitor.state.lr = float(cfg.optimizer_options["lr"])
        batches = torch_generator(seed, "batches", device=task.device)
        monitor.begin()
        stop = monitor.status != "ok"
        while not stop:
            stop = self._epoch(model, task, loss_fn, optimizer, batches, monitor)
            if monitor.status != "ok":
                break
            stop = monitor.end_epoch() or stop
        return monitor.finish({"trainer": self.describe()})

    def _epoch(
        self, model: RecurrentNet, task: Task, loss_fn: Loss, optimizer: torch.optim.Optimizer,
        generator: torch.Generator, monitor: Monitor,
    ) -> bool:  # fmt: skip
        cfg = self.config
        model.train()
        for x, y in epoch_batches(task.train, cfg.batch_size, generator):
            if self._batch(model, x, y, loss_fn, optimizer, monitor):
                return True
        return False

    def _batch(
        self, model: RecurrentNet, x: Tensor, y: Tensor, loss_fn: Loss, optimizer: torch.optim.Optimizer,
        monitor: Monitor,
    ) -> bool:  # fmt: skip
        cfg = self.config
        k1, k2 = cfg.k1, int(cfg.k2 or cfg.k1)
        steps = x.shape[1]
        sequence = model.options.head == "sequence"
        kept: dict[int, Any] = {0: None}
        previous = 0
        trainable = [p for p in model.parameters() if p.requires_grad]
        for e in stretch_ends(steps, k1):
            begin = max(0, e - k2)
            if sequence or e == steps:
                seq, state = model.rnn(x[:, begin:e], kept[begin])
                if sequence:
                    length = e - previous
                    out = model.head(seq[:, -length:])
                    value = loss_fn(out, y[:, previous:e], monitor.state.step) * (length / steps)
                else:
                    value = loss_fn(model.head(seq[:, -1]), y, monitor.state.step)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                if cfg.clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(trainable, cfg.clip_norm)
                if cfg.clip_value is not None:
                    torch.nn.utils.clip_grad_value_(trainable, cfg.clip_value)
                optimizer.step()
                kept[e] = _detach(state)
                if monitor.tick(len(x), len(x), loss=value.detach()):
                    return True
            else:
                kept[e] = _state_at(model, x[:, previous:e], kept[previous])
            previous = e
        return False


def tbptt_config(options: Mapping[str, Any]) -> TBPTTConfig:
    """Flat options (trainer and optimizer options mixed) → :class:`TBPTTConfig`; errors name
    ``trainer.tbptt.<option>``."""
    own = {f.name for f in dataclasses.fields(TBPTTConfig)} - {"optimizer_options"}
    optimizer = options.get("optimizer", "adam")
    spec = OPTIMIZERS.get(optimizer) if optimizer in OPTIMIZERS else None
    defaults = spec.defaults if spec is not None else {}
    trainer_opts = {k: v for k, v in options.items() if k in own}
    opt_opts = {k: v for k, v in options.items() if k not in own}
    for key, value in opt_opts.items():
        if key not in defaults:
            raise ConfigError(f"trainer.tbptt.{key}", value, "an option among " + ", ".join(sorted(own | set(defaults))))
    try:
        return TBPTTConfig(optimizer_options=opt_opts, **trainer_opts)
    except ConfigError as err:
        raise ConfigError(f"trainer.tbptt.{err.field.split('.')[-1]}", err.value, err.allowed) from None


def _build(**options: Any) -> TBPTTTrainer:
    """The ``tbptt`` trainer; options: see :class:`TBPTTConfig` plus the optimizer's own."""
    return TBPTTTrainer(tbptt_config(options))


TRAINERS.register("tbptt")(_build)
