"""The mini-batches of an epoch: one loop for the gradient trainers, truncated BPTT and the LR finder, so that the
finder calibrates on the batches the run it tunes will see.

An epoch is a ``torch.randperm`` of the training split, drawn from the run's ``"batches"`` generator on the split's
device (no permutation when the epoch is one batch), cut into batches of ``batch_size``; a trailing batch of a single
sample joins the previous one (batch norm cannot train on one sample). A task's augmentation is applied to each
batch with the ``"augment"`` generator when there is one, else with the batches generator.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from trainlab.data.task import Split


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
