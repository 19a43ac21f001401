"""k-means on chunked data: :func:`bayesmix.kmeans` on a ``dask.array.Array``.

Seeding is scalable k-means++ (k-means||, Bahmani et al. 2012, as dask-ml does): a
uniformly drawn first centre, then ``rounds`` (5) rounds in which every point joins the
candidate set with probability ``min(1, l * d^2(x) / phi)`` (``l = 2K`` the
oversampling factor, ``phi`` the current cost), so ``~ 1 + rounds * l`` candidates;
each candidate is weighted by the number of points nearest to it and a weighted
k-means++ followed by weighted Lloyd iterations on the candidates (in memory) gives
the K seeds. Lloyd iterations are then chunk reductions: every chunk assigns its rows
to the nearest centre and returns per-cluster sums and counts (and how many labels
changed), summed by :func:`bayesmix.em._dask.tree_reduce`; the stopping rule and the
re-seeding of empty clusters are those of the in-memory :func:`bayesmix.kmeans`. With
frequency weights every chunk pass gets the chunk's weights: they multiply each row's
cost, candidate probability, count and sum, as in the in-memory weighted k-means.
Dask is imported only through :mod:`bayesmix.em._dask`'s functions.
"""

from __future__ import annotations

import numpy as np

from bayesmix.cluster._engine import _lloyd_update, _sq_dists_gaps, nearest
from bayesmix.core import _dask

#: k-means|| sampling rounds
ROUNDS = 5


def _nearest_d2(xc, centers):
    """Nearest centre and the squared distance to it (direct sums of squares)."""
    lab = nearest(xc, centers)
    diff = xc - centers[lab]
    return lab, np.einsum("nd,nd->n", diff, diff)


# --------------------------------------------------------------------------- chunk passes
# ``w``: the chunk's frequency weights (None unweighted): they multiply each row's cost,
# sampling probability, count and sum, as in the in-memory weighted k-means.
def _wsum(w, values):
    return float(values.sum() if w is None else _dask.as_weights(w) @ values)


def _block_cost(x, offset, shift, centers, w=None):
    return (_wsum(w, _nearest_d2(_dask._centred(x, shift), centers)[1]),)


def _block_sample(x, offset, seed, shift, centers, factor, w=None):
    xc = _dask._centred(x, shift)
    d2 = _nearest_d2(xc, centers)[1]
    if w is not None:
        d2 = d2 * _dask.as_weights(w)  # a zero-weight row is never drawn
    u = np.random.default_rng(seed).uniform(size=xc.shape[0])
    return xc[u < factor * d2]


def _block_counts(x, offset, shift, centers, w=None):
    lab = _nearest_d2(_dask._centred(x, shift), centers)[0]
    return (np.bincount(lab, weights=_dask.as_weights(w), minlength=centers.shape[0]) * 1.0,)


def _block_lloyd(x, offset, shift, prev, centers, w=None):
    xc = _dask._centred(x, shift)
    K, D = centers.shape
    lab, d2 = _nearest_d2(xc, centers)
    changed = xc.shape[0] if prev is None else int((lab != _nearest_d2(xc, prev)[0]).sum())
    sw = _dask.as_weights(w)
    wx = xc if sw is None else xc * sw[:, None]
    sums = np.stack([np.bincount(lab, weights=wx[:, j], minlength=K) for j in range(D)], 1)
    counts = np.bincount(lab, weights=sw, minlength=K).astype(float)
    return sums, counts, changed, _wsum(w, d2)


def _block_farthest(x, offset, shift, centers, m, w=None):
    """The ``m`` rows farthest from their nearest centre: (-d2, row, point, label, weight);
    a zero-weight row is at distance 0 (it cannot re-seed a cluster)."""
    xc = _dask._centred(x, shift)
    lab, d2 = _nearest_d2(xc, centers)
    sw = np.ones(xc.shape[0]) if w is None else _dask.as_weights(w)
    d2 = np.where(sw > 0, d2, 0.0)
    top = np.argsort(-d2, kind="stable")[:m]
    return (-d2[top], offset + top, xc[top], lab[top], sw[top], m)


def _concat(*parts):
    return np.concatenate(parts, axis=0)


def _combine_farthest(*parts):
    m = parts[0][5]
    key, rows, pts, labs, ws = (np.concatenate([p[i] for p in parts]) for i in range(5))
    top = np.lexsort((rows, key))[:m]
    return key[top], rows[top], pts[top], labs[top], ws[top], m


