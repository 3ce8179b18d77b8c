"""Readable names of the cells of an experiment (the configurations without the seed).

A report groups runs by task × model × trainer label. Runs that share these three names can still
differ in other options (``model_options.width``, ``loss``, ``budget.epochs``, ``task_options.noise``,
...); :func:`name_cells` appends the options that tell them apart to the names, so that grouping by the
names is grouping by the full configuration (the store's ``config_id``), e.g. ``spiral-mlp(width=1000)``
or ``sgd(loss=mse)``. Options that never vary inside a task × model × label group (such as the learning
rate that comes with a trainer label, or a budget set per task) are left out, and so are options that the
other shown options determine (a budget or a period that comes with each loss), so names stay short.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import pandas as pd

from trainlab.core.config import ConfigError

PARTS = ("task", "model", "label")
_SPEC_COLUMNS = ("trainer", "loss", "device")
_PREFIX_PART = {"task_options.": "task", "model_options.": "model"}


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The columns of a runs frame that come from the run spec, except task, model and seed: ``trainer``,
    ``loss``, ``device`` and every dotted option column (``trainer_options.lr``, ``budget.epochs``, ...)."""
    return [c for c in runs.columns if c in _SPEC_COLUMNS or "." in str(c)]


def _part(column: str) -> str:
    """Which name an option belongs to: task options to the task, model options to the model, everything
    else (trainer and loss options, loss, budget, device) to the trainer label."""
    return next((part for prefix, part in _PREFIX_PART.items() if column.startswith(prefix)), "label")


def _short(column: str) -> str:
    head, _, rest = column.partition(".")
    return rest if head.endswith("_options") and rest else column


def _text(value: object) -> str | None:
    """An option value as it appears in a name; ``None`` for a missing value (left out of the name)."""
    if value is None or (isinstance(value, Real) and not isinstance(value, bool) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


_PRIMARY = ("trainer", "loss", "trainer_options.lr")


def _redundant(shown: dict[str, set[str]], texts: dict[str, pd.Series], keys: list[pd.Series]) -> list[str]:
    """Shown options that the other shown options already determine (e.g. a budget that comes with each
    loss): dropping them, one at a time, leaves as many distinct names. Options with fewer distinct values
    are tried first, ``trainer``, ``loss`` and the learning rate last, so that those stay in the names."""
    def distinct(columns: list[str]) -> int:
        frame = pd.concat([*keys, *(texts[c].fillna("\0") for c in columns)], axis=1)
        return len(frame.drop_duplicates())

    kept = list(shown)
    full = distinct(kept)
    order = sorted(kept, key=lambda c: (c in _PRIMARY, texts[c].nunique(dropna=False), c))
    dropped = []
    for column in order:
        rest = [c for c in kept if c != column]
        if distinct(rest) == full:
            kept = rest
            dropped.append(column)
    return dropped


def name_cells(runs: pd.DataFrame, *, ignore: Sequence[str] = ()) -> pd.DataFrame:
    """A copy of ``runs`` whose ``task``, ``model`` and ``label`` columns name the full configuration.

    An option column (:func:`config_columns`, minus ``ignore``) is shown in a name when it takes more than
    one value among runs that share the task (task options), the task and model (model options) or the
    task, model and label (all other options) and the other shown options do not determine it; it is then
    shown, as ``name(option=value, ...)``, on every run with that base name that has a value for it.
    Options are named without their ``*_options.`` prefix unless two shown options of one name would
    collide. If ``config_id`` is present and names still
    join different configurations (values that print alike), the label gets ``#<config_id>`` appended.
    ``ignore`` keeps columns out of the names, e.g. the swept axes of a contour plot.
    """
    missing = [c for c in PARTS if c not in runs.columns]
    if missing:
        raise ConfigError("runs", missing, "a runs frame with columns " + ", ".join(PARTS))
    out = runs.copy()
    columns = [c for c in config_columns(runs) if c not in ignore]
    texts = {c: pd.Series([_text(v) for v in runs[c]], index=runs.index, dtype=object) for c in columns}
    for depth, part in enumerate(PARTS, start=1):
        keys = [out[k].astype(str) for k in PARTS[:depth - 1]] + [runs[part].astype(str)]
        shown: dict[str, set[str]] = {}
        for column in (c for c in columns if _part(c) == part):
            count = texts[column].fillna("\0").groupby(keys).transform("nunique")
            bases = set(runs.loc[count > 1, part].astype(str))
            if bases:
                shown[column] = bases
        for column in _redundant(shown, texts, keys):
            del shown[column]
        short = {c: _short(c) for c in shown}
        if len(set(short.values())) < len(short):
            short = {c: c.removeprefix(f"{part}_options.") for c in shown}
        names = []
        for i, base in zip(runs.index, runs[part].astype(str)):
            options = [f"{short[c]}={texts[c][i]}" for c in sorted(shown)
                       if base in shown[c] and texts[c][i] is not None]
            names.append(f"{base}({', '.join(options)})" if options else base)
        out[part] = names
    if "config_id" in out.columns:
        clash = out.groupby(list(PARTS))["config_id"].transform("nunique") > 1
        out.loc[clash, "label"] = out.loc[clash, "label"] + "#" + out.loc[clash, "config_id"].astype(str).str[:8]
    return out
