"""Warm start: a model's initial weights taken from an earlier run (Goodfellow et al. 2016 §8.7.4,
"initialising with a pre-trained model").

``init_from`` names the run whose *selected* weights are loaded after the model is built:

* a run folder written by ``trainlab train --out DIR`` (``DIR/model.pt``);
* ``EXPERIMENT_DIR/RUN_ID``: run ``RUN_ID`` of the experiment store ``EXPERIMENT_DIR/store.sqlite``;
* a bare 16-hex-digit ``RUN_ID``, looked up in every ``runs/*/store.sqlite`` under the working directory
  (``trainlab run``'s default location); it must be found in exactly one store.

The architecture must match exactly (same parameter and buffer names and shapes, batch-norm statistics
included); anything else is a :class:`~trainlab.config.ConfigError` naming the field.
"""
from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

import torch
from torch import Tensor, nn

from trainlab.core.config import ConfigError

RUN_ID = re.compile(r"^[0-9a-f]{16}$")


def _stored_weights(store_path: Path, run_id: str) -> bytes | None:
    """The ``torch.save`` bytes of run ``run_id`` in the experiment store's ``weights`` table
    (:class:`trainlab.experiments.store.ResultStore`), read-only."""
    with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT data FROM weights WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else bytes(row[0])


def _from_store(store_path: Path, run_id: str, field: str, value: str) -> dict[str, Tensor]:
    blob = _stored_weights(store_path, run_id)
    if blob is None:
        raise ConfigError(field, value, f"a run with saved weights in {store_path}")
    return dict(torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True))


def load_state(value: str, field: str = "init_from") -> dict[str, Tensor]:
    """The selected weights of the run ``value`` names (see the module docstring)."""
    path = Path(value)
    if path.is_dir() and (path / "model.pt").is_file():
        return dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
    if RUN_ID.match(path.name) and (path.parent / "store.sqlite").is_file():
        return _from_store(path.parent / "store.sqlite", path.name, field, value)
    if RUN_ID.match(value):
        stores = [s for s in sorted(Path("runs").glob("*/store.sqlite")) if _stored_weights(s, value) is not None]
        if len(stores) == 1:
            return _from_store(stores[0], value, field, value)
        where = "found in none" if not stores else f"found in {len(stores)}: " + ", ".join(map(str, stores))
        raise ConfigError(field, value, f"a run id in exactly one runs/*/store.sqlite ({where})")
    raise ConfigError(field, value, "a run folder with model.pt, EXPERIMENT_DIR/RUN_ID, or a run id under runs/")


@torch.no_grad()
def warm_start(model: nn.Module, value: str, field: str = "init_from") -> None:
    """Load the weights of run ``value`` into ``model`` (strict: names and shapes must match)."""
    state = load_state(value, field)
    own = model.state_dict()
    mismatched = sorted(
        set(own) ^ set(state) | {k for k in set(own) & set(state) if own[k].shape != state[k].shape}
    )
    if mismatched:
        raise ConfigError(
            field, value, f"a run of the same architecture (differs in {', '.join(mismatched[:3])}"
            + (", ..." if len(mismatched) > 3 else "") + ")"
        )
    model.load_state_dict(state)
