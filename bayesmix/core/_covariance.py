r"""Covariance-type math for Gaussian mixtures, one dispatch table per concern.

Each covariance type has a *native* parameter representation, as in
scikit-learn's ``sklearn/mixture/_gaussian_mixture.py``:

============  ======================  =========================================
type          covariances (native)    precisions Cholesky factor (native)
============  ======================  =========================================
``full``      (K, D, D)               (K, D, D), upper triangular
``tied``      (D, D)                  (D, D), upper triangular
``diag``      (K, D) variances        (K, D), ``1 / sqrt(variance)``
``spherical`` (K,) variances          (K,), ``1 / sqrt(variance)``
============  ======================  =========================================

The precision Cholesky factor ``P`` satisfies ``P @ P.T = inv(Sigma)``, so
``log N(x | mu, Sigma) = -D/2 log(2 pi) + sum(log diag P) - ||(x - mu) @ P||^2 / 2``:
no matrix is ever inverted and the log-determinant is a sum of logs.

The M-step works on *sufficient statistics* of the responsibilities ``r``
(``N_k = sum_n r_nk``, ``Sx_k = sum_n r_nk x_n`` and the second moments ``Sxx``:
(K, D, D) for full, (D, D) summed over components for tied, (K, D) diagonals for
diag and spherical), so the same M-step serves the numpy reference path and the
fused numba pass. The maximum-a-posteriori (MAP) updates are exactly those
documented in :mod:`bayesmix.core._priors`.

Dispatch tables (dicts keyed by the canonical type name, one signature each). The
first four evaluate Gaussians on data and are defined in the Gaussian-density layer
:mod:`bayesmix.core._gaussian` (re-exported here, so this module is the one place that lists
every per-type table):

* ``PRECISION_CHOLESKY[type](covariances, reg_covar=None)`` -> native precision
  Cholesky factor, or :class:`SingularCovarianceError`
* ``LOG_DET_CHOLESKY[type](prec_chol, n_features)`` -> (K,) or scalar
* ``LOG_GAUSSIAN_PROB[type](X, means, prec_chol)`` -> (N, K)
* ``SECOND_MOMENTS[type](X, resp)`` -> the ``Sxx`` statistic
* ``M_STEP[type](nk, sx, sxx, n_obs, reg_covar, prior)`` -> native covariances
* ``TO_FULL[type](covariances, n_components, n_features)`` -> (K, D, D)
* ``FROM_FULL[type](covariances_full)`` -> native covariances
* ``N_COVARIANCE_PARAMETERS[type](n_components, n_features)`` -> int
"""

from __future__ import annotations

import numpy as np

from bayesmix.core import _mclust_models as mm

# the density side of the dispatch tables lives in the Gaussian-density layer
from bayesmix.core._gaussian import (
    LOG_DET_CHOLESKY,
    LOG_GAUSSIAN_PROB,
    PRECISION_CHOLESKY,
    SECOND_MOMENTS,
    SingularCovarianceError,
    precision_cholesky,
    row_chunks,
)

__all__ = [
    "FROM_FULL",
    "LOG_DET_CHOLESKY",
    "LOG_GAUSSIAN_PROB",
    "M_STEP",
    "N_COVARIANCE_PARAMETERS",
    "PRECISION_CHOLESKY",
    "SECOND_MOMENTS",
    "TO_FULL",
    "MapPrior",
    "SingularCovarianceError",
    "n_parameters",
    "precision_cholesky_full",
]

#: added to N_k before dividing, as scikit-learn does, so an empty component gives
#: finite (and then flagged) parameters instead of 0/0.
NK_EPS = 10.0 * np.finfo(np.float64).eps

#: row chunks of the numpy passes (defined with the densities)
_chunks = row_chunks


def precision_cholesky_full(covariances):
    """Upper-triangular precision Cholesky factors of full matrices (K, D, D)."""
    return precision_cholesky(covariances)


# --------------------------------------------------------------------------- M-step
class MapPrior:
    """The prior quantities the MAP M-step needs, in the (centred) fitting frame.

    Parameters
    ----------
    m0 : ndarray (D,)
        Prior mean, already shifted into the fitting frame.
    kappa0, nu0, alpha : float
    scale : ndarray (D, D) for full/tied, (D,) for diag, float for spherical
    """

    def __init__(self, m0, kappa0, nu0, alpha, scale):
        self.m0 = np.asarray(m0, dtype=float)
        self.kappa0 = float(kappa0)
        self.nu0 = float(nu0)
        self.alpha = float(alpha)
        self.scale = scale


def _scatter(nk, sx, sxx_k):
    """Weighted scatter about the weighted mean: Sxx - Sx Sx^T / N_k (per component)."""
    return sxx_k - np.einsum("ki,kj->kij", sx, sx) / nk[:, None, None]


def _m_step_full(nk, sx, sxx, n_obs, reg_covar, prior):
    D = sx.shape[1]
    nke = nk + NK_EPS
    S = _scatter(nke, sx, sxx)
    if prior is None:
        cov = S / nke[:, None, None]
    else:
        xbar = sx / nke[:, None]
        dev = xbar - prior.m0
        c = prior.kappa0 * nke / (prior.kappa0 + nke)
        num = prior.scale[None] + S + c[:, None, None] * np.einsum("ki,kj->kij", dev, dev)
        cov = num / (prior.nu0 + nke + D + 2.0)[:, None, None]
    cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
    cov[:, np.arange(D), np.arange(D)] += reg_covar
    return cov


