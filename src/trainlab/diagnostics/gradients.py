"""Per-layer gradient norms of the objective (vanishing and exploding gradients)."""
from __future__ import annotations

import torch

from trainlab.core.config import check_choice
from trainlab.diagnostics.objective import Objective

GROUPINGS = ("module", "parameter")


def gradient_norms(objective: Objective, by: str = "module") -> dict[str, float]:
    """‖∇f‖₂ per module (weights and bias together, e.g. ``"0"`` for ``0.weight``/``0.bias``) or per
    parameter tensor, plus ``"total"``; one scatter-add over the flat gradient, no loop over tensors."""
    check_choice("by", by, GROUPINGS)
    fmodel = objective.fmodel
    keys = [n.rpartition(".")[0] or n if by == "module" else n for n in fmodel.names]
    groups = list(dict.fromkeys(keys))
    index = torch.repeat_interleave(
        torch.tensor([groups.index(k) for k in keys], device=fmodel.device),
        torch.tensor(fmodel.numels, device=fmodel.device),
    )
    squares = objective.gradient().square()
    sums = torch.zeros(len(groups), dtype=squares.dtype, device=squares.device).index_add_(0, index, squares)
    norms = dict(zip(groups, sums.sqrt().tolist()))
    norms["total"] = float(squares.sum().sqrt())
    return norms
