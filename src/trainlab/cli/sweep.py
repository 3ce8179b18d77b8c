"""``trainlab dynamic-loss``: Γ(t) plots, contour figures of swept experiments, the long-run dynamics
panel and the instability threshold against 1/lr (thin wrappers over ``trainlab.losses``,
``trainlab.studies.dynamics`` and ``trainlab.report``)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from trainlab.core.budget import Budget

if TYPE_CHECKING:
    from trainlab.experiments.spec import RunSpec  # start-up time: see trainlab.cli.lazy


@click.group("dynamic-loss")
def dynamic_loss() -> None:
    """Dynamic loss functions: Γ(t), contour figures, dynamics panel, threshold (Ruiz-García et al. 2021)."""


@dynamic_loss.command("gamma")
@click.option("--amplitude", "-A", type=float, required=True, help="Amplitude A ≥ 1.")
@click.option("--period", "-T", type=float, required=True, help="Period T in steps.")
@click.option("--classes", "-C", type=int, default=3, show_default=True)
@click.option("--steps", type=int, default=None, help="Steps to draw (default: 2 C T).")
@click.option("--raw", is_flag=True, help="Raw factors Γ̂ instead of the normalised Γ.")
@click.option("--code-period", is_flag=True, help="The printed thesis code's period of ⌊T⌋ + 1 steps.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("gamma.png"), show_default=True)
def gamma(amplitude: float, period: float, classes: int, steps: int | None, raw: bool, code_period: bool,
          out: Path) -> None:
    """Plot Γ_j(t), one line per class."""
    from trainlab.losses import DynamicSchedule  # start-up time: see trainlab.cli.lazy
    from trainlab.report import save_figure  # start-up time: see trainlab.cli.lazy

    from matplotlib.figure import Figure

    schedule = DynamicSchedule(amplitude, period, normalise=not raw, code_period=code_period)
    ax = schedule.plot(steps or int(2 * classes * schedule.steps_per_period), classes)
    figure = ax.figure
    assert isinstance(figure, Figure)
    click.echo("\n".join(str(p) for p in save_figure(figure, out.with_suffix(""), formats=(out.suffix[1:] or "png",))))


@dynamic_loss.command("contours")
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Figure path without suffix (default: STORE_DIR/contours).")
@click.option("--value", type=click.Choice(["end", "final"]), default="end", show_default=True,
              help="Accuracy at the end of training, or of the best-validation selection.")
def contours(store_dir: Path, out: Path | None, value: str) -> None:
    """Train/test accuracy contours over (T, A) per setting (width, spiral angle, ...) from a result store."""
    from trainlab.studies.dynamics import contour_figure, with_end_metrics  # start-up time: see trainlab.cli.lazy
    from trainlab.experiments import ResultStore  # start-up time: see trainlab.cli.lazy
    from trainlab.report import save_figure  # start-up time: see trainlab.cli.lazy

    with ResultStore.open(store_dir) as store:
        runs = with_end_metrics(store.runs_frame(), store.history_frame())
    for path in save_figure(contour_figure(runs, value=value, title=store_dir.name), out or store_dir / "contours"):
        click.echo(str(path))


@dynamic_loss.command("levels")
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--value", type=click.Choice(["end", "final"]), default="end", show_default=True,
              help="Accuracy at the end of training, or of the best-validation selection.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the unrounded table (means, seed sds, counts) to this CSV file.")
def levels(store_dir: Path, value: str, csv_path: Path | None) -> None:
    """Static against best dynamic accuracy per setting (loss, width, spiral angle, ...), as a Markdown table."""
    from trainlab.studies.dynamics import levels_display, levels_table, with_end_metrics  # start-up time: see trainlab.cli.lazy
    from trainlab.experiments import ResultStore  # start-up time: see trainlab.cli.lazy
    from trainlab.report.tables import to_markdown  # start-up time: see trainlab.cli.lazy

    with ResultStore.open(store_dir) as store:
        table = levels_table(with_end_metrics(store.runs_frame(), store.history_frame()), value=value)
    if csv_path is not None:
        table.to_csv(csv_path, index=False)
    click.echo(to_markdown(levels_display(table)), nl=False)

def _spec(loss: str, amplitude: float, period: float, steps: int, lr: float, width: int, seed: int) -> RunSpec:
    from trainlab.experiments.spec import RunSpec  # start-up time: see trainlab.cli.lazy

    return RunSpec(
        "spiral", "spiral-mlp", "gd", Budget(steps=steps), seed=seed, loss=loss,
        model_options={"width": width, "init": "standard"}, trainer_options={"lr": lr, "eval_every": steps},
        loss_options={"amplitude": amplitude, "period": period, "total_steps": steps},
    )


_RUN_OPTIONS = [
    click.option("--loss", type=click.Choice(["dynamic_ce", "dynamic_mse1", "dynamic_mse2"]), default="dynamic_ce"),
    click.option("--amplitude", "-A", type=float, default=70.0, show_default=True),
    click.option("--period", "-T", type=float, default=5000, show_default=True),
    click.option("--steps", type=int, default=70000, show_default=True),
    click.option("--width", type=int, default=100, show_default=True),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--every", type=int, default=10, show_default=True, help="Dynamics record interval."),
    click.option("--curvature-every", type=int, default=500, show_default=True, help="Hessian/NTK interval."),
]


def _run_options(func):  # noqa: ANN001, ANN202 - click decorator stack
    for option in reversed(_RUN_OPTIONS):
        func = option(func)
    return func


@dynamic_loss.command("long-run")
@_run_options
@click.option("--lr", type=float, default=1.0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for result.json and the panel.")
def long_run_command(loss: str, amplitude: float, period: float, steps: int, width: int, seed: int, every: int,
                     curvature_every: int, lr: float, out: Path) -> None:
    """One long spiral run with the dynamics panel (Γ, F, L, ΔL, accuracy, Hessian top-3, NTK)."""
    from trainlab.studies.dynamics import dynamics_panel, long_run  # start-up time: see trainlab.cli.lazy
    from trainlab.report import save_figure  # start-up time: see trainlab.cli.lazy

    result = long_run(_spec(loss, amplitude, period, steps, lr, width, seed), every=every, curvature_every=curvature_every)
    click.echo(str(result.save(out)))
    title = f"{loss}, width {width}, A = {amplitude:g}, T = {period:g}, lr = {lr:g}"
    for path in save_figure(dynamics_panel(result, title=title), out / "dynamics"):
        click.echo(str(path))


@dynamic_loss.command("threshold")
@click.option("--loss", type=click.Choice(["dynamic_ce", "dynamic_mse1", "dynamic_mse2"]), default="dynamic_ce")
@click.option("--amplitude", "-A", "amplitudes", type=float, multiple=True, default=(70.0,), show_default=True,
              help="Amplitudes A to draw from (repeat the option).")
@click.option("--period", "-T", "periods", type=float, multiple=True, default=(5000.0,), show_default=True,
              help="Periods T to draw from (repeat the option).")
@click.option("--steps", type=int, default=70000, show_default=True)
@click.option("--width", type=int, default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Master seed: simulation 0's seed; the others' seeds and the (A, T) draws derive from it.")
@click.option("--every", type=int, default=10, show_default=True, help="Dynamics record interval.")
@click.option("--curvature-every", type=int, default=50, show_default=True,
              help="Hessian interval (sets the threshold's resolution).")
@click.option("--lr", "lrs", type=float, multiple=True, required=True, help="Learning rates (repeat the option).")
@click.option("--simulations", type=click.IntRange(min=1), default=40, show_default=True,
              help="Simulations per learning rate (thesis 002: 40), each with its own seed and (A, T) draw.")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95, show_default=True,
              help="Level of the t confidence interval of the mean threshold.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes running simulations.")
@click.option("--rel-jump", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="Onset: first one-step rise of L by more than this fraction of L.")
@click.option("--skip", type=click.IntRange(min=0), default=0, show_default=True,
              help="Onset: ignore rises of L in the first SKIP steps (the initial transient).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the tables and figure.")
def threshold(loss: str, amplitudes: tuple[float, ...], periods: tuple[float, ...], steps: int, width: int, seed: int,
              every: int, curvature_every: int, lrs: tuple[float, ...], simulations: int, confidence: float,
              workers: int, rel_jump: float, skip: int, out: Path) -> None:
    """λ_max at the onset of instability against 1/lr: SIMULATIONS runs per learning rate over (A, T) draws,
    mean with a t confidence interval."""
    from trainlab.core.config import ConfigError  # start-up time: see trainlab.cli.lazy
    from trainlab.studies.dynamics import (  # start-up time: see trainlab.cli.lazy
        ThresholdStudy,
        threshold_figure,
        threshold_study,
        threshold_summary,
    )
    from trainlab.report import save_figure  # start-up time: see trainlab.cli.lazy

    try:
        study = ThresholdStudy(lrs=lrs, simulations=simulations, amplitudes=amplitudes, periods=periods, steps=steps,
                               loss=loss, width=width, seed=seed, every=every, curvature_every=curvature_every,
                               rel_jump=rel_jump, skip=skip, workers=workers)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    table = threshold_study(study)
    summary = threshold_summary(table, confidence)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "threshold.csv", index=False)
    summary.to_csv(out / "threshold_summary.csv", index=False)
    click.echo(summary.to_string(index=False))
    for path in save_figure(threshold_figure(table, confidence), out / "threshold"):
        click.echo(str(path))
