"""Population evaluation throughput: the engine against the thesis-style loop, as ratios in one run.

Thesis-style loop (thesis 000's implementation): for each individual, a NumPy vector is copied into the
model (``vector_to_parameters``) and the model runs forward in train mode over mini-batches of 64.
Engine: :class:`trainlab.trainers.population.engine.PopulationEvaluator` (``mode="auto"``, batch-norm in batch mode).
Throughput = individuals × samples / second; ratio = engine / loop. To show where the ratio is
bounded by arithmetic, each case also reports the forward FLOPs both paths execute (counted by
``torch.utils.flop_counter``) as GFLOP/s, against the device's dense matmul rate (a 1024³ float32
``torch.mm`` on the same threads): "ceiling" = matmul rate / loop rate is the most any implementation
could gain over the loop while doing the same float32 FLOPs. Usage::

    TRAINLAB_DATA=shared/datasets .venv/bin/python bench/bench_population.py [--repeats 3] [--threads 1]

``--peers``: instead, the engine against three peers on the same P losses, each timed by CPU time (process
time, robust to other load) and wall time per call, best of the repeats after a warm-up, interleaved (a
repeat is at least 50 ms of back-to-back calls): EvoTorch's ``SupervisedNE`` (one common minibatch holding the samples), a ``torch.func`` baseline (``vmap`` of
``functional_call`` over ``stack_module_state`` parameters, batch norm made stateless by
``replace_all_batch_norm_modules_``) and a ``vector_to_parameters`` loop (one model, one full-batch forward
per individual). Ratio = the fastest peer's CPU time / the engine's.

``--profile CASE``: one SHADE run of the population trainer (``--evals`` evaluations) under ``cProfile``
with a process-time clock: the searcher's share (SHADE's ``ask`` + ``tell``), the engine's, and the run's
user and system CPU time (``resource.getrusage``).

``--searcher D``: CPU time (user and system) per SHADE generation on a (``--sizes``[0], D) float32 population
with a free fitness (random numbers), i.e. the searcher alone; D = 1,403,289 is mlp11's genome on wine.

``--options CASE``: the opt-in engine options against the default: CPU time per population evaluation
with ``compile=True`` and with ``fitness_dtype="bfloat16"``, and the final metrics of SHADE runs at
``--evals`` evaluations over ``--seeds`` seeds with each.
"""
from __future__ import annotations

import argparse
import copy
import cProfile
import math
import pstats
import resource
import time
from collections.abc import Callable

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.nn.utils import vector_to_parameters
from torch.utils.data import TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from trainlab.data import load_task
from trainlab.losses import get_loss
from trainlab.models import build_model
from trainlab.trainers.population.engine import PopulationEvaluator, initial_population
from trainlab.core.budget import Budget
from trainlab.core.seeding import torch_generator
from trainlab.trainers import make_trainer
from timing import best_of

CASES = {"mlp2/bcw": None, "mlp11/wqc": 1000, "lenet5/mnist": 256, "resnet15/mnist": 8}
"""Case → training samples used (None: the whole training split; image tasks are cut to keep the
thesis-style loop affordable on a CPU)."""


