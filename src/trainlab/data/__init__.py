"""Data sets and tasks: ``load_task(name, ...)`` gives a :class:`Task` with resident tensors.

Tasks: ``bcw``, ``bhp``, ``wqc``, ``wqr`` (tabular), ``mnist``, ``fmnist``, ``cifar10g`` (images),
``spiral`` (generated), ``adding``, ``copy``, ``reber`` (generated sequences) and ``smnist``
(sequential MNIST). See ``docs/data.md`` and ``docs/recurrent.md``.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import torch

from trainlab.core.config import ConfigError, from_mapping, identity_view
from trainlab.core.preflight import check_device
from trainlab.data import images, sequences, spiral, tabular  # noqa: F401 - registers the tasks
from trainlab.data.catalog import TASKS, TaskEntry
from trainlab.data.errors import ChecksumError, DataError, FormatError, MissingDataError
from trainlab.data.root import DATASETS, data_root, download_dataset, file_status, resolve_root
from trainlab.data.task import Split, Task

__all__ = [
    "DATASETS",
    "TASKS",
    "ChecksumError",
    "DataError",
    "FormatError",
    "MissingDataError",
    "Split",
    "Task",
    "TaskEntry",
    "data_root",
    "datasets_for",
    "download",
    "load_task",
    "resolve_device",
    "task_config",
    "task_identity",
    "task_inventory",
    "task_options",
    "verify_datasets",
]


def task_options(name: str, **options: Any) -> Any:
    """The validated options dataclass of task ``name``; errors name ``task.<name>.<option>``."""
    return from_mapping(TASKS.get(name).options, options, where=f"task.{name}")


def task_config(name: str, **options: Any) -> dict[str, Any]:
    """Every option of task ``name`` with defaults filled in (JSON-ready), as a run records it."""
    opts = task_options(name, **options)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(opts).items()}


def task_identity(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a task's resolved options (:func:`task_config`) that enters a run's id: all of them but
    options added later (:data:`~trainlab.core.config.LATE_OPTION`) left at their default."""
    return identity_view(TASKS.get(name).options, config)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → ``cuda`` when available, else ``cpu``; a device this machine lacks raises ConfigError."""
    return check_device(device)


def load_task(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    download: bool | None = None,
    **options: Any,
) -> Task:
    """Load task ``name`` with its splits on ``device``.

    The data root is ``data_dir``, else ``$TRAINLAB_DATA``, else the user cache. Missing files are
    downloaded when ``download`` is true; by default (``None``) only into the user cache, never into a
    folder given explicitly. Raises :class:`~trainlab.core.config.ConfigError` for a bad name or option,
    :class:`MissingDataError` for absent files and :class:`ChecksumError` for corrupted ones.
    """
    entry = TASKS.get(name)
    opts = task_options(name, **options)
    root, source = resolve_root(data_dir)
    return entry.build(opts, root, resolve_device(device), source == "cache" if download is None else download)


def datasets_for(names: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Raw data set names for ``names`` (task or data set names; all data sets when empty)."""
    if not names:
        return list(DATASETS)
    out: list[str] = []
    for name in names:
        found = [name] if name in DATASETS else list(TASKS.get(name).datasets) if name in TASKS else None
        if found is None:
            allowed = "a task (" + ", ".join(TASKS.names()) + ") or a data set (" + ", ".join(DATASETS) + ")"
            raise ConfigError("data set", name, allowed)
        out += [d for d in found if d not in out]
    return out


def task_inventory(data_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """One row per task: name, kind, input shape, outputs, data sets and whether their files are present."""
    root = data_root(data_dir)
    rows = []
    for name in TASKS.names():
        entry = TASKS.get(name)
        files = [(d, f.name) for d in entry.datasets for f in DATASETS[d].files]
        present = sum((root / DATASETS[d].folder / f).is_file() for d, f in files)
        rows.append({
            "task": name,
            "kind": entry.kind,
            "input": entry.input_shape,
            "outputs": entry.outputs,
            "description": entry.description,
            "datasets": list(entry.datasets),
            "files_present": present,
            "files_expected": len(files),
        })  # fmt: skip
    return rows


def verify_datasets(
    names: list[str] | tuple[str, ...] = (), data_dir: str | os.PathLike[str] | None = None
) -> dict[str, dict[str, str]]:
    """``{data set: {file: "ok" | "missing" | "corrupt"}}``, checking every present file's digest."""
    root = data_root(data_dir)
    return {d: dict(file_status(root, DATASETS[d])) for d in datasets_for(names)}


def download(
    names: list[str] | tuple[str, ...] = (), data_dir: str | os.PathLike[str] | None = None
) -> dict[str, dict[str, str]]:
    """Download the missing files of the data sets behind ``names`` into the data root, then verify."""
    root = data_root(data_dir)
    return {d: dict(download_dataset(DATASETS[d], root)) for d in datasets_for(names)}
