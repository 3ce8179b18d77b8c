"""Third-party extensions through the ``trainlab.plugins`` entry-point group (PyPA entry-points specification).

A distribution declares, in its ``pyproject.toml``::

    [project.entry-points."trainlab.plugins"]
    mine = "my_package.trainlab_plugin"

The entry point is a module that registers its optimizers, searchers, models, losses or tasks when imported,
or a callable (``"my_package.plugin:register"``) that does so when called with no argument. Plugins load once
per process: the first time a registry is asked for a name it does not hold or for its list of names, and at
the start of every process-pool and Ray worker. See docs/plugins.md.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from types import ModuleType

from trainlab.core.config import ConfigError

GROUP = "trainlab.plugins"
_loaded: list[str] = []
_started = False


def load_plugins() -> tuple[str, ...]:
    """Load every plugin of :data:`GROUP` (once per process) and return the names of those loaded."""
    global _started
    if _started:
        return tuple(_loaded)
    _started = True
    seen: set[str] = set()
    for point in sorted(entry_points(group=GROUP), key=lambda p: (p.name, p.value)):
        if point.value in seen:
            continue
        seen.add(point.value)
        try:
            target = point.load()
            if callable(target) and not isinstance(target, ModuleType):
                target()
        except Exception as err:  # noqa: BLE001 - whatever a plugin raises becomes one line naming it
            raise ConfigError(
                f"plugin {point.name}", point.value, f"an entry point that loads ({type(err).__name__}: {err})"
            ) from err
        _loaded.append(point.name)
    return tuple(_loaded)
