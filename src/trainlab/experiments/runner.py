"""Plan and run an experiment into its result store, resuming where it stopped.

Resume rule: a run whose stored status is ``ok`` or ``diverged`` is done; ``failed`` is done unless
``retry_failed``; ``pending`` or ``running`` (an experiment killed mid-run) or absent is (re)run, and its
earlier rows, if any, are replaced in one transaction.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from rich.console import Console

from trainlab.core.config import ConfigError
from trainlab.experiments.config import Experiment, PlannedRun, load_experiment
from trainlab.core.preflight import check_device, check_out_dir
from trainlab.data.preflight import check_data
from trainlab.experiments.executors import Event, Executor, Job, make_executor
from trainlab.experiments.progress import ProgressDisplay
from trainlab.experiments.store import LEASE, STORE_NAME, ResultStore
from trainlab.experiments.sweep import check_compatible

DONE = ("ok", "diverged")


@dataclass
class Plan:
    """Which runs of an experiment are already in its store and which remain."""

    experiment: Experiment
    status: dict[str, str | None]
    todo: list[PlannedRun]

    @property
    def total(self) -> int:
        return len(self.experiment.runs)

    def summary(self) -> str:
        """For example ``"24 runs: 20 done (ok 19, diverged 1), 1 failed (kept), 3 to run"``."""
        counts: dict[str, int] = {}
        for status in self.status.values():
            counts[str(status)] = counts.get(str(status), 0) + 1
        todo = {r.run_id for r in self.todo}
        failed_kept = sum(1 for r, s in self.status.items() if s == "failed" and r not in todo)
        done = sum(counts.get(s, 0) for s in DONE)
        parts = [f"{self.total} runs: {done} done (ok {counts.get('ok', 0)}, diverged {counts.get('diverged', 0)})"]
        if failed_kept:
            parts.append(f"{failed_kept} failed (kept; --retry-failed reruns them)")
        parts.append(f"{len(self.todo)} to run")
        return ", ".join(parts)


@dataclass
class RunReport:
    """What one ``run_experiment`` call did."""

    out_dir: Path
    plan: Plan
    counts: dict[str, int] = field(default_factory=dict)
    """Statuses of the runs executed by this call."""
    elsewhere: set[str] = field(default_factory=set)
    """Runs to do that another runner on the same store held or finished first."""

    @property
    def store_path(self) -> Path:
        return self.out_dir / STORE_NAME


def plan_experiment(experiment: Experiment, store: ResultStore, retry_failed: bool = False) -> Plan:
    """Compare the experiment's runs with the store."""
    status = {r.run_id: store.status(r.run_id) for r in experiment.runs}
    skip = DONE + (() if retry_failed else ("failed",))
    todo = [r for r in experiment.runs if status[r.run_id] not in skip]
    return Plan(experiment, status, todo)


def default_out_dir(experiment: Experiment) -> Path:
    """``./runs/<experiment name>``."""
    return Path("runs") / experiment.name


def _jobs(plan: Plan, data_dir: str | None, parts: int = 1) -> list[Job]:
    """One job per run; with ``engine = "sweep"``, each group of runs the sweep engine accepts is split
    into ``parts`` jobs of near-equal size (one per worker), so that every worker trains a share of it.
    A cell's numbers do not depend on which other cells share its sweep, so the split changes nothing
    but the wall time."""
    single = list(plan.todo)
    groups: dict[str, list[PlannedRun]] = {}
    if plan.experiment.engine == "sweep":
        for run in plan.todo:
            groups.setdefault(_sweep_key(run), []).append(run)
        single = []
        for key, runs in list(groups.items()):
            try:
                check_compatible([r.spec for r in runs])
            except ConfigError:
                single += groups.pop(key)
                continue
    jobs = [Job(tuple(r.run_id for r in share), tuple(r.spec for r in share), data_dir, sweep=True)
            for runs in groups.values() for share in _split(runs, parts)]
    return jobs + [Job((r.run_id,), (r.spec,), data_dir) for r in single]


def _split(runs: list[PlannedRun], parts: int) -> list[list[PlannedRun]]:
    """``runs`` in at most ``parts`` contiguous shares whose sizes differ by at most one."""
    parts = max(1, min(parts, len(runs)))
    size, extra = divmod(len(runs), parts)
    bounds = [i * size + min(i, extra) for i in range(parts + 1)]
    return [runs[a:b] for a, b in pairwise(bounds)]


def _sweep_key(run: PlannedRun) -> str:
    """Runs that may share a sweep: equal but for seed, learning rate and loss parameters."""
    spec = {k: v for k, v in run.resolved.items() if k not in ("seed", "loss_options", "trainer_options")}
    spec["trainer_options"] = {k: v for k, v in run.resolved["trainer_options"].items() if k != "lr"}
    return repr(sorted((k, repr(v)) for k, v in spec.items()))


