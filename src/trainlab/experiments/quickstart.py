"""The quick-start experiment: ``quickstart.toml``, packaged with trainlab.

``trainlab quickstart`` runs it and then writes its report (the report layer sits above this one).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from trainlab.experiments.config import Experiment, parse_experiment, tomllib
from trainlab.experiments.runner import RunReport, run_experiment

DEFAULT_OUT = Path("trainlab-quickstart")


def quickstart_text() -> str:
    """The packaged experiment file."""
    return resources.files("trainlab.experiments").joinpath("quickstart.toml").read_text()


def quickstart_experiment() -> Experiment:
    """The quick-start experiment, parsed and validated."""
    text = quickstart_text()
    return parse_experiment(tomllib.loads(text), source="quickstart.toml", default_name="quickstart", text=text)


def run_quickstart(out: str | Path = DEFAULT_OUT, **options: Any) -> RunReport:
    """Run (or resume) the quick start into ``out``; ``options`` go to :func:`run_experiment`."""
    return run_experiment(quickstart_experiment(), out, **options)
