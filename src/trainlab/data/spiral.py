"""The C-arm spiral of Lavín Pallero (2021, §5.3, after Karpathy's CS231n example); generated, always
offline.

Arm j of C has N points with radius r evenly spaced in [0, 1] and angle
θ = linspace(2πj/C, 2πj/C + angle·π, N) + noise·ε, ε ~ N(0, 1); the point is (r cos θ, r sin θ) and its
class is j. The noise is drawn exactly as the thesis code does (``np.random.seed(s)`` then one
``randn(N)`` per arm), through an explicit ``numpy.random.RandomState(s)``, so seed 0 gives the
thesis's training spiral. Validation and test sets are fresh spirals from other seeds; the test set
concatenates several (Lavín Pallero 2021 averages test accuracy over five).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainlab.core.config import ConfigError, check_number
from trainlab.data.catalog import TaskEntry, register
from trainlab.data.task import Split, Task


@dataclass(frozen=True)
class SpiralOptions:
    """Spiral shape and the seeds of its three splits."""

    arms: int = 3
    points: int = 100
    """Points per arm."""
    noise: float = 0.2
    """Standard deviation of the Gaussian noise on the angle (radians)."""
    angle: float = 4.0
    """Angle swept by each arm, in units of π (the thesis code's ``revolutions=4``: 4π)."""
    train_seed: int = 0
    val_seed: int = 1
    test_seeds: tuple[int, ...] = (2, 3, 4, 5, 6)

    def __post_init__(self) -> None:
        check_number("arms", self.arms, low=2, integer=True)
        check_number("points", self.points, low=2, integer=True)
        check_number("noise", self.noise, low=0)
        check_number("angle", self.angle, low=0, low_open=True)
        check_number("train_seed", self.train_seed, low=0, high=2**32 - 1, integer=True)
        check_number("val_seed", self.val_seed, low=0, high=2**32 - 1, integer=True)
        seeds = self.test_seeds
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            seeds = (seeds,)
        if not isinstance(seeds, Sequence) or isinstance(seeds, str) or not seeds:
            raise ConfigError("test_seeds", self.test_seeds, "a non-empty list of seeds")
        for s in seeds:
            check_number("test_seeds", s, low=0, high=2**32 - 1, integer=True)
        object.__setattr__(self, "test_seeds", tuple(seeds))


def make_spiral(arms: int, points: int, noise: float, seed: int, angle: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Points (arms·points, 2) float64 and class indices (arms·points,) int64 of one spiral."""
    rng = np.random.RandomState(seed)  # the legacy stream the thesis code draws from, made explicit
    x = np.zeros((arms * points, 2))
    y = np.zeros(arms * points, dtype=np.int64)
    r = np.linspace(0.0, 1.0, points)
    for j in range(arms):
        start = 2 * np.pi * j / arms
        theta = np.linspace(start, start + angle * np.pi, points) + rng.randn(points) * noise
        x[j * points : (j + 1) * points] = np.c_[r * np.cos(theta), r * np.sin(theta)]
        y[j * points : (j + 1) * points] = j
    return x, y


def spiral_task(options: SpiralOptions, device: str | torch.device = "cpu") -> Task:
    """The spiral task: train from ``train_seed``, validation from ``val_seed``, test from ``test_seeds``."""
    device = torch.device(device)

    def split(seeds: Sequence[int]) -> Split:
        parts = [make_spiral(options.arms, options.points, options.noise, s, options.angle) for s in seeds]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        return Split(torch.as_tensor(x, dtype=torch.float32, device=device), torch.as_tensor(y, device=device))

    record = {
        "generator": "thesis 002 make_dataset (numpy RandomState per seed)",
        "arms": options.arms,
        "points_per_arm": options.points,
        "noise_std": options.noise,
        "angle_span": f"{options.angle:g}π",
        "seeds": {"train": [options.train_seed], "val": [options.val_seed], "test": list(options.test_seeds)},
        "scaling": "none (radius in [0, 1], already centred)",
    }
    return Task(
        name="spiral",
        kind="classification",
        train=split([options.train_seed]),
        val=split([options.val_seed]),
        test=split(options.test_seeds),
        n_outputs=options.arms,
        loss="cross_entropy",
        metric="accuracy",
        classes=[f"arm {j}" for j in range(options.arms)],
        preprocessing=record,
    )


def _build(options: SpiralOptions, root: Path, device: torch.device, download: bool) -> Task:
    return spiral_task(options, device)


register(TaskEntry(
    "spiral", "C-arm spiral (thesis 002), generated", "classification", SpiralOptions, _build, (), "2", "C classes (3)", "accuracy",
))  # fmt: skip
