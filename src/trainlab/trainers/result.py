"""The :class:`RunResult` every trainer returns, with JSON persistence."""
from __future__ import annotations

import json
import os
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from trainlab.core.budget import Spending

Status = Literal["ok", "diverged", "failed"]


@dataclass
class RunResult:
    """Outcome of one ``Trainer.fit``.

    ``history`` has one row per epoch (epoch 0 is the initial model) with train/val/test loss and metric
    and the cumulative spending; ``final`` holds the same metrics for the selected model (best validation
    loss, at ``best_epoch``); ``records`` holds what callbacks logged (diagnostics, lr values, ...).
    """

    status: Status
    history: list[dict[str, float]]
    final: dict[str, float]
    best_epoch: int
    spending: Spending
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    state_dict: dict[str, Tensor] | None = None

    @classmethod
    def failed(cls, config: dict[str, Any], environment: dict[str, Any], error: BaseException) -> RunResult:
        """The result of a run that raised ``error``: status ``failed`` with the traceback as message."""
        trace = "".join(traceback.format_exception(error))
        return cls(
            status="failed",
            history=[],
            final={},
            best_epoch=0,
            spending=Spending(),
            config=config,
            environment=environment,
            message=f"{type(error).__name__}: {error}\n{trace}",
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything but the weights, JSON-serialisable."""
        return {
            "status": self.status,
            "message": self.message,
            "best_epoch": self.best_epoch,
            "final": self.final,
            "spending": self.spending.to_dict(),
            "history": self.history,
            "records": self.records,
            "config": self.config,
            "environment": self.environment,
        }

    def save(self, out_dir: str | Path) -> Path:
        """Write ``result.json`` (and ``model.pt`` with the selected weights) atomically into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if self.state_dict is not None:
            _atomic_write(out / "model.pt", lambda f: torch.save(self.state_dict, f))
        text = json.dumps(self.to_dict(), indent=2, default=json_default)
        _atomic_write(out / "result.json", lambda f: f.write(text.encode()))
        return out / "result.json"

    @classmethod
    def load(cls, out_dir: str | Path, weights: bool = True) -> RunResult:
        out = Path(out_dir)
        data = json.loads((out / "result.json").read_text())
        spending = data.pop("spending")
        spending.pop("sample_evals", None)
        state = None
        if weights and (out / "model.pt").exists():
            state = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
        return cls(spending=Spending(**spending), state_dict=state, **data)


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback for tensors, NumPy scalars and paths."""
    if isinstance(obj, Tensor):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
