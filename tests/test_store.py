"""The SQLite result store: round trips, status lifecycle, atomic writes, concurrent reads, export."""
from __future__ import annotations

import math
import sqlite3
import threading
from pathlib import Path

import pandas as pd
import pytest
import torch

from trainlab.core.budget import Spending
from trainlab.experiments.store import ResultStore, config_id, flatten
from trainlab.trainers.result import RunResult


def _spec(seed: int = 1, lr: float = 0.1) -> dict:
    return {
        "task": "spiral",
        "model": "spiral-mlp",
        "trainer": "adam",
        "loss": "cross_entropy",
        "seed": seed,
        "device": "cpu",
        "budget": {"epochs": 2},
        "task_options": {"n_points": 50, "noise": 0.2},
        "model_options": {"width": 8},
        "trainer_options": {"lr": lr, "betas": [0.9, 0.999]},
        "loss_options": {},
    }


def _result(status: str = "ok", scale: float = 1.0, n_epochs: int = 3) -> RunResult:
    history = [
        {"epoch": e, "train_loss": scale / (e + 1), "val_loss": 2 * scale / (e + 1), "test_metric": 0.1 * e,
         "steps": 10 * e}
        for e in range(n_epochs)
    ]
    if status == "diverged":
        history[-1]["train_loss"] = math.nan
    return RunResult(
        status=status,  # type: ignore[arg-type]
        history=history,
        final={"train_loss": scale, "val_loss": 2 * scale, "test_metric": 0.5, "test_loss": math.inf},
        best_epoch=1,
        spending=Spending(forward_samples=300, backward_samples=200, steps=20, evals=0, epochs=2, seconds=1.5),
        environment={"git_revision": "abc123", "device_name": "x86_64"},
        message="" if status == "ok" else "non-finite training loss at epoch 2",
        records={"sharpness": [{"step": 5, "epoch": 1, "top": 3.5}, {"step": 10, "epoch": 2, "top": 4.0}]},
        state_dict={"0.weight": torch.arange(6.0).reshape(2, 3), "0.bias": torch.zeros(2)},
    )


