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

import numba
import numpy as np
from numba import njit, prange

from bayesmix.em._hierarchical import logdet_scaled

__all__ = [
    "allocate",
    "allocate_stats",
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


# ---------------------------------------------------------------------------- fused pass
#: rows per chunk of :func:`allocate_stats`: the chunks (and so the floating-point order
#: of every sum) depend on N only, never on the number of threads
CHUNK_ROWS = 4096
#: rows per block inside a chunk: the Mahalanobis terms of a block are computed with the
#: rows in the innermost loop, which the compiler vectorises
_BLOCK = 64


@njit(cache=True, nogil=True)
def _log_consts(log_w, prec_chol):  # pragma: no cover - compiled
    """``log w_k - D/2 log(2 pi) + sum_i log P_k[i, i]`` per component."""
    K, D = prec_chol.shape[0], prec_chol.shape[1]
    const = np.empty(K)
    for k in range(K):
        s = log_w[k] - 0.5 * D * _LOG_2PI
        for i in range(D):
            s += math.log(prec_chol[k, i, i])
        const[k] = s
    return const


@njit(cache=True, nogil=True)
def _fused_chunk(X, r0, r1, const, means, prec_chol, u, z, cnt, s1, s2):  # pragma: no cover
    """Allocate rows ``r0:r1`` and accumulate their statistics about the component means.

    ``cnt`` (K,), ``s1`` (K, D), ``s2`` (K, D, D; lower triangle) receive, per component,
    the count, the sum of ``d = x - mu_k`` and of ``d d^T`` over the chunk's rows
    allocated to it. The log densities are those of :func:`allocate`, term for term
    (same values, same draws). Returns the chunk's log-likelihood.

    The rows of a block are the innermost loop of the Mahalanobis terms, with a trip
    count the compiler cannot see (``nb``), so it vectorises them (numba runs LLVM's
    loop vectoriser, not its SLP vectoriser: a constant trip count is unrolled to
    scalar code).
    """
    D = X.shape[1]
    K = const.shape[0]
    B = _BLOCK
    xt = np.empty((D, B))
    dk = np.empty((D, B))
    lp = np.empty((K, B))
    t = np.empty(B)
    r = np.empty(B)
    mx = np.empty(B)
    diff = np.empty(D)
    total = 0.0
    for b0 in range(r0, r1, B):
        nb = min(B, r1 - b0)
        for j in range(D):
            for b in range(nb):
                xt[j, b] = X[b0 + b, j]
        for b in range(nb):
            mx[b] = -np.inf
        for k in range(K):
            ck = const[k]
            if ck == -np.inf:
                for b in range(nb):
                    lp[k, b] = -np.inf
                continue
            for j in range(D):
                mj = means[k, j]
                for b in range(nb):
                    dk[j, b] = xt[j, b] - mj
            for b in range(nb):
                r[b] = 0.0
            for i in range(D):
                for b in range(nb):
                    t[b] = 0.0
                j = 0
                while j + 3 <= i:  # four terms per pass over t, added in order j = 0 .. i
                    c0, c1 = prec_chol[k, i, j], prec_chol[k, i, j + 1]
                    c2, c3 = prec_chol[k, i, j + 2], prec_chol[k, i, j + 3]
                    for b in range(nb):
                        t[b] = (
                            t[b]
                            + c0 * dk[j, b]
                            + c1 * dk[j + 1, b]
                            + c2 * dk[j + 2, b]
                            + c3 * dk[j + 3, b]
                        )
                    j += 4
                while j <= i:
                    c = prec_chol[k, i, j]
                    for b in range(nb):
                        t[b] += c * dk[j, b]
                    j += 1
                for b in range(nb):
                    r[b] += t[b] * t[b]
            for b in range(nb):
                v = ck - 0.5 * r[b]
                lp[k, b] = v
                mx[b] = max(mx[b], v)
        for b in range(nb):
            m = mx[b]
            tot = 0.0
            last = 0
            for k in range(K):
                e = math.exp(lp[k, b] - m)
                lp[k, b] = e
                tot += e
                if e > 0.0:
                    last = k
            total += m + math.log(tot)
            n = b0 + b
            target = u[n] * tot
            acc = 0.0
            pick = last  # rounding guard: u * tot can exceed the float running sum
            for k in range(K):
                acc += lp[k, b]
                if acc > target:
                    pick = k
                    break
            z[n] = pick
            cnt[pick] += 1
            for j in range(D):
                d = xt[j, b] - means[pick, j]
                diff[j] = d
                s1[pick, j] += d
            for i in range(D):
                di = diff[i]
                for j in range(i + 1):
                    s2[pick, i, j] += di * diff[j]
    return total


@njit(cache=True, nogil=True)
def _fused_serial(X, const, means, prec_chol, u, z, cnt, s1, s2, ll):  # pragma: no cover
    N = X.shape[0]
    for c in range(cnt.shape[0]):
        r0 = c * CHUNK_ROWS
        r1 = min(N, r0 + CHUNK_ROWS)
        ll[c] = _fused_chunk(X, r0, r1, const, means, prec_chol, u, z, cnt[c], s1[c], s2[c])


@njit(cache=True, nogil=True, parallel=True)
def _fused_parallel(X, const, means, prec_chol, u, z, cnt, s1, s2, ll):  # pragma: no cover
    N = X.shape[0]
    for c in prange(cnt.shape[0]):
        r0 = c * CHUNK_ROWS
        r1 = min(N, r0 + CHUNK_ROWS)
        ll[c] = _fused_chunk(X, r0, r1, const, means, prec_chol, u, z, cnt[c], s1[c], s2[c])


@njit(cache=True, nogil=True, parallel=True)
def _parallel_sum(x):  # pragma: no cover - compiled
    s = 0.0
    for i in prange(x.shape[0]):
        s += x[i]
    return s


def warm_threads():
    """Launch a tiny parallel kernel, which selects numba's threading layer."""
    return _parallel_sum(np.ones(4))


@njit(cache=True, nogil=True)
def _reduce_chunks(means, cnt, s1, s2, ll, counts, sums, scatter):  # pragma: no cover
    """Sum the chunks' statistics in chunk order; shift them from the means to the
    component averages (``scatter = sum d d^T - s s^T / n``, ``s = sum d``)."""
    nc, K, D = s1.shape
    S = np.empty(D)
    total = 0.0
    for c in range(nc):
        total += ll[c]
    for k in range(K):
        n = 0
        for c in range(nc):
            n += cnt[c, k]
        counts[k] = n
        for j in range(D):
            s = 0.0
            for c in range(nc):
                s += s1[c, k, j]
            S[j] = s
            sums[k, j] = s + n * means[k, j]
        for i in range(D):
            for j in range(i + 1):
                if n == 0:
                    scatter[k, i, j] = 0.0
                else:
                    s = 0.0
                    for c in range(nc):
                        s += s2[c, k, i, j]
                    scatter[k, i, j] = s - S[i] * S[j] / n
                scatter[k, j, i] = scatter[k, i, j]
    return total


def allocate_stats(X, log_w, means, prec_chol, u, z, counts, sums, scatter, threads=1):
    """One pass over the data: :func:`allocate` and :func:`suff_stats` fused.

    For each row the K log densities (with the precision factors), the allocation by
    inverse-CDF sampling with ``u`` (the draws of :func:`allocate`), and its
    contribution to the count, sum and scatter of its component, all in one compiled
    loop over chunks of ``CHUNK_ROWS`` rows (in ``threads`` threads). The chunks'
    statistics are summed in chunk order, so the result does not depend on
    ``threads``. The statistics are accumulated about the component means (the
    Mahalanobis differences, computed anyway), then shifted to the averages.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    log_w : ndarray, shape (K,)
        Log weights; ``-inf`` for components that cannot be chosen.
    means : ndarray, shape (K, D)
    prec_chol : ndarray, shape (K, D, D)
        Lower-triangular precision factors (module docstring).
    u : ndarray, shape (N,)
        Uniform(0, 1) draws, one per observation.
    z : ndarray of int64, shape (N,)
        Output: the allocations.
    counts : ndarray of int64, shape (K,)
        Output: observations per component.
    sums : ndarray, shape (K, D)
        Output: ``sum_{n: z_n = k} x_n``.
    scatter : ndarray, shape (K, D, D)
        Output: centred scatter matrices, as :func:`suff_stats` (zero when empty).
    threads : int, default 1
        Numba threads over the chunks (at most ``numba.config.NUMBA_NUM_THREADS``).

    Returns
    -------
    float
        The log-likelihood at the parameters given, as :func:`allocate`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [5.0]])
    >>> z, counts = np.empty(3, np.int64), np.empty(2, np.int64)
    >>> sums, scatter = np.empty((2, 1)), np.empty((2, 1, 1))
    >>> ll = allocate_stats(X, np.log([0.5, 0.5]), np.array([[0.0], [5.0]]),
    ...                     np.ones((2, 1, 1)), np.full(3, 0.5), z, counts, sums, scatter)
    >>> z.tolist(), counts.tolist(), sums[:, 0].round(6).tolist()
    ([0, 0, 1], [2, 1], [0.1, 5.0])
    """
    N, D = X.shape
    K = log_w.shape[0]
    nc = max(1, -(-N // CHUNK_ROWS))
    cnt = np.zeros((nc, K), dtype=np.int64)
    s1 = np.zeros((nc, K, D))
    s2 = np.zeros((nc, K, D, D))
    ll = np.empty(nc)
    const = _log_consts(log_w, prec_chol)
    args = (X, const, means, prec_chol, u, z, cnt, s1, s2, ll)
    threads = min(int(threads), numba.config.NUMBA_NUM_THREADS)
    if threads > 1 and nc > 1:
        before = numba.get_num_threads()
        numba.set_num_threads(threads)  # thread-local: this chain's threads only
        try:
            _fused_parallel(*args)
        finally:
            numba.set_num_threads(before)
    else:
        _fused_serial(*args)
    return _reduce_chunks(means, cnt, s1, s2, ll, counts, sums, scatter)


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
