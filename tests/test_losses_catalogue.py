"""Binary (sigmoid) cross-entropy and the multiclass hinge against PyTorch's own losses and a loop."""
from __future__ import annotations

import math

import pytest
import torch

from trainlab.core.config import ConfigError
from trainlab.losses import get_loss


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(17, 4, generator=g, dtype=torch.float64) * 3, torch.randint(0, 4, (17,), generator=g)


def test_binary_cross_entropy_matches_bce_with_logits(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    z, y = batch
    onehot = torch.nn.functional.one_hot(y, 4).double()
    want = torch.nn.BCEWithLogitsLoss(reduction="sum")(z, onehot) / len(y)
    assert float(get_loss("binary_cross_entropy")(z, y)) == pytest.approx(float(want), rel=1e-12)
    single = z[:, :1]
    labels = (y % 2).long()
    want = torch.nn.BCEWithLogitsLoss()(single[:, 0], labels.double())
    by_hand = -sum(
        math.log(1 / (1 + math.exp(-float(s)))) if int(t) else math.log(1 - 1 / (1 + math.exp(-float(s))))
        for s, t in zip(single[:, 0], labels)
    ) / len(labels)
    assert float(get_loss("binary_cross_entropy")(single, labels)) == pytest.approx(float(want), rel=1e-12)
    assert float(want) == pytest.approx(by_hand, rel=1e-9)


@pytest.mark.parametrize(("margin", "power"), [(1.0, 1), (0.5, 2)])
def test_multiclass_hinge_matches_multi_margin_loss_and_a_loop(
    batch: tuple[torch.Tensor, torch.Tensor], margin: float, power: int
) -> None:
    z, y = batch
    loss = get_loss("multiclass_hinge", margin=margin, power=power)
    want = torch.nn.MultiMarginLoss(p=power, margin=margin)(z, y)
    assert float(loss(z, y)) == pytest.approx(float(want), rel=1e-12)
    loop = [
        sum(max(0.0, margin - float(z[i, y[i]]) + float(z[i, k])) ** power for k in range(4) if k != int(y[i])) / 4
        for i in range(len(y))
    ]
    assert loss.per_sample(z, y).tolist() == pytest.approx(loop, rel=1e-12)
    grad = torch.func.grad(lambda out: loss(out, y))(z)
    ref = z.clone().requires_grad_(True)
    torch.nn.MultiMarginLoss(p=power, margin=margin)(ref, y).backward()
    torch.testing.assert_close(grad, ref.grad)


def test_hinge_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="loss.multiclass_hinge.power: got 3; allowed: one of 1, 2"):
        get_loss("multiclass_hinge", power=3)
    with pytest.raises(ConfigError, match="loss.multiclass_hinge.margin"):
        get_loss("multiclass_hinge", margin=0)
    with pytest.raises(ConfigError, match="multiclass_hinge.targets"):
        get_loss("multiclass_hinge")(torch.zeros(2, 3), torch.zeros(2, 3))
