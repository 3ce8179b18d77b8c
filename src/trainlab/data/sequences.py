"""Sequence tasks for recurrent networks; every input is ``(N, T, F)``.

* ``adding`` — the adding problem (Hochreiter & Schmidhuber 1997, exp. 4, in the form of Le, Jaitly &
  Hinton 2015 and Arjovsky, Shah & Bengio 2016): T steps of (value, marker) with values U(0, 1) and
  exactly two markers, one among the first ⌊T/2⌋ steps and one among the rest; the target is the sum
  of the two marked values. Predicting the mean 1 scores MSE Var(u₁ + u₂) = 1/6 ≈ 0.167.
* ``copy`` — the copy (memory) task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): S symbols
  drawn from K, then T − 1 blanks, a delimiter and S more blanks (T + 2S steps, one-hot over K + 2);
  the target is blank for T + S steps and then the S symbols. A memoryless network that outputs the
  blank and then the uniform guess scores cross-entropy S·log K / (T + 2S).
* ``reber`` — next-symbol prediction on the embedded Reber grammar (Cleeremans, Servan-Schreiber &
  McClelland 1989; Hochreiter & Schmidhuber 1997, exp. 1): input the one-hot symbol at step t, target
  the set of symbols the grammar allows next (multi-hot, MSE as in the LSTM paper); the second symbol
  (T or P) must be recalled before the final E. Strings are zero-padded to ``max_length``. Headline
  metric ``string_accuracy``: the fraction of strings in which at every step the k most active outputs
  are exactly the k allowed symbols (the LSTM paper's success criterion). Training feeds the true
  symbols (teacher forcing); :func:`free_running_reber` evaluates a trained predictor free-running,
  generating strings from its own predictions.
* ``smnist`` — sequential MNIST (Le, Jaitly & Hinton 2015) from the official IDX files (checksummed):
  ``order="row"`` feeds the 28 rows (28 steps of 28 pixels), ``order="pixel"`` the 784 pixels one
  by one, optionally in a fixed random order (``permuted``, drawn from ``permutation_seed``). Subsets
  are drawn exactly as the ``mnist`` task draws them (same ``data_seed`` → same images), at 28×28.

Generated tasks draw each split from its own generator derived from ``data_seed`` and the split name.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.data.catalog import TaskEntry, register
from trainlab.data.images import MNIST_CLASSES, _halve, _indices_digest, _subset, read_idx_dataset
from trainlab.data.root import DATASETS, require
from trainlab.data.tabular import check_bool
from trainlab.data.task import Split, Task
from trainlab.core.seeding import numpy_generator

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class GeneratedOptions:
    """Split sizes and the seed the generated splits are drawn from."""

    n_train: int = 10000
    n_val: int = 1000
    n_test: int = 1000
    data_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "n_test"):
            check_number(name, getattr(self, name), low=2, integer=True)
        check_number("data_seed", self.data_seed, low=0, integer=True)

    def sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


@dataclass(frozen=True)
class AddingOptions(GeneratedOptions):
    """``length`` T of the adding problem."""

    length: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("length", self.length, low=2, integer=True)


def make_adding(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, T, 2) float32 (value, marker) and targets (n, 1): the sum of the two marked values."""
    values = rng.uniform(0.0, 1.0, size=(n, length))
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    markers = np.zeros((n, length))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values[rows, first] + values[rows, second]).astype(np.float32)[:, None]
    return x, y


@dataclass(frozen=True)
class CopyOptions(GeneratedOptions):
    """Delay ``length`` T, ``symbols`` S to remember and ``alphabet`` K."""

    length: int = 20
    symbols: int = 10
    alphabet: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("length", self.length, low=1, integer=True)
        check_number("symbols", self.symbols, low=1, integer=True)
        check_number("alphabet", self.alphabet, low=2, integer=True)


