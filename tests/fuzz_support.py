"""Mutations of shipped experiment files and bad ``train`` command lines, for the reliability fuzz tests.

Every mutation is deterministic (a ``random.Random`` seeded per case) and carries the oracle it must meet:

* ``same``: a change of form only (layout, comments, key order, a TOML round trip): the file must be
  accepted and expand to the very same runs;
* ``refuse``: a typo in a key or in a name (a misspelt option, trainer, label or match value): the file
  must be refused with a one-line :class:`~trainlab.core.config.ConfigError`, never silently accepted;
* ``either``: anything else (odd values, deleted keys, truncated or damaged bytes): accepted, or refused in
  one line; never a traceback, never a hang.
"""
from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FREE_TEXT = ("name", "description")
"""Keys whose string values are free text: a changed letter there is a different, valid, name."""

ODD_VALUES: list[Any] = [
    0, -1, 1, 2, 3, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30, 10_000_000, 1e300, -1e300, 1e-300, 5e-324,
    math.nan, math.inf, -math.inf, 0.5, 1e6, 1e7, "", "x", "auto", "cpu", "cuda", True, False, [], [1, 2],
    ["a"], {}, {"a": 1}, [[1]], "é\u0000",
]


@dataclass(frozen=True)
class Mutation:
    kind: str
    oracle: str  # "same" | "refuse" | "either"
    text: bytes
    where: str = ""


def dumps(data: dict[str, Any]) -> str:
    """A minimal TOML writer: scalars first, then ``[table]`` and ``[[array]]`` sections, nested tables inline."""
    head, body = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            body.append(f"[{_key(key)}]")
            body += [f"{_key(k)} = {_value(v)}" for k, v in value.items()]
            body.append("")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for table in value:
                body.append(f"[[{_key(key)}]]")
                body += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
                body.append("")
        else:
            head.append(f"{_key(key)} = {_value(value)}")
    return "\n".join(head + [""] + body) + "\n"


def _key(key: str) -> str:
    return json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(type(value).__name__)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value (tables and lists included) below ``node``."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append(path + (k,))
            out += _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append(path + (i,))
            out += _paths(v, path + (i,))
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _copy(data: Any) -> Any:
    return json.loads(json.dumps(data, allow_nan=True))


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path)


def _set_value(rng: random.Random, data: dict[str, Any], text: str) -> Mutation:
    data = _copy(data)
    path = rng.choice(_paths(data))
    value = rng.choice(ODD_VALUES)
    _get(data, path[:-1])[path[-1]] = value
    return Mutation("set-value", "either", dumps(data).encode(), f"{_dotted(path)} = {value!r}")


def _typo_key(rng: random.Random, data: dict[str, Any], text: str) -> Mutation:
    data = _copy(data)
    paths = [p for p in _paths(data) if isinstance(p[-1], str)]
    path = rng.choice(paths)
    parent = _get(data, path[:-1])
    renamed = {(k + "z" if k == path[-1] else k): v for k, v in parent.items()}
    parent.clear()
    parent.update(renamed)
    return Mutation("typo-key", "refuse", dumps(data).encode(), _dotted(path))


def _typo_name(rng: random.Random, data: dict[str, Any], text: str) -> Mutation:
    data = _copy(data)
    paths = [p for p in _paths(data) if isinstance(_get(data, p), str)]
    path = rng.choice(paths)
    keys = [p for p in path if isinstance(p, str)]
    _get(data, path[:-1])[path[-1]] = _get(data, path) + "z"
    free = keys[-1] in FREE_TEXT and keys[0] == "experiment"
    return Mutation("typo-name", "either" if free else "refuse", dumps(data).encode(), _dotted(path))


def _delete(rng: random.Random, data: dict[str, Any], text: str) -> Mutation:
    data = _copy(data)
    path = rng.choice(_paths(data))
    parent = _get(data, path[:-1])
    del parent[path[-1]]
    return Mutation("delete", "either", dumps(data).encode(), _dotted(path))


def _round_trip(rng: random.Random, data: dict[str, Any], text: str) -> Mutation:
    data = _copy(data)
    for node in [data] + [_get(data, p) for p in _paths(data)]:
        if isinstance(node, dict) and rng.random() < 0.5:
            items = list(node.items())
            rng.shuffle(items)
            if node is data:  # scalars must stay before the first table
                items.sort(key=lambda kv: isinstance(kv[1], (dict, list)))
            node.clear()
            node.update(items)
    return Mutation("round-trip", "same", dumps(data).encode())


def _layout(rng: random.Random, data: dict[str, Any], text: str) -> Mutation:
    lines = text.splitlines()
    out = []
    for line in lines:
        if rng.random() < 0.2:
            out.append(rng.choice(["", "# a comment", "   ", "\t# tab comment"]))
        out.append(line + (rng.choice(["", "  ", "  # trailing"]) if line and not line.lstrip().startswith("#")
                           and not line.rstrip().endswith(("\\", "[", "{", ",")) and '"""' not in line else ""))
    return Mutation("layout", "same", ("\n".join(out) + "\n").encode())


