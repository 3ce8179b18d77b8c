"""Empirical neural tangent kernel ``Θ = J Jᵀ`` (Jacot, Gabriel & Hongler 2018) on a data subset.

``J`` is the Jacobian of the outputs ``f_k(x_i; θ)`` with respect to all trainable parameters, so
``Θ[(i,k), (j,l)] = Σ_p ∂f_k(x_i)/∂θ_p · ∂f_l(x_j)/∂θ_p`` is an (N·K, N·K) matrix, rows ordered
sample-major (index ``i·K + k``). With ``trace_outputs=True`` it is summed over the outputs,
``Θ[i, j] = Σ_k Θ[(i,k), (j,k)]`` (N, N), the convention of ``neural_tangents``' ``empirical_ntk_fn``.
No 1/N factor: under gradient descent on ``(1/2N) Σ ‖f − y‖²`` the residual evolves as
``g ← g − (η/N) Θ g`` (Jacot et al. 2018; Lavín Pallero 2021, eq. 3.17).

The largest eigenvalues come from Lanczos on the implicit operator ``Θ v = J (Jᵀ v)`` (one vjp and
one jvp per product) when Θ is too large to form.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import jacrev, jvp, vjp, vmap

from trainlab.core.config import check_choice, check_number
from trainlab.diagnostics.lanczos import top_eigen
from trainlab.diagnostics.objective import FunctionalModel
from trainlab.core.seeding import torch_generator

METHODS = ("auto", "dense", "lanczos")
DENSE_LIMIT = 4096
"""``method="auto"`` forms Θ densely when its side N·K (or N) is at most this."""


class NTK:
    """The empirical NTK of ``model`` on inputs ``x`` (batch norm in mode ``bn``, see ``objective``)."""

    def __init__(self, model: nn.Module, x: Tensor, *, trace_outputs: bool = False, bn: str = "eval",
                 dtype: torch.dtype = torch.float64, device: str | torch.device | None = None):
        self.fmodel = FunctionalModel(model, bn=bn, dtype=dtype, device=device)
        self.x = self.fmodel.cast_inputs(x)
        self.trace_outputs = trace_outputs
        self.n_samples = len(x)
        self.n_outputs = self.outputs().shape[1]

    @property
    def dim(self) -> int:
        """The side of Θ: N·K, or N when summed over outputs."""
        return self.n_samples * (1 if self.trace_outputs else self.n_outputs)

    def outputs(self, theta: Tensor | None = None) -> Tensor:
        theta = self.fmodel.theta if theta is None else theta
        return self.fmodel(theta, self.x).reshape(self.n_samples, -1)

    def jacobian(self) -> Tensor:
        """J of shape (N, K, D): per-sample ``vmap(jacrev)`` with running statistics, whole-batch
        ``jacrev`` when batch norm couples the samples (``bn="train"``)."""
        theta = self.fmodel.theta
        if self.fmodel.couples_samples:
            return jacrev(self.outputs)(theta)

        def single(xi: Tensor) -> Tensor:
            return jacrev(lambda t: self.fmodel(t, xi[None]).reshape(-1))(theta)

        return vmap(single)(self.x)

    def matrix(self) -> Tensor:
        """Θ formed densely from J."""
        jac = self.jacobian()
        if self.trace_outputs:
            return torch.einsum("ikd,jkd->ij", jac, jac)
        flat = jac.reshape(self.dim, -1)
        return flat @ flat.T

    def matvec(self, v: Tensor) -> Tensor:
        """Θ v for v of shape (B, side) without forming Θ: ``J (Jᵀ v)`` per output when traced."""
        theta = self.fmodel.theta
        pullback = vjp(self.outputs, theta)[1]

        def untraced(u: Tensor) -> Tensor:
            tangent = pullback(u.reshape(self.n_samples, self.n_outputs))[0]
            return jvp(self.outputs, (theta,), (tangent,))[1].reshape(-1)

        if not self.trace_outputs:
            return vmap(untraced)(v)
        eye = torch.eye(self.n_outputs, dtype=v.dtype, device=v.device)

        def traced(u: Tensor) -> Tensor:
            def per_output(e: Tensor) -> Tensor:
                tangent = pullback(u[:, None] * e[None, :])[0]
                return jvp(self.outputs, (theta,), (tangent,))[1] @ e

            return vmap(per_output)(eye).sum(0)

        return vmap(traced)(v)

    def eigenvalues(self, k: int = 1, *, method: str = "auto", seed: int = 0, tol: float = 1e-8) -> Tensor:
        """The ``k`` largest eigenvalues of Θ, descending: dense ``eigvalsh`` or Lanczos on :meth:`matvec`."""
        check_choice("method", method, METHODS)
        check_number("k", k, low=1, high=self.dim, integer=True)
        if method == "dense" or (method == "auto" and self.dim <= DENSE_LIMIT):
            return torch.linalg.eigvalsh(self.matrix()).flip(0)[:k]
        theta = self.fmodel.theta
        return top_eigen(
            self.matvec, self.dim, k, generator=torch_generator(seed, "ntk"), dtype=theta.dtype,
            device=theta.device, tol=tol,
        ).values


def empirical_ntk(model: nn.Module, x: Tensor, *, trace_outputs: bool = False, bn: str = "eval",
                  dtype: torch.dtype = torch.float64) -> Tensor:
    """Θ = J Jᵀ on ``x``: (N·K, N·K), or (N, N) with ``trace_outputs``."""
    return NTK(model, x, trace_outputs=trace_outputs, bn=bn, dtype=dtype).matrix()


def ntk_eigenvalues(model: nn.Module, x: Tensor, k: int = 1, *, trace_outputs: bool = False,
                    method: str = "auto", bn: str = "eval", dtype: torch.dtype = torch.float64,
                    seed: int = 0) -> Tensor:
    """The ``k`` largest eigenvalues of the empirical NTK of ``model`` on ``x`` (descending)."""
    return NTK(model, x, trace_outputs=trace_outputs, bn=bn, dtype=dtype).eigenvalues(k, method=method, seed=seed)
