"""Shared test set-up: one torch thread per process, and the data root pointed at shared/datasets."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if "TRAINLAB_DATA" not in os.environ and _SHARED.is_dir():
    os.environ["TRAINLAB_DATA"] = str(_SHARED)


@pytest.fixture(autouse=True)
def _seeded_global_rngs() -> None:
    """Every test starts from the same global RNG state, whatever ran before it."""
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def data_root() -> Path:
    """The real data root (shared/datasets); tests using it skip when it is absent."""
    value = os.environ.get("TRAINLAB_DATA", "")
    if not value:
        pytest.skip("raw data sets not found: TRAINLAB_DATA is not set")
    root = Path(value)
    if not root.is_dir():
        pytest.skip(f"raw data sets not found: TRAINLAB_DATA={root!s} is not a directory")
    return root


def require_dataset(root: Path, folder: str) -> Path:
    """``root/folder``, or skip the test with the reason when that data set is absent."""
    path = root / folder
    if not path.is_dir() or not any(path.iterdir()):
        pytest.skip(f"data set {folder!r} not found under the data root {root}")
    return path
