"""The data check made when a run or an experiment is planned, before any training."""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from trainlab.core.config import ConfigError
from trainlab.data import load_task
from trainlab.data.errors import DataError


def check_data(tasks: Iterable[tuple[str, Mapping[str, Any]]], data_dir: str | os.PathLike[str] | None) -> None:
    """Load each distinct ``(task, options)`` once on the CPU: missing or corrupted files are refused here,
    with the data module's message, instead of failing every run that needs them."""
    seen: set[str] = set()
    for name, options in tasks:
        key = repr((name, sorted(options.items())))
        if key in seen:
            continue
        seen.add(key)
        try:
            load_task(name, data_dir=data_dir, device="cpu", **options)
        except (DataError, OSError) as err:
            raise ConfigError(f"data of task {name}", str(data_dir or "$TRAINLAB_DATA"), str(err)) from None
