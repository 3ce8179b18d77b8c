"""Gradient training: trainlab's trainer against a hand-written PyTorch loop with the same evaluation policy.

Same task tensors, same initial weights, same optimizer (Adam, batch 64), same device, and on both sides the
same evaluation work per policy (see ``docs/training.md``, "What is evaluated, and how often"):

* ``default``: trainlab's defaults. Before training the initial weights are evaluated on train and
  validation; after each epoch the training loss/metric are those of the epoch's own mini-batch outputs
  (running), validation is evaluated in full and the best-validation weights are kept; after the last epoch
  the test split is evaluated, then the selected weights on train and test (the ``final`` values);
* ``complete``: every split evaluated in full after every epoch (``eval_train = "full"``,
  ``eval_test = "rows"``), the selected weights' values taken from their row;
* ``none``: the hand loop only, with no evaluation at all — the pure training time that the evaluation share
  is measured against (``eval share`` = policy time / ``none`` time − 1, on the hand loop).

After one untimed warm-up of each side, runs alternate (hand, trainlab, hand, trainlab, ...); each ratio is
the median of the per-pair ratios of wall time and, separately, of CPU time (this process, every thread),
measured within one process. ``--epoch-pairs N`` times one ``train_epoch`` against one hand epoch (CPU
time, N alternating pairs; the per-step overhead alone). With ``--compile`` a last table compares ``compile = true`` against eager
trainlab (compile time included, a fresh compilation per run) and prints both runs' final metrics.

    .venv/bin/python bench/bench_train.py [--cases lenet5/mnist,mlp5/wqc] [--epochs 3] [--repeats 3]
        [--epoch-pairs 15] [--compile] [--no-policies]
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from trainlab.core.budget import Budget
from trainlab.core.seeding import torch_generator
from trainlab.data import load_task, resolve_device
from trainlab.data.task import Split, Task
from trainlab.losses.metrics import METRICS
from trainlab.models import build_model
from trainlab.trainers import make_trainer
from trainlab.losses import get_loss
from trainlab.trainers.base import PREDICT_CHUNK, Monitor
from trainlab.trainers.gradient import train_epoch
from trainlab.trainers.result import RunResult

POLICIES = {"default": {}, "complete": {"eval_train": "full", "eval_test": "rows"}}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def hand_evaluate(model: torch.nn.Module, split: Split, metric: Callable[[torch.Tensor, torch.Tensor], float]
                  ) -> tuple[float, float]:
    """Eval mode, no gradients, chunks as trainlab uses on this device."""
    chunk = PREDICT_CHUNK.get(split.x.device.type, PREDICT_CHUNK["cpu"])
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(split.x[i : i + chunk]) for i in range(0, len(split.x), chunk)])
    return F.cross_entropy(out, split.y).item(), metric(out, split.y)


def hand_loop(model: torch.nn.Module, task: Task, epochs: int, batch: int, policy: str) -> float:
    """The loop a user would write for ``policy``; returns the selected model's test metric (nan for none)."""
    metric = METRICS.get(task.metric)
    evaluate = policy != "none"
    complete = policy == "complete"
    if evaluate:
        hand_evaluate(model, task.train, metric)
        hand_evaluate(model, task.val, metric)
        if complete:
            hand_evaluate(model, task.test, metric)
    opt = torch.optim.Adam(model.parameters())
    gen = torch_generator(0, "hand", device=task.device)
    x_all, y_all = task.train.x, task.train.y
    n = len(y_all)
    best, best_state, best_test = float("inf"), copy.deepcopy(model.state_dict()), float("nan")
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen, device=task.device)
        total, outs, targets = 0.0, [], []
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            x, y = x_all[idx], y_all[idx]
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            if evaluate and not complete:
                outs.append(out.detach())
                targets.append(y)
        if not evaluate:
            continue
        if complete:
            hand_evaluate(model, task.train, metric)
        else:
            metric(torch.cat(outs), torch.cat(targets))
        val = hand_evaluate(model, task.val, metric)[0]
        test = hand_evaluate(model, task.test, metric)[1] if complete else float("nan")
        if val < best:
            best, best_state, best_test = val, copy.deepcopy(model.state_dict()), test
    if evaluate and not complete:
        hand_evaluate(model, task.test, metric)
        model.load_state_dict(best_state)
        hand_evaluate(model, task.train, metric)
        best_test = hand_evaluate(model, task.test, metric)[1]
    sync(task.device)
    return best_test


