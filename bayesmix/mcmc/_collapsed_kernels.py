"""Numba kernels of the collapsed moves of the Gibbs sampler (:mod:`bayesmix.mcmc._gibbs`).

The collapsed allocation sweep (:func:`collapsed_allocate`: each observation leaves
its cluster and is re-allocated with the component parameters integrated out) and the
split-merge moves (:func:`split_merge`, :func:`split_merge_moves`, with the
neighbour order :func:`nearest_order`), both on cached Student-t posterior predictives
(:func:`_set_pred`, :func:`_log_pred`, inlined: a view-passing call costs more than the
arithmetic at D = 2). The marginal likelihoods and partition priors they use are in
:mod:`bayesmix.mcmc._gibbs_kernels`; conventions and randomness are as there.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesmix.mcmc._gibbs_kernels import _LOG_PI, _log_marg, _log_prior_counts

__all__ = ["collapsed_allocate", "nearest_order", "split_merge", "split_merge_moves"]


@njit(cache=True, nogil=True, inline="always")
def _add(n, s, xx, x, sign):  # pragma: no cover - compiled
    D = x.shape[0]
    for r in range(D):
        s[r] += sign * x[r]
        for c in range(D):
            xx[r, c] += sign * x[r] * x[c]
    return n + sign


@njit(cache=True, nogil=True)
def _empty_slot(counts, n_active, u):  # pragma: no cover - compiled
    """Number of empty slots among the first ``n_active`` and the one chosen by ``u``."""
    n_empty = 0
    for k in range(n_active):
        if counts[k] == 0:
            n_empty += 1
    target = min(int(u * n_empty), n_empty - 1)
    for k in range(n_active):
        if counts[k] == 0:
            if target == 0:
                return n_empty, k
            target -= 1
    return n_empty, -1


@njit(cache=True, nogil=True)
def _members(z, i, j, keys):  # pragma: no cover - compiled
    """The other observations of i's and j's clusters, in ``keys`` order (ties by index).
    A split and its reverse merge sort the same members by the same keys, so the move
    stays reversible."""
    a, b = z[i], z[j]
    members = np.empty(z.shape[0], dtype=np.int64)
    m = 0
    for n in range(z.shape[0]):
        if n != i and n != j and (z[n] == a or z[n] == b):
            members[m] = n
            m += 1
    return members[:m][np.argsort(keys[members[:m]], kind="mergesort")]


@njit(cache=True, nogil=True)
def _ordered_members(z, i, j, order, Xs):  # pragma: no cover - compiled
    """:func:`_members` nearest to ``Xs[i]`` first: read off the table ``order[i]``
    (:func:`nearest_order`) when it has rows, else sorted here."""
    a, b = z[i], z[j]
    N = z.shape[0]
    if order.shape[0] == 0:
        keys = np.empty(N)
        for n in range(N):
            d2 = 0.0
            for d in range(Xs.shape[1]):
                d2 += (Xs[n, d] - Xs[i, d]) ** 2
            keys[n] = d2
        return _members(z, i, j, keys)
    members = np.empty(N, dtype=np.int64)
    m = 0
    for n in order[i]:
        if n != i and n != j and (z[n] == a or z[n] == b):
            members[m] = n
            m += 1
    return members[:m]


def nearest_order(Xs):
    """``order[i]``: the observations by distance to ``Xs[i]`` (ties by index), int32.

    The split-merge allocation order; it depends on the data only, so a move and its
    reverse allocate in the same order.
    """
    order = np.empty((Xs.shape[0], Xs.shape[0]), dtype=np.int32)
    for start in range(0, Xs.shape[0], 64):  # blocks of rows: a (64, N, D) temporary
        rows = slice(start, start + 64)
        d2 = ((Xs[rows, None, :] - Xs[None, :, :]) ** 2).sum(-1)
        order[rows] = np.argsort(d2, axis=1, kind="stable")
    return order


@njit(cache=True, nogil=True)
def _size_tables(ct, nu0, D, N):  # pragma: no cover - compiled
    """:func:`_pred_lgamma` and ``log`` for cluster sizes 0 .. N."""
    gt = np.empty(N + 1)
    logn = np.empty(N + 1)
    for m in range(N + 1):
        gt[m] = _pred_lgamma(ct, m, nu0, D)
        logn[m] = math.log(m) if m > 0 else -np.inf
    return gt, logn


@njit(cache=True, nogil=True)
def _sm_move(
    X, z, counts, n_active, i, j, members, u, u_slot, log_u, conj, prior, gt, logn
):  # pragma: no cover - compiled
    """One split-merge move with the members already in allocation order (``u[t]``: the
    uniform of the t-th member); see :func:`split_merge`. ``gt``, ``logn``: tables of
    :func:`_pred_lgamma` and ``log`` for sizes 0 .. N (:func:`_size_tables`)."""
    ct, k0, nu0, Psi0, psi, c0 = conj
    labelled = prior[0] != 2
    D = X.shape[1]
    a, b = z[i], z[j]
    split = a == b
    n_empty, e = _empty_slot(counts, n_active, u_slot if labelled else 0.0)
    if split and n_empty == 0:
        return 0
    if not split:
        e = b
    m = members.shape[0]
    work = np.empty((2, D, D))
    S = np.zeros((2, D))
    XX = np.zeros((2, D, D))
    mu = np.empty((2, D))
    L = np.empty((2, D, D))
    inv = np.empty((2, D))
    y = np.empty(D)
    cst = np.empty(2)
    hh = np.empty(2)
    nn = np.ones(2, dtype=np.int64)
    for c, obs in ((0, i), (1, j)):
        _add(0, S[c], XX[c], X[obs], 1)
        cst[c], hh[c] = _set_pred(
            ct, 1, S[c], XX[c], k0, nu0, Psi0, psi, mu[c], L[c], inv[c], work[0], gt[1]
        )
    to_b = np.zeros(m, dtype=np.bool_)
    log_q = 0.0
    for t in range(m):
        x = X[members[t]]
        la = logn[nn[0]] + _log_pred(ct, x, mu[0], L[0], inv[0], cst[0], hh[0], y)
        lb = logn[nn[1]] + _log_pred(ct, x, mu[1], L[1], inv[1], cst[1], hh[1], y)
        ex = math.exp(-abs(la - lb))  # P(b): 1 / (1 + ex) when lb >= la, else ex / (1 + ex)
        go_b = (u[t] * (1.0 + ex) < (1.0 if lb >= la else ex)) if split else (z[members[t]] == b)
        to_b[t] = go_b
        c = 1 if go_b else 0
        log_q += (lb if go_b else la) - max(la, lb) - math.log1p(ex)
        nn[c] = _add(nn[c], S[c], XX[c], x, 1)
        cst[c], hh[c] = _set_pred(
            ct, nn[c], S[c], XX[c], k0, nu0, Psi0, psi, mu[c], L[c], inv[c], work[0], gt[nn[c]]
        )
    nA, nB = nn[0], nn[1]
    lmA = _log_marg(nA, S[0], XX[0], S[0], 0, ct, k0, nu0, Psi0, psi, c0, work)
    lmB = _log_marg(nB, S[1], XX[1], S[1], 0, ct, k0, nu0, Psi0, psi, c0, work)
    for r in range(D):  # row 1 becomes the merged cluster's statistics
        S[1, r] += S[0, r]
        for c in range(D):
            XX[1, r, c] += XX[0, r, c]
    lmC = _log_marg(nA + nB, S[1], XX[1], S[1], 0, ct, k0, nu0, Psi0, psi, c0, work)
    old = _log_prior_counts(counts, prior)
    ca, cb = counts[a], counts[e]
    if split:
        counts[a], counts[e] = nA, nB
    else:
        counts[a], counts[b] = nA + nB, 0
    new = _log_prior_counts(counts, prior)
    if split:
        log_r = new - old + lmA + lmB - lmC - log_q
    else:
        log_r = new - old + lmC - lmA - lmB + log_q
    if labelled:  # the empty slot chosen by the split, among n_empty (n_empty + 1 after a merge)
        log_r += math.log(n_empty) if split else -math.log(n_empty + 1)
    if not log_u < log_r:
        counts[a], counts[e] = ca, cb
        return 0
    if split:
        z[j] = e
        for t in range(m):
            if to_b[t]:
                z[members[t]] = e
        return 1
    z[j] = a
    for t in range(m):
        z[members[t]] = a
    return -1


@njit(cache=True, nogil=True)
def split_merge(
    X, z, counts, n_active, i, j, keys, u_alloc, u_slot, log_u, conj, prior
):  # pragma: no cover
    """One sequentially-allocated split-merge move (Dahl 2005) on labelled allocations.

    Metropolis-Hastings on ``z`` with the component parameters and weights integrated
    out: observations ``i`` and ``j`` in one cluster propose to split it (``j`` opens an
    empty slot among the first ``n_active``, chosen uniformly; the others follow one by
    one in ``keys`` order, each by its predictive probability, :func:`_log_pred`), in
    two clusters to merge them (into ``z[i]``'s label). The acceptance ratio has the
    allocation prior (:func:`_log_prior_counts`), the clusters' marginal likelihoods
    (:func:`log_marginal`) and the proposal probabilities of the move and its reverse.

    Parameters
    ----------
    X : ndarray, shape (N, D)
        Data centred at the prior mean.
    z, counts : ndarray of int64, shapes (N,) and (T,)
        Updated in place when the move is accepted.
    n_active : int
        Slots ``0 .. n_active - 1`` may hold observations.
    i, j : int
        Two distinct observations.
    keys, u_alloc : ndarray, shape (N,)
        The allocation order (ascending, ties by index) and the allocation uniforms.
    u_slot, log_u : float
        Uniform for the empty slot; log-uniform for the acceptance test.
    conj : tuple
        ``(ct, k0, nu0, Psi0, psi, const0)`` as for :func:`log_marginal`, ``const0``
        from :func:`prior_constant`.
    prior : tuple
        ``(kind, param, log_k_prior, dynamic)`` as for :func:`_log_prior_counts`. For
        kind 2 (an MFM partition, labels immaterial) the new cluster takes the first
        empty slot and the slot-choice terms of the labelled kinds drop out.

    Returns
    -------
    int
        1 split accepted, -1 merge accepted, 0 rejected or impossible.
    """
    members = _members(z, i, j, keys)
    gt, logn = _size_tables(conj[0], conj[2], X.shape[1], X.shape[0])
    u = u_alloc[members]
    return _sm_move(X, z, counts, n_active, i, j, members, u, u_slot, log_u, conj, prior, gt, logn)


@njit(cache=True, nogil=True)
def split_merge_moves(
    X, Xs, order, z, counts, n_active, pairs, u, u_slot, log_u, conj, prior
):  # pragma: no cover
    """:func:`split_merge` for each pair of ``pairs`` (M, 2) in turn, members allocated
    nearest to the first observation first (:func:`_ordered_members`: ``order`` from
    :func:`nearest_order`, or shape (0, 0) to sort ``Xs`` distances per move); ``u``
    (M, N): row r's first entries are move r's allocation uniforms; ``u_slot``,
    ``log_u`` (M,). Returns the number of accepted moves."""
    gt, logn = _size_tables(conj[0], conj[2], X.shape[1], X.shape[0])
    accepted = 0
    for r in range(pairs.shape[0]):
        i, j = pairs[r, 0], pairs[r, 1]
        members = _ordered_members(z, i, j, order, Xs)
        move = _sm_move(
            X, z, counts, n_active, i, j, members, u[r], u_slot[r], log_u[r], conj, prior, gt, logn
        )
        accepted += move != 0
    return accepted


# ---------------------------------------------------------------------------- collapsed Gibbs
@njit(cache=True, nogil=True)
def _slot_prior(kind, n, n_active, param, log_v, N1, t, pw, cand):  # pragma: no cover
    """Prior weight of each slot for one observation given the others' counts ``n``.

    Kind 0: labelled Dirichlet-multinomial, ``n_k + param``. Kind 1: labelled truncated
    stick-breaking with the sticks integrated out, ``E[w_k | z_-n]`` = ``(1 + n_k) / (1 +
    a + n_k + m_k) prod_{j<k} (a + m_j) / (1 + a + n_j + m_j)`` (the last slot: the
    product only), ``m_k = sum_{j>k} n_j``. Kind 2: the MFM's restaurant process (Miller
    & Harrison 2018), ``n_k + gamma`` for an occupied cluster and ``gamma V(t + 1) /
    V(t)`` for the first empty slot (the others 0); ``N1`` is the number of other
    observations, ``t`` their clusters. Linear scale: with T slots the smallest DP weight
    is at least ``(a / (1 + a + N))^T``. Writes the slots with a positive weight to
    ``cand`` (in order) and returns their number; ``pw`` is set for those only.
    """
    T = n.shape[0]
    nc = 0
    if kind == 0:
        for k in range(n_active):
            pw[k] = n[k] + param
            cand[k] = k
        return n_active
    if kind == 2:
        first = True
        for k in range(n_active):
            if n[k] > 0:
                pw[k] = n[k] + param
            elif first:
                pw[k] = param * math.exp(log_v[t + 1] - log_v[t])
                first = False
                if pw[k] == 0.0:  # no K above t has prior mass
                    continue
            else:
                continue
            cand[nc] = k
            nc += 1
        return nc
    cum = 0.0
    prod = 1.0
    for k in range(T):
        nk = float(n[k])
        if k < T - 1:
            mk = N1 - cum - nk
            den = 1.0 / (1.0 + param + nk + mk)
            pw[k] = prod * (1.0 + nk) * den
            prod *= (param + mk) * den
        else:
            pw[k] = prod
        cum += nk
        if pw[k] > 0.0:
            cand[nc] = k
            nc += 1
    return nc


@njit(cache=True, nogil=True)
def _pred_lgamma(ct, n, nu0, D):  # pragma: no cover - compiled
    """The lgamma part of :func:`_set_pred`'s constant (a function of n only)."""
    if ct == 0:
        return math.lgamma(0.5 * (nu0 + n + 1.0)) - math.lgamma(0.5 * (nu0 + n - D + 1.0))
    if ct == 2:
        a = 0.5 * (nu0 + n)
        return D * (math.lgamma(a + 0.5) - math.lgamma(a))
    a = 0.5 * nu0 + 0.5 * n * D
    return math.lgamma(a + 0.5 * D) - math.lgamma(a)