def make_copy(n: int, length: int, symbols: int, alphabet: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, T + 2S, K + 2) one-hot and targets (n, T + 2S) int64; 0 is the blank, 1…K the
    symbols, K + 1 the delimiter."""
    steps = length + 2 * symbols
    seq = rng.integers(1, alphabet + 1, size=(n, symbols))
    tokens = np.zeros((n, steps), dtype=np.int64)
    tokens[:, :symbols] = seq
    tokens[:, symbols + length - 1] = alphabet + 1
    targets = np.zeros((n, steps), dtype=np.int64)
    targets[:, -symbols:] = seq
    x = np.eye(alphabet + 2, dtype=np.float32)[tokens]
    return x, targets


REBER_SYMBOLS = "BTPSXVE"
# Reber's finite-state grammar after the initial B: state → [(symbol, next state)], each edge with p = 1/2.
REBER_EDGES: dict[int, list[tuple[str, int]]] = {
    0: [("T", 1), ("P", 2)],
    1: [("S", 1), ("X", 3)],
    2: [("T", 2), ("V", 4)],
    3: [("X", 2), ("S", 5)],
    4: [("P", 3), ("V", 5)],
    5: [("E", -1)],
}


def reber_string(rng: np.random.Generator) -> tuple[str, list[set[str]]]:
    """One Reber string and, for each of its symbols, the set of symbols allowed next (empty after E)."""
    out, allowed, state = ["B"], [], 0
    while state >= 0:
        edges = REBER_EDGES[state]
        allowed.append({s for s, _ in edges})
        symbol, state = edges[int(rng.integers(len(edges)))]
        out.append(symbol)
    allowed.append(set())
    return "".join(out), allowed


def embedded_reber_string(rng: np.random.Generator) -> tuple[str, list[set[str]]]:
    """B, T or P, a Reber string, the same T or P, E; with the allowed next symbols of each position."""
    branch = "TP"[int(rng.integers(2))]
    inner, inner_allowed = reber_string(rng)
    text = "B" + branch + inner + branch + "E"
    allowed = [{"T", "P"}, {"B"}, *inner_allowed[:-1], {branch}, {"E"}, set()]
    return text, allowed


@dataclass(frozen=True)
class ReberOptions(GeneratedOptions):
    """Split sizes and ``max_length``: longer strings are redrawn (rejection), shorter ones zero-padded."""

    n_train: int = 2000
    n_val: int = 500
    n_test: int = 500
    max_length: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("max_length", self.max_length, low=9, integer=True)


def make_reber(n: int, max_length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Inputs (n, L, 7) one-hot symbols, targets (n, L, 7) multi-hot allowed-next sets, and the strings."""
    x = np.zeros((n, max_length, len(REBER_SYMBOLS)), dtype=np.float32)
    y = np.zeros_like(x)
    strings: list[str] = []
    index = {s: i for i, s in enumerate(REBER_SYMBOLS)}
    while len(strings) < n:
        text, allowed = embedded_reber_string(rng)
        if len(text) > max_length:
            continue
        row = len(strings)
        for t, (symbol, nxt) in enumerate(zip(text, allowed)):
            x[row, t, index[symbol]] = 1.0
            for s in nxt:
                y[row, t, index[s]] = 1.0
        strings.append(text)
    return x, y, strings


def _generated(name: str, kind: str, opts: GeneratedOptions, device: torch.device, make, record: dict) -> dict[str, Split]:  # noqa: ANN001
    splits = {}
    for split, n in opts.sizes().items():
        x, y = make(n, numpy_generator(opts.data_seed, name, split))[:2]
        splits[split] = Split(torch.as_tensor(x, device=device), torch.as_tensor(y, device=device))
    record.update({"generator": f"numpy default_rng(derive_seed(data_seed, {name!r}, split))",
                   "data_seed": opts.data_seed, "sizes": opts.sizes()})  # fmt: skip
    return splits


def adding_task(opts: AddingOptions, device: str | torch.device = "cpu") -> Task:
    record = {"length": opts.length, "values": "U(0, 1)", "markers": "one in [0, T//2), one in [T//2, T)",
              "baseline_mse": 1 / 6}  # fmt: skip
    s = _generated("adding", "regression", opts, torch.device(device), lambda n, r: make_adding(n, opts.length, r), record)
    return Task("adding", "regression", s["train"], s["val"], s["test"], 1, "mse", "r2", preprocessing=record)


