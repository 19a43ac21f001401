"""numba kernel of the EM pass on data with missing entries (NaN), by missingness pattern.

The compiled half of :func:`bayesmix.core._missing.expected_stats` (the numpy reference
is :func:`bayesmix.core._missing.expected_stats_numpy`). A leaf module: nothing from
bayesmix is imported here.

Rows are sorted by missingness pattern; a *work item* is a run of at most 1024 rows of
one pattern. For every work item and component k the kernel factorises the observed
block once, ``Sigma_oo = L L^T``, and forms ``W = L^{-1} Sigma_om`` and the conditional
covariance of the missing block ``C = Sigma_mm - W^T W``. For each row, ``z = L^{-1}
(x_o - mu_o)`` gives the observed-data log density (``||z||^2`` and ``sum log L_ii``) and
the conditional mean of the missing coordinates ``mu_m + W^T z``; the responsibilities
weight the expected sufficient statistics ``E[x]`` and ``E[x x^T] = xhat xhat^T + C``
(Ghahramani & Jordan 1994), the ``C`` term added once per work item from the sum of the
responsibilities. Work items run in parallel (``prange``), each with its own
accumulators, summed by the caller in item order: results do not depend on the number of
threads.
"""

from __future__ import annotations

import numba
import numpy as np

_LOG_2PI = 1.8378770664093453  # log(2 pi), as bayesmix.core._constants.LOG_2PI


@numba.njit(inline="always", cache=True, nogil=True)
def _normalise(const, ss, lp):  # pragma: no cover - compiled
    """Log-sum-exp of ``const - ss / 2`` (see ``_estep_kernels._normalise``)."""
    mx = -np.inf
    am = 0
    for k in range(lp.shape[0]):
        v = const[k] - 0.5 * ss[k]
        lp[k] = v
        if v > mx:
            mx = v
            am = k
    tot = 0.0
    for k in range(lp.shape[0]):
        e = np.exp(lp[k] - mx)
        lp[k] = e
        tot += e
    return mx + np.log(tot), am, 1.0 / tot


@numba.njit(inline="always", cache=True, nogil=True)
def _factor(cov, idx, do, dm, L, Wm, C):  # pragma: no cover - compiled
    """Cholesky of the observed block, ``W = L^{-1} Sigma_om``, ``C``; returns sum log L_ii
    (NaN when the observed block is not positive definite)."""
    logdet = 0.0
    for j in range(do):
        s = cov[idx[j], idx[j]]
        for q in range(j):
            s -= L[j, q] * L[j, q]
        if not s > 0.0:
            return np.nan
        d = np.sqrt(s)
        L[j, j] = d
        logdet += np.log(d)
        for i in range(j + 1, do):
            s = cov[idx[i], idx[j]]
            for q in range(j):
                s -= L[i, q] * L[j, q]
            L[i, j] = s / d
    for b in range(dm):
        mb = idx[do + b]
        for a in range(do):
            s = cov[idx[a], mb]
            for q in range(a):
                s -= L[a, q] * Wm[q, b]
            Wm[a, b] = s / L[a, a]
    for b1 in range(dm):
        for b2 in range(b1, dm):
            s = cov[idx[do + b1], idx[do + b2]]
            for a in range(do):
                s -= Wm[a, b1] * Wm[a, b2]
            C[b1, b2] = s
            C[b2, b1] = s
    return logdet


@numba.njit(inline="always", cache=True, nogil=True)
def _pack(i, j, D):  # pragma: no cover - compiled
    """Index of (i, j), i <= j, in the row-major packed upper triangle."""
    return i * D - (i * (i - 1)) // 2 + (j - i)


@numba.njit(cache=True, nogil=True)
def _item_factors(cov, idx, do, dm, Lt, invd, Wt, C):  # pragma: no cover - compiled
    """Per component: the observed block's Cholesky factor, ``W`` and ``C`` of one
    pattern, stored with the component index last (``Lt[a, q, k]``, ``Wt[a, b, k]``,
    ``C[b1, b2, k]``) so that the row loops run contiguously over components. Returns
    the (K,) sums of log L_ii (NaN where a block is not positive definite)."""
    K = cov.shape[0]
    D = cov.shape[1]
    L = np.zeros((D, D))
    Wm = np.zeros((D, D))
    Ck = np.zeros((D, D))
    logdet = np.empty(K)
    for k in range(K):
        logdet[k] = _factor(cov[k], idx, do, dm, L, Wm, Ck)
        for a in range(do):
            invd[a, k] = 1.0 / L[a, a]
            for q in range(a):
                Lt[a, q, k] = L[a, q]
            for b in range(dm):
                Wt[a, b, k] = Wm[a, b]
        for b1 in range(dm):
            for b2 in range(dm):
                C[b1, b2, k] = Ck[b1, b2]
    return logdet


