"""The gradient trainers' evaluation policy (``eval_every``, ``eval_train``, ``eval_test``, ``eval_samples``):
running training values against a hand-written loop over the same batches, rows against direct evaluations,
``final`` against the selected model evaluated on every whole split, and the one-line option errors."""
from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
import torch
from torch import nn

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.core.seeding import torch_generator
from trainlab.data.task import SPLITS, Split, Task
from trainlab.losses import get_loss
from trainlab.trainers import make_trainer
from trainlab.trainers.base import evaluate
from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.trainers.batching import batch_starts
from trainlab.trainers.result import RunResult


def task(n: int = 200, seed: int = 0) -> Task:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = (x @ torch.randn(5, 3, generator=g) + 0.5 * torch.randn(n, 3, generator=g)).argmax(1)
    a, b = int(0.6 * n), int(0.8 * n)
    return Task("syn", "classification", Split(x[:a], y[:a]), Split(x[a:b], y[a:b]), Split(x[b:], y[b:]), 3,
                "cross_entropy", "accuracy")


def model(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 3))


def fit(t: Task, m: nn.Module, epochs: int = 4, callbacks: tuple[Callback, ...] = (), **options: Any) -> RunResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a plain nn.Sequential: recorded by class only
        return make_trainer(options.pop("trainer", "sgd"), **options).fit(m, t, Budget(epochs=epochs), 0, callbacks)


