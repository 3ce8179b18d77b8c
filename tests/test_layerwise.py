"""Greedy layer-wise pre-training: which tensors each phase changes, phase 1 against the same training
written with torch.optim, the final architecture, training on a toy task, and the one-line errors."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import Tensor, nn

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.core.seeding import torch_generator
from trainlab.data.task import Split, Task
from trainlab.models import build_model
from trainlab.trainers import make_trainer
from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.trainers.conformance import check_trainer

# mlp2 with hidden widths [8, 6, 5] on 4 inputs: 0 BN(4), 1 Linear, 2 ReLU, 3 BN(8) | 4 Linear, 5 ReLU,
# 6 BN(6) | 7 Linear, 8 ReLU, 9 BN(5) | 10 Linear (output). Written out here, not taken from the trainer.
STAGES = [{"0", "1", "3"}, {"4", "6"}, {"7", "9"}]
OUTPUT = {"10"}


def toy_task(seed: int = 0, n: int = 256) -> Task:
    """Two classes by the sign of x₀·x₁ (not linearly separable), 4 Gaussian inputs."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    split = Split(x, (x[:, 0] * x[:, 1] > 0).long())
    return Task("toy", "classification", split, split, split, 2, "cross_entropy", "accuracy")


def toy_model(seed: int = 0) -> nn.Module:
    return build_model("mlp2", (4,), 2, widths=[8, 6, 5], generator=torch_generator(seed, "init"))


class Snapshots(Callback):
    """The model's state (parameters and buffers) at the start and after every epoch."""

    def __init__(self) -> None:
        self.states: list[dict[str, Tensor]] = []

    def on_fit_start(self, state: TrainState) -> None:
        self.states.append(copy.deepcopy(state.model.state_dict()))

    def on_epoch_end(self, state: TrainState) -> None:
        self.states.append(copy.deepcopy(state.model.state_dict()))


def changed(before: dict[str, Tensor], after: dict[str, Tensor]) -> set[str]:
    """The layers (first name component) with a tensor that differs."""
    return {key.split(".")[0] for key in before if not torch.equal(before[key], after[key])}


def test_each_phase_changes_only_its_stage_then_fine_tuning_changes_all() -> None:
    snaps = Snapshots()
    trainer = make_trainer("layerwise", optimizer="adam", lr=0.01, batch_size=32, epochs_per_layer=2)
    result = trainer.fit(toy_model(), toy_task(), Budget(epochs=8), seed=1, callbacks=[snaps])
    s = snaps.states
    assert len(s) == 9
    for epoch in (1, 2):
        assert changed(s[epoch - 1], s[epoch]) == STAGES[0]
    for epoch in (3, 4):
        assert changed(s[epoch - 1], s[epoch]) == STAGES[1]
    for epoch in (5, 6):  # the last hidden stage trains with the model's own output layer
        assert changed(s[epoch - 1], s[epoch]) == STAGES[2] | OUTPUT
    for epoch in (7, 8):
        assert changed(s[epoch - 1], s[epoch]) == set.union(*STAGES, OUTPUT)
    rows = result.records["layerwise"]
    assert [(r["phase"], r["first_epoch"], r["last_epoch"]) for r in rows] == [
        ("1", 1, 2), ("2", 3, 4), ("3", 5, 6), ("fine-tune", 7, 8)
    ]
    sizes = {name: p.numel() for name, p in toy_model().named_parameters()}
    head = 8 * 2 + 2
    assert rows[0]["trained_parameters"] == sum(v for k, v in sizes.items() if k.split(".")[0] in STAGES[0]) + head
    assert rows[3]["trained_parameters"] == sum(sizes.values())
    assert result.spending.epochs == 8 and result.spending.steps == 8 * 8


