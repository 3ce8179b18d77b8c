"""The :class:`RunResult` every trainer returns, with JSON persistence."""
from __future__ import annotations

import hashlib
import io
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
from trainlab.core.config import ConfigError

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
    model: torch.nn.Module | None = field(default=None, repr=False, compare=False)
    """The trained model with the selected weights loaded, when the result comes from ``fit`` in this
    process (``execute``, ``make_trainer(...).fit``); None for a loaded or stored result, whose weights
    are ``state_dict`` (rebuild with ``trainlab.models.build_model`` and ``load_state_dict``)."""

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to another process) without ``model``: the weights travel as ``state_dict``."""
        return {**self.__dict__, "model": None}

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
        data = self.to_dict()
        if self.state_dict is not None:
            buffer = io.BytesIO()
            torch.save(self.state_dict, buffer)
            blob = buffer.getvalue()
            _atomic_write(out / "model.pt", lambda f: f.write(blob))
            data["weights_sha256"] = hashlib.sha256(blob).hexdigest()
        text = json.dumps(data, indent=2, default=json_default)
        _atomic_write(out / "result.json", lambda f: f.write(text.encode()))
        return out / "result.json"

    @classmethod
    def load(cls, out_dir: str | Path, weights: bool = True) -> RunResult:
        """Read ``result.json`` (and ``model.pt``, verified against the digest the JSON records).

        Raises :class:`~trainlab.core.config.ConfigError` for a missing, truncated or foreign file."""
        out = Path(out_dir)
        path = out / "result.json"
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(data, dict):
                raise TypeError("the top level is not an object")
            digest = data.pop("weights_sha256", None)
            spending = data.pop("spending")
            spending.pop("sample_evals", None)
            result = cls(spending=Spending(**spending), **data)
        except OSError as err:
            raise ConfigError(str(path), None, f"a readable result.json ({err.strerror})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(str(path), None, f"a complete UTF-8 JSON result written by trainlab ({err})") from None
        except (TypeError, KeyError, AttributeError) as err:
            raise ConfigError(str(path), None, f"a result.json written by trainlab ({type(err).__name__}: {err})") from None
        if weights and (out / "model.pt").exists():
            result.state_dict = load_weights(out / "model.pt", digest)
        return result


def weights_digest(directory: str | Path) -> str | None:
    """The SHA-256 of ``model.pt`` recorded in ``directory/result.json`` (``None`` for older results)."""
    try:
        data = json.loads((Path(directory) / "result.json").read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    digest = data.get("weights_sha256") if isinstance(data, dict) else None
    return digest if isinstance(digest, str) else None


def load_weights(path: str | Path, digest: str | None) -> dict[str, Tensor]:
    """A saved state dict, refused unless its SHA-256 equals ``digest`` (when one was recorded) and it
    holds tensors only (``weights_only``: pickled code never runs)."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise ConfigError(str(path), None, f"readable weights ({err.strerror})") from None
    if digest is not None and hashlib.sha256(blob).hexdigest() != digest:
        raise ConfigError(
            str(path), f"sha256 {hashlib.sha256(blob).hexdigest()[:16]}...",
            f"the weights result.json records (sha256 {digest[:16]}...): the file was changed or damaged",
        )
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, refused pickle, ...: all mean unusable weights
        reason = " ".join(str(err).split())[:200]
        raise ConfigError(str(path), None, f"a complete torch state dict of tensors ({type(err).__name__}: {reason})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(str(path), type(state).__name__, "a state dict (parameter name -> tensor)")
    return state


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
