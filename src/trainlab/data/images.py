"""Image tasks ``mnist``, ``fmnist``, ``cifar10g`` as in Morales Muñoz (2025, §6.2.2) and its code.

* Subsets drawn with a fixed ``data_seed``: ``n_train`` images (10,000) from the official training
  split and ``n_test`` (5,000) from the official test split, split half/half into validation and test.
  With ``balanced`` (the thesis's ``reduce_dataset``), every class gets the same number of images.
* Pixels scaled to [0, 1] (``ToTensor``); CIFAR-10 converted to one grey channel with the ITU-R
  BT.601 luma weights 0.2989 R + 0.587 G + 0.114 B (``torchvision.transforms.Grayscale``).
* 28×28 images shown at 32×32 by bilinear resizing with half-pixel centres (``transforms.Resize([32,
  32])`` on tensors, as in the thesis code) or, with ``resize="pad"``, by 2 pixels of zero padding
  (LeNet-5's original convention).
* Optional standardisation with the training split's pixel mean and std; optional on-device
  augmentation (random shifts and small rotations in one ``affine_grid``/``grid_sample`` call).

The uint8 → float conversion, grey conversion and resizing run vectorised on the target device and
the whole splits stay resident there.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.data.catalog import TaskEntry, register
from trainlab.data.errors import FormatError
from trainlab.data.formats import read_cifar_batch, read_idx
from trainlab.data.root import DATASETS, Dataset, require
from trainlab.data.task import Split, Task
from trainlab.data.tabular import check_bool
from trainlab.core.seeding import numpy_generator

SIZE = 32
GREY_WEIGHTS = (0.2989, 0.587, 0.114)
MNIST_CLASSES = [str(d) for d in range(10)]
FMNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


@dataclass(frozen=True)
class ImageOptions:
    """Options of the image tasks (defaults: Morales Muñoz 2025)."""

    n_train: int = 10000
    n_test: int = 5000
    """Drawn from the official test split, then halved into validation and test."""
    data_seed: int = 0
    balanced: bool = True
    resize: str = "bilinear"
    normalize: bool = False
    augment: bool = False
    max_shift: float = 2.0
    """Largest random shift in pixels, along each axis, when ``augment`` is on."""
    max_rotation: float = 10.0
    """Largest random rotation in degrees when ``augment`` is on."""

    def __post_init__(self) -> None:
        check_number("n_train", self.n_train, low=1, integer=True)
        check_number("n_test", self.n_test, low=2, integer=True)
        check_number("data_seed", self.data_seed, low=0, integer=True)
        for name in ("balanced", "normalize", "augment"):
            check_bool(name, getattr(self, name))
        check_choice("resize", self.resize, ["bilinear", "pad"])
        check_number("max_shift", self.max_shift, low=0, high=SIZE / 2)
        check_number("max_rotation", self.max_rotation, low=0, high=180)
        if self.balanced and self.n_train % 10:
            raise ConfigError("n_train", self.n_train, "a multiple of 10 (one share per class) when balanced")
        if self.n_test % (20 if self.balanced else 2):
            allowed = "a multiple of 20 when balanced (halved per class)" if self.balanced else "an even number"
            raise ConfigError("n_test", self.n_test, allowed)


def _subset(labels: np.ndarray, n: int, balanced: bool, rng: np.random.Generator, field: str) -> np.ndarray:
    """``n`` indices drawn without replacement; ``n / C`` per class when ``balanced``."""
    if not balanced:
        if n > len(labels):
            raise ConfigError(field, n, f"at most {len(labels)} (images available)")
        return np.sort(rng.choice(len(labels), size=n, replace=False))
    classes = np.unique(labels)
    share = n // len(classes)
    chosen = []
    for c in classes:
        pool = np.flatnonzero(labels == c)
        if share > len(pool):
            raise ConfigError(field, n, f"at most {len(classes) * min(np.bincount(labels))} when balanced")
        chosen.append(rng.choice(pool, size=share, replace=False))
    return np.sort(np.concatenate(chosen))


def _halve(labels: np.ndarray, idx: np.ndarray, balanced: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into two halves (per class when ``balanced``)."""
    groups = [idx[labels[idx] == c] for c in np.unique(labels[idx])] if balanced else [idx]
    first, second = [], []
    for group in groups:
        perm = rng.permutation(group)
        first.append(perm[: len(perm) // 2])
        second.append(perm[len(perm) // 2 :])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def to_float_images(images: np.ndarray, device: torch.device, resize: str) -> Tensor:
    """uint8 (N, H, W) or (N, 3, H, W) → float32 (N, 1, 32, 32) in [0, 1] on ``device``, vectorised."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    x = x.unsqueeze(1) if x.ndim == 3 else x
    x = x.to(torch.float32).div_(255.0)
    if x.shape[1] == 3:
        w = torch.tensor(GREY_WEIGHTS, dtype=x.dtype, device=device)
        x = torch.einsum("nchw,c->nhw", x, w).unsqueeze(1)
    h, w_ = x.shape[-2:]
    if (h, w_) != (SIZE, SIZE):
        if resize == "bilinear":
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        else:
            top, left = (SIZE - h) // 2, (SIZE - w_) // 2
            x = F.pad(x, (left, SIZE - w_ - left, top, SIZE - h - top))
    return x.contiguous()


def affine(x: Tensor, angles_deg: Tensor, shifts_px: Tensor, fill: float = 0.0) -> Tensor:
    """Rotate each image of ``x`` (B, C, H, W) about its centre by ``angles_deg`` (B,) then shift it by
    ``shifts_px`` (B, 2) = (dx right, dy down) pixels; bilinear sampling, outside pixels set to ``fill``.

    With the y axis pointing down, a positive angle turns the image clockwise as displayed.
    One ``affine_grid``/``grid_sample`` call: output(p) = input(R(−a)(p − t)).
    """
    b, _, h, w = x.shape
    a = torch.deg2rad(angles_deg.to(x.dtype))
    cos, sin = torch.cos(a), torch.sin(a)
    t = shifts_px.to(x.dtype) * torch.tensor([2.0 / w, 2.0 / h], dtype=x.dtype, device=x.device)
    rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # R(-a)
    theta = torch.cat([rot, -(rot @ t.unsqueeze(-1))], dim=-1)
    grid = F.affine_grid(theta, [b, x.shape[1], h, w], align_corners=False)
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill


@dataclass(frozen=True)
class RandomAffine:
    """Training-time augmentation: uniform shifts in ±``max_shift`` pixels and rotations in ±``max_rotation``°."""

    max_shift: float
    max_rotation: float
    fill: float = 0.0
    """Value of a blank (zero) pixel after the task's scaling, used outside the shifted image."""

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        b = x.shape[0]
        u = torch.rand(b, 3, generator=generator, device=generator.device).to(x.device) * 2 - 1
        return affine(x, u[:, 0] * self.max_rotation, u[:, 1:] * self.max_shift, self.fill)


def _read_idx_pair(paths: dict[str, Path], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(paths[f"{prefix}-images-idx3-ubyte.gz"])
    labels = read_idx(paths[f"{prefix}-labels-idx1-ubyte.gz"]).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise FormatError(f"{prefix}: expected IDX images (N, H, W) and N labels, got {images.shape}, {labels.shape}")
    return images, labels


def read_idx_dataset(paths: dict[str, Path]) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train images, labels), (test images, labels) of an MNIST-layout data set."""
    return _read_idx_pair(paths, "train"), _read_idx_pair(paths, "t10k")


def read_cifar_dataset(paths: dict[str, Path]) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train images, labels) from ``data_batch_1..5`` and (test images, labels) from ``test_batch``."""
    train = [read_cifar_batch(paths[f"data_batch_{i}"]) for i in range(1, 6)]
    test = read_cifar_batch(paths["test_batch"])
    return (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])), test


_READERS = {"mnist": read_idx_dataset, "fmnist": read_idx_dataset, "cifar10g": read_cifar_dataset}
_DATASET = {"mnist": "mnist", "fmnist": "fashion-mnist", "cifar10g": "cifar-10"}
_CLASSES = {"mnist": MNIST_CLASSES, "fmnist": FMNIST_CLASSES, "cifar10g": CIFAR10_CLASSES}


def load_image_task(
    name: str,
    options: ImageOptions,
    root: Path,
    device: str | torch.device = "cpu",
    *,
    download: bool = False,
    dataset: Dataset | None = None,
) -> Task:
    """Build image task ``name`` from the files of ``dataset`` (default: the official manifest) under ``root``."""
    device = torch.device(device)
    manifest = dataset or DATASETS[_DATASET[name]]
    paths = require(manifest, root, download=download)
    (train_x, train_y), (test_x, test_y) = _READERS[name](paths)
    rng = numpy_generator(options.data_seed, name, "subset")
    field = f"task.{name}"
    train_idx = _subset(train_y, options.n_train, options.balanced, rng, f"{field}.n_train")
    pool = _subset(test_y, options.n_test, options.balanced, rng, f"{field}.n_test")
    val_idx, test_idx = _halve(test_y, pool, options.balanced, rng)

    splits = {
        "train": (train_x[train_idx], train_y[train_idx]),
        "val": (test_x[val_idx], test_y[val_idx]),
        "test": (test_x[test_idx], test_y[test_idx]),
    }
    tensors = {s: (to_float_images(x, device, options.resize), torch.as_tensor(y, device=device)) for s, (x, y) in splits.items()}
    mean, std = 0.0, 1.0
    if options.normalize:
        mean = tensors["train"][0].mean().item()
        std = tensors["train"][0].std(unbiased=False).item()
        tensors = {s: ((x - mean) / std, y) for s, (x, y) in tensors.items()}
    fill = (0.0 - mean) / std
    record = {
        "source": {"dataset": manifest.name, "files": [f.name for f in manifest.files]},
        "official_sizes": {"train": int(len(train_y)), "test": int(len(test_y))},
        "subset": {
            "data_seed": options.data_seed,
            "balanced": options.balanced,
            "train_from": "official train split",
            "val_test_from": "official test split, halved" + (" per class" if options.balanced else ""),
            "sizes": {s: int(len(t[1])) for s, t in tensors.items()},
            "train_indices_sha256": _indices_digest(train_idx),
            "val_indices_sha256": _indices_digest(val_idx),
            "test_indices_sha256": _indices_digest(test_idx),
        },
        "scaling": "uint8 / 255",
        "grey": {"weights_rgb": list(GREY_WEIGHTS)} if name == "cifar10g" else None,
        "resize": {"from": list(train_x.shape[-2:]), "to": [SIZE, SIZE], "method": options.resize},
        "normalize": {"enabled": options.normalize, "mean": mean, "std": std},
        "augment": {"enabled": options.augment, "max_shift_px": options.max_shift,
                    "max_rotation_deg": options.max_rotation, "fill": fill},
    }  # fmt: skip
    return Task(
        name=name,
        kind="classification",
        train=Split(*tensors["train"]),
        val=Split(*tensors["val"]),
        test=Split(*tensors["test"]),
        n_outputs=len(_CLASSES[name]),
        loss="cross_entropy",
        metric="accuracy",
        classes=list(_CLASSES[name]),
        preprocessing=record,
        augment=RandomAffine(options.max_shift, options.max_rotation, fill) if options.augment else None,
    )


def _indices_digest(idx: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(idx, dtype="<i8").tobytes()).hexdigest()


def _builder(name: str):  # noqa: ANN202
    def build(options: ImageOptions, root: Path, device: torch.device, download: bool) -> Task:
        return load_image_task(name, options, root, device, download=download)

    return build


_DESCRIPTIONS = {
    "mnist": "MNIST digits, 28×28 shown at 32×32",
    "fmnist": "Fashion-MNIST, 28×28 shown at 32×32",
    "cifar10g": "CIFAR-10 in one grey channel, 32×32",
}
for _name in ("mnist", "fmnist", "cifar10g"):
    register(TaskEntry(
        _name, _DESCRIPTIONS[_name], "classification", ImageOptions, _builder(_name), (_DATASET[_name],),
        "1×32×32", "10 classes", "accuracy",
    ))  # fmt: skip
