"""Where runs execute: in this process, in a local process pool, or on a Ray cluster.

Every executor takes :class:`Job` objects and yields ``(job, outcomes)`` as jobs finish, in any order.
Workers never touch the result store: they return :class:`Outcome` objects to the one process that
writes. A run's numbers depend only on its :class:`~trainlab.experiments.spec.RunSpec` (explicit
generators derived from its seed), so every executor gives the same results; pool and Ray workers run
with one torch thread each.

Progress events (``("start", run_id, time)`` and ``("epoch", run_id, epoch)``) reach the ``events``
callback in the calling process.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import queue
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.core.config import ConfigError, check_number
from trainlab.core.environment import environment
from trainlab.experiments.spec import RunSpec, execute
from trainlab.experiments.store import utc_now
from trainlab.trainers.result import RunResult

Event = tuple[Any, ...]
Events = Callable[[Event], None]
EXECUTORS = ("inline", "process", "ray")


@dataclass(frozen=True)
class Job:
    """One unit of work: a single run, or several compatible runs trained together by the sweep engine."""

    run_ids: tuple[str, ...]
    specs: tuple[RunSpec, ...]
    data_dir: str | None = None
    sweep: bool = False


@dataclass
class Outcome:
    """What a worker sends back for one run."""

    run_id: str
    result: RunResult
    metric: str | None
    started_at: str
    finished_at: str


class _Reporter(Callback):
    """Reads the task's headline metric at fit start and reports finished epochs."""

    def __init__(self, run_id: str, emit: Callable[[Event], None] | None):
        self.run_id, self.emit = run_id, emit
        self.metric: str | None = None

    def on_fit_start(self, state: TrainState) -> None:
        self.metric = state.task.metric

    def on_epoch_end(self, state: TrainState) -> None:
        if self.emit is not None:
            self.emit(("epoch", self.run_id, state.epoch))


def _failed(spec: RunSpec, run_id: str, err: BaseException) -> RunResult:
    device = "cpu" if spec.device.startswith("cuda") and not torch.cuda.is_available() else spec.device
    return RunResult.failed({"run_id": run_id, **spec.to_dict()}, environment(device), err)


def run_job(job: Job, emit: Callable[[Event], None] | None = None) -> list[Outcome]:
    """Run one job and return one outcome per run; never raises for a bad run (it becomes ``failed``)."""
    if job.sweep:
        return _run_sweep(job, emit)
    outcomes = []
    for run_id, spec in zip(job.run_ids, job.specs):
        started = utc_now()
        if emit is not None:
            emit(("start", run_id, started))
        reporter = _Reporter(run_id, emit)
        try:
            result = execute(spec, data_dir=job.data_dir, callbacks=[reporter])
        except Exception as err:  # noqa: BLE001 - a failed run is a result, not a crash
            result = _failed(spec, run_id, err)
        outcomes.append(Outcome(run_id, result, reporter.metric, started, utc_now()))
    return outcomes


def _run_sweep(job: Job, emit: Callable[[Event], None] | None) -> list[Outcome]:
    """Train the job's runs together with :func:`trainlab.experiments.sweep.run_sweep`; if the engine refuses them
    (for example two loss formulas), run them one by one."""
    from trainlab.data import load_task
    from trainlab.experiments.sweep import run_sweep

    started = utc_now()
    if emit is not None:
        for run_id in job.run_ids:
            emit(("start", run_id, started))
    first = job.specs[0]
    try:
        metric = load_task(first.task, data_dir=job.data_dir, **first.task_options).metric
        results = run_sweep(list(job.specs), data_dir=job.data_dir)
    except ConfigError:
        return run_job(dataclasses.replace(job, sweep=False), emit)
    except Exception as err:  # noqa: BLE001 - a failed sweep fails its runs, not the experiment
        metric, results = None, [_failed(s, r, err) for r, s in zip(job.run_ids, job.specs)]
    finished = utc_now()
    return [Outcome(r, res, metric, started, finished) for r, res in zip(job.run_ids, results)]


_CHANNEL: Any = None
"""In a pool worker: the queue that carries progress events to the parent."""


def _worker_init(channel: Any) -> None:
    global _CHANNEL
    _CHANNEL = channel
    torch.set_num_threads(1)


