"""The sweep engine: many small networks trained at once by full-batch gradient descent.

Each cell of a sweep is one :class:`~trainlab.experiments.spec.RunSpec` (trainer ``gd``); cells may
differ in seed, learning rate and the schedule of a dynamic loss (amplitude A, period T, ...), and
must agree on everything else (task, model, budget, loss formula). The parameters of the K cells are
stacked along a leading dimension — layer l holds W_l of shape (K, out, in) and b_l of shape (K, out) —
and one step of the sweep is, for every cell k at once,

    z_0 = x,  z_l = relu(z_{l-1}) W_lᵀ + b_l,  F_k = loss_k(z_L, y, t),  θ_k ← θ_k − η_k ∇θ_k F_k.

∂F_k/∂z_L comes from ``torch.func.vmap(grad(...))`` over the cells' loss with their own class factors
Γ_k(t); the back-propagation through the Linear/ReLU stack is written out with batched matrix
products. Cells never mix: every kernel works cell by cell, so a cell gives bit-for-bit the same
numbers in a sweep of many as in a sweep of one (``tests/test_sweep.py`` checks this with
``torch.equal``). Against ``execute(spec)`` with the ``gd`` trainer the numbers agree to rounding,
not bit for bit: that path uses ``nn.Linear`` (``addmm``), autograd's kernels and ``torch.optim.SGD``,
whose floating-point summation orders differ from the batched kernels here.

Each cell is initialised from ``torch_generator(spec.seed, "init")`` through ``build_model`` exactly
as ``execute`` does, and its :class:`~trainlab.trainers.result.RunResult` has the ``gd`` trainer's format: a
history row every ``eval_every`` steps (one full-batch step is one epoch) and at the end, the selected row as
``final`` with its weights, ``diverged`` when a training loss becomes non-finite. Rows and selection are
:class:`~trainlab.trainers.history.History`'s, the implementation ``Monitor`` uses (each cell's ``select``
option included).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import grad_and_value, vmap

from trainlab.core.budget import Spending
from trainlab.core.config import ConfigError, check_choice, check_number
from trainlab.core.environment import environment
from trainlab.core.seeding import torch_generator
from trainlab.data import load_task
from trainlab.data.task import SPLITS, Task
from trainlab.experiments.spec import RunSpec
from trainlab.losses import DynamicLoss, Loss, get_loss
from trainlab.losses.metrics import METRICS
from trainlab.models import build_model
from trainlab.trainers import make_trainer
from trainlab.trainers.gradient import planned_steps
from trainlab.trainers.history import History, Keep
from trainlab.trainers.result import RunResult

SWEEP_TRAINERS = ("gd",)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
CELL_OPTIONS = ("lr", "select")
"""Trainer options that may differ between cells (the learning rate, which epochs may be selected); every other
``gd`` option must keep its default except ``eval_every``, which must be the same in every cell."""
_FACTOR_BLOCK = 1024


@dataclass
class _Cells:
    """The stacked parameters of K cells: ``weights[l]`` is (K, out, in), ``biases[l]`` is (K, out)."""

    weights: list[Tensor]
    biases: list[Tensor]
    names: list[tuple[str, str]]
    flatten: bool

    def forward(self, x: Tensor, keep: bool = False) -> tuple[Tensor, list[Tensor]]:
        """Outputs (K, N, C) and, with ``keep``, the input of every layer (x, then the ReLU outputs)."""
        h = x.flatten(1) if self.flatten else x
        inputs = [h]
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = torch.matmul(h, w.transpose(1, 2)).add_(b.unsqueeze(1)).relu_()
            if keep:
                inputs.append(h)
        out = torch.matmul(h, self.weights[-1].transpose(1, 2)).add_(self.biases[-1].unsqueeze(1))
        return out, inputs

    def step(self, grad_out: Tensor, inputs: list[Tensor], neg_lr: Tensor) -> None:
        """Back-propagate ∂F/∂z_L through the stack and apply θ ← θ − η ∇θ F in place
        (relu'(z) is read from the ReLU output: h > 0 exactly where z > 0)."""
        g = grad_out
        for i in range(len(self.weights) - 1, -1, -1):
            h = inputs[i]
            if h.dim() == 2:
                grad_w = torch.matmul(h.T, g).transpose(1, 2)
            else:
                grad_w = torch.matmul(g.transpose(1, 2), h)
            grad_b = g.sum(dim=1)
            if i > 0:
                g = torch.ops.aten.threshold_backward(torch.matmul(g, self.weights[i]), h, 0)
            self.weights[i].addcmul_(grad_w, neg_lr.view(-1, 1, 1))
            self.biases[i].addcmul_(grad_b, neg_lr.view(-1, 1))

    def state_dict(self, k: int) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for (w_name, b_name), w, b in zip(self.names, self.weights, self.biases):
            out[w_name] = w[k].detach().cpu().clone()
            out[b_name] = b[k].detach().cpu().clone()
        return out

    def copy_cell(self, k: int, into: _Cells) -> None:
        for src, dst in zip(self.weights + self.biases, into.weights + into.biases):
            dst[k] = src[k]


def _layers(model: nn.Module, where: str) -> tuple[list[nn.Linear], bool]:
    """The Linear layers of a ``[Flatten →] Linear (→ ReLU → Linear)*`` model, and whether it flattens."""
    leaves = [m for m in model.modules() if not list(m.children())]
    flatten = bool(leaves) and isinstance(leaves[0], nn.Flatten)
    body = leaves[1:] if flatten else leaves
    ok = len(body) % 2 == 1 and all(
        isinstance(m, nn.Linear if i % 2 == 0 else nn.ReLU) for i, m in enumerate(body)
    )
    linears = [m for m in body if isinstance(m, nn.Linear)]
    if not ok or any(m.bias is None for m in linears) or len(model.state_dict()) != 2 * len(linears):
        raise ConfigError(where, [type(m).__name__ for m in leaves], "Linear layers with bias separated by ReLU")
    return linears, flatten


def _stack(models: Sequence[nn.Module], dtype: torch.dtype, device: torch.device, where: str) -> _Cells:
    per_model = [_layers(m, where) for m in models]
    names = {id(m): n for n, m in models[0].named_modules()}
    linears0, flatten = per_model[0]
    weights = [
        torch.stack([ls[i].weight.detach() for ls, _ in per_model]).to(dtype=dtype, device=device)
        for i in range(len(linears0))
    ]
    biases = [
        torch.stack([ls[i].bias.detach() for ls, _ in per_model]).to(dtype=dtype, device=device)
        for i in range(len(linears0))
    ]
    prefix = [names[id(m)] for m in linears0]
    keys = [(f"{p}.weight" if p else "weight", f"{p}.bias" if p else "bias") for p in prefix]
    return _Cells(weights, biases, keys, flatten)


def _loss_key(loss: Loss) -> dict[str, Any]:
    """What must be equal between cells: the loss's configuration without its schedule."""
    config = loss.config()
    if isinstance(loss, DynamicLoss):
        for key in ("amplitude", "period", "normalise", "stop_at", "total_steps"):
            config.pop(key)
    return config


def check_compatible(specs: Sequence[RunSpec]) -> None:
    """Raise :class:`ConfigError` unless ``specs`` can be trained together by :func:`run_sweep`."""
    if not specs:
        raise ConfigError("specs", [], "at least one RunSpec")
    first = specs[0]
    for i, spec in enumerate(specs):
        check_choice(f"specs[{i}].trainer", spec.trainer, SWEEP_TRAINERS)
        if spec.budget.seconds is not None or spec.budget.evals is not None:
            raise ConfigError(f"specs[{i}].budget", spec.budget.to_dict(), "a budget in steps, epochs or sample_evals")
        for key in ("task", "model", "device", "budget", "loss"):
            if getattr(spec, key) != getattr(first, key):
                raise ConfigError(
                    f"specs[{i}].{key}", getattr(spec, key), f"the same as specs[0].{key} ({getattr(first, key)!r})"
                )
        for key in ("task_options", "model_options"):
            if dict(getattr(spec, key)) != dict(getattr(first, key)):
                raise ConfigError(
                    f"specs[{i}].{key}", dict(getattr(spec, key)), f"the same as specs[0].{key} ({dict(getattr(first, key))})"
                )
    _trainer_setup(specs)


def _trainer_setup(specs: Sequence[RunSpec]) -> tuple[list[float], int]:
    """Per-cell learning rates and the common ``eval_every``; any other non-default ``gd`` option is refused."""
    default = make_trainer("gd", lr=1.0).describe()
    lrs, evals = [], set()
    for i, spec in enumerate(specs):
        described = make_trainer("gd", **spec.trainer_options).describe()
        for key, value in described.items():
            if key not in CELL_OPTIONS and key != "eval_every" and value != default[key]:
                raise ConfigError(
                    f"specs[{i}].trainer_options.{key}", value, f"{default[key]!r} (the sweep engine runs plain gd)"
                )
        lrs.append(float(described["lr"]))
        evals.add(described["eval_every"])
    if len(evals) > 1:
        raise ConfigError("trainer_options.eval_every", sorted(evals), "one value for every cell")
    return lrs, evals.pop()


def _losses(specs: Sequence[RunSpec], task: Task) -> list[Loss]:
    losses = [get_loss(s.loss or task.loss, **s.loss_options) for s in specs]
    key = _loss_key(losses[0])
    for i, loss in enumerate(losses):
        if _loss_key(loss) != key:
            raise ConfigError(f"specs[{i}].loss_options", dict(specs[i].loss_options), f"the same formula as specs[0] ({key})")
    return losses


def _loss_grad(loss: Loss, y: Tensor) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(out (K, N, C), factors (K, C)) → (∂F_k/∂out_k, F_k) for every cell, by ``vmap(grad_and_value)``."""
    if isinstance(loss, DynamicLoss):
        weighted = loss.weighted

        def cell(out: Tensor, factors: Tensor) -> Tensor:
            return weighted(out, y, factors).mean()
    else:

        def cell(out: Tensor, factors: Tensor) -> Tensor:
            return loss(out, y)

    return vmap(grad_and_value(cell))


class _Factors:
    """Γ_k(t) of every cell, computed in blocks of steps: ``at(t)`` is (K, C) in the compute dtype."""

    def __init__(self, losses: Sequence[Loss], n_classes: int, dtype: torch.dtype, device: torch.device):
        self.losses, self.n_classes, self.dtype, self.device = losses, n_classes, dtype, device
        self.start: int | None = None
        self.block = torch.empty(0)

    def at(self, t: int) -> Tensor:
        if self.start is None or not self.start <= t < self.start + _FACTOR_BLOCK:
            self.start = t
            steps = torch.arange(t, t + _FACTOR_BLOCK)
            ones = torch.ones(_FACTOR_BLOCK, self.n_classes, dtype=torch.float64)
            per_cell = [
                loss.schedule.factors(steps, self.n_classes) if isinstance(loss, DynamicLoss) else ones
                for loss in self.losses
            ]
            self.block = torch.stack(per_cell, dim=1).to(dtype=self.dtype, device=self.device)
        return self.block[t - self.start]


def run_sweep(
    specs: Sequence[RunSpec],
    *,
    data_dir: str | Path | None = None,
    dtype: str | None = None,
    chunk_size: int | None = None,
    store: Any = None,
    progress: bool = False,
    on_progress: Callable[[float], None] | None = None,
) -> list[RunResult]:
    """Train every spec as one cell of a vectorised sweep; one :class:`RunResult` per spec, in order.

    ``dtype`` ("float32" or "float64", default: the task's) is the compute precision; ``chunk_size``
    bounds how many cells are stacked at once (default: as many as fit in about 2²⁴ activations).
    With a ``store`` (:class:`~trainlab.experiments.store.ResultStore`) every result is saved there.
    ``progress`` shows a bar with an ETA; ``on_progress(fraction)`` is called about a hundred times per
    chunk with the fraction of all cells' steps done (the experiment runner's display uses it).
    """
    specs = list(specs)
    check_compatible(specs)
    if dtype is not None:
        check_choice("dtype", dtype, DTYPES)
    first = specs[0]
    task = load_task(first.task, data_dir=data_dir, device=first.device, **first.task_options)
    compute = DTYPES[dtype] if dtype is not None else task.train.x.dtype
    losses = _losses(specs, task)
    lrs, eval_every = _trainer_setup(specs)
    models = [
        build_model(
            s.model, task.input_shape, task.n_outputs, generator=torch_generator(s.seed, "init"),
            data=(task.train.x, task.train.y), **s.model_options,
        )
        for s in specs
    ]
    width = max(max(m.weight.shape) for m in _layers(models[0], "model")[0])
    if chunk_size is None:
        chunk_size = max(1, 2**24 // (len(task.train) * width))
    check_number("chunk_size", chunk_size, low=1, integer=True)
    results: list[RunResult] = []
    for start in range(0, len(specs), chunk_size):
        part = slice(start, start + chunk_size)
        done, count = start / len(specs), len(specs[part]) / len(specs)
        report = None if on_progress is None else (lambda f, done=done, count=count: on_progress(done + count * f))
        results += _train(specs[part], task, models[part], losses[part], lrs[part], eval_every, compute, progress,
                          report)
    if store is not None:
        for spec, result in zip(specs, results):
            store.save(result.config["run_id"], spec.resolved().to_dict(), result, metric=task.metric)
    return results


def _train(
    specs: Sequence[RunSpec],
    task: Task,
    models: Sequence[nn.Module],
    losses: Sequence[Loss],
    lrs: Sequence[float],
    eval_every: int,
    dtype: torch.dtype,
    progress: bool,
    on_progress: Callable[[float], None] | None = None,
) -> list[RunResult]:
    """The training loop of one chunk of cells, with the ``gd`` trainer's bookkeeping (see ``Monitor``)."""
    device = task.device
    cells = _stack(models, dtype, device, "model")
    best = _Cells([w.clone() for w in cells.weights], [b.clone() for b in cells.biases], cells.names, cells.flatten)
    k_cells = len(specs)
    x = task.train.x.to(dtype)
    y = task.train.y
    n = len(y)
    splits = {name: (task.split(name).x.to(dtype), task.split(name).y) for name in SPLITS}
    total = planned_steps(specs[0].budget, n, None)
    assert total is not None  # budgets in seconds/evals are refused by check_compatible
    neg_lr = -torch.tensor(lrs, dtype=dtype, device=device)
    loss_grad = _loss_grad(losses[0], y)
    factors = _Factors(losses, task.n_outputs, dtype, device)
    statics = [loss.static() for loss in losses]
    metric = METRICS.get(task.metric)
    histories = [History(spec.trainer_options.get("select", "trained")) for spec in specs]
    status = ["ok"] * k_cells
    message = [""] * k_cells
    active = list(range(k_cells))
    t0, cpu0 = time.perf_counter(), time.process_time()

    def record(ks: Sequence[int], epoch: int, steps: int) -> None:
        outs = {name: cells.forward(sx)[0] for name, (sx, _) in splits.items()}
        seconds = time.perf_counter() - t0
        for k in ks:
            scores = {name: (statics[k](outs[name][k], sy, steps).item(), metric(outs[name][k], sy))
                      for name, (_, sy) in splits.items()}
            spent = Spending(forward_samples=n * steps, backward_samples=n * steps, steps=steps, seconds=seconds)
            verdict = histories[k].add(History.row(epoch, scores, spent, lrs[k]))
            if verdict.keep is not Keep.NOTHING:  # the best weights start as the initial ones: the fallback
                cells.copy_cell(k, best)
            if verdict.divergence:
                status[k], message[k] = "diverged", verdict.divergence

    with torch.no_grad():
        record(active, 0, 0)
    active = [k for k in active if status[k] == "ok"]
    bar = _progress(progress, total, len(specs))
    spent = [0] * k_cells
    step = 0
    while active and step < total:
        with torch.no_grad():
            out, inputs = cells.forward(x, keep=True)
        grad_out, values = loss_grad(out, factors.at(step))
        with torch.no_grad():
            cells.step(grad_out, inputs, neg_lr)
        step += 1
        before = active
        nonfinite = set((~torch.isfinite(values)).nonzero().flatten().tolist())
        if nonfinite.intersection(active):
            bad = [k for k in active if k in nonfinite]
            for k in bad:
                status[k], message[k] = "diverged", f"non-finite training loss at step {step}"
            with torch.no_grad():
                record([k for k in bad if histories[k].rows[-1]["epoch"] != step - 1], step - 1, step)
            active = [k for k in active if status[k] == "ok"]
        if step % eval_every == 0 or step == total:
            with torch.no_grad():
                record(active, step, step)
            active = [k for k in active if status[k] == "ok"]
        for k in set(before) - set(active):
            spent[k] = step
        if bar is not None:
            bar.update(step)
        if on_progress is not None and (step % max(1, total // 100) == 0 or step == total):
            on_progress(step / total)
    for k in active:
        spent[k] = step
    if bar is not None:
        bar.close()
    env = environment(device)
    # one process trained every cell together: each cell is charged an equal share of the job's CPU time
    env.update(cpu_seconds=(time.process_time() - cpu0) / k_cells, cpu_shared_by=k_cells,
               wall_seconds=time.perf_counter() - t0)
    return [_result(spec, k, histories[k], spent[k], n, lrs[k], status[k], message[k], best, env)
            for k, spec in enumerate(specs)]


def _result(
    spec: RunSpec,
    k: int,
    history: History,
    steps: int,
    n_train: int,
    lr: float,
    status: str,
    message: str,
    best: _Cells,
    env: dict[str, Any],
) -> RunResult:
    resolved = spec.resolved()
    samples = steps * n_train
    last = history.rows[-1]
    return RunResult(
        status=status,  # type: ignore[arg-type]
        history=history.rows,
        final={**history.final(), "lr": lr},  # as the gd trainer's
        best_epoch=history.best_epoch,
        spending=Spending(samples, samples, steps, 0, int(last["epoch"]), last["seconds"]),
        config={"run_id": resolved.run_id(), **resolved.to_dict(), "engine": "sweep"},
        environment=env,
        message=message,
        state_dict=best.state_dict(k),
    )


class _Bar:
    """A rich progress bar over the steps of one chunk."""

    def __init__(self, total: int, cells: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("steps, ETA"), TimeRemainingColumn(), transient=True)
        self.task = self.progress.add_task(f"sweep of {cells} cells", total=total)
        self.progress.start()

    def update(self, step: int) -> None:
        self.progress.update(self.task, completed=step)

    def close(self) -> None:
        self.progress.stop()


def _progress(enabled: bool, total: int, cells: int) -> _Bar | None:
    return _Bar(total, cells) if enabled else None
