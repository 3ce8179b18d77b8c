"""trainlab: study how neural networks are trained."""
from trainlab.budget import Budget, Spending
from trainlab.config import ConfigError
from trainlab.notebook import compare, set_threads
from trainlab.result import RunResult

__version__ = "0.1.0"
__all__ = ["Budget", "ConfigError", "RunResult", "Spending", "__version__", "compare", "set_threads"]
