"""Model construction: ``build_model`` (meta device, then one explicit initialisation) against the
eager way (PyTorch's default initialisation, then ours over it), and ``model_summary`` (meta only).

Prints ratios measured within this one run (the machine is shared and noisy).
Run: ``.venv/bin/python bench/bench_models.py``
"""
from __future__ import annotations


import torch
from rich.console import Console
from rich.table import Table

from trainlab.models import MODELS, build_model, initialize, model_config, model_summary
from trainlab.core.seeding import torch_generator
from timing import median_of

torch.set_num_threads(1)



def _eager(name: str, shape: tuple[int, ...], outputs: int) -> torch.nn.Module:
    """Construct with PyTorch's default initialisation (global RNG), then apply the scheme."""
    entry = MODELS.get(name)
    options = entry.options(**model_config(name))
    model = entry.build(options, shape, outputs)
    return initialize(model, str(options.init), torch_generator(0, "init"))


def main() -> None:
    table = Table(title="model construction, ratios within this run")
    for column in ("model", "parameters", "eager / build_model", "model_summary / build_model"):
        table.add_column(column, justify="right")
    for name in MODELS.names():
        shape, outputs = MODELS.get(name).reference
        t_build = median_of(lambda: build_model(name, shape, outputs), 11)
        with torch.random.fork_rng():
            t_eager = median_of(lambda: _eager(name, shape, outputs), 11)
        t_summary = median_of(lambda: model_summary(name, shape, outputs), 11)
        params = model_summary(name, shape, outputs)["parameters"]
        table.add_row(name, f"{params:,}", f"{t_eager / t_build:.2f}", f"{t_summary / t_build:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
