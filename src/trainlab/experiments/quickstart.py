"""The quick-start experiment: ``quickstart.toml`` (packaged), restricted to the trainers installed.

``trainlab quickstart`` runs it and then writes its report (the report layer sits above this one).
"""
from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

from trainlab.experiments.config import Experiment, parse_experiment
from trainlab.experiments.runner import RunReport, run_experiment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_OUT = Path("trainlab-quickstart")


def quickstart_text() -> str:
    """The packaged experiment file."""
    return resources.files("trainlab.experiments").joinpath("quickstart.toml").read_text()


def quickstart_experiment() -> Experiment:
    """The quick-start grid with the trainer labels whose algorithm is registered (it grows with them)."""
    from trainlab.trainers import TRAINERS

    text = quickstart_text()
    data = tomllib.loads(text)
    variants = data["trainers"]
    data["grid"]["trainer"] = [
        label for label in data["grid"]["trainer"] if variants.get(label, {}).get("algorithm", label) in TRAINERS
    ]
    return parse_experiment(data, source="quickstart.toml", default_name="quickstart", text=text)


def run_quickstart(out: str | Path = DEFAULT_OUT, **options: Any) -> RunReport:
    """Run (or resume) the quick start into ``out``; ``options`` go to :func:`run_experiment`."""
    return run_experiment(quickstart_experiment(), out, **options)
