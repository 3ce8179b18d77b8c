"""Tabular tasks ``bcw``, ``bhp``, ``wqc``, ``wqr`` with thesis 000's preprocessing (§6.2.1).

Every statistic is fitted on the training split only, in this order, each step configurable:

1. split 70/10/20 (train/validation/test), stratified by class for classification;
2. drop features whose |Pearson correlation| with the target is below ``corr_threshold``;
3. of each pair of remaining features with |correlation| above ``pair_threshold``, drop the one less
   correlated with the target (pairs taken from the most correlated down);
4. drop training rows with any feature |z-score| above ``z_threshold`` (z = (x − mean) / std, ddof 0);
5. standardise every split with the training mean and standard deviation (ddof 0).

Everything decided or fitted is recorded in ``Task.preprocessing``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.data.catalog import TaskEntry, register
from trainlab.data.formats import read_semicolon_csv, read_whitespace_table
from trainlab.data.root import DATASETS, require
from trainlab.data.task import Split, Task
from trainlab.core.seeding import numpy_generator

HOUSING_COLUMNS = [
    "CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT", "MEDV",
]  # fmt: skip
WINE_COLUMNS = [
    "fixed acidity", "volatile acidity", "citric acid", "residual sugar", "chlorides", "free sulfur dioxide",
    "total sulfur dioxide", "density", "pH", "sulphates", "alcohol", "quality",
]  # fmt: skip


def check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(field, value, "true or false")


@dataclass(frozen=True)
class TabularOptions:
    """Preprocessing options of the tabular tasks (defaults from thesis 000)."""

    corr_threshold: float = 0.05
    pair_threshold: float = 0.9
    z_threshold: float | None = 3.0
    """``None`` keeps every training row."""
    standardize: bool = True
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_number("corr_threshold", self.corr_threshold, low=0, high=1)
        check_number("pair_threshold", self.pair_threshold, low=0, high=1)
        if self.z_threshold is not None:
            check_number("z_threshold", self.z_threshold, low=0, low_open=True)
        check_bool("standardize", self.standardize)
        check_number("data_seed", self.data_seed, low=0, integer=True)
        allowed = "three fractions in (0, 1) for train, val, test that sum to 1"
        split = self.split
        if not isinstance(split, Sequence) or isinstance(split, str) or len(split) != 3:
            raise ConfigError("split", split, allowed)
        for value in split:
            check_number("split", value, low=0, high=1, low_open=True, high_open=True)
        if abs(sum(split) - 1) > 1e-9:
            raise ConfigError("split", split, allowed)
        object.__setattr__(self, "split", tuple(float(v) for v in split))


@dataclass(frozen=True)
class WineOptions(TabularOptions):
    """Tabular options plus the wine ``variant`` (``white``: 4,898 rows; ``red``: 1,599 rows)."""

    variant: str = "white"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("variant", self.variant, ["white", "red"])


@dataclass
class RawTable:
    """A raw table: features ``x`` (N, F), target ``y`` (class index or value) and its numeric form."""

    x: np.ndarray
    y: np.ndarray
    corr_target: np.ndarray
    features: list[str]
    classes: list[str] | None
    source: dict[str, Any]


def _cut(n: int, fractions: Sequence[float]) -> tuple[int, int]:
    """Boundaries of the train and validation parts of ``n`` items (cumulative rounding, half up)."""
    a = int(np.floor(fractions[0] * n + 0.5))
    b = int(np.floor((fractions[0] + fractions[1]) * n + 0.5))
    return a, b


def split_indices(
    n: int,
    fractions: Sequence[float],
    rng: np.random.Generator,
    strata: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random train/val/test index sets; with ``strata``, each class is split in the same proportions.

    Within each stratum (or the whole set) a random permutation is cut at round(f_train·n) and
    round((f_train + f_val)·n), so every class keeps its share up to one sample per split.
    """
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == c) for c in np.unique(strata)]
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for group in groups:
        perm = group[rng.permutation(len(group))]
        a, b = _cut(len(group), fractions)
        for part, chunk in zip(parts, (perm[:a], perm[a:b], perm[b:])):
            part.append(chunk)
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    return train, val, test


