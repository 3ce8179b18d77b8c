"""Where runs execute: in this process, in a local process pool, or on a Ray cluster.

Every executor takes :class:`Job` objects and yields ``(job, outcomes)`` as jobs finish, in any order.
Workers never touch the result store: they return :class:`Outcome` objects to the one process that
writes. A run's numbers depend only on its :class:`~trainlab.experiments.spec.RunSpec` (explicit
generators derived from its seed), so every executor gives the same results; pool and Ray workers run
with one torch thread each and load the ``trainlab.plugins`` entry points when they start.

Progress events (``("start", run_id, time)`` and ``("epoch", run_id, epoch)``) reach the ``events``
callback in the calling process.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import signal
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from trainlab.core.config import ConfigError, check_number
from trainlab.core.environment import environment, set_threads
from trainlab.core.plugins import load_plugins
from trainlab.data import load_task
from trainlab.experiments.spec import RunSpec, execute
from trainlab.experiments.store import utc_now
from trainlab.experiments.sweep import run_sweep
from trainlab.trainers.population.engine import CACHE_ENV as ENGINE_CACHE_ENV
from trainlab.trainers.callbacks import Callback, TrainState
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
    started = utc_now()
    if emit is not None:
        for run_id in job.run_ids:
            emit(("start", run_id, started))
    first = job.specs[0]
    try:
        metric = load_task(first.task, data_dir=job.data_dir, **first.task_options).metric
        report = None if emit is None else (lambda fraction: emit(("sweep", job.run_ids, fraction)))
        results = run_sweep(list(job.specs), data_dir=job.data_dir, on_progress=report)
    except ConfigError:
        return run_job(dataclasses.replace(job, sweep=False), emit)
    except Exception as err:  # noqa: BLE001 - a failed sweep fails its runs, not the experiment
        metric, results = None, [_failed(s, r, err) for r, s in zip(job.run_ids, job.specs)]
    finished = utc_now()
    return [Outcome(r, res, metric, started, finished) for r, res in zip(job.run_ids, results)]


class Executor(ABC):
    """Runs jobs and yields ``(job, outcomes)`` as each one finishes.

    ``jobs`` is consumed lazily, one job when a worker is free, so that the runner can claim each job in
    the store just before it starts. ``parallelism`` is how many jobs it runs at once; the runner splits a
    sweep into that many jobs.
    """

    parallelism: int = 1

    @abstractmethod
    def run(self, jobs: Iterable[Job], events: Events) -> Iterator[tuple[Job, list[Outcome]]]: ...


class InlineExecutor(Executor):
    """One run after another in this process (the default; easiest to debug)."""

    def run(self, jobs: Iterable[Job], events: Events) -> Iterator[tuple[Job, list[Outcome]]]:
        for job in jobs:
            yield job, run_job(job, events)


def _watch_parent(parent: int) -> None:
    """Exit this worker within a second of its parent's death (the parent's pid is then no longer ours)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker_main(index: int, inbox: Any, outbox: Any, parent: int) -> None:
    """A pool worker: Ctrl-C is the parent's to handle; runs jobs from ``inbox`` until ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_threads(1)
    load_plugins()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()

    def emit(event: Event) -> None:
        outbox.put(("event", index, event))

    while (job := inbox.get()) is not None:
        outbox.put(("done", index, run_job(job, emit)))


@dataclass
class _Worker:
    process: Any
    inbox: Any
    job: Job | None = None


class ProcessExecutor(Executor):
    """A local pool of ``workers`` processes (spawn start method, one torch thread each).

    The workers share the population engine's ``mode="auto"`` decisions through a file in a temporary
    folder (``TRAINLAB_ENGINE_CACHE``, unless already set), so every cell of one model structure and
    population size uses the same engine.

    Each worker holds one job at a time, so a worker that dies (killed, out of memory) fails only the runs
    of its job and is replaced. Workers ignore Ctrl-C (the parent stops them) and exit when the parent dies.
    """

    def __init__(self, workers: int = 2):
        self.parallelism = check_number("workers", workers, low=1, integer=True)

    def run(self, jobs: Iterable[Job], events: Events) -> Iterator[tuple[Job, list[Outcome]]]:
        context = multiprocessing.get_context("spawn")
        shared = None if ENGINE_CACHE_ENV in os.environ else tempfile.TemporaryDirectory(prefix="trainlab-engine-")
        if shared is not None:
            os.environ[ENGINE_CACHE_ENV] = os.path.join(shared.name, "decisions.json")
        outbox = context.Queue()
        todo = iter(jobs)
        workers: list[_Worker] = []

        def start(index: int) -> _Worker:
            inbox = context.Queue()
            process = context.Process(
                target=_worker_main, args=(index, inbox, outbox, os.getpid()), daemon=True,
                name=f"trainlab-worker-{index}",
            )
            process.start()
            return _Worker(process, inbox)

        def feed(worker: _Worker) -> None:
            worker.job = next(todo, None)
            if worker.job is not None:
                worker.inbox.put(worker.job)

        try:
            for index in range(self.parallelism):
                job = next(todo, None)
                if job is None:
                    break
                workers.append(start(index))
                workers[-1].job = job
                workers[-1].inbox.put(job)
            while any(w.job is not None for w in workers):
                try:
                    kind, index, payload = outbox.get(timeout=0.2)
                except queue.Empty:
                    for index, worker in enumerate(workers):
                        if not worker.process.is_alive():
                            job, code = worker.job, worker.process.exitcode
                            workers[index] = start(index)
                            feed(workers[index])
                            if job is not None:
                                err = RuntimeError(f"worker process died (exit code {code}) while running this job")
                                yield job, _failed_outcomes(job, err)
                    continue
                if kind == "event":
                    events(payload)
                    continue
                worker = workers[index]
                job, worker.job = worker.job, None
                feed(worker)
                if job is not None:
                    yield job, payload
        finally:
            for worker in workers:
                if worker.job is None and worker.process.is_alive():
                    worker.inbox.put(None)
                else:
                    worker.process.terminate()
            for worker in workers:
                worker.process.join(timeout=5)
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()
                worker.inbox.close()
            outbox.close()
            if shared is not None:
                os.environ.pop(ENGINE_CACHE_ENV, None)
                shared.cleanup()


class RayExecutor(Executor):
    """Ray tasks of one CPU each, on the cluster at ``address`` (``None``: connect to or start a local one);
    ``workers`` is how many tasks a sweep is split into. Every job is submitted (and so claimed) at once."""

    def __init__(self, address: str | None = None, workers: int = 1, **init_options: Any):
        self.address, self.init_options = address, init_options
        self.parallelism = check_number("workers", workers, low=1, integer=True)

    def run(self, jobs: Iterable[Job], events: Events) -> Iterator[tuple[Job, list[Outcome]]]:
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
    set_threads(1)
    load_plugins()
    return run_job(job, channel.put)


def _collect(job: Job, get: Callable[[], list[Outcome]]) -> list[Outcome]:
    """The job's outcomes; a worker that died or raised fails the job's runs instead of the experiment."""
    try:
        return get()
    except Exception as err:  # noqa: BLE001 - e.g. RayTaskError
        return _failed_outcomes(job, err)


def _failed_outcomes(job: Job, err: BaseException) -> list[Outcome]:
    """Every run of ``job`` failed with ``err``."""
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
