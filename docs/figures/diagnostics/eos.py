"""Edge of stability on the spiral: full-batch GD with MSE, sharpness against 2/lr for several lr.

Run from the repository root: ``.venv/bin/python docs/figures/diagnostics/eos.py`` (writes eos.png
and eos.json beside this script).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from matplotlib.figure import Figure

from trainlab.budget import Budget
from trainlab.diagnostics import CurvatureCallback
from trainlab.experiments.spec import RunSpec, execute

HERE = Path(__file__).resolve().parent


def edge_of_stability(lr: float, steps: int, every: int, seed: int = 0) -> list[dict]:
    """The curvature records of one full-batch GD run of spiral-mlp (width 100) with MSE."""
    spec = RunSpec(task="spiral", model="spiral-mlp", trainer="gd", loss="mse", budget=Budget(steps=steps),
                   seed=seed, trainer_options={"lr": lr, "eval_every": 1000})
    result = execute(spec, callbacks=[CurvatureCallback(every=every, top=3, ntk=1)])
    if result.status != "ok":
        raise RuntimeError(result.message)
    return result.records["curvature"]


def main(steps: int = 6000, every: int = 25, lrs: tuple[float, ...] = (0.04, 0.075, 0.15)) -> None:
    runs = {lr: edge_of_stability(lr, steps, every) for lr in lrs}
    (HERE / "eos.json").write_text(json.dumps({str(k): v for k, v in runs.items()}))
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    axes = fig.subplots(1, len(lrs), squeeze=False)[0]
    for ax, (lr, rows) in zip(axes, runs.items()):
        step = [r["step"] for r in rows]
        for i in range(3):
            ax.plot(step, [r["eigenvalues"][i] for r in rows], lw=1, label=f"λ{i + 1}")
        ax.axhline(2 / lr, color="tab:red", ls="--", label="2/lr")
        ax.set_title(f"lr = {lr}")
        ax.set_xlabel("step")
    axes[0].set_ylabel("Hessian eigenvalue")
    axes[0].legend()
    fig.savefig(HERE / "eos.png", dpi=120)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
