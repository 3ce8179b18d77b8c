"""Experiment files: grid expansion, run identity, validation errors, resume, failures, executors, CLI."""
from __future__ import annotations

import dataclasses

import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from trainlab.core.budget import Budget
from trainlab.cli.experiments import export, quickstart, run, status
from trainlab.core.config import ConfigError, check_number
from trainlab.experiments import (
    ResultStore,
    load_experiment,
    parse_experiment,
    quickstart_experiment,
    run_experiment,
)
from trainlab.experiments.executors import Job, make_executor
from trainlab.experiments.spec import RunSpec
from trainlab.core.seeding import derive_seed
from trainlab.trainers import TRAINERS, Trainer
from trainlab.trainers.base import Monitor, resolve_loss

SMALL = """
[experiment]
name = "small"
seed = 11
seeds = 2
device = "cpu"

[defaults]
task = "spiral"
model = "spiral-mlp"
task_options = { points = 20 }
model_options = { width = 8 }
budget = { epochs = 3 }

[trainers.fast]
algorithm = "adam"
lr = 0.01
batch_size = 16

[trainers.plain]
algorithm = "sgd"
lr = 0.1
batch_size = 16

[grid]
trainer = ["fast", "plain"]
"""


def _drop_tables(text: str, *labels: str) -> str:
    """``text`` without the ``[trainers.<label>]`` tables of ``labels`` (a grid must use every table)."""
    for label in labels:
        text = re.sub(rf"\[trainers\.{label}\]\n(?:[^\[\n].*\n)*\n?", "", text)
    return text


def _write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------------------------------------- expansion


def test_grid_expansion_exclusions_overrides_and_seeds(tmp_path: Path) -> None:
    text = SMALL.replace('trainer = ["fast", "plain"]', textwrap.dedent("""\
        trainer = ["fast", "plain", "gd"]
        "model_options.width" = [4, 8, 16]
        task_options = { points = [10, 20] }

        [[exclude]]
        trainer = "plain"
        "model_options.width" = [4, 16]

        [[override]]
        match = { trainer = "fast", "task_options.points" = 10 }
        set = { "trainer_options.lr" = 0.05, budget = { steps = 7 } }
        """))
    exp = load_experiment(_write(tmp_path, text))
    # independent oracle: the product minus the exclusions, × 2 seed indices
    expected = {
        (t, w, p, i)
        for t, w, p, i in itertools.product(["fast", "plain", "gd"], [4, 8, 16], [10, 20], [0, 1])
        if not (t == "plain" and w in (4, 16))
    }
    got = {(r.label, r.spec.model_options["width"], r.spec.task_options["points"], r.seed_index) for r in exp.runs}
    assert got == expected and len(exp.runs) == len(expected) == 28
    assert len({r.run_id for r in exp.runs}) == 28
    for planned in exp.runs:
        assert planned.spec.seed == derive_seed(11, planned.seed_index)  # same seed for every trainer: paired runs
        algorithm = {"fast": "adam", "plain": "sgd", "gd": "gd"}[planned.label]
        assert planned.spec.trainer == planned.resolved["trainer"] == algorithm
        overridden = planned.label == "fast" and planned.spec.task_options["points"] == 10
        assert planned.spec.budget == (Budget(steps=7) if overridden else Budget(epochs=3))
        if planned.label == "fast":
            assert planned.spec.trainer_options["lr"] == (0.05 if overridden else 0.01)
            assert planned.resolved["trainer_options"]["betas"] == (0.9, 0.999)  # resolved defaults are stored
        if planned.label == "gd":
            assert "lr" not in planned.spec.trainer_options  # defaults of the trainer, not of other variants


def test_grid_union_and_explicit_seed_indices() -> None:
    data = {
        "experiment": {"seeds": [3, 5], "seed": 1, "device": "cpu"},
        "defaults": {"task": "spiral", "model": "spiral-mlp", "trainer": "gd", "budget": {"epochs": 1}},
        "grid": [{"model_options": {"width": [4, 8]}}, {"trainer": ["sgd"], "loss": ["mse", "cross_entropy"]}],
    }
    exp = parse_experiment(data)
    assert exp.name == "experiment" and exp.seeds == (3, 5)
    cells = {(r.spec.trainer, r.spec.loss, r.spec.model_options.get("width")) for r in exp.runs}
    assert cells == {("gd", None, 4), ("gd", None, 8), ("sgd", "mse", None), ("sgd", "cross_entropy", None)}
    assert {r.spec.seed for r in exp.runs} == {derive_seed(1, 3), derive_seed(1, 5)}
    assert len(exp.runs) == 8


