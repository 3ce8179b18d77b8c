"""Faults survived: damaged stores and weights refused, runners that share a store, signals, dead workers.

Processes are killed at deterministic points (once the store shows a given number of committed runs),
never after a wall-clock delay; waits poll for a condition.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainlab.core.budget import Budget
from trainlab.cli import main
from trainlab.core.config import ConfigError
from trainlab.experiments.config import load_experiment
from trainlab.experiments.executors import Events, InlineExecutor, Job, Outcome
from trainlab.experiments.runner import experiment_status, run_experiment
from trainlab.experiments.spec import RunSpec, execute
from trainlab.experiments.store import STORE_NAME, ResultStore, StoreError
from trainlab.trainers.result import RunResult

TINY = """
[experiment]
name = "tiny"
seed = 3
seeds = {seeds}
device = "cpu"

[defaults]
task = "spiral"
model = "spiral-mlp"
task_options = {{ points = 20 }}
model_options = {{ width = 8 }}
budget = {{ epochs = {epochs} }}

[grid]
trainer = ["adam", "sgd"]
"trainer_options.batch_size" = [16]
"""


def _experiment(tmp_path: Path, seeds: int = 2, epochs: int = 2, extra: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(seeds=seeds, epochs=epochs) + extra)
    return path


def _wait(condition: Callable[[], bool], what: str, limit: float = 120.0) -> None:
    """Poll ``condition`` until it holds (a bound on waiting for a state, not a synchronisation delay)."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"still waiting for {what} after {limit} s")
        time.sleep(0.05)


def _committed(store: Path) -> int:
    """Finished runs in a store, read without disturbing its writer."""
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs WHERE status IN ('ok', 'diverged', 'failed')").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (Linux /proc)."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                text = Path(f"/proc/{parent}/task/{task}/children").read_text()
            except FileNotFoundError:
                continue
            for child in map(int, text.split()):
                if child not in out:
                    out.add(child)
                    todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def _trainlab(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "TRAINLAB_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", "from trainlab.cli import main; main()", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs,  # type: ignore[call-overload]
    )


# ---------------------------------------------------------------------------------------------- stores

@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    run_experiment(_experiment(tmp_path, seeds=1), out, progress=False)
    return out / STORE_NAME


def _checkpoint(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped", "schema", "foreign"])
def test_damaged_store_is_refused_in_one_line_and_left_untouched(store_file: Path, tmp_path: Path, damage: str) -> None:
    _checkpoint(store_file)
    raw = store_file.read_bytes()
    if damage == "empty":
        store_file.write_bytes(b"")
    elif damage == "truncated":
        store_file.write_bytes(raw[: len(raw) // 2])
    elif damage == "flipped":  # a b-tree page header of the runs table
        with sqlite3.connect(store_file) as conn:
            root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'histories'").fetchone()[0]
        page = int.from_bytes(raw[16:18], "big")
        damaged = bytearray(raw)
        for i in range(8):
            damaged[(root - 1) * page + 3 + i] ^= 0xA5
        store_file.write_bytes(bytes(damaged))
    elif damage == "schema":
        with sqlite3.connect(store_file) as conn:
            conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        _checkpoint(store_file)
    else:
        store_file.write_bytes(b"not a database at all, just text" * 10)
    before = store_file.read_bytes()
    with pytest.raises(StoreError) as caught:
        ResultStore(store_file)
    assert "\n" not in str(caught.value) and str(store_file) in str(caught.value)
    result = CliRunner().invoke(main, ["run", str(_experiment(tmp_path, seeds=1)), "--out", str(store_file.parent)])
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    assert [line for line in result.output.splitlines() if line.startswith("Error:")] == [result.output.splitlines()[-1]]
    assert "store" in result.output.splitlines()[-1]
    assert store_file.read_bytes() == before  # nothing written into it


# ---------------------------------------------------------------------------------------------- weights

@pytest.fixture
def saved_run(tmp_path: Path) -> Path:
    spec = RunSpec(task="spiral", model="spiral-mlp", trainer="adam", budget=Budget(epochs=1),
                   task_options={"points": 20}, model_options={"width": 8})
    out = tmp_path / "run"
    execute(spec).save(out)
    return out


def test_weights_digest_is_recorded_and_verified(saved_run: Path) -> None:
    recorded = json.loads((saved_run / "result.json").read_text())["weights_sha256"]
    assert recorded == hashlib.sha256((saved_run / "model.pt").read_bytes()).hexdigest()
    assert RunResult.load(saved_run).state_dict is not None
    raw = bytearray((saved_run / "model.pt").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (saved_run / "model.pt").write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match="changed or damaged"):
        RunResult.load(saved_run)


@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty", "other-model", "result-truncated",
                                    "result-empty", "result-latin1", "result-no-budget"])
def test_curvature_refuses_damaged_runs_in_one_line(saved_run: Path, tmp_path: Path, damage: str) -> None:
    weights, result = saved_run / "model.pt", saved_run / "result.json"
    data = json.loads(result.read_text())
    if damage == "flipped":
        raw = bytearray(weights.read_bytes())
        raw[-30] ^= 0x10
        weights.write_bytes(bytes(raw))
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:300])
        data.pop("weights_sha256")
    elif damage == "empty":
        weights.write_bytes(b"")
        data.pop("weights_sha256")
    elif damage == "other-model":
        other = RunSpec(task="spiral", model="spiral-mlp", trainer="adam", budget=Budget(epochs=1),
                        task_options={"points": 20}, model_options={"width": 9})
        execute(other).save(tmp_path / "other")
        weights.write_bytes((tmp_path / "other" / "model.pt").read_bytes())
        data.pop("weights_sha256")
    elif damage == "result-no-budget":
        data["config"].pop("budget")
    if damage.startswith("result-") and damage != "result-no-budget":
        text = {"result-truncated": result.read_bytes()[:200], "result-empty": b"",
                "result-latin1": "é".encode("latin-1") * 10}[damage]
        result.write_bytes(text)
    else:
        result.write_text(json.dumps(data))
    out = CliRunner().invoke(main, ["curvature", str(saved_run), "--top", "1", "--subset", "20"])
    assert out.exit_code == 1 and (out.exception is None or isinstance(out.exception, SystemExit)), out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), out.output


