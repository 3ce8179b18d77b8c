"""``trainlab report EXPERIMENT_DIR``: write the Markdown report (tables, statistics, figures)."""
from __future__ import annotations

from pathlib import Path

import click

from trainlab.core.config import ConfigError


@click.command("report")
@click.argument("experiment_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: EXPERIMENT_DIR/report).")
@click.option("--value", default="final_test_metric", show_default=True, help="Runs-frame column compared.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level.")
@click.option("--failed", type=click.Choice(["worst", "exclude"]), default="worst", show_default=True,
              help="Failed/diverged runs: count as worst, or exclude their blocks.")
@click.option("--target", type=float, default=None, help="Time-to-target threshold (default: per-task median).")
@click.option("--format", "formats", multiple=True, type=click.Choice(["png", "svg", "pdf"]),
              default=("png", "svg"), show_default=True, help="Figure formats (repeatable).")
def report(experiment_dir: Path, out: Path | None, value: str, alpha: float, failed: str, target: float | None,
           formats: tuple[str, ...]) -> None:
    """Write EXPERIMENT_DIR's report: per-task tables, statistical tests and figures."""
    from trainlab.report import write_report  # start-up time: see trainlab.cli.lazy

    try:
        path = write_report(experiment_dir, out, formats, value=value, alpha=alpha, failed=failed, target=target)
    except (ConfigError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"report written to {path}")
