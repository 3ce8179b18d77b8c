"""Training-dynamics diagnostics: Hessian spectrum, trace and density, empirical NTK, sharpness against
the stability limit, per-layer gradient norms, the ``diagnostics`` table of runs and experiments with its
training callback, and a report on a saved run."""
from trainlab.diagnostics.callbacks import CurvatureCallback, CurvatureOptions, Diagnostics
from trainlab.diagnostics.config import (
    REQUESTS,
    CurvatureRequest,
    DiagnosticsConfig,
    GradientNormRequest,
    NTKRequest,
    SharpnessRequest,
    diagnostics_config,
)
from trainlab.diagnostics.gradients import gradient_norms
from trainlab.diagnostics.hessian import dense_hessian, hessian_density, hessian_eigh, hessian_top, hessian_trace
from trainlab.diagnostics.hvp import hvp
from trainlab.diagnostics.lanczos import (
    Eigen,
    Lanczos,
    SpectralDensity,
    TraceEstimate,
    hutchinson_trace,
    hutchpp_trace,
    spectral_density,
    subspace_iteration,
    top_eigen,
)
from trainlab.diagnostics.ntk import NTK, empirical_ntk, ntk_eigenvalues
from trainlab.diagnostics.objective import FunctionalModel, Objective
from trainlab.diagnostics.stability import Sharpness, sharpness, stability_limit, update_limit

__all__ = [
    "NTK",
    "REQUESTS",
    "CurvatureCallback",
    "CurvatureOptions",
    "CurvatureRequest",
    "Diagnostics",
    "DiagnosticsConfig",
    "GradientNormRequest",
    "NTKRequest",
    "SharpnessRequest",
    "Eigen",
    "FunctionalModel",
    "Lanczos",
    "Objective",
    "Sharpness",
    "SpectralDensity",
    "TraceEstimate",
    "dense_hessian",
    "diagnostics_config",
    "empirical_ntk",
    "gradient_norms",
    "hessian_density",
    "hessian_eigh",
    "hessian_top",
    "hessian_trace",
    "hutchinson_trace",
    "hutchpp_trace",
    "hvp",
    "ntk_eigenvalues",
    "sharpness",
    "spectral_density",
    "stability_limit",
    "subspace_iteration",
    "top_eigen",
    "update_limit",
]
