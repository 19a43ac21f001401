"""Numba kernels of the conjugate Gibbs sampler (:mod:`bayesmix.gibbs`).

The per-observation work of one sweep: the allocation step ``z | weights, means,
covariances`` (:func:`allocate`) and the per-component sufficient statistics
(:func:`suff_stats`); plus the label-swap moves of the truncated Dirichlet process
(:func:`dp_label_swaps`), which need ``lgamma`` in a loop.

Randomness comes from numpy's ``Generator`` in the caller (one uniform per
observation, per proposal), so a sweep is bit-reproducible per seed. The kernels
release the GIL (``nogil=True``): chains can run in threads.

Conventions: ``prec_chol[k]`` is the lower-triangular inverse ``P_k = L_k^{-1}`` of the
covariance's Cholesky factor ``Sigma_k = L_k L_k^T``, so ``Sigma_k^{-1} = P_k^T P_k``
and ``log N(x | mu_k, Sigma_k) = -D/2 log(2 pi) + sum_i log P_k[i, i] - |P_k (x -
mu_k)|^2 / 2``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["allocate", "dp_label_swaps", "suff_stats"]

_LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, nogil=True)
def allocate(X, log_w, means, prec_chol, u, z, counts):  # pragma: no cover - compiled
    """Draw every allocation from its full conditional, in log space.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    log_w : ndarray, shape (K,)
        Log weights; ``-inf`` for components that cannot be chosen.
    means : ndarray, shape (K, D)
    prec_chol : ndarray, shape (K, D, D)
        Lower-triangular precision factors (module docstring).
    u : ndarray, shape (N,)
        Uniform(0, 1) draws, one per observation (inverse-CDF sampling).
    z : ndarray of int64, shape (N,)
        Output: the allocations.
    counts : ndarray of int64, shape (K,)
        Output: observations per component.

    Returns
    -------
    float
        The log-likelihood ``sum_n log sum_k w_k N(x_n | mu_k, Sigma_k)`` at the
        parameters given.
    """
    N, D = X.shape
    K = log_w.shape[0]
    const = np.empty(K)
    for k in range(K):
        s = log_w[k] - 0.5 * D * _LOG_2PI
        for i in range(D):
            s += math.log(prec_chol[k, i, i])
        const[k] = s
    lp = np.empty(K)
    diff = np.empty(D)
    for k in range(K):
        counts[k] = 0
    total = 0.0
    for n in range(N):
        mx = -np.inf
        for k in range(K):
            if const[k] == -np.inf:
                lp[k] = -np.inf
                continue
            for j in range(D):
                diff[j] = X[n, j] - means[k, j]
            maha = 0.0
            for i in range(D):
                s = 0.0
                for j in range(i + 1):
                    s += prec_chol[k, i, j] * diff[j]
                maha += s * s
            v = const[k] - 0.5 * maha
            lp[k] = v
            if v > mx:
                mx = v
        tot = 0.0
        last = 0
        for k in range(K):
            e = math.exp(lp[k] - mx)
            lp[k] = e
            tot += e
            if e > 0.0:
                last = k
        total += mx + math.log(tot)
        target = u[n] * tot
        acc = 0.0
        pick = last  # rounding guard: u * tot can exceed the float running sum
        for k in range(K):
            acc += lp[k]
            if acc > target:
                pick = k
                break
        z[n] = pick
        counts[pick] += 1
    return total


@njit(cache=True, nogil=True)
def suff_stats(X, z, counts, sums, scatter):  # pragma: no cover - compiled
    """Per-component sums and centred scatter matrices (two passes).

    Parameters
    ----------
    X : ndarray, shape (N, D)
    z : ndarray of int64, shape (N,)
    counts : ndarray of int64, shape (K,)
        Observations per component (as returned by :func:`allocate`).
    sums : ndarray, shape (K, D)
        Output: ``sum_{n: z_n = k} x_n``.
    scatter : ndarray, shape (K, D, D)
        Output: ``sum_{n: z_n = k} (x_n - xbar_k)(x_n - xbar_k)^T`` (zero for empty
        components).
    """
    N, D = X.shape
    K = counts.shape[0]
    sums[:] = 0.0
    scatter[:] = 0.0
    for n in range(N):
        k = z[n]
        for j in range(D):
            sums[k, j] += X[n, j]
    xbar = np.zeros((K, D))
    for k in range(K):
        if counts[k] > 0:
            for j in range(D):
                xbar[k, j] = sums[k, j] / counts[k]
    diff = np.empty(D)
    for n in range(N):
        k = z[n]
        for j in range(D):
            diff[j] = X[n, j] - xbar[k, j]
        for i in range(D):
            for j in range(i + 1):
                scatter[k, i, j] += diff[i] * diff[j]
    for k in range(K):
        for i in range(D):
            for j in range(i):
                scatter[k, j, i] = scatter[k, i, j]


@njit(cache=True, nogil=True)
def _log_dp_allocation(counts, alpha):  # pragma: no cover - compiled
    """log p(z | alpha) of the truncated stick-breaking prior, sticks integrated out.

    ``prod_{k < T-1} alpha Gamma(1 + n_k) Gamma(alpha + m_k) / Gamma(1 + n_k + alpha +
    m_k)`` with ``m_k = sum_{j > k} n_j``; factors with ``n_k = m_k = 0`` equal 1.
    """
    T = counts.shape[0]
    rest = 0.0
    for k in range(T):
        rest += counts[k]
    out = 0.0
    for k in range(T - 1):
        nk = counts[k]
        rest -= nk
        if nk == 0 and rest == 0:
            break
        out += (
            math.log(alpha)
            + math.lgamma(1.0 + nk)
            + math.lgamma(alpha + rest)
            - math.lgamma(1.0 + nk + alpha + rest)
        )
    return out


@njit(cache=True, nogil=True)
def dp_label_swaps(counts, alpha, pairs, log_u, perm):  # pragma: no cover - compiled
    """Metropolis label swaps for the truncated stick-breaking prior.

    Proposes to exchange the labels of two components (their parameters and
    observations move together, so the likelihood and the iid component prior are
    unchanged) and accepts with the ratio of :func:`_log_dp_allocation` (Papaspiliopoulos
    & Roberts 2008). Valid for any proposal pairs chosen independently of the state.

    Parameters
    ----------
    counts : ndarray of int64, shape (T,)
        Updated in place to the accepted labelling.
    alpha : float
        DP concentration.
    pairs : ndarray of int64, shape (M, 2)
        Proposed label pairs.
    log_u : ndarray, shape (M,)
        Log of Uniform(0, 1) draws for the acceptance tests.
    perm : ndarray of int64, shape (T,)
        Output: ``perm[new_label] = old_label``.

    Returns
    -------
    int
        Number of accepted swaps.
    """
    T = counts.shape[0]
    for k in range(T):
        perm[k] = k
    cur = _log_dp_allocation(counts, alpha)
    accepted = 0
    for m in range(pairs.shape[0]):
        a = pairs[m, 0]
        b = pairs[m, 1]
        if a == b or (counts[a] == 0 and counts[b] == 0):
            continue
        ca = counts[a]
        counts[a] = counts[b]
        counts[b] = ca
        new = _log_dp_allocation(counts, alpha)
        if log_u[m] < new - cur:
            cur = new
            pa = perm[a]
            perm[a] = perm[b]
            perm[b] = pa
            accepted += 1
        else:
            counts[b] = counts[a]
            counts[a] = ca
    return accepted
