"""Plain numpy Gaussian-mixture densities on full covariance matrices.

These are shared by the post-sampling code: the pointwise log-likelihood stored in
a DataTree, membership probabilities per draw, plug-in predictive densities.
Everything works on batches of parameter sets with a leading "sample" axis (callers
chunk long batches themselves). A batch of parameter sets (posterior draws) goes through
the numba kernel of :mod:`bayesmix._mixture_kernels` (one pass over the data per
draw); a single parameter set, and :func:`log_component_densities`, use the numpy
reference code (``tests/test_mixture_kernels.py`` checks the two against each other and
against scipy.stats).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

__all__ = [
    "cholesky_or_raise",
    "log_component_densities",
    "log_mixture_density",
    "responsibilities",
]

_LOG_2PI = np.log(2.0 * np.pi)


def cholesky_or_raise(covariances, *, name="covariances"):
    """Batched lower Cholesky factor with a clear error for non-SPD matrices.

    Parameters
    ----------
    covariances : ndarray, shape (..., D, D)

    Returns
    -------
    ndarray, shape (..., D, D)
    """
    try:
        return np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            f"{name} contains a matrix that is not symmetric positive definite (singular "
            "covariance). Increase reg_covar, decrease the number of components, or scale the "
            "data."
        ) from exc


def log_component_densities(X, means, covariances):
    """Log density of every observation under every component.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    means : ndarray, shape (..., K, D)
    covariances : ndarray, shape (..., K, D, D)

    Returns
    -------
    ndarray, shape (..., N, K)
        ``log N(x_n | mu_k, Sigma_k)``.
    """
    X = np.asarray(X, dtype=float)
    means = np.asarray(means, dtype=float)
    chol = cholesky_or_raise(np.asarray(covariances, dtype=float))
    D = X.shape[-1]
    # diff: (..., K, N, D) -> solve L z = diff^T per component
    diff = X[..., None, :, :] - means[..., :, None, :]
    # solve triangular in batch: z = L^{-1} diff^T  -> (..., K, D, N)
    z = _batched_lower_solve(chol, np.swapaxes(diff, -1, -2))
    maha = np.einsum("...kdn,...kdn->...kn", z, z)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)  # (..., K)
    out = -0.5 * (D * _LOG_2PI + logdet[..., :, None] + maha)  # (..., K, N)
    return np.swapaxes(out, -1, -2)


def _batched_lower_solve(L, B):
    """Solve L Z = B for lower-triangular L, batched over leading axes."""
    # numpy has no batched triangular solve; np.linalg.solve is batched and accurate
    # enough for the small D of mixture models. Use forward substitution for speed.
    D = L.shape[-1]
    Z = np.empty(np.broadcast_shapes(L.shape[:-2], B.shape[:-2]) + B.shape[-2:])
    for i in range(D):
        acc = B[..., i, :]
        if i:
            acc = acc - np.einsum("...j,...jn->...n", L[..., i, :i], Z[..., :i, :])
        Z[..., i, :] = acc / L[..., i, i][..., None]
    return Z


def log_mixture_density(X, weights, means, covariances):
    """Pointwise log density of a Gaussian mixture, labels summed out.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    weights : ndarray, shape (S, K) or (K,)
    means : ndarray, shape (S, K, D) or (K, D)
    covariances : ndarray, shape (S, K, D, D) or (K, D, D)

    Returns
    -------
    ndarray, shape (S, N) or (N,)
    """
    return _dispatch(X, weights, means, covariances, want_resp=False)


def responsibilities(X, weights, means, covariances):
    """Posterior membership probabilities ``p(z_n = k | x_n, theta)``.

    Same shapes as :func:`log_mixture_density`; returns shape (S, N, K) or (N, K).
    """
    return _dispatch(X, weights, means, covariances, want_resp=True)


def _log_joint(X, weights, means, covariances):
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    return log_component_densities(X, means, covariances) + logw[..., None, :]


def _log_mix_one_chunk(X, weights, means, covariances):
    return logsumexp(_log_joint(X, weights, means, covariances), axis=-1)


def _resp_one_chunk(X, weights, means, covariances):
    lj = _log_joint(X, weights, means, covariances)
    return np.exp(lj - logsumexp(lj, axis=-1, keepdims=True))


def _numba_batch(X, weights, means, covariances, want_resp):
    """(S, N) log mixture density or (S, N, K) responsibilities through numba.

    A Python loop over draws calling the model's own kernel: no extra numba function
    to compile (a batched kernel would add seconds of compilation on a cold cache).
    """
    from bayesmix._mixture_kernels import loglik_numba

    S, K = weights.shape
    N = X.shape[0]
    X = np.ascontiguousarray(X)
    P = np.ascontiguousarray(np.linalg.inv(cholesky_or_raise(covariances)))
    means = np.ascontiguousarray(means)
    with np.errstate(divide="ignore"):
        logw = np.ascontiguousarray(np.log(weights))
    out = np.empty((S, N, K) if want_resp else (S, N))
    for s in range(S):
        ll, resp = loglik_numba(X, logw[s], means[s], P[s])
        out[s] = resp.T if want_resp else ll
    return out


def _dispatch(X, weights, means, covariances, want_resp):
    """One parameter set: numpy; a batch (leading sample axis): the numba kernel."""
    X = np.asarray(X, dtype=float)
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    if weights.ndim == 1:
        fn = _resp_one_chunk if want_resp else _log_mix_one_chunk
        return fn(X, weights, means, covariances)
    return _numba_batch(X, weights, means, covariances, want_resp)
