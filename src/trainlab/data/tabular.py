"""Tabular tasks ``bcw``, ``bhp``, ``wqc``, ``wqr``: the preprocessing of Morales Muñoz (2025,
§6.2.1), in two profiles.

``profile = "default"`` (leakage-free): every statistic is fitted on the training split only, in this order:

1. split 70/10/20 (train/validation/test), stratified by class for classification;
2. drop features whose |Pearson correlation| with the target is below ``corr_threshold``;
3. of each pair of remaining features with |correlation| above ``pair_threshold``, drop the one less
   correlated with the target (pairs taken from the most correlated down);
4. drop training rows that are outliers: any feature |z-score| above ``z_threshold`` (z = (x − mean) / std,
   ddof 0; ``outliers = "z"``) or outside [Q1 − k·IQR, Q3 + k·IQR] with k = ``iqr_factor`` (``"iqr"``);
5. drop features that are constant on the remaining training rows (``constant_features = "drop"``): after
   step 4 a rare binary feature (Boston's CHAS) can be constant in training, so no model can learn what it
   means, and a batch norm on the inputs divides its validation/test deviations by √ε (validation MSE 4e6);
6. standardise every split with the training mean and standard deviation (ddof 0), then clip validation and
   test features to the training range (``clip = true``): rows far outside what training saw are evaluated
   at the boundary instead of extrapolating a ReLU network linearly (bhp: 23 of 101 test rows have |z| > 3).

``profile = "thesis000"`` is the thesis's own pipeline as its text and the issue's reading of its code
describe it (``docs/reproductions/thesis000.md`` lists every choice the text leaves open): outliers are
removed from the whole data set before the split (z-score 3 for bcw and bhp over every column including the
target, as ``scipy.stats.zscore(df)``; Tukey's IQR rule, k = 1.5, over the features for wine), the feature
selection thresholds are 10 % for bcw (30 features) and 5 % for the others, nothing is clipped or dropped
for being constant, Wine Quality is red + white (6,497 rows) and, for ``wqc``, a quality level with fewer than
``min_class_rows`` = 10 rows joins its nearest level (quality 9, 5 rows, joins 8: 6 classes). Standardisation
statistics still come from the training split (fastai's ``Normalize`` fits on the training set).

Three options reproduce what the thesis's notebooks actually do (public repository eedduu/TFG,
``code/WQCLAS.ipynb``, ``code/WQREG.ipynb``, ``code/BHP.ipynb``) and are off in both profiles:
``drop_features`` (features removed by name first; the notebooks drop hand-picked lists), ``z_side = "upper"``
(the notebooks keep ``(stats.zscore(df) < 3).all(axis=1)``: only high values are outliers) and
``split_scheme = "fastai-positional"`` (:func:`fastai_positional_split`: validation and test drawn from the
first rows, most of them training rows too, standardised in place so that those rows are standardised twice).

An option left at ``None`` takes its profile's value; the resolved values are recorded in
``Task.preprocessing`` with everything decided or fitted.

``metrics`` (either profile; default ``whole``) says how the headline metric is computed: on each whole split,
or (``batch-mean``) per batch of ``eval_batch_size`` rows in the split's row order (the data file's order),
weighted by batch size, as fastai's ``AvgMetric`` reports a metric given as a plain function (Howard & Gugger
2020) and so as the thesis's gradient tables print it. It changes neither the data nor the training; the task
records it as ``metric_protocol``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from trainlab.core.config import LATE_OPTION, ConfigError, check_choice, check_number
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


PROFILES = ("default", "thesis000")
OUTLIER_RULES = ("z", "iqr", "none")
Z_SIDES = ("both", "upper")
SPLIT_SCHEMES = ("random", "fastai-positional")
OUTLIER_SCOPES = ("train", "all")
CONSTANT_FEATURES = ("drop", "keep")
METRIC_PROTOCOLS = ("whole", "batch-mean")


@dataclass(frozen=True)
class TabularOptions:
    """Preprocessing options of the tabular tasks (see the module docstring; ``None``: the profile's value)."""

    profile: str = "default"
    corr_threshold: float | None = None
    pair_threshold: float = 0.9
    outliers: str | None = None
    """``z``, ``iqr`` or ``none``."""
    outlier_scope: str | None = None
    """``train``: training rows only; ``all``: the whole data set before the split (Morales Muñoz 2025)."""
    z_threshold: float | None = 3.0
    """``None`` keeps every row (as ``outliers = "none"``)."""
    iqr_factor: float = 1.5
    constant_features: str | None = None
    clip: bool | None = None
    min_class_rows: int | None = None
    standardize: bool = True
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    data_seed: int = 0
    metrics: str = "whole"
    """``whole``: the metric on each whole split; ``batch-mean``: per batch of ``eval_batch_size`` rows in the
    split's (data-file) order, weighted by batch size, as fastai's ``AvgMetric`` (the thesis's tables)."""
    eval_batch_size: int = 64
    """Rows per evaluation batch under ``metrics = "batch-mean"`` (fastai evaluates with the training batch size)."""
    drop_features: tuple[str, ...] = field(default=(), metadata=LATE_OPTION)
    """Features removed by name before anything else (the thesis's code drops hand-picked lists)."""
    z_side: str = field(default="both", metadata=LATE_OPTION)
    """``both``: a z-score outlier has |z| > ``z_threshold``; ``upper``: z ≥ ``z_threshold`` (the thesis's code
    keeps ``stats.zscore(df) < 3``, so low values are never outliers)."""
    split_scheme: str = field(default="random", metadata=LATE_OPTION)
    """``random``: :func:`split_indices`; ``fastai-positional``: the thesis's code (:func:`fastai_positional_split`,
    validation and test rows drawn from the first rows, standardised in place)."""
    in_place_scaling: bool = field(default=True, metadata=LATE_OPTION)
    """With ``fastai-positional``: standardise in place as the notebooks do (a training row that is also a
    validation or test row is standardised twice); ``False`` standardises every row once."""

    def __post_init__(self) -> None:
        check_choice("profile", self.profile, PROFILES)
        check_choice("z_side", self.z_side, Z_SIDES)
        check_choice("split_scheme", self.split_scheme, SPLIT_SCHEMES)
        drop = self.drop_features
        if isinstance(drop, str) or not isinstance(drop, Sequence) or not all(isinstance(f, str) for f in drop):
            raise ConfigError("drop_features", drop, "a list of feature names")
        object.__setattr__(self, "drop_features", tuple(drop))
        check_bool("in_place_scaling", self.in_place_scaling)
        check_choice("metrics", self.metrics, METRIC_PROTOCOLS)
        check_number("eval_batch_size", self.eval_batch_size, low=1, integer=True)
        if self.corr_threshold is not None:
            check_number("corr_threshold", self.corr_threshold, low=0, high=1)
        check_number("pair_threshold", self.pair_threshold, low=0, high=1)
        if self.outliers is not None:
            check_choice("outliers", self.outliers, OUTLIER_RULES)
        if self.outlier_scope is not None:
            check_choice("outlier_scope", self.outlier_scope, OUTLIER_SCOPES)
        if self.z_threshold is not None:
            check_number("z_threshold", self.z_threshold, low=0, low_open=True)
        check_number("iqr_factor", self.iqr_factor, low=0, low_open=True)
        if self.constant_features is not None:
            check_choice("constant_features", self.constant_features, CONSTANT_FEATURES)
        if self.clip is not None:
            check_bool("clip", self.clip)
        if self.min_class_rows is not None:
            check_number("min_class_rows", self.min_class_rows, low=0, integer=True)
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
    """Tabular options plus the wine ``variant`` (``white``: 4,898 rows; ``red``: 1,599; ``both``: 6,497;
    ``None``: white by default, both under thesis000)."""

    variant: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variant is not None:
            check_choice("variant", self.variant, ["white", "red", "both"])


@dataclass(frozen=True)
class Resolved:
    """The preprocessing actually applied: every ``None`` option replaced by its profile's value."""

    corr_threshold: float
    pair_threshold: float
    outliers: str
    outlier_scope: str
    z_threshold: float | None
    iqr_factor: float
    constant_features: str
    clip: bool
    min_class_rows: int
    standardize: bool
    split: tuple[float, float, float]
    data_seed: int
    profile: str
    drop_features: tuple[str, ...] = ()
    z_side: str = "both"
    split_scheme: str = "random"
    in_place_scaling: bool = True


def resolve_options(task: str, options: TabularOptions) -> Resolved:
    """Fill the options left at ``None`` with the values of ``options.profile`` for ``task``."""
    thesis = options.profile == "thesis000"
    wine = task in ("wqc", "wqr")
    profile: dict[str, Any] = {
        "corr_threshold": 0.1 if thesis and task == "bcw" else 0.05,
        "outliers": "iqr" if thesis and wine else "z",
        "outlier_scope": "all" if thesis else "train",
        "constant_features": "keep" if thesis else "drop",
        "clip": not thesis,
        "min_class_rows": 10 if thesis and task == "wqc" else 0,
    }
    given = {k: getattr(options, k) for k in profile if getattr(options, k) is not None}
    values = {**profile, **given}
    if options.z_threshold is None and values["outliers"] == "z":
        values["outliers"] = "none"
    return Resolved(
        pair_threshold=options.pair_threshold, z_threshold=options.z_threshold, iqr_factor=options.iqr_factor,
        standardize=options.standardize, split=options.split, data_seed=options.data_seed,
        profile=options.profile, drop_features=options.drop_features, z_side=options.z_side,
        split_scheme=options.split_scheme, in_place_scaling=options.in_place_scaling, **values,
    )


def outlier_rows(
    table: np.ndarray, rule: str, z_threshold: float | None, iqr_factor: float, z_side: str = "both"
) -> np.ndarray:
    """Boolean mask of the rows of ``table`` (N, F) that are outliers under ``rule`` (z, iqr or none).

    z: any |x − mean| / std > ``z_threshold`` (ddof 0; constant columns never count), or with
    ``z_side = "upper"`` any (x − mean) / std ≥ ``z_threshold`` (the complement of the thesis's
    ``(stats.zscore(df) < 3).all(axis=1)``);
    iqr: any value outside [Q1 − k·IQR, Q3 + k·IQR] with k = ``iqr_factor`` (linear quantiles, as pandas).
    """
    if rule == "none" or len(table) == 0:
        return np.zeros(len(table), dtype=bool)
    if rule == "z":
        assert z_threshold is not None
        std = table.std(axis=0)
        z = (table - table.mean(axis=0)) / np.where(std > 0, std, 1.0)
        if z_side == "upper":
            return np.asarray((z >= z_threshold).any(axis=1))
        return np.asarray((np.abs(z) > z_threshold).any(axis=1))
    q1, q3 = np.quantile(table, 0.25, axis=0), np.quantile(table, 0.75, axis=0)
    iqr = q3 - q1
    return np.asarray(((table < q1 - iqr_factor * iqr) | (table > q3 + iqr_factor * iqr)).any(axis=1))


def merge_rare_classes(y: np.ndarray, classes: list[str], min_rows: int) -> tuple[np.ndarray, list[str]]:
    """Join each class with fewer than ``min_rows`` rows to an adjacent level (the more populous of the two,
    the lower on a tie), repeatedly from the rarest; returns the new indices and the class names (``"8-9"``)."""
    groups = [[c] for c in classes]
    members = [[i] for i in range(len(classes))]
    counts = [int((y == i).sum()) for i in range(len(classes))]
    while len(groups) > 1:
        rare = min(range(len(groups)), key=lambda g: (counts[g], g))
        if counts[rare] >= min_rows:
            break
        neighbours = [g for g in (rare - 1, rare + 1) if 0 <= g < len(groups)]
        into = min(neighbours, key=lambda g: (-counts[g], g)) if len(neighbours) > 1 else neighbours[0]
        lo, hi = sorted((rare, into))
        groups[lo], members[lo], counts[lo] = groups[lo] + groups[hi], members[lo] + members[hi], counts[lo] + counts[hi]
        del groups[hi], members[hi], counts[hi]
    index = np.empty(len(classes), dtype=np.int64)
    for new, old in enumerate(members):
        index[old] = new
    names = [g[0] if len(g) == 1 else f"{g[0]}-{g[-1]}" for g in groups]
    return index[y], names


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


def fastai_positional_split(
    n: int, fractions: Sequence[float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The split of the thesis's notebooks (Morales Muñoz 2025, code/WQCLAS.ipynb and siblings), positions in
    ``range(n)``: ``RandomSplitter(valid_pct=f_val + f_test)(range_of(df))`` then
    ``RandomSplitter(valid_pct=f_test / (f_val + f_test))(val_test_idx)``.

    fastai's ``RandomSplitter`` returns positions into what it is given (a permutation cut at
    ``int(valid_pct · len)``, Howard & Gugger 2020), so the second call returns positions into
    ``val_test_idx``, which the notebook then uses as row labels: validation and test rows are drawn from the
    first ``int((f_val + f_test) · n)`` rows of the table, and about ``f_train`` of them are training rows too.
    Train, validation and test come back in the permutations' order (the notebook's test rows keep it).
    """
    perm = rng.permutation(n)
    cut = int((1.0 - fractions[0]) * n)
    train = perm[cut:]
    perm2 = rng.permutation(cut)
    cut2 = int(fractions[2] / (fractions[1] + fractions[2]) * cut)
    return train, perm2[cut2:], perm2[:cut2]


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
    options: TabularOptions | Resolved,
    kind: Literal["classification", "regression"],
    task: str = "",
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """Split and preprocess ``raw`` (options resolved for ``task``); returns ``{split: (x, y)}`` and the
    JSON-serialisable record."""
    if isinstance(options, TabularOptions):
        options = resolve_options(task, options)
    if options.drop_features:
        unknown = [f for f in options.drop_features if f not in raw.features]
        if unknown:
            raise ConfigError("drop_features", unknown[0], f"feature names of this task: {', '.join(raw.features)}")
        columns_kept = [j for j, f in enumerate(raw.features) if f not in options.drop_features]
        raw = dataclasses.replace(raw, x=raw.x[:, columns_kept], features=[raw.features[j] for j in columns_kept])
    rows = np.arange(len(raw.y))
    rule = (options.outliers, options.z_threshold, options.iqr_factor, options.z_side)
    dropped_before_split: list[int] = []
    if options.outlier_scope == "all":
        columns = raw.x if options.outliers == "iqr" else np.column_stack([raw.x, raw.corr_target])
        outlier = outlier_rows(columns, *rule)
        dropped_before_split = [int(i) for i in rows[outlier]]
        rows = rows[~outlier]
    rng = numpy_generator(options.data_seed, "tabular-split")
    positional = options.split_scheme == "fastai-positional"
    strata = raw.y[rows] if kind == "classification" and not positional else None
    parts = (
        fastai_positional_split(len(rows), options.split, rng)
        if positional
        else split_indices(len(rows), options.split, rng, strata)
    )
    idx = {s: rows[i] for s, i in zip(("train", "val", "test"), parts)}
    x_train, t_train = raw.x[idx["train"]], raw.corr_target[idx["train"]]
    names = raw.features

    corr = target_correlations(x_train, t_train)
    keep = [j for j in range(len(names)) if abs(corr[j]) >= options.corr_threshold]
    low = {names[j]: float(corr[j]) for j in range(len(names)) if j not in keep}

    pairs = []
    if len(keep) > 1:
        with np.errstate(invalid="ignore", divide="ignore"):  # a constant column: r = nan, taken as 0
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
    if options.outlier_scope == "train":
        outlier = outlier_rows(x_train, *rule)
        rows_dropped = [int(i) for i in idx["train"][outlier]]
        idx["train"] = idx["train"][~outlier]
        x_train = x_train[~outlier]

    constant: list[str] = []
    if options.constant_features == "drop" and len(x_train):
        flat = np.ptp(x_train, axis=0) == 0
        constant = [names[j] for j, c in zip(keep, flat) if c]
        keep = [j for j, c in zip(keep, flat) if not c]
        x_train = x_train[:, ~flat]

    mean = x_train.mean(axis=0) if options.standardize else np.zeros(len(keep))
    std = x_train.std(axis=0) if options.standardize else np.ones(len(keep))
    std = np.where(std > 0, std, 1.0)
    kept_names = [names[j] for j in keep]
    if positional and options.in_place_scaling:
        # The notebook standardises in place, split after split, so a validation or test row that is also a
        # training row is standardised twice, in the training data too.
        work = raw.x[:, keep].astype(np.float64)
        for s in ("train", "val", "test"):
            work[idx[s]] = (work[idx[s]] - mean) / std
        out = {s: (work[i], raw.y[i]) for s, i in idx.items()}
    else:
        out = {s: ((raw.x[i][:, keep] - mean) / std, raw.y[i]) for s, i in idx.items()}
    clipped: dict[str, int] = {}
    if options.clip and len(x_train):
        low_b, high_b = out["train"][0].min(axis=0), out["train"][0].max(axis=0)
        for s in ("val", "test"):
            x, y = out[s]
            clipped[s] = int(((x < low_b) | (x > high_b)).any(axis=1).sum())
            out[s] = (np.clip(x, low_b, high_b), y)
    record: dict[str, Any] = {
        "source": raw.source,
        "profile": options.profile,
        "rows": int(len(raw.y)),
        "split": {
            "scheme": options.split_scheme,
            "in_place_scaling": bool(positional and options.in_place_scaling),
            "fractions": list(options.split),
            "data_seed": options.data_seed,
            "stratified": strata is not None,
            "sizes": {s: int(len(i)) for s, i in idx.items()},
            "rows_also_in_train": {s: int(np.isin(idx[s], idx["train"]).sum()) for s in ("val", "test")},
        },
        "dropped_by_name": list(options.drop_features),
        "features_in": list(names),
        "dropped_low_target_corr": {"threshold": options.corr_threshold, "features": low},
        "dropped_pair_corr": {"threshold": options.pair_threshold, "pairs": pairs},
        "dropped_constant": constant,
        "features": kept_names,
        "outliers": {
            "rule": options.outliers,
            "scope": options.outlier_scope,
            "z_threshold": options.z_threshold,
            "z_side": options.z_side,
            "iqr_factor": options.iqr_factor,
            "rows_dropped_before_split": dropped_before_split,
            "train_rows_dropped": rows_dropped,
        },
        "clip_to_train_range": {"enabled": options.clip, "rows_clipped": clipped},
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
    """Preprocess ``raw`` (``options`` resolved for task ``name``) and move the splits to ``device`` as
    float32 inputs and int64 / (N, 1) targets."""
    resolved = resolve_options(name, options)
    if kind == "classification" and raw.classes is not None and resolved.min_class_rows > 0:
        y, classes = merge_rare_classes(raw.y, raw.classes, resolved.min_class_rows)
        if classes != raw.classes:
            raw = dataclasses.replace(raw, y=y, classes=classes,
                                      source={**raw.source, "merged_classes": classes})
    arrays, record = preprocess(raw, resolved, kind, name)
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
        metric_batch_size=options.eval_batch_size if options.metrics == "batch-mean" else None,
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


def wine_table(paths: Path | Sequence[Path], classification: bool) -> RawTable:
    """Wine Quality: 11 features; ``quality`` as a value, or as a class index over its observed values.
    Several files (red, white) are stacked in the order given."""
    files = [paths] if isinstance(paths, Path) else list(paths)
    frame = pd.concat([read_semicolon_csv(p, WINE_COLUMNS) for p in files], ignore_index=True)
    x = frame[WINE_COLUMNS[:-1]].to_numpy(dtype=np.float64)
    quality = frame["quality"].to_numpy()
    source: dict[str, Any] = {"file": files[0].name} if len(files) == 1 else {"files": [p.name for p in files]}
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


def wine_variant(options: WineOptions) -> str:
    """The wine ``variant``: as given, else ``both`` under thesis000 and ``white`` by default."""
    if options.variant is not None:
        return options.variant
    return "both" if options.profile == "thesis000" else "white"


def _wine_builder(name: str, kind: Literal["classification", "regression"]):  # noqa: ANN202
    def build(options: WineOptions, root: Path, device: torch.device, download: bool) -> Task:
        paths = require(DATASETS["wine-quality"], root, download=download)
        variant = wine_variant(options)
        colours = ("red", "white") if variant == "both" else (variant,)
        raw = wine_table([paths[f"winequality-{c}.csv"] for c in colours], kind == "classification")
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
    "7 classes (white), 6 (red, and red + white under thesis000)", "balanced_accuracy",
))  # fmt: skip
register(TaskEntry(
    "wqr", "Wine Quality (UCI), quality as a number", "regression",
    WineOptions, _wine_builder("wqr", "regression"), ("wine-quality",), "11 raw features", "1 value", "r2",
))  # fmt: skip
