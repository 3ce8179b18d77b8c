"""Activations and weight initialisation schemes, applied with an explicit ``torch.Generator``.

For a weight of a ``Linear`` or ``Conv`` layer, ``fan_in = in_channels × kernel area`` and
``fan_out = out_channels × kernel area`` (thesis 000 §4.4.2; Glorot & Bengio 2010; He et al. 2015):

================  =================================================  ==========================
scheme            weights                                            biases
================  =================================================  ==========================
glorot-uniform    U(−a, a), a = √(6 / (fan_in + fan_out))            0
glorot-normal     N(0, 2 / (fan_in + fan_out))                       0
he                N(0, 2 / fan_in)                                   0
lecun             N(0, 1 / fan_in) truncated at ±2σ, σ rescaled so   0
                  the variance stays 1 / fan_in (JAX/Keras lecun_normal)
standard          N(0, 1 / fan_in) (thesis 002's original code)      0
stax              N(0, 2 / (fan_in + fan_out)) (Glorot normal)       N(0, 0.01²)
                  (``jax.example_libraries.stax.Dense``'s default,
                  the init of the authors' updated spiral notebook)
torch-default     U(−1/√fan_in, 1/√fan_in) (PyTorch's reset)         U(−1/√fan_in, 1/√fan_in)
================  =================================================  ==========================

Batch-norm layers always start at weight 1, bias 0, running mean 0, running variance 1.
When ``init`` is not given it follows the activation (thesis 000 §4.4.2): He for ReLU-like units
(relu, leaky-relu, elu, gelu), LeCun for SELU, Glorot-uniform for tanh and sigmoid.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky-relu": lambda: nn.LeakyReLU(0.01),
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

DEFAULT_INIT = {
    "relu": "he",
    "leaky-relu": "he",
    "elu": "he",
    "gelu": "he",
    "selu": "lecun",
    "tanh": "glorot-uniform",
    "sigmoid": "glorot-uniform",
}

INITS = ("glorot-uniform", "glorot-normal", "he", "lecun", "standard", "stax", "torch-default")

# Standard deviation of N(0, 1) truncated to [-2, 2]; dividing by it keeps the truncated variance.
_TRUNC_STD = 0.87962566103423978


def activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (one of :data:`ACTIVATIONS`)."""
    return ACTIVATIONS[name]()


def fans(weight: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear (out, in) or Conv (out, in, *kernel) weight."""
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


@torch.no_grad()
def init_weight(weight: Tensor, bias: Tensor | None, scheme: str, generator: torch.Generator) -> None:
    """Fill ``weight`` and ``bias`` in place with ``scheme`` (see the module docstring)."""
    fan_in, fan_out = fans(weight)
    if scheme == "glorot-uniform":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        weight.uniform_(-a, a, generator=generator)
    elif scheme in ("glorot-normal", "stax"):
        weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
    elif scheme == "he":
        weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
    elif scheme == "lecun":
        std = math.sqrt(1.0 / fan_in) / _TRUNC_STD
        nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std, generator=generator)
    elif scheme == "standard":
        weight.normal_(0.0, math.sqrt(1.0 / fan_in), generator=generator)
    elif scheme == "torch-default":
        bound = 1.0 / math.sqrt(fan_in)
        weight.uniform_(-bound, bound, generator=generator)
    else:
        raise ValueError(f"init: got {scheme!r}; allowed: one of {', '.join(INITS)}")
    if bias is None:
        return
    if scheme == "stax":
        bias.normal_(0.0, 0.01, generator=generator)
    elif scheme == "torch-default":
        bound = 1.0 / math.sqrt(fan_in)
        bias.uniform_(-bound, bound, generator=generator)
    else:
        bias.zero_()


@torch.no_grad()
def initialize(model: nn.Module, scheme: str, generator: torch.Generator) -> nn.Module:
    """Initialise every Linear/Conv layer of ``model`` with ``scheme`` (in module order), reset
    every batch-norm layer and let modules with an ``init_parameters(scheme, generator)`` method
    (recurrent networks) initialise the rest; all randomness comes from ``generator``."""
    for module in model.modules():
        own = getattr(module, "init_parameters", None)
        if callable(own):
            own(scheme, generator)
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            init_weight(module.weight, module.bias, scheme, generator)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_parameters()
    return model
