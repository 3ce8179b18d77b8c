"""Recurrent networks: Elman RNN, LSTM and GRU (PyTorch's modules) with a linear read-out.

Inputs are sequences ``(N, T, F)``; ``head="last"`` reads out the last hidden state of the top layer
(sequence to one, outputs ``(N, O)``), ``head="sequence"`` every hidden state (sequence to sequence,
outputs ``(N, T, O)``). With ``G`` gates (1 for ``rnn``, 4 for ``lstm``, 3 for ``gru``), width ``H``,
``L`` layers and ``F`` input features the network has

    Σ_{l<L} G·H·(F_l + H + 2) + H·O + O parameters,  F_0 = F, F_l = H (l ≥ 1),

(PyTorch keeps two bias vectors per layer, ``b_ih`` and ``b_hh``). The cells, in PyTorch's gate order:

* ``rnn`` (Elman 1990): h' = tanh(W_ih x + b_ih + W_hh h + b_hh);
* ``lstm`` (Hochreiter & Schmidhuber 1997, with the forget gate of Gers, Schmidhuber & Cummins 2000):
  (i, f, g, o) = W_ih x + b_ih + W_hh h + b_hh, c' = σ(f)⊙c + σ(i)⊙tanh(g), h' = σ(o)⊙tanh(c');
* ``gru`` (Cho et al. 2014): r = σ(·), z = σ(·), n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn)),
  h' = (1 − z)⊙n + z⊙h.

Initialisation (all from the model's generator): input weights and the read-out follow the model's
``init`` scheme; each gate's recurrent block W_hh ∈ R^{H×H} follows ``recurrent_init``:
``orthogonal`` (Saxe, McClelland & Ganguli 2014; ``recurrent_scale``·Q with Q from the QR
decomposition of a Gaussian matrix, signs fixed), ``identity`` (``recurrent_scale``·I, the IRNN of
Le, Jaitly & Hinton 2015), ``glorot-uniform`` (Glorot & Bengio 2010, fan-in = fan-out = H). Biases
start at 0 except the LSTM forget gate's ``b_ih`` part, set to ``forget_bias`` (Gers et al. 2000;
Jozefowicz, Zaremba & Sutskever 2015 recommend 1).

The forward pass uses PyTorch's fused modules. Under a ``torch.func`` transform (``vmap``, ``jvp``,
``grad`` — which those fused kernels do not all support) it runs :func:`unroll`, the same cells written
with plain tensor operations; :meth:`RecurrentNet.stacked_forward` runs P parameter sets at once for
the population engine and :meth:`RecurrentNet.hidden_states` exposes every h_t for gradient-flow
diagnostics.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.models.base import ModelOptions
from trainlab.models.init import init_weight

CELLS: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
HEADS = ("last", "sequence")
RECURRENT_INITS = ("orthogonal", "identity", "glorot-uniform")


@dataclass(frozen=True)
class RecurrentOptions(ModelOptions):
    """Options of ``rnn``/``lstm``/``gru``: hidden ``width`` H, ``layers`` stacked cells, read-out ``head``
    (``last`` or ``sequence``), the recurrent-weight init and scale, and the LSTM forget-gate bias.

    ``activation`` is the Elman cell's nonlinearity (tanh or relu); the LSTM and GRU cells are fixed
    (tanh). ``init`` is the input weights' and read-out's scheme (Glorot-uniform by default)."""

    activation: str = "tanh"
    width: int = 32
    layers: int = 1
    head: str = "last"
    recurrent_init: str = "orthogonal"
    recurrent_scale: float = 1.0
    forget_bias: float = 1.0
    default_init: ClassVar[str | None] = "glorot-uniform"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("width", self.width, low=1, integer=True)
        check_number("layers", self.layers, low=1, integer=True)
        check_choice("head", self.head, HEADS)
        check_choice("recurrent_init", self.recurrent_init, RECURRENT_INITS)
        check_number("recurrent_scale", self.recurrent_scale, low=0)
        check_number("forget_bias", self.forget_bias)
        if self.activation not in self.activations:
            raise ConfigError("activation", self.activation, " or ".join(self.activations) + " for this cell")

    activations: ClassVar[tuple[str, ...]] = ("tanh", "relu")


@dataclass(frozen=True)
class GatedOptions(RecurrentOptions):
    """Options of ``lstm``/``gru``, whose cells have fixed nonlinearities (``activation`` must be tanh)."""

    activations: ClassVar[tuple[str, ...]] = ("tanh",)


def parameter_count(cell: str, n_features: int, width: int, layers: int, n_outputs: int) -> int:
    """Σ_l G·H·(F_l + H + 2) + H·O + O (see the module docstring)."""
    g = GATES[cell]
    return sum(g * width * ((n_features if l == 0 else width) + width + 2) for l in range(layers)) + (
        width * n_outputs + n_outputs
    )


@torch.no_grad()
def orthogonal_(weight: Tensor, gain: float, generator: torch.Generator) -> Tensor:
    """``gain``·Q with Q Haar-distributed: QR of a Gaussian matrix with R's diagonal signs folded into Q
    (Mezzadri 2007), as ``torch.nn.init.orthogonal_`` does, drawn from ``generator``."""
    rows, cols = weight.shape
    a = torch.randn(max(rows, cols), min(rows, cols), generator=generator, device=generator.device, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if rows < cols:
        q = q.T
    return weight.copy_(gain * q[:rows, :cols])


class RecurrentNet(nn.Module):
    """A stack of ``cell`` layers (``self.rnn``, batch first) and a linear read-out (``self.head``)."""

    def __init__(self, cell: str, options: RecurrentOptions, n_features: int, n_outputs: int):
        super().__init__()
        self.cell, self.options, self.width, self.n_layers = cell, options, options.width, options.layers
        self.rnn: nn.RNNBase
        if cell == "rnn":
            self.rnn = nn.RNN(n_features, options.width, options.layers, nonlinearity=options.activation, batch_first=True)
        else:
            self.rnn = CELLS[cell](n_features, options.width, options.layers, batch_first=True)
        self.head = nn.Linear(options.width, n_outputs)

    @torch.no_grad()
    def init_parameters(self, scheme: str, generator: torch.Generator) -> None:
        """Initialise the recurrent layers (see the module docstring); the read-out is left to the caller."""
        opts, h, g = self.options, self.width, GATES[self.cell]
        for layer in range(self.n_layers):
            w_ih = getattr(self.rnn, f"weight_ih_l{layer}")
            for k in range(g):
                init_weight(w_ih[k * h : (k + 1) * h], None, scheme, generator)
            w_hh = getattr(self.rnn, f"weight_hh_l{layer}")
            for k in range(g):
                block = w_hh[k * h : (k + 1) * h]
                if opts.recurrent_init == "orthogonal":
                    orthogonal_(block, opts.recurrent_scale, generator)
                elif opts.recurrent_init == "identity":
                    block.copy_(opts.recurrent_scale * torch.eye(h, dtype=block.dtype, device=block.device))
                else:
                    init_weight(block, None, "glorot-uniform", generator)
            getattr(self.rnn, f"bias_ih_l{layer}").zero_()
            getattr(self.rnn, f"bias_hh_l{layer}").zero_()
            if self.cell == "lstm":
                getattr(self.rnn, f"bias_ih_l{layer}")[h : 2 * h].fill_(opts.forget_bias)

    def forward(self, x: Tensor) -> Tensor:
        if torch._C._functorch.peek_interpreter_stack() is not None:
            params = {n: p for n, p in self.named_parameters()}
            return unroll(self, params, x)[0]
        seq = self.rnn(x)[0]
        return self.head(seq[:, -1] if self.options.head == "last" else seq)

    def hidden_states(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Outputs and the top layer's hidden states [h_1, …, h_T], each (1, N, H), as nodes of the graph
        (``torch.autograd.grad(loss, states)`` gives ∂L/∂h_t), computed by :func:`unroll`."""
        return unroll(self, dict(self.named_parameters()), x)

    def stacked_forward(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        """Outputs (N, P, …) of P parameter sets ``params`` (each (P, *shape)) on shared inputs ``x``."""
        out, _ = unroll(self, params, x, population=True)
        return out

    def recurrent_matrices(self) -> dict[str, Tensor]:
        """Each layer's recurrent weight W_hh (G·H × H), detached."""
        return {f"layer{l}": getattr(self.rnn, f"weight_hh_l{l}").detach() for l in range(self.n_layers)}


def _step(cell: str, gx: Tensor, h: Tensor, c: Tensor | None, w_hh_t: Tensor, b_hh: Tensor, relu: bool) -> tuple[Tensor, Tensor | None]:
    """One step for P individuals: ``gx`` = W_ih x + b_ih (+ b_hh, except for the GRU, whose b_hn sits
    inside r⊙(·)) (P, N, G·H), ``h`` (P, N, H), ``w_hh_t`` = W_hhᵀ (P, H, G·H), ``b_hh`` (P, 1, G·H); one
    batched matrix product for all individuals."""
    if cell == "rnn":
        pre = torch.baddbmm(gx, h, w_hh_t)  # b_hh already in gx
        return (torch.relu(pre) if relu else torch.tanh(pre)), None
    if cell == "lstm":
        assert c is not None
        gates = torch.baddbmm(gx, h, w_hh_t)  # b_hh already in gx
        width = h.shape[-1]
        act = torch.sigmoid(gates)
        i, f, o = act[..., :width], act[..., width : 2 * width], act[..., 3 * width :]
        c = torch.addcmul(f * c, i, torch.tanh(gates[..., 2 * width : 3 * width]))
        return o * torch.tanh(c), c
    gh = torch.baddbmm(b_hh, h, w_hh_t)
    xr, xz, xn = gx.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return n + z * (h - n), None


def unroll(model: RecurrentNet, params: Mapping[str, Tensor], x: Tensor, population: bool = False) -> tuple[Tensor, list[Tensor]]:
    """The network written out step by step with plain tensor operations (``torch.func``-friendly).

    With ``population`` every parameter has a leading P axis and the outputs are (N, P, O) or
    (N, P, T, O); otherwise one parameter set and outputs (N, O) or (N, T, O). Also returns the top
    layer's hidden states h_1 … h_T, each (P, N, H) (P = 1 without ``population``). Inside, activations
    are laid out (P, N, ·) so that each step is one ``baddbmm`` over the individuals; the input
    projections of all steps are one matrix product per layer, ahead of the loop."""
    p = {k: (v if population else v.unsqueeze(0)) for k, v in params.items()}
    n_pop = next(iter(p.values())).shape[0]
    relu = model.cell == "rnn" and model.options.activation == "relu"
    n, steps = x.shape[0], x.shape[1]
    seq = x.transpose(0, 1).unsqueeze(1)  # (T, 1, N, F): shared by every individual in the first layer
    states: list[Tensor] = []
    for layer in range(model.n_layers):
        w_ih_t = p[f"rnn.weight_ih_l{layer}"].transpose(1, 2).unsqueeze(0)
        b_hh = p[f"rnn.bias_hh_l{layer}"].unsqueeze(1)
        bias = p[f"rnn.bias_ih_l{layer}"].unsqueeze(1) + (0 if model.cell == "gru" else b_hh)
        gx = torch.matmul(seq, w_ih_t) + bias  # (T, P, N, G·H)
        w_hh_t = p[f"rnn.weight_hh_l{layer}"].transpose(1, 2)
        h = x.new_zeros(n_pop, n, model.width)
        c = x.new_zeros(n_pop, n, model.width) if model.cell == "lstm" else None
        states = []
        for t in range(steps):
            h, c = _step(model.cell, gx[t], h, c, w_hh_t, b_hh, relu)
            states.append(h)
        seq = torch.stack(states)  # (T, P, N, H)
    w_t, b = p["head.weight"].transpose(1, 2), p["head.bias"].unsqueeze(1)
    if model.options.head == "last":
        out = torch.baddbmm(b, states[-1], w_t).transpose(0, 1)  # (N, P, O)
    else:
        out = (torch.matmul(seq, w_t.unsqueeze(0)) + b).permute(2, 1, 0, 3)  # (N, P, T, O)
    return (out if population else out.squeeze(1)), states


def build_recurrent(cell: str):  # noqa: ANN201
    """A builder for ``cell`` networks; the input shape is (T, F) (any T: the network is length-agnostic)."""

    def build(opts: RecurrentOptions, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        if len(input_shape) != 2:
            raise ConfigError("input_shape", input_shape, "(steps, features): a sequence task")
        return RecurrentNet(cell, opts, input_shape[1], n_outputs)

    return build


def spectral_radius(matrix: Tensor) -> float:
    """max |λ| over the eigenvalues of a square matrix (computed in float64)."""
    return float(torch.linalg.eigvals(matrix.double()).abs().max())


def gate_spectral_radii(model: RecurrentNet) -> dict[str, float]:
    """Spectral radius of each layer's recurrent block per gate (``layer0`` for an Elman RNN,
    ``layer0.f`` etc. for the gates of an LSTM (i, f, g, o) or a GRU (r, z, n))."""
    names = {"rnn": [""], "lstm": [".i", ".f", ".g", ".o"], "gru": [".r", ".z", ".n"]}[model.cell]
    h, out = model.width, {}
    for layer, w in model.recurrent_matrices().items():
        for k, suffix in enumerate(names):
            out[layer + suffix] = spectral_radius(w[k * h : (k + 1) * h])
    return out

