"""Gradient-based training: mini-batch (or full-batch) descent with a ``torch.optim`` optimizer.

One trainer class, registered under each optimizer's name: ``gd`` (full-batch SGD), ``sgd``, ``momentum``,
``nag``, ``adagrad``, ``rmsprop``, ``adam``, ``adamw`` and ``lbfgs``, and every other registered optimizer
(``adadelta``, ``rmsprop-nesterov``...). Per optimizer step t (0-based):

    η_t ← schedule(t);  g ← ∇[ℓ_t(f(x_B), y_B) + penalty(θ)];  clip g;
    W ← W − η_t λ_dec W (decoupled decay, as AdamW);  θ ← optimizer step(g);  update the average.

Mini-batches come from a ``torch.randperm`` of the training split on its device, with a generator
derived from the run seed; a trailing batch of a single sample is merged into the previous one (batch
norm cannot train on one sample): :mod:`trainlab.trainers.batching`, the loop the LR finder shares. With ``batch_size = 1`` (per-sample SGD) on a model with batch norm,
a sample's own statistics are undefined (zero variance), so each batch-norm layer normalises with its
running statistics (as in evaluation, "frozen" batch norm) while its affine parameters still train, and
the running statistics are recalibrated on the whole training split at the start of every epoch
(:func:`trainlab.models.batchnorm.recalibrate`: one forward pass over it, counted as forward samples), so
they follow the weights; the LR finder does the same. ``train_epoch`` is public so that memetic hybrids can apply "one
epoch of a chosen optimizer" to any model.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError, check_choice, check_number, did_you_mean
from trainlab.core.seeding import torch_generator
from trainlab.data.task import Task
from trainlab.losses import Loss
from trainlab.losses.metrics import METRICS
from trainlab.models.batchnorm import recalibrate
from trainlab.trainers.base import SELECTIONS, TRAINERS, Monitor, Trainer, resolve_loss
from trainlab.trainers.batching import batch_starts, epoch_batches, frozen_batch_norm, training_forward
from trainlab.trainers.callbacks import Callback, Penalty
from trainlab.trainers.evaluation import EVAL_TEST, EVAL_TRAIN, EvalPolicy, resolve_train
from trainlab.trainers.lr_finder import SUGGESTIONS, lr_find
from trainlab.trainers.optimizers import OPTIMIZERS, OptimizerSpec, make_optimizer, optimizer_options
from trainlab.trainers.regularization import (
    EarlyStopping,
    WeightAverager,
    decay_weights,
    make_penalty,
    set_dropout,
    weight_names,
)
from trainlab.trainers.result import RunResult
from trainlab.trainers.schedules import (
    NEEDS_TOTAL,
    SCHEDULE_REGISTRY,
    SCHEDULES,
    WARMUPS,
    Schedule,
    apply_schedule,
    make_schedule,
)

GRADIENT_TRAINERS = ("gd", "sgd", "momentum", "nag", "adagrad", "rmsprop", "adam", "adamw", "lbfgs")
"""The built-in gradient trainers; every optimizer registered in ``OPTIMIZERS`` later is one too
(:func:`gradient_trainers` lists them all)."""
_OPTIMIZER_OF = {"gd": "sgd"}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "gd": {"batch_size": None, "eval_test": "rows"},
    "lbfgs": {"batch_size": None, "line_search_fn": "strong_wolfe"},
}
AVERAGING = ("none", "polyak", "ema")


@dataclass(frozen=True)
class GradientConfig:
    """Options of a gradient trainer; ``optimizer_options`` holds the optimizer's own (lr, momentum, betas...).

    ``batch_size=None`` means full batch. Schedule options: ``step_epochs``/``gamma`` (step),
    ``min_lr`` (cosine, triangular start), ``warmup_epochs`` (warmup), ``pct_start``/``div``/``div_final``/``moms``
    (one-cycle, fastai defaults; as fastai's ``fit_one_cycle``, ``moms`` drive the optimizer's momentum even
    when its own is 0, e.g. RMSprop's, while the LR finder runs with the optimizer's own),
    ``decay_rate``/``decay_offset`` (exponential, inverse-time), ``decay_epochs``/``end_factor`` (linear);
    ``warmup`` (none/linear/constant, with ``warmup_epochs`` and ``warmup_factor``) precedes any decay but
    one-cycle and triangular. ``lr_find`` runs the LR finder first and uses its suggestion as lr (as lr_max for
    one-cycle); ``lr_find_suggest`` picks fastai's rule (valley, steep, minimum, slide). The lr used (the
    suggestion or ``lr``; one-cycle's lr_max) is reported as ``final["lr"]``. Regularisation: ``l1``/``l2``/``lm`` (order ``m``),
    ``decoupled_weight_decay``, ``dropout``, ``patience``/``min_delta`` (early stopping),
    ``clip_norm``/``clip_value``, ``averaging`` (none/polyak/ema with ``ema_decay``). ``select``: which
    epochs may be selected, ``trained`` (fastai's ``SaveModelCallback``) or ``all`` (epoch 0 included).
    Evaluation policy (:mod:`trainlab.trainers.evaluation`): a history row every ``eval_every`` epochs with
    validation always, train values ``eval_train`` (auto/running/full), test ``eval_test`` (end/rows; ``gd``
    defaults to rows), on at most ``eval_samples`` samples per split. ``compile`` runs the training steps
    through ``torch.compile`` (Ansel et al. 2024).
    """

    optimizer: str = "sgd"
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = 64
    schedule: str = "constant"
    step_epochs: float = 10.0
    gamma: float = 0.1
    min_lr: float = 0.0
    warmup_epochs: float = 1.0
    pct_start: float = 0.25
    div: float = 25.0
    div_final: float = 1e5
    moms: tuple[float, float, float] | None = (0.95, 0.85, 0.95)
    warmup: str = "none"
    warmup_factor: float = 0.1
    decay_rate: float = 0.1
    decay_offset: float = 1.0
    decay_epochs: float = 10.0
    end_factor: float = 0.01
    lr_find: bool = False
    lr_find_min: float = 1e-7
    lr_find_max: float = 10.0
    lr_find_steps: int = 100
    lr_find_suggest: str = "valley"
    l1: float = 0.0
    l2: float = 0.0
    lm: float = 0.0
    m: float = 3.0
    decoupled_weight_decay: float = 0.0
    dropout: float | None = None
    patience: int | None = None
    min_delta: float = 0.0
    clip_norm: float | None = None
    clip_value: float | None = None
    averaging: str = "none"
    ema_decay: float = 0.999
    eval_every: int = 1
    eval_train: str = "auto"
    eval_test: str = "end"
    eval_samples: int | None = None
    select: str = "trained"
    compile: bool = False

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS.names())
        check_choice("select", self.select, SELECTIONS)
        object.__setattr__(
            self, "optimizer_options", optimizer_options(self.optimizer, **dict(self.optimizer_options))
        )
        if self.batch_size is not None:
            check_number("batch_size", self.batch_size, low=1, integer=True)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_number("step_epochs", self.step_epochs, low=0, low_open=True)
        check_number("gamma", self.gamma, low=0, high=1, low_open=True)
        check_number("min_lr", self.min_lr, low=0)
        check_number("warmup_epochs", self.warmup_epochs, low=0, low_open=True)
        check_number("pct_start", self.pct_start, low=0, high=1, low_open=True, high_open=True)
        check_number("div", self.div, low=1)
        check_number("div_final", self.div_final, low=1)
        check_choice("warmup", self.warmup, WARMUPS)
        check_number("warmup_factor", self.warmup_factor, low=0, high=1, low_open=True)
        check_number("decay_rate", self.decay_rate, low=0)
        check_number("decay_offset", self.decay_offset, low=0, low_open=True)
        check_number("decay_epochs", self.decay_epochs, low=0, low_open=True)
        check_number("end_factor", self.end_factor, low=0, high=1)
        if self.warmup != "none" and not SCHEDULE_REGISTRY.get(self.schedule).warmup_composes:
            raise ConfigError("warmup", self.warmup, f"none (schedule {self.schedule!r} has its own warm-up)")
        if self.schedule == "warmup" and self.warmup == "constant":
            raise ConfigError("warmup", self.warmup, "none or linear with schedule 'warmup' (linear warm-up)")
        if self.moms is not None:
            if not isinstance(self.moms, (list, tuple)) or len(self.moms) != 3:
                raise ConfigError("moms", self.moms, "three momenta [start, middle, end] in [0, 1), or null")
            moms = tuple(check_number(f"moms[{i}]", v, low=0, high=1, high_open=True) for i, v in enumerate(self.moms))
            object.__setattr__(self, "moms", moms)
        check_choice("lr_find", self.lr_find, (False, True))
        check_number("lr_find_min", self.lr_find_min, low=0, low_open=True)
        check_number("lr_find_max", self.lr_find_max, low=self.lr_find_min, low_open=True)
        check_number("lr_find_steps", self.lr_find_steps, low=2, integer=True)
        check_choice("lr_find_suggest", self.lr_find_suggest, SUGGESTIONS)
        for name in ("l1", "l2", "lm", "decoupled_weight_decay", "min_delta"):
            check_number(name, getattr(self, name), low=0)
        check_number("m", self.m, low=1)
        if self.dropout is not None:
            check_number("dropout", self.dropout, low=0, high=1, high_open=True)
        if self.patience is not None:
            check_number("patience", self.patience, low=1, integer=True)
        for name in ("clip_norm", "clip_value"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), low=0, low_open=True)
        check_choice("averaging", self.averaging, AVERAGING)
        check_number("ema_decay", self.ema_decay, low=0, high=1, low_open=True, high_open=True)
        check_number("eval_every", self.eval_every, low=1, integer=True)
        check_choice("eval_train", self.eval_train, EVAL_TRAIN)
        check_choice("eval_test", self.eval_test, EVAL_TEST)
        if self.eval_samples is not None:
            check_number("eval_samples", self.eval_samples, low=1, integer=True)
        check_choice("compile", self.compile, (False, True))
        if self.compile:
            check_compile("compile", None)

    @property
    def lr(self) -> float:
        return float(self.optimizer_options["lr"])


def gradient_config(name: str, options: Mapping[str, Any]) -> GradientConfig:
    """Build the configuration of trainer ``name`` from flat ``options`` (trainer and optimizer options mixed).

    Errors name ``trainer.<name>.<option>`` and list the allowed options.
    """
    optimizer = _OPTIMIZER_OF.get(name, name)
    spec = OPTIMIZERS.get(optimizer)
    own = {f.name for f in dataclasses.fields(GradientConfig)} - {"optimizer", "optimizer_options"}
    allowed = sorted(own | set(spec.defaults))
    merged = {**_DEFAULTS.get(name, {}), **options}
    if name == "gd" and merged.get("batch_size") is not None:
        raise ConfigError(f"trainer.{name}.batch_size", merged["batch_size"], "null (gd is full batch; use sgd)")
    trainer_opts: dict[str, Any] = {}
    opt_opts: dict[str, Any] = {}
    for key, value in merged.items():
        if key in own:
            trainer_opts[key] = value
        elif key in spec.defaults:
            opt_opts[key] = value
        else:
            raise ConfigError(f"trainer.{name}.{key}", value, "an option among " + ", ".join(allowed) + did_you_mean(key, allowed))
    try:
        return GradientConfig(optimizer=optimizer, optimizer_options=opt_opts, **trainer_opts)
    except ConfigError as err:
        field_name = err.field.split(".")[-1] if err.field.startswith("optimizer.") else err.field
        raise ConfigError(f"trainer.{name}.{field_name}", err.value, err.allowed) from None


@dataclass
class StepRule:
    """What happens around each optimizer step besides the gradient itself."""

    schedule: Schedule | None = None
    momentum_key: str | None = None
    penalty: Penalty | None = None
    clip_norm: float | None = None
    clip_value: float | None = None
    decoupled_weight_decay: float = 0.0
    averager: WeightAverager | None = None


@dataclass
class EpochStats:
    """What one call of :func:`train_epoch` spent, and the mean training loss of its batches."""

    forward_samples: int = 0
    backward_samples: int = 0
    steps: int = 0
    loss: float = float("nan")
    stopped: bool = False
    outputs: list[Tensor] = field(default_factory=list)
    """With ``keep_outputs``: each step's detached outputs (first evaluation of the step), with ``targets``."""
    targets: list[Tensor] = field(default_factory=list)


def train_epoch(
    model: nn.Module,
    task: Task,
    loss: Loss,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int | None,
    generator: torch.Generator,
    monitor: Monitor | None = None,
    rule: StepRule | None = None,
    step: int = 0,
    augment_generator: torch.Generator | None = None,
    keep_outputs: bool = False,
    forward: Callable[[Tensor], Tensor] | None = None,
) -> EpochStats:
    """One pass of mini-batch training over ``task.train`` (full batch when ``batch_size`` is None).

    ``step`` is the index of the first optimizer step (for dynamic losses and schedules); with a
    ``monitor`` its step count is used instead, every step is ticked and the epoch ends early when the
    monitor says stop. A non-finite batch loss ends the epoch (``stopped``; the monitor, if any, marks
    the run diverged). With ``keep_outputs`` the stats keep every step's outputs and targets (for the
    running training loss and metric); ``forward`` replaces ``model(x)`` for the training forward pass (a
    compiled model). Returns the spending of this epoch.
    """
    rule = rule or StepRule()
    model.train()
    x_all = task.train.x
    params: dict[str, Tensor] = dict(model.named_parameters())
    trainable = [p for p in params.values() if p.requires_grad]
    weights: list[Tensor] = [params[name] for name in weight_names(model)] if rule.decoupled_weight_decay > 0 else []
    closure_needed = isinstance(optimizer, torch.optim.LBFGS)
    stats = EpochStats()
    frozen = frozen_batch_norm(model, task.train, batch_size)
    refresh = recalibrate(model, [x_all]) if frozen else 0
    loss_sum = 0.0
    seen = 0
    run = forward if forward is not None else model
    t = monitor.state.step if monitor is not None else step
    for x, y in epoch_batches(task.train, batch_size, generator, task.augment, augment_generator):
        if rule.schedule is not None:
            lr, mom = apply_schedule(optimizer, rule.schedule, t, rule.momentum_key)
            if monitor is not None:
                monitor.set_rates(lr=lr)
                if mom is not None and rule.momentum_key == "momentum":
                    monitor.set_rates(momentum=mom)
        b = len(y)
        calls = 0

        def closure() -> Tensor:
            nonlocal calls
            calls += 1
            optimizer.zero_grad(set_to_none=True)
            with training_forward(model, frozen):
                outputs = run(x)
            if keep_outputs and calls == 1:
                stats.outputs.append(outputs.detach())
                stats.targets.append(y)
            value = loss(outputs, y, t)
            objective = value + rule.penalty(params) if rule.penalty is not None else value
            objective.backward()
            if rule.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(trainable, rule.clip_norm)
            if rule.clip_value is not None:
                torch.nn.utils.clip_grad_value_(trainable, rule.clip_value)
            return value.detach()

        if closure_needed:
            if weights:
                decay_weights(weights, optimizer.param_groups[0]["lr"] * rule.decoupled_weight_decay)
            value = cast(Tensor, optimizer.step(closure))  # type: ignore[arg-type]
        else:
            value = closure()
            if weights:
                decay_weights(weights, optimizer.param_groups[0]["lr"] * rule.decoupled_weight_decay)
            optimizer.step()
        fwd = bwd = b * max(calls, 1)
        fwd, refresh = fwd + refresh, 0
        stats.forward_samples += fwd
        stats.backward_samples += bwd
        if rule.averager is not None:
            rule.averager.update(model)
        stats.steps += 1
        t += 1
        current = float(value)
        loss_sum += current * b
        seen += b
        finite = math.isfinite(current)
        if (monitor is not None and monitor.tick(fwd, bwd, loss=None if finite else value)) or not finite:
            stats.stopped = True
            break
    if seen:
        stats.loss = loss_sum / seen
    return stats


def planned_steps(budget: Budget, n_train: int, batch_size: int | None, lbfgs: bool = False) -> int | None:
    """Total optimizer steps the budget allows, when it can be known in advance (else ``None``)."""
    starts = batch_starts(n_train, batch_size)
    sizes = [e - s for s, e in zip(starts, starts[1:] + [n_train])]
    options = []
    if budget.steps is not None:
        options.append(budget.steps)
    if budget.epochs is not None:
        options.append(budget.epochs * len(sizes))
    if budget.sample_evals is not None and not lbfgs:
        full, rest = divmod(budget.sample_evals, 2 * n_train)
        steps, spent = full * len(sizes), 0
        for size in sizes:
            if spent >= rest:
                break
            spent += 2 * size
            steps += 1
        options.append(steps)
    return min(options) if options else None


class GradientTrainer(Trainer):
    """Mini-batch training with one ``torch.optim`` optimizer (see the module docstring)."""

    def __init__(self, config: GradientConfig, name: str = "sgd"):
        super().__init__(config)
        self.name = name

    def describe(self) -> dict[str, Any]:
        """Flat options (trainer and optimizer), valid input to ``make_trainer(self.name, ...)``."""
        out = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)}
        out.pop("optimizer")
        opts = dict(out.pop("optimizer_options"))
        if self.name == "gd":
            out.pop("batch_size")
        return {"name": self.name, **out, **opts}

    def fit(
        self,
        model: nn.Module,
        task: Task,
        budget: Budget,
        seed: int,
        callbacks: Sequence[Callback] = (),
        loss: Loss | None = None,
    ) -> RunResult:
        cfg = self.config
        where = f"trainer.{self.name}"
        loss_fn = resolve_loss(task, loss)
        if cfg.dropout is not None:
            set_dropout(model, cfg.dropout, where=f"{where}.dropout")
        spec = OPTIMIZERS.get(cfg.optimizer)
        n_train = len(task.train)
        total = planned_steps(budget, n_train, cfg.batch_size, lbfgs=cfg.optimizer == "lbfgs")
        if cfg.schedule in NEEDS_TOTAL and total is None:
            raise ConfigError(
                f"{where}.schedule", cfg.schedule, "a budget in epochs, steps or sample_evals (needs the total steps)"
            )
        penalty = make_penalty(model, cfg.l1, cfg.l2, cfg.lm, cfg.m)
        extra: list[Callback] = [EarlyStopping(cfg.patience, cfg.min_delta)] if cfg.patience else []
        steps_per_epoch = len(batch_starts(n_train, cfg.batch_size))
        policy = EvalPolicy(cfg.eval_every, resolve_train(cfg.eval_train, steps_per_epoch), cfg.eval_test, cfg.eval_samples)
        monitor = Monitor(
            self, model, task, loss_fn, budget, seed, [*callbacks, *extra], penalty=penalty, policy=policy
        )
        forward: Callable[[Tensor], Tensor] | None = None
        if cfg.compile:
            check_compile(f"{where}.compile", task.device)
            forward = cast(Callable[[Tensor], Tensor], torch.compile(model))
        lr = cfg.lr
        if cfg.lr_find:
            lr = self._find_lr(model, task, loss_fn, seed, penalty, monitor)
        optimizer = make_optimizer(cfg.optimizer, model.parameters(), **{**cfg.optimizer_options, "lr": lr})
        schedule = None
        if cfg.schedule != "constant" or cfg.warmup != "none":
            schedule = make_schedule(
                cfg.schedule,
                lr=lr,
                steps_per_epoch=steps_per_epoch,
                total_steps=total,
                step_epochs=cfg.step_epochs,
                gamma=cfg.gamma,
                min_lr=cfg.min_lr,
                warmup_epochs=cfg.warmup_epochs,
                pct_start=cfg.pct_start,
                div=cfg.div,
                div_final=cfg.div_final,
                moms=cfg.moms,
                warmup=cfg.warmup,
                warmup_factor=cfg.warmup_factor,
                decay_rate=cfg.decay_rate,
                decay_offset=cfg.decay_offset,
                decay_epochs=cfg.decay_epochs,
                end_factor=cfg.end_factor,
                where=f"{where}.schedule",
            )
        cycled = cfg.schedule == "one-cycle" and cfg.moms is not None
        momentum_key = spec.momentum_key if _base_momentum(cfg.optimizer_options) > 0 or cycled else None
        averager = WeightAverager(model, cfg.averaging, cfg.ema_decay) if cfg.averaging != "none" else None
        rule = StepRule(
            schedule, momentum_key, penalty, cfg.clip_norm, cfg.clip_value, cfg.decoupled_weight_decay, averager
        )
        monitor.set_rates(lr=schedule.lr(0) if schedule is not None else lr)
        if spec.momentum_key == "momentum" and spec.cls is torch.optim.SGD:
            monitor.set_rates(momentum=float(cfg.optimizer_options["momentum"]))
        batches = torch_generator(seed, "batches", device=task.device)
        augment = torch_generator(seed, "augment", device=task.device) if task.augment is not None else None
        swap = averager.swapped if averager is not None else contextlib.nullcontext
        running = policy.train == "running"
        metric = METRICS.get(task.metric)
        monitor.begin()
        stop = not monitor.ok
        while not stop:
            stats = train_epoch(
                model, task, loss_fn, optimizer, batch_size=cfg.batch_size, generator=batches,
                monitor=monitor, rule=rule, augment_generator=augment, keep_outputs=running, forward=forward,
            )
            if running and stats.outputs:
                outputs, targets = torch.cat(stats.outputs), torch.cat(stats.targets)
                with torch.no_grad():
                    value = float(monitor.monitor_loss(outputs, targets, monitor.state.step))
                monitor.set_running(value, metric(outputs, targets))
            if stats.stopped and not monitor.ok:
                break
            with swap():
                stop = monitor.end_epoch()
        if averager is not None:
            averager.load_into()
        result = monitor.finish({"trainer": self.describe()})
        result.final["lr"] = lr
        return result

    def _find_lr(
        self, model: nn.Module, task: Task, loss_fn: Loss, seed: int, penalty: Penalty | None, monitor: Monitor
    ) -> float:
        cfg = self.config
        found = lr_find(
            model, task, loss_fn,
            optimizer=cfg.optimizer,
            optimizer_options=dict(cfg.optimizer_options),
            batch_size=cfg.batch_size,
            lr_min=cfg.lr_find_min,
            lr_max=cfg.lr_find_max,
            num_steps=cfg.lr_find_steps,
            suggest=cfg.lr_find_suggest,
            seed=seed,
            penalty=penalty,
        )
        monitor.spend(found.forward_samples, found.backward_samples)
        monitor.set_records("lr_find", [found.to_record()])
        return found.suggestion


