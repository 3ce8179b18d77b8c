"""The objective actually minimised, as a pure function of one flat parameter vector.

``f(θ) = loss(model_θ(x), y, step) + penalty(θ)`` on a chosen data subset, where ``step`` feeds the
dynamic-loss weights (Ruiz-García et al. 2021) and ``penalty`` is the trainer's regulariser (``TrainState.penalty``).
The model is copied, so diagnostics never touch the weights or buffers being trained.

Batch norm is evaluated in a stated mode (:mod:`trainlab.models.batchnorm`):

* ``"eval"`` (default): running statistics, so ``f`` is a sum of per-sample terms;
* ``"train"`` (or ``"batch"``): statistics of the subset itself, the function mini-batch training
  differentiates; running statistics are never updated.

Dropout is always off (the copy is in eval mode), so ``f`` is deterministic.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.diagnostics.hvp import HVP_MODES, check_vectors, gradient_graph, graph_hvp, hvp
from trainlab.losses import Loss
from trainlab.models.batchnorm import bn_mode, check_bn_mode
from trainlab.models.functional import ParamLayout

if TYPE_CHECKING:
    from trainlab.trainers.callbacks import Penalty, TrainState


class FunctionalModel:
    """A frozen copy of ``model`` as a pure function ``(θ, x) -> outputs`` of the flat vector θ.

    θ concatenates the trainable parameters in ``named_parameters`` order (``names``); ``unflatten``
    maps it back to the name → tensor dict that penalties and ``functional_call`` take.
    """

    def __init__(self, model: nn.Module, *, bn: str = "eval", dtype: torch.dtype | None = None,
                 device: str | torch.device | None = None):
        self.mode = check_bn_mode(bn)
        module = copy.deepcopy(model).eval()
        if dtype is not None or device is not None:
            module = module.to(device=device, dtype=dtype)
        self.module, self.bn = module, bn
        self.layout = ParamLayout.of(module)
        if not self.layout.names:
            raise ConfigError("model", type(model).__name__, "a module with trainable parameters")
        self.names = list(self.layout.names)
        self.shapes = list(self.layout.shapes)
        self.numels = list(self.layout.numels)
        self.theta = self.layout.flatten(module)
        frozen = {n: p.detach() for n, p in module.named_parameters() if not p.requires_grad}
        self.buffers = {**frozen, **dict(module.named_buffers())}

    @property
    def dim(self) -> int:
        return self.theta.numel()

    @property
    def dtype(self) -> torch.dtype:
        return self.theta.dtype

    @property
    def device(self) -> torch.device:
        return self.theta.device

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        return self.layout.unflatten(flat)

    def flatten(self, tensors: dict[str, Tensor]) -> Tensor:
        return self.layout.flatten_tensors(tensors)

    @property
    def couples_samples(self) -> bool:
        """Whether batch norm normalises with the batch's statistics (outputs depend on the other samples)."""
        return self.mode == "batch"

    def __call__(self, flat: Tensor, x: Tensor) -> Tensor:
        with bn_mode(self.module, self.mode):
            return functional_call(self.module, (self.unflatten(flat), self.buffers), (x,))

    def cast_inputs(self, x: Tensor) -> Tensor:
        x = x.to(self.device)
        return x.to(self.dtype) if x.is_floating_point() else x


class Objective:
    """``f(θ) = Σ_c (n_c/N) loss(model_θ(x_c), y_c, step) + penalty(θ)`` over chunks ``c`` of the subset.

    Chunks (``chunk_size``) bound memory; they give the same ``f`` as one pass when batch norm uses
    running statistics, so ``bn="train"`` requires the whole subset in one chunk. ``dtype`` defaults
    to float64 (diagnostics are about accuracy; pass float32 for large models); the copy lives on the
    model's device unless ``device`` is given. ``hvp_mode``: see :mod:`trainlab.diagnostics.hessian`.
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        loss: Loss,
        *,
        step: int = 0,
        penalty: Penalty | None = None,
        bn: str = "eval",
        dtype: torch.dtype = torch.float64,
        device: str | torch.device | None = None,
        chunk_size: int | None = None,
        hvp_mode: str = "graph",
    ):
        check_number("step", step, low=0, integer=True)
        check_choice("hvp_mode", hvp_mode, HVP_MODES)
        if len(x) != len(y) or len(x) == 0:
            raise ConfigError("x", tuple(x.shape), f"a non-empty batch with as many rows as y ({len(y)})")
        if chunk_size is not None:
            check_number("chunk_size", chunk_size, low=1, integer=True)
            if check_bn_mode(bn) == "batch" and chunk_size < len(x):
                raise ConfigError("chunk_size", chunk_size, f">= the subset size {len(x)} with bn='train'")
        self.fmodel = FunctionalModel(model, bn=bn, dtype=dtype, device=device)
        self.loss, self.step, self.penalty, self.hvp_mode = loss, step, penalty, hvp_mode
        x, y = self.fmodel.cast_inputs(x), self.fmodel.cast_inputs(y)
        size = chunk_size or len(x)
        self.chunks = [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]
        self.n_samples = len(x)
        self._graph: tuple[Tensor, Tensor] | None = None

    @classmethod
    def from_state(cls, state: TrainState, x: Tensor, y: Tensor, **options: object) -> Objective:
        """The objective a trainer minimises at ``state.step``: its loss, step and penalty."""
        return cls(state.model, x, y, state.loss, step=state.step, penalty=state.penalty, **options)  # type: ignore[arg-type]

    @property
    def theta(self) -> Tensor:
        return self.fmodel.theta

    @property
    def dim(self) -> int:
        return self.fmodel.dim

    def terms(self) -> list[Callable[[Tensor], Tensor]]:
        """One function θ -> share of ``f`` per chunk (``f`` is their sum); chunk 0 carries the penalty."""
        return [self._term(c) for c in range(len(self.chunks))]

    def _term(self, c: int) -> Callable[[Tensor], Tensor]:
        x, y = self.chunks[c]
        weight = len(x) / self.n_samples

        def term(flat: Tensor) -> Tensor:
            value = weight * self.loss(self.fmodel(flat, x), y, self.step)
            if c == 0 and self.penalty is not None:
                value = value + self.penalty(self.fmodel.unflatten(flat))
            return value

        return term

    def value(self, theta: Tensor | None = None) -> Tensor:
        theta = self.theta if theta is None else theta
        with torch.no_grad():
            return sum(term(theta) for term in self.terms())  # type: ignore[return-value]

    def gradient(self, theta: Tensor | None = None) -> Tensor:
        """∇f(θ) as a flat vector."""
        theta = self.theta if theta is None else theta
        return sum(grad(term)(theta) for term in self.terms())

    def hvp(self, v: Tensor) -> Tensor:
        """H v for ``v`` of shape (D,) or a batch (B, D); see :mod:`trainlab.diagnostics.hessian`.

        In ``graph`` mode a single chunk's gradient graph is built on the first call and kept.
        """
        check_vectors(v, self.dim)
        if self.hvp_mode != "graph":
            return sum(hvp(term, self.theta, v, mode=self.hvp_mode) for term in self.terms())  # type: ignore[return-value]
        if len(self.chunks) > 1:
            return sum(graph_hvp(*gradient_graph(term, self.theta), v) for term in self.terms())  # type: ignore[return-value]
        if self._graph is None:
            self._graph = gradient_graph(self._term(0), self.theta)
        return graph_hvp(*self._graph, v)
