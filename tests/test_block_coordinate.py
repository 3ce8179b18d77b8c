"""Block coordinate descent against the same alternation written in NumPy, and its options."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.data.task import Split, Task
from trainlab.trainers import make_trainer
from trainlab.trainers.block_coordinate import parameter_blocks


def test_bcd_alternates_full_batch_gradient_steps_between_blocks() -> None:
    """f(w, b) = ‖Xw + b − y‖²/N; blocks [w], [b], 2 epochs each, one GD step per epoch."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(30, 1)) + 2.0
    split = Split(torch.tensor(x), torch.tensor(y))
    task = Task("lsq", "regression", split, split, split, 1, "mse", "r2")
    model = nn.Linear(3, 1).double()
    with torch.no_grad():
        model.weight.fill_(0.1)
        model.bias.fill_(-0.5)
    make_trainer("bcd", optimizer="sgd", lr=0.05, batch_size=None, blocks="parameter", epochs_per_block=2).fit(
        model, task, Budget(epochs=7), seed=0
    )
    w, b = np.full(3, 0.1), -0.5
    for epoch in range(7):
        r = x @ w + b - y[:, 0]
        if (epoch // 2) % 2 == 0:
            w = w - 0.05 * 2 / 30 * x.T @ r
        else:
            b = b - 0.05 * 2 / 30 * r.sum()
    np.testing.assert_allclose(model.weight.detach().numpy()[0], w, rtol=1e-10)
    assert float(model.bias.detach()) == pytest.approx(b, rel=1e-10)


def test_layer_blocks_and_errors() -> None:
    net = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    assert [len(b) for b in parameter_blocks(net, "layer")] == [2, 2, 2]
    assert len(parameter_blocks(net, "parameter")) == 6
    assert make_trainer("bcd", optimizer="adam", lr=0.01).describe()["betas"] == (0.9, 0.999)
    with pytest.raises(ConfigError, match=r"trainer\.bcd\.blocks: got 'row'; allowed: one of layer, parameter"):
        make_trainer("bcd", blocks="row")
    with pytest.raises(ConfigError, match=r"trainer\.bcd\.momentum: got 0\.9; allowed: an option among"):
        make_trainer("bcd", optimizer="sgd", momentum=0.9)
