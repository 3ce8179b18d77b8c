"""Model architectures by name, built from a task's input shape and output size, explicitly initialised.

>>> model = build_model("mlp2", (30,), 2, generator=torch_generator(0, "init"))
>>> count_parameters(model)
6462

Models are constructed on the ``meta`` device (no memory, no random numbers drawn) and then
materialised on the generator's device and initialised from ``generator`` only, so equal generators
give equal weights and the global RNGs are never touched.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from trainlab.core.config import ConfigError, check_number, from_mapping
from trainlab.models.base import MODELS, ModelEntry, ModelOptions
from trainlab.models.conv import ConvOptions, MyrtleOptions, ResNetOptions, build_lenet5, build_myrtle5, build_resnet
from trainlab.models.init import ACTIVATIONS, DEFAULT_INIT, INITS, initialize
from trainlab.models.mlp import MLP_WIDTHS, MLPOptions, SpiralOptions, build_mlp, build_spiral_mlp
from trainlab.core.seeding import torch_generator

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_INIT",
    "INITS",
    "MODELS",
    "ModelEntry",
    "ModelOptions",
    "build_model",
    "count_parameters",
    "initialize",
    "model_config",
    "model_summary",
]

_IMAGE = ((1, 32, 32), 10)
for _name, _widths in MLP_WIDTHS.items():
    MODELS.register(_name)(
        ModelEntry(MLPOptions, build_mlp(_widths), f"MLP, BN inputs, hidden {list(_widths)}", ((30,), 2))
    )
MODELS.register("spiral-mlp")(
    ModelEntry(SpiralOptions, build_spiral_mlp, "one hidden layer of `width` units, no BN (thesis 002)", ((2,), 3))
)
MODELS.register("lenet5")(ModelEntry(ConvOptions, build_lenet5, "LeNet5 with BN, ReLU, max pooling", _IMAGE))
MODELS.register("resnet15")(
    ModelEntry(ResNetOptions, build_resnet("resnet15", (1, 1, 1, 1)), "bottleneck ResNet, blocks [1,1,1,1]", _IMAGE)
)
MODELS.register("resnet57")(
    ModelEntry(ResNetOptions, build_resnet("resnet57", (3, 4, 4, 3)), "bottleneck ResNet, blocks [3,4,4,3]", _IMAGE)
)
MODELS.register("myrtle5")(
    ModelEntry(MyrtleOptions, build_myrtle5, "Myrtle5 CNN, `width`·2^k channels, BN", ((3, 32, 32), 10))
)


def _options(name: str, options: dict[str, Any]) -> ModelOptions:
    return from_mapping(MODELS.get(name).options, options, where=f"model.{name}")


def model_config(name: str, **options: Any) -> dict[str, Any]:
    """The options of model ``name`` with every default resolved (``init`` from the activation)."""
    return dataclasses.asdict(_options(name, options))


def _construct(
    name: str, input_shape: Sequence[int], n_outputs: int, options: dict[str, Any]
) -> tuple[nn.Module, ModelOptions]:
    opts = _options(name, options)
    shape = tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ConfigError(f"model.{name}.input_shape", input_shape, "a non-empty tuple of positive integers")
    check_number(f"model.{name}.n_outputs", n_outputs, low=1, integer=True)
    with torch.device("meta"):
        model = MODELS.get(name).build(opts, shape, n_outputs)
    return model, opts


def build_model(
    name: str,
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    activation: str = "relu",
    init: str | None = None,
    generator: torch.Generator | None = None,
    **options: Any,
) -> nn.Module:
    """Model ``name`` for inputs of ``input_shape`` (without the batch dimension) and ``n_outputs``
    outputs, on ``generator``'s device, initialised from ``generator`` (default: the generator that
    :func:`trainlab.experiments.spec.execute` uses for seed 0)."""
    model, opts = _construct(name, input_shape, n_outputs, {"activation": activation, "init": init, **options})
    gen = generator if generator is not None else torch_generator(0, "init")
    model = model.to_empty(device=gen.device)
    return initialize(model, str(opts.init), gen)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (batch-norm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_summary(name: str, input_shape: Sequence[int], n_outputs: int, **options: Any) -> dict[str, Any]:
    """Name, resolved options, parameter count and layer list of model ``name`` for the given shape,
    computed without allocating weights (meta device)."""
    model, opts = _construct(name, input_shape, n_outputs, options)
    leaves = [m for m in model.modules() if not list(m.children())]
    return {
        "name": name,
        "input_shape": tuple(input_shape),
        "n_outputs": n_outputs,
        "options": dataclasses.asdict(opts),
        "parameters": count_parameters(model),
        "weight_layers": sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in leaves),
        "layers": [repr(m) for m in leaves],
        "description": MODELS.get(name).description,
    }
