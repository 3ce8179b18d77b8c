"""Loss functions: closed forms and second implementations (NumPy/SciPy, PyTorch's own losses, the
thesis 002 code transcribed), Γ(t) at hand-computed points, and the dynamic-loss invariants."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import log_softmax as np_log_softmax
from scipy.special import rel_entr, softmax

from trainlab.core.config import ConfigError
from trainlab.losses import (
    LOSSES,
    MSE,
    CrossEntropy,
    DynamicCrossEntropy,
    DynamicSchedule,
    gamma,
    get_loss,
)

STATIC = ["cross_entropy", "mse", "mae", "huber", "kl_divergence", "hellinger"]
DYNAMIC = ["dynamic_ce", "dynamic_mse1", "dynamic_mse2"]


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(7, 3, generator=gen, dtype=torch.float64) * 2
    y = torch.tensor([0, 1, 2, 2, 1, 0, 1])
    return z, y


def test_every_loss_is_registered_by_name() -> None:
    assert set(STATIC + DYNAMIC) <= set(LOSSES.names())


# ---------------------------------------------------------------------------------------- Γ(t)


def test_gamma_at_period_boundaries_by_hand() -> None:
    """A = 5, T = 10, C = 3: m = 0.8; g(0) = 1, g(5) = 5, g(7) = 1 + 0.8·3 = 3.4, g(9) = 1.8; the
    emphasised class is ⌊t/10⌋ mod 3."""
    kw = dict(amplitude=5.0, period=10)
    g = [[1.0, 1, 1], [5.0, 1, 1], [3.4, 1, 1], [1.8, 1, 1], [1, 1.0, 1], [1, 5.0, 1], [1, 1, 5.0], [5.0, 1, 1]]
    t = [0, 5, 7, 9, 10, 15, 25, 35]
    raw = gamma(t, 3, normalise=False, **kw)
    assert raw.shape == (8, 3)
    assert torch.allclose(raw, torch.tensor(g, dtype=torch.float64), rtol=0, atol=1e-12)
    normalised = gamma(t, 3, **kw)
    expected = 3 * torch.tensor(g, dtype=torch.float64) / torch.tensor(g, dtype=torch.float64).sum(1, keepdim=True)
    assert torch.allclose(normalised, expected, rtol=0, atol=1e-12)
    assert normalised[1].tolist() == pytest.approx([15 / 7, 3 / 7, 3 / 7])
    assert gamma(5, 3, **kw).shape == (3,)
    assert torch.equal(gamma(5, 3, **kw), normalised[1])


def test_gamma_matches_thesis_code_c_fn() -> None:
    """``c_fn`` of thesis 002 §5.6, transcribed in NumPy with t already reduced to the period and i given."""

    def c_fn(t: float, i: int, w_max: float, period: float, classes: int) -> np.ndarray:
        slope = 2 * (w_max - 1) / period
        w_main = np.where(t < period / 2.0, 1 + t * slope, 2 * w_max - t * slope - 1)
        res = np.ones(classes) + (w_main - 1) * np.eye(classes)[i]
        return res / np.sum(res) * classes

    for amplitude, period, classes in [(5.0, 10, 3), (70.0, 5000, 3), (12.5, 33, 4)]:
        steps = np.arange(0, 3 * classes * period, max(1, period // 7))
        ours = gamma(steps, classes, amplitude=amplitude, period=period).numpy()
        theirs = np.stack([c_fn(t % period, (t // period) % classes, amplitude, period, classes) for t in steps])
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_normalised_factors_sum_to_c_and_raw_peak_is_a() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        amplitude, period, classes = float(rng.uniform(1, 80)), int(rng.integers(2, 500)), int(rng.integers(2, 11))
        t = torch.arange(0, 2 * classes * period, 3)
        factors = gamma(t, classes, amplitude=amplitude, period=period)
        assert torch.allclose(factors.sum(1), torch.full((len(t),), float(classes), dtype=torch.float64))
        raw = gamma(t, classes, amplitude=amplitude, period=period, normalise=False)
        assert raw.min().item() == 1.0 and raw.max().item() <= amplitude + 1e-9
        half = torch.tensor([period // 2]) if period % 2 == 0 else None
        if half is not None:
            assert gamma(half, classes, amplitude=amplitude, period=period, normalise=False).max().item() == pytest.approx(amplitude)


def test_oscillations_stop_at_a_step_or_for_the_last_period() -> None:
    t = torch.arange(0, 100)
    stopped = gamma(t, 3, amplitude=9.0, period=20, stop_at=60)
    assert torch.equal(stopped[60:], torch.ones(40, 3, dtype=torch.float64))
    assert torch.equal(stopped[:60], gamma(t[:60], 3, amplitude=9.0, period=20))
    last = gamma(t, 3, amplitude=9.0, period=20, total_steps=100)
    assert torch.equal(last[80:], torch.ones(20, 3, dtype=torch.float64))
    assert last[70].max().item() > 1



def thesis_training_loop_factors(
    amplitude: float, period: float, classes: int, total_time: int, last_period_no_osc: bool, normalise: bool
) -> np.ndarray:
    """The factors each step of the training loop of Lavín Pallero (2021, §5.10) uses, transcribed: ``c_fn``
    (normalised) or ``c_fn_MSE_new`` (raw) of §5.6 at the loop's (t, c, w_max); the step returns t + 1, and
    ``if t > T`` resets t, moves to the next class and, with ``last_period_no_osc``, sets w_max = 1 once
    ``i > total_time - T``."""
    rows = []
    t, c, w_max = 0, 0, amplitude
    for i in range(total_time):
        slope = 2 * (w_max - 1) / period
        w_main_class = np.where(t < period / 2.0, 1 + t * slope, 2 * w_max - t * slope - 1)
        res = np.ones(classes) + (w_main_class - 1) * np.eye(classes)[c]
        rows.append(res / np.sum(res) * classes if normalise else res)
        t = t + 1
        if t > period:
            t = 0
            c = (c + 1) % classes
            if last_period_no_osc and i > total_time - period:
                w_max = 1
    return np.array(rows)


@pytest.mark.parametrize(
    ("amplitude", "period", "classes", "total_time"),
    [(5.0, 10, 3, 100), (20.0, 7, 3, 60), (3.0, 4, 3, 41), (12.5, 7.5, 4, 90), (40.0, 300, 3, 2000)],
)
def test_code_period_matches_the_printed_training_loop(amplitude: float, period: float, classes: int, total_time: int) -> None:
    t = torch.arange(total_time)
    for normalise in (True, False):
        for last in (False, True):
            ours = gamma(t, classes, amplitude=amplitude, period=period, normalise=normalise,
                         total_steps=total_time if last else None, code_period=True).numpy()
            theirs = thesis_training_loop_factors(amplitude, period, classes, total_time, last, normalise)
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    formula = gamma(t, classes, amplitude=amplitude, period=period).numpy()
    assert not np.allclose(formula, thesis_training_loop_factors(amplitude, period, classes, total_time, False, True))


def test_code_period_by_hand_and_its_last_period() -> None:
    """T = 4: the printed code's counter runs 0…4, so class 0 is emphasised for steps 0–4, class 1 from step 5;
    g(0…4) = 1, 1 + m, A, 1 + m, 1 with m = (A − 1)/2. With 20 steps its last period starts at step 20 − 4 = 16
    by the formulas but at the period end after it in the code: step 19 ends a period (5·4 − 1 > 16), so only
    step 20 on would be static — none of the 20 steps is."""
    raw = gamma(torch.arange(11), 3, amplitude=5.0, period=4, normalise=False, code_period=True)
    expected = [[1, 1, 1], [3, 1, 1], [5, 1, 1], [3, 1, 1], [1, 1, 1], [1, 1, 1], [1, 3, 1], [1, 5, 1], [1, 3, 1],
                [1, 1, 1], [1, 1, 1]]
    assert raw.tolist() == expected
    assert DynamicSchedule(5.0, 4, total_steps=20, code_period=True).static_from == 20
    assert DynamicSchedule(5.0, 4, total_steps=20).static_from == 16
    assert DynamicSchedule(5.0, 4, total_steps=22, code_period=True).static_from == 20
    assert DynamicSchedule(5.0, 30, total_steps=10, code_period=True).static_from == 31


def test_code_period_is_validated_and_left_out_of_the_default_identity() -> None:
    """``code_period`` at its default is not in ``config()``, so run ids made before the option existed stay."""
    with pytest.raises(ConfigError, match=r"loss\.dynamic_ce\.code_period: got 1"):
        get_loss("dynamic_ce", code_period=1)
    for name in DYNAMIC:
        assert "code_period" not in get_loss(name, amplitude=5.0, period=10).config()
        config = get_loss(name, amplitude=5.0, period=10, code_period=True).config()
        assert config["code_period"] is True
        assert get_loss(**config) == get_loss(name, amplitude=5.0, period=10, code_period=True)

def test_amplitude_one_is_constant() -> None:
    assert torch.equal(gamma(torch.arange(500), 4, amplitude=1.0, period=7), torch.ones(500, 4, dtype=torch.float64))


def test_schedule_validation_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"amplitude: got 0\.5"):
        DynamicSchedule(amplitude=0.5)
    with pytest.raises(ConfigError, match="period: got 0"):
        DynamicSchedule(period=0)
    with pytest.raises(ConfigError, match="stop_at"):
        DynamicSchedule(stop_at=10, total_steps=100)
    with pytest.raises(ConfigError, match=r"loss\.dynamic_ce\.amplitude: got -1"):
        get_loss("dynamic_ce", amplitude=-1)
    with pytest.raises(ConfigError, match=r"loss\.dynamic_mse1\.periodd"):
        get_loss("dynamic_mse1", periodd=3)
    with pytest.raises(ConfigError, match=r"loss\.mse\.delta"):
        get_loss("mse", delta=1.0)


def test_gamma_plot_draws_one_line_per_class() -> None:
    import matplotlib

    matplotlib.use("Agg")
    ax = DynamicSchedule(amplitude=5.0, period=10).plot(60, 3)
    lines = ax.get_lines()
    assert len(lines) == 3
    np.testing.assert_allclose(lines[1].get_ydata(), gamma(torch.arange(60), 3, amplitude=5.0, period=10)[:, 1])


# ---------------------------------------------------------------------------------- static losses


def test_static_losses_against_independent_implementations(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    z, y = batch
    zn, yn = z.numpy(), y.numpy()
    onehot = np.eye(3)[yn]
    p = softmax(zn, axis=1)
    expected = {
        "cross_entropy": -np_log_softmax(zn, axis=1)[np.arange(7), yn],
        "mse": ((zn - onehot) ** 2).sum(1),
        "mae": np.abs(zn - onehot).sum(1),
        "kl_divergence": rel_entr(onehot, p).sum(1),
        "hellinger": np.sqrt(((np.sqrt(p) - np.sqrt(onehot)) ** 2).sum(1)) / np.sqrt(2),
    }
    r = np.abs(zn - onehot)
    expected["huber"] = np.where(r <= 1.0, 0.5 * r**2, 1.0 * (r - 0.5)).sum(1)
    for name, values in expected.items():
        loss = get_loss(name)
        np.testing.assert_allclose(loss.per_sample(z, y).numpy(), values, rtol=1e-12, err_msg=name)
        assert loss(z, y).item() == pytest.approx(values.mean(), rel=1e-12)
        assert loss.static() is loss


def test_huber_delta_and_pytorch_reductions(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    z, _ = batch
    target = torch.randn(7, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    huber = get_loss("huber", delta=0.3)
    assert huber.config() == {"name": "huber", "delta": 0.3}
    assert huber(z, target).item() == pytest.approx(F.huber_loss(z, target, delta=0.3, reduction="sum").item() / 7)
    assert get_loss("mae")(z, target).item() == pytest.approx(F.l1_loss(z, target, reduction="sum").item() / 7)
    assert get_loss("mse")(z, target).item() == pytest.approx(F.mse_loss(z, target, reduction="sum").item() / 7)


def test_kl_and_hellinger_with_soft_targets() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(5, 4))
    q = rng.dirichlet(np.ones(4), size=5)
    q[0] = [0.5, 0.5, 0.0, 0.0]
    zt, qt = torch.tensor(z), torch.tensor(q)
    p = softmax(z, axis=1)
    np.testing.assert_allclose(get_loss("kl_divergence").per_sample(zt, qt).numpy(), rel_entr(q, p).sum(1), rtol=1e-12)
    hellinger = np.sqrt(((np.sqrt(p) - np.sqrt(q)) ** 2).sum(1)) / np.sqrt(2)
    np.testing.assert_allclose(get_loss("hellinger").per_sample(zt, qt).numpy(), hellinger, rtol=1e-12)
    assert np.all(hellinger <= 1)


def _fused_cases(dtype: torch.dtype) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(loss, outputs, targets) for every input form of the fused means: class indices, probability rows
    (cross-entropy) or values (MSE, also with a single output), and sequence outputs (N, T, C) with per-step
    class indices."""
    gen = torch.Generator().manual_seed(11)
    z = torch.randn(64, 5, generator=gen, dtype=dtype) * 3
    seq = torch.randn(16, 7, 5, generator=gen, dtype=dtype) * 3
    labels = torch.randint(0, 5, (64,), generator=gen)
    steps = torch.randint(0, 5, (16, 7), generator=gen)
    probabilities = torch.softmax(torch.randn(64, 5, generator=gen, dtype=dtype), dim=-1)
    values = torch.randn(64, 5, generator=gen, dtype=dtype)
    cases = [
        (name, outputs, targets)
        for name, extra in [("cross_entropy", probabilities), ("mse", values)]
        for outputs, targets in [(z, labels), (z, extra), (seq, steps)]
    ]
    return cases + [("mse", z[:, :1], values[:, 0])]  # one regression output, targets of shape (N,)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_means_equal_the_per_sample_mean(dtype: torch.dtype) -> None:
    """Cross-entropy computes its mean with PyTorch's fused reduction (MSE keeps the mean of ``per_sample``,
    see its docstring, so its cases here guard that its call stays that mean); the oracle is the mean of
    ``per_sample`` (itself checked against SciPy above). Both sides sum n ≤ 320 non-negative terms, each to a
    relative error of about ⌈log₂ n⌉ ε, so they agree to rtol 2⌈log₂ n⌉ ε; gradients to ``assert_close``'s
    defaults for the dtype."""
    for name, outputs, targets in _fused_cases(dtype):
        loss = get_loss(name)
        fused_in = outputs.clone().requires_grad_()
        fused = loss(fused_in, targets)
        fused.backward()
        mean_in = outputs.clone().requires_grad_()
        mean = loss.per_sample(mean_in, targets).mean()
        mean.backward()
        rtol = 2 * math.ceil(math.log2(outputs.numel())) * torch.finfo(dtype).eps
        torch.testing.assert_close(fused, mean, rtol=rtol, atol=0, msg=lambda m: f"{name} {tuple(targets.shape)}: {m}")
        torch.testing.assert_close(fused_in.grad, mean_in.grad, msg=lambda m: f"{name} gradient: {m}")


