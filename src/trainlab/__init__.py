"""trainlab: study how neural networks are trained."""
from typing import TYPE_CHECKING, Any

from trainlab.core.budget import Budget, Spending
from trainlab.core.config import ConfigError

if TYPE_CHECKING:
    from trainlab.core.environment import set_threads
    from trainlab.experiments.compare import compare
    from trainlab.trainers.result import RunResult

__version__ = "0.1.0"
__all__ = ["Budget", "ConfigError", "RunResult", "Spending", "__version__", "compare", "set_threads"]


def __getattr__(name: str) -> Any:
    """``trainlab.RunResult``, ``trainlab.compare`` and ``trainlab.set_threads`` on first access (PEP 562), so
    that ``import trainlab`` and the command line's start-up do not import torch."""
    if name == "RunResult":
        from trainlab.trainers.result import RunResult  # start-up time: this imports torch and the trainers

        return RunResult
    if name == "compare":
        from trainlab.experiments.compare import compare  # start-up time: this imports torch and the trainers

        return compare
    if name == "set_threads":
        from trainlab.core.environment import set_threads  # start-up time: this imports torch and the trainers

        return set_threads
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")
