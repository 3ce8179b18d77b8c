"""trainlab: study how neural networks are trained."""
from typing import Any

from trainlab.core.budget import Budget, Spending
from trainlab.core.config import ConfigError
from trainlab.core.environment import set_threads
from trainlab.trainers.result import RunResult

__version__ = "0.1.0"
__all__ = ["Budget", "ConfigError", "RunResult", "Spending", "__version__", "compare", "set_threads"]


def __getattr__(name: str) -> Any:
    """``trainlab.compare`` (:func:`trainlab.experiments.compare.compare`), imported on first use so that
    ``import trainlab`` stays light."""
    if name == "compare":
        from trainlab.experiments.compare import compare

        return compare
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")
