"""Training algorithms behind one interface; importing this package registers every trainer."""
from trainlab.trainers.base import TRAINERS, Monitor, Trainer, make_trainer
from trainlab.trainers.optimizers import OPTIMIZERS, make_optimizer

__all__ = ["OPTIMIZERS", "TRAINERS", "Monitor", "Trainer", "make_optimizer", "make_trainer"]

# Trainer modules register themselves on import (one line per module, appended by their owners).
from trainlab.trainers import gradient  # noqa: E402,F401
from trainlab.trainers import second_order  # noqa: E402,F401
from trainlab.trainers.population import trainer  # noqa: E402,F401
from trainlab.trainers import fletcher_reeves  # noqa: E402,F401
from trainlab.trainers import saddle_free  # noqa: E402,F401
from trainlab.trainers import block_coordinate  # noqa: E402,F401
from trainlab.trainers import bptt  # noqa: E402,F401
from trainlab.trainers import layerwise  # noqa: E402,F401
from trainlab.trainers import curriculum  # noqa: E402,F401