# --------------------------------------------------------------------------- seeding
def _weighted_kmeanspp(C, w, k, rng):
    """k-means++ on weighted candidates (D^2 sampling with probability ~ w * d^2)."""
    idx = [int(rng.choice(len(C), p=w / w.sum()))]
    d2 = ((C - C[idx[0]]) ** 2).sum(1)
    for _ in range(1, k):
        p = w * d2
        p = p / p.sum() if p.sum() > 0 else w / w.sum()
        idx.append(int(rng.choice(len(C), p=p)))
        d2 = np.minimum(d2, ((C - C[idx[-1]]) ** 2).sum(1))
    return C[idx].copy()


def _weighted_lloyd(C, w, centers, max_iter=100):
    """Weighted Lloyd iterations on the candidates (empty clusters keep their centre)."""
    for _ in range(max_iter):
        lab = _nearest_d2(C, centers)[0]
        W = np.bincount(lab, weights=w, minlength=len(centers))
        sums = np.stack(
            [
                np.bincount(lab, weights=w * C[:, j], minlength=len(centers))
                for j in range(C.shape[1])
            ],
            1,
        )
        new = centers.copy()
        new[W > 0] = sums[W > 0] / W[W > 0, None]
        if np.array_equal(new, centers):
            break
        centers = new
    return centers


def _weighted_rows(w, size, rng):
    """``size`` rows drawn with probability proportional to the weights ``w`` (a 1-D Dask
    array): a chunk by its total weight, then a row of it (one pass over ``w`` alone)."""
    import dask

    totals = np.array(dask.compute(*[b.sum() for b in w.blocks]), dtype=np.float64)
    starts = np.concatenate([[0], np.cumsum(w.chunks[0])[:-1]])
    rows = []
    for _ in range(size):
        i = int(rng.choice(totals.size, p=totals / totals.sum()))
        wb = np.asarray(w.blocks[i].compute(), dtype=np.float64)
        rows.append(int(starts[i]) + int(rng.choice(wb.size, p=wb / wb.sum())))
    return np.sort(np.array(rows, dtype=np.int64))


def kmeans_parallel(ctx, k, rng, rounds=ROUNDS, oversampling=None):
    """k-means|| seeds (K, D) in the fitting frame of ``ctx`` (a ``_dask._Context``).

    With weights (``ctx.w``), as weighted k-means++: the first centre is drawn with
    probability proportional to the weight, a point joins the candidates with
    probability ``min(1, l * w * d^2 / phi)`` (``phi`` the weighted cost) and each
    candidate weighs the total weight of the points nearest to it.
    """
    X, shift = ctx.X, ctx.shift
    n = X.shape[0]
    l_factor = 2.0 * k if oversampling is None else float(oversampling)
    first = int(rng.integers(n)) if ctx.w is None else int(_weighted_rows(ctx.w, 1, rng)[0])
    C = np.asarray(X[first : first + 1].compute(), dtype=np.float64) - shift
    for _ in range(rounds):
        phi = ctx.reduce(_block_cost, (shift, C), _dask.add_tuples)[0]
        if phi <= 0:
            break
        seeds = list(rng.integers(0, 2**63 - 1, size=X.numblocks[0]))
        new = ctx.reduce(_block_sample, (shift, C, l_factor / phi), _concat, extra=seeds)
        C = np.concatenate([C, new])
    if len(C) < k:  # tiny data: fill up with uniformly (weighted: by weight) drawn rows
        if ctx.w is None:
            rows = np.sort(rng.choice(n, size=k - len(C), replace=False))
        else:
            rows = _weighted_rows(ctx.w, k - len(C), rng)
        C = np.concatenate([C, np.asarray(X[rows].compute(), dtype=np.float64) - shift])
    w = ctx.reduce(_block_counts, (shift, C), _dask.add_tuples)[0]
    w = np.where(w > 0, w, 1e-12)  # every candidate stays drawable
    return _weighted_lloyd(C, w, _weighted_kmeanspp(C, w, k, rng))


# --------------------------------------------------------------------------- Lloyd
def _relocate_empty(ctx, centers, sums, counts, empty):
    """In-memory kmeans' re-seeding of empty clusters with the farthest points (of
    positive weight; each moves its weighted sum and weight to the empty cluster)."""
    key, _, pts, labs, ws, _ = ctx.reduce(
        _block_farthest, (ctx.shift, centers, empty.size), _combine_farthest
    )
    if key.size == 0 or -key[0] == 0.0:
        return 0
    for new_id, p, old_id, wp in zip(empty, pts, labs, ws, strict=False):
        sums[old_id] -= wp * p
        counts[old_id] -= wp
        sums[new_id] = wp * p
        counts[new_id] = wp
    return empty.size


