"""``trainlab gradient-flow``: ‖∂L/∂h_t‖ against t for recurrent models on a sequence task."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from trainlab.core.config import ConfigError


def _parse_sets(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    import json

    out: dict[str, dict[str, Any]] = {"task": {}, "model": {}}
    for item in values:
        key, sep, raw = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in out:
            raise click.BadParameter(f"got {item!r}; expected task.NAME=VALUE or model.NAME=VALUE", param_hint="--set")
        try:
            out[section][name] = json.loads(raw)
        except json.JSONDecodeError:
            out[section][name] = raw
    return out


@click.command("gradient-flow")
@click.option("--task", default="adding", show_default=True, help="A sequence task (adding, copy, reber, smnist).")
@click.option("--models", default="rnn,lstm,gru", show_default=True, help="Comma-separated recurrent models.")
@click.option("--seed", type=int, default=0, show_default=True, help="Initialisation seed (as in a run).")
@click.option("--samples", type=int, default=256, show_default=True, help="Training samples averaged over.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="task.<option> or model.<option> (repeatable), e.g. task.length=100, model.width=64.")
@click.option("--weights", multiple=True, metavar="MODEL=DIR",
              help="Also measure MODEL with the trained weights DIR/model.pt of `trainlab train --out DIR` "
              "(built with the same --set options; repeatable).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Save the figure here.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def gradient_flow(task: str, models: str, seed: int, samples: int, sets: tuple[str, ...], weights: tuple[str, ...],
                  plot: Path | None, data_dir: Path | None) -> None:  # fmt: skip
    """‖∂L/∂h_t‖ (each sample's loss, mean over samples) for every step t, its decay per step back in
    time, and the recurrent blocks' spectral radii, for each model at initialisation (and trained)."""
    import torch

    from trainlab.data import load_task  # start-up time: see trainlab.cli.lazy
    from trainlab.diagnostics.gradient_flow import decay_rate, hidden_gradient_norms, plot_gradient_flow  # start-up time: see trainlab.cli.lazy
    from trainlab.losses import get_loss  # start-up time: see trainlab.cli.lazy
    from trainlab.models import build_model  # start-up time: see trainlab.cli.lazy
    from trainlab.models.recurrent import RecurrentNet, gate_spectral_radii  # start-up time: see trainlab.cli.lazy
    from trainlab.core.seeding import torch_generator  # start-up time: see trainlab.cli.lazy

    options = _parse_sets(sets)
    names = [m.strip() for m in models.split(",") if m.strip()]
    trained = {}
    for item in weights:
        name, sep, folder = item.partition("=")
        if not sep or name not in names or not (Path(folder) / "model.pt").is_file():
            raise click.BadParameter(f"got {item!r}; expected MODEL=DIR with MODEL in --models and DIR/model.pt present",
                                     param_hint="--weights")  # fmt: skip
        trained[name] = torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=True)
    try:
        loaded = load_task(task, data_dir=data_dir, **options["task"])
        x, y = loaded.train.x[:samples], loaded.train.y[:samples]
        loss = get_loss(loaded.loss)
        curves, table = {}, Table(title=f"gradient flow, {task}, T = {loaded.input_shape[0]}")
        for col in ("model", "‖∂L/∂h_T‖", "‖∂L/∂h_1‖", "ratio h_1/h_T", "log-rate per step", "spectral radius (max)"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for name in names:
            model = build_model(name, loaded.input_shape, loaded.n_outputs, generator=torch_generator(seed, "init"),
                                **options["model"])  # fmt: skip
            if not isinstance(model, RecurrentNet):
                raise ConfigError("--models", name, "recurrent models (rnn, lstm, gru)")
            states = [(f"{name} (init)", None)] + ([(f"{name} (trained)", trained[name])] if name in trained else [])
            for label, state in states:
                if state is not None:
                    model.load_state_dict(state)
                norms = hidden_gradient_norms(model, x, y, loss)
                curves[label] = norms.tolist()
                radius = max(gate_spectral_radii(model).values())
                table.add_row(label, f"{norms[-1]:.3e}", f"{norms[0]:.3e}", f"{norms[0] / norms[-1]:.3e}",
                              f"{decay_rate(norms):+.4f}", f"{radius:.3f}")  # fmt: skip
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    Console().print(table)
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        plot_gradient_flow(curves, ax=ax, title=f"{task}, T = {loaded.input_shape[0]} (initialisation seed {seed})")
        plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(plot, dpi=120, bbox_inches="tight")
        click.echo(f"figure written to {plot}")
