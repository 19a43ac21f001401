"""Numba kernels of the conjugate Gibbs sampler (:mod:`bayesmix.mcmc._gibbs`).

The per-observation work of one sweep: the allocation step ``z | weights, means,
covariances`` (:func:`allocate`) and the per-component sufficient statistics
(:func:`suff_stats`); the collapsed allocation sweep (:func:`collapsed_allocate`) and
the split-merge moves (:func:`split_merge_moves`), both on cached Student-t posterior
predictives (:func:`_set_pred`, :func:`_log_pred`, inlined: a view-passing call costs
more than the arithmetic at D = 2); plus the label-swap moves of the truncated
Dirichlet process (:func:`dp_label_swaps`), which need ``lgamma`` in a loop.

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

from bayesmix.em._hierarchical import logdet_scaled

__all__ = [
    "allocate",
    "dp_label_swaps",
    "log_marginal",
    "niw_draws",
    "prior_constant",
    "suff_stats",
]

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_PI = math.log(math.pi)


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


# ---------------------------------------------------------------------------- split-merge
@njit(cache=True, nogil=True)
def prior_constant(ct, nu0, Psi0, psi):  # pragma: no cover - compiled
    """The data-free part of :func:`log_marginal` (computed once per model)."""
    D = Psi0.shape[0]
    a0 = 0.5 * nu0
    if ct == 0:
        out = 0.5 * nu0 * logdet_scaled(Psi0, 1.0, np.empty((D, D)))
        for d in range(D):
            out -= math.lgamma(0.5 * (nu0 - d))
        return out
    if ct == 2:
        out = 0.0
        for d in range(D):
            out += a0 * math.log(0.5 * psi[d]) - math.lgamma(a0)
        return out
    return a0 * math.log(0.5 * psi[0]) - math.lgamma(a0)


@njit(cache=True, nogil=True)
def _lg_term(ct, n, nu0, D):  # pragma: no cover - compiled
    """The lgamma part of :func:`_log_marg` for a cluster of ``n`` (a function of n only)."""
    if ct == 0:
        out = 0.0
        for d in range(D):
            out += math.lgamma(0.5 * (nu0 + n - d))
        return out
    if ct == 2:
        return D * math.lgamma(0.5 * nu0 + 0.5 * n)
    return math.lgamma(0.5 * nu0 + 0.5 * n * D)


@njit(cache=True, nogil=True)
def _log_marg(n, s, xx, x, w, ct, k0, nu0, Psi0, psi, const0, work):  # pragma: no cover
    """:func:`log_marginal` of the statistics (n + w, s + w x, xx + w x x^T), w in {0, 1}."""
    D = s.shape[0]
    n = n + w
    kn = k0 + n
    out = const0 + 0.5 * D * (math.log(k0) - math.log(kn)) + _lg_term(ct, n, nu0, D)
    if ct == 0:
        M = work[0]
        for r in range(D):
            sr = s[r] + w * x[r]
            for c in range(r + 1):
                sc = s[c] + w * x[c]
                M[r, c] = Psi0[r, c] + xx[r, c] + w * x[r] * x[c] - sr * sc / kn
                M[c, r] = M[r, c]
        nun = nu0 + n
        return out - 0.5 * n * D * math.log(math.pi) - 0.5 * nun * logdet_scaled(M, 1.0, work[1])
    out -= 0.5 * n * D * _LOG_2PI
    a0 = 0.5 * nu0
    if ct == 2:
        an = a0 + 0.5 * n
        for d in range(D):
            sd = s[d] + w * x[d]
            bn = 0.5 * psi[d] + 0.5 * (xx[d, d] + w * x[d] * x[d] - sd * sd / kn)
            out -= an * math.log(bn)
        return out
    an = a0 + 0.5 * n * D
    bn = 0.5 * psi[0]
    for d in range(D):
        sd = s[d] + w * x[d]
        bn += 0.5 * (xx[d, d] + w * x[d] * x[d] - sd * sd / kn)
    return out - an * math.log(bn)


@njit(cache=True, nogil=True)
def log_marginal(n, s, xx, ct, k0, nu0, Psi0, psi, work):  # pragma: no cover - compiled
    """Log marginal likelihood of a cluster under the conjugate prior (prior mean 0).

    Parameters
    ----------
    n : int
        Cluster size.
    s : ndarray, shape (D,)
        Sum of the cluster's (centred) observations.
    xx : ndarray, shape (D, D)
        Sum of their outer products.
    ct : int
        0 full (normal-inverse-Wishart), 2 diag, 3 spherical (normal-inverse-gamma).
    k0, nu0 : float
    Psi0 : ndarray, shape (D, D)
    psi : ndarray, shape (D,)
        Inverse-gamma scales (diag), ``psi[0]`` for spherical.
    work : ndarray, shape (2, D, D)
        Scratch space.

    Returns
    -------
    float
    """
    const0 = prior_constant(ct, nu0, Psi0, psi)
    return _log_marg(n, s, xx, s, 0, ct, k0, nu0, Psi0, psi, const0, work)


@njit(cache=True, nogil=True)
def _log_mfm_partition(counts, gamma, log_k_prior, dynamic):  # pragma: no cover - compiled
    """log p(C) of a mixture of finite mixtures' partition, K summed out (Miller &
    Harrison 2018 with gamma_K = gamma / K when ``dynamic``)."""
    t = 0
    N = 0
    for k in range(counts.shape[0]):
        if counts[k] > 0:
            t += 1
            N += counts[k]
    mx = -np.inf
    terms = np.full(log_k_prior.shape[0], -np.inf)
    static = 0.0  # the clusters' sum, the same for every K when gamma is static
    if not dynamic:
        for k in range(counts.shape[0]):
            if counts[k] > 0:
                static += math.lgamma(counts[k] + gamma) - math.lgamma(gamma)
    for K in range(max(t, 1), log_k_prior.shape[0] + 1):
        if log_k_prior[K - 1] == -np.inf:
            continue
        g = gamma / K if dynamic else gamma
        v = log_k_prior[K - 1] + math.lgamma(K + 1.0) - math.lgamma(K - t + 1.0)
        v += math.lgamma(K * g) - math.lgamma(N + K * g) + static
        if dynamic:
            for k in range(counts.shape[0]):
                if counts[k] > 0:
                    v += math.lgamma(counts[k] + g) - math.lgamma(g)
        terms[K - 1] = v
        mx = max(mx, v)
    if mx == -np.inf:
        return mx
    tot = 0.0
    for v in terms:
        tot += math.exp(v - mx)
    return mx + math.log(tot)


@njit(cache=True, nogil=True)
def _log_prior_counts(counts, prior):  # pragma: no cover - compiled
    """Log prior of allocations up to a constant. ``prior = (kind, param, log_k_prior,
    dynamic)``: kind 0 labelled Dirichlet-multinomial with parameter ``param`` (finite
    mixture), 1 labelled truncated DP (concentration ``param``), 2 MFM partition
    (:func:`_log_mfm_partition`, gamma ``param``)."""
    kind, param, log_k_prior, dynamic = prior
    if kind == 1:
        return _log_dp_allocation(counts, param)
    if kind == 2:
        return _log_mfm_partition(counts, param, log_k_prior, dynamic)
    out = 0.0
    for k in range(counts.shape[0]):
        if counts[k] > 0:
            out += math.lgamma(counts[k] + param) - math.lgamma(param)
    return out


@njit(cache=True, nogil=True)
def niw_draws(counts, sums, scatter, k0, nu0, Psi0, z, chisq, means, cov, chol, prec):
    """Normal-inverse-Wishart draws of every component given its statistics (prior mean 0).

    Bartlett's decomposition of :math:`\\Sigma_k^{-1} \\sim \\mathrm{Wishart}(\\nu_n,
    \\Psi_n^{-1})` with :math:`\\Psi_n = \\Psi_0 + S_k + \\frac{\\kappa_0 n}{\\kappa_0 + n}
    \\bar x_k \\bar x_k^T`, :math:`\\nu_n = \\nu_0 + n`, then :math:`\\mu_k \\sim
    N(n \\bar x_k / \\kappa_n, \\Sigma_k / \\kappa_n)`. The random numbers come from the
    caller (numpy's Generator).

    Parameters
    ----------
    counts : ndarray of int64, shape (K,)
    sums : ndarray, shape (K, D)
    scatter : ndarray, shape (K, D, D)
        Centred scatter matrices.
    k0, nu0 : float
    Psi0 : ndarray, shape (D, D)
    z : ndarray, shape (K, D + D (D - 1) / 2)
        Standard normals: the mean's (first D) and Bartlett's below-diagonal entries.
    chisq : ndarray, shape (K, D)
        ``chisq[k, d] ~ chi2(nu0 + counts[k] - d)``.
    means, cov, chol, prec : ndarray, shapes (K, D), (K, D, D) x 3
        Outputs: means, covariances, their lower Cholesky factors and the factors'
        inverses (precision factors for :func:`allocate`).
    """  # pragma: no cover - compiled
    K, D = sums.shape
    U = np.empty((D, D))
    A = np.zeros((D, D))
    Ainv = np.zeros((D, D))
    T = np.empty((D, D))
    M = np.empty((D, D))
    for k in range(K):
        n = counts[k]
        kn = k0 + n
        shrink = k0 / (kn * n) if n > 0 else 0.0  # k0 n / kn * xbar xbar^T = shrink * s s^T
        for r in range(D):
            for c in range(D):
                M[r, c] = Psi0[r, c] + scatter[k, r, c] + shrink * sums[k, r] * sums[k, c]
        _chol_into(M, U)
        p = D
        for r in range(D):
            A[r, r] = math.sqrt(chisq[k, r])
            for c in range(r):
                A[r, c] = z[k, p]
                p += 1
        _tri_inv_into(A, Ainv)
        # Sigma = T T^T with T = U A^{-T}
        for r in range(D):
            for c in range(D):
                t = 0.0
                for q in range(min(r, c) + 1):
                    t += U[r, q] * Ainv[c, q]  # (A^{-T})[q, c] = (A^{-1})[c, q]
                T[r, c] = t
        for r in range(D):
            for c in range(r + 1):
                t = 0.0
                for q in range(D):
                    t += T[r, q] * T[c, q]
                cov[k, r, c] = t
                cov[k, c, r] = t
        _chol_into(cov[k], chol[k])
        _tri_inv_into(chol[k], prec[k])
        sd = 1.0 / math.sqrt(kn)
        for r in range(D):
            t = sums[k, r] / kn
            for c in range(r + 1):
                t += chol[k, r, c] * z[k, c] * sd
            means[k, r] = t


@njit(cache=True, nogil=True)
def _chol_into(M, L):  # pragma: no cover - compiled
    D = M.shape[0]
    for j in range(D):
        s = M[j, j]
        for q in range(j):
            s -= L[j, q] * L[j, q]
        d = math.sqrt(s) if s > 0.0 else 1e-300
        L[j, j] = d
        for r in range(j + 1, D):
            t = M[r, j]
            for q in range(j):
                t -= L[r, q] * L[j, q]
            L[r, j] = t / d
        for c in range(j + 1, D):
            L[j, c] = 0.0


@njit(cache=True, nogil=True)
def _tri_inv_into(L, out):  # pragma: no cover - compiled
    """Inverse of a lower-triangular matrix (forward substitution)."""
    D = L.shape[0]
    for c in range(D):
        for r in range(D):
            if r < c:
                out[r, c] = 0.0
                continue
            t = 1.0 if r == c else 0.0
            for q in range(c, r):
                t -= L[r, q] * out[q, c]
            out[r, c] = t / L[r, r]
