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
from trainlab.core.seeding import torch_generator
from trainlab.models.init import ACTIVATIONS, DEFAULT_INIT, INITS, LSUV_BATCH, init_biases, initialize, lsuv
from trainlab.models.mlp import (
    MLP_WIDTHS,
    LinearOptions,
    MLPOptions,
    SpiralOptions,
    build_linear,
    build_mlp,
    build_spiral_mlp,
)
from trainlab.models.warm_start import warm_start
from trainlab.models.recurrent import GatedOptions, RecurrentOptions, build_recurrent

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
MODELS.register("linear")(
    ModelEntry(LinearOptions, build_linear, "linear model (softmax / least-squares regression)", ((30,), 2))
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
_SEQUENCE = ((100, 2), 1)
for _cell, _text in (("rnn", "Elman RNN (tanh)"), ("lstm", "LSTM, forget gate"), ("gru", "GRU")):
    MODELS.register(_cell)(
        ModelEntry(RecurrentOptions if _cell == "rnn" else GatedOptions, build_recurrent(_cell), f"{_text}, `width`×`layers`, linear read-out", _SEQUENCE)
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
    activation: str | None = None,
    init: str | None = None,
    generator: torch.Generator | None = None,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    **options: Any,
) -> nn.Module:
    """Model ``name`` for inputs of ``input_shape`` (without the batch dimension) and ``n_outputs``
    outputs, on ``generator``'s device, initialised from ``generator`` (default: the generator that
    :func:`trainlab.experiments.spec.execute` uses for seed 0). ``activation=None`` keeps the model's
    default (relu, tanh for recurrent networks).

    ``data`` = (training inputs, targets) is needed by the data-dependent schemes: ``init = "lsuv"``
    (on 256 samples drawn with ``generator``) and ``bias_init = "output-prior"``. With ``init_from``
    the weights of that earlier run replace the initialisation (:func:`~trainlab.models.warm_start.warm_start`).
    """
    given = {"activation": activation} if activation is not None else {}
    model, opts = _construct(name, input_shape, n_outputs, {**given, "init": init, **options})
    gen = generator if generator is not None else torch_generator(0, "init")
    model = model.to_empty(device=gen.device)
    initialize(model, str(opts.init), gen, opts.init_gain or 1.0)
    init_biases(model, "constant" if opts.bias_init == "constant" else "default", opts.bias_value)
    needs_data = [f"init={opts.init!r}"] * (opts.init == "lsuv")
    needs_data += [f"bias_init={opts.bias_init!r}"] * (opts.bias_init == "output-prior")
    if needs_data and data is None:
        raise ConfigError(f"model.{name}", ", ".join(needs_data), "a run with a task (this init needs training data)")
    if data is not None:
        x, y = data
        if opts.init == "lsuv":
            batch = torch.randperm(len(x), generator=gen, device=gen.device)[:LSUV_BATCH].to(x.device)
            lsuv(model, x[batch].to(gen.device))
        if opts.bias_init == "output-prior":
            init_biases(model, "output-prior", opts.bias_value, y.to(gen.device), n_outputs)
    if opts.init_from is not None:
        warm_start(model, opts.init_from, field=f"model.{name}.init_from")
    object.__setattr__(model, "trainlab_model", {"name": name, **dataclasses.asdict(opts)})  # recorded by fit
    return model


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
        "weight_layers": sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in leaves)
        + sum(m.num_layers for m in leaves if isinstance(m, nn.RNNBase)),
        "layers": [repr(m) for m in leaves],
        "description": MODELS.get(name).description,
    }