def trainlab_fit(model: torch.nn.Module, task: Task, epochs: int, batch: int, policy: str, **extra: Any) -> RunResult:
    trainer = make_trainer("adam", batch_size=batch, **POLICIES[policy], **extra)
    result = trainer.fit(model, task, Budget(epochs=epochs), seed=0)
    sync(task.device)
    return result


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def fresh(model_name: str, task: Task, init: torch.nn.Module) -> torch.nn.Module:
    model = build_model(model_name, task.input_shape, task.n_outputs).to(task.device)
    model.load_state_dict(init.state_dict())
    return model


def bench_case(model_name: str, task_name: str, device: torch.device, args: argparse.Namespace) -> list[tuple]:
    task = load_task(task_name, data_dir=args.data_dir, device=str(device))
    init = build_model(model_name, task.input_shape, task.n_outputs, generator=torch_generator(0, "init")).to(device)
    case = f"{model_name}/{task_name}"
    hand_loop(fresh(model_name, task, init), task, 1, args.batch_size, "default")
    trainlab_fit(fresh(model_name, task, init), task, 1, args.batch_size, "default")
    base: dict[str, float] = {}
    rows = []
    for policy in ("none", "default", "complete"):
        pairs: list[tuple[float, float, float, float]] = []
        for _ in range(args.repeats):
            hand = timed(lambda: hand_loop(fresh(model_name, task, init), task, args.epochs, args.batch_size, policy))
            ours = (math.nan, math.nan) if policy == "none" else timed(
                lambda: trainlab_fit(fresh(model_name, task, init), task, args.epochs, args.batch_size, policy))
            pairs.append((*hand, *ours))
        hand_wall = statistics.median(p[0] for p in pairs)
        hand_cpu = statistics.median(p[1] for p in pairs)
        if policy == "none":
            base = {"wall": hand_wall, "cpu": hand_cpu}
            rows.append((case, policy, hand_wall / args.epochs, hand_cpu / args.epochs) + (math.nan,) * 6)
            continue
        rows.append((
            case, policy, hand_wall / args.epochs, hand_cpu / args.epochs,
            statistics.median(p[2] for p in pairs) / args.epochs, statistics.median(p[3] for p in pairs) / args.epochs,
            statistics.median(p[2] / p[0] for p in pairs), statistics.median(p[3] / p[1] for p in pairs),
            hand_wall / base["wall"] - 1, hand_cpu / base["cpu"] - 1,
        ))
    return rows




def bench_compile(model_name: str, task_name: str, device: torch.device, args: argparse.Namespace) -> tuple:
    task = load_task(task_name, data_dir=args.data_dir, device=str(device))
    init = build_model(model_name, task.input_shape, task.n_outputs, generator=torch_generator(0, "init")).to(device)
    out: dict[bool, tuple[float, float, float, float]] = {}
    for compiled in (False, True):
        torch._dynamo.reset()
        results: list[RunResult] = []
        wall, cpu = timed(lambda: results.append(trainlab_fit(
            fresh(model_name, task, init), task, args.epochs, args.batch_size, "default", compile=compiled)))
        history = results[0].history
        # epochs 2..E from the rows' cumulative seconds: training after compilation (validation included)
        later = len(history) - 2
        steady = (history[-1]["seconds"] - history[1]["seconds"]) / later if later > 0 else math.nan
        out[compiled] = (wall, cpu, steady, results[0].final["test_metric"])
    return (f"{model_name}/{task_name}", *out[False], *out[True])


