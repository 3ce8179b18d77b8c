"""The batch-norm core (:mod:`trainlab.models.batchnorm`) against torch's own ``nn.BatchNorm`` and dense statistics."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call

from trainlab.core.config import ConfigError
from trainlab.models.batchnorm import BN_MODES, bn_mode, check_bn_mode, recalibrate, split


def mlp(affine: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.BatchNorm1d(5, affine=affine), nn.Linear(5, 7), nn.Tanh(), nn.BatchNorm1d(7, affine=affine),
                         nn.Dropout(0.5), nn.Linear(7, 3))


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.BatchNorm2d(3),
                         nn.Flatten(), nn.Linear(3 * 4 * 4, 2))


def inputs(kind: str, n: int = 37) -> Tensor:
    g = torch.Generator().manual_seed(1)
    shape = (n, 5) if kind == "mlp" else (n, 2, 8, 8)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * 3 + 2


def build(kind: str) -> nn.Module:
    model = (mlp() if kind == "mlp" else cnn()).double()
    with torch.no_grad():  # running statistics and affine parameters that are not the defaults
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
    return model


def torch_batch_mode(model: nn.Module) -> nn.Module:
    """Oracle for ``"batch"``: a copy with only its batch-norm layers in training mode (dropout off)."""
    oracle = copy.deepcopy(model).eval()
    for m in oracle.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    return oracle


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_batch_mode_is_torch_training_mode_without_touching_running_statistics(kind: str) -> None:
    model, x = build(kind), inputs(kind)
    model.train()
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    with torch.no_grad(), bn_mode(model, "batch"):
        got = model(x)
        functional = functional_call(model, dict(model.named_parameters()), (x,))
    with torch.no_grad():
        expected = torch_batch_mode(model)(x)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(functional, expected, rtol=1e-10, atol=1e-10)
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())
    assert all(m.training for m in model.modules()) and all("forward" not in vars(m) for m in model.modules())


def test_unaffine_layers_and_the_train_alias() -> None:
    model, x = mlp(affine=False).double(), inputs("mlp")
    with torch.no_grad(), bn_mode(model, "train"):
        got = model(x)
    torch.testing.assert_close(got, torch_batch_mode(model)(x).detach(), rtol=1e-10, atol=1e-10)


def test_eval_mode_uses_running_statistics_and_keep_others_keeps_dropout() -> None:
    model, x = build("mlp"), inputs("mlp")
    model.train()
    with torch.no_grad(), bn_mode(model, "eval"):
        got = model(x)
    torch.testing.assert_close(got, copy.deepcopy(model).eval()(x).detach())
    with bn_mode(model, "eval", keep_others=True):
        assert model[4].training and not model[0].training and not model[3].training
    assert model[0].training


def test_gradients_in_batch_mode_match_torch_training_mode() -> None:
    model, x = build("cnn"), inputs("cnn", 9)
    oracle = torch_batch_mode(model)
    oracle(x).square().sum().backward()
    with bn_mode(model, "batch"):
        model(x).square().sum().backward()
    for p, q in zip(model.parameters(), oracle.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_recalibration_on_one_batch_is_torch_cumulative_average_without_bessel(kind: str) -> None:
    """Oracle: torch's own running statistics after resetting them and one training-mode forward with
    ``momentum=None`` (cumulative average), whose variance is unbiased: × (N−1)/N, N values per channel."""
    model, x = build(kind), inputs(kind)
    oracle = torch_batch_mode(model)
    counts = []
    for m in oracle.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
            m.register_forward_pre_hook(lambda mod, inp: counts.append(inp[0].numel() // inp[0].shape[1]))
    with torch.no_grad():
        oracle(x)
    assert recalibrate(model, [x]) == len(x)
    mine = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    theirs = [m for m in oracle.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m, t, n in zip(mine, theirs, counts):
        torch.testing.assert_close(m.running_mean, t.running_mean, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(m.running_var, t.running_var * (n - 1) / n, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_recalibrated_eval_model_computes_the_batch_mode_function(kind: str) -> None:
    model, x = build(kind), inputs(kind)
    with torch.no_grad(), bn_mode(model, "batch"):
        batch = model(x)
    recalibrate(model, [x])
    with torch.no_grad(), bn_mode(model, "eval"):
        torch.testing.assert_close(model(x), batch, rtol=1e-9, atol=1e-9)


def test_recalibration_over_batches_pools_every_sample() -> None:
    """Oracle: each layer's inputs captured from torch's training-mode forward of every batch, concatenated,
    then their mean and biased variance (a dense computation)."""
    model, x = build("cnn"), inputs("cnn", 23)
    oracle = torch_batch_mode(model)
    seen: dict[int, list[Tensor]] = {}
    norms = [m for m in oracle.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for i, m in enumerate(norms):
        m.momentum = 0.0  # running statistics stay as they are
        m.register_forward_pre_hook(lambda mod, inp, i=i: seen.setdefault(i, []).append(inp[0].transpose(0, 1)))
    batches = split(x, 10)
    assert [len(b) for b in batches] == [10, 10, 3]
    with torch.no_grad():
        for b in batches:
            oracle(b)
    assert recalibrate(model, batches) == 23
    mine = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for i, m in enumerate(mine):
        h = torch.cat(seen[i], dim=1).reshape(m.num_features, -1)
        torch.testing.assert_close(m.running_mean, h.mean(1), rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(m.running_var, h.var(1, unbiased=False), rtol=1e-9, atol=1e-10)


def test_no_batch_norm_means_no_pass_and_modes_are_checked() -> None:
    calls = []
    model = nn.Linear(3, 2)
    model.register_forward_hook(lambda *_: calls.append(1))
    assert recalibrate(model, [torch.randn(4, 3)]) == 0 and not calls
    assert BN_MODES == ("batch", "eval") and check_bn_mode("train") == "batch" and check_bn_mode("eval") == "eval"
    with pytest.raises(ConfigError, match="bn.*running.*batch, eval, train"):
        check_bn_mode("running")
