"""The ``trainlab`` command: a thin layer over the Python API (one sub-module per area)."""
from __future__ import annotations

import signal
from types import FrameType
from typing import Any

import click

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
from trainlab.core.config import ConfigError
from trainlab.core.plugins import load_plugins


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (and SIGINT, even when a non-interactive shell started us ignoring it) stop a command the
    way Ctrl-C does: finished runs are kept, workers are stopped, the command exits with status 130."""
    raise KeyboardInterrupt


def one_line(err: BaseException) -> str:
    """An exception as one line: its message, or its type when the message is empty."""
    text = " ".join(str(err).split())
    return text if isinstance(err, ConfigError) else f"{type(err).__name__}: {text}" if text else type(err).__name__


class _OneLineUsageError(click.UsageError):
    """A usage error shown as one line on stderr (click's usual form adds the usage and a help hint)."""

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {' '.join(self.format_message().split())}{hint}", err=True)


class _Main(click.Group):
    """The ``trainlab`` group: every failure of a sub-command ends in one line on stderr and a non-zero exit
    status; ``--debug`` shows the traceback instead."""

    def invoke(self, ctx: click.Context) -> Any:
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            if ctx.params.get("debug"):
                raise
            raise _OneLineUsageError(err.format_message(), err.ctx) from None
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            if ctx.params.get("debug"):
                raise
            click.echo("interrupted", err=True)
            raise SystemExit(130) from None
        except Exception as err:  # noqa: BLE001 - the one place where any failure becomes one line
            if ctx.params.get("debug"):
                raise
            hint = "" if isinstance(err, ConfigError) else " (rerun with --debug for the traceback)"
            raise click.ClickException(one_line(err) + hint) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="trainlab")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    envvar="TRAINLAB_THREADS",
    default=None,
    help="CPU threads of torch and of NumPy/SciPy's BLAS (default: the libraries' choice). 1 is fastest for "
    "small models and on a busy machine; process-pool and Ray workers always use 1.",
)
@click.option("--debug", is_flag=True, help="Show the full traceback of an error instead of one line.")
def main(threads: int | None, debug: bool) -> None:
    """Study how neural networks are trained: compare trainers fairly, try dynamic losses,
    look at curvature, and reproduce experiments."""
    try:
        load_plugins()
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    if threads is not None:
        from trainlab.core.environment import set_threads  # start-up time: only commands that compute import torch

        set_threads(threads)


for command in (
    data, models, train, lr_find, search, run, status, export, report, quickstart, curvature, dynamic_loss,
    gradient_flow,
):
    main.add_command(command)


def _same_help_options(command: click.Command) -> None:
    """``-h``/``--help`` on every command, also when one is invoked on its own: click caches each command's
    help option the first time it is built, with the names of the context it was built in."""
    command.context_settings.setdefault("help_option_names", ["-h", "--help"])
    for sub in getattr(command, "commands", {}).values():
        _same_help_options(sub)


_same_help_options(main)
