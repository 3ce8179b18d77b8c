"""End-to-end gradient training on the thesis-000 tasks (issue evidence): bcw/mlp2 in 20 epochs with
Adam, RMSProp and NAG at their default settings; mnist/lenet5 with Adam (slow)."""
from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.metrics import balanced_accuracy_score

from conftest import require_dataset
from trainlab.core.budget import Budget
from trainlab.experiments.spec import RunSpec, execute
from trainlab.trainers.base import predict


@pytest.mark.parametrize("trainer", ["adam", "rmsprop", "nag"])
def test_bcw_mlp2_reaches_095_balanced_accuracy_in_20_epochs(trainer: str) -> None:
    from trainlab.data import load_task
    from trainlab.models import build_model

    result = execute(RunSpec("bcw", "mlp2", trainer, Budget(epochs=20), seed=0))
    assert result.status == "ok", result.message
    assert result.spending.epochs == 20
    assert result.final["test_metric"] >= 0.95
    task = load_task("bcw")  # recompute the headline metric with scikit-learn from the saved weights
    model = build_model("mlp2", task.input_shape, task.n_outputs)
    model.load_state_dict(result.state_dict)
    predicted = predict(model, task.test.x).argmax(1)
    score = balanced_accuracy_score(task.test.y.numpy(), predicted.numpy())
    assert score == pytest.approx(result.final["test_metric"], abs=1e-12)


@pytest.mark.slow
@pytest.mark.data
def test_mnist_lenet5_reaches_097_accuracy_in_20_epochs(data_root: Path) -> None:
    require_dataset(data_root, "mnist")
    result = execute(RunSpec("mnist", "lenet5", "adam", Budget(epochs=20), seed=0), data_dir=data_root)
    assert result.status == "ok", result.message
    assert result.final["test_metric"] >= 0.97
