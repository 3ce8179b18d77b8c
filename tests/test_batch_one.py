"""Per-sample SGD (batch size 1) on models with batch norm: frozen batch norm with running statistics
recomputed on the training split at every epoch start."""
from __future__ import annotations

import torch
from torch import nn

from trainlab.core.budget import Budget
from trainlab.data.task import Split, Task
from trainlab.losses import get_loss
from trainlab.trainers import make_optimizer, make_trainer
from trainlab.trainers.batching import batch_starts
from trainlab.trainers.gradient import train_epoch


def task(n: int = 40) -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g) * 2 + 1
    y = (x[:, 0] > 1).long()
    return Task("syn", "classification", Split(x, y), Split(x, y), Split(x, y), 2, "cross_entropy", "accuracy")


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 2))


def test_an_epoch_is_eval_mode_sgd_after_refreshing_the_statistics() -> None:
    """Oracle: running statistics := full-split statistics (layer by layer, biased variance: the recalibration
    of trainlab.models.batchnorm), then plain SGD on the eval-mode model over the same permutation."""
    t, n = task(), 40
    model, ref = net(), net()
    stats = train_epoch(
        model, t, get_loss("cross_entropy"), make_optimizer("sgd", model.parameters(), lr=0.1),
        batch_size=1, generator=torch.Generator().manual_seed(7),
    )
    x, y = t.train.x, t.train.y
    with torch.no_grad():
        ref[0].running_mean.copy_(x.mean(0))
        ref[0].running_var.copy_(x.var(0, unbiased=False))
        hidden = ref[2](ref[1](((x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5))))
        ref[3].running_mean.copy_(hidden.mean(0))
        ref[3].running_var.copy_(hidden.var(0, unbiased=False))
    ref.eval()
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(7))
    starts = batch_starts(n, 1)
    for start, end in zip(starts, starts[1:] + [n]):
        idx = perm[start:end]
        ref.zero_grad()
        nn.functional.cross_entropy(ref(x[idx]), y[idx]).backward()
        with torch.no_grad():
            for p in ref.parameters():
                p -= 0.1 * p.grad
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model[3].running_var, ref[3].running_var, atol=1e-5, rtol=1e-5)
    assert stats.steps == n - 1 and stats.forward_samples == 2 * n and stats.backward_samples == n


def test_per_sample_sgd_trains_a_batch_norm_mlp() -> None:
    t = task(80)
    result = make_trainer("sgd", lr=0.05, batch_size=1).fit(net(), t, Budget(epochs=5), seed=1)
    assert result.status == "ok"
    assert result.final["train_metric"] > 0.9
    assert result.spending.forward_samples == 5 * 2 * 80
