"""``trainlab search``: run a metaheuristic on a standard test function (the searchers without networks)."""
from __future__ import annotations

import statistics
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from trainlab.core.config import ConfigError


@click.command("search")
@click.argument("searcher")
@click.option("--function", "function", default="sphere", show_default=True,
              type=click.Choice(["sphere", "rosenbrock", "rastrigin", "ackley"]))
@click.option("--dim", type=int, default=10, show_default=True)
@click.option("--evals", type=int, default=100_000, show_default=True, help="Fitness evaluations per run.")
@click.option("--population", type=int, default=100, show_default=True, help="Initial population size.")
@click.option("--seeds", type=int, default=5, show_default=True, help="Runs with seeds 0..SEEDS-1.")
def search(searcher: str, function: str, dim: int, evals: int, population: int, seeds: int) -> None:
    """Minimise a test function with SEARCHER over several seeds and print the best values found.

    SEARCHER is any registered searcher: de, shade, lshade, shade-ils, cma-es, sep-cma-es, snes, the
    evotorch-* searchers (with the evotorch extra) and plugins' searchers."""
    from trainlab.metaheuristics import minimize  # start-up time: see trainlab.cli.lazy
    from trainlab.metaheuristics.benchmarks import BOUNDS, FUNCTIONS, value_and_grad  # start-up time: see trainlab.cli.lazy

    fn = FUNCTIONS.get(function)
    extra: dict[str, Any] = {"value_and_grad": value_and_grad(fn)} if searcher == "shade-ils" else {}
    try:
        best = [
            minimize(fn, searcher, dim=dim, bounds=BOUNDS[function], max_evals=evals, seed=s,
                     population_size=population, **extra).fun
            for s in range(seeds)
        ]
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    table = Table(title=f"{searcher} on {function}, D = {dim}, {evals:,} evaluations")
    for col in ("seed", "best f"):
        table.add_column(col)
    for s, value in enumerate(best):
        table.add_row(str(s), f"{value:.3e}")
    table.add_row("median", f"{statistics.median(best):.3e}")
    Console().print(table)
