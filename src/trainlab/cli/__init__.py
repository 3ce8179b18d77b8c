"""The ``trainlab`` command: a thin layer over the Python API (one sub-module per area)."""
from __future__ import annotations

import click

from trainlab import __version__
from trainlab.cli.curvature import curvature
from trainlab.cli.data import data
from trainlab.cli.experiments import export, quickstart, run, status
from trainlab.cli.models import models
from trainlab.cli.population import search
from trainlab.cli.report import report
from trainlab.cli.sweep import dynamic_loss
from trainlab.cli.train import lr_find, train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="trainlab")
def main() -> None:
    """Study how neural networks are trained: compare trainers fairly, try dynamic losses,
    look at curvature, and reproduce experiments."""


for command in (
    data, models, train, lr_find, search, run, status, export, report, quickstart, curvature, dynamic_loss
):
    main.add_command(command)