def test_run_identity_is_stable_and_ignores_spelling() -> None:
    base = {
        "experiment": {"device": "cpu"},
        "defaults": {"task": "spiral", "model": "spiral-mlp", "trainer": "adam", "budget": {"epochs": 2}},
    }
    explicit = {
        "defaults": {"budget": {"epochs": 2}, "trainer": "adam", "model": "spiral-mlp", "task": "spiral",
                     "model_options": {"width": 100}, "trainer_options": {"lr": 0.001}},
        "experiment": {"device": "cpu"},
    }
    changed = {**base, "defaults": {**base["defaults"], "trainer_options": {"lr": 0.002}}}
    a, b, c = (parse_experiment(d).runs[0].run_id for d in (base, explicit, changed))
    assert a == b != c  # explicit defaults and key order do not change identity; a value does
    # another interpreter (other hash seed, fresh imports) computes the same identity
    code = (
        "from trainlab.experiments import parse_experiment;"
        f"print(parse_experiment({base!r}).runs[0].run_id)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == a
    assert a == RunSpec("spiral", "spiral-mlp", "adam", Budget(epochs=2), seed=derive_seed(0, 0)).run_id()


def test_late_task_options_at_their_default_keep_the_earlier_run_ids() -> None:
    """Task options added after run ids were published (the thesis notebooks' ``drop_features``, ``z_side``,
    ``split_scheme``, ``in_place_scaling``) do not enter the id at their default: the ids below were computed
    by the code before those options existed (commit 5b8cf74), so stores made then keep their runs. The
    options are still recorded in the resolved spec, and any other value changes the id."""
    wqc = RunSpec("wqc", "mlp1", "adam", Budget(epochs=2), seed=3, task_options={"profile": "thesis000"})
    bhp = RunSpec("bhp", "mlp1", "shade", Budget(epochs=2), seed=3, task_options={"profile": "thesis000"})
    assert (wqc.run_id(), bhp.run_id()) == ("5f7bf774f9acef0c", "dfa7cec739d34221")
    assert wqc.resolved().task_options["split_scheme"] == "random"
    explicit = dataclasses.replace(wqc, task_options={"profile": "thesis000", "z_side": "both", "drop_features": []})
    assert explicit.run_id() == wqc.run_id()
    for change in ({"z_side": "upper"}, {"split_scheme": "fastai-positional"}, {"drop_features": ["pH"]},
                   {"split_scheme": "fastai-positional", "in_place_scaling": False}):
        other = dataclasses.replace(wqc, task_options={"profile": "thesis000", **change})
        assert other.run_id() != wqc.run_id(), change


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (('trainer = ["fast", "plain"]', 'trainer = ["fast", "adma"]'),
         r"exp\.toml: grid\.trainer\[1\]: got 'adma'; allowed: one of .*adam"),
        (("lr = 0.01", "lr = -0.1"), r"exp\.toml: trainers\.fast\.lr.*got -0\.1; allowed: a number in \(0, 1e\+06\]"),
        (("lr = 0.01", "lrr = 0.1"), r"exp\.toml: trainers\.fast\.lrr.*got 0\.1"),
        (("budget = { epochs = 3 }", "budget = { epochs = -3 }"), r"exp\.toml: defaults\.budget\.epochs: got -3"),
        (("budget = { epochs = 3 }", "budget = { epoch = 3 }"), r"defaults\.budget\.epoch: got 'epoch'.*epochs"),
        (('model = "spiral-mlp"', 'model = "spiral-mpl"'), r"exp\.toml: defaults\.model: got 'spiral-mpl'"),
        (("seeds = 2", "seeds = 0"), r"experiment\.seeds: got 0; allowed: an integer in \[1, 10000\]"),
        (("seeds = 2", "seedz = 2"), r"experiment\.seedz: got 2; allowed: a key among name"),
        (('[grid]', '[gird]'), r"exp\.toml: gird: .*allowed: a section among experiment"),
        (('trainer = ["fast", "plain"]', 'trainer = "fast"'), r"grid\.trainer: got 'fast'; allowed: a non-empty list"),
        (('[grid]', '[[override]]\nset = { trainer = "plain" }\n[grid]'), r"override\[0\]\.set\.trainer"),
        (('[grid]', '[grid]\n"model_opts.width" = [1]'), r"grid\.model_opts\.width: got 'model_opts\.width'"),
        (('task_options = { points = 20 }', 'task_options = { points = 20 }\nloss_options = { amplitude = 2 }'),
         r"defaults\.loss_options\.amplitude.*loss options only with a named loss"),
    ],
)
def test_invalid_configs_name_file_key_value_and_allowed(tmp_path: Path, change: tuple[str, str], pattern: str) -> None:
    assert change[0] in SMALL
    path = _write(tmp_path, SMALL.replace(change[0], change[1], 1))
    with pytest.raises(ConfigError, match=pattern):
        load_experiment(path)