def _pool_job(job: Job) -> list[Outcome]:
    return run_job(job, _CHANNEL.put)


class Executor(ABC):
    """Runs jobs and yields ``(job, outcomes)`` as each one finishes.

    ``parallelism`` is how many jobs it runs at once; the runner splits a sweep into that many jobs.
    """

    parallelism: int = 1

    @abstractmethod
    def run(self, jobs: Sequence[Job], events: Events) -> Iterator[tuple[Job, list[Outcome]]]: ...


class InlineExecutor(Executor):
    """One run after another in this process (the default; easiest to debug)."""

    def run(self, jobs: Sequence[Job], events: Events) -> Iterator[tuple[Job, list[Outcome]]]:
        for job in jobs:
            yield job, run_job(job, events)


class ProcessExecutor(Executor):
    """A local pool of ``workers`` processes (spawn start method, one torch thread each)."""

    def __init__(self, workers: int = 2):
        self.parallelism = check_number("workers", workers, low=1, integer=True)

    def run(self, jobs: Sequence[Job], events: Events) -> Iterator[tuple[Job, list[Outcome]]]:
        context = multiprocessing.get_context("spawn")
        channel = context.Queue()
        pool = cf.ProcessPoolExecutor(self.parallelism, mp_context=context, initializer=_worker_init, initargs=(channel,))
        try:
            pending = {pool.submit(_pool_job, job): job for job in jobs}
            while pending:
                done, _ = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                _drain(channel, events)
                for future in done:
                    job = pending.pop(future)
                    yield job, _collect(job, future.result)
            _drain(channel, events)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            channel.close()


class RayExecutor(Executor):
    """Ray tasks of one CPU each, on the cluster at ``address`` (``None``: connect to or start a local one);
    ``workers`` is how many tasks a sweep is split into."""

    def __init__(self, address: str | None = None, workers: int = 1, **init_options: Any):
        self.address, self.init_options = address, init_options
        self.parallelism = check_number("workers", workers, low=1, integer=True)

    def run(self, jobs: Sequence[Job], events: Events) -> Iterator[tuple[Job, list[Outcome]]]:
        try:
            import ray
        except ImportError:
            raise ConfigError("executor", "ray", "inline or process (install the extra: pip install 'trainlab[ray]')") from None
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **self.init_options)
        from ray.util.queue import Empty, Queue

        channel = Queue()
        try:
            remote = ray.remote(num_cpus=1)(_ray_job)
            pending = {remote.remote(job, channel): job for job in jobs}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                _drain(channel, events, Empty)
                if ready:
                    job = pending.pop(ready[0])
                    yield job, _collect(job, lambda: ray.get(ready[0]))
            _drain(channel, events, Empty)
        finally:
            channel.shutdown()
            if started_here:
                ray.shutdown()


def _ray_job(job: Job, channel: Any) -> list[Outcome]:
    torch.set_num_threads(1)
    return run_job(job, channel.put)


def _collect(job: Job, get: Callable[[], list[Outcome]]) -> list[Outcome]:
    """The job's outcomes; a worker that died or raised fails the job's runs instead of the experiment."""
    try:
        return get()
    except Exception as err:  # noqa: BLE001 - e.g. BrokenProcessPool, RayTaskError
        now = utc_now()
        return [Outcome(r, _failed(s, r, err), None, now, now) for r, s in zip(job.run_ids, job.specs)]


def _drain(channel: Any, events: Events, empty: type[Exception] = queue.Empty) -> None:
    """Pass every event waiting in ``channel`` (a multiprocessing or Ray queue, whose ``get_nowait``
    raises ``empty`` when drained) to ``events``."""
    while True:
        try:
            events(channel.get_nowait())
        except empty:
            return


def make_executor(name: str = "inline", *, workers: int = 1, address: str | None = None) -> Executor:
    """``inline``, ``process`` (``workers`` processes) or ``ray`` (cluster ``address``)."""
    if name == "inline":
        return InlineExecutor()
    if name == "process":
        return ProcessExecutor(workers)
    if name == "ray":
        return RayExecutor(address, workers)
    raise ConfigError("executor", name, "one of " + ", ".join(EXECUTORS))
