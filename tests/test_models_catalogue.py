"""Initialisations (He-uniform, orthogonal, sparse, LSUV, bias heuristics) against PyTorch's own
initialisers or their defining properties, and the ablation options of the models."""
from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch import nn

from trainlab.core.config import ConfigError
from trainlab.core.seeding import torch_generator
from trainlab.models import build_model, count_parameters, model_config, model_summary
from trainlab.models.init import init_weight


def test_he_uniform_is_pytorchs_kaiming_uniform_draw_for_draw() -> None:
    ours, theirs = torch.empty(300, 200), torch.empty(300, 200)
    init_weight(ours, None, "he-uniform", torch.Generator().manual_seed(5))
    nn.init.kaiming_uniform_(theirs, nonlinearity="relu", generator=torch.Generator().manual_seed(5))
    assert torch.equal(ours, theirs)
    assert ours.abs().max() <= math.sqrt(6 / 200)


@pytest.mark.parametrize(("shape", "activation", "gain"), [((30, 80), "relu", math.sqrt(2)), ((90, 20), "tanh", 5 / 3),
                                                          ((8, 3, 3, 3), "relu", math.sqrt(2))])
def test_orthogonal_rows_or_columns_are_orthonormal_times_the_gain(
    shape: tuple[int, ...], activation: str, gain: float
) -> None:
    assert model_config("mlp1", activation=activation, init="orthogonal")["init_gain"] == pytest.approx(gain)
    weight = torch.empty(shape, dtype=torch.float64)
    init_weight(weight, None, "orthogonal", torch.Generator().manual_seed(0), gain)
    flat = weight.reshape(shape[0], -1)
    small = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
    torch.testing.assert_close(small, gain**2 * torch.eye(len(small), dtype=torch.float64))


def test_sparse_init_has_fifteen_unit_normal_incoming_weights_per_unit() -> None:
    weight = torch.empty(400, 100, dtype=torch.float64)
    init_weight(weight, None, "sparse", torch.Generator().manual_seed(1), 1.0)
    assert ((weight != 0).sum(dim=1) == 15).all()
    assert stats.kstest(weight[weight != 0].numpy(), "norm").pvalue > 1e-3
    small = torch.empty(5, 4)
    init_weight(small, None, "sparse", torch.Generator().manual_seed(1), 2.0)
    assert (small != 0).all()  # fan-in 4 < 15: every weight is drawn