def copy_task(opts: CopyOptions, device: str | torch.device = "cpu") -> Task:
    steps = opts.length + 2 * opts.symbols
    record = {"length": opts.length, "symbols": opts.symbols, "alphabet": opts.alphabet, "steps": steps,
              "baseline_cross_entropy": opts.symbols * math.log(opts.alphabet) / steps,
              "baseline_accuracy": (opts.length + opts.symbols + opts.symbols / opts.alphabet) / steps}  # fmt: skip
    make = lambda n, r: make_copy(n, opts.length, opts.symbols, opts.alphabet, r)  # noqa: E731
    s = _generated("copy", "classification", opts, torch.device(device), make, record)
    classes = ["blank", *[str(k) for k in range(1, opts.alphabet + 1)], "delimiter"]
    return Task("copy", "classification", s["train"], s["val"], s["test"], opts.alphabet + 2, "cross_entropy",
                "accuracy", classes=classes, preprocessing=record)  # fmt: skip


def reber_task(opts: ReberOptions, device: str | torch.device = "cpu") -> Task:
    record = {"grammar": "embedded Reber", "symbols": REBER_SYMBOLS, "max_length": opts.max_length,
              "padding": "zero inputs and zero targets after the final E"}  # fmt: skip
    s = _generated("reber", "regression", opts, torch.device(device), lambda n, r: make_reber(n, opts.max_length, r), record)
    return Task("reber", "regression", s["train"], s["val"], s["test"], len(REBER_SYMBOLS), "mse", "string_accuracy",
                classes=list(REBER_SYMBOLS), preprocessing=record)  # fmt: skip


@dataclass(frozen=True)
class SequentialMNISTOptions:
    """``order`` row (28 steps) or pixel (784 steps), ``permuted`` pixel order, and the ``mnist``
    task's subset options (``n_train`` from the official training split, ``n_test`` from the official
    test split halved into validation and test, ``data_seed``, ``balanced``)."""

    order: str = "row"
    permuted: bool = False
    permutation_seed: int = 0
    n_train: int = 10000
    n_test: int = 5000
    data_seed: int = 0
    balanced: bool = True

    def __post_init__(self) -> None:
        check_choice("order", self.order, ("row", "pixel"))
        for name in ("permuted", "balanced"):
            check_bool(name, getattr(self, name))
        if self.permuted and self.order != "pixel":
            raise ConfigError("permuted", self.permuted, "false unless order is pixel (the permuted pixel MNIST)")
        check_number("permutation_seed", self.permutation_seed, low=0, integer=True)
        check_number("n_train", self.n_train, low=1, integer=True)
        check_number("n_test", self.n_test, low=2, integer=True)
        check_number("data_seed", self.data_seed, low=0, integer=True)
        if self.balanced and self.n_train % 10:
            raise ConfigError("n_train", self.n_train, "a multiple of 10 (one share per class) when balanced")
        if self.n_test % (20 if self.balanced else 2):
            allowed = "a multiple of 20 when balanced (halved per class)" if self.balanced else "an even number"
            raise ConfigError("n_test", self.n_test, allowed)


def pixel_permutation(seed: int) -> np.ndarray:
    """The fixed order of the 784 pixels of permuted sequential MNIST for ``seed``."""
    return numpy_generator(seed, "smnist", "permutation").permutation(28 * 28)


