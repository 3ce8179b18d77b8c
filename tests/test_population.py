"""The population engine against dense per-model computation (copy the genome into a model, run it)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector

from trainlab.core.config import ConfigError
from trainlab.losses import get_loss
from trainlab.models.batchnorm import recalibrate
from trainlab.trainers.population.engine import (
    ParamLayout,
    PopulationEvaluator,
    initial_population,
    stackable,
)


class Residual(nn.Module):
    """A non-Sequential model (only vmap and loop support it)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.out(self.drop(torch.relu(self.bn(h)) + h))


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.BatchNorm1d(6), nn.Linear(6, 8, bias=False), nn.ReLU(), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 3 * 3, 3)
    )


def data(model_kind: str, n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    shape = (n, 1, 8, 8) if model_kind == "cnn" else (n, 6)
    return torch.randn(*shape, generator=g) * 2 + 0.5, torch.randint(0, 3, (n,), generator=g)


MODELS = {"mlp": mlp, "cnn": cnn, "residual": Residual}


def build(kind: str) -> nn.Module:
    torch.manual_seed(0)
    return MODELS[kind]()


def reference(model: nn.Module, genome: torch.Tensor, x: torch.Tensor, y: torch.Tensor, bn: str) -> float:
    """Dense oracle: a copy of the model carrying the genome; batch statistics come from a forward in
    train mode of the batch-norm layers only (dropout off), exactly as torch computes them."""
    m = copy.deepcopy(model)
    ParamLayout.of(m).load(m, genome)
    m.eval()
    if bn == "batch":
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.train()
    with torch.no_grad():
        return nn.functional.cross_entropy(m(x), y).item()


def modes(kind: str) -> list[str]:
    return ["loop", "vmap", "stacked"] if kind != "residual" else ["loop", "vmap"]


def test_layout_round_trip() -> None:
    model = build("cnn")
    layout = ParamLayout.of(model)
    genome = layout.flatten(model)
    assert torch.equal(genome, parameters_to_vector(model.parameters()).detach())
    pop = torch.stack([genome, genome * 2])
    views = layout.unflatten(pop)
    for name, p in model.named_parameters():
        assert torch.equal(views[name][1], 2 * p.detach())
    other = build("cnn")
    layout.load(other, genome * 3)
    assert torch.equal(parameters_to_vector(other.parameters()).detach(), genome * 3)


@pytest.mark.parametrize("kind", ["mlp", "cnn", "residual"])
@pytest.mark.parametrize("bn", ["batch", "eval"])
def test_population_losses_match_dense_models(kind: str, bn: str) -> None:
    model = build(kind)
    if bn == "eval":  # running statistics that are not the identity, so that they matter
        for mod in model.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
    x, y = data(kind)
    pop = initial_population(model, 5, torch.Generator().manual_seed(3))
    expected = torch.tensor([reference(model, g, x, y, bn) for g in pop])
    before = copy.deepcopy(model.state_dict())
    model.train()
    for mode in modes(kind):
        got = PopulationEvaluator(model, get_loss("cross_entropy"), mode=mode, bn=bn)(pop, x, y)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert model.training and all(m.training for m in model.modules())
    for key, value in model.state_dict().items():  # no individual touched the shared buffers
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("kind", ["mlp", "cnn", "residual"])
def test_individual_alone_equals_inside_population(kind: str) -> None:
    model = build(kind)
    x, y = data(kind)
    pop = initial_population(model, 6, torch.Generator().manual_seed(4))
    for mode in modes(kind):
        ev = PopulationEvaluator(model, get_loss("cross_entropy"), mode=mode)
        together = ev(pop, x, y)
        for k in range(len(pop)):
            alone = ev(pop[k : k + 1], x, y)[0]
            if mode == "loop":
                assert torch.equal(alone, together[k])
            else:
                torch.testing.assert_close(alone, together[k], rtol=1e-6, atol=1e-6)
        shuffled = ev(pop.flip(0), x, y)
        torch.testing.assert_close(shuffled.flip(0), together, rtol=1e-6, atol=1e-6)


def test_chunks_and_sample_batches() -> None:
    model = build("mlp")
    x, y = data("mlp", 50)
    pop = initial_population(model, 7, torch.Generator().manual_seed(5))
    loss = get_loss("cross_entropy")
    full = PopulationEvaluator(model, loss, mode="vmap", bn="eval")(pop, x, y)
    chunked = PopulationEvaluator(model, loss, mode="vmap", bn="eval", chunk_size=3, batch_size=16)(pop, x, y)
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-6)
    # with batch statistics each sample batch is its own batch-norm batch: a weighted mean of batch losses
    batched = PopulationEvaluator(model, loss, mode="stacked", batch_size=20)(pop, x, y)
    parts = [(x[i : i + 20], y[i : i + 20]) for i in range(0, 50, 20)]
    expected = torch.tensor(
        [sum(reference(model, g, xb, yb, "batch") * len(yb) for xb, yb in parts) / 50 for g in pop]
    )
    torch.testing.assert_close(batched, expected, rtol=1e-5, atol=1e-5)


