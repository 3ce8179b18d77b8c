"""The learning-rate range test on a named task and model (:func:`trainlab.trainers.lr_finder.lr_find` on what
an experiment run would build), behind ``trainlab lr-find``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from trainlab.core.config import check_choice
from trainlab.core.seeding import torch_generator
from trainlab.data import load_task
from trainlab.models import build_model
from trainlab.trainers.gradient import gradient_config, gradient_trainers
from trainlab.trainers.lr_finder import LRFinderResult, lr_find


def run_lr_find(
    task: str,
    model: str,
    trainer: str = "adam",
    *,
    seed: int = 0,
    device: str = "cpu",
    data_dir: str | Path | None = None,
    loss: str | None = None,
    task_options: dict[str, Any] | None = None,
    model_options: dict[str, Any] | None = None,
    trainer_options: dict[str, Any] | None = None,
    **finder: Any,
) -> LRFinderResult:
    """:func:`lr_find` on a named task and model, initialised from ``seed`` exactly as a run with that seed.

    ``trainer`` and ``trainer_options`` choose the optimizer (and its options) and the batch size;
    ``finder`` holds :func:`lr_find`'s own options (``lr_min``, ``lr_max``, ``num_steps``, ``suggest``...).
    """
    check_choice("trainer", trainer, gradient_trainers())
    cfg = gradient_config(trainer, trainer_options or {})
    loaded = load_task(task, data_dir=data_dir, device=device, **(task_options or {}))
    net = build_model(
        model, loaded.input_shape, loaded.n_outputs, generator=torch_generator(seed, "init"),
        data=(loaded.train.x, loaded.train.y), **(model_options or {})
    ).to(device)
    return lr_find(
        net, loaded, loss, optimizer=cfg.optimizer, optimizer_options=dict(cfg.optimizer_options),
        batch_size=cfg.batch_size, seed=seed, **finder,
    )