def smnist_task(opts: SequentialMNISTOptions, root: Path, device: str | torch.device = "cpu", download: bool = False) -> Task:
    device = torch.device(device)
    manifest = DATASETS["mnist"]
    (train_x, train_y), (test_x, test_y) = read_idx_dataset(require(manifest, root, download=download))
    rng = numpy_generator(opts.data_seed, "mnist", "subset")  # the mnist task's subset stream
    train_idx = _subset(train_y, opts.n_train, opts.balanced, rng, "task.smnist.n_train")
    pool = _subset(test_y, opts.n_test, opts.balanced, rng, "task.smnist.n_test")
    val_idx, test_idx = _halve(test_y, pool, opts.balanced, rng)
    perm = pixel_permutation(opts.permutation_seed) if opts.permuted else None

    def split(images: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> Split:
        x = torch.as_tensor(images[idx], device=device).to(torch.float32).div_(255.0)
        if opts.order == "pixel":
            x = x.reshape(len(idx), 28 * 28)
            if perm is not None:
                x = x[:, torch.as_tensor(perm, device=device)]
            x = x.unsqueeze(-1)
        return Split(x.contiguous(), torch.as_tensor(labels[idx], device=device))

    record = {
        "source": {"dataset": manifest.name, "files": [f.name for f in manifest.files]},
        "order": opts.order,
        "steps": 28 if opts.order == "row" else 784,
        "permuted": opts.permuted,
        "permutation_seed": opts.permutation_seed if opts.permuted else None,
        "subset": {"data_seed": opts.data_seed, "balanced": opts.balanced,
                   "train_indices_sha256": _indices_digest(train_idx),
                   "test_indices_sha256": _indices_digest(test_idx)},
        "scaling": "uint8 / 255, 28×28 (no resizing)",
    }  # fmt: skip
    return Task(
        "smnist", "classification", split(train_x, train_y, train_idx), split(test_x, test_y, val_idx),
        split(test_x, test_y, test_idx), 10, "cross_entropy", "accuracy", classes=list(MNIST_CLASSES),
        preprocessing=record,
    )


register(TaskEntry(
    "adding", "adding problem (Hochreiter & Schmidhuber 1997), generated", "regression", AddingOptions,
    lambda o, root, device, download: adding_task(o, device), (), "T×2", "1 value", "r2",
))  # fmt: skip
register(TaskEntry(
    "copy", "copy/memory task (Arjovsky et al. 2016), generated", "classification", CopyOptions,
    lambda o, root, device, download: copy_task(o, device), (), "(T+2S)×(K+2)", "K+2 per step", "accuracy",
))  # fmt: skip
register(TaskEntry(
    "reber", "embedded Reber grammar, next-symbol sets, generated", "regression", ReberOptions,
    lambda o, root, device, download: reber_task(o, device), (), "L×7", "7 per step", "string_accuracy",
))  # fmt: skip
register(TaskEntry(
    "smnist", "sequential MNIST, row (28 steps) or pixel (784), optionally permuted", "classification",
    SequentialMNISTOptions, smnist_task, ("mnist",), "28×28 or 784×1", "10 classes", "accuracy",
))  # fmt: skip


def reber_accepts(text: str) -> bool:
    """Whether ``text`` is an embedded Reber string: B, T or P, a Reber string, the same T or P, E."""
    if len(text) < 4 or text[0] != "B" or text[1] not in "TP" or text[-2] != text[1] or text[-1] != "E":
        return False
    inner = text[2:-2]
    if not inner.startswith("B"):
        return False
    state = 0
    for symbol in inner[1:]:
        if state < 0:
            return False
        moves = dict(REBER_EDGES[state])
        if symbol not in moves:
            return False
        state = moves[symbol]
    return state == -1


Step = Callable[[Tensor, Any], tuple[Tensor, Any]]
"""``step(x_t, state) -> (outputs, state)``: one step of a sequence model on inputs (N, F)."""


def recurrent_step(model: Any) -> Step:
    """One-step function of a :class:`~trainlab.models.recurrent.RecurrentNet` (its fused module)."""

    def step(x: Tensor, state: Any) -> tuple[Tensor, Any]:
        out, state = model.rnn(x.unsqueeze(1), state)
        return model.head(out[:, -1]), state

    return step


@torch.no_grad()
def free_running_reber(step: Step, n: int, generator: torch.Generator, max_length: int = 30) -> tuple[list[str], float]:
    """Generate ``n`` strings by feeding a next-symbol predictor its own choices (free-running, as opposed
    to the teacher forcing of training): start from B; at each step draw the next symbol uniformly among
    those whose output exceeds 0.5 (the predicted allowed set; the arg-max when none does) and stop when
    none does after an E, or at ``max_length``. Returns the strings and the fraction that are embedded
    Reber strings (:func:`reber_accepts`)."""
    k = len(REBER_SYMBOLS)
    eye = torch.eye(k)
    current = torch.zeros(n, dtype=torch.long)  # index of "B"
    texts = [["B"] for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool)
    state: Any = None
    for _ in range(max_length - 1):
        out, state = step(eye[current], state)
        allowed = out > 0.5
        stop = ~allowed.any(-1) & (current == REBER_SYMBOLS.index("E"))
        done |= stop
        if bool(done.all()):
            break
        weights = torch.where(allowed.any(-1, keepdim=True), allowed.float(), torch.nn.functional.one_hot(out.argmax(-1), k).float())
        current = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        for i in torch.nonzero(~done).flatten().tolist():
            texts[i].append(REBER_SYMBOLS[int(current[i])])
    strings = ["".join(t) for t in texts]
    return strings, sum(map(reber_accepts, strings)) / n
