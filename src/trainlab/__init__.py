"""trainlab: study how neural networks are trained."""
from trainlab.core.budget import Budget, Spending
from trainlab.core.config import ConfigError
from trainlab.trainers.result import RunResult

__version__ = "0.1.0"
__all__ = ["Budget", "ConfigError", "RunResult", "Spending", "__version__"]
