"""bhp leakage-free default: test R² with Adam (LR finder valley, one-cycle, 20 epochs, batch 32, Glorot) on every
MLP, seeds 0-2, with and without the two protections (drop features constant after filtering; clip val/test to
the training range). Usage: python bench/bhp_default_ablation.py > bhp.tsv (numbers in docs/data.md)."""
import torch

torch.set_num_threads(1)

from trainlab.experiments.spec import RunSpec, execute
from trainlab.core.budget import Budget
variants = {
    "default": {},
    "old default (keep constant, no clip)": {"constant_features": "keep", "clip": False},
    "drop constant only": {"clip": False},
    "clip only": {"constant_features": "keep"},
}
for name, opts in variants.items():
    for model in ["mlp1","mlp2","mlp5","mlp11"]:
        for seed in [0,1,2]:
            spec=RunSpec(task="bhp",model=model,trainer="adam",budget=Budget(epochs=20),seed=seed,
                task_options=opts, model_options={"init":"glorot-uniform"},
                trainer_options={"lr_find":True,"schedule":"one-cycle","batch_size":32})
            r=execute(spec)
            print(f"{name}\t{model}\t{seed}\t{r.status}\t{r.final.get('test_metric',float('nan')):.4f}\t{r.final.get('val_loss',float('nan')):.4g}\t{r.best_epoch}\t{r.final.get('lr',float('nan')):.3g}",flush=True)
