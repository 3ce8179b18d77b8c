"""fastai's LR-finder suggestion rules against a direct transcription of fastai 2.7's code.

The oracle below transcribes ``fastai/callback/schedule.py`` (functions ``valley``, ``slide``, ``minimum``,
``steep`` and the slicing in ``Learner.lr_find``) with torch tensors, as fastai runs them; trainlab's
implementation is NumPy. They are compared on synthetic sweeps (several seeds and shapes) and on sweeps
recorded by trainlab's own finder.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.core.budget import Budget
from trainlab.data.task import Split, Task
from trainlab.trainers import make_trainer
from trainlab.trainers.lr_finder import SUGGESTIONS, apply_rule, lr_find


# ----------------------------------------------------------------------------- the oracle (fastai 2.7)
def fa_valley(lrs, losses, num_it):
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx])


def fa_slide(lrs, losses, num_it, lr_diff=15, thresh=0.005, adjust_value=1.0):
    losses = losses.numpy()
    loss_grad = np.gradient(losses)
    r_idx = -1
    l_idx = r_idx - lr_diff
    local_min_lr = lrs[l_idx]
    while (l_idx >= -len(losses)) and (abs(loss_grad[r_idx] - loss_grad[l_idx]) > thresh):
        local_min_lr = lrs[l_idx]
        r_idx -= 1
        l_idx -= 1
    return float(local_min_lr) * adjust_value


def fa_minimum(lrs, losses, num_it):
    lr_min = lrs[losses.argmin()].item()
    return lr_min / 10


def fa_steep(lrs, losses, num_it):
    grads = (losses[1:] - losses[:-1]) / (lrs[1:].log() - lrs[:-1].log())
    return lrs[grads.argmin()].item()


FASTAI = {"valley": fa_valley, "slide": fa_slide, "minimum": fa_minimum, "steep": fa_steep}


def fastai_suggestion(recorded_lrs, recorded_losses, num_it, method):
    """``Learner.lr_find``'s post-processing: slice [num_it//10:-5], cut at the first NaN, apply the rule."""
    lrs = torch.tensor(recorded_lrs[num_it // 10 : -5], dtype=torch.float64)
    losses = torch.tensor(recorded_losses[num_it // 10 : -5], dtype=torch.float64)
    nan_idxs = torch.nonzero(torch.isnan(losses.view(-1)))
    if len(nan_idxs) > 0:
        drop_idx = min(nan_idxs)
        lrs, losses = lrs[:drop_idx], losses[:drop_idx]
    return FASTAI[method](lrs, losses, num_it)


# ----------------------------------------------------------------------------- sweeps
def synthetic_sweep(seed: int, shape: str, num_it: int = 100) -> tuple[list[float], list[float]]:
    """A smoothed loss curve over fastai's lr schedule: a descent, a valley, a blow-up, with noise."""
    rng = np.random.default_rng(seed)
    lrs = [1e-7 * (10 / 1e-7) ** (i / num_it) for i in range(num_it)]
    x = np.log10(lrs)
    centre = rng.uniform(-5, -1)
    if shape == "valley":
        curve = 1 - 0.8 / (1 + np.exp(-(x - centre) * 3)) + np.exp((x - centre - 2.5) * 2)
    elif shape == "flat":
        curve = np.ones_like(x)
    else:  # monotone decrease: no blow-up inside the range
        curve = 2 - np.tanh(x - centre)
    curve = curve + rng.normal(0, 0.01, size=len(x))
    raw = list(curve)
    avg, smoothed = 0.0, []
    for i, value in enumerate(raw):
        avg = 0.98 * avg + 0.02 * value
        smoothed.append(avg / (1 - 0.98 ** (i + 1)))
    return lrs, smoothed


@pytest.mark.parametrize("method", SUGGESTIONS)
@pytest.mark.parametrize("shape", ["valley", "decrease", "flat"])
def test_rules_equal_fastai_on_synthetic_sweeps(method: str, shape: str) -> None:
    for seed in range(5):
        lrs, smoothed = synthetic_sweep(seed, shape)
        ours = apply_rule(lrs, smoothed, method, num_steps=100).lr
        assert ours == pytest.approx(fastai_suggestion(lrs, smoothed, 100, method), rel=1e-12)


@pytest.mark.parametrize("method", SUGGESTIONS)
def test_rules_equal_fastai_on_a_sweep_cut_by_divergence(method: str) -> None:
    lrs, smoothed = synthetic_sweep(3, "valley")
    lrs, smoothed = lrs[:70], smoothed[:69] + [math.nan]
    ours = apply_rule(lrs, smoothed, method, num_steps=100).lr
    assert ours == pytest.approx(fastai_suggestion(lrs, smoothed, 100, method), rel=1e-12)


def _task(seed: int) -> Task:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 5, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    split = Split(x, y)
    return Task("toy", "classification", split, split, split, 3, "cross_entropy", "accuracy")


@pytest.mark.parametrize("method", SUGGESTIONS)
def test_rules_equal_fastai_on_recorded_sweeps(method: str) -> None:
    for seed in range(3):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
        found = lr_find(model, _task(seed), optimizer="adam", num_steps=100, batch_size=32, seed=seed, suggest=method)
        assert found.suggestion == pytest.approx(fastai_suggestion(found.lrs, found.smoothed, 100, method), rel=1e-12)


def test_the_schedule_is_fastais_and_edges_are_flagged() -> None:
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    found = lr_find(model, _task(0), optimizer="sgd", num_steps=50, batch_size=32, lr_max=1.0, diverge_factor=1e9)
    np.testing.assert_allclose(found.lrs, [1e-7 * (1.0 / 1e-7) ** (i / 50) for i in range(50)], rtol=1e-12)
    lrs, smoothed = synthetic_sweep(0, "decrease")
    # a loss still falling at the end of the range: its minimum is the last point considered
    assert apply_rule(lrs, smoothed, "minimum", 100).at_edge
    lrs, smoothed = synthetic_sweep(1, "valley")
    assert not apply_rule(lrs, smoothed, "valley", 100).at_edge


def test_trainer_reports_the_lr_used_and_the_rule() -> None:
    t = _task(1)
    for method in ("valley", "steep"):
        result = make_trainer("adam", lr_find=True, lr_find_steps=50, lr_find_suggest=method).fit(
            nn.Linear(5, 3), t, Budget(epochs=1), seed=3
        )
        record = result.records["lr_find"][0]
        assert record["method"] == method
        assert result.final["lr"] == record["suggestion"]
        assert record["suggestion"] == pytest.approx(fastai_suggestion(record["lrs"], record["smoothed"], 50, method))
    fixed = make_trainer("adam", lr=0.003).fit(nn.Linear(5, 3), t, Budget(epochs=1), seed=3)
    assert fixed.final["lr"] == 0.003


def test_the_finder_trains_on_the_batches_and_augmentations_of_the_run_it_tunes() -> None:
    """Seam: every training-mode forward records the sample indices it sees (x[:, 0] is the index) and the
    augmentation records its generator draws. The finder's 7 steps (49 samples in batches of 16, 16, 17: the
    lone last sample joins its neighbour, so it crosses into the third epoch) see exactly the run's first 7."""
    n = 49
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.arange(n, dtype=torch.float32)[:, None], torch.randn(n, 4, generator=g)], dim=1)
    y = torch.randint(0, 3, (n,), generator=g)
    draws: list[float] = []

    def augment(xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        draws.append(float(torch.rand((), generator=gen)))
        return xb

    split = Split(x, y)
    task = Task("toy", "classification", split, split, split, 3, "cross_entropy", "accuracy", augment=augment)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    seen: list[list[int]] = []
    model.register_forward_pre_hook(lambda m, inp: seen.append(inp[0][:, 0].long().tolist()) if m.training else None)
    result = make_trainer("sgd", batch_size=16, lr_find=True, lr_find_steps=7, lr_find_suggest="minimum").fit(
        model, task, Budget(epochs=3), seed=5
    )
    assert result.spending.steps == 9 and len(seen) == 7 + 9 and len(draws) == 7 + 9
    finder, run = seen[:7], seen[7:]
    assert [len(b) for b in run] == [16, 16, 17] * 3
    assert finder == run[:7] and draws[:7] == draws[7:14]
    assert sorted(sum(run[:3], [])) == list(range(n)) and run[:3] != run[3:6]  # a fresh permutation each epoch
    assert result.spending.forward_samples == result.spending.backward_samples == sum(map(len, seen))


def test_per_sample_finder_freezes_batch_norm_as_the_run_does() -> None:
    """With ``batch_size = 1`` on a batch-norm model the finder trains as the run it tunes: every
    per-sample forward uses running statistics (the batch-norm layer is in eval mode), and the running
    statistics are recalibrated on the whole split at each epoch's start (9 samples: 8 steps per epoch, the
    last of 2 samples, so a 10-step sweep recalibrates before steps 0 and 8). Seam: a forward pre-hook on
    the batch-norm layer records its batch size and mode."""
    n = 9
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    split = Split(x, y)
    task = Task("toy", "classification", split, split, split, 3, "cross_entropy", "accuracy")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    calls: list[tuple[int, bool]] = []
    model[1].register_forward_pre_hook(lambda m, inp: calls.append((len(inp[0]), m.training)))
    result = lr_find(model, task, optimizer="sgd", batch_size=1, num_steps=10, lr_max=1e-2)
    assert len(result.losses) == 10 and all(math.isfinite(v) for v in result.losses)
    steps = [c for c in calls if c[0] < n]
    assert [size for size, _ in steps] == [1] * 7 + [2] + [1, 1] and not any(mode for _, mode in steps)
    assert [i for i, c in enumerate(calls) if c[0] == n] == [0, 9]  # recalibrations before steps 0 and 8
    assert result.forward_samples == 11 + 2 * n and result.backward_samples == 11
    calls.clear()
    make_trainer("sgd", lr=1e-3, batch_size=1).fit(model, task, Budget(steps=10), seed=0)
    run = [c for c in calls if c[0] < n and not c[1]]
    assert [size for size, _ in run] == [size for size, _ in steps]