def test_phase_one_is_the_shallow_network_with_a_fresh_head_trained_by_torch_optim() -> None:
    """Full-batch SGD, 2 epochs: stage 1 after phase 1 equals Sequential(stage 1, Flatten, head) trained
    by torch.optim.SGD directly, the head initialised as the docstring says (PyTorch's Linear scheme drawn
    from the generator of (seed, "layerwise-head", 1))."""
    task, seed = toy_task(), 5
    model = toy_model()
    reference = copy.deepcopy(model)
    snaps = Snapshots()
    make_trainer("layerwise", optimizer="sgd", lr=0.1, batch_size=None, epochs_per_layer=2).fit(
        model, task, Budget(epochs=7), seed=seed, callbacks=[snaps]
    )
    head = nn.Linear(8, 2)
    gen = torch_generator(seed, "layerwise-head", 1)
    with torch.no_grad():
        nn.init.kaiming_uniform_(head.weight, a=math.sqrt(5), generator=gen)
        nn.init.uniform_(head.bias, -1 / math.sqrt(8), 1 / math.sqrt(8), generator=gen)
    shallow = nn.Sequential(*list(reference.children())[:4], nn.Flatten(), head)
    opt = torch.optim.SGD(shallow.parameters(), lr=0.1)
    shallow.train()
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(shallow(task.train.x), task.train.y).backward()
        opt.step()
    for key, value in reference.state_dict().items():
        if key.split(".")[0] in STAGES[0]:
            torch.testing.assert_close(snaps.states[2][key], value, rtol=1e-5, atol=1e-6)


def test_final_model_has_the_declared_architecture_and_trains_on_a_toy_task() -> None:
    for seed in range(3):
        task = toy_task(seed)
        model = toy_model(seed)
        declared = {k: v.shape for k, v in toy_model(seed).state_dict().items()}
        result = make_trainer("layerwise", lr=0.02, batch_size=32, epochs_per_layer=3).fit(
            model, task, Budget(epochs=40), seed=seed
        )
        assert result.state_dict is not None
        assert {k: v.shape for k, v in result.state_dict.items()} == declared
        assert result.status == "ok"
        first, last = result.history[0], result.history[-1]
        assert last["train_loss"] < 0.5 * first["train_loss"]
        assert last["train_metric"] > 0.9


def test_models_without_a_layer_stack_and_bad_options_are_one_line_errors() -> None:
    task = toy_task()
    trainer = make_trainer("layerwise")
    rnn = build_model("rnn", (10, 4), 2)
    with pytest.raises(ConfigError, match=r"^model: got 'rnn'; allowed: a stack of layers"):
        trainer.fit(rnn, task, Budget(epochs=10), seed=0)
    with pytest.raises(ConfigError, match=r"^model: got 'linear \(1 weight layer\)'; allowed: a stack of layers"):
        trainer.fit(build_model("linear", (4,), 2), task, Budget(epochs=10), seed=0)
    nested = nn.Sequential(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), nn.Linear(3, 2))
    with pytest.raises(ConfigError, match=r"^model: got 'Sequential with a nested block Sequential'"):
        trainer.fit(nested, task, Budget(epochs=10), seed=0)
    with pytest.raises(ConfigError, match=r"^budget\.epochs: got 6; allowed: more than the 6 pre-training epochs"):
        trainer.fit(toy_model(), task, Budget(epochs=6), seed=0)
    with pytest.raises(ConfigError, match=r"^trainer\.layerwise\.epochs_per_layer: got 0; allowed: an integer"):
        make_trainer("layerwise", epochs_per_layer=0)
    with pytest.raises(ConfigError, match=r"^trainer\.layerwise\.momentum: got 0\.9; allowed: an option among"):
        make_trainer("layerwise", momentum=0.9)
    with pytest.raises(ConfigError, match=r"^trainer\.layerwise\.optimizer: got 'lbfgs'; allowed: one of"):
        make_trainer("layerwise", optimizer="lbfgs")
    assert make_trainer("layerwise", optimizer="nag").describe() == {
        "name": "layerwise", "optimizer": "nag", "batch_size": 64, "epochs_per_layer": 2,
        "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0,
    }


def test_layerwise_conforms() -> None:
    assert "the same seed gives the same run" in check_trainer("layerwise", epochs_per_layer=1)
