"""The ``trainlab`` command: a thin layer over the Python API (one sub-module per area)."""
from __future__ import annotations

import click
import torch

from trainlab import __version__
from trainlab.cli.curvature import curvature
from trainlab.cli.data import data
from trainlab.cli.experiments import export, quickstart, run, status
from trainlab.cli.models import models
from trainlab.cli.population import search
from trainlab.cli.recurrent import gradient_flow
from trainlab.cli.report import report
from trainlab.cli.sweep import dynamic_loss
from trainlab.cli.train import lr_find, train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="trainlab")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    envvar="TRAINLAB_THREADS",
    default=None,
    help="torch intra-op threads (default: torch's choice). 1 is fastest for small models and on a busy "
    "machine; process-pool and Ray workers always use 1.",
)
def main(threads: int | None) -> None:
    """Study how neural networks are trained: compare trainers fairly, try dynamic losses,
    look at curvature, and reproduce experiments."""
    if threads is not None:
        torch.set_num_threads(threads)


for command in (
    data, models, train, lr_find, search, run, status, export, report, quickstart, curvature, dynamic_loss,
    gradient_flow,
):
    main.add_command(command)
