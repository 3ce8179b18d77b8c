"""What every model shares: the options dataclass (activation, init) and the registry entry type."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.core.registry import Registry
from trainlab.models.init import ACTIVATIONS, BIAS_INITS, DEFAULT_INIT, GAIN_INITS, INITS, default_gain


@dataclass(frozen=True)
class ModelOptions:
    """``activation`` of every hidden unit, the weight ``init`` scheme and the bias heuristic.

    ``init=None`` resolves to the model's ``default_init`` if it has one, else to the activation's
    default (:data:`trainlab.models.init.DEFAULT_INIT`), so the resolved options name the scheme used.
    ``init_gain`` scales ``orthogonal`` and ``sparse`` (None: :func:`~trainlab.models.init.default_gain`);
    ``bias_init`` is ``default``, ``constant`` (hidden biases = ``bias_value``) or ``output-prior``.
    Models whose builder widens the layer before the activation (``supports_maxout``) accept ``maxout``.
    ``init_from`` warm-starts from an earlier run's selected weights (:mod:`trainlab.models.warm_start`).
    """

    activation: str = "relu"
    init: str | None = None
    init_gain: float | None = None
    bias_init: str = "default"
    bias_value: float = 0.1
    init_from: str | None = None
    default_init: ClassVar[str | None] = None
    supports_maxout: ClassVar[bool] = False

    def __post_init__(self) -> None:
        allowed = [a for a in ACTIVATIONS if a != "maxout" or self.supports_maxout]
        check_choice("activation", self.activation, allowed)
        if self.init is None:
            object.__setattr__(self, "init", self.default_init or DEFAULT_INIT[self.activation])
        check_choice("init", self.init, INITS)
        if self.init in GAIN_INITS:
            if self.init_gain is None:
                object.__setattr__(self, "init_gain", default_gain(str(self.init), self.activation))
            check_number("init_gain", self.init_gain, low=0, low_open=True)
        elif self.init_gain is not None:
            raise ConfigError("init_gain", self.init_gain, f"null unless init is one of {', '.join(GAIN_INITS)}")
        check_choice("bias_init", self.bias_init, BIAS_INITS)
        check_number("bias_value", self.bias_value)
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            raise ConfigError("init_from", self.init_from, "a run folder, EXPERIMENT_DIR/RUN_ID or a run id")


Builder = Callable[[Any, tuple[int, ...], int], nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its options class, its builder ``(options, input_shape, n_outputs)``,
    a one-line description and the thesis's reference set-up ``(input_shape, n_outputs)``."""

    options: type[ModelOptions]
    build: Builder
    description: str
    reference: tuple[tuple[int, ...], int]


MODELS: Registry[ModelEntry] = Registry("model")
