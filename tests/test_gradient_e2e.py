"""End-to-end gradient training on the thesis-000 tasks (issue evidence): bcw/mlp2 in 20 epochs with
Adam, RMSProp and NAG at their default settings (mean over five seeds); mnist/lenet5 with Adam (slow)."""
from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.metrics import balanced_accuracy_score

from conftest import require_dataset
from trainlab.core.budget import Budget
from trainlab.experiments.spec import RunSpec, execute
from trainlab.trainers.base import predict


@pytest.mark.parametrize("trainer", ["adam", "rmsprop", "nag"])
def test_bcw_mlp2_reaches_high_balanced_accuracy_in_20_epochs(trainer: str) -> None:
    """The mean over seeds 0-4 is at least 0.94. One seed is not evidence: over seeds 0-9 the per-seed
    test scores range over 0.945-0.969 (adam), 0.933-0.988 (rmsprop) and 0.945-0.981 (nag), so "every
    seed ≥ 0.95" fails for 4 of those 30 runs; the 10-seed means are 0.966, 0.963 and 0.962 with a
    standard error of a 5-seed mean of at most 0.0073 (rmsprop), putting 0.94 three standard errors
    below the lowest mean."""
    from trainlab.data import load_task
    from trainlab.models import build_model

    results = [execute(RunSpec("bcw", "mlp2", trainer, Budget(epochs=20), seed=seed)) for seed in range(5)]
    for result in results:
        assert result.status == "ok", result.message
        assert result.spending.epochs == 20
    scores = [r.final["test_metric"] for r in results]
    assert sum(scores) / len(scores) >= 0.94, scores
    task = load_task("bcw")  # recompute the headline metric with scikit-learn from the saved weights
    model = build_model("mlp2", task.input_shape, task.n_outputs)
    model.load_state_dict(results[0].state_dict)
    predicted = predict(model, task.test.x).argmax(1)
    score = balanced_accuracy_score(task.test.y.numpy(), predicted.numpy())
    assert score == pytest.approx(results[0].final["test_metric"], abs=1e-12)


@pytest.mark.slow
@pytest.mark.data
def test_mnist_lenet5_reaches_097_accuracy_in_20_epochs(data_root: Path) -> None:
    require_dataset(data_root, "mnist")
    result = execute(RunSpec("mnist", "lenet5", "adam", Budget(epochs=20), seed=0), data_dir=data_root)
    assert result.status == "ok", result.message
    assert result.final["test_metric"] >= 0.97
