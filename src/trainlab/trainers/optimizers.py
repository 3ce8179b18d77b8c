"""Gradient optimizers by name: thin, validated wrappers over ``torch.optim``.

Every optimizer is PyTorch's implementation with PyTorch's defaults, except where PyTorch has no
sensible default for the variant:

* ``sgd``: ``torch.optim.SGD`` without momentum, ``lr = 0.01`` (PyTorch's 1e-3 is too small for plain
  SGD in the 20-epoch budgets of Morales Muñoz (2025), whose range is 0.01–0.001; 0.01 is also Keras's default).
* ``momentum``: heavy ball, v ← μv + g, θ ← θ − ηv, with ``momentum = 0.9``, ``lr = 0.01``.
* ``nag``: Nesterov momentum as in PyTorch (Sutskever et al. 2013 form), ``momentum = 0.9``, ``lr = 0.01``.
* ``adagrad`` (lr 0.01), ``rmsprop`` (lr 0.01, α 0.99), ``adam`` (lr 1e-3, β 0.9/0.999), ``adamw``
  (lr 1e-3, decoupled weight decay 0.01), ``lbfgs`` (lr 1, 20 inner iterations, history 100).
* ``adadelta``: ``torch.optim.Adadelta`` (Zeiler 2012) with PyTorch's defaults (lr 1, ρ 0.9, ε 1e-6).
* ``rmsprop-nesterov``: RMSProp with Nesterov momentum (Goodfellow, Bengio & Courville 2016, algorithm
  8.6; :class:`RMSpropNesterov`), lr 1e-3, ρ 0.9, momentum 0.9.

Any ``torch.optim``-style class becomes usable by name (as an optimizer and as a gradient trainer) once
registered, e.g. ``OPTIMIZERS.register("adamax")(OptimizerSpec(torch.optim.Adamax, {"lr": 2e-3}, momentum_key="betas"))``.

``make_optimizer(name, params, **options)`` rejects unknown options and invalid values with
:class:`~trainlab.core.config.ConfigError` naming ``optimizer.<name>.<option>``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.core.registry import Registry

T = TypeVar("T")


def _positive(field_name: str, value: Any) -> Any:
    return check_number(field_name, value, low=0, low_open=True)


MAX_LR = 1e6
"""Largest learning rate accepted: beyond it any step overflows float32 or diverges at once."""


def _learning_rate(field_name: str, value: Any) -> Any:
    return check_number(field_name, value, low=0, high=MAX_LR, low_open=True)


def _non_negative(field_name: str, value: Any) -> Any:
    return check_number(field_name, value, low=0)


def _unit(field_name: str, value: Any) -> Any:
    return check_number(field_name, value, low=0, high=1, high_open=True)


def _flag(field_name: str, value: Any) -> Any:
    return check_choice(field_name, value, (False, True))


def _count(field_name: str, value: Any) -> Any:
    return check_number(field_name, value, low=1, integer=True)


def _betas(field_name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(field_name, value, "a pair [beta1, beta2] of numbers in [0, 1)")
    return (_unit(f"{field_name}[0]", value[0]), _unit(f"{field_name}[1]", value[1]))


class RMSpropNesterov(torch.optim.Optimizer):
    """RMSProp with Nesterov momentum (Goodfellow, Bengio & Courville 2016, algorithm 8.6).

    The book's iteration, with interim point θ̃ = θ + αv::

        g ← ∇f(θ̃);  r ← ρr + (1 − ρ)g²;  v ← αv − ε g / (√r + δ);  θ ← θ + v

    is run, as PyTorch's Nesterov SGD is, on the look-ahead variable φ = θ + αv, which is what the
    parameters hold (so the gradient is taken at the parameters)::

        s ← g / (√r + δ);  v ← αv − εs;  φ ← φ − εs + αv

    With ``momentum = 0`` this is RMSProp (PyTorch's ``RMSprop`` with ``alpha = rho``).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        rho: float = 0.9,
        momentum: float = 0.9,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, {"lr": lr, "rho": rho, "momentum": momentum, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, rho, mu, eps, wd = (group[k] for k in ("lr", "rho", "momentum", "eps", "weight_decay"))
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.zeros_like(p)
                    state["velocity"] = torch.zeros_like(p)
                square_avg, velocity = state["square_avg"], state["velocity"]
                square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
                scaled = grad / (square_avg.sqrt() + eps)
                velocity.mul_(mu).add_(scaled, alpha=-lr)
                p.add_(scaled, alpha=-lr).add_(velocity, alpha=mu)
        return loss


def _line_search(field_name: str, value: Any) -> Any:
    return check_choice(field_name, value, (None, "strong_wolfe"))


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "lr": _learning_rate,
    "momentum": _unit,
    "dampening": _unit,
    "weight_decay": _non_negative,
    "alpha": _unit,
    "eps": _positive,
    "centered": _flag,
    "betas": _betas,
    "amsgrad": _flag,
    "lr_decay": _non_negative,
    "initial_accumulator_value": _non_negative,
    "max_iter": _count,
    "history_size": _count,
    "tolerance_grad": _non_negative,
    "tolerance_change": _non_negative,
    "line_search_fn": _line_search,
    "rho": _unit,
}


@dataclass(frozen=True)
class OptimizerSpec:
    """A ``torch.optim`` class, its configurable options with their defaults, and fixed arguments."""

    cls: type[torch.optim.Optimizer]
    defaults: Mapping[str, Any]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    momentum_key: str | None = None
    """Where one-cycle's momentum lives in a param group: ``"momentum"``, ``"betas"`` (β1) or none."""
    checks: Mapping[str, Callable[[str, Any], Any]] = field(default_factory=dict)
    """Validators of options this module does not know (``(field, value) -> value``, raising
    :class:`ConfigError`); an option with no validator reaches ``cls`` as given."""

    def resolve(self, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """All options of this optimizer with ``options`` applied, validated."""
        for key in options:
            if key not in self.defaults:
                raise ConfigError(
                    f"optimizer.{name}.{key}", options[key], "an option among " + ", ".join(sorted(self.defaults))
                )
        merged = {**self.defaults, **options}
        checks = {**_CHECKS, **self.checks}
        return {
            key: checks[key](f"optimizer.{name}.{key}", value) if key in checks else value
            for key, value in merged.items()
        }


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")

_SGD_DEFAULTS = {"lr": 0.01, "weight_decay": 0.0}
_ADAM_DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}

OPTIMIZERS.register("sgd")(OptimizerSpec(torch.optim.SGD, _SGD_DEFAULTS, {"momentum": 0.0}))
OPTIMIZERS.register("momentum")(
    OptimizerSpec(torch.optim.SGD, {**_SGD_DEFAULTS, "momentum": 0.9, "dampening": 0.0}, {}, "momentum")
)
OPTIMIZERS.register("nag")(
    OptimizerSpec(torch.optim.SGD, {**_SGD_DEFAULTS, "momentum": 0.9}, {"nesterov": True}, "momentum")
)
OPTIMIZERS.register("adagrad")(
    OptimizerSpec(
        torch.optim.Adagrad,
        {"lr": 0.01, "lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10},
    )
)
OPTIMIZERS.register("rmsprop")(
    OptimizerSpec(
        torch.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False},
        {},
        "momentum",
    )
)
OPTIMIZERS.register("rmsprop-nesterov")(
    OptimizerSpec(
        RMSpropNesterov,
        {"lr": 1e-3, "rho": 0.9, "momentum": 0.9, "eps": 1e-8, "weight_decay": 0.0},
        {},
        "momentum",
    )
)
OPTIMIZERS.register("adadelta")(
    OptimizerSpec(torch.optim.Adadelta, {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0})
)
OPTIMIZERS.register("adam")(OptimizerSpec(torch.optim.Adam, _ADAM_DEFAULTS, {}, "betas"))
OPTIMIZERS.register("adamw")(OptimizerSpec(torch.optim.AdamW, {**_ADAM_DEFAULTS, "weight_decay": 0.01}, {}, "betas"))
OPTIMIZERS.register("lbfgs")(
    OptimizerSpec(
        torch.optim.LBFGS,
        {
            "lr": 1.0,
            "max_iter": 20,
            "history_size": 100,
            "tolerance_grad": 1e-7,
            "tolerance_change": 1e-9,
            "line_search_fn": None,
        },
    )
)


def optimizer_options(name: str, **options: Any) -> dict[str, Any]:
    """Every option of optimizer ``name`` with defaults filled in and ``options`` validated."""
    return OPTIMIZERS.get(name).resolve(name, options)


def make_optimizer(name: str, params: Iterable[Any], **options: Any) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer registered as ``name`` over ``params`` (tensors or param groups)."""
    spec = OPTIMIZERS.get(name)
    return spec.cls(params, **spec.resolve(name, options), **spec.fixed)


def inner_optimizer_description(trainer: str, config: Any) -> dict[str, Any]:
    """The resolved description of a trainer configured by :func:`inner_optimizer_config`: its name, its
    configuration's own fields and, flattened beside them, its optimizer's options (the inverse of
    :func:`inner_optimizer_config`'s split)."""
    own = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "optimizer_options"}
    return {"name": trainer, **own, **dict(config.optimizer_options)}


def inner_optimizer_config(trainer: str, cls: type[T], options: Mapping[str, Any]) -> T:
    """The configuration ``cls`` of a trainer that runs a named optimizer inside its own loop (``bcd``,
    ``layerwise``, ``curriculum``), from flat ``options``: ``cls``'s own fields, and the options of its
    ``optimizer`` (default ``sgd``), which go to its ``optimizer_options`` field.

    Unknown options and invalid values raise :class:`ConfigError` naming ``trainer.<trainer>.<option>``.
    """
    own = {f.name for f in dataclasses.fields(cls)} - {"optimizer_options"}  # type: ignore[arg-type]
    optimizer = options.get("optimizer", "sgd")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"trainer.{trainer}.optimizer", optimizer, "one of " + ", ".join(OPTIMIZERS.names()))
    allowed = own | set(OPTIMIZERS.get(optimizer).defaults)
    for key, value in options.items():
        if key not in allowed:
            raise ConfigError(f"trainer.{trainer}.{key}", value, "an option among " + ", ".join(sorted(allowed)))
    build: Callable[..., T] = cls
    try:
        return build(
            **{k: v for k, v in options.items() if k in own},
            optimizer_options={k: v for k, v in options.items() if k not in own},
        )
    except ConfigError as err:
        field_name = err.field.split(".")[-1]
        raise ConfigError(f"trainer.{trainer}.{field_name}", err.value, err.allowed) from None
