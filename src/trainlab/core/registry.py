"""Name → object registries, one per kind (tasks, models, losses, metrics, optimizers, searchers, trainers).

The same names are used in experiment files, on the command line and in the Python API.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from trainlab.core.config import ConfigError, did_you_mean
from trainlab.core.plugins import load_plugins

__all__ = ["Registry", "did_you_mean"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to objects of one ``kind``; unknown names raise :class:`ConfigError` naming the
    allowed names and the closest ones (:func:`did_you_mean`)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._listeners: list[Callable[[str, T], None]] = []

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its argument under ``name``."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            for listener in self._listeners:
                listener(name, obj)
            return obj

        return add

    def subscribe(self, listener: Callable[[str, T], None]) -> None:
        """Call ``listener(name, obj)`` for every entry, those registered now and those registered later: how one
        registry derives entries from another (every optimizer is also a gradient trainer, every searcher a
        population trainer)."""
        self._listeners.append(listener)
        for name, obj in list(self._items.items()):
            listener(name, obj)

    def get(self, name: str) -> T:
        """The entry ``name``; a name not registered loads the ``trainlab.plugins`` entry points first, then
        raises :class:`ConfigError` with the allowed names and the closest ones (:func:`did_you_mean`)."""
        if isinstance(name, str) and name not in self._items:
            load_plugins()
        if not isinstance(name, str) or name not in self._items:
            names = sorted(self._items)
            raise ConfigError(self.kind, name, "one of " + ", ".join(names) + did_you_mean(name, names))
        return self._items[name]

    def names(self) -> list[str]:
        """Every registered name, plugins' included."""
        load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered now (plugins not loaded yet are not consulted)."""
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
