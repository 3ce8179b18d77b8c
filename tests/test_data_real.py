"""The real tasks on the raw files in shared/datasets (skipped when absent), against published facts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import require_dataset
from trainlab.data import MissingDataError, load_task, verify_datasets
from trainlab.data.formats import read_idx

pytestmark = pytest.mark.data

# Label counts published in shared/datasets/README.md (MNIST) and by Zalando (Fashion-MNIST).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_official_checksums_of_present_files(data_root: Path) -> None:
    """Every file present under the data root matches its official checksum; absent files are reported
    missing, never as corrupt."""
    status = verify_datasets((), data_root)
    checked = 0
    for dataset, files in status.items():
        assert set(files.values()) <= {"ok", "missing"}, (dataset, files)
        checked += sum(v == "ok" for v in files.values())
    if not checked:
        pytest.skip(f"no data set files found under {data_root}")


def test_mnist_raw_counts_and_task(data_root: Path) -> None:
    require_dataset(data_root, "mnist")
    folder = data_root / "mnist"
    train = read_idx(folder / "train-labels-idx1-ubyte.gz")
    test = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert np.bincount(train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(test).tolist() == MNIST_TEST_COUNTS
    task = load_task("mnist", data_dir=data_root)
    assert (len(task.train), len(task.val), len(task.test)) == (10000, 2500, 2500)
    assert task.input_shape == (1, 32, 32) and task.train.x.dtype == torch.float32
    assert torch.bincount(task.train.y).tolist() == [1000] * 10
    assert torch.bincount(task.val.y).tolist() == [250] * 10 == torch.bincount(task.test.y).tolist()
    assert 0.0 <= task.train.x.min().item() and task.train.x.max().item() <= 1.0
    # MNIST's mean pixel is 0.1307 (the torchvision normalisation constant); resizing barely moves it.
    assert abs(task.train.x.mean().item() - 0.1307) < 0.01


def test_fmnist_task(data_root: Path) -> None:
    require_dataset(data_root, "fashion-mnist")
    labels = read_idx(data_root / "fashion-mnist" / "train-labels-idx1-ubyte.gz")
    assert np.bincount(labels).tolist() == [6000] * 10
    task = load_task("fmnist", data_dir=data_root, n_train=2000, n_test=1000)
    assert task.classes[-1] == "Ankle boot" and task.train.x.shape == (2000, 1, 32, 32)
    assert torch.bincount(task.test.y).tolist() == [50] * 10


def test_cifar10g_is_reported_missing(data_root: Path) -> None:
    if (data_root / "cifar-10-batches-py" / "data_batch_1").exists():
        pytest.skip("the CIFAR-10 batches are present: nothing is missing to report")
    with pytest.raises(MissingDataError) as err:
        load_task("cifar10g", data_dir=data_root)
    msg = str(err.value)
    assert "'cifar-10'" in msg and str(data_root / "cifar-10-batches-py") in msg and "data_batch_1" in msg


def test_bcw_shapes_and_classes() -> None:
    task = load_task("bcw")
    record = task.preprocessing
    assert len(record["features_in"]) == 30 and record["rows"] == 569
    total = len(task.train) + len(task.val) + len(task.test) + len(record["outliers"]["train_rows_dropped"])
    assert total == 569
    counts = sum(torch.bincount(s.y, minlength=2) for s in (task.train, task.val, task.test))
    dropped = len(record["outliers"]["train_rows_dropped"])
    assert counts.sum().item() + dropped == 569 and counts[0].item() <= 212 and counts[1].item() <= 357
    assert torch.bincount(task.test.y).tolist() == [42, 71]  # round(0.2·212), 357 − 250 − 36
    assert task.input_shape == (len(record["features"]),) and task.metric == "balanced_accuracy"


def test_bhp_raw_table_and_task(data_root: Path) -> None:
    require_dataset(data_root, "boston-housing")
    from trainlab.data.tabular import housing_table

    raw = housing_table(data_root / "boston-housing" / "housing.data")
    assert raw.x.shape == (506, 13)
    assert raw.y.min() == 5.0 and raw.y.max() == 50.0 and abs(raw.y.mean() - 22.5328) < 1e-4
    csv = pd.read_csv(data_root / "boston-housing" / "boston_housing.csv", header=None).to_numpy()
    np.testing.assert_allclose(np.c_[raw.x, raw.y], csv)
    task = load_task("bhp", data_dir=data_root)
    assert task.train.y.shape == (len(task.train), 1) and task.loss == "mse" and task.metric == "r2"
    assert len(task.val) == 51 and len(task.test) == 101


@pytest.mark.parametrize(("variant", "rows", "levels"), [("white", 4898, range(3, 10)), ("red", 1599, range(3, 9))])
def test_wine_tasks(data_root: Path, variant: str, rows: int, levels: range) -> None:
    require_dataset(data_root, "wine-quality")
    frame = pd.read_csv(data_root / "wine-quality" / f"winequality-{variant}.csv", sep=";")
    task = load_task("wqc", data_dir=data_root, variant=variant)
    assert task.classes == [str(q) for q in levels] and task.n_outputs == len(levels)
    assert task.preprocessing["source"]["class_mapping"] == {str(q): i for i, q in enumerate(levels)}
    dropped = len(task.preprocessing["outliers"]["train_rows_dropped"])
    assert len(task.train) + len(task.val) + len(task.test) + dropped == rows == len(frame)
    test_counts = torch.bincount(task.test.y, minlength=len(levels)).numpy()
    expected = frame["quality"].value_counts().sort_index().to_numpy()
    assert np.all(np.abs(test_counts - 0.2 * expected) <= 1)  # stratified
    reg = load_task("wqr", data_dir=data_root, variant=variant)
    assert reg.train.y.dtype == torch.float32 and reg.train.y.shape[1] == 1
    assert set(np.unique(reg.test.y.numpy())) <= set(float(q) for q in levels)


def test_bcw_batch_mean_metric_protocol_is_recorded_and_applied() -> None:
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    from trainlab.losses import get_loss
    from trainlab.models import build_model
    from trainlab.trainers.base import evaluate, predict, task_metric

    whole = load_task("bcw", profile="thesis000")
    batched = load_task("bcw", profile="thesis000", metrics="batch-mean", eval_batch_size=16)
    assert whole.describe()["metric_protocol"] == {"kind": "whole"}
    assert batched.describe()["metric_protocol"] == {"kind": "batch-mean", "batch_size": 16, "order": "split"}
    assert torch.equal(whole.test.x, batched.test.x), "the protocol changes the metric, not the data"
    torch.manual_seed(0)
    model = build_model("mlp1", batched.input_shape, batched.n_outputs)
    pred = predict(model, batched.test.x).argmax(1).numpy()
    y = batched.test.y.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn: a batch may lack a predicted class
        per_batch = [balanced_accuracy_score(y[i : i + 16], pred[i : i + 16]) for i in range(0, len(y), 16)]
    expected = np.average(per_batch, weights=[len(y[i : i + 16]) for i in range(0, len(y), 16)])
    _, metric = evaluate(model, batched.test, get_loss("cross_entropy"), task_metric(batched))
    assert metric == pytest.approx(expected, abs=1e-12)
    assert task_metric(whole)(predict(model, whole.test.x), whole.test.y) == pytest.approx(
        balanced_accuracy_score(y, pred), abs=1e-12)