@njit(cache=True, nogil=True, inline="always")
def _chol_scatter(Psi0, xx, s, c, L):  # pragma: no cover - compiled
    """Cholesky factor ``L`` of ``Psi0 + xx - c s s^T`` (lower triangle written) and
    its log-determinant (``-inf`` when not positive definite), one ``log`` per call."""
    D = s.shape[0]
    det = 1.0
    logdet = 0.0
    for i in range(D):
        for j in range(i + 1):
            w = Psi0[i, j] + xx[i, j] - c * s[i] * s[j]
            for k in range(j):
                w -= L[i, k] * L[j, k]
            if i == j:
                if w <= 0.0:
                    return -np.inf
                det *= w
                L[i, i] = math.sqrt(w)
            else:
                L[i, j] = w / L[j, j]
        if det > 1e150 or det < 1e-150:  # keep the running product in range
            logdet += math.log(det)
            det = 1.0
    return logdet + math.log(det)


@njit(cache=True, nogil=True, inline="always")
def _set_pred(ct, n, s, xx, k0, nu0, Psi0, psi, mu, L, inv, work, g):  # pragma: no cover
    """Cache the posterior predictive of a cluster with statistics (n, s, xx).

    Fills ``mu`` (D,) (the predictive's location), ``L`` (D, D) (full: Cholesky factor
    of the posterior scale) and ``inv`` (D,) (diag: per feature; spherical: ``inv[0]``)
    and returns ``(const, h)`` so that :func:`_log_pred` is the log Student-t density
    ``const - h sum log1p(...)``; equal to ``log_marginal(cluster + x) -
    log_marginal(cluster)`` (tested). ``g``: :func:`_pred_lgamma` of n.
    """
    D = s.shape[0]
    kn = k0 + n
    r = kn / (kn + 1.0)
    for d in range(D):
        mu[d] = s[d] / kn
    if ct == 0:
        nun = nu0 + n
        logdet = _chol_scatter(Psi0, xx, s, 1.0 / kn, L)
        const = g - 0.5 * D * (_LOG_PI - math.log(r)) - 0.5 * logdet
        inv[0] = r
        return const, 0.5 * (nun + 1.0)
    if ct == 2:
        a = 0.5 * (nu0 + n)
        const = g
        for d in range(D):
            b = 0.5 * psi[d] + 0.5 * (xx[d, d] - s[d] * s[d] / kn)
            const -= 0.5 * math.log(2.0 * math.pi * b / r)
            inv[d] = r / (2.0 * b)
        return const, a + 0.5
    a = 0.5 * nu0 + 0.5 * n * D
    b = 0.5 * psi[0]
    for d in range(D):
        b += 0.5 * (xx[d, d] - s[d] * s[d] / kn)
    inv[0] = r / (2.0 * b)
    return g - 0.5 * D * math.log(2.0 * math.pi * b / r), a + 0.5 * D


