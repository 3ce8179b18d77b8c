"""Fully connected models: the MLPs of Morales Muñoz (2025) and the one-hidden-layer spiral
network of Lavín Pallero (2021).

``mlpK`` follows fastai's ``TabularModel`` as used by Morales Muñoz (2025): batch norm on the (flattened) inputs,
then per hidden width ``w`` a block ``Linear(no bias) → activation → BatchNorm1d(w) [→ Dropout]``,
then a final ``Linear`` with bias. The hidden linear layers carry no bias (fastai's ``LinBnDrop`` drops
it when batch norm follows); with it the thesis's published counts (2,238 / 6,462 / 85,310 / 1,403,838
for 30 inputs and 2 classes) are reproduced exactly.

Ablation options of the MLPs: ``batch_norm = false`` removes every batch-norm layer (the hidden linear
layers then carry biases), ``input_dropout`` drops input features (Srivastava et al. 2014 used 0.2),
``widths`` replaces the hidden widths, and ``activation = "maxout"`` makes each hidden linear layer
``maxout_pieces`` times wider with a maxout unit over the pieces (Goodfellow et al. 2013).
``linear`` is the plain linear model (softmax or least-squares regression): ``[Dropout →] Linear``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.models.base import Builder, ModelOptions
from trainlab.models.init import Maxout, activation

MLP_WIDTHS: dict[str, tuple[int, ...]] = {
    "mlp1": (64,),
    "mlp2": (64, 64),
    "mlp5": (64, 128, 256, 128, 64),
    "mlp11": (32, 64, 128, 256, 512, 1024, 512, 256, 128, 64, 32),
}


def _check_widths(field: str, widths: Any) -> tuple[int, ...]:
    if not isinstance(widths, (list, tuple)) or not widths:
        raise ConfigError(field, widths, "a non-empty list of positive integers")
    return tuple(check_number(f"{field}[{i}]", w, low=1, integer=True) for i, w in enumerate(widths))


@dataclass(frozen=True)
class MLPOptions(ModelOptions):
    """Options of ``mlp1``/``mlp2``/``mlp5``/``mlp11``; ``dropout`` follows each hidden block;
    ``widths=None`` keeps the model's own hidden widths."""

    dropout: float = 0.0
    input_dropout: float = 0.0
    batch_norm: bool = True
    widths: tuple[int, ...] | None = None
    maxout_pieces: int = 2
    supports_maxout: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("dropout", self.dropout, low=0, high=1, high_open=True)
        check_number("input_dropout", self.input_dropout, low=0, high=1, high_open=True)
        check_choice("batch_norm", self.batch_norm, (True, False))
        if self.widths is not None:
            object.__setattr__(self, "widths", _check_widths("widths", self.widths))
        check_number("maxout_pieces", self.maxout_pieces, low=2, integer=True)


@dataclass(frozen=True)
class LinearOptions(ModelOptions):
    """Options of ``linear``: ``input_dropout`` only (activation and init apply to nothing hidden)."""

    input_dropout: float = 0.0
    default_init: ClassVar[str | None] = "torch-default"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("input_dropout", self.input_dropout, low=0, high=1, high_open=True)


@dataclass(frozen=True)
class SpiralOptions(ModelOptions):
    """Options of ``spiral-mlp``: hidden ``width`` H; init defaults to Lavín Pallero's (2021) "standard"."""

    width: int = 100
    maxout_pieces: int = 2
    default_init: ClassVar[str | None] = "standard"
    supports_maxout: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("width", self.width, low=1, integer=True)
        check_number("maxout_pieces", self.maxout_pieces, low=2, integer=True)


def _flat_inputs(input_shape: tuple[int, ...]) -> tuple[list[nn.Module], int]:
    if len(input_shape) == 1:
        return [], input_shape[0]
    return [nn.Flatten()], math.prod(input_shape)


def _hidden(n_in: int, width: int, act: str, pieces: int, bias: bool) -> list[nn.Module]:
    """``Linear → activation``; for maxout the linear layer has ``pieces``·width outputs."""
    if act == "maxout":
        return [nn.Linear(n_in, pieces * width, bias=bias), Maxout(pieces)]
    return [nn.Linear(n_in, width, bias=bias), activation(act)]


def build_mlp(widths: tuple[int, ...]) -> Builder:
    """A builder for the MLP with hidden ``widths`` (unless the options give their own)."""

    def build(opts: MLPOptions, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        layers, n_in = _flat_inputs(input_shape)
        if opts.input_dropout > 0:
            layers.append(nn.Dropout(opts.input_dropout))
        if opts.batch_norm:
            layers.append(nn.BatchNorm1d(n_in))
        for width in opts.widths or widths:
            layers += _hidden(n_in, width, opts.activation, opts.maxout_pieces, bias=not opts.batch_norm)
            if opts.batch_norm:
                layers.append(nn.BatchNorm1d(width))
            if opts.dropout > 0:
                layers.append(nn.Dropout(opts.dropout))
            n_in = width
        layers.append(nn.Linear(n_in, n_outputs))
        return nn.Sequential(*layers)

    return build


def build_spiral_mlp(opts: SpiralOptions, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """``Linear(in, H) → activation → Linear(H, outputs)``, both with bias, no batch norm."""
    layers, n_in = _flat_inputs(input_shape)
    layers += _hidden(n_in, opts.width, opts.activation, opts.maxout_pieces, bias=True)
    layers.append(nn.Linear(opts.width, n_outputs))
    return nn.Sequential(*layers)


def build_linear(opts: LinearOptions, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """``[Flatten →] [Dropout →] Linear(in, outputs)`` with bias."""
    layers, n_in = _flat_inputs(input_shape)
    if opts.input_dropout > 0:
        layers.append(nn.Dropout(opts.input_dropout))
    layers.append(nn.Linear(n_in, n_outputs))
    return nn.Sequential(*layers)
