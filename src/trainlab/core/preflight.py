"""Checks made when a run or an experiment is planned, before any training: the device exists and the
output folder can be written (the data sets are checked by :func:`trainlab.data.preflight.check_data`).

Each check raises :class:`~trainlab.core.config.ConfigError` naming the field, the value and what is
allowed, so that a bad device or an unusable ``--out`` costs one line, not a trained run.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from trainlab.core.config import ConfigError

CUDA_BUILD_HINT = (
    "this torch build ({version}) has no CUDA support; install a CUDA build, e.g. "
    "pip install torch --index-url https://download.pytorch.org/whl/cu126 "
    "(https://pytorch.org/get-started/locally/), or run on the CPU (--device cpu; device = \"cpu\" in an experiment file)"
)


def check_device(device: Any, field: str = "device") -> torch.device:
    """The ``torch.device`` for ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``), refusing one this
    machine does not have."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not device:
        raise ConfigError(field, device, "auto, cpu, cuda or cuda:N")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(field, device, "auto, cpu, cuda or cuda:N") from None
    if parsed.type == "cpu":
        return parsed
    if parsed.type != "cuda":
        raise ConfigError(field, device, "auto, cpu, cuda or cuda:N")
    if torch.version.cuda is None:
        raise ConfigError(field, device, "cpu or auto: " + CUDA_BUILD_HINT.format(version=torch.__version__))
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError(field, device, "cpu or auto: no CUDA device is visible on this machine")
    if parsed.index is not None and parsed.index >= count:
        raise ConfigError(field, device, f"cuda:0 .. cuda:{count - 1} ({count} CUDA device(s) visible)")
    return parsed


def check_out_dir(path: Any, field: str = "--out") -> Path:
    """Create the folder ``path`` if needed and prove it writable (a probe file is created and removed)."""
    try:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".trainlab-probe-")
        os.close(fd)
        os.unlink(probe)
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(field, str(path), f"a folder that can be created and written ({reason})") from None
    return folder


def check_out_file(path: Any, field: str = "--out") -> Path:
    """A file path whose folder can be written (the folder is created if needed)."""
    try:
        file = Path(path)
        if file.is_dir():
            raise ConfigError(field, str(path), "a file path, not a folder")
    except ValueError as err:
        raise ConfigError(field, str(path), f"a file path that can be written ({err})") from None
    check_out_dir(file.parent if str(file.parent) else ".", field)
    return file
