"""Curriculum learning: the examples each epoch trains on, checked exactly through the ``train_epoch``
seam against the pacing functions worked out by hand, the reference-loss difficulty against the loss
computed here, and the one-line errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.core.seeding import torch_generator
from trainlab.data import load_task
from trainlab.data.task import Split, Task
from trainlab.models import build_model
from trainlab.trainers import curriculum, make_trainer
from trainlab.trainers.conformance import check_trainer
from trainlab.trainers.gradient import EpochStats, train_epoch

N = 40


def toy_task(n: int = N) -> Task:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=gen)  # distinct first coordinates identify the examples
    split = Split(x, (x[:, 0] + x[:, 1] > 0).long())
    return Task("toy", "classification", split, split, split, 2, "cross_entropy", "accuracy")


class Spy:
    """Records the training examples (as indices of the full split) each epoch receives, then trains."""

    def __init__(self, task: Task) -> None:
        self.index = {float(v): i for i, v in enumerate(task.train.x[:, 0])}
        self.epochs: list[list[int]] = []

    def __call__(self, model: nn.Module, task: Task, *args: Any, **kwargs: Any) -> EpochStats:
        self.epochs.append([self.index[float(v)] for v in task.train.x[:, 0]])
        return train_epoch(model, task, *args, **kwargs)


def seen_per_epoch(monkeypatch: pytest.MonkeyPatch, task: Task, epochs: int, **options: Any) -> list[list[int]]:
    spy = Spy(task)
    monkeypatch.setattr(curriculum, "train_epoch", spy)
    model = build_model("mlp1", (3,), 2, widths=[4], generator=torch_generator(0, "init"))
    result = make_trainer("curriculum", lr=0.01, batch_size=8, **options).fit(model, task, Budget(epochs=epochs), seed=0)
    assert [r["examples"] for r in result.records["curriculum"]] == [len(s) for s in spy.epochs]
    return spy.epochs


# f₀ = 0.25, T = 4, N = 40 (n_e = ⌈g(e)·40⌉), by hand:
#   linear  g = 0.25, 0.4375, 0.625, 0.8125, 1       -> 10, 18 (17.5), 25, 33 (32.5), 40
#   root    g = √(0.0625 + 0.9375 e/4) = 0.25, 0.5449, 0.7289, 0.875, 1 -> 10, 22, 30, 35, 40
#   step    K = 2: g = 0.25, 0.25, 0.625, 0.625, 1  -> 10, 10, 25, 25, 40
EXPECTED = {
    "linear": [10, 18, 25, 33, 40, 40],
    "root": [10, 22, 30, 35, 40, 40],
    "step": [10, 10, 25, 25, 40, 40],
}


@pytest.mark.parametrize("pacing", sorted(EXPECTED))
def test_each_epoch_trains_on_exactly_the_easiest_examples_the_pacing_function_allows(
    pacing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scores = np.random.default_rng(1).normal(size=N)
    np.save(tmp_path / "scores.npy", scores)
    seen = seen_per_epoch(monkeypatch, toy_task(), 6, scores=str(tmp_path / "scores.npy"), pacing=pacing,
                          start_fraction=0.25, ramp_epochs=4, stages=2)
    easiest = np.argsort(scores)
    for epoch, (examples, count) in enumerate(zip(seen, EXPECTED[pacing])):
        assert len(examples) == count, epoch
        assert set(examples) == set(easiest[:count].tolist()), epoch


def test_ties_keep_the_split_order_and_text_scores_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scores = np.repeat([3.0, 1.0, 2.0, 0.0], N // 4)  # four tied groups of 10
    np.savetxt(tmp_path / "scores.txt", scores)
    seen = seen_per_epoch(monkeypatch, toy_task(), 3, scores=str(tmp_path / "scores.txt"), start_fraction=0.3,
                          ramp_epochs=2)
    assert set(seen[0]) == set(range(30, 40)) | {10, 11}  # 12 = ⌈0.3·40⌉: group 0.0, then the first two of 1.0
    assert len(seen[1]) == 26 and set(seen[1]) == set(range(30, 40)) | set(range(10, 26))
    assert sorted(seen[2]) == list(range(N))


def test_reference_difficulty_is_each_example_loss_under_the_reference_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = toy_task()
    teacher = build_model("mlp1", (3,), 2, widths=[4], generator=torch_generator(7, "init"))
    (tmp_path / "ref").mkdir()
    torch.save(teacher.state_dict(), tmp_path / "ref" / "model.pt")
    teacher.eval()
    with torch.no_grad():
        losses = nn.functional.cross_entropy(teacher(task.train.x), task.train.y, reduction="none").numpy()
    seen = seen_per_epoch(monkeypatch, task, 2, reference=str(tmp_path / "ref"), start_fraction=0.5, ramp_epochs=1)
    assert set(seen[0]) == set(np.argsort(losses, kind="stable")[:20].tolist())
    assert len(seen[1]) == N


def test_spending_counts_only_the_examples_seen_plus_the_reference_pass(tmp_path: Path) -> None:
    task = toy_task()
    np.save(tmp_path / "s.npy", np.arange(N, dtype=float))
    model = build_model("mlp1", (3,), 2, widths=[4], generator=torch_generator(0, "init"))
    result = make_trainer("curriculum", scores=str(tmp_path / "s.npy"), start_fraction=0.5, ramp_epochs=2,
                          batch_size=None).fit(model, task, Budget(epochs=3), seed=0)
    assert result.spending.backward_samples == 20 + 30 + 40
    (tmp_path / "ref").mkdir()
    torch.save(model.state_dict(), tmp_path / "ref" / "model.pt")
    result = make_trainer("curriculum", reference=str(tmp_path / "ref"), start_fraction=0.5, ramp_epochs=2,
                          batch_size=None).fit(model, task, Budget(epochs=3), seed=0)
    assert result.spending.forward_samples == N + 20 + 30 + 40


def test_bad_options_and_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^trainer\.curriculum\.reference: got None; allowed: a run"):
        make_trainer("curriculum")
    with pytest.raises(ConfigError, match=r"^trainer\.curriculum\.scores: got 'b'; allowed: unset when reference"):
        make_trainer("curriculum", reference="a", scores="b")
    with pytest.raises(ConfigError, match=r"^trainer\.curriculum\.pacing: got 'cubic'; allowed: one of linear, root"):
        make_trainer("curriculum", scores="s.npy", pacing="cubic")
    with pytest.raises(ConfigError, match=r"^trainer\.curriculum\.start_fraction: got 0; allowed: a number in \(0, 1\]"):
        make_trainer("curriculum", scores="s.npy", start_fraction=0)
    task = toy_task()
    model = build_model("mlp1", (3,), 2, widths=[4])
    np.save(tmp_path / "short.npy", np.zeros(N - 1))
    with pytest.raises(ConfigError, match=r"^trainer\.curriculum\.scores: got '.*short\.npy \(39 values\)'; "
                                          r"allowed: 40 finite values"):
        make_trainer("curriculum", scores=str(tmp_path / "short.npy")).fit(model, task, Budget(epochs=1), seed=0)
    (tmp_path / "other").mkdir()
    torch.save(build_model("mlp2", (3,), 2).state_dict(), tmp_path / "other" / "model.pt")
    with pytest.raises(ConfigError, match=r"^trainer\.curriculum\.reference: .*a run of the same architecture"):
        make_trainer("curriculum", reference=str(tmp_path / "other")).fit(model, task, Budget(epochs=1), seed=0)


def test_curriculum_conforms(tmp_path: Path) -> None:
    n = len(load_task("spiral", points=20).train)
    np.save(tmp_path / "scores.npy", np.arange(n, dtype=float))
    assert "the same seed gives the same run" in check_trainer("curriculum", scores=str(tmp_path / "scores.npy"))
