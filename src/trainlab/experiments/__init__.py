"""Experiments: declarative grids of runs, the durable result store, resume and executors."""
from trainlab.experiments.config import Experiment, PlannedRun, load_experiment, parse_experiment
from trainlab.experiments.executors import (
    Executor,
    InlineExecutor,
    Job,
    Outcome,
    ProcessExecutor,
    RayExecutor,
    make_executor,
    run_job,
)
from trainlab.experiments.quickstart import quickstart_experiment, run_quickstart
from trainlab.experiments.runner import Plan, RunReport, experiment_status, plan_experiment, run_experiment
from trainlab.experiments.spec import RunSpec, execute
from trainlab.experiments.store import ResultStore

__all__ = [
    "Executor",
    "Experiment",
    "InlineExecutor",
    "Job",
    "Outcome",
    "Plan",
    "PlannedRun",
    "ProcessExecutor",
    "RayExecutor",
    "ResultStore",
    "RunReport",
    "RunSpec",
    "execute",
    "experiment_status",
    "load_experiment",
    "make_executor",
    "parse_experiment",
    "plan_experiment",
    "quickstart_experiment",
    "run_experiment",
    "run_job",
    "run_quickstart",
]
