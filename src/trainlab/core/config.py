"""Validation helpers shared by every configuration dataclass.

Every bad value raises :class:`ConfigError`, whose message names the field, the value and what is
allowed, so that a typo in an experiment file or on the command line is reported before anything runs.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """``" (did you mean 'adam'?)"`` for the choices closest to ``name`` (``difflib.get_close_matches``,
    case-insensitive), or ``""`` when none is close."""
    names = list(choices)
    lowered = {c.lower(): c for c in names}
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(lowered[c]) for c in close) + "?)"


class ConfigError(ValueError):
    """A configuration value is invalid: ``field`` got ``value``; ``allowed`` says what is accepted."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: got {value!r}; allowed: {allowed}")


def check_choice(field: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(field, value, "one of " + ", ".join(map(str, allowed)))
    return value


def check_number(
    field: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> Any:
    """Return ``value`` if it is a finite number (an integer when asked) inside the given interval."""
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        raise ConfigError(field, value, kind + _interval(low, high, low_open, high_open))
    if integer and not -(2**63) <= value < 2**63:
        raise ConfigError(field, value, kind + _interval(low, high, low_open, high_open) + " within int64")
    if low is not None and (value < low or (low_open and value == low)):
        raise ConfigError(field, value, kind + _interval(low, high, low_open, high_open))
    if high is not None and (value > high or (high_open and value == high)):
        raise ConfigError(field, value, kind + _interval(low, high, low_open, high_open))
    return value


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is None and high is None:
        return ""
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f" in {left}{lo}, {hi}{right}"


def from_mapping(cls: type[T], options: Mapping[str, Any], where: str = "") -> T:
    """Build the dataclass ``cls`` from ``options``, rejecting unknown keys by name.

    ``where`` prefixes field names in errors (for example ``"trainer.adam"``).
    """
    fields = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    prefix = f"{where}." if where else ""
    for key in options:
        if key not in fields:
            allowed = "an option among " + ", ".join(sorted(fields)) + did_you_mean(key, fields)
            raise ConfigError(f"{prefix}{key}", options[key], allowed)
    try:
        return cls(**options)
    except ConfigError as err:
        if prefix and not err.field.startswith(prefix):
            raise ConfigError(prefix + err.field, err.value, err.allowed) from None
        raise


LATE_OPTION = {"identity": "when-set"}
"""Field metadata of an option added after run ids were first published, whose default keeps the earlier
behaviour: at that default it is left out of the run id (:func:`identity_view`), so stores keep their runs."""


def identity_view(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (the JSON-ready options of dataclass ``cls``) without the :data:`LATE_OPTION` fields that
    are at their default: the part of a run's options that enters its id."""
    late = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("identity") == LATE_OPTION["identity"]:
            assert f.default is not dataclasses.MISSING, f"late option {f.name} needs a plain default"
            late[f.name] = json.loads(json.dumps(f.default, default=str))
    return {k: v for k, v in values.items() if k not in late or json.loads(json.dumps(v, default=str)) != late[k]}
