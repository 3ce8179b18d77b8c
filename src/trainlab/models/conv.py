"""Convolutional models: LeNet5 (LeCun et al. 1998) and the bottleneck ResNets (He et al. 2016) of Morales Muñoz
(2025), and Myrtle5 (Page 2018; Shankar et al. 2020) as used by Lavín Pallero (2021).

All take ``(channels, height, width)`` inputs. Parameter counts for a 1×32×32 input and 10 classes:
``lenet5`` 62,158, ``resnet15`` 513,034, ``resnet57`` 1,346,826 (the thesis's numbers), ``myrtle5``
1,555,914 (width 64).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.models.base import Builder, ModelOptions
from trainlab.models.init import activation


@dataclass(frozen=True)
class ConvOptions(ModelOptions):
    """Options of ``lenet5``: ``channels`` of its two convolutions (6, 16), its hidden ``widths``
    (120, 84) and ``batch_norm`` (true; false drops every batch-norm layer)."""

    channels: tuple[int, int] = (6, 16)
    widths: tuple[int, int] = (120, 84)
    batch_norm: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "channels", _pair("channels", self.channels))
        object.__setattr__(self, "widths", _pair("widths", self.widths))
        check_choice("batch_norm", self.batch_norm, (True, False))


def _pair(field: str, value: Any) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(field, value, "two positive integers")
    return (check_number(f"{field}[0]", value[0], low=1, integer=True),
            check_number(f"{field}[1]", value[1], low=1, integer=True))


def _norm(batch_norm: bool, channels: int, dims: int = 2) -> list[nn.Module]:
    """``[BatchNorm{dims}d(channels)]`` or nothing."""
    if not batch_norm:
        return []
    return [nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)]


@dataclass(frozen=True)
class ResNetOptions(ModelOptions):
    """Options of ``resnet15``/``resnet57``; ``dropout`` is the head's (Morales Muñoz 2025: 0.5)."""

    dropout: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("dropout", self.dropout, low=0, high=1, high_open=True)


@dataclass(frozen=True)
class MyrtleOptions(ModelOptions):
    """Options of ``myrtle5``: ``width`` is the first stage's channels (doubling each stage);
    ``batch_norm = false`` drops the batch-norm layers (the convolutions then carry biases)."""

    width: int = 64
    batch_norm: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("width", self.width, low=1, integer=True)
        check_choice("batch_norm", self.batch_norm, (True, False))


def _image_shape(name: str, input_shape: tuple[int, ...], min_size: int) -> tuple[int, int, int]:
    if len(input_shape) != 3 or min(input_shape[1:]) < min_size:
        raise ConfigError(
            f"model.{name}.input_shape", input_shape, f"(channels, height, width) with height, width >= {min_size}"
        )
    return input_shape


def build_lenet5(opts: ConvOptions, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """LeNet5 with ReLU, max pooling and batch norm (Morales Muñoz 2025, table 2); every layer has a bias."""
    channels, height, width = _image_shape("lenet5", input_shape, 16)
    (c1, c2), (w1, w2), bn = opts.channels, opts.widths, opts.batch_norm
    flat = c2 * (((height - 4) // 2 - 4) // 2) * (((width - 4) // 2 - 4) // 2)
    act = opts.activation
    return nn.Sequential(
        nn.Conv2d(channels, c1, 5), *_norm(bn, c1), activation(act), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5), *_norm(bn, c2), activation(act), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, w1), *_norm(bn, w1, 1), activation(act),
        nn.Linear(w1, w2), *_norm(bn, w2, 1), activation(act),
        nn.Linear(w2, n_outputs),
    )  # fmt: skip


class Bottleneck(nn.Module):
    """``y = act(BN(conv1×1(act(BN(conv3×3_s(act(BN(conv1×1(x)))))))) + shortcut(x))`` with
    ``out/4`` bottleneck channels, the stride on the 3×3 convolution, bias-free convolutions, and a
    1×1 convolution + BN shortcut only where the shape changes (He et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, act: str):
        super().__init__()
        mid = out_channels // 4
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, bias=False), nn.BatchNorm2d(mid), activation(act),
            nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(mid), activation(act),
            nn.Conv2d(mid, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
        )  # fmt: skip
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def build_resnet(name: str, blocks: tuple[int, int, int, int]) -> Builder:
    """A builder for the bottleneck ResNet ``name`` with ``blocks`` per stage of 64/128/256/512 channels.

    Stem: conv 7×7 (stride 1, no padding, no bias, 64 channels) → activation → BN → maxpool 3/2/1
    (SPEC §2 order; the thesis's table lists BN before the activation, which changes no count).
    Head: global average pool → BN1d → Dropout → Linear.
    """

    def build(opts: ResNetOptions, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        channels = _image_shape(name, input_shape, 7)[0]
        layers: list[nn.Module] = [
            nn.Conv2d(channels, 64, 7, bias=False), activation(opts.activation), nn.BatchNorm2d(64),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]  # fmt: skip
        in_channels = 64
        for stage, (out_channels, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            for i in range(count):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(Bottleneck(in_channels, out_channels, stride, opts.activation))
                in_channels = out_channels
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(512)]
        if opts.dropout > 0:
            layers.append(nn.Dropout(opts.dropout))
        layers.append(nn.Linear(512, n_outputs))
        return nn.Sequential(*layers)

    return build


def build_myrtle5(opts: MyrtleOptions, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """Myrtle5 as SPEC §2 (Myrtle.ai 2018 backbone without residual branches): conv3×3(w)-BN-act,
    then three stages conv3×3(2w, 4w, 8w)-BN-act-maxpool 2, global max pool, Linear. Convolutions
    have no bias (unless ``batch_norm`` is false)."""
    channels = _image_shape("myrtle5", input_shape, 8)[0]
    w, bn = opts.width, opts.batch_norm
    layers: list[nn.Module] = [
        nn.Conv2d(channels, w, 3, padding=1, bias=not bn), *_norm(bn, w), activation(opts.activation)
    ]
    for k in range(3):
        c_in, c_out = w * 2**k, w * 2 ** (k + 1)
        layers += [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=not bn), *_norm(bn, c_out), activation(opts.activation),
            nn.MaxPool2d(2),
        ]  # fmt: skip
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8 * w, n_outputs)]
    return nn.Sequential(*layers)