def test_round_trip_result_and_frames(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store.sqlite")
    spec_a, spec_b = _spec(1), _spec(2, lr=0.01)
    res_a, res_b = _result(), _result("diverged", scale=3.0, n_epochs=2)
    store.register("a", spec_a, experiment="demo", label="adam-fast", seed_index=0)
    store.register("b", spec_b, experiment="demo", label="adam-slow", seed_index=1)
    store.save("a", spec_a, res_a, metric="accuracy")
    store.save("b", spec_b, res_b, metric="accuracy")

    back = store.result("b")
    assert back.status == "diverged" and back.message == res_b.message
    assert math.isnan(back.history[-1]["train_loss"]) and back.final["test_loss"] == math.inf
    assert back.history[0] == res_b.history[0] and back.records == res_b.records
    assert back.spending == res_b.spending and back.best_epoch == 1
    assert back.config == {"run_id": "b", **spec_b}
    for key, tensor in res_b.state_dict.items():  # type: ignore[union-attr]
        assert torch.equal(back.state_dict[key], tensor)  # type: ignore[index]

    runs = store.runs_frame().set_index("run_id")
    assert list(runs.index) == ["a", "b"]
    for run_id, spec, res in (("a", spec_a, res_a), ("b", spec_b, res_b)):
        row = runs.loc[run_id]
        for key, value in flatten({k: v for k, v in spec.items() if isinstance(v, dict)}).items():
            assert row[key] == value, key
        for key in ("task", "model", "trainer", "loss", "seed"):
            assert row[key] == spec[key]
        assert row["final_train_loss"] == res.final["train_loss"]
        assert math.isnan(row["final_train_metric"])  # not in final → NaN column
        assert row["sample_evals"] == 500 and row["seconds"] == 1.5 and row["epochs"] == 2
        assert row["metric"] == "accuracy" and row["git_revision"] == "abc123"
        assert row["experiment"] == "demo" and row["status"] == res.status
    assert runs.loc["a", "label"] == "adam-fast" and runs.loc["b", "seed_index"] == 1
    assert runs.loc["a", "trainer_options.betas"] == "[0.9, 0.999]"
    # config_id ignores only the seed
    assert config_id(spec_a) == config_id({**spec_a, "seed": 99}) != config_id(spec_b)

    hist = store.history_frame()
    expected = pd.concat(
        [pd.DataFrame(r.history).assign(run_id=i) for i, r in (("a", res_a), ("b", res_b))], ignore_index=True
    )
    pd.testing.assert_frame_equal(hist[expected.columns], expected, check_dtype=False)
    rec = store.records_frame("sharpness")
    assert list(rec["run_id"]) == ["a", "a", "b", "b"] and list(rec["top"]) == [3.5, 4.0, 3.5, 4.0]


def test_status_lifecycle_and_replacement(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "s.sqlite")
    assert store.status("x") is None
    store.register("x", _spec(), label="adam")
    assert store.status("x") == "pending"
    store.mark_running("x")
    assert store.status("x") == "running"
    store.save("x", _spec(), _result(n_epochs=5))
    store.register("x", _spec(), label="other")  # a known run keeps its status and label
    assert store.status("x") == "ok" and store.runs_frame()["label"].tolist() == ["adam"]
    store.mark_running("x")
    store.save("x", _spec(), _result(n_epochs=2))  # a redo replaces, never appends
    assert len(store.history_frame()) == 2 and store.runs() == {"x": "ok"}
    assert store.runs_frame()["attempts"].tolist() == [2]
    assert store.counts()["ok"] == 1 and store.counts()["failed"] == 0
    with pytest.raises(KeyError, match="not registered"):
        store.mark_running("nope")


def test_failed_write_leaves_previous_rows(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "s.sqlite")
    store.save("x", _spec(), _result(n_epochs=4))
    broken = _result(n_epochs=7)
    broken.records = {"bad": [{"step": 1, "value": object()}]}  # not serialisable: fails mid-transaction
    with pytest.raises(TypeError):
        store.save("x", _spec(), broken)
    assert len(store.history_frame()) == 4 and store.status("x") == "ok"
    assert "bad" not in store.result("x").records
    # an independent connection sees the same consistent state
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM histories").fetchone() == (4,)


def test_readers_do_not_block_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    writer = ResultStore(path)
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        reader = ResultStore(path)
        try:
            while not done.is_set():
                reader.runs_frame()
                reader.history_frame()
        except BaseException as err:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(err)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(40):
            writer.register(f"r{i}", _spec(i))
            writer.save(f"r{i}", _spec(i), _result())
    finally:
        done.set()
        thread.join()
    assert not errors
    assert len(ResultStore(path).runs()) == 40 and len(writer.history_frame()) == 120


def test_export_csv_and_parquet(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "exp" / "store.sqlite")
    store.save("a", _spec(1), _result())
    store.save("b", _spec(2), _result("diverged"))
    csv = store.export(tmp_path / "csv")
    pq = store.export(tmp_path / "pq", "parquet")
    assert sorted(p.name for p in csv) == ["histories.csv", "records_sharpness.csv", "runs.csv"]
    for path in (tmp_path / "csv" / "runs.csv", tmp_path / "pq" / "runs.parquet"):
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        assert frame["run_id"].tolist() == ["a", "b"]
        assert frame["final_train_loss"].tolist() == store.runs_frame()["final_train_loss"].tolist()
    hist = pd.read_parquet(pq[1])
    assert len(hist) == 6 and math.isnan(hist["train_loss"].iloc[-1])
    with pytest.raises(ValueError, match="format: got 'xlsx'"):
        store.export(tmp_path, "xlsx")
    assert ResultStore.open(tmp_path / "exp").runs() == {"a": "ok", "b": "diverged"}
    with pytest.raises(FileNotFoundError, match="no result store"):
        ResultStore.open(tmp_path / "missing")