class Snapshots(Callback):
    """The weights at the end of every epoch (after its row, if any, was recorded)."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_fit_start(self, state: TrainState) -> None:
        self.states[0] = copy.deepcopy(state.model.state_dict())

    def on_epoch_end(self, state: TrainState) -> None:
        self.states[state.epoch] = copy.deepcopy(state.model.state_dict())


def evaluated(m: nn.Module, state: dict[str, torch.Tensor], split: Split) -> tuple[float, float]:
    probe = copy.deepcopy(m)
    probe.load_state_dict(state)
    return evaluate(probe, split, get_loss("cross_entropy"), "accuracy")


def test_running_train_values_are_the_mean_over_the_epochs_batches() -> None:
    """Second implementation: the same batches (the trainer's ``batches`` generator), SGD by hand, and the
    per-sample cross-entropy and accuracy of each batch's outputs before its step."""
    t, batch, lr = task(), 32, 0.1
    result = fit(t, model(), epochs=3, batch_size=batch, lr=lr)
    hand = model()
    gen = torch_generator(0, "batches")
    n = len(t.train)
    starts = batch_starts(n, batch)
    for epoch in range(1, 4):
        perm = torch.randperm(n, generator=gen)
        losses, hits = [], []
        for start, end in zip(starts, starts[1:] + [n]):
            idx = perm[start:end]
            out = hand(t.train.x[idx])
            per_sample = nn.functional.cross_entropy(out, t.train.y[idx], reduction="none")
            losses.append(per_sample.detach())
            hits.append(out.argmax(1) == t.train.y[idx])
            hand.zero_grad()
            per_sample.mean().backward()
            with torch.no_grad():
                for p in hand.parameters():
                    p -= lr * p.grad
        row = result.history[epoch]
        assert row["epoch"] == epoch
        assert row["train_loss"] == pytest.approx(torch.cat(losses).mean().item(), rel=1e-5)
        assert row["train_metric"] == pytest.approx(torch.cat(hits).double().mean().item(), abs=1e-12)


def test_running_equals_a_full_pass_when_the_weights_do_not_move() -> None:
    """With lr = 1e-30 (the weights do not move in float32) and no train/eval difference, the training pass's
    outputs are the evaluation's."""
    t = task()
    running = fit(t, model(), epochs=2, lr=1e-30, batch_size=16)
    full = fit(t, model(), epochs=2, lr=1e-30, batch_size=16, eval_train="full")
    for a, b in zip(running.history, full.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["train_metric"] == pytest.approx(b["train_metric"], abs=1e-12)


def test_rows_and_final_against_direct_evaluations() -> None:
    """Default policy: validation on every row, test on the last row only, ``final`` = the selected model on
    every whole split; the epoch-0 row evaluates the initial weights on the training split."""
    t, m, snaps = task(), model(dropout=0.3), Snapshots()
    result = fit(t, m, epochs=5, callbacks=(snaps,), batch_size=16, lr=1e-305, eval_every=2)
    assert [r["epoch"] for r in result.history] == [0, 2, 4, 5]
    assert result.config["trainer"]["eval_train"] == "auto" and result.config["trainer"]["eval_test"] == "end"
    for row in result.history:
        state = snaps.states[int(row["epoch"])]
        assert (row["val_loss"], row["val_metric"]) == pytest.approx(evaluated(m, state, t.val), rel=1e-6)
        assert ("test_loss" in row) == (row is result.history[-1])
    last = result.history[-1]
    assert (last["test_loss"], last["test_metric"]) == pytest.approx(evaluated(m, snaps.states[5], t.test), rel=1e-6)
    assert result.history[0]["train_loss"] == pytest.approx(evaluated(m, snaps.states[0], t.train)[0], rel=1e-6)
    trained = [r for r in result.history if r["epoch"] > 0]
    assert result.best_epoch == min(trained, key=lambda r: r["val_loss"])["epoch"]
    for name in SPLITS:
        loss, metric = evaluate(result.model, t.split(name), get_loss("cross_entropy"), "accuracy")
        assert result.final[f"{name}_loss"] == pytest.approx(loss, rel=1e-6)
        assert result.final[f"{name}_metric"] == metric


def test_complete_policy_records_every_split_on_every_row() -> None:
    t, m, snaps = task(), model(), Snapshots()
    result = fit(t, m, epochs=3, callbacks=(snaps,), batch_size=16, lr=1e-305, eval_train="full", eval_test="rows")
    for row in result.history:
        state = snaps.states[int(row["epoch"])]
        for name in SPLITS:
            assert (row[f"{name}_loss"], row[f"{name}_metric"]) == pytest.approx(
                evaluated(m, state, t.split(name)), rel=1e-6)
    best = next(r for r in result.history if r["epoch"] == result.best_epoch)
    assert result.final == {k: best[k] for k in result.final}


def test_full_batch_training_evaluates_the_training_split() -> None:
    """``auto``: one step per epoch, so a separate pass (the step's own loss is of the weights before it);
    ``gd`` keeps test on every row (as the sweep engine records it)."""
    t, m, snaps = task(), model(), Snapshots()
    result = fit(t, m, epochs=3, callbacks=(snaps,), batch_size=None, trainer="adam", lr=1e-305)
    for row in result.history[1:]:
        expected = evaluated(m, snaps.states[int(row["epoch"])], t.train)
        assert (row["train_loss"], row["train_metric"]) == pytest.approx(expected, rel=1e-6)
    gd = fit(t, model(), epochs=3, trainer="gd", lr=0.1)
    assert all("test_loss" in row for row in gd.history)


def test_eval_samples_compares_epochs_on_one_fixed_subset() -> None:
    t, k = task(n=400), 30
    result = fit(t, model(), epochs=3, batch_size=32, lr=1e-30, eval_samples=k, eval_train="full", eval_test="rows")
    values = {(r["val_loss"], r["val_metric"], r["train_loss"], r["test_loss"]) for r in result.history}
    assert len(values) == 1  # weights never move, and every row sees the same subset
    row = result.history[0]
    for name in SPLITS:
        assert (row[f"{name}_metric"] * k) == pytest.approx(round(row[f"{name}_metric"] * k), abs=1e-9)
        full = evaluate(result.model, t.split(name), get_loss("cross_entropy"), "accuracy")
        assert result.final[f"{name}_loss"] == pytest.approx(full[0], rel=1e-6)
        assert row[f"{name}_loss"] != pytest.approx(full[0], rel=1e-6)


@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("eval_train", "sometimes", "auto"),
    ("eval_test", "never", "end"),
    ("eval_samples", 0, "[1, inf)"),
    ("eval_every", 0, "[1, inf)"),
    ("compile", "yes", "False"),
])
def test_bad_policy_options_are_one_line_errors(option: str, value: Any, allowed: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_trainer("adam", **{option: value})
    text = str(err.value)
    assert f"trainer.adam.{option}" in text and allowed in text and "\n" not in text