def target_correlations(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``x`` with ``t``; 0 for a constant column."""
    xc = x - x.mean(axis=0)
    tc = t - t.mean()
    denom = np.sqrt((xc**2).sum(axis=0) * (tc**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * tc[:, None]).sum(axis=0) / denom
    return np.where(denom > 0, r, 0.0)


def preprocess(
    raw: RawTable,
    options: TabularOptions,
    kind: Literal["classification", "regression"],
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """Split and preprocess ``raw``; returns ``{split: (x, y)}`` and the JSON-serialisable record."""
    rng = numpy_generator(options.data_seed, "tabular-split")
    strata = raw.y if kind == "classification" else None
    idx = dict(zip(("train", "val", "test"), split_indices(len(raw.y), options.split, rng, strata)))
    x_train, t_train = raw.x[idx["train"]], raw.corr_target[idx["train"]]
    names = raw.features

    corr = target_correlations(x_train, t_train)
    keep = [j for j in range(len(names)) if abs(corr[j]) >= options.corr_threshold]
    low = {names[j]: float(corr[j]) for j in range(len(names)) if j not in keep}

    pairs = []
    if len(keep) > 1:
        cm = np.corrcoef(x_train[:, keep], rowvar=False)
        cm = np.nan_to_num(cm, nan=0.0)
        candidates = [
            (abs(cm[a, b]), keep[a], keep[b])
            for a in range(len(keep))
            for b in range(a + 1, len(keep))
            if abs(cm[a, b]) > options.pair_threshold
        ]
        alive = set(keep)
        for r, i, j in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
            if i in alive and j in alive:
                drop, kept = (j, i) if abs(corr[i]) >= abs(corr[j]) else (i, j)
                alive.discard(drop)
                pairs.append({"dropped": names[drop], "kept": names[kept], "abs_corr": float(r)})
        keep = [j for j in keep if j in alive]

    x_train = x_train[:, keep]
    rows_dropped: list[int] = []
    if options.z_threshold is not None and len(x_train):
        std = x_train.std(axis=0)
        z = (x_train - x_train.mean(axis=0)) / np.where(std > 0, std, 1.0)
        outlier = (np.abs(z) > options.z_threshold).any(axis=1)
        rows_dropped = [int(i) for i in idx["train"][outlier]]
        idx["train"] = idx["train"][~outlier]
        x_train = x_train[~outlier]

    mean = x_train.mean(axis=0) if options.standardize else np.zeros(len(keep))
    std = x_train.std(axis=0) if options.standardize else np.ones(len(keep))
    std = np.where(std > 0, std, 1.0)
    kept_names = [names[j] for j in keep]
    out = {s: ((raw.x[i][:, keep] - mean) / std, raw.y[i]) for s, i in idx.items()}
    record: dict[str, Any] = {
        "source": raw.source,
        "rows": int(len(raw.y)),
        "split": {
            "fractions": list(options.split),
            "data_seed": options.data_seed,
            "stratified": strata is not None,
            "sizes": {s: int(len(i)) for s, i in idx.items()},
        },
        "features_in": list(names),
        "dropped_low_target_corr": {"threshold": options.corr_threshold, "features": low},
        "dropped_pair_corr": {"threshold": options.pair_threshold, "pairs": pairs},
        "features": kept_names,
        "outliers": {"z_threshold": options.z_threshold, "train_rows_dropped": rows_dropped},
        "standardize": {
            "enabled": options.standardize,
            "mean": dict(zip(kept_names, map(float, mean))),
            "std": dict(zip(kept_names, map(float, std))),
        },
    }
    return out, record


def tabular_task(
    name: str,
    raw: RawTable,
    options: TabularOptions,
    kind: Literal["classification", "regression"],
    device: torch.device,
) -> Task:
    """Preprocess ``raw`` and move the splits to ``device`` as float32 inputs and int64 / (N, 1) targets."""
    arrays, record = preprocess(raw, options, kind)
    if raw.classes is not None and kind == "classification":
        record["classes"] = list(raw.classes)

    def to_split(x: np.ndarray, y: np.ndarray) -> Split:
        xt = torch.as_tensor(x, dtype=torch.float32, device=device)
        if kind == "classification":
            return Split(xt, torch.as_tensor(y, dtype=torch.int64, device=device))
        return Split(xt, torch.as_tensor(y, dtype=torch.float32, device=device).reshape(-1, 1))

    classification = kind == "classification"
    return Task(
        name=name,
        kind=kind,
        train=to_split(*arrays["train"]),
        val=to_split(*arrays["val"]),
        test=to_split(*arrays["test"]),
        n_outputs=len(raw.classes) if classification and raw.classes else 1,
        loss="cross_entropy" if classification else "mse",
        metric="balanced_accuracy" if classification else "r2",
        classes=list(raw.classes) if classification and raw.classes else None,
        preprocessing=record,
    )


def bcw_table() -> RawTable:
    """Breast Cancer Wisconsin (diagnostic) from scikit-learn: 569 × 30; class 0 malignant, 1 benign."""
    import sklearn
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    y = np.asarray(data.target, dtype=np.int64)
    return RawTable(
        x=np.asarray(data.data, dtype=np.float64),
        y=y,
        corr_target=y.astype(np.float64),
        features=[str(f) for f in data.feature_names],
        classes=[str(c) for c in data.target_names],
        source={"loader": "sklearn.datasets.load_breast_cancer", "sklearn": sklearn.__version__},
    )


def housing_table(path: Path) -> RawTable:
    """Boston Housing from the UCI ``housing.data``: 506 × 13 features, target MEDV."""
    values = read_whitespace_table(path, len(HOUSING_COLUMNS))
    return RawTable(
        x=values[:, :-1],
        y=values[:, -1],
        corr_target=values[:, -1],
        features=HOUSING_COLUMNS[:-1],
        classes=None,
        source={"file": path.name},
    )


def wine_table(path: Path, classification: bool) -> RawTable:
    """Wine Quality: 11 features; ``quality`` as a value, or as a class index over its observed values."""
    frame = read_semicolon_csv(path, WINE_COLUMNS)
    x = frame[WINE_COLUMNS[:-1]].to_numpy(dtype=np.float64)
    quality = frame["quality"].to_numpy()
    source: dict[str, Any] = {"file": path.name}
    if classification:
        levels = np.unique(quality)
        y = np.searchsorted(levels, quality).astype(np.int64)
        classes: list[str] | None = [str(int(q)) for q in levels]
        source["class_mapping"] = {str(int(q)): i for i, q in enumerate(levels)}
    else:
        y, classes = quality.astype(np.float64), None
    return RawTable(x, y, quality.astype(np.float64), WINE_COLUMNS[:-1], classes, source)


def _build_bcw(options: TabularOptions, root: Path, device: torch.device, download: bool) -> Task:
    return tabular_task("bcw", bcw_table(), options, "classification", device)


def _build_bhp(options: TabularOptions, root: Path, device: torch.device, download: bool) -> Task:
    paths = require(DATASETS["boston-housing"], root, download=download)
    return tabular_task("bhp", housing_table(paths["housing.data"]), options, "regression", device)


def _wine_builder(name: str, kind: Literal["classification", "regression"]):  # noqa: ANN202
    def build(options: WineOptions, root: Path, device: torch.device, download: bool) -> Task:
        paths = require(DATASETS["wine-quality"], root, download=download)
        raw = wine_table(paths[f"winequality-{options.variant}.csv"], kind == "classification")
        return tabular_task(name, raw, options, kind, device)

    return build


register(TaskEntry(
    "bcw", "Breast Cancer Wisconsin (scikit-learn), benign/malignant", "classification",
    TabularOptions, _build_bcw, (), "30 raw features", "2 classes", "balanced_accuracy",
))  # fmt: skip
register(TaskEntry(
    "bhp", "Boston Housing (UCI), median value MEDV", "regression",
    TabularOptions, _build_bhp, ("boston-housing",), "13 raw features", "1 value", "r2",
))  # fmt: skip
register(TaskEntry(
    "wqc", "Wine Quality (UCI), quality as a class", "classification",
    WineOptions, _wine_builder("wqc", "classification"), ("wine-quality",), "11 raw features",
    "7 classes (white), 6 (red)", "balanced_accuracy",
))  # fmt: skip
register(TaskEntry(
    "wqr", "Wine Quality (UCI), quality as a number", "regression",
    WineOptions, _wine_builder("wqr", "regression"), ("wine-quality",), "11 raw features", "1 value", "r2",
))  # fmt: skip