def test_dropout_is_off_and_evaluation_is_deterministic() -> None:
    model = build("residual")
    x, y = data("residual")
    pop = initial_population(model, 3, torch.Generator().manual_seed(6))
    ev = PopulationEvaluator(model, get_loss("cross_entropy"), mode="vmap")
    assert torch.equal(ev(pop, x, y), ev(pop, x, y))


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_recalibrated_model_computes_the_fitness(kind: str) -> None:
    model = build(kind)
    x, y = data(kind)
    pop = initial_population(model, 4, torch.Generator().manual_seed(8))
    fitness = PopulationEvaluator(model, get_loss("cross_entropy"), mode="stacked")(pop, x, y)
    m = copy.deepcopy(model)
    ParamLayout.of(m).load(m, pop[2])
    assert recalibrate(m, [x]) == len(x)
    first = m[0] if kind == "mlp" else None
    if first is not None:  # the first layer's statistics are those of the inputs (biased variance)
        torch.testing.assert_close(first.running_mean, x.mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(first.running_var, x.var(0, unbiased=False), rtol=1e-5, atol=1e-6)
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(nn.functional.cross_entropy(m(x), y), fitness[2], rtol=1e-5, atol=1e-6)


def test_value_and_grad_matches_autograd_on_a_copy() -> None:
    model = build("residual")
    x, y = data("residual")
    genome = initial_population(model, 2, torch.Generator().manual_seed(9))[1]
    value, grad = PopulationEvaluator(model, get_loss("cross_entropy"), bn="eval").value_and_grad(genome, x, y)
    m = copy.deepcopy(model)
    ParamLayout.of(m).load(m, genome)
    m.eval()
    out = nn.functional.cross_entropy(m(x), y)
    out.backward()
    expected = torch.cat([p.grad.reshape(-1) for p in m.parameters()])
    torch.testing.assert_close(value, out.detach())
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)


def test_initial_population_glorot() -> None:
    model = nn.Sequential(nn.Linear(200, 100), nn.BatchNorm1d(100), nn.Linear(100, 3))
    pop = initial_population(model, 50, torch.Generator().manual_seed(1))
    again = initial_population(model, 50, torch.Generator().manual_seed(1))
    assert torch.equal(pop, again)
    layout = ParamLayout.of(model)
    assert torch.equal(pop[0], layout.flatten(model))
    views = layout.unflatten(pop[1:])
    bound = (6 / 300) ** 0.5
    w = views["0.weight"]
    assert w.abs().max() <= bound
    assert abs(w.std().item() - bound / 3**0.5) < 0.01 * bound  # std of U(-a, a) is a/√3
    assert views["0.bias"].abs().max() <= 1 / 200**0.5
    assert (views["1.weight"] - 1).abs().max() <= 0.1 and views["1.weight"].std() > 0
    assert all(v.std(0).min() > 0 for v in views.values())  # no gene constant across individuals


