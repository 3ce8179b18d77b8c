"""``trainlab data list | verify | download``: the tasks and the state of their raw files."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from trainlab.core.config import ConfigError

_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data root (default: $TRAINLAB_DATA, then the user cache).",
)
_STYLE = {"ok": "green", "missing": "yellow", "corrupt": "bold red"}


@click.group("data")
def data() -> None:
    """Tasks and their raw data sets."""


@data.command("list")
@_DATA_DIR
def list_tasks(data_dir: Path | None) -> None:
    """List the tasks: kind, input shape, outputs, and whether their files are present."""
    from trainlab.data import data_root, task_inventory  # start-up time: see trainlab.cli.lazy

    table = Table(title=f"tasks (data root: {data_root(data_dir)})")
    for column in ("task", "kind", "input", "outputs", "data set"):
        table.add_column(column)
    table.add_column("files", no_wrap=True)
    for row in task_inventory(data_dir):
        if not row["files_expected"]:
            files = "[green]built in[/]"
        else:
            ok = row["files_present"] == row["files_expected"]
            files = f"[{'green' if ok else 'yellow'}]{row['files_present']}/{row['files_expected']} present[/]"
        table.add_row(row["task"], row["kind"], row["input"], row["outputs"], ", ".join(row["datasets"]) or "-", files)
    Console().print(table)


def _report(results: dict[str, dict[str, str]]) -> None:
    table = Table()
    for column in ("data set", "file", "status"):
        table.add_column(column)
    for dataset, files in results.items():
        for name, status in files.items():
            table.add_row(dataset, name, f"[{_STYLE[status]}]{status}[/]")
    Console().print(table)


@data.command("verify")
@click.argument("names", nargs=-1)
@_DATA_DIR
def verify(names: tuple[str, ...], data_dir: Path | None) -> None:
    """Check the checksum of every file of NAMES (tasks or data sets; default: all data sets).

    Exits with status 1 when a file is corrupted, or when a data set named explicitly is incomplete.
    """
    from trainlab.data import verify_datasets  # start-up time: see trainlab.cli.lazy

    try:
        results = verify_datasets(names, data_dir)
    except ConfigError as err:
        raise click.UsageError(str(err)) from None
    _report(results)
    statuses = [s for files in results.values() for s in files.values()]
    if "corrupt" in statuses or (names and "missing" in statuses):
        raise SystemExit(1)


@data.command("download")
@click.argument("names", nargs=-1, required=True)
@_DATA_DIR
def download_cmd(names: tuple[str, ...], data_dir: Path | None) -> None:
    """Download the missing files of NAMES (tasks or data sets) from the official sources, then verify."""
    from trainlab.data import DataError, download  # start-up time: see trainlab.cli.lazy

    try:
        _report(download(names, data_dir))
    except ConfigError as err:
        raise click.UsageError(str(err)) from None
    except (DataError, OSError) as err:
        raise click.ClickException(str(err)) from None
