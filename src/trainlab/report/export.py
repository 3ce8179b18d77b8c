"""Exports of a result store to the tools people already use, with those tools' own writers:

* :func:`to_tensorboard`: one TensorBoard run folder per stored run, written by
  ``torch.utils.tensorboard.SummaryWriter`` (needs the ``tensorboard`` package, ``pip install
  'trainlab[tensorboard]'``): every history column as a scalar against the epoch, and the run's options
  with its final metrics in the HParams dashboard.
* :func:`to_mlflow`: one MLflow run per stored run in an MLflow tracking store, written by
  ``mlflow.MlflowClient`` (``pip install 'trainlab[mlflow]'``): options as params, every history column as
  a metric with the epoch as step, the final metrics, tags for experiment/task/model/label/seed/status.
* :class:`TensorBoardLogger`: a training callback that writes the same scalars live during ``fit``
  (``trainlab train --tensorboard DIR``).

Scalar names are ``<split>/<loss|metric>`` (``val/metric``) and ``spending/<count>``; the headline metric's
name (``accuracy``, ``balanced_accuracy``, ...) is in the text summary and tags.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.core.config import ConfigError
from trainlab.experiments.store import ResultStore

SPLITS = ("train", "val", "test")
SPENDING = ("sample_evals", "forward_samples", "backward_samples", "evals", "steps", "seconds")
IDENTITY = ("experiment", "task", "model", "label", "seed", "status")


def _missing(package: str, extra: str) -> ConfigError:
    return ConfigError("format", extra, f"an installed {package} package: pip install 'trainlab[{extra}]'")


def scalar_tag(column: str) -> str | None:
    """The scalar name of a history column: ``val_metric`` → ``val/metric``, ``sample_evals`` →
    ``spending/sample_evals``, ``lr`` → ``lr``; None for ``epoch`` and ``run_id``."""
    if column in ("epoch", "run_id"):
        return None
    head, _, rest = column.partition("_")
    if head in SPLITS and rest:
        return f"{head}/{rest}"
    if column in SPENDING:
        return f"spending/{column}"
    return column


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _params(run: Mapping[str, Any]) -> dict[str, Any]:
    """A run's options (spec columns, dotted) without missing values; lists as JSON text."""
    out = {}
    for key, value in run.items():
        if key in ("run_id", "message", "config_id", "started_at", "finished_at", "git_revision", "device_name",
                   "attempts", "best_epoch") or str(key).startswith("final_") or key in SPENDING:
            continue
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        out[str(key)] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value, default=str)
    return out


def _slug(text: object) -> str:
    return re.sub(r"[^A-Za-z0-9.+=-]+", "_", str(text)).strip("_") or "x"


def run_folder(run: Mapping[str, Any]) -> str:
    """``<task>/<model>/<label>/seed<k>-<run_id>``: a run's folder under the export root."""
    return "/".join(_slug(run.get(k)) for k in ("task", "model", "label")) + \
        f"/seed{run.get('seed_index', run.get('seed'))}-{run['run_id']}"


def _frames(experiment_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    with ResultStore.open(experiment_dir) as store:
        return store.runs_frame(), store.history_frame()


def to_tensorboard(experiment_dir: str | Path, out: str | Path) -> list[Path]:
    """Write one TensorBoard run folder per finished run of ``experiment_dir``'s store under ``out``
    (:func:`run_folder`); return the folders. Open with ``tensorboard --logdir OUT``."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise _missing("tensorboard", "tensorboard") from None
    runs, history = _frames(experiment_dir)
    out = Path(out)
    folders = []
    for run in runs.to_dict("records"):
        if run["status"] not in ("ok", "diverged", "failed"):
            continue
        folder = out / run_folder(run)
        rows = history[history["run_id"] == run["run_id"]].sort_values("epoch")
        with SummaryWriter(log_dir=str(folder)) as writer:
            for row in rows.to_dict("records"):
                for column, value in row.items():
                    tag, number = scalar_tag(column), _number(value)
                    if tag is not None and number is not None:
                        writer.add_scalar(tag, number, global_step=int(row["epoch"]))
            params = _params(run)
            finals = {f"final/{c.removeprefix('final_').replace('_', '/', 1)}": float(run[c])
                      for c in runs.columns if str(c).startswith("final_") and _number(run[c]) is not None}
            writer.add_text("run", f"run {run['run_id']}: {run['status']}; metric: {run.get('metric')}")
            writer.add_hparams(params, finals or {"final/none": math.nan}, run_name=".")
        folders.append(folder)
    return folders


def to_mlflow(experiment_dir: str | Path, out: str | Path, experiment: str | None = None) -> str:
    """Log every finished run of ``experiment_dir``'s store into the MLflow tracking store at ``out`` (a
    folder, used as a SQLite store ``out/mlflow.db``) under MLflow experiment ``experiment`` (default: the
    store's experiment name); return the tracking URI (``mlflow ui --backend-store-uri URI``)."""
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param
    except ImportError:
        raise _missing("mlflow", "mlflow") from None
    runs, history = _frames(experiment_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri)
    names = runs["experiment"].dropna() if "experiment" in runs else pd.Series(dtype=str)
    name = experiment or (str(names.iloc[0]) if len(names) else Path(experiment_dir).name)
    found = client.get_experiment_by_name(name)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(
        name, artifact_location=(out / "artifacts").resolve().as_uri())
    for run in runs.to_dict("records"):
        if run["status"] not in ("ok", "diverged", "failed"):
            continue
        tags = {k: str(run.get(k)) for k in IDENTITY if run.get(k) is not None}
        tags.update({"trainlab.run_id": str(run["run_id"]), "trainlab.metric": str(run.get("metric"))})
        created = client.create_run(experiment_id, run_name=f"{run['label']}-{run['run_id']}", tags=tags)
        run_id = created.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in _params(run).items()]
        rows = history[history["run_id"] == run["run_id"]].sort_values("epoch")
        metrics = [Metric(tag.replace("/", "_"), number, 0, int(row["epoch"]))
                   for row in rows.to_dict("records") for column, value in row.items()
                   if (tag := scalar_tag(column)) is not None and (number := _number(value)) is not None]
        metrics += [Metric(str(c), float(run[c]), 0, 0) for c in runs.columns
                    if str(c).startswith("final_") and _number(run[c]) is not None]
        for start in range(0, len(params), 100):  # MLflow's limits: 100 params, 1000 metrics per batch
            client.log_batch(run_id, params=params[start:start + 100])
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start:start + 1000])
        client.set_terminated(run_id, status="FINISHED" if run["status"] == "ok" else "FAILED")
    return uri


class TensorBoardLogger(Callback):
    """Write the history rows of a training run to TensorBoard as they are recorded (tags as
    :func:`scalar_tag`, step = epoch), plus the learning rate of every optimizer step as ``step/lr``
    (step = optimizer step) when the trainer reports one."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard", "tensorboard") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def on_step_end(self, state: TrainState) -> None:
        if state.lr is not None:
            self.writer.add_scalar("step/lr", float(state.lr), global_step=state.step)

    def on_epoch_end(self, state: TrainState) -> None:
        row = state.history[-1]
        for column, value in row.items():
            tag, number = scalar_tag(column), _number(value)
            if tag is not None and number is not None:
                self.writer.add_scalar(tag, number, global_step=state.epoch)
        self.writer.flush()

    def on_fit_end(self, state: TrainState) -> None:
        self.writer.close()