def lloyd(ctx, start, max_iter, tol_abs):
    """Lloyd iterations by chunk reductions; returns (centres, inertia, n_iter, converged)."""
    centers = np.array(start, dtype=np.float64)
    prev = None
    converged = False
    i = 0
    for i in range(max_iter):  # noqa: B007 (i is used after the loop)
        sums, counts, n_changed, _ = ctx.reduce(
            _block_lloyd, (ctx.shift, prev, centers), _dask.add_tuples
        )
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            _relocate_empty(ctx, centers, sums, counts, empty)
        new, _, converged = _lloyd_update(centers, sums, counts, n_changed, tol_abs)
        prev, centers = centers, new
        if converged:
            break
    inertia = ctx.reduce(_block_cost, (ctx.shift, centers), _dask.add_tuples)[0]
    return centers, inertia, i + 1, converged


def centres_for_em(ctx, k, rng):
    """EM's ``init="kmeans"`` on Dask input: one k-means|| + Lloyd run (fitting frame)."""
    tol_abs = float(np.mean(np.asarray(ctx.var)) * 1e-4)
    return lloyd(ctx, kmeans_parallel(ctx, k, rng), 300, tol_abs)[0]


def kmeans_dask(
    clustering,
    X,
    n_components,
    *,
    n_init,
    max_iter,
    tol,
    init,
    random_seed,
    progress,
    sample_weight=None,
):
    """:func:`bayesmix.kmeans` on a Dask array (called by it with its module ``clustering``).

    ``clustering`` is :mod:`bayesmix.cluster._kmeans`, passed in rather than imported (it
    imports this module): its init check and :class:`KMeansResult` are reused. The
    result's ``labels`` are a lazy Dask array (the nearest centre of every row).
    ``sample_weight`` (a Dask array or an in-memory array, shape (N,)) weights the
    seeding, the Lloyd sums and counts and the inertia, as on the numpy path.
    """
    import sys

    from bayesmix.core._validation import (
        ConvergenceWarning,
        check_int,
        check_n_components,
        check_positive,
        check_random_state,
        warn,
    )

    Xd, names = _dask.as_dask_array(X)
    n, d = Xd.shape
    w = _dask.as_dask_weights(sample_weight, Xd)
    k = check_n_components(n_components, n)
    n_init = check_int(n_init, "n_init", minimum=1)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_positive(tol, "tol", strict=False)
    init_centers = clustering._check_init(init, k, d)
    rng = check_random_state(random_seed)
    mom = _dask.moments(Xd, w=w, feature_names=names)
    if w is not None:  # as the numpy path: k at most the number of positive weights
        check_n_components(n_components, mom.n_pos)
    tol_abs = float(np.mean(mom.var) * tol) if tol > 0 else 0.0
    ctx = _dask._Context(Xd, mom.mean, "numpy", mom.var, w=w)
    streams = rng.spawn(n_init) if init_centers is None else [rng]
    best = None
    for r, stream in enumerate(streams):
        start = kmeans_parallel(ctx, k, stream) if init_centers is None else init_centers - mom.mean
        centers, inertia, n_iter, conv = lloyd(ctx, start, max_iter, tol_abs)
        if progress:
            print(f"kmeans: run {r + 1}/{len(streams)}: inertia {inertia:.6g}", file=sys.stderr)
        if best is None or inertia < best[1]:
            best = (centers, inertia, n_iter, conv, start)
    centers, inertia, n_iter, conv, start = best
    if not conv:
        warn(
            f"kmeans did not converge in max_iter={max_iter} iterations (tol={tol}); "
            "increase max_iter or tol.",
            ConvergenceWarning,
        )
    centers = centers + mom.mean
    labels = lazy_labels(Xd, centers)
    return clustering.KMeansResult(
        centers=centers,
        labels=labels,
        inertia=float(inertia),
        n_iter=int(n_iter),
        converged=bool(conv),
        n_init=len(streams),
        init_centers=start + mom.mean,
    )


def _block_labels(x, centers, shape, names, block_info=None):
    # as KMeansResult.predict in memory: NaN entries are gaps (distances over the
    # observed coordinates), inf an error
    x = _dask.check_chunk(x, _dask.chunk_offset(block_info), shape, names, missing="mar")
    if np.isnan(x).any():
        return np.argmin(_sq_dists_gaps(x, centers), axis=1)
    return _nearest_d2(x, centers)[0]


def lazy_labels(X, centers):
    """The nearest centre of every row of a Dask array, lazily.

    The column count is checked here, and every chunk on compute as
    :meth:`bayesmix.KMeansResult.predict` checks in-memory data (NaN/inf rows, the scale
    check), with the same errors.
    """
    X, names = _dask.as_dask_array(X)
    if X.shape[1] != centers.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features but the centres have {centers.shape[1]}; "
            "pass data with the same columns as used for fitting."
        )
    args = (centers, X.shape, names)
    meta = np.empty(0, dtype=np.int64)
    return X.map_blocks(_block_labels, *args, drop_axis=1, meta=meta)
