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
documented in :mod:`bayesmix.priors`.

Dispatch tables (dicts keyed by the canonical type name, one signature each):

* ``PRECISION_CHOLESKY[type](covariances)`` -> native precision Cholesky factor
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
    "n_parameters",
    "precision_cholesky_full",
]

_LOG_2PI = np.log(2.0 * np.pi)
#: added to N_k before dividing, as scikit-learn does, so an empty component gives
#: finite (and then flagged) parameters instead of 0/0.
NK_EPS = 10.0 * np.finfo(np.float64).eps

_SINGULAR_ADVICE = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar (it is {reg}), standardize the data, or use a "
    "prior (MAP, prior=bayesmix.GMMPrior.from_data(X, K))."
)


class SingularCovarianceError(ValueError):
    """A covariance matrix is not positive definite (a collapsed component)."""


# --------------------------------------------------------------------------- precision Cholesky
def _inv_lower(L):
    """Inverse of batched lower-triangular matrices by forward substitution.

    Plain numpy (einsum, no BLAS call): for the small D of mixture models this is
    exact to rounding and avoids multithreaded BLAS overhead on tiny matrices.
    """
    D = L.shape[-1]
    out = np.zeros_like(L)
    eye = np.eye(D)
    for i in range(D):
        acc = np.broadcast_to(eye[i], (*L.shape[:-2], D))
        if i:
            acc = acc - np.einsum("...j,...jd->...d", L[..., i, :i], out[..., :i, :])
        out[..., i, :] = acc / L[..., i, i, None]
    return out


def _prec_chol_full(covariances, reg_covar=None):
    covariances = np.asarray(covariances, dtype=float)
    try:
        L = np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError:
        raise SingularCovarianceError(_SINGULAR_ADVICE.format(reg=reg_covar)) from None
    diag = np.diagonal(L, axis1=-2, axis2=-1)
    if not np.all(diag > 0):
        raise SingularCovarianceError(_SINGULAR_ADVICE.format(reg=reg_covar))
    return np.swapaxes(_inv_lower(L), -1, -2)


def _prec_chol_tied(covariance, reg_covar=None):
    return _prec_chol_full(np.asarray(covariance, dtype=float)[None], reg_covar)[0]


def _prec_chol_var(variances, reg_covar=None):
    variances = np.asarray(variances, dtype=float)
    if np.any(~(variances > 0)):
        raise SingularCovarianceError(_SINGULAR_ADVICE.format(reg=reg_covar))
    return 1.0 / np.sqrt(variances)


PRECISION_CHOLESKY = {
    "full": _prec_chol_full,
    "tied": _prec_chol_tied,
    "diag": _prec_chol_var,
    "spherical": _prec_chol_var,
}


def precision_cholesky_full(covariances):
    """Upper-triangular precision Cholesky factors of full matrices (K, D, D)."""
    return _prec_chol_full(covariances)


# --------------------------------------------------------------------------- log-determinant
LOG_DET_CHOLESKY = {
    "full": lambda P, D: np.log(np.diagonal(P, axis1=-2, axis2=-1)).sum(-1),
    "tied": lambda P, D: np.log(np.diag(P)).sum(),
    "diag": lambda P, D: np.log(P).sum(-1),
    "spherical": lambda P, D: D * np.log(P),
}


# --------------------------------------------------------------------------- log densities
def _chunks(n, width, budget=2**21):
    """Row slices such that a (rows, width) float64 temporary stays near 16 MB."""
    step = max(1, int(budget // max(width, 1)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _log_prob_full(X, means, prec_chol):
    N, D = X.shape
    K = means.shape[0]
    # all components at once: Y = X @ [P_1 ... P_K] - [mu_1 P_1 ... mu_K P_K]
    P_all = np.ascontiguousarray(np.transpose(prec_chol, (1, 0, 2)).reshape(D, K * D))
    b = np.einsum("kd,kde->ke", means, prec_chol).reshape(K * D)
    block_sum = np.kron(np.eye(K), np.ones((D, 1)))  # (K*D, K): sums each block of D
    out = np.empty((N, K))
    for sl in _chunks(N, K * D):
        Y = X[sl] @ P_all
        Y -= b
        np.square(Y, out=Y)
        out[sl] = Y @ block_sum
    logdet = LOG_DET_CHOLESKY["full"](prec_chol, D)
    return -0.5 * (D * _LOG_2PI + out) + logdet


def _log_prob_tied(X, means, prec_chol):
    N, D = X.shape
    K = means.shape[0]
    b = means @ prec_chol  # (K, D)
    out = np.empty((N, K))
    for sl in _chunks(N, K * D):
        Y = (X[sl] @ prec_chol)[:, None, :] - b[None]
        out[sl] = np.einsum("nkd,nkd->nk", Y, Y)
    logdet = LOG_DET_CHOLESKY["tied"](prec_chol, D)
    return -0.5 * (D * _LOG_2PI + out) + logdet


def _log_prob_diag(X, means, prec_chol):
    N, D = X.shape
    K = means.shape[0]
    out = np.empty((N, K))
    for sl in _chunks(N, K * D):
        Y = (X[sl][:, None, :] - means[None]) * prec_chol[None]
        out[sl] = np.einsum("nkd,nkd->nk", Y, Y)
    logdet = LOG_DET_CHOLESKY["diag"](prec_chol, D)
    return -0.5 * (D * _LOG_2PI + out) + logdet


def _log_prob_spherical(X, means, prec_chol):
    N, D = X.shape
    K = means.shape[0]
    out = np.empty((N, K))
    for sl in _chunks(N, K * D):
        Y = X[sl][:, None, :] - means[None]
        out[sl] = np.einsum("nkd,nkd->nk", Y, Y) * prec_chol**2
    logdet = LOG_DET_CHOLESKY["spherical"](prec_chol, D)
    return -0.5 * (D * _LOG_2PI + out) + logdet


LOG_GAUSSIAN_PROB = {
    "full": _log_prob_full,
    "tied": _log_prob_tied,
    "diag": _log_prob_diag,
    "spherical": _log_prob_spherical,
}


# --------------------------------------------------------------------------- sufficient statistics
def _sxx_full(X, resp):
    N, D = X.shape
    K = resp.shape[1]
    acc = np.zeros((D, K * D))
    for sl in _chunks(N, K * D):
        Z = (resp[sl][:, :, None] * X[sl][:, None, :]).reshape(-1, K * D)
        # a contiguous X^T: OpenBLAS is very slow on the transposed view of a skinny matrix
        acc += np.ascontiguousarray(X[sl].T) @ Z
    return np.ascontiguousarray(acc.reshape(D, K, D).transpose(1, 0, 2))


def _sxx_tied(X, resp):
    return np.ascontiguousarray(X.T) @ X


def _sxx_diag(X, resp):
    return np.ascontiguousarray(resp.T) @ (X * X)


SECOND_MOMENTS = {
    "full": _sxx_full,
    "tied": _sxx_tied,
    "diag": _sxx_diag,
    "spherical": _sxx_diag,
}


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
    """Free parameters of a mixture: covariances + means + (K - 1) weights (as scikit-learn)."""
    K, D = n_components, n_features
    return N_COVARIANCE_PARAMETERS[covariance](K, D) + K * D + K - 1