def test_kl_equals_cross_entropy_for_one_hot_targets(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    z, y = batch
    torch.testing.assert_close(get_loss("kl_divergence").per_sample(z, y), CrossEntropy().per_sample(z, y))


# --------------------------------------------------------------------------------- dynamic losses


def _thesis_losses(z: np.ndarray, y: np.ndarray, w: np.ndarray, raw: np.ndarray, amp: float) -> dict[str, float]:
    """``weighted_loss``, ``weighted_loss_MSE_old`` and ``weighted_loss_MSE_new`` of thesis 002 §5.6 (C = 3),
    transcribed in NumPy; ``w`` is the normalised and ``raw`` the raw factor vector."""
    c = 3
    onehot = np.eye(c)[y]
    rows = np.repeat(w[y][:, None], c, axis=1)
    return {
        "dynamic_ce": -np.mean(np_log_softmax(z, axis=1) * onehot * w) * c,
        "dynamic_mse1": np.mean(rows * (z - onehot) ** 2) * c,
        "dynamic_mse2_rescaled": np.mean((z - raw * onehot) ** 2) * c**2 / (2 + amp**2),
        "dynamic_mse2": np.mean((z - raw * onehot) ** 2) * c,
    }


@pytest.mark.parametrize("step", [0, 3, 6, 10, 14, 27])
def test_dynamic_losses_match_thesis_code(batch: tuple[torch.Tensor, torch.Tensor], step: int) -> None:
    z, y = batch
    amplitude, period = 4.0, 8
    w = gamma(step, 3, amplitude=amplitude, period=period).numpy()
    raw = gamma(step, 3, amplitude=amplitude, period=period, normalise=False).numpy()
    expected = _thesis_losses(z.numpy(), y.numpy(), w, raw, float(raw.max()))
    kw = dict(amplitude=amplitude, period=period)
    got = {
        "dynamic_ce": get_loss("dynamic_ce", **kw)(z, y, step),
        "dynamic_mse1": get_loss("dynamic_mse1", **kw)(z, y, step),
        "dynamic_mse2": get_loss("dynamic_mse2", **kw)(z, y, step),
        "dynamic_mse2_rescaled": get_loss("dynamic_mse2", rescale=True, **kw)(z, y, step),
    }
    for name, value in got.items():
        assert value.item() == pytest.approx(expected[name], rel=1e-12), name


def test_dynamic_per_sample_by_hand() -> None:
    """Two samples, C = 3, step 5 of A = 5, T = 10: Γ = (15, 3, 3)/7 and Γ̂ = (5, 1, 1)."""
    z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    kw = dict(amplitude=5.0, period=10)
    ce = [math.log(math.e + 2) - 1, math.log(2 + math.e**2) - 2]
    torch.testing.assert_close(
        get_loss("dynamic_ce", **kw).per_sample(z, y, 5), torch.tensor([15 / 7 * ce[0], 3 / 7 * ce[1]], dtype=torch.float64)
    )
    torch.testing.assert_close(
        get_loss("dynamic_mse1", **kw).per_sample(z, y, 5), torch.tensor([0.0, 3 / 7 * 1.0], dtype=torch.float64)
    )
    # v2: targets become (5, 0, 0) and (0, 1, 0): squared errors (1 − 5)² = 16 and (2 − 1)² = 1.
    torch.testing.assert_close(get_loss("dynamic_mse2", **kw).per_sample(z, y, 5), torch.tensor([16.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize(
    ("name", "extra"),
    [(name, {"normalise": normalise}) for name in DYNAMIC for normalise in (True, False)]
    + [("dynamic_mse2", {"normalise": normalise, "rescale": True}) for normalise in (True, False)],
)
def test_amplitude_one_gives_the_ordinary_loss(
    batch: tuple[torch.Tensor, torch.Tensor], name: str, extra: dict[str, bool]
) -> None:
    """At A = 1 the per-sample losses equal the static ones bit for bit, and the mean is the static loss's own
    (fused) call, equal to the mean of ``per_sample`` up to rounding."""
    z, y = batch
    loss = get_loss(name, amplitude=1.0, period=5, **extra)
    static = loss.static()
    assert static.name == ("cross_entropy" if name == "dynamic_ce" else "mse")
    for step in (0, 2, 7, 13):
        assert torch.equal(loss.per_sample(z, y, step), static.per_sample(z, y))
        assert torch.equal(loss(z, y, step), static(z, y))
        torch.testing.assert_close(loss(z, y, step), loss.per_sample(z, y, step).mean(), rtol=1e-14, atol=0)
    with pytest.raises(ConfigError, match=rf"{name}\.targets"):
        loss(z, torch.zeros(7, 3, dtype=torch.float64))


@pytest.mark.parametrize("name", DYNAMIC)
def test_dynamic_loss_config_round_trip(name: str) -> None:
    loss = get_loss(name, amplitude=7.5, period=300, total_steps=3000)
    config = loss.config()
    assert config["amplitude"] == 7.5 and config["period"] == 300 and config["total_steps"] == 3000
    assert get_loss(**config) == loss
    assert get_loss(config.pop("name"), **config).config() == loss.config()


def test_dynamic_losses_need_class_indices(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    z, _ = batch
    with pytest.raises(ConfigError, match=r"dynamic_mse1\.targets"):
        get_loss("dynamic_mse1", amplitude=2.0, period=4)(z, torch.zeros(7, 3, dtype=torch.float64))


def test_dynamic_gradient_is_weighted_static_gradient(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """∂F/∂z_j = Γ_{y_j} ∂ℓ_j/∂z_j for v1 and CE (autograd of the dynamic loss against the static one)."""
    z, y = batch
    step, kw = 13, dict(amplitude=6.0, period=8)
    w = gamma(step, 3, **kw)
    for name, static in [("dynamic_ce", CrossEntropy()), ("dynamic_mse1", MSE())]:
        zd = z.clone().requires_grad_()
        get_loss(name, **kw)(zd, y, step).backward()
        zs = z.clone().requires_grad_()
        static(zs, y).backward()
        torch.testing.assert_close(zd.grad, zs.grad * w[y].unsqueeze(1))


def test_dynamic_losses_work_under_torch_func(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """``weighted`` with per-configuration factors under vmap equals one call per configuration."""
    z, y = batch
    loss = get_loss("dynamic_mse2", amplitude=3.0, period=6, rescale=True)
    factors = torch.stack([gamma(t, 3, amplitude=a, period=6, normalise=False) for a, t in [(3.0, 2), (9.0, 4), (1.0, 0)]])
    batched = torch.func.vmap(lambda f: loss.weighted(z, y, f).mean())(factors)
    single = torch.stack([loss.weighted(z, y, f).mean() for f in factors])
    torch.testing.assert_close(batched, single, rtol=0, atol=0)


# ------------------------------------------------------------------ with the trainers and experiment files

GRADIENT = ["gd", "sgd", "momentum", "nag", "adagrad", "rmsprop", "adam", "adamw", "lbfgs"]


class _StepSpy(DynamicCrossEntropy):
    """Records the step each call receives (the trainers' loss-step convention)."""

    def per_sample(self, outputs: torch.Tensor, targets: torch.Tensor, step: int = 0) -> torch.Tensor:
        self.steps.append(step)  # type: ignore[attr-defined]
        return super().per_sample(outputs, targets, step)


@pytest.mark.parametrize("trainer", GRADIENT)
def test_dynamic_loss_with_every_gradient_trainer(trainer: str) -> None:
    """A = 1 trains exactly like the static loss; the loss sees steps 0, 1, 2, ... (one per optimizer step)."""
    from trainlab.core.budget import Budget
    from trainlab.data import load_task
    from trainlab.models import build_model
    from trainlab.core.seeding import torch_generator
    from trainlab.trainers import make_trainer

    task = load_task("spiral", points=20)
    options = {} if trainer in ("gd", "lbfgs") else {"batch_size": 20}
    weights = []
    for loss in (get_loss("cross_entropy"), get_loss("dynamic_ce", amplitude=1.0, period=3)):
        model = build_model("spiral-mlp", (2,), 3, width=8, generator=torch_generator(0, "init"))
        result = make_trainer(trainer, lr=0.05, **options).fit(model, task, Budget(epochs=2), 0, loss=loss)
        assert result.state_dict is not None
        weights.append(result.state_dict)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    spy = _StepSpy(amplitude=4.0, period=3)
    object.__setattr__(spy, "steps", [])
    model = build_model("spiral-mlp", (2,), 3, width=8, generator=torch_generator(0, "init"))
    result = make_trainer(trainer, lr=0.05, **options).fit(model, task, Budget(steps=4), 0, loss=spy)
    training_steps = sorted(set(spy.steps))  # type: ignore[attr-defined]
    assert training_steps[:4] == [0, 1, 2, 3] and result.spending.steps == 4


def test_myrtle5_experiment_file_on_a_tiny_cifar_format_set(tmp_path: Path) -> None:
    """``experiments/myrtle5-cifar10-dynamic.toml`` validates, and one of its runs trains (two epochs,
    narrow model) on a synthetic CIFAR-10-format folder with the dynamic cross-entropy."""
    import hashlib
    import pickle

    from trainlab.core.budget import Budget
    from trainlab.data.images import ImageOptions, load_image_task
    from trainlab.data.root import DataFile, Dataset
    from trainlab.experiments.config import load_experiment
    from trainlab.models import build_model
    from trainlab.core.seeding import torch_generator
    from trainlab.trainers import make_trainer

    experiment = load_experiment(Path(__file__).parents[1] / "experiments" / "myrtle5-cifar10-dynamic.toml")
    spec = next(r.spec for r in experiment.runs if r.spec.loss_options["amplitude"] > 1)
    assert spec.trainer == "nag" and spec.trainer_options["batch_size"] == 512 and spec.budget.epochs == 700
    assert spec.loss == "dynamic_ce" and spec.loss_options["stop_at"] == 600 * 98

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {b"labels": list(range(10)) * 4, b"data": rng.integers(0, 256, size=(40, 3072), dtype=np.uint8)}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    files = tuple(DataFile(n, md5=hashlib.md5((folder / n).read_bytes()).hexdigest()) for n in names)
    task = load_image_task("cifar10g", ImageOptions(n_train=100, n_test=20), tmp_path, dataset=Dataset("cifar-10", folder.name, files))
    model = build_model(spec.model, task.input_shape, task.n_outputs, generator=torch_generator(spec.seed, "init"), width=4)
    options = {**spec.trainer_options, "batch_size": 32}
    loss = get_loss(spec.loss, **{**spec.loss_options, "period": 2, "stop_at": 6})
    result = make_trainer(spec.trainer, **options).fit(model, task, Budget(epochs=2), spec.seed, loss=loss)
    assert result.status == "ok" and result.spending.steps == 2 * 4
    assert [row["epoch"] for row in result.history] == [0, 2] and math.isfinite(result.final["test_loss"])
