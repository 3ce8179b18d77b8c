"""Tables and figures of the recurrent studies (docs/recurrent.md) from their experiment stores.

Reads ``runs/<experiment>/store.sqlite`` through ``trainlab export`` (CSV) and prints Markdown tables:

* ``recurrent-adding``: per model and length T, runs, successes (test MSE < 0.01), median test MSE;
  figure ``adding-success.png`` (success rate against T);
* ``recurrent-clipping``: per recurrent scale and rule, diverged runs, median final train loss;
* ``recurrent-metaheuristics``: per trainer, median test MSE and sample evaluations; figure
  ``metaheuristics-adding.png`` (test MSE against sample evaluations, one line per run);
* ``recurrent-smnist``: per seed, test accuracy of the selected epoch.

Experiments whose store is absent are skipped. Usage::

    PYTHONPATH=src python tools/recurrent_studies.py [--runs runs] [--figures docs/figures/recurrent]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

SUCCESS_MSE = 0.01


def export(store: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, histories) frames of the experiment folder ``store`` (finished runs only)."""
    out = Path(tempfile.mkdtemp())
    trainlab = Path(sys.executable).with_name("trainlab")
    subprocess.run([str(trainlab), "export", str(store), "--out", str(out)], check=True, capture_output=True)
    runs = pd.read_csv(out / "runs.csv")
    runs = runs[runs["status"].isin(["ok", "diverged"])]
    histories = pd.read_csv(out / "histories.csv")
    return runs, histories[histories["run_id"].isin(runs["run_id"])]


def markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    """A Markdown table of ``frame`` (index included), numbers to ``digits`` significant figures."""
    flat = frame.reset_index()
    cells = [[f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in row] for row in flat.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, flat.columns)) + " |", "|" + "---|" * len(flat.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def adding(runs: pd.DataFrame, figures: Path) -> None:
    runs = runs.assign(solved=runs["final_test_loss"] < SUCCESS_MSE)
    table = runs.groupby(["model", "task_options.length"]).agg(
        runs=("solved", "size"), solved=("solved", "sum"), median_test_mse=("final_test_loss", "median"),
        best=("final_test_loss", "min"), worst=("final_test_loss", "max"),
    )  # fmt: skip
    print("### recurrent-adding\n")
    print(markdown(table), "\n")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    styles = {"rnn": ("o", "-"), "lstm": ("s", "--"), "gru": ("^", ":")}  # lines can coincide: tell them apart
    for model, group in table.reset_index().groupby("model"):
        marker, line = styles.get(str(model), ("o", "-"))
        ax.plot(group["task_options.length"], group["solved"] / group["runs"], marker=marker, linestyle=line,
                markersize=9 if model == "lstm" else 6, zorder=3 if model == "gru" else 2, label=model)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel(f"success rate (test MSE < {SUCCESS_MSE})")
    ax.set_ylim(-0.05, 1.05)
    ax.legend()
    fig.savefig(figures / "adding-success.png", dpi=120, bbox_inches="tight")


def clipping(runs: pd.DataFrame) -> None:
    runs = runs.assign(diverged=runs["status"] == "diverged")
    table = runs.groupby(["model_options.recurrent_scale", "label"]).agg(
        runs=("diverged", "size"), diverged=("diverged", "sum"), median_test_mse=("final_test_loss", "median"),
    )  # fmt: skip
    print("### recurrent-clipping\n")
    print(markdown(table), "\n")


def metaheuristics(runs: pd.DataFrame, histories: pd.DataFrame, figures: Path) -> None:
    table = runs.groupby("label").agg(
        runs=("run_id", "size"), median_test_mse=("final_test_loss", "median"), best=("final_test_loss", "min"),
        worst=("final_test_loss", "max"), sample_evals=("sample_evals", "median"), seconds=("seconds", "median"),
    )  # fmt: skip
    print("### recurrent-metaheuristics\n")
    print(markdown(table), "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    colours = dict(zip(sorted(runs["label"].unique()), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for run_id, group in histories.groupby("run_id"):
        label = runs.loc[runs["run_id"] == run_id, "label"].item()
        ax.semilogy(group["sample_evals"], group["test_loss"], color=colours[label], alpha=0.8, label=label)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys())
    ax.axhline(1 / 6, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("sample evaluations (forward + backward)")
    ax.set_ylabel("test MSE")
    fig.savefig(figures / "metaheuristics-adding.png", dpi=120, bbox_inches="tight")


def smnist(runs: pd.DataFrame) -> None:
    print("### recurrent-smnist\n")
    cols = ["seed_index", "final_test_metric", "final_val_metric", "best_epoch", "seconds"]
    print(markdown(runs[cols].set_index("seed_index")), "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--figures", type=Path, default=Path("docs/figures/recurrent"))
    args = parser.parse_args()
    args.figures.mkdir(parents=True, exist_ok=True)
    for name in ("recurrent-adding", "recurrent-clipping", "recurrent-metaheuristics", "recurrent-smnist"):
        if not (args.runs / name / "store.sqlite").is_file():
            print(f"({name}: no store, skipped)\n")
            continue
        runs, histories = export(args.runs / name)
        if name == "recurrent-adding":
            adding(runs, args.figures)
        elif name == "recurrent-clipping":
            clipping(runs)
        elif name == "recurrent-metaheuristics":
            metaheuristics(runs, histories, args.figures)
        else:
            smnist(runs)


if __name__ == "__main__":
    main()
