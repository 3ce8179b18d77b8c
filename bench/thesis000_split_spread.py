"""How much of a single published bcw number is the split: test balanced accuracy of the thesis000 protocol
(Glorot, LR finder valley, one-cycle, 20 epochs, batch 16) on bcw mlp5 over 5 data splits (data_seed 0-4)
with one training seed. Usage: python bench/thesis000_split_spread.py (numbers in docs/reproductions/thesis000.md)."""
import torch

torch.set_num_threads(1)

from trainlab.core.budget import Budget  # noqa: E402
from trainlab.experiments.spec import RunSpec, execute  # noqa: E402

for trainer in ("nag", "rmsprop", "adam"):
    for data_seed in range(5):
        spec = RunSpec(task="bcw", model="mlp5", trainer=trainer, budget=Budget(epochs=20), seed=0,
                       task_options={"profile": "thesis000", "data_seed": data_seed},
                       model_options={"init": "glorot-uniform"},
                       trainer_options={"lr_find": True, "schedule": "one-cycle", "batch_size": 16})
        result = execute(spec)
        print(f"{trainer}\t{data_seed}\t{result.status}\t{result.final.get('test_metric', float('nan')):.4f}", flush=True)
