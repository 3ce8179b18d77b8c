"""Recurrent models: parameter counts, gradients against finite differences, the unrolled cells against
PyTorch's fused modules, population evaluation against single evaluations, initialisation, Hessians
and the gradient flow through time against its closed form."""
from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call

from trainlab.diagnostics.gradient_flow import GradientFlow, decay_rate, hidden_gradient_norms
from trainlab.diagnostics.hvp import hvp
from trainlab.losses import get_loss
from trainlab.models import build_model, count_parameters, model_summary
from trainlab.models.recurrent import gate_spectral_radii, unroll
from trainlab.trainers.population.engine import ParamLayout, PopulationEvaluator, initial_population
from trainlab.core.seeding import torch_generator

CELLS = ("rnn", "lstm", "gru")


def _model(cell: str, head: str = "last", layers: int = 2, width: int = 3, features: int = 2, outputs: int = 2, **kw):
    gen = torch_generator(1, "init", cell, head)
    return build_model(cell, (5, features), outputs, width=width, layers=layers, head=head, generator=gen, **kw).double()


def _targets(head: str, n: int = 4, steps: int = 5, outputs: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    shape = (n, outputs) if head == "last" else (n, steps, outputs)
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def _inputs(n: int = 4, steps: int = 5, features: int = 2) -> torch.Tensor:
    return torch.randn(n, steps, features, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
@pytest.mark.parametrize("features,width,layers,outputs", [(2, 32, 1, 1), (28, 128, 1, 10), (3, 7, 3, 5)])
def test_parameter_count_matches_hand_formula(cell: str, gates: int, features: int, width: int, layers: int, outputs: int) -> None:
    # per layer: G gate blocks of W_ih (H×F_l), W_hh (H×H), b_ih and b_hh (H each); then the read-out
    expected = 0
    for layer in range(layers):
        fan_in = features if layer == 0 else width
        expected += gates * (width * fan_in + width * width + 2 * width)
    expected += width * outputs + outputs
    model = build_model(cell, (9, features), outputs, width=width, layers=layers)
    assert count_parameters(model) == expected
    assert model_summary(cell, (9, features), outputs, width=width, layers=layers)["parameters"] == expected


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("head", ["last", "sequence"])
def test_unrolled_cells_match_pytorch_modules(cell: str, head: str) -> None:
    model = _model(cell, head)
    x = _inputs()
    ours = unroll(model, dict(model.named_parameters()), x)[0]
    torch.testing.assert_close(ours, model(x), rtol=1e-12, atol=1e-12)
    relu = _model("rnn", head, activation="relu")
    torch.testing.assert_close(unroll(relu, dict(relu.named_parameters()), x)[0], relu(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("head", ["last", "sequence"])
def test_gradient_matches_finite_differences(cell: str, head: str) -> None:
    model = _model(cell, head)
    layout = ParamLayout.of(model)
    x, y = _inputs(), _targets(head)
    loss = get_loss("mse")

    def f(theta: torch.Tensor) -> torch.Tensor:
        return loss(functional_call(model, layout.unflatten(theta), (x,)), y)

    theta = layout.flatten(model).requires_grad_(True)
    assert torch.autograd.gradcheck(f, (theta,), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_sequence_cross_entropy_gradient_matches_finite_differences(cell: str) -> None:
    model = _model(cell, "sequence", layers=1, outputs=4)
    layout = ParamLayout.of(model)
    x = _inputs()
    y = torch.randint(0, 4, (4, 5), generator=torch.Generator().manual_seed(0))
    loss = get_loss("cross_entropy")

    def f(theta: torch.Tensor) -> torch.Tensor:
        return loss(functional_call(model, layout.unflatten(theta), (x,)), y)

    assert torch.autograd.gradcheck(f, (layout.flatten(model).requires_grad_(True),), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("head", ["last", "sequence"])
def test_population_evaluation_matches_single_evaluations(cell: str, head: str) -> None:
    model = _model(cell, head)
    x, y = _inputs(6), _targets(head, 6)
    loss = get_loss("mse")
    population = initial_population(model, 7, torch_generator(0, "population")).double()
    layout = ParamLayout.of(model)
    single = torch.stack([loss(functional_call(model, layout.unflatten(g), (x,)), y) for g in population])
    assert single.std() > 1e-3  # distinct individuals, not one repeated
    for mode in ("stacked", "vmap"):
        batched = PopulationEvaluator(model, loss, mode=mode)(population, x, y)
        torch.testing.assert_close(batched, single, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_hessian_vector_product_forward_over_reverse_matches_double_backward(cell: str) -> None:
    # jvp runs the unrolled cells (the fused LSTM kernel has no forward-mode derivative);
    # the graph mode differentiates PyTorch's module twice: two independent computations
    model = _model(cell, layers=1, width=2)
    layout = ParamLayout.of(model)
    x, y = _inputs(), _targets("last")
    loss = get_loss("mse")

    def f(theta: torch.Tensor) -> torch.Tensor:
        return loss(functional_call(model, layout.unflatten(theta), (x,)), y)

    theta = layout.flatten(model)
    v = torch.randn(3, layout.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(hvp(f, theta, v, mode="forward"), hvp(f, theta, v, mode="graph"), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_initialisation(cell: str) -> None:
    gen = torch_generator(0, "init")
    h = 6
    ortho = build_model(cell, (4, 3), 2, width=h, recurrent_scale=0.9, forget_bias=2.0, generator=gen)
    w = ortho.rnn.weight_hh_l0.detach().double()
    for k in range(w.shape[0] // h):
        block = w[k * h : (k + 1) * h]
        torch.testing.assert_close(block.T @ block, 0.81 * torch.eye(h, dtype=torch.float64), atol=1e-6, rtol=0)
    assert list(gate_spectral_radii(ortho).values()) == [pytest.approx(0.9, abs=1e-5)] * (w.shape[0] // h)
    bias = ortho.rnn.bias_ih_l0.detach()
    if cell == "lstm":
        assert torch.all(bias[h : 2 * h] == 2.0) and torch.all(bias[:h] == 0) and torch.all(bias[2 * h :] == 0)
    else:
        assert torch.all(bias == 0)
    assert torch.all(ortho.rnn.bias_hh_l0 == 0)
    ident = build_model(cell, (4, 3), 2, width=h, recurrent_init="identity", recurrent_scale=0.5)
    blocks = ident.rnn.weight_hh_l0.detach().reshape(-1, h, h)
    assert torch.equal(blocks, 0.5 * torch.eye(h).expand_as(blocks))
    glorot = build_model(cell, (4, 3), 2, width=h, recurrent_init="glorot-uniform")
    bound = math.sqrt(6 / (2 * h))
    assert glorot.rnn.weight_hh_l0.abs().max() <= bound
    w_ih = glorot.rnn.weight_ih_l0.detach()
    assert w_ih.abs().max() <= math.sqrt(6 / (3 + h)) and w_ih.std() > 0
    again = build_model(cell, (4, 3), 2, width=h, recurrent_scale=0.9, forget_bias=2.0, generator=torch_generator(0, "init"))
    assert all(torch.equal(a, b) for a, b in zip(ortho.parameters(), again.parameters()))


def test_recurrent_options_are_validated() -> None:
    from trainlab.core.config import ConfigError

    with pytest.raises(ConfigError, match="model.lstm.activation"):
        build_model("lstm", (4, 3), 2, activation="relu")
    with pytest.raises(ConfigError, match="model.gru.recurrent_init"):
        build_model("gru", (4, 3), 2, recurrent_init="eye")
    with pytest.raises(ConfigError, match="input_shape"):
        build_model("rnn", (1, 28, 28), 10)


def test_gradient_flow_matches_closed_form() -> None:
    # zero input weights and biases keep h_t = 0, where tanh' = 1, so ∂h_s/∂h_{s-1} = W_hh = a·Q exactly
    # and ‖∂L/∂h_t‖ = a^{T-t} ‖∂L/∂h_T‖ (Q orthogonal preserves norms)
    a, steps = 0.8, 12
    model = build_model("rnn", (steps, 2), 1, width=5).double()
    q = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64))[0]
    with torch.no_grad():
        model.rnn.weight_ih_l0.zero_()
        model.rnn.weight_hh_l0.copy_(a * q)
    x = _inputs(3, steps)
    y = torch.ones(3, 1, dtype=torch.float64)
    norms = hidden_gradient_norms(model, x, y, get_loss("mse"))
    assert norms[-1] > 0.1
    expected = norms[-1] * a ** torch.arange(steps - 1, -1, -1, dtype=torch.float64)
    torch.testing.assert_close(norms, expected, rtol=1e-10, atol=0)
    assert decay_rate(norms) == pytest.approx(math.log(a), rel=1e-9)


def test_gradient_flow_callback_records_rows() -> None:
    from trainlab.core.budget import Budget
    from trainlab.data import load_task
    from trainlab.trainers import make_trainer

    task = load_task("adding", length=8, n_train=64, n_val=16, n_test=16)
    model = build_model("lstm", task.input_shape, 1, width=4)
    result = make_trainer("adam", lr=0.01, batch_size=32).fit(model, task, Budget(steps=4), 0, [GradientFlow(every=2, samples=8)])
    rows = result.records["gradient_flow"]
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert all(len(r["norms"]) == 8 and set(r["spectral_radius"]) == {"layer0.i", "layer0.f", "layer0.g", "layer0.o"} for r in rows)


@pytest.mark.parametrize("cell", CELLS)
def test_dense_hessian_of_recurrent_objective_matches_torch_autograd(cell: str) -> None:
    from trainlab.diagnostics.hessian import dense_hessian
    from trainlab.diagnostics.objective import Objective

    model = _model(cell, layers=1, width=2)
    x, y = _inputs(), _targets("last")
    layout = ParamLayout.of(model)
    loss = get_loss("mse")
    for mode in ("graph", "forward"):
        objective = Objective(model, x, y, loss, hvp_mode=mode)
        reference = torch.autograd.functional.hessian(
            lambda theta: loss(functional_call(model, layout.unflatten(theta), (x,)), y), layout.flatten(model)
        )
        torch.testing.assert_close(dense_hessian(objective), reference, rtol=1e-8, atol=1e-10)
