"""Readers for the raw formats: IDX (gzip or plain), CIFAR-10 python batches, the UCI text tables.

Readers take a path that the caller has already verified (see :mod:`trainlab.data.root`) and return
NumPy arrays; malformed content raises :class:`~trainlab.data.errors.FormatError`.
"""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainlab.data.errors import FormatError

# IDX type codes (LeCun's format description): third byte of the magic number.
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (``.gz`` or plain) as an array: magic ``00 00 <type> <ndim>``, big-endian sizes, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise FormatError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise FormatError(f"{path}: IDX header announces shape {shape} ({expected} bytes), found {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 python batch: images (N, 3, 32, 32) uint8 and labels (N,) int64.

    Each batch is a Python-2 pickle of a dict with ``b"data"`` (N × 3072, the R, G, B planes row by
    row) and ``b"labels"``. Only call this on a file whose checksum was verified.
    """
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")  # noqa: S301 - verified against the official md5 first
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise FormatError(f"{path}: not a CIFAR-10 batch (expected a dict with b'data' and b'labels')")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise FormatError(f"{path}: CIFAR-10 data has shape {data.shape} and {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def read_whitespace_table(path: Path, n_columns: int) -> np.ndarray:
    """A headerless whitespace-separated numeric table (UCI ``housing.data``) as float64 (N, n_columns)."""
    values = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if values.shape[1] != n_columns:
        raise FormatError(f"{path}: expected {n_columns} columns, found {values.shape[1]}")
    return values


def read_semicolon_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """A ``;``-separated CSV with a quoted header (UCI wine quality); the header must equal ``columns``."""
    frame = pd.read_csv(path, sep=";")
    if list(frame.columns) != columns:
        raise FormatError(f"{path}: expected columns {columns}, found {list(frame.columns)}")
    if not all(np.issubdtype(t, np.number) for t in frame.dtypes):
        raise FormatError(f"{path}: non-numeric values in columns {list(frame.columns[frame.dtypes == object])}")
    return frame
