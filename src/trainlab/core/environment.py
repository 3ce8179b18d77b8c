"""The environment that produced a result: versions, hardware, device and git revision."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from trainlab.core.config import check_number


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_revision(path: str | Path | None = None) -> str | None:
    """The git commit of the checkout holding ``path`` (default: this package), with ``+dirty`` if modified."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def environment(device: str | torch.device = "cpu") -> dict[str, object]:
    """A JSON-serialisable record of everything that can change a run's numbers."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "trainlab": _version("trainlab"),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "device": str(torch.device(device)),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "git_revision": git_revision(),
    }


def set_threads(n: int) -> None:
    """Use ``n`` CPU threads in this process for torch's intra-op parallelism and for the BLAS/OpenMP pools of
    NumPy and SciPy (through ``threadpoolctl``; pycma's covariance algebra runs there). This is what the command
    line's ``--threads`` / ``TRAINLAB_THREADS`` set, and process-pool and Ray workers use 1. On a machine shared
    with other jobs, 1 per process is often fastest: an idle BLAS worker thread spins while it waits, so on an
    oversubscribed machine a second BLAS thread costs CPU time without saving wall time."""
    check_number("threads", n, low=1, integer=True)
    torch.set_num_threads(int(n))
    threadpool_limits(limits=int(n))
