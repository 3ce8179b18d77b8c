"""The mini-batches of an epoch: one loop for the gradient trainers, truncated BPTT and the LR finder, so that the
finder calibrates on the batches the run it tunes will see.

An epoch is a ``torch.randperm`` of the training split, drawn from the run's ``"batches"`` generator on the split's
device (no permutation when the epoch is one batch), cut into batches of ``batch_size``; a trailing batch of a single
sample joins the previous one (batch norm cannot train on one sample). A task's augmentation is applied to each
batch with the ``"augment"`` generator when there is one, else with the batches generator.

With ``batch_size = 1`` (per-sample SGD) on a model with batch norm a sample's own statistics are undefined, so
batch norm is *frozen* (:func:`frozen_batch_norm`): each layer normalises with its running statistics while its
affine parameters train, and the running statistics are recalibrated on the whole training split at the start of
every epoch.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import ContextManager

import torch
from torch import Tensor, nn

from trainlab.data.task import Split
from trainlab.models.batchnorm import batch_norm_layers, bn_mode


def batch_starts(n: int, batch_size: int | None) -> list[int]:
    """Start indices of the mini-batches of an epoch; a trailing single sample joins the previous batch."""
    if batch_size is None or batch_size >= n:
        return [0]
    starts = list(range(0, n, batch_size))
    if n - starts[-1] == 1:
        starts.pop()
    return starts


def epoch_batches(
    split: Split,
    batch_size: int | None,
    generator: torch.Generator,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    augment_generator: torch.Generator | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """The (x, y) batches of one epoch over ``split`` (full batch when ``batch_size`` is None), in order; the
    permutation is drawn when the first batch is asked for."""
    x_all, y_all = split.x, split.y
    n = len(y_all)
    starts = batch_starts(n, batch_size)
    perm = torch.randperm(n, generator=generator, device=x_all.device) if len(starts) > 1 else None
    for start, end in zip(starts, starts[1:] + [n]):
        if perm is None:
            x, y = x_all, y_all
        else:
            idx = perm[start:end]
            x, y = x_all[idx], y_all[idx]
        if augment is not None:
            x = augment(x, augment_generator if augment_generator is not None else generator)
        yield x, y


def batch_stream(
    split: Split,
    batch_size: int | None,
    generator: torch.Generator,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    augment_generator: torch.Generator | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """:func:`epoch_batches` of one epoch after another, without end: the batches of a run's steps in order."""
    while True:
        yield from epoch_batches(split, batch_size, generator, augment, augment_generator)


def frozen_batch_norm(model: nn.Module, split: Split, batch_size: int | None) -> bool:
    """Whether training ``model`` on ``split`` in batches of ``batch_size`` freezes its batch norm (module
    docstring): per-sample batches of a model with batch-norm layers, on a split of more than one sample."""
    return batch_size == 1 and len(split.y) > 1 and bool(batch_norm_layers(model))


def training_forward(model: nn.Module, frozen: bool) -> ContextManager[object]:
    """The context of a training forward pass: batch norm on running statistics when ``frozen``."""
    return bn_mode(model, "eval", keep_others=True) if frozen else contextlib.nullcontext()
