"""What a run may spend (:class:`Budget`) and what it did spend (:class:`Spending`).

Counting conventions, the same for every trainer:

* ``forward_samples``: samples passed forward *for training* (mini-batches, line-search probes,
  fitness evaluations). Monitoring passes that only record the history are not counted.
* ``backward_samples``: samples back-propagated.
* ``sample_evals`` = ``forward_samples + backward_samples``: the unit of equal-compute comparisons.
* ``evals``: full-training-set fitness evaluations (population methods); gradient trainers leave it 0.
* ``steps``: optimizer steps (gradient methods) or generations (population methods).
* ``seconds``: wall time since the start of ``fit``, monitoring included, diagnostics callbacks
  (``TrainState.excluded_seconds``) excluded.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from trainlab.core.config import ConfigError, check_number

LIMITS = ("epochs", "steps", "evals", "sample_evals", "seconds")


@dataclass(frozen=True)
class Budget:
    """Stop when any of the given limits is reached; at least one must be given."""

    epochs: int | None = None
    steps: int | None = None
    evals: int | None = None
    sample_evals: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        given = {k: getattr(self, k) for k in LIMITS if getattr(self, k) is not None}
        if not given:
            raise ConfigError("budget", {}, "at least one of " + ", ".join(LIMITS))
        for key, value in given.items():
            check_number(f"budget.{key}", value, low=0, low_open=True, integer=key != "seconds")

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class Spending:
    """Exact counts of what a run spent (see the module docstring for the conventions)."""

    forward_samples: int = 0
    backward_samples: int = 0
    steps: int = 0
    evals: int = 0
    epochs: int = 0
    seconds: float = 0.0

    @property
    def sample_evals(self) -> int:
        return self.forward_samples + self.backward_samples

    def exhausted(self, budget: Budget) -> str | None:
        """Name of the first limit of ``budget`` that has been reached, or ``None``."""
        for key in LIMITS:
            limit = getattr(budget, key)
            if limit is not None and getattr(self, key) >= limit:
                return key
        return None

    def to_dict(self) -> dict[str, float]:
        out = dataclasses.asdict(self)
        out["sample_evals"] = self.sample_evals
        return out
