"""What keeps ``trainlab --help`` and ``--version`` fast: listing the commands imports click and rich only.

Every command module imports the library (torch, the trainers, the data loaders) inside its command
functions, and option choices that come from a registry are read when they are first needed.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click


class LazyChoice(click.Choice):
    """A :class:`click.Choice` whose choices ``load()`` returns on first use (parsing a value, or this command's
    own ``--help``), not when the command is defined."""

    def __init__(self, load: Callable[[], Sequence[str]], case_sensitive: bool = True):
        self._load = load
        self._loaded: tuple[str, ...] | None = None
        super().__init__((), case_sensitive)

    @property
    def choices(self) -> tuple[str, ...]:
        if self._loaded is None:
            self._loaded = tuple(self._load())
        return self._loaded

    @choices.setter
    def choices(self, value: Any) -> None:
        """click's constructor assigns the choices; the loaded ones are kept instead."""
