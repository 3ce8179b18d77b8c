"""Matrix-free spectral estimates of a symmetric operator given by its matvec (e.g. a Hessian).

* :class:`Lanczos`: B independent Lanczos runs at once with full reorthogonalisation (classical
  Gram-Schmidt applied twice), seeded start vectors; the tridiagonal eigenproblem is solved with
  ``scipy.linalg.eigh_tridiagonal``.
* :func:`top_eigen`: extreme Ritz pairs until the residual bound ``β_m |s_{m,i}| ≤ tol·|θ_1|`` holds.
* :func:`spectral_density`: stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019).
* :func:`hutchinson_trace`, :func:`hutchpp_trace`: Hutchinson (1990) and Hutch++ (Meyer et al. 2021).
* :func:`subspace_iteration`: block power iteration with Rayleigh-Ritz, the baseline of the benchmark.

A ``matvec`` maps a (B, D) batch of vectors to (B, D).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import Tensor

from trainlab.core.config import ConfigError, check_choice, check_number

Matvec = Callable[[Tensor], Tensor]
WHICH = ("largest", "magnitude")


def rademacher(shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype,
               device: torch.device | str) -> Tensor:
    """Independent ±1 entries drawn from ``generator``."""
    signs = torch.randint(0, 2, shape, generator=generator, device=generator.device)
    return (2 * signs - 1).to(device=device, dtype=dtype)


class Lanczos:
    """B Lanczos processes run in lock step: ``A Q_m = Q_m T_m + β_m q_{m+1} e_mᵀ`` per start vector.

    Each new vector is orthogonalised against all previous ones twice, so Q stays orthonormal to
    working precision and no spurious copies of converged Ritz values appear. A process whose Krylov
    space is exhausted (``β`` below ``breakdown``·‖A q‖) stops; its ``length`` stays fixed.
    """

    def __init__(self, matvec: Matvec, start: Tensor, max_steps: int, breakdown: float | None = None):
        if start.dim() != 2:
            raise ConfigError("start", tuple(start.shape), "a (B, D) batch of start vectors")
        batch, dim = start.shape
        self.matvec = matvec
        self.max_steps = min(check_number("max_steps", max_steps, low=1, integer=True), dim)
        self.breakdown = 100 * torch.finfo(start.dtype).eps if breakdown is None else breakdown
        self.basis = start.new_zeros(batch, self.max_steps + 1, dim)
        self.basis[:, 0] = start / start.norm(dim=1, keepdim=True)
        self.alpha = start.new_zeros(batch, self.max_steps)
        self.beta = start.new_zeros(batch, self.max_steps)
        self.length = torch.zeros(batch, dtype=torch.long)
        self.active = torch.ones(batch, dtype=torch.bool)
        self.steps = 0
        self.n_matvec = 0

    def run(self, steps: int) -> None:
        """Take up to ``steps`` more steps (fewer when ``max_steps`` is reached)."""
        for _ in range(min(steps, self.max_steps - self.steps)):
            if not self.active.any():
                return
            self._step()

    def _step(self) -> None:
        j, q = self.steps, self.basis[:, self.steps]
        w = self.matvec(q)
        self.n_matvec += int(self.active.sum())
        scale = w.norm(dim=1)
        basis = self.basis[:, : j + 1]
        alpha = torch.zeros_like(scale)
        for _ in range(2):
            coeff = torch.einsum("bjd,bd->bj", basis, w)
            w = w - torch.einsum("bj,bjd->bd", coeff, basis)
            alpha = alpha + coeff[:, j]
        beta = w.norm(dim=1)
        active = self.active.to(w.device)
        self.alpha[:, j] = torch.where(active, alpha, 0)
        self.beta[:, j] = torch.where(active, beta, 0)
        self.length += self.active.long()
        self.active &= (beta > self.breakdown * scale).cpu()
        keep = self.active.to(w.device)[:, None]
        self.basis[:, j + 1] = torch.where(keep, w / torch.where(keep[:, 0], beta, 1)[:, None], 0)
        self.steps += 1

    def tridiagonal(self, b: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Diagonal and off-diagonal of T for process ``b`` (float64 NumPy)."""
        m = int(self.length[b])
        return (self.alpha[b, :m].double().cpu().numpy(), self.beta[b, : m - 1].double().cpu().numpy())

    def ritz(self, b: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ritz values (ascending), eigenvectors of T (columns) and residual norms ``β_m |s_{m,i}|``."""
        d, e = self.tridiagonal(b)
        values, vectors = eigh_tridiagonal(d, e)
        last = float(self.beta[b, int(self.length[b]) - 1]) if self.active[b] else 0.0
        return values, vectors, last * np.abs(vectors[-1])

    def ritz_vectors(self, b: int, coefficients: np.ndarray) -> Tensor:
        """Columns of ``coefficients`` (m, k) mapped back to the original space: Q_m s, as (k, D)."""
        basis = self.basis[b, : int(self.length[b])]
        s = torch.as_tensor(coefficients, dtype=basis.dtype, device=basis.device)
        return s.T @ basis


@dataclass(frozen=True)
class Eigen:
    """Top eigenpairs: ``values`` (k,) descending, ``vectors`` (k, D) or None, residual norms, cost."""

    values: Tensor
    vectors: Tensor | None
    residuals: Tensor
    n_matvec: int
    converged: bool


def _order(values: np.ndarray, which: str) -> np.ndarray:
    key = values if which == "largest" else np.abs(values)
    return np.argsort(-key, kind="stable")


def top_eigen(
    matvec: Matvec,
    dim: int,
    k: int = 3,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    tol: float = 1e-8,
    max_steps: int = 300,
    check_every: int = 5,
    which: str = "largest",
    vectors: bool = False,
) -> Eigen:
    """The ``k`` largest (``which="largest"``) or largest-magnitude eigenpairs by Lanczos.

    Stops when each wanted Ritz pair has residual ``‖A x − θ x‖ = β_m |s_{m,i}| ≤ tol·|θ_1|``; for a
    symmetric operator that bounds the eigenvalue error by the same amount.
    """
    check_number("k", k, low=1, high=dim, integer=True)
    check_number("tol", tol, low=0, low_open=True)
    check_number("check_every", check_every, low=1, integer=True)
    check_choice("which", which, WHICH)
    start = torch.randn(1, dim, generator=generator, device=generator.device).to(device=device, dtype=dtype)
    process = Lanczos(matvec, start, max_steps=max(max_steps, k))
    process.run(max(k, check_every))
    while True:
        values, coeffs, residuals = process.ritz()
        wanted = _order(values, which)[:k]
        scale = max(abs(values[wanted[0]]), np.finfo(float).tiny)
        converged = len(wanted) == k and bool(np.all(residuals[wanted] <= tol * scale))
        if converged or process.steps >= process.max_steps or not process.active[0]:
            break
        process.run(check_every)
    return Eigen(
        values=torch.as_tensor(values[wanted], dtype=dtype),
        vectors=process.ritz_vectors(0, coeffs[:, wanted]) if vectors else None,
        residuals=torch.as_tensor(residuals[wanted], dtype=dtype),
        n_matvec=process.n_matvec,
        converged=converged,
    )


@dataclass(frozen=True)
class SpectralDensity:
    """SLQ nodes θ (P, m) and weights τ (P, m) per probe; ``dim`` the operator's size.

    The estimated spectral density is ``φ(t) = (D/P) Σ_p Σ_j τ_{p,j} N(t; θ_{p,j}, σ²)``, which
    integrates to D (an eigenvalue count per unit t).
    """

    nodes: list[np.ndarray]
    weights: list[np.ndarray]
    dim: int
    n_matvec: int = 0

    @property
    def support(self) -> tuple[float, float]:
        low = min(float(n.min()) for n in self.nodes)
        high = max(float(n.max()) for n in self.nodes)
        return low, high

    def default_sigma(self) -> float:
        """1 % of the spread of the nodes (at least 1e-12)."""
        low, high = self.support
        return max(0.01 * (high - low), 1e-12)

    def grid(self, points: int = 1000, sigma: float | None = None) -> np.ndarray:
        """``points`` evenly spaced values covering the nodes ± 5σ."""
        sigma = self.default_sigma() if sigma is None else sigma
        low, high = self.support
        return np.linspace(low - 5 * sigma, high + 5 * sigma, points)

    def density(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """φ on ``grid`` with Gaussian smoothing of width ``sigma``."""
        sigma = self.default_sigma() if sigma is None else check_number("sigma", sigma, low=0, low_open=True)
        nodes, weights = np.concatenate(self.nodes), np.concatenate(self.weights)
        kernel = np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        return self.dim / len(self.nodes) * kernel @ weights

    def expectation(self, fn: Callable[[np.ndarray], np.ndarray]) -> float:
        """Estimate of ``tr f(A) = D · E_p Σ_j τ_{p,j} f(θ_{p,j})`` (e.g. ``fn=lambda t: t`` for the trace)."""
        return self.dim * float(np.mean([np.sum(w * fn(n)) for n, w in zip(self.nodes, self.weights)]))


def spectral_density(
    matvec: Matvec,
    dim: int,
    *,
    generator: torch.Generator,
    probes: int = 10,
    steps: int = 80,
    batch: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> SpectralDensity:
    """Stochastic Lanczos quadrature with ``probes`` Rademacher start vectors and ``steps`` steps each.

    For probe v, the m-point Gauss quadrature of ``vᵀ f(A) v / ‖v‖²`` has nodes θ_j (eigenvalues of T_m)
    and weights τ_j = (first component of T_m's j-th eigenvector)²; ``batch`` probes run at once.
    """
    check_number("probes", probes, low=1, integer=True)
    check_number("steps", steps, low=1, integer=True)
    batch = probes if batch is None else check_number("batch", batch, low=1, integer=True)
    nodes, weights, cost = [], [], 0
    for first in range(0, probes, batch):
        size = min(batch, probes - first)
        process = Lanczos(matvec, rademacher((size, dim), generator, dtype, device), max_steps=steps)
        process.run(steps)
        cost += process.n_matvec
        for b in range(size):
            values, vectors, _ = process.ritz(b)
            nodes.append(values)
            weights.append(vectors[0] ** 2)
    return SpectralDensity(nodes=nodes, weights=weights, dim=dim, n_matvec=cost)


@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate, its standard error (from the probe samples) and the number of matvecs."""

    value: float
    stderr: float
    samples: Tensor
    n_matvec: int

    def interval(self, z: float = 4.0) -> tuple[float, float]:
        return self.value - z * self.stderr, self.value + z * self.stderr


def _quadratic_forms(matvec: Matvec, probes: Tensor, batch: int) -> Tensor:
    return torch.cat([(p * matvec(p)).sum(dim=1) for p in probes.split(batch)])


def hutchinson_trace(
    matvec: Matvec,
    dim: int,
    *,
    generator: torch.Generator,
    probes: int = 30,
    batch: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> TraceEstimate:
    """``tr A ≈ (1/m) Σ_i z_iᵀ A z_i`` with Rademacher z_i; standard error ``std(z_iᵀ A z_i)/√m``."""
    check_number("probes", probes, low=2, integer=True)
    batch = probes if batch is None else check_number("batch", batch, low=1, integer=True)
    samples = _quadratic_forms(matvec, rademacher((probes, dim), generator, dtype, device), batch)
    return TraceEstimate(
        value=float(samples.mean()), stderr=float(samples.std() / math.sqrt(probes)),
        samples=samples, n_matvec=probes,
    )


def hutchpp_trace(
    matvec: Matvec,
    dim: int,
    *,
    generator: torch.Generator,
    matvecs: int = 30,
    batch: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> TraceEstimate:
    """Hutch++: ``tr(Qᵀ A Q) + (3/m) Σ_i g_iᵀ (I−QQᵀ) A (I−QQᵀ) g_i`` with ``Q = orth(A S)``.

    ``matvecs`` = m is split in thirds between A S, A Q and the residual probes g_i; the standard error
    comes from the residual samples (the low-rank part is exact given Q).
    """
    check_number("matvecs", matvecs, low=6, integer=True)
    batch = matvecs if batch is None else check_number("batch", batch, low=1, integer=True)
    third = matvecs // 3
    n_g = matvecs - 2 * third
    sketch = rademacher((third, dim), generator, dtype, device)
    images = torch.cat([matvec(s) for s in sketch.split(batch)])
    q = torch.linalg.qr(images.T).Q.T
    low_rank = _quadratic_forms(matvec, q, batch).sum()
    g = rademacher((n_g, dim), generator, dtype, device)
    g = g - (g @ q.T) @ q
    samples = _quadratic_forms(matvec, g, batch)
    return TraceEstimate(
        value=float(low_rank + samples.mean()), stderr=float(samples.std() / math.sqrt(n_g)),
        samples=low_rank + samples, n_matvec=2 * third + n_g,
    )


def subspace_iteration(
    matvec: Matvec,
    dim: int,
    k: int = 3,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    tol: float = 1e-8,
    max_matvecs: int = 10_000,
) -> Eigen:
    """Block power iteration: ``V ← orth(A V)`` with Rayleigh-Ritz, until ``‖A x − θ x‖ ≤ tol·|θ_1|``.

    Converges to the largest-magnitude eigenpairs at rate |λ_{k+1}/λ_i| per step; k matvecs per step.
    """
    check_number("k", k, low=1, high=dim, integer=True)
    v = torch.linalg.qr(torch.randn(dim, k, generator=generator, device=generator.device).to(device, dtype)).Q.T
    n_matvec, converged = 0, False
    while True:
        w = matvec(v)
        n_matvec += k
        small = v @ w.T
        values, s = torch.linalg.eigh((small + small.T) / 2)
        order = torch.argsort(values.abs(), descending=True)
        values, s = values[order], s[:, order]
        x, ax = s.T @ v, s.T @ w
        residuals = (ax - values[:, None] * x).norm(dim=1)
        converged = bool((residuals <= tol * values[0].abs()).all())
        if converged or n_matvec + k > max_matvecs:
            return Eigen(values=values, vectors=x, residuals=residuals, n_matvec=n_matvec, converged=converged)
        v = torch.linalg.qr(ax.T).Q.T
