"""``trainlab train`` (one run, with a live progress display) and ``trainlab lr-find`` (the LR range test)."""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from trainlab.cli.lazy import LazyChoice
from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROUTES = {"task": "task_options", "model": "model_options", "loss": "loss_options", "trainer": "trainer_options",
          "diagnostics": "diagnostics"}


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON (``0.1``, ``true``, ``[0.9, 0.99]``, ``null``), else a TOML scalar, else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_settings(settings: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``key=value`` pairs into option mappings; ``task.``/``model.``/``loss.`` prefixes route a key
    to those options, ``diagnostics.`` to the diagnostics table (``diagnostics.curvature.every=50``: dots
    nest), anything else (or ``trainer.``) is a trainer option."""
    out: dict[str, dict[str, Any]] = {route: {} for route in ROUTES.values()}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"got {item!r}; expected key=value", param_hint="--set")
        prefix, dot, rest = key.partition(".")
        route = ROUTES.get(prefix) if dot else None
        if route == "diagnostics":
            table = out[route]
            *parents, last = rest.split(".")
            for part in parents:
                inner = table.get(part)
                table[part] = inner if isinstance(inner, dict) else {}
                table = table[part]
            table[last] = parse_value(value)
            continue
        out[route or "trainer_options"][rest if route else key] = parse_value(value)
    return out


def parse_diagnostics(lines: Sequence[str], table: dict[str, Any]) -> dict[str, Any]:
    """``--diagnostics`` values, each a line of the TOML ``diagnostics`` table (``curvature = { every = 50 }``),
    merged over ``table`` (from ``--set diagnostics.…``)."""
    out = dict(table)
    for line in lines:
        try:
            out.update(tomllib.loads(line))
        except tomllib.TOMLDecodeError as err:
            allowed = f"a TOML line such as 'curvature = {{ every = 50 }}' ({err})"
            raise ConfigError("--diagnostics", line, allowed) from None
    return out


def _model_options(activation: str | None, init: str | None, width: int | None, extra: dict[str, Any]) -> dict:
    given = {"activation": activation, "init": init, "width": width}
    return {**{k: v for k, v in given.items() if v is not None}, **extra}


def _budget(**limits: float | None) -> Budget:
    """The budget from the given limits; 20 epochs when none is given."""
    given: dict[str, Any] = {k: v for k, v in limits.items() if v is not None}
    return Budget(**(given or {"epochs": 20}))


def _device(device: str) -> str:
    from trainlab.data import resolve_device  # start-up time: see trainlab.cli.lazy

    return str(resolve_device(device))


def _schedules() -> tuple[str, ...]:
    from trainlab.trainers.schedules import SCHEDULES  # start-up time: see trainlab.cli.lazy

    return tuple(SCHEDULES)


def _suggestions() -> tuple[str, ...]:
    from trainlab.trainers.lr_finder import SUGGESTIONS  # start-up time: see trainlab.cli.lazy

    return SUGGESTIONS


def common_options(f: Any) -> Any:
    """Options shared by ``train`` and ``lr-find``."""
    decorators = [
        click.option("--task", required=True, help="Task name (bcw, bhp, wqc, wqr, mnist, fmnist, cifar10g, spiral, adding, copy, reber, smnist)."),
        click.option("--model", required=True, help="Model name (mlp1, mlp2, mlp5, mlp11, lenet5, ...)."),
        click.option("--trainer", default="adam", show_default=True, help="Trainer (train: any registered one; lr-find: a gradient one, e.g. sgd, nag, adam)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--lr", type=float, default=None, help="Learning rate (default: the optimizer's)."),
        click.option("--batch-size", type=int, default=None, help="Mini-batch size (default 64; gd: full batch)."),
        click.option("--loss", default=None, help="Loss name (default: the task's)."),
        click.option("--activation", default=None, help="Model activation."),
        click.option("--init", default=None, help="Model initialisation scheme."),
        click.option("--width", type=int, default=None, help="Hidden width (spiral-mlp)."),
        click.option("--device", default="auto", show_default=True, help="cpu, cuda, or auto."),
        click.option("--data-dir", default=None, type=click.Path(), help="Root of the raw data sets."),
        click.option(
            "--set", "settings", multiple=True, metavar="KEY=VALUE",
            help="Any trainer option (repeatable); task./model./loss. prefixes set those options.",
        ),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


@click.command("train")
@common_options
@click.option("--epochs", type=int, default=None, help="Epoch budget (default 20 when no budget is given).")
@click.option("--steps", type=int, default=None, help="Optimizer-step (population: generation) budget.")
@click.option("--evals", type=int, default=None, help="Budget in full-training-set fitness evaluations (population trainers).")
@click.option("--sample-evals", type=int, default=None, help="Budget in forward + backward sample evaluations.")
@click.option("--seconds", type=float, default=None, help="Wall-time budget.")
@click.option("--schedule", type=LazyChoice(_schedules), default=None, help="Learning-rate schedule.")
@click.option("--lr-find", "lr_find", is_flag=True, help="Run the LR finder first; use its suggestion as lr.")
@click.option("--lr-find-suggest", type=LazyChoice(_suggestions), default=None,
              help="fastai suggestion rule of the LR finder (default valley).")
@click.option("--diagnostics", "diagnostics", multiple=True, metavar="TOML",
              help="A line of the diagnostics table (repeatable), e.g. 'curvature = { every = 50, top_k = 3, trace = true }',"
              " 'sharpness = { every = 10 }', 'ntk = { every = 100 }', 'gradient_norm = { every = 1 }' (docs/diagnostics.md).")
@click.option("--tensorboard", "tensorboard", type=click.Path(file_okay=False), default=None,
              help="Also log the history live to this TensorBoard folder (needs the tensorboard extra).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for result.json and model.pt.")
@click.option("--overwrite", is_flag=True, help="Replace the run already saved in OUT (refused otherwise).")
def train(
    task: str, model: str, trainer: str, seed: int, lr: float | None, batch_size: int | None, loss: str | None,
    activation: str | None, init: str | None, width: int | None, device: str, data_dir: str | None,
    settings: tuple[str, ...], epochs: int | None, steps: int | None, evals: int | None,
    sample_evals: int | None, seconds: float | None, schedule: str | None, lr_find: bool,
    lr_find_suggest: str | None, diagnostics: tuple[str, ...], tensorboard: str | None, out: str, overwrite: bool,
) -> None:
    """Train one model on one task and write the result (config, history, metrics, spending, environment)
    as JSON with the selected weights into OUT."""
    from trainlab.cli.progress import RichProgress, summary_table  # start-up time: see trainlab.cli.lazy
    from trainlab.core.preflight import check_out_dir  # start-up time: see trainlab.cli.lazy
    from trainlab.data.preflight import check_data  # start-up time: see trainlab.cli.lazy
    from trainlab.experiments.spec import RunSpec, execute  # start-up time: see trainlab.cli.lazy
    from trainlab.trainers.lr_finder import EDGE_WARNING, plot_lr_find  # start-up time: see trainlab.cli.lazy
    from trainlab.trainers.callbacks import Callback  # start-up time: see trainlab.cli.lazy

    console = Console()
    routed = parse_settings(settings)
    flags = {
        "lr": lr, "batch_size": batch_size, "schedule": schedule, "lr_find": lr_find or None,
        "lr_find_suggest": lr_find_suggest,
    }
    trainer_options = {**{k: v for k, v in flags.items() if v is not None}, **routed["trainer_options"]}
    try:
        budget = _budget(epochs=epochs, steps=steps, evals=evals, sample_evals=sample_evals, seconds=seconds)
        spec = RunSpec(
            task=task, model=model, trainer=trainer, budget=budget, seed=seed, loss=loss,
            task_options=routed["task_options"],
            model_options=_model_options(activation, init, width, routed["model_options"]),
            trainer_options=trainer_options, loss_options=routed["loss_options"], device=_device(device),
            diagnostics=parse_diagnostics(diagnostics, routed["diagnostics"]),
        )
        spec.resolved()
        check_out_dir(out)
        if not overwrite and (Path(out) / "result.json").exists():
            raise ConfigError("--out", out, "a folder without a saved run (pass --overwrite to replace it)")
        check_data([(spec.task, spec.task_options)], data_dir)
        callbacks: list[Callback] = [RichProgress(budget, console)]
        if tensorboard is not None:
            from trainlab.report.export import TensorBoardLogger  # start-up time: see trainlab.cli.lazy

            callbacks.append(TensorBoardLogger(tensorboard))
        result = execute(spec, data_dir=data_dir, callbacks=callbacks)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    path = result.save(out)
    if "lr_find" in result.records:
        found = result.records["lr_find"][0]
        plot_lr_find(found["lrs"], found["smoothed"], found["suggestion"], Path(out) / "lr_find.png", found["losses"],
                     title=f"Learning-rate range test: {trainer} on {task} / {model} (seed {seed})")
        console.print(f"LR finder ({found['method']}) suggested lr = {found['suggestion']:.3g}"
                      f" (plot: {Path(out) / 'lr_find.png'})")
        if found.get("at_edge"):
            console.print(f"[bold yellow]warning:[/] {EDGE_WARNING}")
    if result.status == "failed":
        if click.get_current_context().find_root().params.get("debug"):
            console.print(result.message)
        first = result.message.splitlines()[0] if result.message else "unknown error"
        raise click.ClickException(f"run failed ({first}); result with the traceback written to {path}")
    console.print(summary_table(result))
    if spec.diagnostics and "diagnostics_seconds" in result.environment:
        env = result.environment
        logged = ", ".join(f"{name} ({len(result.records.get(name, []))} rows)"
                           for name, value in spec.resolved().diagnostics.items() if isinstance(value, dict))
        console.print(f"diagnostics recorded: {logged}; they took {env['diagnostics_seconds']:.2f} s wall"
                      f" ({env['diagnostics_cpu_seconds']:.2f} s CPU) of the run's {env['wall_seconds']:.2f} s,"
                      " outside its time budget")
    if result.status == "diverged":
        console.print(f"[bold yellow]diverged:[/] {result.message}; the history and the weights selected before it are kept")
    console.print(f"result written to {path}")


@click.command("lr-find")
@common_options
@click.option("--lr-min", type=float, default=1e-7, show_default=True)
@click.option("--lr-max", type=float, default=10.0, show_default=True)
@click.option("--num-steps", type=int, default=100, show_default=True)
@click.option("--suggest", type=LazyChoice(_suggestions), default="valley", show_default=True,
              help="fastai suggestion rule.")
@click.option("--out", default="lr_find.png", show_default=True, type=click.Path(dir_okay=False), help="Plot (.png, .svg or .pdf).")
def lr_find(
    task: str, model: str, trainer: str, seed: int, lr: float | None, batch_size: int | None, loss: str | None,
    activation: str | None, init: str | None, width: int | None, device: str, data_dir: str | None,
    settings: tuple[str, ...], lr_min: float, lr_max: float, num_steps: int, suggest: str, out: str,
) -> None:
    """Sweep the learning rate exponentially, plot the smoothed loss and print the suggested lr."""
    from trainlab.core.preflight import check_out_file  # start-up time: see trainlab.cli.lazy
    from trainlab.data.preflight import check_data  # start-up time: see trainlab.cli.lazy
    from trainlab.experiments.lr_find import run_lr_find  # start-up time: see trainlab.cli.lazy

    routed = parse_settings(settings)
    if routed["diagnostics"]:
        raise click.ClickException(str(ConfigError("--set", "diagnostics.…", "options of the task, model, loss and "
                                                   "trainer (lr-find records no diagnostics; use train)")))
    options = {**routed["trainer_options"], **({"lr": lr} if lr is not None else {})}
    if batch_size is not None:
        options["batch_size"] = batch_size
    try:
        check_out_file(out)
        if Path(out).suffix.lower() not in (".png", ".svg", ".pdf"):
            raise ConfigError("--out", out, "a plot file ending in .png, .svg or .pdf")
        check_data([(task, routed["task_options"])], data_dir)
        found = run_lr_find(
            task, model, trainer, seed=seed, device=_device(device), data_dir=data_dir, loss=loss,
            task_options=routed["task_options"],
            model_options=_model_options(activation, init, width, routed["model_options"]),
            trainer_options=options, lr_min=lr_min, lr_max=lr_max, num_steps=num_steps, suggest=suggest,
        )
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    path = found.plot(out, title=f"Learning-rate range test: {trainer} on {task} / {model} (seed {seed})")
    click.echo(f"suggested lr ({suggest}): {found.suggestion:.4g}  [{len(found.lrs)} steps"
               f"{', stopped early on divergence' if found.stopped_early else ''}; plot: {path}]")
    if found.at_edge:
        from trainlab.trainers.lr_finder import EDGE_WARNING  # start-up time: see trainlab.cli.lazy

        click.echo(f"warning: {EDGE_WARNING}", err=True)