def test_stackable_and_errors() -> None:
    assert stackable(build("mlp")) and stackable(build("cnn")) and not stackable(build("residual"))
    loss = get_loss("cross_entropy")
    with pytest.raises(ConfigError, match="mode"):
        PopulationEvaluator(build("residual"), loss, mode="stacked")
    with pytest.raises(ConfigError, match="bn"):
        PopulationEvaluator(build("mlp"), loss, bn="running")
    with pytest.raises(ConfigError, match="chunk_size"):
        PopulationEvaluator(build("mlp"), loss, chunk_size=0)
    with pytest.raises(ValueError, match="population"):
        PopulationEvaluator(build("mlp"), loss)(torch.zeros(2, 5), *data("mlp"))


def test_auto_picks_a_mode_and_agrees() -> None:
    model = build("mlp")
    x, y = data("mlp")
    pop = initial_population(model, 4, torch.Generator().manual_seed(2))
    auto = PopulationEvaluator(model, get_loss("cross_entropy"))
    got = auto(pop, x, y)
    assert auto.mode_used in ("loop", "vmap", "stacked")
    torch.testing.assert_close(got, PopulationEvaluator(model, get_loss("cross_entropy"), mode="loop")(pop, x, y))


def test_auto_decision_is_cached_per_signature_and_shared_between_processes(monkeypatch, tmp_path) -> None:
    """One probe per (model structure, device, P, batch): a second evaluator of the same structure reuses
    the decision; another population size probes again; a process that starts with an empty cache reads
    the decision another one wrote to the ``TRAINLAB_ENGINE_CACHE`` file instead of probing."""
    from trainlab.trainers.population import engine

    monkeypatch.setattr(engine, "_DECISIONS", {})
    monkeypatch.setenv(engine.CACHE_ENV, str(tmp_path / "decisions.json"))
    probes = []
    pick = PopulationEvaluator._pick

    def counting(self, *args):
        probes.append(len(args[0]))
        return pick(self, *args)

    monkeypatch.setattr(PopulationEvaluator, "_pick", counting)
    x, y = data("mlp")
    loss = get_loss("cross_entropy")
    pops = {n: initial_population(build("mlp"), n, torch.Generator().manual_seed(n)) for n in (4, 6)}
    first = PopulationEvaluator(build("mlp"), loss)
    first(pops[4], x, y)
    second = PopulationEvaluator(build("mlp"), loss)
    second(pops[4], x, y)
    assert probes == [4] and (second.mode_used, second.chunk_used) == (first.mode_used, first.chunk_used)
    PopulationEvaluator(build("mlp"), loss)(pops[6], x, y)
    assert probes == [4, 6]
    monkeypatch.setattr(engine, "_DECISIONS", {})  # a fresh worker process
    third = PopulationEvaluator(build("mlp"), loss)
    third(pops[4], x, y)
    assert probes == [4, 6] and (third.mode_used, third.chunk_used) == (first.mode_used, first.chunk_used)


def test_loop_mode_leaves_the_model_alone_and_follows_its_changes_only_at_construction() -> None:
    """The loop evaluates a private copy: the model's parameters and buffers are not touched, and later
    changes to the model (recalibration, gradient epochs) do not change the fitness function."""
    model = build("mlp")
    x, y = data("mlp")
    pop = initial_population(model, 3, torch.Generator().manual_seed(5))
    ev = PopulationEvaluator(model, get_loss("cross_entropy"), mode="loop", bn="eval")
    before = ev(pop, x, y)
    state = copy.deepcopy(model.state_dict())
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm1d):
            mod.running_mean.add_(1.0)
    assert torch.equal(ev(pop, x, y), before)
    model.load_state_dict(state)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


