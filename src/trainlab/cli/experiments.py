"""``trainlab run``, ``status``, ``export`` and ``quickstart``: thin commands over :mod:`trainlab.experiments`."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from trainlab.cli.lazy import LazyChoice
from trainlab.core.config import ConfigError

if TYPE_CHECKING:
    from trainlab.experiments.config import Experiment
    from trainlab.experiments.runner import Plan, RunReport


def _load(path: str) -> Experiment:
    from trainlab.experiments.config import load_experiment  # start-up time: see trainlab.cli.lazy

    try:
        return load_experiment(path)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


def _plan_table(plan: Plan) -> Table:
    """One row per grid cell (label, task, model and the options varied within a label), with run counts."""
    from trainlab.experiments.progress import run_name, varied_options  # start-up time: see trainlab.cli.lazy

    varied = [k for k in varied_options(plan.experiment.runs) if k not in ("task", "model")]
    table = Table(title=f"{plan.experiment.name}: {plan.summary()}")
    names = ("label", "task", "model", *(["varied options"] if varied else []))
    for column in (*names, "runs", "ok", "diverged", "failed", "to run"):
        table.add_column(column, justify="left" if column in names else "right")
    todo = {r.run_id for r in plan.todo}
    rows: dict[tuple[str, ...], list[int]] = {}
    for run in plan.experiment.runs:
        options = run_name(run, varied).split(" ")[1:-1]  # without the label and the seed index
        key = (run.label, run.spec.task, run.spec.model, *([" ".join(options)] if varied else []))
        row = rows.setdefault(key, [0, 0, 0, 0, 0])
        status = plan.status.get(run.run_id)
        row[0] += 1
        for i, name in enumerate(("ok", "diverged", "failed"), start=1):
            row[i] += status == name
        row[4] += run.run_id in todo
    for key, counts in rows.items():
        table.add_row(*key, *map(str, counts))
    return table


def _execute(experiment: Experiment, out: Path, executor: str | None, workers: int, address: str | None,
             retry_failed: bool, data_dir: str | None, progress: bool, console: Console) -> RunReport:
    from trainlab.experiments.runner import run_experiment  # start-up time: see trainlab.cli.lazy

    name = executor or ("process" if workers > 1 else "inline")
    try:
        return run_experiment(experiment, out, executor=name, workers=workers, address=address,
                              retry_failed=retry_failed, data_dir=data_dir, progress=progress, console=console)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: rerun the same command to resume ({out})")
        raise SystemExit(130) from None


def _executors() -> tuple[str, ...]:
    from trainlab.experiments.executors import EXECUTORS  # start-up time: see trainlab.cli.lazy

    return EXECUTORS


def _execution_options(workers: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options shared by ``run`` and ``quickstart``."""
    options = [
        click.option("--out", "out", type=click.Path(file_okay=False), default=None,
                     help="Experiment folder holding store.sqlite."),
        click.option("--workers", type=click.IntRange(min=1), default=workers, show_default=True,
                     help="Parallel workers (implies --executor process when > 1); a sweep is split into this many jobs."),
        click.option("--executor", type=LazyChoice(_executors), default=None,
                     help="inline (one process), process (local pool) or ray."),
        click.option("--address", default=None, help="Ray cluster address (with --executor ray)."),
        click.option("--retry-failed", is_flag=True, help="Also rerun runs stored as failed."),
        click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="Raw data root (default $TRAINLAB_DATA)."),
        click.option("--progress/--no-progress", default=True, show_default=True, help="Show the progress bar."),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@click.command("run")
