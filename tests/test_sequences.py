"""Sequence tasks checked against their definitions: adding problem, copy task, embedded Reber grammar
(against a regular expression written from the grammar's graph) and sequential MNIST (against the
raw IDX bytes and the ``mnist`` task's images)."""
from __future__ import annotations

import gzip
import math
import re

import numpy as np
import pytest
import torch

from trainlab.core.config import ConfigError
from trainlab.data import load_task
from trainlab.data.sequences import REBER_SYMBOLS, embedded_reber_string, make_adding, make_copy
from trainlab.losses.metrics import string_accuracy
from trainlab.losses import get_loss
from trainlab.losses.metrics import accuracy


def test_adding_problem_follows_its_definition() -> None:
    x, y = make_adding(500, 31, np.random.default_rng(0))
    assert x.shape == (500, 31, 2) and y.shape == (500, 1)
    values, markers = x[..., 0], x[..., 1]
    assert values.min() >= 0 and values.max() < 1
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert np.all(markers[:, :15].sum(1) == 1) and np.all(markers[:, 15:].sum(1) == 1)
    np.testing.assert_allclose(y[:, 0], (values * markers).sum(1), rtol=1e-6)
    # the mean predictor's MSE is Var(u1 + u2) = 1/6 (within sampling error of 500 draws)
    task = load_task("adding", length=20, n_train=4000, n_val=10, n_test=10)
    mse = ((task.train.y - 1.0) ** 2).mean().item()
    assert abs(mse - 1 / 6) < 4 * math.sqrt(2 / 4000) / 6
    again = load_task("adding", length=20, n_train=4000, n_val=10, n_test=10)
    assert torch.equal(task.train.x, again.train.x) and not torch.equal(task.val.x, task.test.x)


def test_copy_task_follows_its_definition() -> None:
    length, symbols, alphabet = 5, 4, 6
    x, y = make_copy(50, length, symbols, alphabet, np.random.default_rng(1))
    steps = length + 2 * symbols
    assert x.shape == (50, steps, alphabet + 2) and y.shape == (50, steps)
    tokens = x.argmax(-1)
    assert np.all(x.sum(-1) == 1)
    assert np.all((tokens[:, :symbols] >= 1) & (tokens[:, :symbols] <= alphabet))
    assert np.all(tokens[:, symbols + length - 1] == alphabet + 1)
    rest = np.delete(tokens, list(range(symbols)) + [symbols + length - 1], axis=1)
    assert np.all(rest == 0)
    assert np.all(y[:, :-symbols] == 0) and np.array_equal(y[:, -symbols:], tokens[:, :symbols])
    task = load_task("copy", length=length, symbols=symbols, alphabet=alphabet, n_train=20, n_val=4, n_test=4)
    base = task.preprocessing["baseline_cross_entropy"]
    # the memoryless baseline: blank everywhere it is certain, uniform over the symbols at the end
    logits = torch.full((20, steps, alphabet + 2), -1e4)
    logits[:, :-symbols, 0] = 0
    logits[:, -symbols:, 1 : alphabet + 1] = 0
    assert get_loss("cross_entropy")(logits, task.train.y).item() == pytest.approx(base, rel=1e-5)


# Reber's graph written as a regular expression: from state 3, loops (X T* V P)* then S or X T* V V
_S3 = r"(?:XT*VP)*(?:S|XT*VV)"
_REBER = rf"B(?:TS*X{_S3}|PT*V(?:V|P{_S3}))E"
EMBEDDED = re.compile(rf"^B(?:T{_REBER}T|P{_REBER}P)E$")


def test_embedded_reber_strings_match_the_grammar() -> None:
    assert EMBEDDED.match("BTBTXSETE") and EMBEDDED.match("BPBPVVEPE")
    assert not EMBEDDED.match("BTBTXSEPE") and not EMBEDDED.match("BTBTXXETE") and not EMBEDDED.match("BTBPTVETE")
    rng = np.random.default_rng(0)
    branches = []
    for _ in range(2000):
        text, allowed = embedded_reber_string(rng)
        assert EMBEDDED.match(text), text
        assert len(allowed) == len(text)
        assert all(nxt in ok for nxt, ok in zip(text[1:], allowed)) and allowed[-1] == set()
        assert allowed[-3] == {text[1]}  # the long-term dependency: recall the second symbol
        branches.append(text[1])
    assert abs(branches.count("T") / 2000 - 0.5) < 4 * 0.5 / math.sqrt(2000)
    task = load_task("reber", n_train=50, n_val=10, n_test=10, max_length=20)
    lengths = (task.train.x.sum(-1) > 0).sum(-1)
    assert lengths.max() <= 20 and torch.all(task.train.x.sum(-1) <= 1)
    decoded = ["".join(REBER_SYMBOLS[i] for i in row.argmax(-1)[: n]) for row, n in zip(task.train.x, lengths)]
    assert all(EMBEDDED.match(s) for s in decoded)


def test_string_accuracy_counts_whole_strings() -> None:
    targets = torch.tensor([[[1.0, 1, 0], [0, 0, 1], [0, 0, 0]], [[0, 1, 0], [1, 0, 0], [0, 0, 0]]])
    good = torch.tensor([[[2.0, 3, 1], [0, 0, 5], [9, 9, 9]], [[0, 1, 0], [1, 0, 0], [3, 2, 1]]])
    assert string_accuracy(good, targets) == 1.0
    bad = good.clone()
    bad[1, 1] = torch.tensor([0.0, 2, 0])
    assert string_accuracy(bad, targets) == 0.5