class SkipBlock(nn.Module):
    """y = body(x) + x, with a body that starts with a ReLU: that ReLU must not run in place."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Linear(6, 6), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


def test_inplace_relus_only_where_nothing_else_holds_the_input() -> None:
    """The loop's private copy runs ReLUs in place only after a child that produced a new tensor; losses
    equal a plain per-genome ``functional_call`` of the original model bit for bit, and the caller's
    inputs are left untouched (a model that starts with a ReLU, and a residual body)."""
    from torch.func import functional_call

    from trainlab.trainers.population.engine import inplace_relus

    seq = nn.Sequential(nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Flatten(), nn.ReLU(), nn.Identity(), nn.ReLU())
    inplace_relus(seq)
    assert [m.inplace for m in seq if isinstance(m, nn.ReLU)] == [False, True, True, False]
    skip = inplace_relus(nn.Sequential(SkipBlock(), nn.ReLU(), nn.Linear(6, 3)))
    assert [m.inplace for m in skip.modules() if isinstance(m, nn.ReLU)] == [False, True, False]
    for model in (nn.Sequential(nn.ReLU(), nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)),
                  nn.Sequential(SkipBlock(), nn.ReLU(), nn.Linear(6, 3))):
        torch.manual_seed(0)
        x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
        pop = initial_population(model, 4, torch.Generator().manual_seed(1))
        layout = ParamLayout.of(model)
        x0 = x.clone()
        loss = get_loss("cross_entropy")
        got = PopulationEvaluator(model, loss, mode="loop")(pop, x, y)
        assert torch.equal(x, x0)
        model.train()
        want = torch.stack([loss(functional_call(model, layout.unflatten(g), (x,)), y) for g in pop])
        assert torch.equal(got, want) and torch.equal(x, x0)


def test_bfloat16_fitness_is_close_and_refused_where_unsupported(monkeypatch) -> None:
    from trainlab.trainers.population import engine

    loss = get_loss("cross_entropy")
    if engine.bf16_supported(torch.device("cpu")):
        model = build("mlp")
        x, y = data("mlp")
        pop = initial_population(model, 5, torch.Generator().manual_seed(6))
        exact = PopulationEvaluator(model, loss, mode="stacked")(pop, x, y)
        for mode in ("stacked", "loop", "vmap"):
            low = PopulationEvaluator(model, loss, mode=mode, fitness_dtype="bfloat16")(pop, x, y)
            assert low.dtype == torch.float32
            # bfloat16 keeps 8 significant bits: relative rounding 2⁻⁹ per operation, a few layers deep
            torch.testing.assert_close(low, exact, rtol=0.05, atol=0.02)
    monkeypatch.setattr(engine, "bf16_supported", lambda device: False)
    with pytest.raises(ConfigError, match="fitness_dtype.*no native bfloat16"):
        PopulationEvaluator(build("mlp"), loss, fitness_dtype="bfloat16")
    with pytest.raises(ConfigError, match="fitness_dtype"):
        PopulationEvaluator(build("mlp"), loss, fitness_dtype="float16")


def test_compile_is_validated() -> None:
    loss = get_loss("cross_entropy")
    with pytest.raises(ConfigError, match="compile"):
        PopulationEvaluator(build("mlp"), loss, mode="loop", compile=True)
    with pytest.raises(ConfigError, match="compile"):
        PopulationEvaluator(build("residual"), loss, compile=True)


@pytest.mark.slow
def test_compiled_stacked_path_matches_the_stacked_path() -> None:
    model = build("mlp")
    x, y = data("mlp")
    pop = initial_population(model, 5, torch.Generator().manual_seed(8))
    loss = get_loss("cross_entropy")
    compiled = PopulationEvaluator(model, loss, compile=True)
    torch.testing.assert_close(compiled(pop, x, y), PopulationEvaluator(model, loss, mode="stacked")(pop, x, y),
                               rtol=1e-5, atol=1e-5)
    assert compiled.mode_used == "stacked"
