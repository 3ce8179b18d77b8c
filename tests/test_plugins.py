"""A third-party package's optimizer, searcher and model, found through the ``trainlab.plugins`` entry point,
are usable by name from ``trainlab train`` and from an experiment run by a process pool (whose workers load the
plugin themselves). The package is examples/plugin, "installed" as a dist-info folder on PYTHONPATH."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin" / "trainlab_example_plugin.py"


def install(site: Path, module: str = EXAMPLE.read_text(), name: str = "trainlab_example_plugin") -> Path:
    """A site folder holding ``module`` and a dist-info declaring it under ``trainlab.plugins``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{name}.py").write_text(module)
    info = site / f"{name}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[trainlab.plugins]\nexample = {name}\n")
    return site


def trainlab(args: list[str], site: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = [str(ROOT / "src")] + ([str(site)] if site else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "TRAINLAB_THREADS": "1"}
    code = "import sys; from trainlab.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


SPIRAL = ["--task", "spiral", "--set", "task.points=30", "--epochs", "2", "--device", "cpu"]


def test_train_uses_a_plugin_optimizer_and_model(tmp_path: Path) -> None:
    site = install(tmp_path / "site")
    out = tmp_path / "run"
    res = trainlab(["train", *SPIRAL, "--model", "example-mlp", "--set", "model.width=4", "--trainer", "example-adamax",
                    "--out", str(out)], site, tmp_path)
    assert res.returncode == 0, res.stderr
    config = json.loads((out / "result.json").read_text())["config"]
    assert config["trainer"] == "example-adamax" and config["model"] == "example-mlp"
    assert config["trainer_options"]["lr"] == 2e-3 and config["model_options"]["width"] == 4


def test_without_the_plugin_the_names_are_one_line_errors(tmp_path: Path) -> None:
    res = trainlab(["train", *SPIRAL, "--model", "spiral-mlp", "--trainer", "example-adamax", "--out", str(tmp_path / "r")],
                   None, tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("Error: trainer: got 'example-adamax'; allowed: one of ")


def test_a_broken_plugin_is_named_in_one_line(tmp_path: Path) -> None:
    site = install(tmp_path / "site", "raise RuntimeError('no GPU driver')\n", name="broken_plugin")
    res = trainlab(["train", *SPIRAL, "--model", "example-mlp", "--out", str(tmp_path / "r")], site, tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "Error: plugin example: got 'broken_plugin'; allowed: an entry point that loads (RuntimeError: no GPU driver)"
    ]


def test_an_experiment_with_plugin_names_runs_in_a_process_pool(tmp_path: Path) -> None:
    site = install(tmp_path / "site")
    experiment = tmp_path / "plugin-demo.toml"
    experiment.write_text(textwrap.dedent("""
        [experiment]
        name = "plugin-demo"
        device = "cpu"

        [defaults]
        task = "spiral"
        model = "example-mlp"
        task_options = { points = 30 }
        model_options = { width = 4 }
        budget = { epochs = 2 }

        [trainers.adamax]
        algorithm = "example-adamax"
        lr = 0.01

        [trainers.es]
        algorithm = "example-es"
        population_size = 10
        evals_per_epoch = 50

        [grid]
        trainer = ["adamax", "es"]
    """))
    res = trainlab(["run", str(experiment), "--workers", "2", "--no-progress", "--out", str(tmp_path / "out")],
                   site, tmp_path)
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(tmp_path / "out" / "store.sqlite") as db:
        rows = db.execute("select status, spec from runs").fetchall()
    assert sorted(r[0] for r in rows) == ["ok", "ok"]
    trainers = sorted(json.loads(r[1])["trainer"] for r in rows)
    assert trainers == ["example-adamax", "example-es"]