def thesis_loop(model: torch.nn.Module, population: np.ndarray, x: torch.Tensor, y: torch.Tensor, loss) -> list[float]:
    model.train()
    out = []
    with torch.no_grad():
        for genome in population:
            vector_to_parameters(torch.from_numpy(genome), model.parameters())
            total = 0.0
            for i in range(0, len(x), 64):
                total += float(loss(model(x[i : i + 64]), y[i : i + 64])) * len(x[i : i + 64])
            out.append(total / len(x))
    return out


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward pass of ``model`` over ``x`` (a multiply-add counts 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


def matmul_rate(device: str, repeats: int) -> float:
    """FLOP/s of a 1024 × 1024 × 1024 float32 matrix product on ``device``."""
    a = torch.randn(1024, 1024, device=device)
    b = torch.randn(1024, 1024, device=device)

    def mm() -> None:
        a.mm(b)
        if device == "cuda":
            torch.cuda.synchronize()

    return 2 * 1024**3 / best_of(mm, repeats, warmup=1)


def cpu_and_wall(fns: dict[str, Callable[[], object]], repeats: int, floor: float = 0.05) -> dict[str, tuple[float, float]]:
    """Best (process time, wall time) per call over ``repeats`` interleaved samples of each function, after
    one warm-up call; a sample is as many back-to-back calls as take ``floor`` seconds of CPU (judged on
    the warm-up), so that millisecond calls are not timed one at a time."""
    calls = {}
    for k, fn in fns.items():
        c0 = time.process_time()
        fn()
        calls[k] = max(1, math.ceil(floor / max(time.process_time() - c0, 1e-6)))
    best = {k: (math.inf, math.inf) for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(calls[k]):
                fn()
            c, w = (time.process_time() - c0) / calls[k], (time.perf_counter() - w0) / calls[k]
            best[k] = (min(best[k][0], c), min(best[k][1], w))
    return best


def peers(model: torch.nn.Module, pop: torch.Tensor, x: torch.Tensor, y: torch.Tensor, loss_name: str) -> dict[str, Callable[[], object]]:
    """The engine and its three peers, each computing the P losses on (x, y)."""
    from evotorch.neuroevolution import SupervisedNE
    from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state, vmap

    loss = get_loss(loss_name)
    plain = {"cross_entropy": torch.nn.functional.cross_entropy, "mse": torch.nn.functional.mse_loss}[loss_name]
    engine = PopulationEvaluator(model, loss)
    problem = SupervisedNE(TensorDataset(x, y), copy.deepcopy(model), plain, minibatch_size=len(x), num_minibatches=1,
                           common_minibatch=True, device=str(x.device))
    batch = problem.generate_batch(len(pop))
    batch.set_values(pop.clone())
    members = []
    for genome in pop:
        m = copy.deepcopy(model)
        vector_to_parameters(genome, m.parameters())
        members.append(replace_all_batch_norm_modules_(m))
    params, buffers = stack_module_state(members)
    base = copy.deepcopy(members[0]).to("meta")

    def one(p: dict, b: dict) -> torch.Tensor:
        return plain(functional_call(base, (p, b), (x,)), y)

    looped = copy.deepcopy(model).train()

    def v2p() -> list[float]:
        out = []
        with torch.no_grad():
            for genome in pop:
                vector_to_parameters(genome, looped.parameters())
                out.append(float(plain(looped(x), y)))
        return out

    def torch_func() -> torch.Tensor:
        with torch.no_grad():
            return vmap(one)(params, buffers)

    return {"engine": lambda: engine(pop, x, y), "evotorch": lambda: problem.evaluate(batch),
            "vmap": torch_func, "v2p loop": v2p, "_engine": lambda: engine}


def run_peers(args: argparse.Namespace, device: str) -> None:
    table = Table(title=f"engine vs peers on {device} ({args.threads} thread(s)); CPU s (wall s) per population evaluation")
    for col in ("model/task", "P", "samples", "engine mode", "engine", "EvoTorch SupervisedNE", "torch.func vmap",
                "v2p loop", "best peer / engine (CPU)"):
        table.add_column(col)
    for case in args.cases:
        model_name, task_name = case.split("/")
        task = load_task(task_name, device=device)
        samples = args.samples or CASES.get(case) or len(task.train)
        x, y = task.train.x[:samples], task.train.y[:samples]
        model = build_model(model_name, task.input_shape, task.n_outputs, generator=torch_generator(0, "init")).to(device)
        for size in args.sizes:
            pop = initial_population(model, size, torch_generator(0, "population"))
            fns = peers(model, pop, x, y, task.loss)
            engine = fns.pop("_engine")()
            times = cpu_and_wall(fns, args.repeats)
            best_peer = min(v[0] for k, v in times.items() if k != "engine")
            cells = [f"{times[k][0]:.4f} ({times[k][1]:.4f})" for k in ("engine", "evotorch", "vmap", "v2p loop")]
            mode = "loop" if engine.mode_used == "loop" else f"{engine.mode_used} (chunk {engine.chunk_used or size})"
            table.add_row(case, str(size), str(len(x)), mode, *cells, f"{best_peer / times['engine'][0]:.2f}×")
            Console().print(f"{case} P={size}: {mode}; " + ", ".join(f"{k} {v[0]:.4f}" for k, v in times.items()))
    Console(width=200).print(table)


def profile_run(args: argparse.Namespace, case: str) -> None:
    model_name, task_name = case.split("/")
    task = load_task(task_name, **profile_option(args))
    model = build_model(model_name, task.input_shape, task.n_outputs, generator=torch_generator(0, "init"))
    trainer = make_trainer("shade", **dict(kv.split("=", 1) for kv in args.set))
    profiler = cProfile.Profile(time.process_time)
    r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    profiler.enable()
    result = trainer.fit(model, task, Budget(evals=args.evals), seed=0)
    profiler.disable()
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - w0
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in stats.values())

    def cumulative(path: str, names: tuple[str, ...]) -> float:
        return sum(ct for (file, _, fn), (_, _, _, ct, _) in stats.items() if file.endswith(path) and fn in names)

    searcher = cumulative("metaheuristics/shade.py", ("ask", "tell"))
    engine = cumulative("metaheuristics/base.py", ("evaluate",))
    probe = cumulative("population/engine.py", ("_pick",))
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    search = result.records["search"][0]
    Console().print(
        f"{case} SHADE, {args.evals} evaluations ({search['generations']} generations, engine {search['engine_mode']}): "
        f"wall {wall:.1f} s, CPU {user + system:.1f} s (user {user:.1f}, system {system:.1f}, "
        f"system share {system / (user + system):.0%}); profiled process time {total:.1f} s: searcher (ask + tell) "
        f"{searcher:.2f} s = {searcher / total:.1%}, fitness evaluations {engine:.2f} s = {engine / total:.1%}, "
        f"auto-mode probe {probe:.2f} s = {probe / total:.1%}")


def profile_option(args: argparse.Namespace) -> dict[str, str]:
    """The task option ``profile`` of --profile/--options (none when ``--profile-task ""``)."""
    return {"profile": args.profile_task} if args.profile_task else {}


def searcher_generation(args: argparse.Namespace, dim: int) -> None:
    from trainlab.metaheuristics import Problem, make_searcher

    g = torch.Generator().manual_seed(0)
    pop = (torch.rand(args.sizes[0], dim, generator=g) * 2 - 1) * 0.05
    problem = Problem(lambda x: torch.rand(len(x), generator=g), dim, -50.0, 50.0)
    searcher = make_searcher("shade", problem, pop, torch.Generator().manual_seed(1))
    for _ in range(3):
        searcher.step(len(pop))
    generations = 20
    r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(generations):
        searcher.step(len(pop))
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - w0
    user, system = (r1.ru_utime - r0.ru_utime) / generations, (r1.ru_stime - r0.ru_stime) / generations
    Console().print(f"SHADE generation, P = {len(pop)}, D = {dim:,}: CPU {1000 * (user + system):.0f} ms "
                    f"(user {1000 * user:.0f}, system {1000 * system:.0f}), wall {1000 * wall / generations:.0f} ms")


def run_options(args: argparse.Namespace, case: str, device: str) -> None:
    model_name, task_name = case.split("/")
    task = load_task(task_name, device=device, **profile_option(args))
    model = build_model(model_name, task.input_shape, task.n_outputs, generator=torch_generator(0, "init")).to(device)
    x, y = task.train.x[: args.samples], task.train.y[: args.samples]
    loss = get_loss(task.loss)
    settings = {"default": {}, "compile": {"compile": True}, "bfloat16": {"fitness_dtype": "bfloat16"}}
    table = Table(title=f"{case}: opt-in engine options (CPU s per population evaluation of P = {args.sizes[0]}; "
                        f"SHADE at {args.evals} evaluations, mean over {args.seeds} seeds)")
    for col in ("setting", "engine mode", "CPU s (wall s)", "speed-up (CPU)", "first call s", "train loss",
                "val metric", "test metric"):
        table.add_column(col)
    pop = initial_population(model, args.sizes[0], torch_generator(0, "population"))
    evaluators = {}
    first = {}
    for name, options in settings.items():
        evaluators[name] = PopulationEvaluator(model, loss, **options)
        t0 = time.perf_counter()
        evaluators[name](pop, x, y)
        first[name] = time.perf_counter() - t0
    times = cpu_and_wall({k: (lambda e=e: e(pop, x, y)) for k, e in evaluators.items()}, args.repeats)
    for name, options in settings.items():
        finals = []
        for seed in range(args.seeds):
            net = build_model(model_name, task.input_shape, task.n_outputs, generator=torch_generator(seed, "init")).to(device)
            r = make_trainer("shade", **options).fit(net, task, Budget(evals=args.evals), seed=seed)
            finals.append((r.final["train_loss"], r.final["val_metric"], r.final["test_metric"]))
        metrics = [f"{v:.4f}" for v in np.mean(finals, axis=0)] if finals else ["-"] * 3
        ev = evaluators[name]
        table.add_row(name, "loop" if ev.mode_used == "loop" else f"{ev.mode_used} (chunk {ev.chunk_used or len(pop)})",
                      f"{times[name][0]:.4f} ({times[name][1]:.4f})", f"{times['default'][0] / times[name][0]:.2f}×",
                      f"{first[name]:.1f}", *metrics)
        Console().print(f"{name}: {times[name]}, finals {finals}")
    Console(width=200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="training samples for every case (default: per case)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--peers", action="store_true", help="engine vs EvoTorch, torch.func vmap and a v2p loop")
    parser.add_argument("--profile", metavar="CASE", help="profile one SHADE run, e.g. mlp11/wqc")
    parser.add_argument("--searcher", type=int, metavar="D", help="CPU time of one SHADE generation at dimension D")
    parser.add_argument("--options", metavar="CASE", help="compile and bfloat16 against the default, e.g. mlp2/bcw")
    parser.add_argument("--evals", type=int, default=210, help="evaluations of the --profile/--options runs")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the --options runs (0: speed only)")
    parser.add_argument("--profile-task", default="thesis000", help="task profile of --profile/--options (\"\": none, e.g. for mnist)")
    parser.add_argument("--set", nargs="*", default=[], help="trainer options of the --profile run (KEY=VALUE)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.searcher:
        return searcher_generation(args, args.searcher)
    if args.profile:
        return profile_run(args, args.profile)
    if args.options:
        return run_options(args, args.options, device)
    if args.peers:
        return run_peers(args, device)
    peak = matmul_rate(device, 5)
    table = Table(title=f"population evaluation on {device} ({args.threads} thread(s)); "
                        f"1024³ matmul: {peak / 1e9:.1f} GFLOP/s")
    for col in ("model/task", "D", "P", "samples", "engine mode", "engine ind·samples/s", "loop ind·samples/s",
                "engine GFLOP/s", "loop GFLOP/s", "ratio", "ceiling"):
        table.add_column(col)
    for case in args.cases:
        model_name, task_name = case.split("/")
        task = load_task(task_name, device=device)
        samples = args.samples or CASES.get(case) or len(task.train)
        x, y = task.train.x[:samples], task.train.y[:samples]
        model = build_model(model_name, task.input_shape, task.n_outputs, generator=torch_generator(0, "init")).to(device)
        loss = get_loss(task.loss)
        flops = forward_flops(model.eval(), x)
        for size in args.sizes:
            pop = initial_population(model, size, torch_generator(0, "population"))
            evaluator = PopulationEvaluator(model, loss)
            t_engine = best_of(lambda: evaluator(pop, x, y), args.repeats, warmup=1)
            pop_np = pop.cpu().numpy()
            loop_model = build_model(model_name, task.input_shape, task.n_outputs).to(device)
            t_loop = best_of(lambda: thesis_loop(loop_model, pop_np, x, y, loss), args.repeats, warmup=1)
            work = size * len(x)
            table.add_row(case, str(pop.shape[1]), str(size), str(len(x)), f"{evaluator.mode_used} (chunk {evaluator.chunk_used or size})",
                          f"{work / t_engine:,.0f}", f"{work / t_loop:,.0f}", f"{size * flops / t_engine / 1e9:.2f}",
                          f"{size * flops / t_loop / 1e9:.2f}", f"{t_loop / t_engine:.1f}×", f"{peak * t_loop / (size * flops):.1f}×")
            Console().print(f"{case} P={size}: engine {evaluator.mode_used}/{evaluator.chunk_used} ratio {t_loop / t_engine:.2f}")
    Console(width=180).print(table)


if __name__ == "__main__":
    main()
