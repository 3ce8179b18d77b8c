"""Which epochs may be selected: trained only (fastai's SaveModelCallback) or every recorded one."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.core.budget import Budget, Spending
from trainlab.core.config import ConfigError
from trainlab.data.task import Split, Task
from trainlab.trainers import make_trainer
from trainlab.trainers.history import History, Keep, Verdict


def _task(val_sign: float) -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
    val = Split(x[:32], val_sign * y[:32])
    return Task("toy", "regression", Split(x, y), val, val, 1, "mse", "r2")


@pytest.mark.parametrize("trainer", ["adam", "shade"])
def test_trained_epochs_only_by_default_even_when_epoch_0_is_best(trainer: str) -> None:
    # validation targets of the opposite sign, so that training makes validation worse:
    # with select="all" the untrained epoch 0 wins, with the default a trained epoch is kept
    task = _task(val_sign=-1.0)
    options = {"lr": 0.05} if trainer == "adam" else {}
    results = {}
    for select in ("trained", "all"):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(4, 1))
        start = {k: v.clone() for k, v in model.state_dict().items()}
        result = make_trainer(trainer, select=select, **options).fit(model, task, Budget(epochs=3), seed=0)
        val = {int(r["epoch"]): r["val_loss"] for r in result.history}
        results[select] = (result, start, model, val)
    trained, start, model, val = results["trained"]
    assert trained.best_epoch == min((e for e in val if e > 0), key=val.__getitem__)
    assert not all(torch.equal(start[k], model.state_dict()[k]) for k in start)
    everything, start, model, val = results["all"]
    assert everything.best_epoch == min(val, key=val.__getitem__) == 0
    assert all(torch.equal(start[k], model.state_dict()[k]) for k in start)


def test_initial_weights_are_kept_when_no_trained_epoch_is_finite() -> None:
    task = _task(1.0)
    torch.manual_seed(1)
    model = nn.Linear(4, 1)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = make_trainer("sgd", lr=1e6, batch_size=1).fit(model, task, Budget(epochs=5), seed=0)
    assert result.status == "diverged"
    assert result.best_epoch == 0
    assert all(torch.equal(start[k], model.state_dict()[k]) for k in start)


def test_bad_select_names_the_field() -> None:
    with pytest.raises(ConfigError, match="select"):
        make_trainer("adam", select="best")


def test_history_verdicts_follow_the_rule() -> None:
    """The rule Monitor and the sweep share: epoch 0 is only the fallback under "trained", a non-finite
    training loss diverges the run and is never selected, ties keep the earlier epoch."""
    def row(epoch: int, train: float, val: float) -> dict[str, float]:
        return History.row(epoch, {"train": (train, 0.0), "val": (val, 0.0), "test": (val, 0.0)}, Spending(), 0.1)

    rows = [(0, 1.0, 0.1), (1, 1.0, 0.5), (2, 1.0, 0.3), (3, 1.0, 0.3), (4, float("nan"), 0.0)]
    expected = {"trained": ([Keep.INITIAL, Keep.BEST, Keep.BEST, Keep.NOTHING, Keep.NOTHING], 2),
                "all": ([Keep.BEST, Keep.NOTHING, Keep.NOTHING, Keep.NOTHING, Keep.NOTHING], 0)}
    for select, (keeps, best) in expected.items():
        h = History(select)
        verdicts = [h.add(row(*r)) for r in rows]
        assert [v.keep for v in verdicts] == keeps
        assert [v.divergence for v in verdicts] == [""] * 4 + ["non-finite training loss at epoch 4"]
        assert h.best_epoch == best and h.final()["val_loss"] == rows[best][2]
    h = History("trained")
    assert h.add(row(0, float("inf"), 0.1)) == Verdict(Keep.INITIAL, "non-finite training loss at epoch 0")
    assert h.best_epoch == 0 and list(h.rows[0])[:3] == ["epoch", "train_loss", "train_metric"]
