"""What a training run evaluates, and how often: :class:`EvalPolicy`.

A history row is recorded every ``every`` epochs (and at the last epoch). Each row holds:

* ``val_loss``/``val_metric``: an evaluation of the current weights in eval mode, on every row, because the
  selected model is the recorded epoch with the lowest validation loss (only recorded epochs are candidates);
* ``train_loss``/``train_metric``: with ``train = "full"`` a separate eval-mode pass over the training
  split; with ``train = "running"`` the loss and metric of the outputs the epoch's training pass already
  produced (train mode, each mini-batch under the weights of its step, augmented inputs when augmentation
  is on), which costs nothing extra — what Keras and fastai report as the training loss. Epoch 0 has had no
  training pass, so its row (and a row with no training pass before it) evaluates the training split as
  ``full`` does;
* ``test_loss``/``test_metric``: with ``test = "rows"`` on every row; with ``test = "end"`` on the last row
  only (the model at the end of training), so that test data plays no part while training runs.

``samples`` evaluates each row on a fixed random subset of at most that many samples per split (drawn once
from the run seed, the same subset on every row, so candidate epochs are compared on equal terms).

Whatever the policy, the result's ``final`` values are those of the selected model on the whole of each split
in eval mode: a row value is reused when it is exactly that (a full eval-mode pass of the selected weights),
otherwise the selected model is evaluated once more at the end.
"""
from __future__ import annotations

from dataclasses import dataclass

from trainlab.core.config import check_choice, check_number

EVAL_TRAIN = ("auto", "running", "full")
"""``auto``: ``running`` when an epoch has several mini-batches, else ``full`` (a full-batch step's own loss is
that of the weights before the step, one epoch behind the row)."""
EVAL_TEST = ("end", "rows")


@dataclass(frozen=True)
class EvalPolicy:
    """Which splits a history row evaluates, how, and every how many epochs (see the module docstring).

    The default is the complete evaluation (every split in full on every row), which every trainer but the
    gradient ones uses; gradient trainers pass their ``eval_*`` options.
    """

    every: int = 1
    train: str = "full"
    test: str = "rows"
    samples: int | None = None

    def __post_init__(self) -> None:
        check_number("eval_every", self.every, low=1, integer=True)
        check_choice("eval_train", self.train, EVAL_TRAIN[1:])
        check_choice("eval_test", self.test, EVAL_TEST)
        if self.samples is not None:
            check_number("eval_samples", self.samples, low=1, integer=True)


def resolve_train(mode: str, steps_per_epoch: int) -> str:
    """``running`` or ``full`` for an ``eval_train`` option (``auto`` decided by the epoch's mini-batches)."""
    check_choice("eval_train", mode, EVAL_TRAIN)
    if mode == "auto":
        return "running" if steps_per_epoch > 1 else "full"
    return mode
