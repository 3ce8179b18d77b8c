"""The ``diagnostics`` table of ``trainlab train`` and experiment files, validated into :class:`DiagnosticsConfig`.

Each diagnostic is switched on by its own sub-table (or ``true`` for its defaults) and runs on its own
schedule, at the start of training and after every ``every`` optimizer steps (generations for population
trainers)::

    [defaults.diagnostics]
    curvature = { every = 50, top_k = 3, trace = true }   # top-k Hessian eigenvalues (Lanczos), Hutch++ trace
    sharpness = { every = 10 }                            # λ_max against the stability limit 2(1+β)/lr
    ntk = { every = 100, top_k = 1, subset = 50 }         # largest eigenvalues of the empirical NTK
    gradient_norm = { every = 1 }                         # ‖∇f‖ in total and per layer
    subset = 512                                          # training samples of the objective (seeded draw)

Every measurement is of the objective the trainer minimises at that step (the loss with its dynamic weights
and the regulariser; :class:`~trainlab.diagnostics.objective.Objective`), on a fixed subset of the training
split drawn once from the run seed. Errors are one-line :class:`~trainlab.core.config.ConfigError` s naming
the key (``diagnostics.curvature.top_k``), the value and what is allowed, with a did-you-mean for typos.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainlab.core.config import ConfigError, check_choice, check_number, did_you_mean, from_mapping
from trainlab.diagnostics.gradients import GROUPINGS
from trainlab.models.batchnorm import check_bn_mode

DTYPES = ("float64", "float32")


def _check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(field, value, "true or false")


@dataclass(frozen=True)
class CurvatureRequest:
    """The ``top_k`` largest Hessian eigenvalues (Lanczos) and, with ``trace``, a Hutch++ estimate of tr H from
    ``trace_matvecs`` Hessian-vector products (Meyer et al. 2021); record ``curvature``."""

    every: int = 50
    top_k: int = 3
    trace: bool = False
    trace_matvecs: int = 30

    def __post_init__(self) -> None:
        check_number("every", self.every, low=1, integer=True)
        check_number("top_k", self.top_k, low=1, integer=True)
        _check_bool("trace", self.trace)
        check_number("trace_matvecs", self.trace_matvecs, low=6, integer=True)


@dataclass(frozen=True)
class SharpnessRequest:
    """λ_max of the Hessian against the stability limit of the trainer's update rule (Cohen et al. 2021);
    record ``sharpness``."""

    every: int = 50

    def __post_init__(self) -> None:
        check_number("every", self.every, low=1, integer=True)


@dataclass(frozen=True)
class NTKRequest:
    """The ``top_k`` largest eigenvalues of the empirical NTK Θ = J Jᵀ (Jacot et al. 2018) on the first ``subset``
    samples of the diagnostics subset (``trace_outputs``: summed over outputs); record ``ntk``."""

    every: int = 100
    top_k: int = 1
    subset: int = 50
    trace_outputs: bool = False

    def __post_init__(self) -> None:
        check_number("every", self.every, low=1, integer=True)
        check_number("top_k", self.top_k, low=1, integer=True)
        check_number("subset", self.subset, low=1, integer=True)
        _check_bool("trace_outputs", self.trace_outputs)


@dataclass(frozen=True)
class GradientNormRequest:
    """‖∇f‖₂ in total and per module (``by = "module"``) or parameter tensor; record ``gradient_norm``."""

    every: int = 1
    by: str = "module"

    def __post_init__(self) -> None:
        check_number("every", self.every, low=1, integer=True)
        check_choice("by", self.by, GROUPINGS)


REQUESTS: dict[str, type] = {
    "curvature": CurvatureRequest,
    "sharpness": SharpnessRequest,
    "ntk": NTKRequest,
    "gradient_norm": GradientNormRequest,
}
"""Diagnostic name → its request dataclass; the name is also the record name in ``RunResult.records``."""


@dataclass(frozen=True)
class DiagnosticsConfig:
    """Which diagnostics to record (``None``: off) and the settings they share: the training ``subset`` size
    (``None``: the whole training split), batch norm mode ``bn`` (``eval``: running statistics; ``batch``, alias
    ``train``: the subset's own), the ``dtype`` of the computation and the Lanczos tolerance ``tol`` (relative residual)."""

    curvature: CurvatureRequest | None = None
    sharpness: SharpnessRequest | None = None
    ntk: NTKRequest | None = None
    gradient_norm: GradientNormRequest | None = None
    subset: int | None = 1000
    bn: str = "eval"
    dtype: str = "float64"
    tol: float = 1e-6

    def __post_init__(self) -> None:
        if self.subset is not None:
            check_number("subset", self.subset, low=1, integer=True)
        object.__setattr__(self, "bn", check_bn_mode(self.bn))
        check_choice("dtype", self.dtype, DTYPES)
        check_number("tol", self.tol, low=0, low_open=True)

    @property
    def requests(self) -> dict[str, Any]:
        """The diagnostics switched on: name → request."""
        return {name: getattr(self, name) for name in REQUESTS if getattr(self, name) is not None}

    def to_dict(self) -> dict[str, Any]:
        """Every setting with its default filled in (diagnostics that are off left out; ``{}`` when none is on):
        the form a run's identity is computed from."""
        if not self.requests:
            return {}
        out: dict[str, Any] = {name: dataclasses.asdict(request) for name, request in self.requests.items()}
        out.update(subset=self.subset, bn=self.bn, dtype=self.dtype, tol=self.tol)
        return out


SETTINGS = ("subset", "bn", "dtype", "tol")


def diagnostics_config(options: Mapping[str, Any], where: str = "diagnostics") -> DiagnosticsConfig:
    """Validate a ``diagnostics`` table: each of :data:`REQUESTS` as a table of its options, ``true`` (its
    defaults) or ``false`` (off), plus the shared :data:`SETTINGS`."""
    if not isinstance(options, Mapping):
        raise ConfigError(where, options, "a table, e.g. { curvature = { every = 50 } }")
    allowed = [*REQUESTS, *SETTINGS]
    made: dict[str, Any] = {}
    for key, value in options.items():
        field = f"{where}.{key}"
        if key not in allowed:
            raise ConfigError(field, value, "a key among " + ", ".join(allowed) + did_you_mean(key, allowed))
        if key in SETTINGS:
            made[key] = value
        elif value is True:
            made[key] = REQUESTS[key]()
        elif isinstance(value, Mapping):
            made[key] = from_mapping(REQUESTS[key], value, where=field)
        elif value is not False:
            raise ConfigError(field, value, f"a table of {key} options, true (defaults) or false (off)")
    try:
        return DiagnosticsConfig(**made)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err.field}", err.value, err.allowed) from None
