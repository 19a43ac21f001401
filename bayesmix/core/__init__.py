"""The foundations every stage uses: input validation and warnings, the Gaussian-density
layer (a numpy reference and a numba backend of the same API), covariance-type math,
priors, constants, the chunked passes of the Dask path, and the lazy-import helper.

Imports nothing else from bayesmix (the bottom of the stages).
"""

from __future__ import annotations

from bayesmix.core._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "GMMPrior": "._priors",
        "default_prior": "._priors",
        "BayesmixWarning": "._validation",
        "ConvergenceWarning": "._validation",
        "DegenerateDataWarning": "._validation",
        "SingularCovarianceError": "._gaussian",
    },
)