def test_another_experiments_folder_is_refused_and_its_record_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with ResultStore(out / "store.sqlite") as store:
        store.set_meta("experiment", "quickstart")
        store.set_meta("experiment_file", "[experiment]\nname = 'quickstart'\n")
    path = _write(tmp_path, SMALL)
    with pytest.raises(ConfigError, match="it holds experiment 'quickstart'"):
        run_experiment(load_experiment(path), out, progress=False)
    result = CliRunner().invoke(run, [str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 1 and "--out" in result.output and "Traceback" not in result.output
    with ResultStore(out / "store.sqlite") as store:
        assert store.meta()["experiment"] == "quickstart" and "quickstart" in store.meta()["experiment_file"]
        assert store.runs_frame().empty


def test_invalid_config_stops_cli_before_anything_runs(tmp_path: Path) -> None:
    path = _write(tmp_path, SMALL.replace("lr = 0.01", "lr = -1.0"))
    result = CliRunner().invoke(run, [str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 1 and "trainers.fast.lr" in result.output and "-1.0" in result.output
    assert not (tmp_path / "out").exists()
    bad_toml = _write(tmp_path, "[experiment\nname = 1", "bad.toml")
    result = CliRunner().invoke(run, [str(bad_toml)])
    assert result.exit_code == 1 and "bad.toml" in result.output and "valid TOML" in result.output
    assert "line 1: got '[experiment'" in result.output and "None" not in result.output


# ---------------------------------------------------------------------------------------------- failures


@dataclass(frozen=True)
class BoomConfig:
    """Options of the test trainer: it raises while ``fail`` is set in ``BOOM``, else does one GD-free epoch."""

    size: int = 1

    def __post_init__(self) -> None:
        check_number("size", self.size, low=1, integer=True)


BOOM = {"fail": True}


class Boom(Trainer):
    name = "boom"

    def fit(self, model, task, budget, seed, callbacks=(), loss=None):  # type: ignore[no-untyped-def]
        if BOOM["fail"]:
            raise RuntimeError("boom: simulated crash")
        monitor = Monitor(self, model, task, resolve_loss(task, loss), budget, seed, callbacks)
        monitor.begin()
        while not monitor.end_epoch():
            pass
        return monitor.finish()


@pytest.fixture
def boom_trainer():  # type: ignore[no-untyped-def]
    TRAINERS.register("boom")(lambda **options: Boom(BoomConfig(**options)))
    BOOM["fail"] = True
    yield
    TRAINERS._items.pop("boom")  # noqa: SLF001 - test-only registration


def test_failed_and_diverged_runs_are_recorded_and_never_stop_the_rest(tmp_path: Path, boom_trainer: None) -> None:
    text = SMALL.replace('trainer = ["fast", "plain"]', 'trainer = ["boom", "fast", "wild"]').replace(
        "[trainers.plain]", "[trainers.boom]").replace('algorithm = "sgd"\nlr = 0.1\nbatch_size = 16\n', "") + textwrap.dedent("""
        [trainers.wild]
        algorithm = "gd"
        lr = 1e6

        [[override]]
        match = { trainer = "wild" }
        set = { loss = "mse" }
        """)
    exp = load_experiment(_write(tmp_path, text))
    first = run_experiment(exp, tmp_path / "out", progress=False)
    assert first.counts == {"failed": 2, "ok": 2, "diverged": 2}
    with ResultStore.open(tmp_path / "out") as store:
        runs = store.runs_frame().set_index("label")
        assert set(runs.loc["boom", "status"]) == {"failed"}
        assert all("RuntimeError: boom: simulated crash" in m for m in runs.loc["boom", "message"])
        assert set(runs.loc["wild", "status"]) == {"diverged"}
        assert all("non-finite" in m for m in runs.loc["wild", "message"])
        assert set(runs.loc["fast", "status"]) == {"ok"}
    # a rerun keeps everything; --retry-failed reruns only the failed runs
    again = run_experiment(exp, tmp_path / "out", progress=False)
    assert again.counts == {} and "2 failed (kept" in again.plan.summary()
    BOOM["fail"] = False
    retried = run_experiment(exp, tmp_path / "out", progress=False, retry_failed=True)
    assert retried.counts == {"ok": 2}
    with ResultStore.open(tmp_path / "out") as store:
        runs = store.runs_frame()
        assert set(runs.loc[runs["label"] == "boom", "status"]) == {"ok"}
        assert runs.groupby("label")["attempts"].max().to_dict() == {"boom": 2, "fast": 1, "wild": 1}


# ---------------------------------------------------------------------------------------------- resume


def _frames(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    with ResultStore.open(out) as store:
        runs = store.runs_frame().sort_values("run_id").reset_index(drop=True)
        hist = store.history_frame().sort_values(["run_id", "epoch"]).reset_index(drop=True)
    return runs, hist


def test_resume_after_kill_9(tmp_path: Path) -> None:
    text = SMALL.replace("seeds = 2", "seeds = 4").replace("epochs = 3", "epochs = 20")
    path = _write(tmp_path, text)
    out = tmp_path / "killed"
    # the child kills itself with SIGKILL as soon as its 3rd run is committed: a deterministic point,
    # independent of how fast the machine is
    code = (
        "import os, signal, sys\n"
        "from trainlab.experiments.store import ResultStore\n"
        "from trainlab.cli.experiments import run\n"
        "save, saved = ResultStore.save, []\n"
        "def save_then_die(self, *args, **kwargs):\n"
        "    save(self, *args, **kwargs)\n"
        "    saved.append(1)\n"
        "    if len(saved) == 3:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "ResultStore.save = save_then_die\n"
        "run.main(sys.argv[1:])\n"
    )
    cmd = [sys.executable, "-c", code, str(path), "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == -signal.SIGKILL  # killed by SIGKILL right after the 3rd run was committed

    with ResultStore.open(out) as store:
        before = store.runs_frame().set_index("run_id")
        finished = set(before.index[before["status"] == "ok"])
        assert len(finished) == 3 and (before["status"] == "running").sum() <= 1
        # no partial rows: only finished runs have histories, each complete
        hist = store.history_frame()
        assert set(hist["run_id"]) == finished and len(hist) == 21 * len(finished)

    report = run_experiment(load_experiment(path), out, progress=False)
    assert report.counts == {"ok": 8 - len(finished)}
    runs, hist = _frames(out)
    assert len(runs) == 8 and set(runs["status"]) == {"ok"} and runs["run_id"].is_unique
    assert not hist.duplicated(["run_id", "epoch"]).any()
    assert hist.groupby("run_id")["epoch"].apply(list).map(lambda e: e == list(range(21))).all()
    after = runs.set_index("run_id")
    for run_id in finished:  # finished runs were not redone
        assert after.loc[run_id, "finished_at"] == before.loc[run_id, "finished_at"]
        assert after.loc[run_id, "attempts"] == 1
    # oracle: the same experiment run without interruption gives the same numbers
    run_experiment(load_experiment(path), tmp_path / "clean", progress=False)
    clean_runs, clean_hist = _frames(tmp_path / "clean")
    metrics = [c for c in runs.columns if c.startswith("final_")]
    pd.testing.assert_frame_equal(runs[["run_id", *metrics]], clean_runs[["run_id", *metrics]])
    numeric = ["run_id", "epoch", "train_loss", "val_loss", "test_metric", "sample_evals"]
    pd.testing.assert_frame_equal(hist[numeric], clean_hist[numeric])


# ---------------------------------------------------------------------------------------------- executors


def test_process_pool_gives_the_same_results_as_inline(tmp_path: Path) -> None:
    exp = load_experiment(_write(tmp_path, SMALL))
    run_experiment(exp, tmp_path / "inline", progress=False)
    report = run_experiment(exp, tmp_path / "pool", executor="process", workers=2, progress=False)
    assert report.counts == {"ok": 4}
    (r1, h1), (r2, h2) = _frames(tmp_path / "inline"), _frames(tmp_path / "pool")
    pd.testing.assert_frame_equal(
        r1.drop(columns=["seconds", "cpu_seconds", "started_at", "finished_at"]), r2.drop(columns=["seconds", "cpu_seconds", "started_at", "finished_at"])
    )
    pd.testing.assert_frame_equal(h1.drop(columns=["seconds"]), h2.drop(columns=["seconds"]))
    with ResultStore.open(tmp_path / "inline") as a, ResultStore.open(tmp_path / "pool") as b:
        for run_id in r1["run_id"]:
            wa, wb = a.result(run_id).state_dict, b.result(run_id).state_dict
            assert wa is not None and wb is not None and all((wa[k] == wb[k]).all() for k in wa)


def test_ray_executor_gives_the_same_results_as_inline(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (optional extra trainlab[ray])")
    exp = load_experiment(_write(tmp_path, SMALL))
    run_experiment(exp, tmp_path / "inline", progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    events: list[tuple] = []
    try:
        report = run_experiment(exp, tmp_path / "ray", executor="ray", progress=False)
        jobs = [Job((r.run_id,), (r.spec,), None) for r in exp.runs[:1]]
        outcomes = list(make_executor("ray").run(jobs, events.append))
    finally:
        ray.shutdown()
    assert report.counts == {"ok": 4}
    # workers report progress: a start event, then one event per finished epoch, up to the budget's last
    epochs = exp.runs[0].spec.budget.epochs
    assert len(outcomes) == 1 and events[0][0] == "start" and {e[0] for e in events[1:]} == {"epoch"}
    reported = [e[2] for e in events[1:]]
    assert reported == list(range(epochs + 1 - len(reported), epochs + 1)) and len(reported) >= epochs
    (r1, h1), (r2, h2) = _frames(tmp_path / "inline"), _frames(tmp_path / "ray")
    metrics = ["run_id", "status", *[c for c in r1.columns if c.startswith("final_")], "best_epoch", "sample_evals"]
    pd.testing.assert_frame_equal(r1[metrics], r2[metrics])
    pd.testing.assert_frame_equal(h1.drop(columns=["seconds"]), h2.drop(columns=["seconds"]))


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_run_status_export(tmp_path: Path) -> None:
    path = _write(tmp_path, SMALL)
    out = tmp_path / "out"
    runner = CliRunner()
    dry = runner.invoke(run, [str(path), "--out", str(out), "--dry-run"])
    assert dry.exit_code == 0 and "4 runs: 0 done" in dry.output and "4 to run" in dry.output
    assert not out.exists()
    done = runner.invoke(run, [str(path), "--out", str(out), "--no-progress"])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(status, [str(path), "--out", str(out)])
    assert shown.exit_code == 0 and "4 runs: 4 done (ok 4, diverged 0), 0 to run" in shown.output
    exported = runner.invoke(export, [str(out), "--format", "parquet"])
    assert exported.exit_code == 0
    frame = pd.read_parquet(out / "export" / "runs.parquet")
    with ResultStore.open(out) as store:
        assert sorted(frame["run_id"]) == sorted(store.runs())
    missing = runner.invoke(export, [str(tmp_path)])
    assert missing.exit_code == 1 and "no result store" in missing.output


def test_quickstart_grid() -> None:
    exp = quickstart_experiment()
    cells = {(r.spec.task, r.spec.model, r.spec.model_options.get("width")) for r in exp.runs}
    assert cells == {("bcw", "mlp1", None), ("bcw", "mlp2", None), ("spiral", "spiral-mlp", 100),
                     ("spiral", "spiral-mlp", 1000)}
    assert set(exp.labels) == {"sgd", "nag", "adam", "rmsprop", "shade"}
    assert all(r.spec.trainer in TRAINERS for r in exp.runs)
    assert len(exp.runs) == 4 * len(exp.labels) * 3
    spiral_adam = {r.spec.trainer_options["lr"] for r in exp.runs if r.spec.task == "spiral" and r.label == "adam"}
    assert spiral_adam == {0.01}
    assert quickstart.name == "quickstart"


def test_sweep_engine_matches_single_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trainlab.experiments.executors

    calls: list[int] = []
    real = trainlab.experiments.executors.run_sweep

    def spy(specs, **options):  # type: ignore[no-untyped-def]
        calls.append(len(specs))
        return real(specs, **options)

    monkeypatch.setattr(trainlab.experiments.executors, "run_sweep", spy)
    text = SMALL.replace('trainer = ["fast", "plain"]', 'trainer = ["gd", "fast"]\n"trainer_options.lr" = [0.1, 0.5]')
    text = text.replace('lr = 0.01\nbatch_size = 16', 'batch_size = 16')
    text = _drop_tables(text, "plain")
    single = load_experiment(_write(tmp_path, text))
    swept = load_experiment(_write(tmp_path, text.replace('device = "cpu"', 'device = "cpu"\nengine = "sweep"'), "s.toml"))
    assert [r.run_id for r in single.runs] == [r.run_id for r in swept.runs]  # the engine is not identity
    run_experiment(single, tmp_path / "single", progress=False)
    report = run_experiment(swept, tmp_path / "sweep", progress=False)
    assert calls == [4] and report.counts == {"ok": 8}  # the 4 gd runs in one sweep, adam alone
    (r1, h1), (r2, h2) = _frames(tmp_path / "single"), _frames(tmp_path / "sweep")
    assert list(r1["run_id"]) == list(r2["run_id"])
    for col in ("final_train_loss", "final_test_metric", "best_epoch"):
        assert r2[col].to_numpy() == pytest.approx(r1[col].to_numpy(), rel=1e-4, abs=1e-6), col
    assert h2["train_loss"].to_numpy() == pytest.approx(h1["train_loss"].to_numpy(), rel=1e-4)


def test_sweep_is_split_across_workers_without_changing_a_number(tmp_path: Path) -> None:
    from trainlab.experiments.runner import _jobs, plan_experiment

    text = SMALL.replace('trainer = ["fast", "plain"]', 'trainer = ["gd"]\n"trainer_options.lr" = [0.1, 0.2, 0.5]')
    text = text.replace('lr = 0.01\nbatch_size = 16', 'batch_size = 16').replace('device = "cpu"', 'device = "cpu"\nengine = "sweep"')
    text = _drop_tables(text, "fast", "plain")
    exp = load_experiment(_write(tmp_path, text))
    with ResultStore(tmp_path / "plan.sqlite") as store:
        plan = plan_experiment(exp, store)
    assert [len(j.run_ids) for j in _jobs(plan, None, 1)] == [6]
    assert [len(j.run_ids) for j in _jobs(plan, None, 4)] == [2, 2, 1, 1]
    assert all(j.sweep for j in _jobs(plan, None, 8))  # a share of one cell still goes through the engine
    run_experiment(exp, tmp_path / "one", progress=False)
    report = run_experiment(exp, tmp_path / "two", executor="process", workers=2, progress=False)
    assert report.counts == {"ok": 6}
    (r1, h1), (r2, h2) = _frames(tmp_path / "one"), _frames(tmp_path / "two")
    for col in ("final_train_loss", "final_test_metric", "best_epoch"):
        assert list(r2[col]) == list(r1[col]), col
    assert list(h2["train_loss"]) == list(h1["train_loss"])


@pytest.mark.slow
def test_quickstart_runs_and_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    result = CliRunner().invoke(quickstart, ["--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "report" / "report.md").is_file()
    with ResultStore.open(out) as store:
        runs = store.runs_frame()
    assert len(runs) == len(quickstart_experiment().runs) and set(runs["status"]) <= {"ok", "diverged"}
    assert runs.groupby("label")["run_id"].count().min() == 12  # 2 tasks × 2 models × 3 seeds per trainer


SHIPPED = sorted((Path(__file__).parents[1] / "experiments").rglob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_experiment_files_validate(path: Path) -> None:
    experiment = load_experiment(path)
    folder = path.parent.name
    assert experiment.name == (path.stem if folder == "experiments" else f"{folder}-{path.stem}") and experiment.runs
    assert len({r.run_id for r in experiment.runs}) == len(experiment.runs)


def test_seeds_per_sub_grid_and_per_override(tmp_path) -> None:
    from trainlab.experiments.config import parse_experiment

    data = {
        "experiment": {"name": "mixed", "seeds": 3},
        "defaults": {"model": "mlp1", "trainer": "adam", "budget": {"epochs": 1}},
        "grid": [{"task": ["bcw"]}, {"task": ["bhp"], "seeds": 2}, {"task": ["wqc"], "seeds": [4]}],
        "override": [{"match": {"task": "bcw"}, "set": {"seeds": 1}}],
    }
    exp = parse_experiment(data)
    counts = {t: sorted(r.seed_index for r in exp.runs if r.spec.task == t) for t in ("bcw", "bhp", "wqc")}
    assert counts == {"bcw": [0], "bhp": [0, 1], "wqc": [4]}
    for bad, where in (({"task": ["bhp"], "seeds": 0}, "grid[0].seeds"), ({"task": ["bhp"], "seeds": [1, 1]}, "grid[0].seeds")):
        with pytest.raises(ConfigError) as err:
            parse_experiment({**data, "grid": [bad], "override": []})
        assert err.value.field.endswith(where)
