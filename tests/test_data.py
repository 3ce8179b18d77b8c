"""trainlab.data on small files the tests write in the official formats (no network, no real data)."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from rich.console import Console
from scipy import stats
from sklearn.preprocessing import StandardScaler

from trainlab.cli.data import data as data_cli
from trainlab.core.config import ConfigError
from trainlab.data import (
    DATASETS,
    ChecksumError,
    FormatError,
    MissingDataError,
    load_task,
    task_config,
)
from trainlab.data import root as root_mod
from trainlab.data.formats import read_cifar_batch, read_idx, read_semicolon_csv
from trainlab.data.images import ImageOptions, RandomAffine, affine, load_image_task, to_float_images
from trainlab.data.root import DataFile, Dataset, download_dataset, download_file, require, resolve_root, verify_file
from trainlab.data.spiral import make_spiral
from trainlab.data.tabular import (
    fastai_positional_split,
    RawTable,
    TabularOptions,
    merge_rare_classes,
    outlier_rows,
    preprocess,
    split_indices,
)
from trainlab.core.seeding import numpy_generator


# ----------------------------------------------------------------------------- writers (oracles)
def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    """IDX as LeCun describes it: 0, 0, type 0x08 (uint8), ndim, big-endian uint32 sizes, raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """A Python-2 style batch: dict of bytes keys, data (N, 3072) with R, G, B planes row by row."""
    batch = {b"batch_label": b"test", b"labels": [int(v) for v in labels], b"data": images.reshape(len(images), -1)}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(name: str, folder: Path, files: list[str], algorithm: str = "sha256") -> Dataset:
    digest = {n: hashlib.new(algorithm, (folder / n).read_bytes()).hexdigest() for n in files}
    return Dataset(name, folder.name, tuple(DataFile(n, **{algorithm: digest[n]}) for n in files))


def flip_byte(path: Path, offset: int = 20) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def mnist_folder(root: Path, per_class_train: int = 20, per_class_test: int = 10) -> Dataset:
    """A tiny MNIST-layout folder; image i's top-left pixel is i, so images can be traced."""
    folder = root / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, per in (("train", per_class_train), ("t10k", per_class_test)):
        labels = np.repeat(np.arange(10), per).astype(np.uint8)
        rng.shuffle(labels)
        images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(len(labels))
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return manifest("mnist", folder, [f.name for f in DATASETS["mnist"].files])


# ----------------------------------------------------------------------------- formats
def test_read_idx_gzip_and_plain(tmp_path: Path) -> None:
    images = np.random.default_rng(1).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    write_idx(tmp_path / "img.gz", images)
    write_idx(tmp_path / "lab", labels, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "img.gz"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "lab"), labels)


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(FormatError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 5) + b"abc")
    with pytest.raises(FormatError, match="announces shape"):
        read_idx(tmp_path / "short")


def test_read_cifar_batch_plane_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    flat = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
    write_cifar_batch(tmp_path / "b", flat, np.array([1, 2, 3, 4]))
    images, labels = read_cifar_batch(tmp_path / "b")
    assert images.shape == (4, 3, 32, 32) and labels.tolist() == [1, 2, 3, 4]
    # pixel (c, h, w) is byte c*1024 + h*32 + w of the row (CIFAR-10 page)
    assert images[2, 1, 5, 7] == flat[2, 1 * 1024 + 5 * 32 + 7]
    assert images[3, 2, 31, 0] == flat[3, 2 * 1024 + 31 * 32]


def test_read_semicolon_csv_checks_header(tmp_path: Path) -> None:
    (tmp_path / "w.csv").write_text('"a";"b"\n1;2\n3;4\n')
    assert read_semicolon_csv(tmp_path / "w.csv", ["a", "b"])["b"].tolist() == [2, 4]
    with pytest.raises(FormatError, match="expected columns"):
        read_semicolon_csv(tmp_path / "w.csv", ["a", "c"])


# ----------------------------------------------------------------------------- root, checksums, downloads
def test_root_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINLAB_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_root(tmp_path / "arg") == (tmp_path / "arg", "argument")
    assert resolve_root() == (tmp_path / "env", "TRAINLAB_DATA")
    monkeypatch.delenv("TRAINLAB_DATA")
    assert resolve_root() == (tmp_path / "cache" / "trainlab" / "datasets", "cache")


def test_corrupted_file_names_file_expected_and_actual(tmp_path: Path) -> None:
    ds = mnist_folder(tmp_path)
    path = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    expected = ds.file(path.name).sha256
    flip_byte(path)
    actual = sha256(path)
    with pytest.raises(ChecksumError) as err:
        verify_file(path, ds.file(path.name))
    assert str(path) in str(err.value) and expected in str(err.value) and actual in str(err.value)
    with pytest.raises(ChecksumError):
        load_image_task("mnist", ImageOptions(n_train=100, n_test=40), tmp_path, dataset=ds)


