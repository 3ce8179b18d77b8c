"""What every model shares: the options dataclass (activation, init) and the registry entry type."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from trainlab.core.config import check_choice
from trainlab.models.init import ACTIVATIONS, DEFAULT_INIT, INITS
from trainlab.core.registry import Registry


@dataclass(frozen=True)
class ModelOptions:
    """``activation`` of every hidden unit and the weight ``init`` scheme.

    ``init=None`` resolves to the model's ``default_init`` if it has one, else to the activation's
    default (:data:`trainlab.models.init.DEFAULT_INIT`), so the resolved options name the scheme used.
    """

    activation: str = "relu"
    init: str | None = None
    default_init: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        check_choice("activation", self.activation, ACTIVATIONS)
        if self.init is None:
            object.__setattr__(self, "init", self.default_init or DEFAULT_INIT[self.activation])
        check_choice("init", self.init, INITS)


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
