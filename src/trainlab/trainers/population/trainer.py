"""Population trainers: a searcher of :mod:`trainlab.metaheuristics` on a network through the engine.

Registered names: ``de``, ``shade``, ``lshade``, ``shade-ils``, ``cma-es``, ``sep-cma-es`` (pycma),
``snes`` and the memetic hybrids ``shade-gd`` and ``shade-ils-gd`` (Morales Muñoz 2025),
``cma-es-gd``, ``sep-cma-es-gd`` and ``snes-gd``, which every ``gd_every`` epochs train the best individual for one
epoch of ``gd_optimizer`` (:func:`trainlab.trainers.gradient.train_epoch`, a fresh optimizer each time)
and offer the result back to the search through the searcher's ``inject`` (it replaces the worst member,
or SHADE-ILS's current point, when better; CMA-ES receives it as a forced sample of the next
generation; SNES moves its mean there when it is the best point so far).

Fitness = the training loss (the task's loss or the one given to ``fit``) of each genome, on the whole
training split or, with ``fitness_batch``, on one minibatch shared by a generation. One "epoch" is
``evals_per_epoch`` fitness evaluations (Morales Muñoz 2025: 210, so ``Budget(epochs=20)`` = 4,200 evaluations;
in a hybrid's gradient epoch, one of them evaluates the gradient epoch's result);
at its end the best individual is loaded into the model, its batch-norm statistics are recalibrated
over the training split (monitoring, not counted in the spending), and the history row is recorded.

Spending: ``evals`` counts individual fitness evaluations (a gradient evaluation of L-BFGS-B counts one);
``forward_samples`` counts the samples of every fitness evaluation, ``backward_samples`` those
back-propagated by L-BFGS-B and by the gradient epochs; ``steps`` counts generations, local searches
and optimizer steps.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.core.budget import LIMITS, Budget
from trainlab.core.config import ConfigError, check_choice, check_number, from_mapping
from trainlab.core.seeding import torch_generator
from trainlab.data.task import Task
from trainlab.losses import Loss
from trainlab.metaheuristics.base import SEARCHERS, Problem, Searcher, make_searcher
from trainlab.models.batchnorm import check_bn_mode, recalibrate, split
from trainlab.models.functional import ParamLayout
from trainlab.trainers.base import SELECTIONS, TRAINERS, Monitor, Trainer, resolve_loss
from trainlab.trainers.callbacks import Callback
from trainlab.trainers.gradient import train_epoch
from trainlab.trainers.optimizers import make_optimizer
from trainlab.trainers.population.engine import FITNESS_DTYPES, MODES, PopulationEvaluator, initial_population
from trainlab.trainers.result import RunResult

ALGORITHMS: dict[str, tuple[str, bool]] = {}
"""Trainer name → (searcher, memetic): one trainer per registered searcher (:data:`SEARCHERS`, now and later)
and the memetic hybrids of :data:`MEMETIC`."""
MEMETIC = {
    "shade-gd": "shade", "shade-ils-gd": "shade-ils", "cma-es-gd": "cma-es", "sep-cma-es-gd": "sep-cma-es",
    "snes-gd": "snes", "evotorch-snes-gd": "evotorch-snes", "evotorch-pgpe-gd": "evotorch-pgpe",
    "evotorch-xnes-gd": "evotorch-xnes",
}
"""The memetic hybrids (SHADE-GD and SHADE-ILS-GD of Morales Muñoz 2025, and the same for CMA-ES,
sep-CMA-ES, SNES and EvoTorch's SNES, PGPE and xNES): trainer name → searcher."""
SEARCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
"""The searcher's dtype choices (option ``dtype``)."""
SEARCHER_DEFAULTS: dict[str, dict[str, Any]] = {"shade-ils": {"de_evals": 200, "ls_evals": 10}}
"""The SHADE-ILS iteration of Morales Muñoz (2025): 20 generations of 10 (200 evaluations) and 10 of local search."""


@dataclass(frozen=True)
class PopulationConfig:
    """Options of a population trainer; ``options`` go to the searcher (F, CR, memory_size, de_evals...).

    ``lower``/``upper``: box of every gene (Morales Muñoz 2025: ±50). ``init``: initial population scheme
    (:func:`trainlab.trainers.population.engine.initial_population`; row 0 is the model's own initialisation, and the
    population derives from the run seed only, so every algorithm starts from the same one).
    ``fitness_batch``: samples of the shared minibatch per generation (``None``: whole training split).
    ``batch_size``/``chunk_size``/``mode``/``bn``/``compile``/``fitness_dtype``: engine options
    (:class:`PopulationEvaluator`; ``compile`` and ``fitness_dtype = "bfloat16"`` are opt-in speed options).
    ``dtype``: the searcher's population and arithmetic, ``float32`` (default) or ``float64``; the network
    is evaluated in its own dtype either way.
    ``gd_*``: the memetic gradient epoch (hybrids only). ``select``: which epochs may be selected,
    ``trained`` or ``all`` (the initial population's best included).
    """

    population_size: int = 10
    evals_per_epoch: int = 210
    lower: float = -50.0
    upper: float = 50.0
    init: str = "glorot"
    fitness_batch: int | None = None
    batch_size: int | None = None
    chunk_size: int | None = None
    mode: str = "auto"
    bn: str = "batch"
    compile: bool = False
    fitness_dtype: str = "float32"
    dtype: str = "float32"
    options: Mapping[str, Any] = field(default_factory=dict)
    gd_optimizer: str = "adam"
    gd_options: Mapping[str, Any] = field(default_factory=dict)
    gd_batch_size: int | None = 64
    gd_every: int = 1
    select: str = "trained"

    def __post_init__(self) -> None:
        check_number("population_size", self.population_size, low=4, integer=True)
        check_number("evals_per_epoch", self.evals_per_epoch, low=1, integer=True)
        check_number("lower", self.lower)
        check_number("upper", self.upper)
        if not self.lower < self.upper:
            raise ConfigError("upper", self.upper, f"a number greater than lower={self.lower}")
        check_choice("init", self.init, ("glorot", "model"))
        for key in ("fitness_batch", "batch_size", "chunk_size", "gd_batch_size"):
            if getattr(self, key) is not None:
                check_number(key, getattr(self, key), low=1, integer=True)
        check_choice("mode", self.mode, MODES)
        check_bn_mode(self.bn)
        check_choice("compile", self.compile, (True, False))
        check_choice("fitness_dtype", self.fitness_dtype, FITNESS_DTYPES)
        check_choice("dtype", self.dtype, tuple(SEARCH_DTYPES))
        if self.compile and self.mode not in ("auto", "stacked"):
            raise ConfigError("compile", self.compile, f"false with mode={self.mode!r} (compile applies to the stacked path)")
        check_number("gd_every", self.gd_every, low=1, integer=True)
        check_choice("select", self.select, SELECTIONS)
        object.__setattr__(self, "options", dict(self.options))
        object.__setattr__(self, "gd_options", dict(self.gd_options))


def max_evals_of(budget: Budget, config: PopulationConfig, n_train: int) -> int | None:
    """The total fitness evaluations the budget allows, when known in advance."""
    samples = config.fitness_batch or n_train
    limits = [
        budget.evals,
        budget.epochs * config.evals_per_epoch if budget.epochs is not None else None,
        budget.sample_evals // samples if budget.sample_evals is not None else None,
    ]
    known = [v for v in limits if v is not None]
    return min(known) if known else None


class PopulationTrainer(Trainer):
    """One searcher (and optionally a gradient epoch) behind the trainer interface."""

    budget_units = LIMITS

    def __init__(self, name: str, config: PopulationConfig):
        super().__init__(config)
        self.name = name
        self.searcher_name, self.memetic = ALGORITHMS[name]

    def fit(
        self,
        model: nn.Module,
        task: Task,
        budget: Budget,
        seed: int,
        callbacks: Sequence[Callback] = (),
        loss: Loss | None = None,
    ) -> RunResult:
        cfg = self.config
        samples = cfg.fitness_batch or len(task.train.x)
        if budget.sample_evals is not None and budget.sample_evals < samples:
            raise ConfigError(
                "budget.sample_evals", budget.sample_evals,
                f"at least {samples} for the {self.name!r} trainer (one fitness evaluation on {samples} training samples)",
            )
        loss = resolve_loss(task, loss)
        monitor = Monitor(self, model, task, loss, budget, seed, callbacks)
        layout = ParamLayout.of(model)
        x_train, y_train = task.train.x, task.train.y
        recalibrate(model, split(x_train, cfg.batch_size))
        evaluator = PopulationEvaluator(
            model, loss, mode=cfg.mode, bn=cfg.bn, chunk_size=cfg.chunk_size, batch_size=cfg.batch_size,
            compile=cfg.compile, fitness_dtype=cfg.fitness_dtype,
        )
        net_dtype = next(model.parameters()).dtype
        batch_gen = torch_generator(seed, "fitness-batch", device=task.device)
        data = [x_train, y_train]
        pending = {"forward": 0, "backward": 0, "evals": 0}

        def fitness(pop: Tensor) -> Tensor:
            return evaluator(pop.to(net_dtype), data[0], data[1], monitor.state.step)

        def value_and_grad(genome: Tensor) -> tuple[Tensor, Tensor]:
            return evaluator.value_and_grad(genome.to(net_dtype), data[0], data[1], monitor.state.step)

        def spent(n: int, _f: Tensor, grad: bool) -> None:
            pending["forward"] += n * len(data[1])
            pending["backward"] += n * len(data[1]) if grad else 0
            pending["evals"] += n

        def sample(n: int, gen: torch.Generator) -> Tensor:
            return initial_population(model, n + 1, gen, scheme=cfg.init, layout=layout)[1:]

        problem = Problem(fitness, layout.dim, cfg.lower, cfg.upper, value_and_grad, sample, spent)
        population = initial_population(model, cfg.population_size, torch_generator(seed, "population"),
                                        scheme=cfg.init, layout=layout).clamp(cfg.lower, cfg.upper)
        population = population.to(SEARCH_DTYPES[cfg.dtype])
        options = {**SEARCHER_DEFAULTS.get(self.searcher_name, {}), **cfg.options}
        if self._needs_total(options):
            options["max_evals"] = max_evals_of(budget, cfg, len(y_train))
        searcher = make_searcher(self.searcher_name, problem, population, torch_generator(seed, "searcher"),
                                 **options)
        gd_gen = torch_generator(seed, "gd-batches", device=task.device)

        def draw_batch() -> None:
            if cfg.fitness_batch is not None and cfg.fitness_batch < len(y_train):
                idx = torch.randperm(len(y_train), generator=batch_gen, device=task.device)[: cfg.fitness_batch]
                data[0], data[1] = x_train[idx], y_train[idx]

        def tick() -> bool:
            stop = monitor.tick(pending["forward"], pending["backward"], steps=1, evals=pending["evals"],
                                loss=torch.tensor(searcher.best_f))
            pending.update(forward=0, backward=0, evals=0)
            return stop

        monitor.begin()
        epoch = 0
        stop = False
        while not stop:
            gd_now = self.memetic and (epoch + 1) % cfg.gd_every == 0
            target = (epoch + 1) * cfg.evals_per_epoch - int(gd_now)  # the gradient result's evaluation
            while problem.evals < target and not stop:
                draw_batch()
                room = self._room(budget, monitor, target - problem.evals, len(data[1]))
                if room <= 0:
                    stop = True
                    break
                searcher.step(room)
                stop = tick()
            epoch += 1
            if gd_now and not stop:
                data[0], data[1] = x_train, y_train
                stop = self._gradient_epoch(model, task, loss, layout, searcher, problem, monitor, gd_gen)
                stop = tick() or stop
            layout.load(model, searcher.best_x.to(next(model.parameters()).dtype))
            recalibrate(model, split(x_train, cfg.batch_size))
            stop = monitor.end_epoch() or stop
        result = monitor.finish({"trainer": self.describe()})
        result.records.setdefault("search", []).append(
            {"evals": problem.evals, "best_fitness": searcher.best_f, "generations": searcher.generation,
             "restarts": getattr(searcher, "restarts", 0), "engine_mode": evaluator.mode_used}
        )
        return result

    def _needs_total(self, options: Mapping[str, Any]) -> bool:
        """Whether the searcher plans on the total budget (``uses_max_evals``) and was not given it."""
        return SEARCHERS.get(self.searcher_name).uses_max_evals and "max_evals" not in options

    def check_budget(self, budget: Budget) -> Budget:
        """As :meth:`Trainer.check_budget`; a searcher that plans on the total budget (``uses_max_evals``,
        e.g. L-SHADE's population size reduction) also needs a limit that fixes it in advance."""
        super().check_budget(budget)
        options = {**SEARCHER_DEFAULTS.get(self.searcher_name, {}), **self.config.options}
        if self._needs_total(options) and max_evals_of(budget, self.config, 1) is None:
            allowed = f"evals, epochs or sample_evals (the {self.name!r} trainer plans on the total budget)"
            raise ConfigError("budget", budget.to_dict(), allowed)
        return budget

    @staticmethod
    def _room(budget: Budget, monitor: Monitor, left: int, samples: int) -> int:
        """Evaluations the next step may spend: the rest of the epoch, cut so that an ``evals`` or
        ``sample_evals`` budget is never exceeded by forward-only evaluations."""
        spent = monitor.spending
        if budget.evals is not None:
            left = min(left, budget.evals - spent.evals)
        if budget.sample_evals is not None:
            left = min(left, (budget.sample_evals - spent.sample_evals) // samples)
        return left

    def _gradient_epoch(
        self,
        model: nn.Module,
        task: Task,
        loss: Loss,
        layout: ParamLayout,
        searcher: Searcher,
        problem: Problem,
        monitor: Monitor,
        generator: torch.Generator,
    ) -> bool:
        """One epoch of ``gd_optimizer`` from the search's best point; the result is offered back."""
        cfg = self.config
        layout.load(model, searcher.best_x.to(next(model.parameters()).dtype))
        optimizer = make_optimizer(cfg.gd_optimizer, [p for p in model.parameters() if p.requires_grad],
                                   **cfg.gd_options)
        stats = train_epoch(model, task, loss, optimizer, batch_size=cfg.gd_batch_size, generator=generator,
                            monitor=monitor)
        genome = layout.flatten(model).clamp(cfg.lower, cfg.upper).to(searcher.x.dtype)
        f = float(problem.evaluate(genome[None])[0])
        searcher.inject(genome, f)
        return stats.stopped


def population_config(name: str, options: Mapping[str, Any]) -> PopulationConfig:
    return from_mapping(PopulationConfig, dict(options), where=f"trainer.{name}")


def _register(name: str) -> None:
    def build(**options: Any) -> PopulationTrainer:
        return PopulationTrainer(name, population_config(name, options))

    build.__doc__ = f"The ``{name}`` population trainer; options: see :class:`PopulationConfig`."
    TRAINERS.register(name)(build)


def _register_searcher(name: str, searcher: type[Searcher]) -> None:
    """Every registered ask/tell searcher is a population trainer of the same name (unless the name is taken)."""
    if name not in TRAINERS:
        ALGORITHMS[name] = (name, False)
        _register(name)


SEARCHERS.subscribe(_register_searcher)
for _name, _searcher in MEMETIC.items():
    ALGORITHMS[_name] = (_searcher, True)
    _register(_name)

__all__ = ["ALGORITHMS", "MEMETIC", "PopulationConfig", "PopulationTrainer", "max_evals_of", "population_config"]
