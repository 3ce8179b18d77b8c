"""Epoch time of trainlab's gradient trainer against a minimal hand-written PyTorch loop.

Same task tensors, same initial weights, same optimizer (Adam, batch 64), same device. Two settings:

* ``eval``: both evaluate train/val/test in eval mode after every epoch (what a run records);
* ``ends-only``: both evaluate only before the first and after the last epoch (the trainer with
  ``eval_every`` = epochs records epoch 0 and the last epoch), so the per-step overhead dominates.

After one untimed warm-up run of each, runs alternate (hand, trainlab, hand, trainlab, ...) and the
ratio is the median of per-pair ratios, measured within one process; absolute times on a shared machine
are not meaningful.

    .venv/bin/python bench/bench_train.py --data-dir ../shared/datasets [--cases lenet5/mnist,mlp5/wqc] [--epochs 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from trainlab.core.budget import Budget
from trainlab.data import load_task, resolve_device
from trainlab.losses import get_loss
from trainlab.models import build_model
from trainlab.core.seeding import torch_generator
from trainlab.trainers import make_trainer
from trainlab.trainers.base import evaluate


def evaluate_all(model: torch.nn.Module, task) -> None:
    for split in (task.train, task.val, task.test):
        evaluate(model, split, get_loss("cross_entropy"), task.metric)


def hand_loop(model: torch.nn.Module, task, epochs: int, batch_size: int, with_eval: bool) -> None:
    """The minimal loop: randperm batches, forward, cross-entropy, backward, Adam step."""
    evaluate_all(model, task)
    opt = torch.optim.Adam(model.parameters())
    gen = torch_generator(0, "hand", device=task.device)
    x_all, y_all = task.train.x, task.train.y
    n = len(y_all)
    loss_fn = torch.nn.functional.cross_entropy
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen, device=task.device)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            loss = loss_fn(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if with_eval:
            evaluate_all(model, task)
    if not with_eval:
        evaluate_all(model, task)
    if task.device.type == "cuda":
        torch.cuda.synchronize()


def trainlab_fit(model: torch.nn.Module, task, epochs: int, batch_size: int, with_eval: bool) -> None:
    trainer = make_trainer("adam", batch_size=batch_size, eval_every=1 if with_eval else epochs)
    trainer.fit(model, task, Budget(epochs=epochs), seed=0)
    if task.device.type == "cuda":
        torch.cuda.synchronize()


def bench_case(
    model_name: str, task_name: str, device: torch.device, epochs: int, repeats: int, batch: int, data_dir: str | None
) -> list:
    task = load_task(task_name, data_dir=data_dir, device=str(device))
    init = build_model(model_name, task.input_shape, task.n_outputs, generator=torch_generator(0, "init"))
    rows = []
    for fn in (hand_loop, trainlab_fit):
        fn(build_model(model_name, task.input_shape, task.n_outputs).to(device), task, 1, batch, False)
    for setting, with_eval in (("eval", True), ("ends-only", False)):
        ratios, hand_times, ours_times = [], [], []
        for _ in range(repeats):
            times = []
            for fn in (hand_loop, trainlab_fit):
                model = build_model(model_name, task.input_shape, task.n_outputs).to(device)
                model.load_state_dict(init.state_dict())
                start = time.perf_counter()
                fn(model, task, epochs, batch, with_eval)
                times.append((time.perf_counter() - start) / epochs)
            hand_times.append(times[0])
            ours_times.append(times[1])
            ratios.append(times[1] / times[0])
        rows.append((f"{model_name}/{task_name}", setting, statistics.median(hand_times),
                     statistics.median(ours_times), statistics.median(ratios), min(ratios), max(ratios)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="lenet5/mnist,mlp5/wqc")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None, help="raw data root (default: TRAINLAB_DATA or the cache)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} epochs={args.epochs} repeats={args.repeats} "
          f"batch={args.batch_size} torch={torch.__version__}")
    print(f"{'case':<14} {'setting':<11} {'hand s/epoch':>12} {'trainlab s/epoch':>16} {'ratio (median)':>14} {'min..max':>12}")
    for case in args.cases.split(","):
        model_name, task_name = case.split("/")
        for name, setting, hand, ours, ratio, lo, hi in bench_case(
            model_name, task_name, device, args.epochs, args.repeats, args.batch_size, args.data_dir
        ):
            print(f"{name:<14} {setting:<11} {hand:>12.3f} {ours:>16.3f} {ratio:>14.3f} {lo:>5.2f}..{hi:<5.2f}")


if __name__ == "__main__":
    main()