# ---------------------------------------------------------------------------------------------- claims

def test_claims_are_exclusive_and_a_dead_owner_loses_them(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    with ResultStore(tmp_path / STORE_NAME) as store:
        for run_id in ("a", "b", "c"):
            store.register(run_id, {"x": run_id})
        assert store.claim(["a", "b"], "one", skip=("ok",)) == ["a", "b"]
        assert store.claim(["a", "b", "c"], "two", skip=("ok",)) == ["c"]  # a live claim holds
        assert store.claim(["a"], "one", skip=("ok",)) == ["a"]  # an owner may renew its own
        store._conn.execute("UPDATE claims SET pid = ? WHERE owner = 'one'", (dead_pid,))  # noqa: SLF001
        assert store.claim(["a", "b"], "two", skip=("ok",)) == ["a", "b"]  # its process is gone
        assert store.claim(["c"], "three", skip=("ok",), lease=-1.0) == ["c"]  # the lease has lapsed
        store._conn.execute("UPDATE runs SET status = 'ok' WHERE run_id = 'a'")  # noqa: SLF001
        store.release("two")
        assert store.claim(["a", "b"], "four", skip=("ok",)) == ["b"]  # a finished run is never claimed


class _Interleaved(InlineExecutor):
    """Runs a second, complete runner on the same store just after this one claimed its first job."""

    def __init__(self, second: Callable[[], None]):
        self.second = second

    def run(self, jobs: Iterable[Job], events: Events) -> Iterator[tuple[Job, list[Outcome]]]:
        for i, job in enumerate(jobs):
            if i == 0:
                self.second()
            yield job, InlineExecutor().run([job], events).__next__()[1]


def test_two_runners_on_one_store_split_the_grid_and_train_nothing_twice(tmp_path: Path) -> None:
    experiment = load_experiment(_experiment(tmp_path, seeds=3))
    out = tmp_path / "out"
    reports = []

    def second() -> None:
        reports.append(run_experiment(experiment, out, progress=False))

    first = run_experiment(experiment, out, executor=_Interleaved(second), progress=False)
    assert sum(first.counts.values()) == 1 and sum(reports[0].counts.values()) == 5
    assert len(first.elsewhere) == 5 and len(reports[0].elsewhere) == 1
    with ResultStore.open(out) as store:
        runs = store.runs_frame()
        assert set(runs["status"]) == {"ok"} and len(runs) == 6
        assert list(runs["attempts"]) == [1] * 6
        assert store.claims() == {}


@pytest.mark.slow
def test_two_runner_processes_on_one_store_train_each_run_once(tmp_path: Path) -> None:
    path = _experiment(tmp_path, seeds=4)
    out = tmp_path / "out"
    procs = [_trainlab("run", str(path), "--out", str(out), "--no-progress") for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with ResultStore.open(out) as store:
        runs = store.runs_frame()
    assert len(runs) == 8 and set(runs["status"]) == {"ok"} and list(runs["attempts"]) == [1] * 8


# ---------------------------------------------------------------------------------------------- signals

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_signal_to_the_main_process_leaves_no_process(tmp_path: Path, sig: int) -> None:
    path = _experiment(tmp_path, seeds=20, epochs=40)
    out = tmp_path / "out"
    proc = _trainlab("run", str(path), "--out", str(out), "--workers", "2", "--no-progress")
    _wait(lambda: _committed(out / STORE_NAME) >= 1, "the first committed run")
    family = _children(proc.pid)
    assert family, "a pool with workers"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "Traceback" not in err, err
    _wait(lambda: not any(_alive(pid) for pid in family), "every worker and helper to exit")
    plan = experiment_status(load_experiment(path), out)
    assert sum(s == "ok" for s in plan.status.values()) >= 1  # what was committed is kept


@pytest.mark.slow
def test_killing_one_pool_worker_fails_only_its_run(tmp_path: Path) -> None:
    path = _experiment(tmp_path, seeds=6, epochs=60)
    out = tmp_path / "out"
    proc = _trainlab("run", str(path), "--out", str(out), "--workers", "2", "--no-progress")
    _wait(lambda: _committed(out / STORE_NAME) >= 2, "two committed runs")
    workers = [pid for pid in _children(proc.pid) if _is_spawned_worker(pid)]
    os.kill(max(workers), signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    with ResultStore.open(out) as store:
        runs = store.runs_frame()
    failed = runs[runs["status"] == "failed"]
    assert len(runs) == 12 and len(failed) <= 1 and set(runs["status"]) <= {"ok", "failed"}
    assert all("worker process died" in m for m in failed["message"])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _is_spawned_worker(pid: int) -> bool:
    return "spawn_main" in _cmdline(pid) and "resource_tracker" not in _cmdline(pid)


SWEEP = """
[experiment]
name = "sweepy"
seed = 5
seeds = 2
device = "cpu"
engine = "sweep"
eval_every = 1000

[defaults]
task = "spiral"
model = "spiral-mlp"
trainer = "gd"
task_options = { points = 20 }
budget = { steps = 1000000 }

[[grid]]
"model_options.width" = [4]
"trainer_options.lr" = [0.1, 0.2]
budget = [{ steps = 2 }]

[[grid]]
"model_options.width" = [6]
"trainer_options.lr" = [0.1, 0.2]
"""


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_keeps_finished_cells(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP)
    out = tmp_path / "out"
    proc = _trainlab("run", str(path), "--out", str(out), "--no-progress")
    _wait(lambda: _committed(out / STORE_NAME) >= 4, "the short sweep's 4 cells")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    plan = experiment_status(load_experiment(path), out)
    assert sorted(plan.status.values(), key=str) == ["ok"] * 4 + ["running"] * 4
    assert len(plan.todo) == 4  # a rerun trains only the interrupted sweep


def test_experiment_is_planned_before_any_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    runner = CliRunner()
    for args in (["--out", str(blocker / "sub")], ["--out", "/proc/x"]):
        result = runner.invoke(main, ["run", str(_experiment(tmp_path)), *args])
        assert result.exit_code == 1 and result.output.strip().splitlines()[-1].startswith("Error: --out")
    cuda = _experiment(tmp_path).read_text().replace('device = "cpu"', 'device = "cuda"')
    (tmp_path / "cuda.toml").write_text(cuda)
    if not __import__("torch").cuda.is_available():
        result = runner.invoke(main, ["run", str(tmp_path / "cuda.toml"), "--out", str(tmp_path / "c")])
        assert result.exit_code == 1 and "experiment.device" in result.output
        assert not (tmp_path / "c" / STORE_NAME).exists()
    evals = _experiment(tmp_path).read_text().replace("budget = { epochs = 2 }", "budget = { evals = 50 }")
    (tmp_path / "evals.toml").write_text(evals)
    result = runner.invoke(main, ["run", str(tmp_path / "evals.toml"), "--dry-run"])
    assert result.exit_code == 1 and "budget.evals" in result.output and "spends" in result.output
