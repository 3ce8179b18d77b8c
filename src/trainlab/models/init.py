"""Activations and weight initialisation schemes, applied with an explicit ``torch.Generator``.

For a weight of a ``Linear`` or ``Conv`` layer, ``fan_in = in_channels × kernel area`` and
``fan_out = out_channels × kernel area`` (Glorot & Bengio 2010; He et al. 2015; Morales Muñoz 2025 §4.4.2):

================  =================================================  ==========================
scheme            weights                                            biases
================  =================================================  ==========================
glorot-uniform    U(−a, a), a = √(6 / (fan_in + fan_out))            0
glorot-normal     N(0, 2 / (fan_in + fan_out))                       0
he                N(0, 2 / fan_in)                                   0
lecun             N(0, 1 / fan_in) truncated at ±2σ, σ rescaled so   0
                  the variance stays 1 / fan_in (JAX/Keras lecun_normal)
standard          N(0, 1 / fan_in) (code of Lavín Pallero 2021)      0
stax              N(0, 2 / (fan_in + fan_out)) (Glorot normal)       N(0, 0.01²)
                  (``jax.example_libraries.stax.Dense``'s default,
                  the init of the authors' updated spiral notebook)
torch-default     U(−1/√fan_in, 1/√fan_in) (PyTorch's reset)         U(−1/√fan_in, 1/√fan_in)
he-uniform        U(−a, a), a = √(6 / fan_in) (He et al. 2015)       0
orthogonal        g·Q, Q a uniformly random (semi-)orthogonal        0
                  matrix of the flattened (out, in·k) shape (Saxe
                  et al. 2014; PyTorch's ``orthogonal_``); gain g =
                  ``init_gain`` or the activation's gain (√2 ReLU)
sparse            per unit, k = min(15, fan_in) incoming weights     0
                  N(0, g²), the others 0 (Martens 2010); g =
                  ``init_gain`` or 1
lsuv              orthogonal (g = 1), then with data: each Linear/   0
                  Conv layer in order rescaled until its outputs on
                  a batch of 256 training samples have variance
                  within 0.1 of 1, at most 10 passes per layer
                  (Mishkin & Matas 2016, algorithm 1)
================  =================================================  ==========================

Bias heuristics (``bias_init``; Goodfellow, Bengio & Courville 2016 §8.4): ``default`` keeps the scheme's
biases; ``constant`` sets every hidden layer's bias to ``bias_value`` (0.1 keeps ReLU units active at
the start); ``output-prior`` sets the output layer's bias to the marginal statistics of the training
targets: log class frequencies for classification (so softmax(b) is the class prior), the target
means for regression.

Batch-norm layers always start at weight 1, bias 0, running mean 0, running variance 1.
When ``init`` is not given it follows the activation (Morales Muñoz 2025 §4.4.2): He for ReLU-like units
(relu, leaky-relu, elu, gelu, prelu, silu), LeCun for SELU, Glorot-uniform for tanh, sigmoid and maxout.
PReLU slopes start at 0.25 (He et al. 2015).
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
    "prelu": nn.PReLU,
    "silu": nn.SiLU,
}


class Maxout(nn.Module):
    """max over ``pieces`` consecutive groups of features (dimension 1): (N, k·C, ...) → (N, C, ...)
    (Goodfellow et al. 2013). The preceding layer produces ``pieces`` times the width."""

    def __init__(self, pieces: int = 2):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        return x.reshape(shape[0], shape[1] // self.pieces, self.pieces, *shape[2:]).amax(dim=2)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


ACTIVATIONS["maxout"] = Maxout

DEFAULT_INIT = {
    "relu": "he",
    "leaky-relu": "he",
    "elu": "he",
    "gelu": "he",
    "selu": "lecun",
    "tanh": "glorot-uniform",
    "sigmoid": "glorot-uniform",
    "prelu": "he",
    "silu": "he",
    "maxout": "glorot-uniform",
}

INITS = (
    "glorot-uniform", "glorot-normal", "he", "lecun", "standard", "stax", "torch-default", "he-uniform",
    "orthogonal", "sparse", "lsuv",
)
GAIN_INITS = ("orthogonal", "sparse")
BIAS_INITS = ("default", "constant", "output-prior")
SPARSE_CONNECTIONS = 15
LSUV_BATCH, LSUV_TOL, LSUV_MAX_PASSES = 256, 0.1, 10

# Standard deviation of N(0, 1) truncated to [-2, 2]; dividing by it keeps the truncated variance.
_TRUNC_STD = 0.87962566103423978


def activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (one of :data:`ACTIVATIONS`)."""
    return ACTIVATIONS[name]()