def test_missing_files_message(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as err:
        require(DATASETS["wine-quality"], tmp_path)
    msg = str(err.value)
    assert "'wine-quality'" in msg and str(tmp_path / "wine-quality") in msg
    assert "winequality-red.csv" in msg and "winequality-white.csv" in msg
    with pytest.raises(MissingDataError, match=str(tmp_path / "boston-housing")):
        load_task("bhp", data_dir=tmp_path)


def test_download_file_url_with_progress_bar(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(np.random.default_rng(3).bytes(3 << 20))
    buf = io.StringIO()
    dest = tmp_path / "out" / "file.bin"
    download_file(
        src.as_uri(), dest, algorithm="sha256", expected=sha256(src),
        console=Console(file=buf, force_terminal=True, width=100),
    )  # fmt: skip
    assert dest.read_bytes() == src.read_bytes()
    assert "downloading file.bin" in buf.getvalue()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]


class _Broken:
    """A response that yields one chunk, then fails as a dropped connection would."""

    headers = {"Content-Length": "100"}

    def __init__(self) -> None:
        self.calls = 0

    def read(self, n: int) -> bytes:
        self.calls += 1
        if self.calls > 1:
            raise ConnectionResetError("connection dropped")
        return b"x" * 10

    def __enter__(self) -> _Broken:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_failed_download_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "d" / "f.bin"
    monkeypatch.setattr(root_mod, "open_url", lambda url: _Broken())
    with pytest.raises(ConnectionResetError):
        download_file("https://example.invalid/f.bin", dest, algorithm="sha256", expected="0" * 64, progress=False)
    assert list(dest.parent.iterdir()) == []
    src = tmp_path / "s.bin"
    src.write_bytes(b"payload")
    with pytest.raises(ChecksumError, match="expected sha256 " + "0" * 64):
        download_file(src.as_uri(), dest, algorithm="sha256", expected="0" * 64, opener=root_mod.urllib.request.urlopen)
    assert list(dest.parent.iterdir()) == []


def test_download_dataset_from_archive(tmp_path: Path) -> None:
    staging = tmp_path / "staging" / "toy-py"
    staging.mkdir(parents=True)
    for name, content in (("a", b"alpha"), ("b", b"beta")):
        (staging / name).write_bytes(content)
    archive = tmp_path / "toy.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname="toy-py")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    ds = Dataset(
        "toy", "toy-py",
        (DataFile("a", md5=hashlib.md5(b"alpha").hexdigest()), DataFile("b", md5=hashlib.md5(b"beta").hexdigest())),
        archive=root_mod.Archive("toy.tar.gz", archive.as_uri(), md5, "toy-py"),
    )  # fmt: skip
    root = tmp_path / "root"
    assert download_dataset(ds, root, progress=False) == {"a": "ok", "b": "ok"}
    assert (root / "toy-py" / "b").read_bytes() == b"beta"
    assert not (root / "toy.tar.gz").exists()


def test_offline_download_gives_missing_error(tmp_path: Path) -> None:
    ds = Dataset("toy", "toy", (DataFile("x.csv", sha256="0" * 64, url=(tmp_path / "nowhere.csv").as_uri()),))
    with pytest.raises(MissingDataError, match="Download failed"):
        require(ds, tmp_path / "root", download=True)


# ----------------------------------------------------------------------------- options and registry
def test_bad_names_and_options_raise_config_errors() -> None:
    with pytest.raises(ConfigError) as err:
        load_task("imagenet")
    assert err.value.field == "task" and "spiral" in err.value.allowed
    with pytest.raises(ConfigError) as err:
        task_config("bcw", split=(0.5, 0.5, 0.5))
    assert err.value.field == "task.bcw.split"
    with pytest.raises(ConfigError) as err:
        task_config("bcw", metrics="per-batch")
    assert err.value.field == "task.bcw.metrics" and "batch-mean" in err.value.allowed
    with pytest.raises(ConfigError) as err:
        task_config("wqr", eval_batch_size=0)
    assert err.value.field == "task.wqr.eval_batch_size"
    with pytest.raises(ConfigError) as err:
        task_config("wqc", variant="rose")
    assert err.value.field == "task.wqc.variant" and "white" in err.value.allowed
    with pytest.raises(ConfigError) as err:
        task_config("mnist", n_train=10005)
    assert err.value.field == "task.mnist.n_train"
    with pytest.raises(ConfigError) as err:
        task_config("spiral", widht=3)
    assert err.value.field == "task.spiral.widht"