@njit(cache=True, nogil=True, inline="always")
def _log_pred(ct, x, mu, L, inv, const, h, y):  # pragma: no cover - compiled
    """The cached predictive log density of ``x`` (:func:`_set_pred`); ``y``: scratch (D,)."""
    D = x.shape[0]
    if ct == 0:
        q = 0.0
        for i in range(D):
            t = x[i] - mu[i]
            for j in range(i):
                t -= L[i, j] * y[j]
            y[i] = t / L[i, i]
            q += y[i] * y[i]
        return const - h * math.log1p(inv[0] * q)
    if ct == 2:
        out = const
        for d in range(D):
            t = x[d] - mu[d]
            out -= h * math.log1p(inv[d] * t * t)
        return out
    q = 0.0
    for d in range(D):
        t = x[d] - mu[d]
        q += t * t
    return const - h * math.log1p(inv[0] * q)


@njit(cache=True, nogil=True)
def collapsed_allocate(X, z, counts, n_active, u, conj, kind, param, log_v):  # pragma: no cover
    """One collapsed Gibbs sweep over the allocations (Neal 2000, algorithm 3).

    Each observation in turn is removed from its cluster and re-allocated with the
    weights and the component parameters integrated out: slot ``k`` has probability
    proportional to its prior weight given the other allocations (:func:`_slot_prior`)
    times the posterior predictive density of the observation under the cluster's other
    members (a Student-t, cached per cluster by :func:`_set_pred` and refreshed for the
    two clusters an observation leaves and joins; the prior predictive for an empty
    slot). The target is ``p(z | data, concentration)``.

    Parameters
    ----------
    X : ndarray, shape (N, D)
        Data centred at the prior mean.
    z, counts : ndarray of int64, shapes (N,) and (T,)
        Updated in place.
    n_active : int
        Slots ``0 .. n_active - 1`` may hold observations (kinds 0 and 2).
    u : ndarray, shape (N,)
        Uniforms, one per observation.
    conj : tuple
        ``(ct, k0, nu0, Psi0, psi, const0)`` as for :func:`split_merge`.
    kind : int
        0 finite mixture, 1 truncated DP, 2 MFM with a static gamma.
    param : float
        Dirichlet parameter (0, 2) or DP concentration (1).
    log_v : ndarray, shape (Kmax + 2,)
        Kind 2: ``log V_N(t)`` for ``t = 0 .. Kmax + 1`` (``-inf`` above Kmax).

    Returns
    -------
    int
        Number of observations that changed cluster.
    """
    ct, k0, nu0, Psi0, psi, _ = conj
    N, D = X.shape
    T = counts.shape[0]
    n = np.zeros(T, dtype=np.int64)
    S = np.zeros((T, D))
    XX = np.zeros((T, D, D))
    for i in range(N):
        k = z[i]
        n[k] = _add(n[k], S[k], XX[k], X[i], 1)
    work = np.empty((D, D))
    gt, _ = _size_tables(ct, nu0, D, N)
    mu = np.zeros((T + 1, D))  # row T: the empty cluster (prior predictive)
    L = np.zeros((T + 1, D, D))
    inv = np.zeros((T + 1, D))
    cst = np.zeros(T + 1)
    hh = np.zeros(T + 1)
    for k in range(T + 1):
        if k == T or n[k] > 0:
            nk = n[k] if k < T else 0
            sk = S[k] if k < T else np.zeros(D)
            xk = XX[k] if k < T else np.zeros((D, D))
            cst[k], hh[k] = _set_pred(
                ct, nk, sk, xk, k0, nu0, Psi0, psi, mu[k], L[k], inv[k], work, gt[nk]
            )
    pw = np.empty(T)
    lp = np.empty(T)
    cand = np.empty(T, dtype=np.int64)
    y = np.empty(D)
    t = 0
    for k in range(T):
        if n[k] > 0:
            t += 1
    moved = 0
    for i in range(N):
        a = z[i]
        x = X[i]
        n[a] = _add(n[a], S[a], XX[a], x, -1)
        if n[a] > 0:
            cst[a], hh[a] = _set_pred(
                ct, n[a], S[a], XX[a], k0, nu0, Psi0, psi, mu[a], L[a], inv[a], work, gt[n[a]]
            )
        else:
            t -= 1
        nc = _slot_prior(kind, n, n_active, param, log_v, float(N - 1), t, pw, cand)
        l_empty = _log_pred(ct, x, mu[T], L[T], inv[T], cst[T], hh[T], y)
        mx = l_empty
        for c in range(nc):
            k = cand[c]
            if n[k] > 0:
                lp[k] = _log_pred(ct, x, mu[k], L[k], inv[k], cst[k], hh[k], y)
                mx = max(mx, lp[k])
        e_empty = math.exp(l_empty - mx)
        tot = 0.0
        for c in range(nc):
            k = cand[c]
            pw[k] *= math.exp(lp[k] - mx) if n[k] > 0 else e_empty
            tot += pw[k]
        target = u[i] * tot
        b = -1
        acc = 0.0
        for c in range(nc):
            b = cand[c]
            acc += pw[b]
            if acc >= target:
                break
        if n[b] == 0:
            t += 1
        n[b] = _add(n[b], S[b], XX[b], x, 1)
        cst[b], hh[b] = _set_pred(
            ct, n[b], S[b], XX[b], k0, nu0, Psi0, psi, mu[b], L[b], inv[b], work, gt[n[b]]
        )
        if b != a:
            z[i] = b
            moved += 1
    for k in range(T):
        counts[k] = n[k]
    return moved