def test_sequence_losses_and_accuracy_average_over_steps() -> None:
    gen = torch.Generator().manual_seed(0)
    out = torch.randn(3, 5, 4, generator=gen)
    y = torch.randint(0, 4, (3, 5), generator=gen)
    flat = torch.nn.functional.cross_entropy(out.reshape(-1, 4), y.reshape(-1))
    assert get_loss("cross_entropy")(out, y).item() == pytest.approx(flat.item(), rel=1e-6)
    assert accuracy(out, y) == pytest.approx((out.argmax(-1) == y).float().mean().item())
    target = torch.randn(3, 5, 4, generator=gen)
    assert get_loss("mse").per_sample(out, target).shape == (3,)
    assert get_loss("mse")(out, target).item() == pytest.approx(((out - target) ** 2).sum(-1).mean().item(), rel=1e-6)


def _raw_idx(path) -> np.ndarray:  # noqa: ANN001
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def test_sequential_mnist_against_raw_files_and_the_mnist_task(data_root) -> None:  # noqa: ANN001
    folder = data_root / "mnist"
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST IDX files not found under TRAINLAB_DATA/mnist")
    opts = {"n_train": 100, "n_test": 40}
    rows = load_task("smnist", **opts)
    assert rows.input_shape == (28, 28)
    padded = load_task("mnist", resize="pad", **opts)
    torch.testing.assert_close(rows.test.x, padded.test.x[:, 0, 2:30, 2:30], rtol=0, atol=0)
    assert torch.equal(rows.train.y, padded.train.y)
    images, labels = _raw_idx(folder / "t10k-images-idx3-ubyte.gz"), _raw_idx(folder / "t10k-labels-idx1-ubyte.gz")
    first = rows.test.x[0].numpy() * 255
    match = np.flatnonzero((images == np.round(first).astype(np.uint8)).all(axis=(1, 2)))
    assert len(match) >= 1 and labels[match[0]] == rows.test.y[0].item()
    pixels = load_task("smnist", order="pixel", **opts)
    assert pixels.input_shape == (784, 1)
    assert torch.equal(pixels.test.x[..., 0], rows.test.x.reshape(-1, 784))
    permuted = load_task("smnist", order="pixel", permuted=True, **opts)
    perm = permuted.preprocessing["permutation_seed"]
    assert perm == 0
    sorted_rows = torch.sort(permuted.test.x[..., 0], dim=1).values
    assert torch.equal(sorted_rows, torch.sort(pixels.test.x[..., 0], dim=1).values)
    assert not torch.equal(permuted.test.x, pixels.test.x)
    from trainlab.data.sequences import pixel_permutation

    assert torch.equal(permuted.test.x[..., 0], pixels.test.x[..., 0][:, torch.as_tensor(pixel_permutation(0))])
    with pytest.raises(ConfigError, match="task.smnist.permuted"):
        load_task("smnist", permuted=True)


def test_reber_acceptor_agrees_with_the_regular_expression() -> None:
    from trainlab.data.sequences import reber_accepts

    rng = np.random.default_rng(3)
    for _ in range(300):
        text, _ = embedded_reber_string(rng)
        assert reber_accepts(text)
        # a random one-symbol substitution: the acceptor and the regular expression must agree
        i = int(rng.integers(len(text)))
        mutated = text[:i] + REBER_SYMBOLS[int(rng.integers(7))] + text[i + 1 :]
        assert reber_accepts(mutated) == bool(EMBEDDED.match(mutated)), mutated


def test_free_running_generation_with_an_oracle_predictor_is_always_grammatical() -> None:
    # an exact next-symbol predictor written from the grammar (state carried explicitly): free-running
    # generation from it must produce embedded Reber strings only, in both branches
    from trainlab.data.sequences import REBER_EDGES, free_running_reber

    index = {s: i for i, s in enumerate(REBER_SYMBOLS)}

    def allowed_after(prefix: str) -> set[str]:
        if len(prefix) < 3:
            return {"T", "P"} if prefix == "B" else {"B"}
        state, rest = 0, prefix[3:]  # after "B", branch, "B" of the inner string
        while rest and state >= 0:
            state, rest = dict(REBER_EDGES[state])[rest[0]], rest[1:]
        if state >= 0:
            return {s for s, _ in REBER_EDGES[state]}
        return [{prefix[1]}, {"E"}, set()][min(len(rest), 2)]  # branch again, final E, then nothing

    def step(x: torch.Tensor, state):  # noqa: ANN001, ANN202
        prefixes = [p + REBER_SYMBOLS[int(i)] for p, i in zip(state or [""] * len(x), x.argmax(-1))]
        out = torch.zeros(len(x), 7)
        for row, p in enumerate(prefixes):
            for s in allowed_after(p):
                out[row, index[s]] = 1.0
        return out, prefixes

    strings, fraction = free_running_reber(step, 200, torch.Generator().manual_seed(0), max_length=60)
    assert fraction == 1.0 and all(EMBEDDED.match(s) for s in strings)
    assert {s[1] for s in strings} == {"T", "P"}
