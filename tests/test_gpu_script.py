"""``bench/gpu.sh``: refuses at once, in one line, where no CUDA device exists; ``--cpu`` runs every step end
to end with tiny sizes (slow: it imports torch in five processes and compiles one model)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import require_dataset

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="bench/gpu.sh needs bash and coreutils' timeout")


def run(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=tmp,
                          timeout=1200)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_cuda_the_script_stops_with_one_line(tmp_path: Path) -> None:
    done = run(str(tmp_path / "out"), tmp=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0] and "--cpu" in lines[0]
    assert not (tmp_path / "out").exists()


def test_usage_error(tmp_path: Path) -> None:
    done = run(tmp=tmp_path)
    assert done.returncode == 2 and "usage: bench/gpu.sh" in done.stderr


@pytest.mark.slow
def test_cpu_smoke_run_writes_every_step(tmp_path: Path, data_root: Path) -> None:
    require_dataset(data_root, "mnist")  # bcw and the spiral come with the package
    out = tmp_path / "figures"
    done = run("--cpu", str(out), tmp=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    steps = (out / "steps.tsv").read_text().splitlines()[1:]
    assert [line.split("\t")[:2] for line in steps] == [[name, "ok"] for name in ("population", "shade", "sweep", "train")]
    assert (out / "shade-lenet5" / "result.json").exists()
    assert "cells/s" in (out / "sweep.txt").read_text()
    assert "compile = true" in (out / "train.txt").read_text()
