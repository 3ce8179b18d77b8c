"""Edge of stability on the spiral: full-batch GD with MSE, sharpness against 2/lr for several lr.

Run from the repository root: ``.venv/bin/python docs/figures/diagnostics/eos.py`` (writes eos.png
and eos.json beside this script).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from matplotlib.figure import Figure

from trainlab.core.budget import Budget
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


def main(steps: int = 6000, every: int = 50, lrs: tuple[float, ...] = (0.12, 0.2, 0.4)) -> None:
    runs = {lr: edge_of_stability(lr, steps, every) for lr in lrs}
    (HERE / "eos.json").write_text(json.dumps({str(k): v for k, v in runs.items()}))
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    axes = fig.subplots(2, len(lrs), sharex=True, squeeze=False)
    for col, (lr, rows) in enumerate(runs.items()):
        step = [r["step"] for r in rows]
        top, ntk = axes[0, col], axes[1, col]
        for i in range(3):
            top.plot(step, [r["eigenvalues"][i] for r in rows], lw=1, label=f"λ{i + 1}")
        top.axhline(2 / lr, color="tab:red", ls="--", label="2/lr")
        top.set_title(f"lr = {lr}")
        ntk.plot(step, [r["ntk"][0] for r in rows], color="tab:purple", lw=1)
        ntk.set_xlabel("step")
    axes[0, 0].set_ylabel("Hessian top-3 eigenvalues")
    axes[1, 0].set_ylabel("NTK λ_max (50 samples)")
    axes[0, 0].legend()
    fig.savefig(HERE / "eos.png", dpi=120)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