def run_experiment(
    experiment: Experiment | str | Path,
    out_dir: str | Path | None = None,
    *,
    executor: Executor | str = "inline",
    workers: int = 1,
    address: str | None = None,
    retry_failed: bool = False,
    data_dir: str | Path | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> RunReport:
    """Run the experiment's missing runs into ``out_dir/store.sqlite`` (default ``./runs/<name>``).

    ``executor`` is an :class:`Executor` or a name (``inline``, ``process`` with ``workers``, ``ray`` with
    ``address``).
    The store is written only from this process, one transaction per finished run; each job's runs are
    claimed in the store just before it starts, so several runners on one store split the grid.
    """
    if not isinstance(experiment, Experiment):
        experiment = load_experiment(experiment)
    if isinstance(executor, str):
        executor = make_executor(executor, workers=workers, address=address)
    out = Path(out_dir) if out_dir is not None else default_out_dir(experiment)
    preflight(experiment, out, None if data_dir is None else str(data_dir))
    store = ResultStore(out / STORE_NAME)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    beat = _Heartbeat(store.path, owner)
    try:
        store.set_meta("experiment", experiment.name)
        if experiment.text:
            store.set_meta("experiment_file", experiment.text)
        for run in experiment.runs:
            store.register(
                run.run_id, run.resolved, experiment=experiment.name, label=run.label, seed_index=run.seed_index
            )
        plan = plan_experiment(experiment, store, retry_failed)
        report = RunReport(out, plan)
        if not plan.todo:
            return report
        runs = {r.run_id: r for r in plan.todo}
        jobs = _jobs(plan, None if data_dir is None else str(data_dir), executor.parallelism)
        skip = DONE + (() if retry_failed else ("failed",))

        def claimed(jobs: list[Job]) -> Iterator[Job]:
            """Each job as it is about to start, cut to the runs this runner could claim."""
            for job in jobs:
                mine = set(store.claim(job.run_ids, owner, skip))
                report.elsewhere |= set(job.run_ids) - mine
                if mine:
                    keep = [i for i, r in enumerate(job.run_ids) if r in mine]
                    yield dataclasses.replace(
                        job, run_ids=tuple(job.run_ids[i] for i in keep), specs=tuple(job.specs[i] for i in keep)
                    )

        beat.start()
        started: dict[str, str] = {}
        finished: set[str] = set()

        with ProgressDisplay(plan.experiment.name, plan.todo, console, progress,
                             executor.parallelism) as display:

            def on_event(event: Event) -> None:
                if event[1] in finished:  # a late event of a run already saved
                    return
                if event[0] == "start":
                    started[event[1]] = event[2]
                    store.mark_running(event[1], event[2])
                display.event(event)

            for job, outcomes in executor.run(claimed(jobs), on_event):
                for outcome in outcomes:
                    run = runs[outcome.run_id]
                    store.save(
                        run.run_id, run.resolved, outcome.result,
                        experiment=experiment.name, label=run.label, seed_index=run.seed_index,
                        metric=outcome.metric, started_at=started.get(run.run_id, outcome.started_at),
                        finished_at=outcome.finished_at, weights=experiment.weights,
                    )
                    finished.add(run.run_id)
                    report.counts[outcome.result.status] = report.counts.get(outcome.result.status, 0) + 1
                    display.finished(outcome, share=len(job.run_ids) if job.sweep else 1)
        return report
    finally:
        beat.stop()
        try:
            store.release(owner)
        finally:
            store.close()


class _Heartbeat(threading.Thread):
    """Renews a runner's claims every ``LEASE / 6`` seconds from its own connection, so that claims stay
    live during long runs and lapse within ``LEASE`` seconds of the runner's death."""

    def __init__(self, path: Path, owner: str):
        super().__init__(daemon=True, name="trainlab-heartbeat")
        self.path, self.owner, self.stopping = path, owner, threading.Event()

    def run(self) -> None:
        with ResultStore(self.path) as store:
            while not self.stopping.wait(LEASE / 6):
                store.heartbeat(self.owner)

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join()


def preflight(experiment: Experiment, out: Path, data_dir: str | None) -> None:
    """Before any run starts: the devices exist, the data sets are present and intact, ``out`` is writable
    and holds no other experiment's store (whose recorded experiment file would be replaced)."""
    for device in sorted({r.spec.device for r in experiment.runs}):
        check_device(device, "experiment.device")
    check_out_dir(out)
    if (out / STORE_NAME).is_file():
        with ResultStore(out / STORE_NAME) as store:
            other = store.meta().get("experiment")
        if other and other != experiment.name:
            raise ConfigError(
                "--out", str(out), f"the folder of experiment {experiment.name!r} or a new one (it holds experiment {other!r})"
            )
    check_data(((r.spec.task, r.spec.task_options) for r in experiment.runs), data_dir)


def experiment_status(experiment: Experiment | str | Path, out_dir: str | Path | None = None) -> Plan:
    """The plan of an experiment against its store, without running anything."""
    if not isinstance(experiment, Experiment):
        experiment = load_experiment(experiment)
    out = Path(out_dir) if out_dir is not None else default_out_dir(experiment)
    path = out / STORE_NAME
    if not path.is_file():
        return Plan(experiment, {r.run_id: None for r in experiment.runs}, list(experiment.runs))
    with ResultStore(path) as store:
        return plan_experiment(experiment, store)

