r"""Model-based hierarchical agglomeration (Fraley 1998), the initialiser of R's mclust.

Starting from singletons, every step merges the pair of clusters whose merge increases
the classification criterion of a Gaussian model the least (equivalently, lowers the
classification likelihood the least). With ``W_k`` the scatter matrix (sum of squared
deviations from the cluster mean) of cluster ``k`` with ``n_k`` points, ``p`` features
and ``alpha = tr(W_data) / (n p)`` (the mean per-feature variance of the data, a
regulariser that makes singletons finite), the criteria minimised are, as in mclust's
``hcEII``, ``hcVII`` and ``hcVVV``:

* ``"EII"`` (Ward's method): ``sum_k tr(W_k)``; a merge costs
  ``n_i n_j / (n_i + n_j) ||mean_i - mean_j||^2``.
* ``"VII"``: ``sum_k n_k log((tr(W_k) + alpha) / n_k)``.
* ``"VVV"``: ``sum_k n_k log(|W_k / n_k| + (tr(W_k) + alpha) / n_k)`` for clusters with
  more points than features, and the ``"VII"`` term otherwise (where ``|W_k|`` is 0).

The merged scatter is ``W_i + W_j + n_i n_j / (n_i + n_j) d d^T`` with ``d`` the
difference of the means, so every cost is computed exactly from per-cluster counts,
means and scatter matrices (a Cholesky factorisation for the log-determinant).

Cost: the loop keeps the full matrix of pairwise merge costs, ``8 n^2`` bytes (32 MB for
n = 2000), and the least cost of each column; a merge recomputes one row (O(n p^3) for
``"VVV"``, O(n p) otherwise) and re-scans only the columns whose minimum involved a merged
cluster, so a full agglomeration costs O(n^2 p^3) time (O(n^3) in the worst case).
Callers subsample larger data (see :func:`bayesmix.em._starts.hierarchical_labels`).

Ties (duplicated points merge at exactly equal cost) are broken as in mclust's Fortran
loop: clusters occupy positions ``0..m-1``; the merged pair's lower position keeps the
union, the last position moves into the freed one, and of equal costs the pair scanned
last (column by column) wins. So on the same transformed data the partitions are
mclust's, duplicates included.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["MODELS", "agglomerate", "partition", "svd_scale"]

#: merge criteria understood by :func:`agglomerate`, and their kernel codes
MODELS = {"EII": 0, "VII": 1, "VVV": 2}


@numba.njit(cache=True, nogil=True, inline="always")
def logdet_scaled(W, scale, work):  # pragma: no cover - compiled
    """``log |scale * W|`` by an in-place Cholesky on ``work`` (which keeps the lower
    factor); ``-inf`` when not positive definite. Also the Gibbs kernels' log-determinant."""
    p = W.shape[0]
    for a in range(p):
        for b in range(p):
            work[a, b] = scale * W[a, b]
    out = 0.0
    for j in range(p):
        s = work[j, j]
        for k in range(j):
            s -= work[j, k] * work[j, k]
        if s <= 0.0:
            return -np.inf
        d = np.sqrt(s)
        work[j, j] = d
        out += 2.0 * np.log(d)
        for i in range(j + 1, p):
            t = work[i, j]
            for k in range(j):
                t -= work[i, k] * work[j, k]
            work[i, j] = t / d
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _term(model, n, tr, W, alpha, work):  # pragma: no cover - compiled
    """One cluster's contribution to the criterion (see the module docstring)."""
    if model == 0:
        return tr
    t = np.log((tr + alpha) / n)
    p = W.shape[0]
    if model == 1 or n <= p:
        return n * t
    ld = logdet_scaled(W, 1.0 / n, work)
    if ld == -np.inf:
        return n * t
    m = max(ld, t)
    return n * (m + np.log(np.exp(ld - m) + np.exp(t - m)))


@numba.njit(cache=True, nogil=True, inline="always")
def _merged(i, j, cnt, mean, tr, W, model, diff, Wm):  # pragma: no cover - compiled
    """Count, trace and (VVV) scatter ``Wm`` of the union of clusters i and j."""
    p = mean.shape[1]
    nij = cnt[i] + cnt[j]
    c = cnt[i] * cnt[j] / nij
    ss = 0.0
    for a in range(p):
        diff[a] = mean[i, a] - mean[j, a]
        ss += diff[a] * diff[a]
    if model == 2 and nij > p:
        for a in range(p):
            for b in range(p):
                Wm[a, b] = W[i, a, b] + W[j, a, b] + c * diff[a] * diff[b]
    return nij, tr[i] + tr[j] + c * ss