def _m_step_tied(nk, sx, sxx, n_obs, reg_covar, prior):
    K, D = sx.shape
    nke = nk + NK_EPS
    S = sxx - np.einsum("ki,kj->ij", sx, sx / nke[:, None])  # sum_k S_k
    if prior is None:
        cov = S / nk.sum()
    else:
        xbar = sx / nke[:, None]
        dev = xbar - prior.m0
        c = prior.kappa0 * nke / (prior.kappa0 + nke)
        num = prior.scale + S + np.einsum("k,ki,kj->ij", c, dev, dev)
        cov = num / (prior.nu0 + nk.sum() + D + 1.0 + K)
    cov = 0.5 * (cov + cov.T)
    cov[np.arange(D), np.arange(D)] += reg_covar
    return cov


def _diag_scatter(nke, sx, sxx):
    return sxx - sx * sx / nke[:, None]  # (K, D)


def _m_step_diag(nk, sx, sxx, n_obs, reg_covar, prior):
    nke = nk + NK_EPS
    S = _diag_scatter(nke, sx, sxx)
    if prior is None:
        var = S / nke[:, None]
    else:
        xbar = sx / nke[:, None]
        c = prior.kappa0 * nke / (prior.kappa0 + nke)
        num = prior.scale[None] + S + c[:, None] * (xbar - prior.m0) ** 2
        var = num / (prior.nu0 + nke + 3.0)[:, None]
    return var + reg_covar


def _m_step_spherical(nk, sx, sxx, n_obs, reg_covar, prior):
    D = sx.shape[1]
    nke = nk + NK_EPS
    trS = _diag_scatter(nke, sx, sxx).sum(1)
    if prior is None:
        var = trS / (nke * D)
    else:
        xbar = sx / nke[:, None]
        c = prior.kappa0 * nke / (prior.kappa0 + nke)
        num = prior.scale + trS + c * ((xbar - prior.m0) ** 2).sum(1)
        var = num / (prior.nu0 + 2.0 + D * (nke + 1.0))
    return var + reg_covar


M_STEP = {
    "full": _m_step_full,
    "tied": _m_step_tied,
    "diag": _m_step_diag,
    "spherical": _m_step_spherical,
}


def m_step_weights_means(nk, sx, n_obs, prior):
    """Mixing weights and means from the sufficient statistics (ML or MAP)."""
    K = nk.size
    nke = nk + NK_EPS
    if prior is None:
        weights = nke / nke.sum()
        means = sx / nke[:, None]
    else:
        a = prior.alpha
        # alpha >= 1 is checked by the caller, so every weight is positive
        weights = (nk + a - 1.0) / (nk.sum() + K * (a - 1.0))
        means = (sx + prior.kappa0 * prior.m0) / (nk + prior.kappa0)[:, None]
    return weights, means


# --------------------------------------------------------------------------- conversions
def _to_full_full(cov, K, D):
    return np.array(cov, dtype=float).reshape(K, D, D)


def _to_full_tied(cov, K, D):
    return np.broadcast_to(np.asarray(cov, dtype=float), (K, D, D)).copy()


def _to_full_diag(cov, K, D):
    out = np.zeros((K, D, D))
    out[:, np.arange(D), np.arange(D)] = cov
    return out


def _to_full_spherical(cov, K, D):
    return np.asarray(cov, dtype=float)[:, None, None] * np.eye(D)[None]


TO_FULL = {
    "full": _to_full_full,
    "tied": _to_full_tied,
    "diag": _to_full_diag,
    "spherical": _to_full_spherical,
}

FROM_FULL = {
    "full": lambda C: np.array(C, dtype=float),
    "tied": lambda C: np.array(C[0], dtype=float),
    "diag": lambda C: np.diagonal(C, axis1=1, axis2=2).copy(),
    "spherical": lambda C: np.diagonal(C, axis1=1, axis2=2).mean(1),
}


# --------------------------------------------------------------------------- parameter counts
N_COVARIANCE_PARAMETERS = {
    "full": lambda K, D: K * D * (D + 1) // 2,
    "tied": lambda K, D: D * (D + 1) // 2,
    "diag": lambda K, D: K * D,
    "spherical": lambda K, D: K,
}


def n_parameters(covariance, n_components, n_features):
    """Free parameters of a mixture: covariances + means + (K - 1) weights (as scikit-learn).

    ``covariance`` is one of the four native types or one of mclust's 14 model names, whose
    covariance count is mclust's ``nVarParams`` (the same for VII/VVI/VVV/EEE and their
    native types), so the total is mclust's ``df``.
    """
    K, D = n_components, n_features
    if covariance in N_COVARIANCE_PARAMETERS:
        return N_COVARIANCE_PARAMETERS[covariance](K, D) + K * D + K - 1
    return mm.n_var_params(covariance, K, D) + K * D + K - 1
