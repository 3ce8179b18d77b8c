"""Timing helpers shared by the benchmark scripts (run as ``python bench/bench_*.py``)."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def seconds(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall time of ``repeats`` calls of ``fn``, one after another."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def best_of(fn: Callable[[], object], repeats: int, warmup: int = 0) -> float:
    """The fastest of ``repeats`` calls (the least disturbed by other load), after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    return min(seconds(fn, repeats))


def median_of(fn: Callable[[], object], repeats: int) -> float:
    """The median of ``repeats`` calls."""
    return float(statistics.median(seconds(fn, repeats)))
