"""Truncated BPTT against full BPTT and its definition; clipping options on recurrent models; every
trainer family runs on a recurrent network."""
from __future__ import annotations

import copy

import pytest
import torch

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.data import load_task
from trainlab.models import build_model
from trainlab.trainers import make_trainer
from trainlab.trainers.bptt import stretch_ends


def _pair(head: str, task_name: str = "adding") -> tuple[torch.nn.Module, object]:
    if task_name == "adding":
        task = load_task("adding", length=7, n_train=16, n_val=4, n_test=4)
        outputs = 1
    else:
        task = load_task("copy", length=3, symbols=2, alphabet=3, n_train=16, n_val=4, n_test=4)
        outputs = task.n_outputs
    model = build_model("lstm", task.input_shape, outputs, width=4, head=head)
    return model, task


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("head,task_name", [("last", "adding"), ("sequence", "copy")])
def test_tbptt_over_the_whole_sequence_is_full_bptt(head: str, task_name: str) -> None:
    model, task = _pair(head, task_name)
    steps = task.input_shape[0]
    full = copy.deepcopy(model)
    make_trainer("tbptt", k1=steps, optimizer="sgd", lr=0.1, batch_size=None).fit(model, task, Budget(steps=1), 0)
    make_trainer("gd", lr=0.1).fit(full, task, Budget(steps=1), 0)
    for a, b in zip(model.parameters(), full.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_tbptt_updates_follow_the_definition() -> None:
    # copy task, T = 7 steps, k1 = 2, k2 = 4: stretch ends 1, 3, 5, 7; with plain SGD the first two
    # updates are θ1 = θ0 − η∇[(1/7) ℓ(step 0)](θ0) and θ2 = θ1 − η∇[(2/7) ℓ(steps 1, 2)](θ1), where
    # the second window runs steps 0..2 from the zero state (e − k2 = −1 → 0)
    task = load_task("copy", length=1, symbols=3, alphabet=3, n_train=8, n_val=4, n_test=4)
    model = build_model("gru", task.input_shape, task.n_outputs, width=3, head="sequence")
    ref = copy.deepcopy(model)
    make_trainer("tbptt", k1=2, k2=4, optimizer="sgd", lr=0.5, batch_size=None).fit(model, task, Budget(steps=2), 0)
    x, y = task.train.x, task.train.y
    ce = torch.nn.functional.cross_entropy
    for begin, end, first in ((0, 1, 0), (0, 3, 1)):
        ref.zero_grad()
        seq = ref.rnn(x[:, begin:end])[0]
        out = ref.head(seq[:, first - begin :])
        loss = ce(out.reshape(-1, out.shape[-1]), y[:, first:end].reshape(-1)) * (end - first) / 7
        loss.backward()
        with torch.no_grad():
            for p in ref.parameters():
                p -= 0.5 * p.grad
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_stretch_ends_and_validation() -> None:
    assert stretch_ends(7, 2) == [1, 3, 5, 7]
    assert stretch_ends(6, 3) == [3, 6]
    assert stretch_ends(5, 10) == [5]
    with pytest.raises(ConfigError, match="trainer.tbptt.k2"):
        make_trainer("tbptt", k1=3, k2=4)
    with pytest.raises(ConfigError, match="trainer.tbptt.momentum"):
        make_trainer("tbptt", optimizer="adam", momentum=0.9)


def test_clipping_options_bound_the_recurrent_update() -> None:
    # with SGD the update is −η·clipped gradient: ‖Δθ‖ ≤ η·clip_norm, and |Δθ_i| ≤ η·clip_value
    model, task = _pair("last")
    for option, norm in (("clip_norm", 2), ("clip_value", float("inf"))):
        net = copy.deepcopy(model)
        before = torch.cat([p.reshape(-1) for p in _params(net)])
        make_trainer("gd", lr=1.0, **{option: 1e-3}).fit(net, task, Budget(steps=1), 0)
        after = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        assert torch.linalg.vector_norm(after - before, norm) <= 1e-3 * (1 + 1e-3)  # float32 rounding of θ + Δθ
        assert torch.linalg.vector_norm(after - before, norm) > 0.5e-3


@pytest.mark.parametrize("trainer,options", [
    ("adam", {"lr": 0.01, "batch_size": 8}),
    ("newton", {}),
    ("shade", {"population_size": 6}),
    ("shade-gd", {"population_size": 6}),
])
def test_every_trainer_family_runs_on_recurrent_models(trainer: str, options: dict) -> None:
    model, task = _pair("last")
    result = make_trainer(trainer, **options).fit(model, task, Budget(epochs=2), 0)
    assert result.status == "ok"
    assert result.final["test_loss"] == pytest.approx(result.final["test_loss"])  # finite, not NaN
