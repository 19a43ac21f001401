"""numba kernels of the fused EM pass (E-step + sufficient statistics).

The compiled half of the numba backend of the density layer: the Python side (building
the kernels' inputs from precision Cholesky factors, summing the per-chunk accumulators)
is :meth:`bayesmix.core._gaussian.NumbaGaussianDensity.estep`. A leaf module: nothing from
bayesmix is imported here.

One sweep over the data computes, for every row, the component log densities (through
the precision Cholesky factors), the log-sum-exp normaliser and the responsibilities,
and accumulates the sufficient statistics ``N_k``, ``sum_n r_nk x_n`` and the second
moments (``sum_n r_nk x_n x_n^T`` packed upper triangle for full covariance,
``sum_n r_nk x_n^2`` for diag/spherical) together, so no (N, K) array is ever formed.
Every row's contributions are multiplied by its sample weight ``w[n]`` (ones when the
fit is unweighted: multiplying by 1.0 is exact).
Rows are split into fixed chunks processed in parallel (``prange``), each with its own
accumulators, which are then summed in chunk order: results do not depend on the
number of threads. The numpy backend, :meth:`bayesmix.core._gaussian.GaussianDensity.estep`,
is the reference this is tested against.

Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np

_CHUNK = 1024  # rows per parallel work item


@numba.njit(inline="always", cache=True, nogil=True)
def _normalise(const, ss, lp):  # pragma: no cover - compiled
    """Log-sum-exp of ``const - ss / 2``; ``lp`` receives the unnormalised weights.

    Returns the log normaliser, the arg-max component and 1 / (sum of ``lp``), so that
    ``lp[k] * inv`` is the responsibility of component k.
    """
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


@numba.njit(parallel=True, cache=True, nogil=True)
def _pass_full(X, P_all, b, const, sxx_mode, labels, w):  # pragma: no cover - compiled
    N, D = X.shape
    KD = P_all.shape[1]
    K = KD // D
    npk = D * (D + 1) // 2
    n_chunks = (N + _CHUNK - 1) // _CHUNK
    acc_ll = np.zeros(n_chunks)
    acc_n = np.zeros((n_chunks, K))
    acc_x = np.zeros((n_chunks, K, D))
    want_sxx = sxx_mode == 1  # per-component second moments (full)
    want_total = sxx_mode == 2  # their sum over components, sum_n x x^T (tied)
    acc_xx = np.zeros((n_chunks, K if want_sxx else 1, npk))
    for c in numba.prange(n_chunks):
        # thread-local work arrays and accumulators, written back once per chunk
        y = np.empty(KD)
        lp = np.empty(K)
        ss = np.empty(K)
        xx = np.empty(npk)
        an = np.zeros(K)
        ax = np.zeros((K, D))
        axx = np.zeros((K if want_sxx else 1, npk))
        ll = 0.0
        stop = min(N, (c + 1) * _CHUNK)
        for n in range(c * _CHUNK, stop):
            for q in range(KD):
                y[q] = -b[q]
            for i in range(D):
                xi = X[n, i]
                for q in range(KD):
                    y[q] += xi * P_all[i, q]
            # columns are ordered (feature j, component k): the inner loop over k is
            # contiguous and vectorises; each sum still runs over j in order
            for k in range(K):
                ss[k] = 0.0
            for j in range(D):
                for k in range(K):
                    t = y[j * K + k]
                    ss[k] += t * t
            lse, am, inv = _normalise(const, ss, lp)
            wn = w[n]
            ll += wn * lse
            labels[n] = am
            inv *= wn
            if want_sxx or want_total:
                p = 0
                for i in range(D):
                    xi = X[n, i]
                    for j in range(i, D):
                        xx[p] = xi * X[n, j]
                        p += 1
                if want_total:
                    for p in range(npk):
                        axx[0, p] += wn * xx[p]
            for k in range(K):
                r = lp[k] * inv
                an[k] += r
                for i in range(D):
                    ax[k, i] += r * X[n, i]
                if want_sxx:
                    for p in range(npk):
                        axx[k, p] += r * xx[p]
        acc_ll[c] = ll
        acc_n[c] = an
        acc_x[c] = ax
        acc_xx[c] = axx
    return acc_ll, acc_n, acc_x, acc_xx


@numba.njit(parallel=True, cache=True, nogil=True)
def _pass_diag(X, means_t, prec_t, const, labels, w):  # pragma: no cover - compiled
    N, D = X.shape
    K = means_t.shape[1]
    n_chunks = (N + _CHUNK - 1) // _CHUNK
    acc_ll = np.zeros(n_chunks)
    acc_n = np.zeros((n_chunks, K))
    acc_x = np.zeros((n_chunks, K, D))
    acc_xx = np.zeros((n_chunks, K, D))
    for c in numba.prange(n_chunks):
        lp = np.empty(K)
        ss = np.empty(K)
        an = np.zeros(K)
        ax = np.zeros((K, D))
        axx = np.zeros((K, D))
        ll = 0.0
        stop = min(N, (c + 1) * _CHUNK)
        for n in range(c * _CHUNK, stop):
            for k in range(K):
                ss[k] = 0.0
            for j in range(D):
                xj = X[n, j]
                for k in range(K):  # means_t, prec_t are (D, K): contiguous over k
                    t = (xj - means_t[j, k]) * prec_t[j, k]
                    ss[k] += t * t
            lse, am, inv = _normalise(const, ss, lp)
            wn = w[n]
            ll += wn * lse
            labels[n] = am
            inv *= wn
            for k in range(K):
                r = lp[k] * inv
                an[k] += r
                for j in range(D):
                    xj = X[n, j]
                    rx = r * xj
                    ax[k, j] += rx
                    axx[k, j] += rx * xj
        acc_ll[c] = ll
        acc_n[c] = an
        acc_x[c] = ax
        acc_xx[c] = axx
    return acc_ll, acc_n, acc_x, acc_xx
