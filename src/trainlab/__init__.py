"""trainlab: study how neural networks are trained."""
from typing import TYPE_CHECKING, Any

from trainlab.core.budget import Budget, Spending
from trainlab.core.config import ConfigError

if TYPE_CHECKING:
    from trainlab.trainers.result import RunResult

__version__ = "0.1.0"
__all__ = ["Budget", "ConfigError", "RunResult", "Spending", "__version__"]


def __getattr__(name: str) -> Any:
    """``trainlab.RunResult`` on first access (PEP 562), so that ``import trainlab`` and the command line's
    start-up do not import torch."""
    if name == "RunResult":
        from trainlab.trainers.result import RunResult  # start-up time: this imports torch and the trainers

        return RunResult
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")
