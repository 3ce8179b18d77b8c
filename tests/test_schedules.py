"""Schedules against closed forms and PyTorch's schedulers, one-cycle against fastai's formula, and the
LR finder (geometric sweep, bias-corrected smoothing, suggestion, restored weights, plot)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.core.budget import Budget
from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.data.task import Split, Task
from trainlab.trainers import make_trainer
from trainlab.trainers.lr_finder import lr_find, suggest_lr
from trainlab.trainers.schedules import Cosine, OneCycle, StepDecay, make_schedule


def task(n: int = 256, seed: int = 0) -> Task:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = (x @ torch.randn(5, 3, generator=g)).argmax(1)
    return Task("syn", "classification", Split(x, y), Split(x[:64], y[:64]), Split(x[:64], y[:64]), 3,
                "cross_entropy", "accuracy")


def torch_lrs(make: type, steps: int, **kwargs: float) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = make(opt, **kwargs)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_step_and_cosine_match_pytorch_schedulers() -> None:
    step = StepDecay(0.1, 7, 0.5)
    expected = torch_lrs(torch.optim.lr_scheduler.StepLR, 40, step_size=7, gamma=0.5)
    np.testing.assert_allclose([step.lr(t) for t in range(40)], expected, rtol=1e-12)
    cos = Cosine(0.1, 30, 0.001)
    expected = torch_lrs(torch.optim.lr_scheduler.CosineAnnealingLR, 31, T_max=30, eta_min=0.001)
    np.testing.assert_allclose([cos.lr(t) for t in range(31)], expected, rtol=1e-9)


def test_one_cycle_matches_fastai_formula_at_sample_points() -> None:
    """fastai: combined_cos(0.25, lr/25, lr, lr/1e5), moms combined_cos(0.25, .95, .85, .95), pos = t/T."""
    lr, total = 0.4, 1000
    sched = OneCycle(lr, total)
    points = {
        0: (lr / 25, 0.95),
        125: ((lr / 25 + lr) / 2, 0.90),  # phase 1 midpoint: cos(π/2) = 0
        250: (lr, 0.85),  # end of warm-up
        625: ((lr + lr / 1e5) / 2, 0.90),  # phase 2 midpoint
        1000: (lr / 1e5, 0.95),
    }
    for t, (want_lr, want_mom) in points.items():
        assert sched.lr(t) == pytest.approx(want_lr, rel=1e-12)
        assert sched.momentum(t) == pytest.approx(want_mom, rel=1e-12)
    pos = 0.1  # a generic point: start + (1 + cos(π(1 − p/0.25)))(lr − start)/2
    want = lr / 25 + (1 + math.cos(math.pi * (1 - pos / 0.25))) * (lr - lr / 25) / 2
    assert sched.lr(100) == pytest.approx(want, rel=1e-12)
    assert max(sched.lr(t) for t in range(total)) == pytest.approx(lr)


class Record(Callback):
    def on_step_end(self, state: TrainState) -> None:
        state.log("sched", lr=state.lr, momentum=state.momentum)


def test_trainer_applies_one_cycle_to_lr_and_momentum_every_step() -> None:
    t = task()  # 256 samples, batch 64 -> 4 steps per epoch, 5 epochs -> T = 20
    trainer = make_trainer("nag", lr=0.2, schedule="one-cycle")
    result = trainer.fit(nn.Linear(5, 3), t, Budget(epochs=5), seed=0, callbacks=[Record()])
    rows = result.records["sched"]
    assert len(rows) == 20
    ref = OneCycle(0.2, 20)
    np.testing.assert_allclose([r["lr"] for r in rows], [ref.lr(i) for i in range(20)], rtol=1e-12)
    np.testing.assert_allclose([r["momentum"] for r in rows], [ref.momentum(i) for i in range(20)], rtol=1e-12)
    result = make_trainer("adam", lr=0.01, schedule="one-cycle").fit(
        nn.Linear(5, 3), t, Budget(steps=10), seed=0, callbacks=[Record()]
    )
    assert [r["lr"] for r in result.records["sched"]] == pytest.approx([OneCycle(0.01, 10).lr(i) for i in range(10)])


def test_linear_warmup_is_the_notes_sequence_with_full_batch() -> None:
    """Notes 001 §4.5: over n warm-up epochs the lr is η/n, 2η/n, ..., η, then η."""
    result = make_trainer("gd", lr=0.3, schedule="warmup", warmup_epochs=4).fit(
        nn.Linear(5, 3), task(), Budget(epochs=6), seed=0, callbacks=[Record()]
    )
    assert [r["lr"] for r in result.records["sched"]] == pytest.approx([0.075, 0.15, 0.225, 0.3, 0.3, 0.3])
    sched = make_schedule("step", lr=1.0, steps_per_epoch=4, total_steps=None, step_epochs=2, gamma=0.5)
    assert [sched.lr(t) for t in (0, 7, 8, 16)] == [1.0, 1.0, 0.5, 0.25]


def test_suggestion_rules_on_an_analytic_curve() -> None:
    lrs = list(np.logspace(-5, 1, 200))
    curve = [-math.tanh(math.log(lr / 1e-2)) + 0.1 * (math.log(lr) / 10) ** 2 for lr in lrs]
    slopes = np.diff(curve) / np.diff(np.log(lrs))
    steepest = lrs[20 + int(np.argmin(slopes[20:-5]))]
    assert suggest_lr(lrs, curve, "steep") == pytest.approx(steepest)
    assert steepest == pytest.approx(1e-2, rel=0.1)
    best = lrs[20 + int(np.argmin(curve[20:-5]))]
    assert suggest_lr(lrs, curve, "minimum") == pytest.approx(best / 10)


def test_lr_finder_sweeps_smooths_stops_and_restores(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    found = lr_find(model, task(), optimizer="sgd", lr_min=1e-4, lr_max=1e3, num_steps=60, batch_size=32, seed=1)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    n = len(found.lrs)
    ratio = (1e3 / 1e-4) ** (1 / 60)
    np.testing.assert_allclose(found.lrs, [1e-4 * ratio**i for i in range(n)], rtol=1e-12)
    avg = 0.0
    for i, (raw, s) in enumerate(zip(found.losses, found.smoothed)):
        avg = 0.98 * avg + 0.02 * raw
        assert s == pytest.approx(avg / (1 - 0.98 ** (i + 1)), rel=1e-9)
    assert found.stopped_early and n < 60
    assert found.smoothed[-1] > 4 * min(found.smoothed[:-1]) or not math.isfinite(found.losses[-1])
    assert 1e-4 <= found.suggestion < found.lrs[-1]
    assert found.forward_samples == 32 * n
    png = found.plot(tmp_path / "lr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trainer_lr_find_uses_the_suggestion() -> None:
    t = task()
    result = make_trainer("adam", lr_find=True, lr_find_steps=50).fit(nn.Linear(5, 3), t, Budget(epochs=2), seed=3)
    record = result.records["lr_find"][0]
    assert record["suggestion"] == pytest.approx(suggest_lr(record["lrs"], record["smoothed"], num_steps=50))
    assert result.history[-1]["lr"] == pytest.approx(record["suggestion"])
    steps = len(record["lrs"])
    assert result.spending.forward_samples == 64 * steps + 2 * 256


def test_triangular_is_the_piecewise_linear_interpolation() -> None:
    """Thesis 002's Myrtle5 schedule: 0 → η at pct_start·T → η/div_final at T, against numpy.interp."""
    import numpy as np

    total, lr = 700, 0.02
    sched = make_schedule(
        "triangular", lr=lr, steps_per_epoch=1, total_steps=total, pct_start=300 / 700, div_final=10.0
    )
    ts = [0, 1, 150, 299, 300, 301, 500, 699, 700, 800]
    expected = np.interp(ts, [0, 300, 700], [0.0, lr, lr / 10])
    assert [sched.lr(t) for t in ts] == pytest.approx(expected.tolist(), abs=1e-15)