@pytest.mark.parametrize("name", ["bcw", "bhp", "wqc", "wqr", "mnist", "fmnist", "cifar10g", "spiral"])
def test_task_config_is_complete_and_stable(name: str) -> None:
    config = task_config(name)
    assert task_config(name, **config) == config
    assert json.loads(json.dumps(config)) == config
    assert "data_seed" in config or "train_seed" in config


# ----------------------------------------------------------------------------- tabular preprocessing
def test_split_indices_stratified_and_reproducible() -> None:
    y = np.repeat([0, 1, 2], [50, 30, 7])
    parts = split_indices(len(y), (0.7, 0.1, 0.2), numpy_generator(0, "t"), y)
    together = np.concatenate(parts)
    assert sorted(together.tolist()) == list(range(len(y)))
    for c, n in zip(range(3), (50, 30, 7)):
        for part, f in zip(parts, (0.7, 0.1, 0.2)):
            assert abs((y[part] == c).sum() - f * n) <= 1
    again = split_indices(len(y), (0.7, 0.1, 0.2), numpy_generator(0, "t"), y)
    other = split_indices(len(y), (0.7, 0.1, 0.2), numpy_generator(1, "t"), y)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not np.array_equal(parts[0], other[0])


def test_preprocess_matches_pandas_scipy_sklearn_pipeline() -> None:
    """The whole pipeline against an independent pandas/scipy/sklearn implementation (bcw)."""
    from sklearn.datasets import load_breast_cancer

    from trainlab.data.tabular import bcw_table

    raw = bcw_table()
    options = TabularOptions(corr_threshold=0.1, pair_threshold=0.95, clip=False)
    arrays, record = preprocess(raw, options, "classification")

    frame = load_breast_cancer(as_frame=True).frame
    idx = split_indices(len(frame), options.split, numpy_generator(0, "tabular-split"), raw.y)
    train = frame.iloc[idx[0]]
    target_corr = train.drop(columns="target").corrwith(train["target"]).abs()
    kept = [c for c in target_corr.index if target_corr[c] >= 0.1]
    cm = train[kept].corr().abs()
    pairs = sorted(
        ((cm.loc[a, b], a, b) for i, a in enumerate(kept) for b in kept[i + 1 :] if cm.loc[a, b] > 0.95),
        key=lambda t: (-t[0], kept.index(t[1]), kept.index(t[2])),
    )
    alive = list(kept)
    for _, a, b in pairs:
        if a in alive and b in alive:
            alive.remove(b if target_corr[a] >= target_corr[b] else a)
    assert record["features"] == alive
    assert set(record["dropped_low_target_corr"]["features"]) == set(target_corr.index) - set(kept)

    z = np.abs(stats.zscore(train[alive].to_numpy()))
    inliers = train[(z <= 3.0).all(axis=1)]
    assert len(record["outliers"]["train_rows_dropped"]) == len(train) - len(inliers)
    scaler = StandardScaler().fit(inliers[alive].to_numpy())
    np.testing.assert_allclose(arrays["train"][0], scaler.transform(inliers[alive].to_numpy()), atol=1e-10)
    test = frame.iloc[idx[2]]
    np.testing.assert_allclose(arrays["test"][0], scaler.transform(test[alive].to_numpy()), atol=1e-10)
    np.testing.assert_array_equal(arrays["test"][1], test["target"].to_numpy())
    np.testing.assert_allclose(list(record["standardize"]["mean"].values()), scaler.mean_, rtol=1e-12)
    json.dumps(record)


def test_preprocess_steps_can_be_switched_off() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 3))
    x[:, 2] = x[:, 0] * 3 + 10
    x[0, 1] = 50.0
    y = x[:, 0] + 0.1 * rng.normal(size=200)
    raw = RawTable(x, y, y, ["a", "b", "c"], None, {})
    off = TabularOptions(corr_threshold=0, pair_threshold=1, z_threshold=None, standardize=False)
    arrays, record = preprocess(raw, off, "regression")
    assert record["features"] == ["a", "b", "c"] and record["outliers"]["train_rows_dropped"] == []
    assert sum(len(a[0]) for a in arrays.values()) == 200
    np.testing.assert_array_equal(np.sort(np.concatenate([a[0][:, 1] for a in arrays.values()])), np.sort(x[:, 1]))
    _, record = preprocess(raw, TabularOptions(corr_threshold=0.3), "regression")
    assert record["features"] == ["a"]  # b uncorrelated; c duplicates a (|r| = 1) and loses the tie to a


