"""Fully connected models: the thesis 000 MLPs and the one-hidden-layer spiral network of thesis 002.

``mlpK`` follows fastai's ``TabularModel`` as used by thesis 000: batch norm on the (flattened) inputs,
then per hidden width ``w`` a block ``Linear(no bias) → activation → BatchNorm1d(w) [→ Dropout]``,
then a final ``Linear`` with bias. The hidden linear layers carry no bias (fastai's ``LinBnDrop`` drops
it when batch norm follows); with it the thesis's published counts (2,238 / 6,462 / 85,310 / 1,403,838
for 30 inputs and 2 classes) are reproduced exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from trainlab.core.config import check_number
from trainlab.models.base import Builder, ModelOptions
from trainlab.models.init import activation

MLP_WIDTHS: dict[str, tuple[int, ...]] = {
    "mlp1": (64,),
    "mlp2": (64, 64),
    "mlp5": (64, 128, 256, 128, 64),
    "mlp11": (32, 64, 128, 256, 512, 1024, 512, 256, 128, 64, 32),
}


@dataclass(frozen=True)
class MLPOptions(ModelOptions):
    """Options of ``mlp1``/``mlp2``/``mlp5``/``mlp11``; ``dropout`` follows each hidden block."""

    dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("dropout", self.dropout, low=0, high=1, high_open=True)


@dataclass(frozen=True)
class SpiralOptions(ModelOptions):
    """Options of ``spiral-mlp``: hidden ``width`` H; init defaults to thesis 002's "standard"."""

    width: int = 100
    default_init: ClassVar[str | None] = "standard"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("width", self.width, low=1, integer=True)


def _flat_inputs(input_shape: tuple[int, ...]) -> tuple[list[nn.Module], int]:
    if len(input_shape) == 1:
        return [], input_shape[0]
    return [nn.Flatten()], math.prod(input_shape)


def build_mlp(widths: tuple[int, ...]) -> Builder:
    """A builder for the MLP with hidden ``widths``."""

    def build(opts: MLPOptions, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        layers, n_in = _flat_inputs(input_shape)
        layers.append(nn.BatchNorm1d(n_in))
        for width in widths:
            layers += [nn.Linear(n_in, width, bias=False), activation(opts.activation), nn.BatchNorm1d(width)]
            if opts.dropout > 0:
                layers.append(nn.Dropout(opts.dropout))
            n_in = width
        layers.append(nn.Linear(n_in, n_outputs))
        return nn.Sequential(*layers)

    return build


def build_spiral_mlp(opts: SpiralOptions, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """``Linear(in, H) → activation → Linear(H, outputs)``, both with bias, no batch norm."""
    layers, n_in = _flat_inputs(input_shape)
    layers += [nn.Linear(n_in, opts.width), activation(opts.activation), nn.Linear(opts.width, n_outputs)]
    return nn.Sequential(*layers)