def epoch_pairs(model_name: str, task_name: str, device: torch.device, args: argparse.Namespace) -> list[float]:
    """CPU time of one ``train_epoch`` (with a monitor and running outputs, as ``fit`` calls it) over one hand
    epoch (with ``loss.item()`` and kept outputs for its running values), alternating, one model and optimizer."""
    task = load_task(task_name, data_dir=args.data_dir, device=str(device))
    model = build_model(model_name, task.input_shape, task.n_outputs, generator=torch_generator(0, "init")).to(device)
    opt = torch.optim.Adam(model.parameters())
    loss = get_loss(task.loss)
    monitor = Monitor(make_trainer("adam"), model, task, loss, Budget(epochs=10**6), 0)
    gen = torch_generator(0, "pairs", device=device)
    x_all, y_all = task.train.x, task.train.y

    def hand() -> None:
        model.train()
        perm = torch.randperm(len(y_all), generator=gen, device=device)
        total, outs, targets = 0.0, [], []
        for i in range(0, len(y_all), args.batch_size):
            idx = perm[i : i + args.batch_size]
            x, y = x_all[idx], y_all[idx]
            out = model(x)
            value = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            total += value.item() * len(idx)
            outs.append(out.detach())
            targets.append(y)
        sync(device)

    def ours() -> None:
        train_epoch(model, task, loss, opt, batch_size=args.batch_size, generator=gen, monitor=monitor, keep_outputs=True)
        sync(device)

    hand()
    ours()
    return [timed(ours)[1] / timed(hand)[1] for _ in range(args.epoch_pairs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", default="lenet5/mnist,mlp5/wqc")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None, help="raw data root (default: TRAINLAB_DATA or the cache)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared machine)")
    parser.add_argument("--compile", action="store_true", help="also time compile = true against eager")
    parser.add_argument("--no-policies", action="store_true", help="skip the hand-loop comparison")
    parser.add_argument("--epoch-pairs", type=int, default=0, help="also time train_epoch against a hand epoch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.threads == 1:  # compile in this process, so that its CPU time is counted (workers are other processes)
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    device = resolve_device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} epochs={args.epochs} repeats={args.repeats} "
          f"batch={args.batch_size} torch={torch.__version__}")
    cases = [case.split("/") for case in args.cases.split(",")]
    if not args.no_policies:
        print("seconds per epoch (wall / cpu); ratio = trainlab / hand (median of pairs); eval share = hand loop "
              "with the policy / without evaluation - 1")
        print(f"{'case':<14} {'policy':<9} {'hand wall':>9} {'hand cpu':>8} {'ours wall':>9} {'ours cpu':>8} "
              f"{'ratio wall':>10} {'ratio cpu':>9} {'share wall':>10} {'share cpu':>9}")
        for model_name, task_name in cases:
            for row in bench_case(model_name, task_name, device, args):
                print(f"{row[0]:<14} {row[1]:<9} " + " ".join(f"{v:>{w}.3f}" for v, w in zip(
                    row[2:], (9, 8, 9, 8, 10, 9, 10, 9))))
    for model_name, task_name in cases if args.epoch_pairs else []:
        ratios = epoch_pairs(model_name, task_name, device, args)
        print(f"{model_name}/{task_name}: train_epoch / hand epoch, CPU time, {len(ratios)} pairs: median "
              f"{statistics.median(ratios):.3f} ({min(ratios):.2f}..{max(ratios):.2f})")
    if args.compile:
        print("compile = true against eager trainlab, whole fit (compile time included), default policy")
        print("seconds for the whole fit (wall, cpu), wall seconds per epoch after the first (steady), final test metric")
        print(f"{'case':<14} {'eager wall':>10} {'eager cpu':>9} {'eager steady':>12} {'eager test':>10} "
              f"{'comp. wall':>10} {'comp. cpu':>9} {'comp. steady':>12} {'comp. test':>10} {'fit ratio':>9} {'steady ratio':>12}")
        for model_name, task_name in cases:
            case, w0, c0, s0, m0, w1, c1, s1, m1 = bench_compile(model_name, task_name, device, args)
            print(f"{case:<14} {w0:>10.2f} {c0:>9.2f} {s0:>12.3f} {m0:>10.4f} {w1:>10.2f} {c1:>9.2f} {s1:>12.3f} "
                  f"{m1:>10.4f} {w1 / w0:>9.2f} {s1 / s0 if s0 > 0 else math.nan:>12.2f}")


if __name__ == "__main__":
    main()