def blobs(n: int = 600, d: int = 10, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(n, d, generator=g) + 1.5
    return x, torch.cat([torch.zeros(n // 2), torch.ones(n // 3), torch.full((n - n // 2 - n // 3,), 2.0)]).long()


def test_lsuv_gives_unit_output_variance_at_every_layer() -> None:
    """Mishkin & Matas 2016: after LSUV each layer's output variance on the batch is within 0.1 of 1,
    and each weight is still an orthogonal matrix up to scale."""
    x, y = blobs()
    gen = torch_generator(3, "init")
    model = build_model("mlp5", (10,), 3, init="lsuv", batch_norm=False, activation="tanh", generator=gen, data=(x, y))
    layers = [m for m in model if isinstance(m, nn.Linear)]
    assert len(layers) == 6
    for layer in layers:
        w = layer.weight
        small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        torch.testing.assert_close(small / small.diagonal().mean(), torch.eye(len(small)), atol=1e-5, rtol=0)
    variances = []

    def record(_m: nn.Module, _i: object, output: torch.Tensor) -> None:
        variances.append(float(output.var()))

    for layer in layers:
        layer.register_forward_hook(record)
    perm = torch.randperm(600, generator=_lsuv_generator(3))[:256]
    model.eval()
    with torch.no_grad():
        model(x[perm])
    assert all(abs(v - 1) < 0.1 for v in variances), variances


def _lsuv_generator(seed: int) -> torch.Generator:
    """The init generator after its weight draws: the state LSUV drew its batch from."""
    gen = torch_generator(seed, "init")
    build_model("mlp5", (10,), 3, init="orthogonal", init_gain=1.0, batch_norm=False, activation="tanh", generator=gen)
    return gen


def test_bias_heuristics() -> None:
    x, y = blobs()
    model = build_model("mlp2", (10,), 3, batch_norm=False, bias_init="constant", bias_value=0.1)
    hidden = [m for m in model if isinstance(m, nn.Linear)][:-1]
    assert all(torch.equal(m.bias, torch.full_like(m.bias, 0.1)) for m in hidden)
    assert torch.equal(model[-1].bias, torch.zeros(3))
    prior = build_model("mlp1", (10,), 3, bias_init="output-prior", data=(x, y))
    torch.testing.assert_close(torch.softmax(prior[-1].bias, 0), torch.tensor([1 / 2, 1 / 3, 1 / 6]))
    targets = torch.randn(600, 2, dtype=torch.float64) + torch.tensor([3.0, -1.0], dtype=torch.float64)
    regression = build_model("linear", (10,), 2, bias_init="output-prior", data=(x, targets))
    torch.testing.assert_close(regression[-1].bias.double(), targets.mean(0), rtol=1e-6, atol=1e-6)


def test_data_dependent_inits_need_data_and_gains_need_a_gain_scheme() -> None:
    with pytest.raises(ConfigError, match=r"model\.mlp1: got \"init='lsuv'\"; allowed: a run with a task"):
        build_model("mlp1", (10,), 3, init="lsuv")
    with pytest.raises(ConfigError, match=r"model\.mlp1\.init_gain: got 2\.0; allowed: null unless init is one of"):
        model_config("mlp1", init="he", init_gain=2.0)
    with pytest.raises(ConfigError, match=r"model\.mlp1\.bias_init: got 'ones'"):
        model_config("mlp1", bias_init="ones")


def test_batch_norm_off_widths_input_dropout_and_linear_counts() -> None:
    n, k = 7, 3
    plain = build_model("mlp2", (n,), k, batch_norm=False)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in plain.modules())
    assert count_parameters(plain) == (n + 1) * 64 + 65 * 64 + 65 * k
    wide = build_model("mlp1", (n,), k, widths=[10, 20], input_dropout=0.2)
    assert isinstance(wide[0], nn.Dropout) and wide[0].p == 0.2
    assert count_parameters(wide) == 2 * n + 10 * n + 20 + 200 + 40 + 21 * k
    assert count_parameters(build_model("linear", (2, 4, 4), 5)) == 33 * 5
    assert model_summary("lenet5", (1, 32, 32), 10, channels=[4, 8], batch_norm=False)["parameters"] == (
        (25 + 1) * 4 + (100 + 1) * 8 + (8 * 25 + 1) * 120 + 121 * 84 + 85 * 10
    )
    myrtle = build_model("myrtle5", (3, 16, 16), 10, width=4, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in myrtle.modules())
    assert all(m.bias is not None for m in myrtle.modules() if isinstance(m, nn.Conv2d))


def test_new_activations() -> None:
    model = build_model("mlp1", (4,), 2, activation="prelu")
    prelu = [m for m in model.modules() if isinstance(m, nn.PReLU)]
    assert len(prelu) == 1 and float(prelu[0].weight.detach()) == 0.25
    assert any(isinstance(m, nn.SiLU) for m in build_model("lenet5", (1, 32, 32), 2, activation="silu").modules())
    maxout = build_model("spiral-mlp", (2,), 3, activation="maxout", width=5, maxout_pieces=3)
    x = torch.randn(11, 2)
    pre = maxout[0](x)
    assert pre.shape == (11, 15)
    torch.testing.assert_close(maxout[1](pre), pre.reshape(11, 5, 3).max(dim=2).values)
    assert maxout(x).shape == (11, 3)
    with pytest.raises(ConfigError, match=r"model\.lenet5\.activation: got 'maxout'"):
        model_config("lenet5", activation="maxout")