def test_one_cycle_drives_rmsprop_momentum_from_zero_as_fastai() -> None:
    """fastai's fit_one_cycle sets "mom", which its OptimWrapper maps to torch RMSprop's momentum (default 0)."""
    from trainlab.trainers.schedules import combined_cos

    seen: list[float] = []

    class Spy(Callback):
        def on_step_end(self, state) -> None:  # noqa: ANN001
            seen.append(state.momentum if state.momentum is not None else float("nan"))

    trainer = make_trainer("rmsprop", lr=0.01, schedule="one-cycle", batch_size=64)
    trainer.fit(nn.Linear(5, 3), task(), Budget(epochs=2), seed=0, callbacks=[Spy()])
    total = len(seen)
    assert seen == pytest.approx([combined_cos(0.25, 0.95, 0.85, 0.95, t / total) for t in range(total)])


def sequential_lrs(steps: int, build: object) -> list[float]:
    """Learning rates of a PyTorch scheduler built by ``build(optimizer)`` over ``steps`` steps from lr 0.1."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = build(opt)  # type: ignore[operator]
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_exponential_and_linear_decay_match_pytorch_schedulers() -> None:
    lr_sched = torch.optim.lr_scheduler
    exp = make_schedule("exponential", lr=0.1, steps_per_epoch=1, total_steps=None, decay_rate=0.3)
    np.testing.assert_allclose(
        [exp.lr(t) for t in range(30)], torch_lrs(lr_sched.ExponentialLR, 30, gamma=math.exp(-0.3)), rtol=1e-9
    )
    lin = make_schedule("linear", lr=0.1, steps_per_epoch=2, total_steps=None, decay_epochs=6, end_factor=0.05)
    expected = torch_lrs(lr_sched.LinearLR, 30, start_factor=1.0, end_factor=0.05, total_iters=12)
    np.testing.assert_allclose([lin.lr(t) for t in range(30)], expected, rtol=1e-9)
    assert lin.lr(12) == lin.lr(29) == pytest.approx(0.005)


def test_inverse_time_and_per_epoch_rates_follow_the_closed_forms() -> None:
    """Thesis 002 §2.2.2.5: η/(a + k e) and η e^{-k e}, e in epochs (4 steps each here)."""
    inv = make_schedule("inverse-time", lr=0.5, steps_per_epoch=4, total_steps=None, decay_rate=2.0, decay_offset=3.0)
    exp = make_schedule("exponential", lr=0.5, steps_per_epoch=4, total_steps=None, decay_rate=0.2)
    for t in (0, 1, 4, 10, 40):
        assert inv.lr(t) == pytest.approx(0.5 / (3.0 + 2.0 * t / 4), rel=1e-12)
        assert exp.lr(t) == pytest.approx(0.5 * math.exp(-0.2 * t / 4), rel=1e-12)


def test_warmup_composes_with_any_decay_as_pytorch_sequential_lr() -> None:
    lr_sched = torch.optim.lr_scheduler
    w, total = 5, 40
    cos = make_schedule("cosine", lr=0.1, steps_per_epoch=1, total_steps=total, warmup="linear", warmup_epochs=w)
    expected = sequential_lrs(total + 1, lambda o: lr_sched.SequentialLR(
        o, [lr_sched.LinearLR(o, 1 / w, 1.0, total_iters=w - 1), lr_sched.CosineAnnealingLR(o, T_max=total - w)], [w]
    ))
    np.testing.assert_allclose([cos.lr(t) for t in range(total + 1)], expected, rtol=1e-9, atol=1e-15)
    step = make_schedule(
        "step", lr=0.1, steps_per_epoch=1, total_steps=None, warmup="constant", warmup_factor=0.2, warmup_epochs=w,
        step_epochs=7, gamma=0.5,
    )
    expected = sequential_lrs(total, lambda o: lr_sched.SequentialLR(
        o, [lr_sched.ConstantLR(o, 0.2, total_iters=w), lr_sched.StepLR(o, 7, 0.5)], [w]
    ))
    np.testing.assert_allclose([step.lr(t) for t in range(total)], expected, rtol=1e-9)


def test_schedule_errors_name_the_field() -> None:
    from trainlab.core.config import ConfigError

    with pytest.raises(ConfigError, match="trainer.adam.warmup: got 'linear'; allowed: none"):
        make_trainer("adam", schedule="one-cycle", warmup="linear")
    with pytest.raises(ConfigError, match="trainer.adam.schedule: got 'sqrt'; allowed: one of"):
        make_trainer("adam", schedule="sqrt")
    with pytest.raises(ConfigError, match="trainer.sgd.end_factor"):
        make_trainer("sgd", schedule="linear", end_factor=2)


def test_trainer_runs_a_warmed_up_exponential_decay_per_step() -> None:
    result = make_trainer("sgd", lr=0.2, schedule="exponential", decay_rate=0.5, warmup="linear", warmup_epochs=1).fit(
        nn.Linear(5, 3), task(), Budget(epochs=3), seed=0, callbacks=[Record()]
    )
    ref = make_schedule("exponential", lr=0.2, steps_per_epoch=4, total_steps=12, decay_rate=0.5,
                        warmup="linear", warmup_epochs=1)
    lrs = [r["lr"] for r in result.records["sched"]]
    assert lrs[:4] == pytest.approx([0.05, 0.1, 0.15, 0.2])
    assert lrs == pytest.approx([ref.lr(t) for t in range(12)])
    assert lrs[8] == pytest.approx(0.2 * math.exp(-0.5))