def _truncate(rng: random.Random, data: dict[str, Any], text: str) -> Mutation:
    raw = text.encode()
    cut = rng.randrange(len(raw))
    return Mutation("truncate", "either", raw[:cut], f"at byte {cut}")


def _bytes(rng: random.Random, data: dict[str, Any], text: str) -> Mutation:
    raw = bytearray(text.encode())
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(raw))
        if rng.random() < 0.5:
            raw[at] = rng.randrange(256)
        else:
            raw[at:at] = bytes([rng.choice([0x00, 0x80, 0xC3, 0xFF, 0x5B, 0x22, 0x3D, 0x0A])])
    return Mutation("bytes", "either", bytes(raw))


def _duplicate_line(rng: random.Random, data: dict[str, Any], text: str) -> Mutation:
    lines = text.splitlines()
    at = rng.randrange(len(lines))
    lines.insert(at, lines[at])
    return Mutation("duplicate-line", "either", ("\n".join(lines) + "\n").encode(), f"line {at + 1}")


OPERATORS: list[Callable[[random.Random, dict[str, Any], str], Mutation]] = [
    _set_value, _set_value, _set_value, _typo_key, _typo_name, _delete, _round_trip, _layout, _truncate, _bytes,
    _duplicate_line,
]


def mutate(text: str, seed: int) -> Mutation:
    """The ``seed``-th mutation of an experiment file's ``text``."""
    rng = random.Random(seed)
    data = tomllib.loads(text)
    return rng.choice(OPERATORS)(rng, data, text)


BAD_TRAIN_ARGS: list[list[str]] = [
    ["--trainer", "adam", "--evals", "50"], ["--trainer", "sgd", "--evals", "5"], ["--trainer", "nosuch"],
    ["--device", "cuda"], ["--device", "nosuch"], ["--device", ""], ["--device", "cuda:7"], ["--device", "mps"],
    ["--set", "loss.bogus=1"], ["--set", "bogus=1"], ["--set", "task.bogus=1"], ["--set", "model.bogus=1"],
    ["--set", "=1"], ["--set", "lr"], ["--set", "lr=abc"], ["--set", "lr=1e300"], ["--set", "lr=-1"],
    ["--set", "lr=nan"], ["--set", "lr=inf"], ["--set", "lr=[1]"], ["--set", "lr={}"], ["--set", "batch_size=0"],
    ["--set", "batch_size=1.5"], ["--set", "batch_size=99999999999999999999999"], ["--set", "momentum=2"],
    ["--lr", "0"], ["--lr", "-1"], ["--lr", "1e300"], ["--lr", "nan"], ["--lr", "inf"], ["--lr", "abc"],
    ["--batch-size", "0"], ["--batch-size", "-3"], ["--epochs", "0"], ["--epochs", "-1"], ["--steps", "0"],
    ["--sample-evals", "0"], ["--seconds", "0"], ["--seconds", "-1"], ["--seconds", "nan"], ["--seconds", "inf"],
    ["--seed", "-1"], ["--seed", "99999999999999999999999"], ["--loss", "nosuch"], ["--loss", ""],
    ["--activation", "nosuch"], ["--init", "nosuch"], ["--width", "0"], ["--width", "-5"], ["--schedule", "nosuch"],
    ["--task", "nosuch"], ["--task", ""], ["--model", "nosuch"], ["--model", ""], ["--out", "/proc/x"],
    ["--out", "/proc/x/y"], ["--out", "\u0000"], ["--out", "/dev/null/sub"], ["--out", "a" * 300],
    ["--task", "bhp", "--data-dir", "/nonexistent/data"], ["--task", "mnist", "--data-dir", "/nonexistent"], ["--epochs", "x"],
    ["--unknown-flag"], ["--set", "loss.amplitude=2"], ["--set", "task.points=-1"], ["--set", "task.points=0"],
    ["--set", "model.width=0"], ["--set", "schedule=nosuch"], ["--set", "optimizer=nosuch"],
]
"""Bad arguments, each added to a good ``train`` command line (bcw, mlp1, 1 epoch, a temporary --out)."""


def bad_train_lines(count: int, seed: int = 0) -> list[list[str]]:
    """``count`` bad ``train`` argument lists: the fixed ones, then random combinations of two or three."""
    rng = random.Random(seed)
    lines = [list(a) for a in BAD_TRAIN_ARGS]
    while len(lines) < count:
        picked = rng.sample(BAD_TRAIN_ARGS, rng.randint(2, 3))
        lines.append([part for args in picked for part in args])
    return lines[:count]