@numba.njit(parallel=True, cache=True, nogil=True)
def pass_missing(
    X, w, items, pat_idx, pat_nobs, means, cov, logw, noise_const, diag_only, labels
):  # pragma: no cover - compiled
    """Expected sufficient statistics of rows sorted by pattern (see the module docstring).

    ``items`` (W, 3): pattern, first row, end row; ``pat_idx`` (P, D): observed feature
    indices then missing ones; ``pat_nobs`` (P,); ``logw`` (K,) log weights of the
    Gaussian components; ``noise_const`` (P,) the noise component's log weight plus its
    log density on the pattern's observed coordinates, or an empty array without noise.
    Returns per-item accumulators ``ll`` (W,), ``nk`` (W, Kt), ``sx`` (W, K, D), ``sxx``
    (W, K, D) diagonals when ``diag_only`` else (W, K, D (D + 1) / 2) packed upper
    triangles, and ``flag`` (W,) 1 where an observed block was not positive definite.

    Within a work item the features are permuted (observed first, then missing) and
    every per-row loop runs over the components innermost (contiguous, vectorised); the
    accumulators are permuted back once per item.
    """
    D = X.shape[1]
    K = means.shape[0]
    noise = noise_const.shape[0] > 0
    Kt = K + 1 if noise else K
    npk = D if diag_only else D * (D + 1) // 2
    nW = items.shape[0]
    acc_ll = np.zeros(nW)
    acc_n = np.zeros((nW, Kt))
    acc_x = np.zeros((nW, K, D))
    acc_xx = np.zeros((nW, K, npk))
    flag = np.zeros(nW, dtype=np.int64)
    for it in numba.prange(nW):
        p = items[it, 0]
        do = pat_nobs[p]
        dm = D - do
        idx = pat_idx[p]
        Lt = np.zeros((D, D, K))
        invd = np.zeros((D, K))
        Wt = np.zeros((D, D, K))
        C = np.zeros((D, D, K))
        logdet = _item_factors(cov, idx, do, dm, Lt, invd, Wt, C)
        const = np.empty(Kt)
        for k in range(K):
            if np.isnan(logdet[k]):
                flag[it] = 1
            const[k] = logw[k] - 0.5 * do * _LOG_2PI - logdet[k]
        if noise:
            const[K] = noise_const[p]
        mp = np.empty((D, K))  # means in the permuted order
        for a in range(D):
            for k in range(K):
                mp[a, k] = means[k, idx[a]]
        xo = np.empty(D)
        z = np.empty((D, K))
        xm = np.empty((D, K))
        t = np.empty(K)
        r = np.empty(K)
        lp = np.empty(Kt)
        ss = np.zeros(Kt)
        an = np.zeros(Kt)
        ax = np.zeros((D, K))
        axx = np.zeros((npk, K))
        rs = np.zeros(K)
        ll = 0.0
        for n in range(items[it, 1], items[it, 2]):
            for a in range(do):
                xo[a] = X[n, idx[a]]
            for k in range(K):
                ss[k] = 0.0
            for a in range(do):  # z = L^{-1} (x_o - mu_o), all components at once
                for k in range(K):
                    t[k] = xo[a] - mp[a, k]
                for q in range(a):
                    for k in range(K):
                        t[k] -= Lt[a, q, k] * z[q, k]
                for k in range(K):
                    v = t[k] * invd[a, k]
                    z[a, k] = v
                    ss[k] += v * v
            lse, am, inv = _normalise(const, ss, lp)
            wn = w[n]
            ll += wn * lse
            labels[n] = am
            inv *= wn
            if noise:
                an[K] += lp[K] * inv
            for k in range(K):
                r[k] = lp[k] * inv
                an[k] += r[k]
                rs[k] += r[k]
            for b in range(dm):  # conditional means of the missing block
                for k in range(K):
                    xm[b, k] = mp[do + b, k]
                for a in range(do):
                    for k in range(K):
                        xm[b, k] += Wt[a, b, k] * z[a, k]
            for a in range(do):
                for k in range(K):
                    ax[a, k] += r[k] * xo[a]
            for b in range(dm):
                for k in range(K):
                    ax[do + b, k] += r[k] * xm[b, k]
            if diag_only:
                for a in range(do):
                    v = xo[a] * xo[a]
                    for k in range(K):
                        axx[a, k] += r[k] * v
                for b in range(dm):
                    for k in range(K):
                        axx[do + b, k] += r[k] * xm[b, k] * xm[b, k]
                continue
            q = 0
            for i in range(D):  # packed upper triangle in the permuted order
                if i < do:
                    ri = xo[i]
                    for j in range(i, do):
                        v = ri * xo[j]
                        for k in range(K):
                            axx[q, k] += r[k] * v
                        q += 1
                    for j in range(dm):
                        for k in range(K):
                            axx[q, k] += r[k] * ri * xm[j, k]
                        q += 1
                else:
                    b = i - do
                    for j in range(b, dm):
                        for k in range(K):
                            axx[q, k] += r[k] * xm[b, k] * xm[j, k]
                        q += 1
        # the conditional covariance of the missing block, then back to feature order
        for b1 in range(dm):
            if diag_only:
                for k in range(K):
                    axx[do + b1, k] += rs[k] * C[b1, b1, k]
                continue
            for b2 in range(b1, dm):
                pq = _pack(do + b1, do + b2, D)
                for k in range(K):
                    axx[pq, k] += rs[k] * C[b1, b2, k]
        for i in range(D):
            oi = idx[i]
            for k in range(K):
                acc_x[it, k, oi] = ax[i, k]
            if diag_only:
                for k in range(K):
                    acc_xx[it, k, oi] = axx[i, k]
                continue
            for j in range(i, D):
                oj = idx[j]
                po = _pack(oi, oj, D) if oi <= oj else _pack(oj, oi, D)
                pq = _pack(i, j, D)
                for k in range(K):
                    acc_xx[it, k, po] = axx[pq, k]
        acc_ll[it] = ll
        acc_n[it] = an
    return acc_ll, acc_n, acc_x, acc_xx, flag