def fans(weight: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear (out, in) or Conv (out, in, *kernel) weight."""
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


_TORCH_GAIN = {
    "relu": ("relu", None), "leaky-relu": ("leaky_relu", 0.01), "prelu": ("leaky_relu", 0.25),
    "selu": ("selu", None), "tanh": ("tanh", None), "sigmoid": ("sigmoid", None),
}


def default_gain(scheme: str, activation_name: str) -> float:
    """The gain of ``orthogonal`` when ``init_gain`` is not given: PyTorch's ``calculate_gain`` for the
    activation (√2 for ReLU, 5/3 for tanh...), √2 for the other ReLU-like units (elu, gelu, silu),
    1 for maxout; ``sparse`` uses 1 (Martens 2010's unit-variance weights)."""
    if scheme != "orthogonal":
        return 1.0
    if activation_name in _TORCH_GAIN:
        torch_name, param = _TORCH_GAIN[activation_name]
        return float(nn.init.calculate_gain(torch_name, param))  # type: ignore[arg-type]
    return 1.0 if activation_name == "maxout" else math.sqrt(2.0)


@torch.no_grad()
def init_weight(
    weight: Tensor, bias: Tensor | None, scheme: str, generator: torch.Generator, gain: float = 1.0
) -> None:
    """Fill ``weight`` and ``bias`` in place with ``scheme`` (see the module docstring); ``gain`` scales
    ``orthogonal`` and ``sparse`` only."""
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
    elif scheme == "he-uniform":
        bound = math.sqrt(6.0 / fan_in)
        weight.uniform_(-bound, bound, generator=generator)
    elif scheme in ("orthogonal", "lsuv"):
        nn.init.orthogonal_(weight, gain if scheme == "orthogonal" else 1.0, generator=generator)
    elif scheme == "sparse":
        flat = weight.view(weight.shape[0], -1)
        k = min(SPARSE_CONNECTIONS, fan_in)
        keep = torch.rand(flat.shape, generator=generator, device=flat.device).argsort(dim=1)[:, :k]
        values = torch.randn((flat.shape[0], k), generator=generator, device=flat.device, dtype=flat.dtype)
        flat.zero_().scatter_(1, keep, gain * values)
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


WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@torch.no_grad()
def initialize(model: nn.Module, scheme: str, generator: torch.Generator, gain: float = 1.0) -> nn.Module:
    """Initialise every Linear/Conv layer of ``model`` with ``scheme`` (in module order), reset every
    batch-norm and PReLU layer, and let modules with an ``init_parameters(scheme, generator)`` method
    (recurrent networks) initialise the rest; all randomness comes from ``generator``."""
    for module in model.modules():
        own = getattr(module, "init_parameters", None)
        if callable(own):
            own(scheme, generator)
        if isinstance(module, WEIGHT_LAYERS):
            init_weight(module.weight, module.bias, scheme, generator, gain)
        elif isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.PReLU)):
            module.reset_parameters()
    return model


@torch.no_grad()
def lsuv(model: nn.Module, x: Tensor) -> list[float]:
    """Layer-sequential unit variance (Mishkin & Matas 2016): for each Linear/Conv layer in module
    order, divide its weight by √Var(output on ``x``) until |Var − 1| < 0.1 (at most 10 passes).

    The model runs in eval mode (no dropout; batch norm with its running statistics, which are left
    untouched). Returns the final output variance of each layer.
    """
    layers = [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    was_training = model.training
    model.eval()
    variances = []
    try:
        for layer in layers:
            captured: list[Tensor] = []
            handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
            try:
                for _ in range(LSUV_MAX_PASSES):
                    captured.clear()
                    model(x)
                    var = float(captured[0].var())
                    if abs(var - 1.0) < LSUV_TOL or var == 0.0 or not math.isfinite(var):
                        break
                    layer.weight.div_(math.sqrt(var))
                captured.clear()
                model(x)
                variances.append(float(captured[0].var()))
            finally:
                handle.remove()
    finally:
        model.train(was_training)
    return variances


def output_layer(model: nn.Module) -> nn.Linear | None:
    """The last Linear layer in module order (the output layer of every registered model)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


@torch.no_grad()
def init_biases(model: nn.Module, kind: str, value: float, y: Tensor | None = None, n_outputs: int = 1) -> None:
    """Apply the bias heuristic ``kind`` (see the module docstring); ``y`` are training targets."""
    last = output_layer(model)
    if kind == "constant":
        for module in model.modules():
            if isinstance(module, WEIGHT_LAYERS) and module is not last and module.bias is not None:
                module.bias.fill_(value)
    if kind == "output-prior" and last is not None and last.bias is not None and y is not None:
        if y.dtype in (torch.int64, torch.int32):
            counts = torch.bincount(y.reshape(-1), minlength=n_outputs).to(last.bias.dtype)
            last.bias.copy_(torch.log(counts.clamp_min(1) / counts.sum()))
        else:
            last.bias.copy_(y.reshape(len(y), -1).to(last.bias.dtype).mean(dim=0))
