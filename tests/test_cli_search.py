"""``trainlab search``: every registered searcher by name, the same numbers as the Python API, one-line errors."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from trainlab.cli.population import search
from trainlab.metaheuristics import minimize
from trainlab.metaheuristics.benchmarks import BOUNDS, FUNCTIONS


@pytest.mark.parametrize("searcher", ["shade", "cma-es", "snes"])
def test_search_prints_what_minimize_finds(searcher: str) -> None:
    res = CliRunner().invoke(search, [searcher, "--dim", "4", "--evals", "600", "--seeds", "2", "--population", "10"])
    assert res.exit_code == 0, res.output
    for seed in range(2):
        best = minimize(FUNCTIONS.get("sphere"), searcher, dim=4, bounds=BOUNDS["sphere"], max_evals=600, seed=seed,
                        population_size=10).fun
        assert f"{best:.3e}" in res.output


def test_search_refuses_an_unknown_searcher_in_one_line() -> None:
    res = CliRunner().invoke(search, ["shadee", "--evals", "100", "--seeds", "1"])
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "searcher" in lines[0] and "'shadee'" in lines[0] and "did you mean" in lines[0]
