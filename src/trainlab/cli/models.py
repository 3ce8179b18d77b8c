"""``trainlab models``: list the registered architectures with their parameter counts and layers."""
from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from trainlab.core.config import ConfigError


def _shape(task: str | None, input_shape: str | None, outputs: int | None) -> tuple[tuple[int, ...], int] | None:
    if task is not None:
        try:
            from trainlab.data import load_task  # start-up time: see trainlab.cli.lazy
        except ImportError as err:
            raise click.UsageError(f"cannot load tasks ({err}); give --input-shape and --outputs instead") from None
        loaded = load_task(task)
        return loaded.input_shape, loaded.n_outputs
    if (input_shape is None) != (outputs is None):
        raise click.UsageError("--input-shape and --outputs go together")
    if input_shape is None or outputs is None:
        return None
    try:
        return tuple(int(s) for s in input_shape.split(",")), outputs
    except ValueError:
        message = f"got {input_shape!r}; expected integers such as 1,32,32"
        raise click.BadParameter(message, param_hint="--input-shape") from None


@click.group("models")
def models() -> None:
    """Model architectures (registry names usable in experiment files)."""


@models.command("list")
@click.option("--task", default=None, help="Take the input shape and output size from this task.")
@click.option("--input-shape", default=None, help="Input shape without the batch dimension, e.g. 1,32,32.")
@click.option("--outputs", type=int, default=None, help="Number of outputs (classes, or 1 for regression).")
@click.option("--layers", "show_layers", is_flag=True, help="Also print every model's layer list.")
def list_models(task: str | None, input_shape: str | None, outputs: int | None, show_layers: bool) -> None:
    """Names, parameter counts and layers, for a task's shape or each model's reference set-up."""
    from trainlab.models import MODELS, model_summary  # start-up time: see trainlab.cli.lazy

    given = _shape(task, input_shape, outputs)
    console = Console()
    table = Table(title="models" + (f" for {task}" if task else ""))
    for column in ("name", "input → outputs", "parameters", "weight layers", "description"):
        table.add_column(column, justify="right" if column in ("parameters", "weight layers") else "left")
    summaries = []
    for name in MODELS.names():
        shape, n_out = given or MODELS.get(name).reference
        io = f"{'×'.join(map(str, shape))} → {n_out}"
        try:
            summary = model_summary(name, shape, n_out)
        except ConfigError as err:
            table.add_row(name, io, "—", "—", f"not applicable: {err.allowed}")
            continue
        summaries.append(summary)
        table.add_row(name, io, f"{summary['parameters']:,}", str(summary["weight_layers"]), summary["description"])
    console.print(table)
    if show_layers:
        for summary in summaries:
            console.print(f"\n[bold]{summary['name']}[/bold] {summary['options']}")
            for layer in summary["layers"]:
                console.print(f"  {layer}", markup=False)