@click.argument("experiment_file", type=click.Path(exists=True, dir_okay=False))
@_execution_options(workers=1)
@click.option("--dry-run", is_flag=True, help="Validate and show the plan without running anything.")
def run(experiment_file: str, out: str | None, workers: int, executor: str | None, address: str | None,
        retry_failed: bool, data_dir: str | None, progress: bool, dry_run: bool) -> None:
    """Expand EXPERIMENT_FILE (TOML), show the plan and run the runs not yet in the store
    (in --out, default ./runs/<experiment name>)."""
    from trainlab.experiments.runner import default_out_dir, experiment_status  # start-up time: see trainlab.cli.lazy

    console = Console(stderr=True)
    experiment = _load(experiment_file)
    folder = Path(out) if out else default_out_dir(experiment)
    plan = experiment_status(experiment, folder)
    console.print(_plan_table(plan))
    if dry_run:
        return
    report = _execute(experiment, folder, executor, workers, address, retry_failed, data_dir, progress, console)
    console.print(f"ran {sum(report.counts.values())} runs {report.counts or ''} → {report.store_path}")
    if report.elsewhere:
        console.print(f"{len(report.elsewhere)} runs were claimed or finished by another runner on this store")


@click.command("status")
@click.argument("experiment_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Experiment folder (default ./runs/<experiment name>).")
def status(experiment_file: str, out: str | None) -> None:
    """Show how many runs of EXPERIMENT_FILE are done, failed or still to run."""
    from trainlab.experiments.runner import experiment_status  # start-up time: see trainlab.cli.lazy

    experiment = _load(experiment_file)
    Console().print(_plan_table(experiment_status(experiment, Path(out) if out else None)))


@click.command("export")
@click.argument("experiment_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "tensorboard", "mlflow"]), default="csv",
              show_default=True, help="Files (csv, parquet), a TensorBoard log folder or an MLflow tracking store.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default <dir>/export, <dir>/tensorboard or <dir>/mlflow).")
def export(experiment_dir: str, fmt: str, out: str | None) -> None:
    """Export EXPERIMENT_DIR's store (runs, histories, records) to CSV or Parquet files, TensorBoard logs
    (one run folder per run; needs the tensorboard extra) or an MLflow store (needs the mlflow extra)."""
    from trainlab.experiments.store import ResultStore  # start-up time: see trainlab.cli.lazy
    from trainlab.report import export as exporters  # start-up time: see trainlab.cli.lazy

    try:
        if fmt == "tensorboard":
            folder = Path(out or Path(experiment_dir) / "tensorboard")
            runs = exporters.to_tensorboard(experiment_dir, folder)
            click.echo(f"{len(runs)} runs written; view with: tensorboard --logdir {folder}")
            return
        if fmt == "mlflow":
            uri = exporters.to_mlflow(experiment_dir, Path(out or Path(experiment_dir) / "mlflow"))
            click.echo(f"runs logged to {uri}; view with: mlflow ui --backend-store-uri {uri}")
            return
        with ResultStore.open(experiment_dir) as store:
            paths = store.export(out or Path(experiment_dir) / "export", fmt)
    except FileNotFoundError as err:
        raise click.ClickException(str(err)) from None
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    for path in paths:
        click.echo(str(path))


@click.command("quickstart")
@_execution_options(workers=2)
@click.option("--report/--no-report", default=True, show_default=True, help="Write the report at the end.")
def quickstart(out: str | None, workers: int, executor: str | None, address: str | None, retry_failed: bool,
               data_dir: str | None, progress: bool, report: bool) -> None:
    """Run the packaged quick-start experiment (offline data, a few minutes) and write its report
    (in --out, default ./trainlab-quickstart)."""
    from trainlab.experiments.quickstart import DEFAULT_OUT, quickstart_experiment  # start-up time: see trainlab.cli.lazy
    from trainlab.experiments.runner import experiment_status  # start-up time: see trainlab.cli.lazy

    console = Console(stderr=True)
    folder = Path(out) if out else DEFAULT_OUT
    experiment = quickstart_experiment()
    console.print(_plan_table(experiment_status(experiment, folder)))
    _execute(experiment, folder, executor, workers, address, retry_failed, data_dir, progress, console)
    if report:
        from trainlab.report import write_report  # start-up time: see trainlab.cli.lazy

        console.print(f"report: {write_report(folder)}")
    console.print(f"store: {folder / 'store.sqlite'}")
