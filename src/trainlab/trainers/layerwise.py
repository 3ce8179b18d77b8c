"""Greedy supervised layer-wise pre-training, then fine-tuning of the whole network (Bengio, Lamblin,
Popovici & Larochelle 2007, "Greedy layer-wise training of deep networks", NIPS, the supervised variant;
Goodfellow, Bengio & Courville 2016 §8.7.4).

The model must be a stack of layers (an ``nn.Sequential``: ``mlp1``…``mlp11``, ``spiral-mlp``,
``lenet5``). It is cut before every weight layer (``Linear``, ``Conv1d``, ``Conv2d``) into hidden
stages S₁…S_L (each weight layer with what follows it up to the next one: activation, batch norm,
dropout, pooling; S₁ also holds what precedes the first weight layer, e.g. the input batch norm) and the
output layer O. With ``epochs_per_layer`` = E:

    phase k = 1…L−1:  E epochs of ``optimizer`` on  H_k ∘ S_k ∘ [S_{k−1} ∘ … ∘ S₁ fixed]
    phase L:          E epochs of ``optimizer`` on  O ∘ S_L ∘ [S_{L−1} ∘ … ∘ S₁ fixed]
    fine-tuning:      ``optimizer`` on the whole network O ∘ S_L ∘ … ∘ S₁ until the budget is spent

H_k is a temporary output head ``Flatten → Linear(width of S_k, outputs)`` initialised as PyTorch
initialises a ``Linear`` (Kaiming-uniform with a = √5, bias U(±1/√fan_in)) from a generator derived
from the run seed and k, and discarded after its phase. The last hidden stage is trained with the
model's own output layer O as its head, since O has exactly the shape of H_L. Fixed stages run in
evaluation mode (batch norm uses its running statistics and records none, dropout is off) without
gradients, so during phase k only S_k's and its head's parameters change, and only S_k's batch-norm
statistics (with ``batch_size = 1``, per-sample SGD recalibrates every batch-norm layer at each epoch, the
fixed stages' included: see :func:`~trainlab.trainers.gradient.train_epoch`). Every phase and the fine-tuning
start a fresh optimizer.

Budget: every pass over the training set is an epoch of the run, whichever phase it belongs to, so the
L·E pre-training epochs count against the budget like any other (with an epoch budget, at most
budget − L·E epochs are left for fine-tuning; a budget in epochs must exceed L·E). Spending counts a
full forward and backward pass per sample, as the gradient trainers and ``bcd`` do, although the
backward pass stops at S_k. The history rows, and model selection, are those of the declared model
at the end of each epoch (during phase k its stages above k keep their initial weights).
``result.records["layerwise"]`` has one row per phase: its epochs, the parameters it trained and the
mean training loss of its last epoch on the phase's own network (with the temporary head).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.core.seeding import torch_generator
from trainlab.data.task import Task
from trainlab.losses import Loss
from trainlab.trainers.base import TRAINERS, Monitor, Trainer, resolve_loss
from trainlab.trainers.callbacks import Callback
from trainlab.trainers.gradient import train_epoch
from trainlab.trainers.optimizers import OPTIMIZERS, inner_optimizer_config, inner_optimizer_description, make_optimizer, optimizer_options
from trainlab.trainers.result import RunResult

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
"""Where a layer stack is cut into stages."""
STACK = "a stack of layers (nn.Sequential with a hidden weight layer: mlp1, mlp2, mlp5, mlp11, spiral-mlp, lenet5)"


@dataclass(frozen=True)
class LayerwiseConfig:
    """Options of ``layerwise``: the ``optimizer`` (and its options) of every phase, ``batch_size``
    (None: full batch) and ``epochs_per_layer`` E."""

    optimizer: str = "adam"
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = 64
    epochs_per_layer: int = 2

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, [n for n in OPTIMIZERS.names() if n != "lbfgs"])
        object.__setattr__(self, "optimizer_options", optimizer_options(self.optimizer, **dict(self.optimizer_options)))
        if self.batch_size is not None:
            check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("epochs_per_layer", self.epochs_per_layer, low=1, integer=True)


def layer_stages(model: nn.Module) -> tuple[list[list[nn.Module]], list[nn.Module]]:
    """The hidden stages S₁…S_L of ``model`` (each a list of its layers) and its output layer(s), or a
    :class:`ConfigError` when ``model`` is not a stack of layers with at least one hidden weight layer."""
    kind = str(getattr(model, "trainlab_model", {}).get("name", type(model).__name__))
    if not isinstance(model, nn.Sequential):
        raise ConfigError("model", kind, STACK + " for trainer 'layerwise'")
    layers = list(model)
    for layer in layers:
        nested = [m for m in layer.modules() if isinstance(m, (*WEIGHT_LAYERS, nn.RNNBase))]
        if nested and not isinstance(layer, WEIGHT_LAYERS):
            raise ConfigError("model", f"{kind} with a nested block {type(layer).__name__}", STACK)
    cuts = [i for i, layer in enumerate(layers) if isinstance(layer, WEIGHT_LAYERS)]
    if len(cuts) < 2:
        raise ConfigError("model", f"{kind} ({len(cuts)} weight layer)", STACK)
    starts = [0, *cuts[1:]]
    stages = [layers[a:b] for a, b in zip(starts[:-1], starts[1:])]
    return stages, layers[cuts[-1]:]


def temporary_head(features: int, n_outputs: int, generator: torch.Generator, like: Tensor) -> nn.Module:
    """``Flatten → Linear(features, n_outputs)`` with PyTorch's ``Linear`` initialisation drawn from
    ``generator``, on ``like``'s device and dtype."""
    linear = nn.Linear(features, n_outputs, device=like.device, dtype=like.dtype)
    with torch.no_grad():
        nn.init.kaiming_uniform_(linear.weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(features)
        nn.init.uniform_(linear.bias, -bound, bound, generator=generator)
    return nn.Sequential(nn.Flatten(), linear)


class PhaseNetwork(nn.Module):
    """``head ∘ stage ∘ fixed``: ``fixed`` stays in evaluation mode, without gradients, whatever
    ``train()`` is called with."""

    def __init__(self, fixed: Sequence[nn.Module], stage: Sequence[nn.Module], head: Sequence[nn.Module]):
        super().__init__()
        self.fixed = nn.Sequential(*fixed)
        self.stage = nn.Sequential(*stage)
        self.head = nn.Sequential(*head)
        self.fixed.requires_grad_(False)
        self.fixed.eval()

    def train(self, mode: bool = True) -> PhaseNetwork:
        super().train(mode)
        self.fixed.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            x = self.fixed(x)
        return self.head(self.stage(x))


class LayerwisePretraining(Trainer):
    """Greedy supervised layer-wise pre-training, then fine-tuning (see the module docstring)."""

    name = "layerwise"

    def __init__(self, **options: Any):
        super().__init__(inner_optimizer_config("layerwise", LayerwiseConfig, {"optimizer": "adam", **options}))

    def describe(self) -> dict[str, Any]:
        return inner_optimizer_description(self.name, self.config)

    def fit(
        self,
        model: nn.Module,
        task: Task,
        budget: Budget,
        seed: int,
        callbacks: Sequence[Callback] = (),
        loss: Loss | None = None,
    ) -> RunResult:
        cfg: LayerwiseConfig = self.config
        loss_fn = resolve_loss(task, loss)
        stages, output = layer_stages(model)
        pretraining = len(stages) * cfg.epochs_per_layer
        if budget.epochs is not None and budget.epochs <= pretraining:
            allowed = (f"more than the {pretraining} pre-training epochs of trainer 'layerwise' "
                       f"({len(stages)} hidden layers × epochs_per_layer {cfg.epochs_per_layer})")
            raise ConfigError("budget.epochs", budget.epochs, allowed)
        monitor = Monitor(self, model, task, loss_fn, budget, seed, callbacks)
        monitor.state.lr = float(cfg.optimizer_options["lr"])
        batches = torch_generator(seed, "batches", device=task.device)
        like = next(model.parameters())
        rows: list[dict[str, Any]] = []
        monitor.begin()
        stop = not monitor.ok
        for k in range(1, len(stages) + 2):
            if stop:
                break
            network, fixed = self._phase_network(model, stages, output, k, task, seed, like)
            trainable = [p for p in network.parameters() if p.requires_grad]
            optimizer = make_optimizer(cfg.optimizer, trainable, **cfg.optimizer_options)
            first, epochs, batch_loss = monitor.spending.epochs + 1, 0, math.nan
            try:
                while not stop and (k > len(stages) or epochs < cfg.epochs_per_layer):
                    stats = train_epoch(network, task, loss_fn, optimizer, batch_size=cfg.batch_size,
                                        generator=batches, monitor=monitor)
                    epochs, batch_loss = epochs + 1, stats.loss
                    stop = (stats.stopped and not monitor.ok) or monitor.end_epoch()
            finally:
                for p in fixed:
                    p.requires_grad_(True)
            rows.append({"phase": str(k) if k <= len(stages) else "fine-tune", "first_epoch": first,
                         "last_epoch": first + epochs - 1, "trained_parameters": sum(p.numel() for p in trainable),
                         "batch_loss": batch_loss})
        result = monitor.finish({"trainer": self.describe()})
        result.records["layerwise"] = rows
        return result

    @staticmethod
    def _phase_network(
        model: nn.Module,
        stages: list[list[nn.Module]],
        output: list[nn.Module],
        k: int,
        task: Task,
        seed: int,
        like: Tensor,
    ) -> tuple[nn.Module, list[nn.Parameter]]:
        """Phase ``k``'s network (k = L + 1: the whole model) and the parameters it fixed (to release)."""
        if k > len(stages):
            return model, []
        lower = [layer for stage in stages[: k - 1] for layer in stage]
        fixed = [p for layer in lower for p in layer.parameters() if p.requires_grad]
        if k < len(stages):
            with torch.no_grad():
                probe = nn.Sequential(*lower, *stages[k - 1]).eval()(task.train.x[:2])
            generator = torch_generator(seed, "layerwise-head", k, device=like.device)
            head = [temporary_head(probe[0].numel(), task.n_outputs, generator, like)]
        else:
            head = output
        return PhaseNetwork(lower, stages[k - 1], head), fixed


TRAINERS.register("layerwise")(LayerwisePretraining)