@numba.njit(cache=True, nogil=True, inline="always")
def _cost(i, j, cnt, mean, tr, W, term, model, alpha, diff, Wm, work):  # pragma: no cover
    nij, trij = _merged(i, j, cnt, mean, tr, W, model, diff, Wm)
    return _term(model, nij, trij, Wm, alpha, work) - term[i] - term[j]


@numba.njit(cache=True, nogil=True)
def _merge_into(i, j, cnt, mean, tr, W, term, model, alpha, diff, Wm, work):  # pragma: no cover
    """Replace cluster i's statistics by those of the union of i and j."""
    p = mean.shape[1]
    nij, trij = _merged(i, j, cnt, mean, tr, W, model, diff, Wm)
    if model == 2:
        c = cnt[i] * cnt[j] / nij
        for a in range(p):
            for b in range(p):
                W[i, a, b] = W[i, a, b] + W[j, a, b] + c * diff[a] * diff[b]
    for a in range(p):
        mean[i, a] = (cnt[i] * mean[i, a] + cnt[j] * mean[j, a]) / nij
    cnt[i] = nij
    tr[i] = trij
    term[i] = _term(model, nij, trij, W[i if model == 2 else 0], alpha, work)


@numba.njit(cache=True, nogil=True)
def _scan_column(c, D):  # pragma: no cover - compiled
    """Least cost of column ``c`` over rows ``r < c``; ties go to the larger row."""
    bv = np.inf
    br = -1
    for r in range(c):
        if D[c, r] <= bv:  # D is symmetric: read row c contiguously
            bv = D[c, r]
            br = r
    return bv, br


@numba.njit(cache=True, nogil=True)
def _argmin_packed(colbest, colarg, lg):  # pragma: no cover - compiled
    """The pair ``i < j < lg`` of least cost; of equal costs, the last one in the order
    (j=1, i=0), (j=2, i=0), (j=2, i=1), ... wins (mclust's scan)."""
    bj = 1
    for j in range(2, lg):
        if colbest[j] <= colbest[bj]:
            bj = j
    return colarg[bj], bj, colbest[bj]


@numba.njit(cache=True, nogil=True)
def _update_columns(i, j, D, colbest, colarg, lg):  # pragma: no cover - compiled
    """Column minima after rows/columns i and j of D changed (everything else kept)."""
    for c in range(1, lg):
        if c == i or c == j or colarg[c] == i or colarg[c] == j:
            colbest[c], colarg[c] = _scan_column(c, D)
            continue
        for r in (i, j):
            if r < c and (D[c, r] < colbest[c] or (D[c, r] == colbest[c] and r > colarg[c])):
                colbest[c] = D[c, r]
                colarg[c] = r


@numba.njit(cache=True, nogil=True)
def _move(src, dst, cnt, mean, tr, W, term, rep, D, lg):  # pragma: no cover - compiled
    """Move the cluster at position ``src`` to position ``dst`` (rows and columns of D)."""
    cnt[dst] = cnt[src]
    mean[dst] = mean[src]
    tr[dst] = tr[src]
    term[dst] = term[src]
    rep[dst] = rep[src]
    if W.shape[0] > 1:
        W[dst] = W[src]
    for k in range(lg):
        D[dst, k] = D[src, k]
        D[k, dst] = D[k, src]
    D[dst, dst] = np.inf


