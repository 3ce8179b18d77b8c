"""Name → object registries, one per kind (tasks, models, losses, trainers).

The same names are used in experiment files, on the command line and in the Python API.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from trainlab.core.config import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to objects of one ``kind``; unknown names raise :class:`ConfigError`."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its argument under ``name``."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(self.kind, name, "one of " + ", ".join(sorted(self._items)))
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
