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
@click.option("--against", default=None, metavar="FILE.csv|thesis000",
              help="Published results to put beside the measured ones (writes against.md and against.csv).")
@click.option("--quantity", type=click.Choice(["test_metric", "test_loss", "train_loss"]), default="test_metric",
              show_default=True, help="Published column compared with --against.")
@click.option("--tolerance", type=float, default=0.02, show_default=True, help="|Δ| flagged above this (--against).")
@click.option("--outlier-gap", type=float, default=0.5, show_default=True,
              help="Published values this far from their family's median on the cell are thesis outliers.")
@click.option("--against-only", is_flag=True, help="Write only the comparison, not the full report.")
def report(experiment_dir: Path, out: Path | None, value: str, alpha: float, failed: str, target: float | None,
           formats: tuple[str, ...], against: str | None, quantity: str, tolerance: float, outlier_gap: float,
           against_only: bool) -> None:
    """Write EXPERIMENT_DIR's report: per-task tables, statistical tests and figures; with --against, the
    published-vs-measured comparison too."""
    from trainlab.experiments.store import ResultStore  # start-up time: see trainlab.cli.lazy
    from trainlab.report import write_report  # start-up time: see trainlab.cli.lazy
    from trainlab.report.against import compare, load_anchors, write_against  # start-up time: see trainlab.cli.lazy

    folder = out if out is not None else experiment_dir / "report"
    try:
        if against is not None:
            anchors = load_anchors(against)
            with ResultStore.open(experiment_dir) as store:
                runs = store.runs_frame()
            comparison = compare(runs, anchors, quantity=quantity, tolerance=tolerance, outlier_gap=outlier_gap)
            md, csv = write_against(comparison, folder, against)
            click.echo(f"published vs measured: {md} and {csv}")
        if not against_only:
            path = write_report(experiment_dir, out, formats, value=value, alpha=alpha, failed=failed,
                                target=target)
            click.echo(f"report written to {path}")
    except (ConfigError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