# ----------------------------------------------------------------------------- spiral
def thesis_make_dataset(points_per_class: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Thesis 002 §5.3 transcribed; ``np.random.seed(s)`` + ``np.random.randn`` ≡ ``RandomState(s).randn``."""
    random = np.random.RandomState(seed)
    n, c, pi = points_per_class, classes, np.pi
    x = np.zeros((n * c, 2))
    y = np.zeros((n * c, c))
    for j in range(c):
        ix = range(n * j, n * (j + 1))
        r = np.linspace(0.0, 1, n)
        omega = 2 * pi / c
        t = np.linspace(omega * j, omega * j + 4 * pi, n) + random.randn(n) * 0.2
        x[ix] = np.c_[r * np.cos(t), r * np.sin(t)]
        y[ix, j] = 1
    return x, y


def test_spiral_matches_thesis_code() -> None:
    x, y = make_spiral(3, 100, 0.2, 0)
    ref_x, ref_y = thesis_make_dataset(100, 3, 0)
    np.testing.assert_allclose(x, ref_x, rtol=0, atol=0)
    np.testing.assert_array_equal(y, ref_y.argmax(axis=1))
    task = load_task("spiral", test_seeds=[7, 8])
    assert task.input_shape == (2,) and task.n_outputs == 3 and len(task.test) == 600
    np.testing.assert_allclose(task.train.x.numpy(), ref_x.astype(np.float32))
    np.testing.assert_allclose(task.test.x[300:].numpy(), make_spiral(3, 100, 0.2, 8)[0].astype(np.float32))
    assert not torch.equal(task.train.x, task.val.x)
    assert task.preprocessing["seeds"] == {"train": [0], "val": [1], "test": [7, 8]}



@pytest.mark.parametrize("angle", [0.5, 2.0, 2.5, 3.0, 4.0, 7.25])
def test_spiral_arms_sweep_exactly_the_requested_angle(angle: float) -> None:
    """Closed form: without noise, point k of arm j (r_k = k/(N − 1) > 0) lies at polar angle
    2πj/C + angle·π·k/(N − 1), so the unwrapped angle rises linearly from the arm's start to
    start + angle·π; with noise, two angles differ by exactly (a − b)·π·k/(N − 1) (the same draws)."""
    arms, points = 3, 50
    k = np.arange(1, points)
    for noise in (0.0, 0.2):
        x, y = make_spiral(arms, points, noise, 4, angle)
        x4, _ = make_spiral(arms, points, noise, 4, 4.0)
        for j in range(arms):
            arm = x[j * points : (j + 1) * points]
            assert (y[j * points : (j + 1) * points] == j).all()
            np.testing.assert_allclose(np.hypot(arm[:, 0], arm[:, 1]), np.linspace(0, 1, points), atol=1e-12)
            theta = np.unwrap(np.arctan2(arm[1:, 1], arm[1:, 0]))
            arm4 = x4[j * points : (j + 1) * points]
            shift = np.unwrap(np.arctan2(arm[1:, 1], arm[1:, 0]) - np.arctan2(arm4[1:, 1], arm4[1:, 0]))
            np.testing.assert_allclose(shift - shift[0], (angle - 4.0) * np.pi * (k - 1) / (points - 1), atol=1e-9)
            if noise == 0.0:
                start = 2 * np.pi * j / arms
                theta = theta - 2 * np.pi * np.round((theta[0] - start - angle * np.pi / (points - 1)) / (2 * np.pi))
                np.testing.assert_allclose(theta, start + angle * np.pi * k / (points - 1), atol=1e-9)
                assert theta[-1] - start == pytest.approx(angle * np.pi, abs=1e-9)
    task = load_task("spiral", angle=angle, test_seeds=[5])
    np.testing.assert_allclose(task.test.x.numpy(), make_spiral(3, 100, 0.2, 5, angle)[0].astype(np.float32))
    assert task.preprocessing["angle_span"] == f"{angle:g}π"


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), "3pi", True])
def test_spiral_angle_is_validated(bad: object) -> None:
    with pytest.raises(ConfigError) as err:
        task_config("spiral", angle=bad)
    assert err.value.field == "task.spiral.angle" and "(0, inf)" in err.value.allowed


# ----------------------------------------------------------------------------- images
def test_bilinear_resize_matches_pil_and_pad_mode() -> None:
    img = np.random.default_rng(6).integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    out = to_float_images(img, torch.device("cpu"), "bilinear")
    assert out.shape == (2, 1, 32, 32) and out.dtype == torch.float32
    for i in range(2):
        ref = np.asarray(Image.fromarray(img[i].astype(np.float32) / 255, mode="F").resize((32, 32), Image.BILINEAR))
        np.testing.assert_allclose(out[i, 0].numpy(), ref, atol=1e-5)
    padded = to_float_images(img, torch.device("cpu"), "pad")
    np.testing.assert_allclose(padded[:, 0, 2:30, 2:30].numpy(), img / 255, atol=1e-7)
    assert padded[:, :, :2].abs().sum() == 0 and padded[:, :, :, 30:].abs().sum() == 0


def test_grey_conversion_matches_pil() -> None:
    rgb = np.random.default_rng(7).integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8)
    grey = to_float_images(rgb, torch.device("cpu"), "bilinear")
    for i in range(3):
        ref = np.asarray(Image.fromarray(rgb[i].transpose(1, 2, 0), mode="RGB").convert("L"), dtype=np.float64) / 255
        np.testing.assert_allclose(grey[i, 0].numpy(), ref, atol=0.6 / 255)  # PIL rounds to uint8
    bt601 = np.einsum("nchw,c->nhw", rgb / 255, [0.299, 0.587, 0.114])  # ITU-R BT.601 luma
    np.testing.assert_allclose(grey[:, 0].numpy(), bt601, atol=1.2e-4)  # 0.2989 vs 0.299 on R


def test_mnist_format_task_subsets(tmp_path: Path) -> None:
    ds = mnist_folder(tmp_path)
    task = load_image_task("mnist", ImageOptions(n_train=100, n_test=40), tmp_path, dataset=ds)
    assert task.input_shape == (1, 32, 32) and task.n_outputs == 10 and task.metric == "accuracy"
    assert (len(task.train), len(task.val), len(task.test)) == (100, 20, 20)
    assert torch.bincount(task.train.y).tolist() == [10] * 10
    assert torch.bincount(task.val.y).tolist() == [2] * 10 == torch.bincount(task.test.y).tolist()
    train_labels = read_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz")
    test_labels = read_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz")
    ids = (task.train.x[:, 0, 0, 0] * 255).round().long()  # top-left pixel survives the resize exactly
    assert len(set(ids.tolist())) == 100
    np.testing.assert_array_equal(train_labels[ids.numpy()], task.train.y.numpy())
    val_ids = set((task.val.x[:, 0, 0, 0] * 255).round().long().tolist())
    test_ids = (task.test.x[:, 0, 0, 0] * 255).round().long()
    assert not val_ids & set(test_ids.tolist())
    np.testing.assert_array_equal(test_labels[test_ids.numpy()], task.test.y.numpy())
    again = load_image_task("mnist", ImageOptions(n_train=100, n_test=40), tmp_path, dataset=ds)
    other = load_image_task("mnist", ImageOptions(n_train=100, n_test=40, data_seed=1), tmp_path, dataset=ds)
    assert torch.equal(task.train.x, again.train.x) and not torch.equal(task.train.x, other.train.x)
    with pytest.raises(ConfigError, match="task.mnist.n_train"):
        load_image_task("mnist", ImageOptions(n_train=300), tmp_path, dataset=ds)
    norm = load_image_task("mnist", ImageOptions(n_train=100, n_test=40, normalize=True), tmp_path, dataset=ds)
    assert abs(norm.train.x.mean().item()) < 1e-5 and abs(norm.train.x.std(unbiased=False).item() - 1) < 1e-4


def test_cifar_format_task_and_no_unpickling_before_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(8)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        write_cifar_batch(folder / name, rng.integers(0, 256, size=(20, 3072), dtype=np.uint8), np.tile(np.arange(10), 2))
    ds = manifest("cifar-10", folder, names, algorithm="md5")
    task = load_image_task("cifar10g", ImageOptions(n_train=60, n_test=20), tmp_path, dataset=ds)
    assert task.train.x.shape == (60, 1, 32, 32) and task.classes[0] == "airplane"
    flip_byte(folder / "test_batch", 100)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle.load called on an unverified file")

    monkeypatch.setattr(pickle, "load", forbidden)
    with pytest.raises(ChecksumError, match="test_batch"):
        load_image_task("cifar10g", ImageOptions(n_train=60, n_test=20), tmp_path, dataset=ds)


def test_affine_shift_and_rotation_exact_cases() -> None:
    x = torch.arange(2 * 36, dtype=torch.float32).reshape(2, 1, 6, 6)
    shifted = affine(x, torch.zeros(2), torch.tensor([[1.0, 0.0], [0.0, -2.0]]))
    expected = torch.zeros_like(x)
    expected[0, :, :, 1:] = x[0, :, :, :-1]
    expected[1, :, :-2, :] = x[1, :, 2:, :]
    torch.testing.assert_close(shifted, expected, atol=1e-5, rtol=0)
    turned = affine(x, torch.tensor([90.0, -90.0]), torch.zeros(2, 2))
    torch.testing.assert_close(turned[0], torch.rot90(x[0], -1, (-2, -1)), atol=1e-4, rtol=0)
    torch.testing.assert_close(turned[1], torch.rot90(x[1], 1, (-2, -1)), atol=1e-4, rtol=0)
    filled = affine(x, torch.zeros(2), torch.tensor([[1.0, 0.0], [1.0, 0.0]]), fill=-3.0)
    torch.testing.assert_close(filled[:, :, :, 0], torch.full((2, 1, 6), -3.0), atol=1e-5, rtol=0)


def test_random_affine_reproducible_and_bounded(tmp_path: Path) -> None:
    ds = mnist_folder(tmp_path)
    task = load_image_task("mnist", ImageOptions(n_train=100, n_test=40, augment=True), tmp_path, dataset=ds)
    assert isinstance(task.augment, RandomAffine)
    batch = task.train.x[:16]
    a = task.augment(batch, torch.Generator().manual_seed(3))
    b = task.augment(batch, torch.Generator().manual_seed(3))
    c = task.augment(batch, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == batch.shape and a.device == batch.device
    identity = RandomAffine(0.0, 0.0)(batch, torch.Generator().manual_seed(0))
    torch.testing.assert_close(identity, batch, atol=1e-5, rtol=0)
    assert load_image_task("mnist", ImageOptions(n_train=100, n_test=40), tmp_path, dataset=ds).augment is None


# ----------------------------------------------------------------------------- CLI
def test_cli_list_and_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    result = runner.invoke(data_cli, ["list", "--data-dir", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 0
    for name in ("bcw", "bhp", "wqc", "wqr", "mnist", "fmnist", "cifar10g", "spiral"):
        assert name in result.output
    assert "0/4 present" in result.output and "built in" in result.output

    ds = mnist_folder(tmp_path)
    monkeypatch.setitem(DATASETS, "mnist", ds)
    result = runner.invoke(data_cli, ["verify", "mnist", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0 and result.output.count("ok") == 4
    flip_byte(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz")
    result = runner.invoke(data_cli, ["verify", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "corrupt" in result.output and "missing" in result.output
    result = runner.invoke(data_cli, ["verify", "imagenet", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "imagenet" in result.output


def test_cli_download_from_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src.csv"
    src.write_text("1;2\n")
    toy = Dataset("toy", "toy", (DataFile("t.csv", sha256=sha256(src), url=src.as_uri()),))
    monkeypatch.setitem(DATASETS, "toy", toy)
    result = CliRunner().invoke(data_cli, ["download", "toy", "--data-dir", str(tmp_path / "root")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "root" / "toy" / "t.csv").read_text() == "1;2\n"


# ----------------------------------------------------------------------------- UCI text formats through load_task
def _write_housing(path: Path, rows: int = 60) -> np.ndarray:
    rng = np.random.default_rng(9)
    table = rng.normal(size=(rows, 14)) + 5
    table[:, -1] = table[:, 5] * 2 + rng.normal(scale=0.1, size=rows)  # MEDV follows RM
    path.write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in table) + "\n")
    return table


def test_auto_download_only_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "uci" / "housing.data"
    source.parent.mkdir()
    table = _write_housing(source)
    monkeypatch.setitem(
        DATASETS, "boston-housing",
        Dataset("boston-housing", "boston-housing", (DataFile("housing.data", sha256=sha256(source), url=source.as_uri()),)),
    )  # fmt: skip
    monkeypatch.delenv("TRAINLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(MissingDataError):
        load_task("bhp", data_dir=tmp_path / "explicit")  # a named folder is never written to
    assert not (tmp_path / "explicit").exists()
    task = load_task("bhp", corr_threshold=0.0, z_threshold=None)
    assert (tmp_path / "cache" / "trainlab" / "datasets" / "boston-housing" / "housing.data").is_file()
    y = torch.cat([task.train.y, task.val.y, task.test.y]).squeeze(1).numpy()
    np.testing.assert_allclose(np.sort(y), np.sort(table[:, -1]), atol=1e-5)
    assert (len(task.train), len(task.val), len(task.test)) == (42, 6, 12)


def test_housing_with_wrong_columns_is_a_format_error(tmp_path: Path) -> None:
    from trainlab.data.tabular import housing_table

    (tmp_path / "housing.data").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(FormatError, match="expected 14 columns"):
        housing_table(tmp_path / "housing.data")


def test_wine_csv_class_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainlab.data.tabular import WINE_COLUMNS

    folder = tmp_path / "wine-quality"
    folder.mkdir()
    rng = np.random.default_rng(10)
    quality = np.repeat([4, 5, 7], [20, 30, 10])  # 6 absent: classes are the scores present
    frame = pd.DataFrame(rng.normal(size=(60, 11)) + 3, columns=WINE_COLUMNS[:-1])
    frame["alcohol"] += quality
    frame["quality"] = quality
    for variant in ("red", "white"):
        frame.to_csv(folder / f"winequality-{variant}.csv", sep=";", index=False)
    monkeypatch.setitem(DATASETS, "wine-quality", manifest("wine-quality", folder, [
        "winequality-red.csv", "winequality-white.csv"]))  # fmt: skip
    task = load_task("wqc", data_dir=tmp_path, z_threshold=None)
    assert task.classes == ["4", "5", "7"] and task.n_outputs == 3
    assert task.preprocessing["source"]["class_mapping"] == {"4": 0, "5": 1, "7": 2}
    counts = sum(torch.bincount(s.y, minlength=3) for s in (task.train, task.val, task.test))
    assert counts.tolist() == [20, 30, 10]
    assert torch.bincount(task.train.y).tolist() == [14, 21, 7]
    assert "alcohol" in task.preprocessing["features"]


def test_registry_metadata_matches_loaded_task(tmp_path: Path) -> None:
    from trainlab.data import TASKS

    for name, options in (("spiral", {}), ("bcw", {})):
        task, entry = load_task(name, **options), TASKS.get(name)
        assert (entry.kind, entry.loss, entry.metric) == (task.kind, task.loss, task.metric)
    ds = mnist_folder(tmp_path)
    task = load_image_task("mnist", ImageOptions(n_train=100, n_test=40), tmp_path, dataset=ds)
    assert (TASKS.get("mnist").loss, TASKS.get("mnist").metric) == (task.loss, task.metric)


def test_default_drops_features_constant_after_filtering_and_clips_to_the_training_range() -> None:
    rng = np.random.default_rng(7)
    n = 300
    x = rng.normal(size=(n, 3))
    x[:, 2] = 0.0
    x[rng.choice(n, 12, replace=False), 2] = 1.0  # a rare binary feature: every 1 is a |z| > 3 outlier
    y = x[:, 0] + 2 * x[:, 2] + 0.1 * rng.normal(size=n)
    raw = RawTable(x, y, y, ["a", "b", "flag"], None, {})
    arrays, record = preprocess(raw, TabularOptions(corr_threshold=0), "regression")
    assert record["dropped_constant"] == ["flag"] and record["features"] == ["a", "b"]
    low, high = arrays["train"][0].min(axis=0), arrays["train"][0].max(axis=0)
    for split in ("val", "test"):
        assert (arrays[split][0] >= low).all() and (arrays[split][0] <= high).all()
    kept, record = preprocess(raw, TabularOptions(corr_threshold=0, constant_features="keep", clip=False), "regression")
    assert "flag" in record["features"] and record["clip_to_train_range"]["rows_clipped"] == {}
    train_flag = kept["train"][0][:, record["features"].index("flag")]
    assert np.ptp(train_flag) == 0  # what the default protects against


def test_outlier_rules_and_rare_classes() -> None:
    table = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])
    # Tukey: Q1 = 2, Q3 = 4, IQR = 2, fences [-1, 7]
    assert outlier_rows(table, "iqr", None, 1.5).tolist() == [False, False, False, False, True]
    z = np.abs(stats.zscore(table[:, 0]))
    assert outlier_rows(table, "z", 1.5, 1.5).tolist() == (z > 1.5).tolist()
    y = np.array([0] * 30 + [1] * 200 + [2] * 5)
    merged, names = merge_rare_classes(y, ["7", "8", "9"], 10)
    assert names == ["7", "8-9"] and merged.tolist() == [0] * 30 + [1] * 205


# ----------------------------------------------------------------------------- the thesis's own code (Morales Muñoz 2025)
def notebook_split_and_scale(
    frame: pd.DataFrame, features: list[str], parts: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> pd.DataFrame:
    """The standardisation loop of the thesis's notebooks (code/WQCLAS.ipynb, code/BHP.ipynb) transcribed:
    a StandardScaler per feature, fitted on the training rows, applied in place to train, val, then test."""
    df_c = frame.reset_index(drop=True).copy()
    train_idx, val_idx, test_idx = parts
    scaler = StandardScaler()
    for feat in features:
        df_c.loc[train_idx, feat] = scaler.fit_transform(df_c.loc[train_idx, [feat]])[:, 0]
        df_c.loc[val_idx, feat] = scaler.transform(df_c.loc[val_idx, [feat]])[:, 0]
        df_c.loc[test_idx, feat] = scaler.transform(df_c.loc[test_idx, [feat]])[:, 0]
    return df_c


def test_fastai_positional_split_draws_val_and_test_from_the_first_rows() -> None:
    """fastai's RandomSplitter returns positions (a permutation cut at int(valid_pct · len)); the notebook uses
    the second call's positions as row labels."""
    n = 1000
    train, val, test = fastai_positional_split(n, (0.7, 0.09, 0.21), numpy_generator(3, "t"))
    cut = int(0.3 * n)
    assert len(train) == n - cut and len(test) == int(0.7 * cut) and len(val) == cut - int(0.7 * cut)
    assert sorted(np.concatenate([val, test]).tolist()) == list(range(cut))  # the first 30 % of the rows
    assert len(np.unique(train)) == len(train) and train.min() >= 0 and train.max() < n
    also = np.isin(test, train).mean()
    assert 0.6 < also < 0.8  # about f_train of the test rows are training rows too
    same = fastai_positional_split(n, (0.7, 0.09, 0.21), numpy_generator(3, "t"))
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), same))


