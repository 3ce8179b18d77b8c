"""``trainlab curvature RUN``: Hessian spectrum, trace, density and NTK of a saved run."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from trainlab.core.config import ConfigError


@click.command("curvature")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--top", default=3, show_default=True, type=click.IntRange(min=0), help="Top Hessian eigenvalues (Lanczos).")
@click.option("--density", is_flag=True, help="Spectral density by stochastic Lanczos quadrature.")
@click.option("--trace", is_flag=True, help="Hessian trace by Hutch++.")
@click.option("--ntk", "ntk", default=0, type=click.IntRange(min=0), is_flag=False, flag_value=3,
              help="Largest NTK eigenvalues (--ntk alone: 3).")
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--subset", default=1000, show_default=True, type=click.IntRange(min=1), help="Samples (seeded draw).")
@click.option("--ntk-subset", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--bn", default="eval", show_default=True, type=click.Choice(["eval", "train"]), help="Batch-norm mode.")
@click.option("--probes", default=10, show_default=True, type=click.IntRange(min=1), help="SLQ probes.")
@click.option("--lanczos-steps", default=80, show_default=True, type=click.IntRange(min=1), help="SLQ steps per probe.")
@click.option("--matvecs", default=60, show_default=True, type=click.IntRange(min=6), help="HVPs for the trace.")
@click.option("--float32", is_flag=True, help="Compute in float32 instead of float64.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder (default: the run's).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--device", default=None, help="cpu or cuda (default: the run's).")
def curvature(path: Path, top: int, density: bool, trace: bool, ntk: int, split: str, subset: int, ntk_subset: int,
              bn: str, probes: int, lanczos_steps: int, matvecs: int, float32: bool, seed: int, out: Path | None,
              data_dir: Path | None, device: str | None) -> None:
    """Curvature diagnostics of the run saved at PATH (run directory or .pt checkpoint): writes
    curvature.json and PNG plots."""
    import torch  # start-up time: see trainlab.cli.lazy

    from trainlab.core.preflight import check_out_dir  # start-up time
    from trainlab.studies.curvature import run_curvature  # start-up time

    try:
        if out is not None:
            check_out_dir(out)
        report, files = run_curvature(
            path, out=out, split=split, subset=subset, data_dir=data_dir, device=device, seed=seed, top=top,
            density=density, trace=trace, ntk=ntk, ntk_subset=ntk_subset, bn=bn, probes=probes,
            lanczos_steps=lanczos_steps, matvecs=matvecs, dtype=torch.float32 if float32 else torch.float64,
        )
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    table = Table(title=f"curvature of {report['run']} ({report['samples']} {split} samples, D = {report['parameters']})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("objective", f"{report['loss']:.6g}")
    if "hessian_top" in report:
        table.add_row("Hessian top", ", ".join(f"{v:.6g}" for v in report["hessian_top"]["values"]))
    if "stability" in report:
        s = report["stability"]
        table.add_row("2(1+β)/lr", f"{s['limit']:.6g} (ratio {s['ratio']:.3g})")
    if "trace" in report:
        table.add_row("trace (Hutch++)", f"{report['trace']['value']:.6g} ± {report['trace']['stderr']:.2g}")
    if "ntk" in report:
        table.add_row("NTK top", ", ".join(f"{v:.6g}" for v in report["ntk"]["values"]))
    console = Console()
    console.print(table)
    for file in files:
        console.print(f"wrote {file}")
