"""Numba kernels over a batch of S parameter draws of a full-covariance mixture.

:func:`draws_eval`: every draw's pointwise log mixture density (S, N) and, if asked,
responsibilities ((S, K, N) or (S, N, K)), in one threaded pass over row blocks (behind
``NumbaGaussianDensity.mixture_draws``: LOO, WAIC, relabel's Stephens cost, the start
draw's total log-likelihood). :func:`membership_summary`: one fused pass for
:func:`bayesmix.membership`, the posterior mean and the equal-tailed interval of every
responsibility ``p(z_n = k | x_n, theta_s)`` over the S draws, with no (S, K, N) array.

The arithmetic is the Gibbs sweep's fused kernel's, term for term
(:func:`bayesmix.mcmc._gibbs_kernels._fused_chunk`: the same constants, the same order
of every sum), so the log densities equal the sampler's own.

Rows are taken in blocks of :data:`BLOCK` (one parallel task each). For a block, every
draw's responsibilities are computed with the rows as the innermost, vectorised loop
(the layout of the Gibbs sweep's fused kernel), added to a running sum, and pushed into
per-(component, row) sorted buffers of the ``m`` smallest and ``m`` largest values seen
(the streaming tails of :mod:`bayesmix.core._quantile_kernels`). The interval is then
interpolated between the two order statistics numpy's default ("linear") quantile uses,
with numpy's own formula, so it equals ``numpy.quantile`` of the same values exactly.

Before, membership called the PyMC Op's kernel once per (draw, chunk of ~300 rows): at
n = 1e5, S = 1000, D = 10, K = 8 that was 3e5 Python calls and ~20 s; the memory per
task here is ``S``-free apart from the buffers (K x 2m per row).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["BLOCK", "draws_eval", "membership_summary"]

# numba at the top: this module is imported lazily (by bayesmix.membership), and
# module-level kernels are what numba caches on disk

#: rows per parallel task (the innermost, vectorised loop)
BLOCK = 64
_LOG_2PI = math.log(2.0 * math.pi)


_njit = numba.njit(cache=True, nogil=True)


@_njit
def block_resp(xt, nb, const, means, P, dk, t, r, lp, mx):  # pragma: no cover
    """Responsibilities (K, nb) of one draw into ``lp``, log densities into ``mx``."""
    K, D = means.shape
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
            while j + 3 <= i:  # four terms per pass over t (the Gibbs kernel's order)
                c0, c1 = P[k, i, j], P[k, i, j + 1]
                c2, c3 = P[k, i, j + 2], P[k, i, j + 3]
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
                c = P[k, i, j]
                for b in range(nb):
                    t[b] += c * dk[j, b]
                j += 1
            for b in range(nb):
                r[b] += t[b] * t[b]
        for b in range(nb):
            v = ck - 0.5 * r[b]
            lp[k, b] = v
            if v > mx[b]:
                mx[b] = v
    for b in range(nb):
        m = mx[b]
        if m == -np.inf:  # no component has density: responsibilities 0 (as the Op)
            for k in range(K):
                lp[k, b] = 0.0
            continue
        tot = 0.0
        for k in range(K):
            e = math.exp(lp[k, b] - m)
            lp[k, b] = e
            tot += e
        mx[b] = m + math.log(tot)
        inv = 1.0 / tot
        for k in range(K):
            lp[k, b] *= inv


@_njit
def log_consts(logw, P):  # pragma: no cover - compiled
    """``log w_k - D/2 log(2 pi) + sum_i log P_k[i, i]`` per (draw, component)."""
    S, K, D = P.shape[0], P.shape[1], P.shape[2]
    out = np.empty((S, K))
    for s in range(S):
        for k in range(K):
            c = logw[s, k] - 0.5 * D * _LOG_2PI
            for i in range(D):
                c += math.log(P[s, k, i, i])
            out[s, k] = c
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _eval(X, consts, means, P, layout):  # pragma: no cover - compiled
    """layout 0: log densities only; 1: responsibilities (S, K, N); 2: (S, N, K)."""
    N, D = X.shape
    S, K = consts.shape
    B = BLOCK
    ll = np.empty((S, N))
    resp = np.empty((S, K, N) if layout == 1 else ((S, N, K) if layout == 2 else (1, 1, 1)))
    for blk in numba.prange((N + B - 1) // B):
        b0 = blk * B
        nb = min(B, N - b0)
        xt = np.empty((D, B))
        dk = np.empty((D, B))
        t = np.empty(B)
        r = np.empty(B)
        lp = np.empty((K, B))
        mx = np.empty(B)
        for j in range(D):
            for b in range(nb):
                xt[j, b] = X[b0 + b, j]
        for s in range(S):
            block_resp(xt, nb, consts[s], means[s], P[s], dk, t, r, lp, mx)
            for b in range(nb):
                ll[s, b0 + b] = mx[b]
            if layout == 1:
                for k in range(K):
                    for b in range(nb):
                        resp[s, k, b0 + b] = lp[k, b]
            elif layout == 2:
                for b in range(nb):
                    for k in range(K):
                        resp[s, b0 + b, k] = lp[k, b]
    return ll, resp


@_njit
def push(buf, v, m, ascending):  # pragma: no cover - compiled
    """Insert ``v`` into a sorted buffer of size m, dropping its worst value."""
    i = m - 1
    if ascending:
        while i > 0 and buf[i - 1] > v:
            buf[i] = buf[i - 1]
            i -= 1
    else:
        while i > 0 and buf[i - 1] < v:
            buf[i] = buf[i - 1]
            i -= 1
    buf[i] = v


@_njit
def lerp(a, b, t):  # pragma: no cover - numpy's _lerp, term for term
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


@_njit
def block_summary(X, b0, nb, consts, means, P, m, qk, qt, qlow, mean, q_out, bufs):
    S, K, D = means.shape
    xt, dk, t, r, lp, mx, lo, hi, first, lw, hw = bufs
    for j in range(D):
        for b in range(nb):
            xt[j, b] = X[b0 + b, j]
    for k in range(K):
        for b in range(nb):
            mean[b0 + b, k] = 0.0
    for s in range(m):  # the buffers start from the first m values, sorted
        block_resp(xt, nb, consts[s], means[s], P[s], dk, t, r, lp, mx)
        for k in range(K):
            for b in range(nb):
                mean[b0 + b, k] += lp[k, b]
                first[k, b, s] = lp[k, b]
    for k in range(K):
        for b in range(nb):
            srt = np.sort(first[k, b])
            for i in range(m):
                lo[k, b, i] = srt[i]
                hi[k, b, i] = srt[m - 1 - i]
            lw[k, b] = lo[k, b, m - 1]
            hw[k, b] = hi[k, b, m - 1]
    for s in range(m, S):
        block_resp(xt, nb, consts[s], means[s], P[s], dk, t, r, lp, mx)
        for k in range(K):
            for b in range(nb):
                v = lp[k, b]
                mean[b0 + b, k] += v
                if v < lw[k, b]:  # rare after the first draws: thresholds contiguous
                    push(lo[k, b], v, m, True)
                    lw[k, b] = lo[k, b, m - 1]
                if v > hw[k, b]:
                    push(hi[k, b], v, m, False)
                    hw[k, b] = hi[k, b, m - 1]
    for k in range(K):
        for b in range(nb):
            mean[b0 + b, k] /= S
            for iq in range(qk.shape[0]):
                k0, k1 = qk[iq, 0], qk[iq, 1]
                if qlow[iq]:
                    x0, x1 = lo[k, b, k0], lo[k, b, k1]
                else:
                    x0, x1 = hi[k, b, S - 1 - k0], hi[k, b, S - 1 - k1]
                q_out[iq, b0 + b, k] = lerp(x0, x1, qt[iq])


@numba.njit(cache=True, nogil=True, parallel=True)
def summary(X, consts, means, P, m, qk, qt, qlow):  # pragma: no cover - compiled
    N, D = X.shape
    K = consts.shape[1]
    B = BLOCK
    mean = np.empty((N, K))
    q_out = np.empty((qk.shape[0], N, K))
    nblk = (N + B - 1) // B
    for blk in numba.prange(nblk):
        b0 = blk * B
        nb = min(B, N - b0)
        bufs = (
            np.empty((D, B)),
            np.empty((D, B)),
            np.empty(B),
            np.empty(B),
            np.empty((K, B)),
            np.empty(B),
            np.empty((K, B, m)),
            np.empty((K, B, m)),
            np.empty((K, B, m)),
            np.empty((K, B)),
            np.empty((K, B)),
        )
        block_summary(X, b0, nb, consts, means, P, m, qk, qt, qlow, mean, q_out, bufs)
    return mean, q_out


def _order_stats(S, q):
    """numpy 'linear' quantile bookkeeping: (k, k1) per q, weights, side, buffer size."""
    q = np.asarray(q, dtype=float)
    h = (S - 1) * q
    k = np.floor(h).astype(np.int64)
    k1 = np.minimum(k + 1, S - 1)
    low = q <= 0.5
    m = int(max([*(k1[low] + 1), *(S - k[~low]), 1]))
    return np.stack([k, k1], axis=1), h - k, low, m


def membership_summary(X, weights, means, prec_chol_lower, q):
    """Posterior mean (N, K) and quantiles (len(q), N, K) of the responsibilities.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    weights : ndarray, shape (S, K)
        One row per draw (zeros allowed: such a component has responsibility 0).
    means : ndarray, shape (S, K, D)
    prec_chol_lower : ndarray, shape (S, K, D, D)
        Lower-triangular factors ``L`` with ``L^T L`` the precision (the numba kernels'
        layout, :func:`bayesmix.core._gaussian.kernel_layout`).
    q : sequence of float
        Quantile levels; each must need at most :data:`TAIL_MAX` order statistics from
        its tail (``None`` is returned otherwise, and the caller uses numpy).

    Returns
    -------
    (mean, quantiles) or None

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [6.0]])
    >>> w = np.full((40, 2), 0.5); mu = np.zeros((40, 2, 1)); mu[:, 1, 0] = 6.0
    >>> mean, qs = membership_summary(X, w, mu, np.ones((40, 2, 1, 1)), [0.03, 0.97])
    >>> mean.argmax(axis=1)
    array([0, 1])
    """
    from bayesmix.core._quantile_kernels import TAIL_MAX

    S = weights.shape[0]
    qk, qt, low, m = _order_stats(S, q)
    if m > TAIL_MAX or 2 * m > S:
        return None
    if not (np.isfinite(means).all() and np.isfinite(prec_chol_lower).all()):
        return None
    P = np.ascontiguousarray(prec_chol_lower, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logw = np.ascontiguousarray(np.log(np.asarray(weights, dtype=float)))
    consts = log_consts(logw, P)
    return summary(
        np.ascontiguousarray(X, dtype=np.float64),
        np.ascontiguousarray(consts),
        np.ascontiguousarray(means, dtype=np.float64),
        P,
        m,
        np.ascontiguousarray(qk),
        np.ascontiguousarray(qt),
        np.ascontiguousarray(low),
    )


def draws_eval(X, weights, means, prec_chol_lower, layout="ll"):
    """Log mixture densities (S, N) and responsibilities of S parameter draws.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    weights : ndarray, shape (S, K)
    means : ndarray, shape (S, K, D)
    prec_chol_lower : ndarray, shape (S, K, D, D)
        The numba kernels' layout (:func:`bayesmix.core._gaussian.kernel_layout`).
    layout : {"ll", "skn", "snk"}
        ``"ll"``: the log densities only; ``"skn"`` / ``"snk"``: also the
        responsibilities as (S, K, N) or (S, N, K).

    Returns
    -------
    ll : ndarray, shape (S, N)
    resp : ndarray or None

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [6.0]])
    >>> ll, resp = draws_eval(X, np.full((3, 2), 0.5), np.zeros((3, 2, 1)),
    ...                       np.ones((3, 2, 1, 1)), layout="skn")
    >>> ll.shape, resp.shape
    ((3, 2), (3, 2, 2))
    """
    code = {"ll": 0, "skn": 1, "snk": 2}[layout]
    P = np.ascontiguousarray(prec_chol_lower, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logw = np.ascontiguousarray(np.log(np.asarray(weights, dtype=float)))
    ll, resp = _eval(
        np.ascontiguousarray(X, dtype=np.float64),
        log_consts(logw, P),
        np.ascontiguousarray(means, dtype=np.float64),
        P,
        code,
    )
    return ll, (resp if code else None)