@numba.njit(cache=True, nogil=True)
def _agglomerate(Z, model, alpha, n_stop):  # pragma: no cover - compiled
    n, p = Z.shape
    cnt = np.ones(n)
    mean = Z.copy()
    tr = np.zeros(n)
    W = np.zeros((n if model == 2 else 1, p, p))
    diff = np.empty(p)
    Wm = np.zeros((p, p))
    work = np.empty((p, p))
    term = np.empty(n)
    rep = np.arange(n)  # the smallest row index of the cluster at each position
    for i in range(n):
        term[i] = _term(model, 1.0, 0.0, Wm, alpha, work)
    D = np.empty((n, n))
    for i in range(n):
        D[i, i] = np.inf
        for j in range(i + 1, n):
            c = _cost(i, j, cnt, mean, tr, W, term, model, alpha, diff, Wm, work)
            D[i, j] = c
            D[j, i] = c
    colbest = np.full(n, np.inf)
    colarg = np.zeros(n, dtype=np.int64)
    for c in range(1, n):
        colbest[c], colarg[c] = _scan_column(c, D)
    n_merge = max(n - n_stop, 0)
    merges = np.empty((n_merge, 2), dtype=np.int64)
    costs = np.empty(n_merge)
    lg = n
    for step in range(n_merge):
        i, j, bv = _argmin_packed(colbest, colarg, lg)
        a, b = rep[i], rep[j]
        merges[step, 0] = min(a, b)
        merges[step, 1] = max(a, b)
        costs[step] = bv
        _merge_into(i, j, cnt, mean, tr, W, term, model, alpha, diff, Wm, work)
        rep[i] = min(a, b)
        # as mclust: the last cluster takes the merged one's place, positions stay 0..lg-1
        if j != lg - 1:
            _move(lg - 1, j, cnt, mean, tr, W, term, rep, D, lg)
        lg -= 1
        for k in range(lg):
            if k != i:
                c = _cost(i, k, cnt, mean, tr, W, term, model, alpha, diff, Wm, work)
                D[i, k] = c
                D[k, i] = c
        if lg > 1:
            _update_columns(i, j, D, colbest, colarg, lg)
    return merges, costs


def agglomerate(Z, model="VVV", n_stop=1):
    """Merge sequence of model-based hierarchical agglomeration.

    Parameters
    ----------
    Z : ndarray, shape (n, p)
        Data (usually transformed by :func:`svd_scale`).
    model : {"VVV", "VII", "EII"}
        Merge criterion (see the module docstring).
    n_stop : int
        Stop when this many clusters remain.

    Returns
    -------
    merges : ndarray of int, shape (n - n_stop, 2)
        Step ``s`` merges cluster ``merges[s, 1]`` into ``merges[s, 0]`` (``i < j``); a
        cluster is named by the smallest row index it has contained.
    costs : ndarray, shape (n - n_stop,)
        The criterion's increase of each merge.
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    n, p = Z.shape
    total = Z - Z.mean(axis=0)
    alpha = max(float(np.sum(total * total)) / (n * p), np.finfo(float).eps)
    return _agglomerate(Z, MODELS[model], alpha, int(n_stop))


def partition(merges, n, n_clusters):
    """Labels ``0..n_clusters-1`` after the merges that leave ``n_clusters`` clusters.

    Parameters
    ----------
    merges : ndarray of int, shape (m, 2)
        From :func:`agglomerate`, with ``m >= n - n_clusters``.
    n : int
        Number of rows agglomerated.
    n_clusters : int

    Returns
    -------
    ndarray of int, shape (n,)
        Clusters numbered in order of their first row.
    """
    parent = np.arange(n)
    for i, j in merges[: n - n_clusters]:
        parent[j] = i
    # a merged cluster's name is its smallest row, so following parents terminates
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    _, labels = np.unique(root, return_inverse=True)
    return labels.astype(np.int64)


def svd_scale(X):
    """mclust's ``hcUse = "SVD"`` transform: standardise, rotate, scale by ``1/sqrt(d)``.

    Columns are centred and divided by their standard deviation (constant columns are
    dropped), then ``Z = X_s V diag(1 / sqrt(d))`` with ``X_s = U diag(d) V^T`` the thin
    SVD, i.e. ``Z = U diag(sqrt(d))``. The result does not depend on the units of the
    features.

    Parameters
    ----------
    X : ndarray, shape (n, p)

    Returns
    -------
    ndarray, shape (n, r)
        ``r = min(n, number of non-constant columns)``.
    """
    X = np.asarray(X, dtype=float)
    sd = X.std(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    keep = sd > 0
    if not keep.any():
        return np.zeros((X.shape[0], 1))
    Xs = (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]
    U, d, _ = np.linalg.svd(Xs, full_matrices=False)
    d = np.where(d > 0, d, 1.0)
    return np.ascontiguousarray(U * np.sqrt(d))