def check_compile(where: str, device: torch.device | None) -> None:
    """A :class:`ConfigError` naming ``where`` when ``torch.compile`` cannot run here: an unsupported Python or
    platform, no C++ compiler for CPU code, no Triton for CUDA code (``device`` None: the first check only)."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise ConfigError(where, True, "false (torch.compile does not support this Python or platform)")
    if device is not None and device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise ConfigError(where, True, "false (torch.compile on CUDA needs the triton package, not installed)")
    elif device is not None:
        from torch._inductor.cpp_builder import get_cpp_compiler

        try:
            get_cpp_compiler()
        except Exception:  # noqa: BLE001 - inductor raises a bare RuntimeError when no compiler is found
            raise ConfigError(where, True, "false (torch.compile on CPU needs a C++ compiler; none found)") from None


def _base_momentum(options: Mapping[str, Any]) -> float:
    """The configured momentum (β1 for Adam-type optimizers), 0 when the optimizer has none."""
    if "betas" in options:
        return float(options["betas"][0])
    return float(options.get("momentum", 0.0))


_GRADIENT: list[str] = []


def gradient_trainers() -> list[str]:
    """Names of the registered gradient trainers: ``gd`` and one per registered optimizer."""
    return sorted(_GRADIENT)


def _register(name: str) -> None:
    def build(**options: Any) -> GradientTrainer:
        return GradientTrainer(gradient_config(name, options), name)

    build.__doc__ = f"The ``{name}`` gradient trainer; options: see :class:`GradientConfig`."
    TRAINERS.register(name)(build)
    _GRADIENT.append(name)


def _register_optimizer(name: str, spec: OptimizerSpec) -> None:
    """Every registered optimizer is a gradient trainer of the same name (unless that trainer name is taken)."""
    if name not in TRAINERS:
        _register(name)


_register("gd")
OPTIMIZERS.subscribe(_register_optimizer)