def test_positional_scheme_standardises_in_place_like_the_notebook() -> None:
    rng = np.random.default_rng(11)
    n = 200
    x = np.column_stack([rng.normal(50, 10, n), rng.normal(0.5, 0.1, n)])
    y = x[:, 0] * 0.1 + rng.normal(size=n)
    raw = RawTable(x, y, y, ["a", "b"], None, {})
    options = TabularOptions(
        corr_threshold=0, pair_threshold=1, z_threshold=None, clip=False, split=(0.7, 0.09, 0.21),
        split_scheme="fastai-positional", data_seed=4,
    )
    arrays, record = preprocess(raw, options, "regression")
    parts = fastai_positional_split(n, options.split, numpy_generator(4, "tabular-split"))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y})
    expected = notebook_split_and_scale(frame, ["a", "b"], parts)
    for name, part in zip(("train", "val", "test"), parts):
        np.testing.assert_allclose(arrays[name][0], expected.loc[part, ["a", "b"]].to_numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(arrays[name][1], y[part])
    assert record["split"]["scheme"] == "fastai-positional" and not record["split"]["stratified"]
    assert record["split"]["rows_also_in_train"]["test"] == int(np.isin(parts[2], parts[0]).sum()) > 0
    twice = np.isin(parts[2], parts[0])  # a training row in the test split: ((x − m) / s − m) / s ≈ −m / s
    m, s = x[parts[0], 0].mean(), x[parts[0], 0].std()
    np.testing.assert_allclose(arrays["test"][0][twice, 0], ((x[parts[2][twice], 0] - m) / s - m) / s, rtol=1e-12)
    once, _ = preprocess(raw, dataclasses.replace(options, in_place_scaling=False), "regression")
    scaler = StandardScaler().fit(x[parts[0]])
    for name, part in zip(("train", "val", "test"), parts):
        np.testing.assert_allclose(once[name][0], scaler.transform(x[part]), rtol=1e-12, atol=1e-12)


def test_upper_z_side_and_features_dropped_by_name() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3))
    x[0, 0], x[1, 1] = 6.0, -6.0
    y = x[:, 2] + 0.1 * rng.normal(size=300)
    keep = (stats.zscore(np.column_stack([x, y])) < 3).all(axis=1)  # the notebook's rule, target included
    assert outlier_rows(np.column_stack([x, y]), "z", 3.0, 1.5, "upper").tolist() == (~keep).tolist()
    assert not outlier_rows(x[:, 1:2], "z", 3.0, 1.5, "upper")[1]  # a low value is never an outlier
    raw = RawTable(x, y, y, ["a", "b", "c"], None, {})
    options = TabularOptions(
        corr_threshold=0, pair_threshold=1, outlier_scope="all", z_side="upper", drop_features=("b",), clip=False,
    )
    _, record = preprocess(raw, options, "regression")
    assert record["features"] == ["a", "c"] and record["dropped_by_name"] == ["b"]
    z = stats.zscore(np.column_stack([x[:, [0, 2]], y]))
    assert record["outliers"]["rows_dropped_before_split"] == np.flatnonzero(~(z < 3).all(axis=1)).tolist()
    with pytest.raises(ConfigError) as err:
        preprocess(raw, TabularOptions(drop_features=("d",)), "regression")
    assert err.value.field == "drop_features" and "a, b, c" in err.value.allowed
    for field, bad in (("z_side", "lower"), ("split_scheme", "fastai"), ("drop_features", "b"), ("in_place_scaling", 1)):
        given: dict[str, object] = {field: bad}
        with pytest.raises(ConfigError) as err:
            TabularOptions(**given)  # type: ignore[arg-type]
        assert err.value.field == field
