"""Block coordinate descent (Goodfellow, Bengio & Courville 2016 §8.7.2; Wright 2015, "Coordinate
descent algorithms"): the parameters are split into blocks and each epoch trains one block with the
others held fixed, cycling through the blocks in module order.

    for epoch e:  b = ⌊e / epochs_per_block⌋ mod B;  one epoch of ``optimizer`` on θ_b (θ_{≠b} fixed)

Blocks: ``layer`` groups the parameters each module owns directly (a Linear layer's weight and bias, a
batch-norm layer's scale and shift, a PReLU slope); ``parameter`` makes every parameter tensor a block.
Every visit to a block starts a fresh optimizer on that block only (its state does not carry over
from the previous visit). Blocks other than the current one do not require gradients during the epoch,
so their gradients are not computed; spending counts full forward and backward passes per sample as
the gradient trainers do. Mini-batches, divergence handling and model selection are those of
:func:`trainlab.trainers.gradient.train_epoch` and the common monitor.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

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

BLOCKS = ("layer", "parameter")


@dataclass(frozen=True)
class BCDConfig:
    """Options of ``bcd``: the per-block ``optimizer`` and its options, ``batch_size`` (None: full
    batch), ``blocks`` and ``epochs_per_block``."""

    optimizer: str = "sgd"
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = 64
    blocks: str = "layer"
    epochs_per_block: int = 1

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, [n for n in OPTIMIZERS.names() if n != "lbfgs"])
        object.__setattr__(self, "optimizer_options", optimizer_options(self.optimizer, **dict(self.optimizer_options)))
        if self.batch_size is not None:
            check_number("batch_size", self.batch_size, low=1, integer=True)
        check_choice("blocks", self.blocks, BLOCKS)
        check_number("epochs_per_block", self.epochs_per_block, low=1, integer=True)


def parameter_blocks(model: nn.Module, blocks: str) -> list[list[nn.Parameter]]:
    """The trainable parameters of ``model`` split into blocks, in module order (empty blocks dropped)."""
    if blocks == "parameter":
        return [[p] for p in model.parameters() if p.requires_grad]
    out = [[p for p in m.parameters(recurse=False) if p.requires_grad] for m in model.modules()]
    return [b for b in out if b]


class BlockCoordinateDescent(Trainer):
    """Cyclic block coordinate descent with a ``torch.optim`` optimizer per block visit."""

    name = "bcd"

    def __init__(self, **options: Any):
        super().__init__(inner_optimizer_config("bcd", BCDConfig, options))

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
        cfg: BCDConfig = self.config
        loss_fn = resolve_loss(task, loss)
        blocks = parameter_blocks(model, cfg.blocks)
        if not blocks:
            raise ConfigError("model", "no trainable parameters", "a model with parameters for trainer 'bcd'")
        monitor = Monitor(self, model, task, loss_fn, budget, seed, callbacks)
        monitor.state.lr = float(cfg.optimizer_options["lr"])
        batches = torch_generator(seed, "batches", device=task.device)
        trainable = [p for p in model.parameters() if p.requires_grad]
        monitor.begin()
        stop = monitor.status != "ok"
        epoch = 0
        while not stop:
            block = blocks[(epoch // cfg.epochs_per_block) % len(blocks)]
            if epoch % cfg.epochs_per_block == 0:
                optimizer = make_optimizer(cfg.optimizer, block, **cfg.optimizer_options)
            chosen = {id(p) for p in block}
            for p in trainable:
                p.requires_grad_(id(p) in chosen)
            try:
                stats = train_epoch(model, task, loss_fn, optimizer, batch_size=cfg.batch_size, generator=batches,
                                    monitor=monitor)
            finally:
                for p in trainable:
                    p.requires_grad_(True)
            epoch += 1
            if stats.stopped and monitor.status != "ok":
                break
            stop = monitor.end_epoch()
        result = monitor.finish({"trainer": self.describe()})
        result.records["bcd"] = [{"blocks": len(blocks), "sizes": [sum(p.numel() for p in b) for b in blocks]}]
        return result


TRAINERS.register("bcd")(BlockCoordinateDescent)
