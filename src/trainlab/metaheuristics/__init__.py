"""Population-based searchers with an ask/tell interface, usable on any batched function.

``de`` (DE/rand/1/bin), ``shade``, ``lshade``, ``shade-ils``, ``cma-es`` and ``sep-cma-es`` (pycma),
``snes``, and ``evotorch-snes``, ``evotorch-pgpe``, ``evotorch-xnes`` (EvoTorch, an optional extra imported
when one is built); :func:`minimize` runs one on a plain
function; :mod:`~trainlab.metaheuristics.benchmarks` has sphere, Rosenbrock, Rastrigin and Ackley.
"""
from trainlab.metaheuristics.base import SEARCHERS, Problem, Searcher, SearchResult, make_searcher, minimize
from trainlab.metaheuristics.cmaes import CMAES, SepCMAES
from trainlab.metaheuristics.de import DE
from trainlab.metaheuristics.evotorch_nes import EvoTorchPGPE, EvoTorchSNES, EvoTorchXNES
from trainlab.metaheuristics.lshade import LSHADE
from trainlab.metaheuristics.shade import SHADE
from trainlab.metaheuristics.shade_ils import SHADEILS
from trainlab.metaheuristics.snes import SNES

__all__ = ["SEARCHERS", "Problem", "Searcher", "SearchResult", "make_searcher", "minimize", "DE", "SHADE", "LSHADE", "SHADEILS",
           "CMAES", "SepCMAES", "SNES", "EvoTorchSNES", "EvoTorchPGPE", "EvoTorchXNES"]
