"""k-means: greedy k-means++ seeding, Lloyd iterations, restarts.

The public :func:`kmeans` follows scikit-learn's ``KMeans(algorithm="lloyd")`` step
for step, so that both give the same labels, centres and iteration counts from the
same initial centres:

* seeding: greedy k-means++ with ``2 + int(log K)`` local trials per centre, keeping
  the candidate that minimises the potential (sum of squared distances);
* stopping: after an iteration whose labels did not change ("strict" convergence),
  or when the sum over centres of the squared centre shift is at most
  ``tol * mean(var(X, axis=0))``;
* an empty cluster is re-seeded with the point farthest from its assigned centre;
* a final assignment step makes ``labels`` match ``centers``.

The numba kernels, the blocked Lloyd and Hamerly assignment passes and the thread
pools live in :mod:`bayesmix.cluster._engine`; the zero-variance limit of EM
(:func:`~bayesmix.soft_kmeans`, :func:`~bayesmix.em_kmeans_limit`) in
:mod:`bayesmix.cluster._limits`.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numba
import numpy as np

from bayesmix.cluster._engine import (
    _assign,
    _HamerlyPass,
    _inertia_kernel,
    _lloyd_update,
    _LloydPass,
    _pp_kernel,
    _run_blocks,
    _split_blocks,
    _sq_dists,
    _sq_dists_gaps,
)
from bayesmix.core import _dask as _dask_base  # imports no Dask itself (only on Dask input)
from bayesmix.core._validation import (
    ConvergenceWarning,
    DegenerateDataWarning,
    check_data,
    check_int,
    check_n_components,
    check_positive,
    check_random_state,
    check_sample_weight,
    match_columns,
    warn,
)

__all__ = ["KMeansResult", "kmeans"]

_HAMERLY_SWITCH = 0.05  # switch to Hamerly's bounds below this fraction of changed labels
# Below this many multiply-adds per pass (n_obs * K * D), kmeans() runs on one thread.
_PARALLEL_MIN_WORK = 2_000_000


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class KMeansResult:
    """Result of :func:`kmeans`.

    Attributes
    ----------
    centers : ndarray, shape (n_components, n_features)
        Cluster centres.
    labels : ndarray of int, shape (n_obs,)
        Index of the nearest centre of each observation (consistent with ``centers``).
        A lazy ``dask.array.Array`` when :func:`kmeans` was given a Dask array.
    inertia : float
        Sum of squared distances of the observations to their centres.
    n_iter : int
        Lloyd iterations of the returned run.
    converged : bool
        Whether the returned run met its stopping rule before ``max_iter``.
    n_init : int
        Number of runs (restarts) made; the one with the lowest inertia is returned.
    init_centers : ndarray, shape (n_components, n_features)
        The initial centres of the returned run.
    feature_names : list of str or None
        The columns of a fitted DataFrame (``x0, x1, ...`` for an array): ``predict``
        and ``transform`` match a DataFrame's columns to them by name.
    """

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    n_init: int = 1
    init_centers: np.ndarray | None = field(default=None, repr=False)
    feature_names: list | None = field(default=None, repr=False)

    @property
    def n_components(self):
        """Number of clusters K."""
        return self.centers.shape[0]

    def predict(self, X):
        """Index of the nearest centre of each row of ``X``.

        Parameters
        ----------
        X : array_like, shape (n_obs, n_features)

        Returns
        -------
        ndarray of int, shape (n_obs,)
            A lazy Dask array when ``X`` is a Dask array.
        """
        if _dask_base.is_dask(X):
            from bayesmix.cluster._dask import lazy_labels

            return lazy_labels(X, self.centers)
        X = self._check_X(X)
        if np.isnan(X).any():
            return np.argmin(_sq_dists_gaps(X, self.centers), axis=1)
        return _assign(X, self.centers)[0]

    def transform(self, X):
        """Squared Euclidean distances of each row of ``X`` to each centre.

        Parameters
        ----------
        X : array_like, shape (n_obs, n_features)

        Returns
        -------
        ndarray, shape (n_obs, K)
            Over the observed coordinates of a row with NaN entries.
        """
        X = self._check_X(X)
        if np.isnan(X).any():
            return _sq_dists_gaps(X, self.centers)
        return _sq_dists(X, self.centers)

    def _check_X(self, X):
        if self.feature_names is not None:
            X = match_columns(X, self.feature_names, "k-means")
        X = check_data(X, missing="mar")
        if X.shape[1] != self.centers.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features but the centres have {self.centers.shape[1]}; "
                "pass data with the same columns as used for fitting."
            )
        return X


# --------------------------------------------------------------------------------------
# seeding and Lloyd
# --------------------------------------------------------------------------------------


def _kmeans_plusplus(
    X, n_components, rng, n_local_trials=None, n_threads=1, executor=None, sample_weight=None
):
    """Greedy k-means++ seeding, as scikit-learn's ``_kmeans_plusplus``.

    The first centre is a uniformly drawn row; each next one is the best (lowest
    potential, i.e. sum of squared distances to the nearest centre) of
    ``n_local_trials = 2 + int(log K)`` rows drawn with probability proportional to
    the squared distance to the nearest centre chosen so far. Distances are exact
    (direct sums of squares, in a fused numba pass: no (trials, N) temporaries).

    With ``sample_weight`` (as scikit-learn): the first centre is drawn with probability
    proportional to the weights, candidates proportionally to weight x squared distance,
    and the potential is the weighted sum (zero-weight rows are never chosen).

    Returns the centres (K, D), their row indices (K,) and whether the potential
    reached zero before all centres were chosen (fewer distinct points than K).
    """
    n, d = X.shape
    w = np.ones(n) if sample_weight is None else sample_weight
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_components))
    centers = np.empty((n_components, d))
    indices = np.full(n_components, -1, dtype=np.int64)
    if sample_weight is None or np.all(w == w[0]):  # equal weights: the unweighted draw
        first = int(rng.integers(n))
    else:
        first = int(rng.choice(n, p=w / w.sum()))
    centers[0] = X[first]
    indices[0] = first
    closest = np.full(n, np.inf)
    n_blocks, parts = _split_blocks(n, n_threads if executor is not None else 1)
    part = np.empty((n_blocks, n_local_trials))

    def potentials(rows, update):
        p = part[:, : len(rows)]
        ct = np.ascontiguousarray(X[rows].T)
        _run_blocks(_pp_kernel, parts, executor, X, ct, closest, p, update, w)
        return p.sum(axis=0)

    pot = float(potentials([first], True)[0])
    degenerate = False
    for c in range(1, n_components):
        if pot <= 0.0:
            degenerate = True
        rand_vals = rng.uniform(size=n_local_trials) * pot
        cand = np.searchsorted(
            np.cumsum(closest if sample_weight is None else w * closest), rand_vals
        )
        np.clip(cand, None, n - 1, out=cand)
        cand_pot = potentials(cand, False)
        best = int(np.argmin(cand_pot))
        pot = float(potentials([cand[best]], True)[0])
        centers[c] = X[cand[best]]
        indices[c] = cand[best]
    return centers, indices, degenerate


def _lloyd(X, centers_init, max_iter, tol_abs, n_threads=1, executor=None, sample_weight=None):
    """Lloyd iterations from ``centers_init``, as scikit-learn's ``_kmeans_single_lloyd``.

    ``X`` should be centred (column means subtracted), as scikit-learn does, so that
    the ``||c||^2 - 2 x.c`` assignment criterion loses no precision. Each iteration
    is a blocked BLAS product ``X @ centers.T`` and a numba kernel (see _LloydPass);
    once fewer than ``_HAMERLY_SWITCH * n`` labels change per iteration, the exact
    assignment switches to Hamerly's bounds (_HamerlyPass), which give the same labels
    with far fewer distance computations.
    Unless the labels stopped changing, a final assignment makes the labels match the
    returned centres; the inertia is then summed exactly as ``||x - c_label||^2``.
    ``sample_weight`` (N,) weights the centre sums, counts and the inertia (ones when
    None; multiplying by 1.0 is exact, so unweighted results are unchanged).

    Returns labels, inertia, centres, n_iter, converged, n_relocated.
    """
    n = X.shape[0]
    k = centers_init.shape[0]
    centers = np.array(centers_init, dtype=np.float64, order="C", copy=True)
    w = np.ones(n) if sample_weight is None else sample_weight
    labels = np.full(n, -1, dtype=np.int64)
    upper = np.empty(n)
    lower = np.empty(n)
    blas_pass = _LloydPass(X, k, n_threads, executor, upper, lower, w)
    hamerly_pass = None
    want_bounds = False
    converged = strict = False
    n_relocated = 0
    i = 0
    for i in range(max_iter):  # noqa: B007 (i is used after the loop)
        if hamerly_pass is not None:
            sums, counts, n_changed = hamerly_pass(centers, labels)
        else:
            sums, counts, n_changed = blas_pass(centers, labels, want_bounds)
            if want_bounds:
                # few labels change now: the bounds this pass left for these centres
                # let Hamerly's pass skip most distance computations from here on
                np.sqrt(upper, out=upper)
                np.sqrt(lower, out=lower)
                hamerly_pass = _HamerlyPass(X, k, n_threads, executor, upper, lower, w, centers)
            want_bounds = n_changed < _HAMERLY_SWITCH * n
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            min_dist = np.einsum("nd,nd->n", X - centers[labels], X - centers[labels])
            min_dist[w == 0] = 0.0  # a zero-weight row cannot re-seed a cluster
            n_relocated += _relocate_empty(X, labels, min_dist, sums, counts, empty, w)
        centers, strict, converged = _lloyd_update(centers, sums, counts, n_changed, tol_abs)
        if converged:
            break
    if not strict:
        # a final assignment so that the labels match the returned centres
        (hamerly_pass or blas_pass)(centers, labels)
    inertia = _inertia_kernel(X, centers, labels, w)
    return labels, inertia, centers, i + 1, converged, n_relocated


def _relocate_empty(X, labels, min_dist, sums, counts, empty, w):
    """Re-seed empty clusters with the points farthest from their assigned centres.

    As scikit-learn: each empty cluster takes one of the farthest points (its sums
    and count move from its old cluster to the empty one; labels are not changed
    until the next assignment). Returns the number of clusters re-seeded.
    """
    n_empty = empty.size
    if min_dist.max() == 0.0:
        # more clusters than distinct points: nothing to gain; keep the old centres
        return 0
    far = np.argsort(-min_dist, kind="stable")[:n_empty]
    for new_id, idx in zip(empty, far, strict=True):
        old_id = labels[idx]
        sums[old_id] -= w[idx] * X[idx]
        counts[old_id] -= w[idx]
        sums[new_id] = w[idx] * X[idx]
        counts[new_id] = w[idx]
    return n_empty


def _check_init(init, n_components, n_features):
    if isinstance(init, str):
        if init != "k-means++":
            raise ValueError(
                f"init must be 'k-means++' or an array of initial centres with shape "
                f"({n_components}, {n_features}); got {init!r}."
            )
        return None
    arr = np.asarray(init, dtype=np.float64)
    if arr.shape != (n_components, n_features):
        raise ValueError(
            f"init as an array must have shape (n_components, n_features) = "
            f"({n_components}, {n_features}); got shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise ValueError("init contains NaN or infinite values; give finite initial centres.")
    return np.ascontiguousarray(arr)


def _best_run(Xc, k, streams, start, max_iter, tol_abs, progress, sample_weight=None):
    """One run per stream (k-means++ seeding unless ``start`` is given); the lowest inertia wins.

    Returns ``(labels, inertia, centers, n_iter, converged, start)`` of the best run and
    whether a seeding found fewer distinct points than ``k``.
    """
    n, d = Xc.shape
    degenerate = False
    best = None
    # threads: numba's configured count (NUMBA_NUM_THREADS), for large enough problems
    n_threads = numba.get_num_threads() if n * k * d >= _PARALLEL_MIN_WORK else 1
    executor = ThreadPoolExecutor(n_threads) if n_threads > 1 else None
    # parallelism comes from a thread pool (the kernels release the GIL; idle workers
    # sleep): numba's OpenMP threads were measured to spin and slow down a busy machine
    try:
        for r, stream in enumerate(streams):
            run_start = start
            if start is None:
                run_start, _, deg = _kmeans_plusplus(
                    Xc,
                    k,
                    stream,
                    n_threads=n_threads,
                    executor=executor,
                    sample_weight=sample_weight,
                )
                degenerate |= deg
            labels, inertia, centers, n_iter, conv, _ = _lloyd(
                Xc, run_start, max_iter, tol_abs, n_threads, executor, sample_weight
            )
            if progress:
                print(
                    f"kmeans: run {r + 1}/{len(streams)}: inertia {inertia:.6g}, "
                    f"{n_iter} iterations{'' if conv else ' (not converged)'}",
                    file=sys.stderr,
                    flush=True,
                )
            if best is None or inertia < best[1]:
                best = (labels, inertia, centers, n_iter, conv, run_start)
    finally:
        if executor is not None:
            executor.shutdown()
    return best, degenerate


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------


def _dask_keywords(arguments):
    """kmeans' keyword arguments, passed on to :func:`bayesmix.cluster._dask.kmeans_dask`."""
    return {k: v for k, v in arguments.items() if k not in ("X", "n_components")}


def kmeans(
    X,
    n_components,
    *,
    n_init=10,
    max_iter=300,
    tol=1e-4,
    init="k-means++",
    random_seed=None,
    progress=False,
    sample_weight=None,
    missing="mar",
):
    """k-means clustering: greedy k-means++ seeding, Lloyd iterations, restarts.

    Parameters
    ----------
    X : array_like, pandas.DataFrame or dask.array.Array, shape (n_obs, n_features)
        Data. A ``dask.array.Array`` (or an ``xarray.DataArray`` backed by one) is
        clustered chunk by chunk: k-means|| seeding (Bahmani et al. 2012) and Lloyd
        iterations as chunk reductions (:mod:`bayesmix.cluster._dask`); ``labels`` is
        then a lazy Dask array.
    n_components : int
        Number of clusters K, ``1 <= K <= n_obs``.
    n_init : int, default 10
        Number of runs from independent k-means++ seedings; the run with the lowest
        inertia is returned. With an array ``init`` a single run is made: Lloyd's
        algorithm is deterministic, so restarts from the same centres would repeat it
        exactly (``n_init`` then changes nothing in the result; ``result.n_init`` is 1).
    max_iter : int, default 300
        Maximum Lloyd iterations per run.
    tol : float, default 1e-4
        A run stops when the sum over centres of the squared centre shift is at most
        ``tol * mean(var(X, axis=0))`` (scikit-learn's rule), or when the labels stop
        changing. ``tol=0`` runs until the labels are stable.
    init : {"k-means++"} or array_like, shape (n_components, n_features)
        Seeding method, or explicit initial centres (then a single run is made).
    random_seed : int or numpy.random.Generator, optional
        Seed. Restarts use independent child streams (``Generator.spawn``).
    progress : bool, default False
        Print one line per run to stderr.
    sample_weight : array_like, shape (n_obs,), optional
        Non-negative frequency weights (as scikit-learn's ``sample_weight``): centres are
        weighted means, the inertia is the weighted sum of squared distances, and
        k-means++ draws seeds with probability proportional to weight x squared distance.
        Integer weights give the same centres as duplicating the rows. Zero-weight rows
        are dropped from the fit (they still receive a label). Errors (``ValueError``)
        for negative, NaN/inf, wrong-length or all-zero weights. With Dask ``X``: a 1-D
        ``dask.array.Array`` (rechunked to ``X``'s row chunks) or an in-memory array; the
        k-means|| seeding draws points with probability ~ weight x squared distance and
        weighs each candidate by the total weight of the points nearest to it.
    missing : {"mar", "error"}, default "mar"
        ``"mar"``: NaN entries are missing; the objective is the sum of squared
        distances over each row's *observed* coordinates (unscaled, as k-POD of Chi, Chi
        & Baraniuk 2016). The restarts run on the data with every gap filled by its
        feature's observed mean; from the best of them, Lloyd rounds over the observed
        coordinates (each row to its nearest centre on its observed coordinates, each
        centre to the mean of its rows' observed entries, feature by feature) run until
        the labels stop changing; each round lowers the objective.
        ``inertia``, ``transform`` and ``predict`` then use observed coordinates only. A
        row with no observed entry is an error naming it. ``"error"``: NaN is refused.

    Returns
    -------
    KMeansResult
        ``centers`` (K, D), ``labels`` (N,), ``inertia``, ``n_iter``, ``converged``;
        ``predict(X)`` assigns new data.

    Warns
    -----
    ConvergenceWarning
        If the returned run hit ``max_iter``.
    DegenerateDataWarning
        If the data have fewer distinct points than ``n_components`` (some centres
        then coincide; the output is still finite).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> res = kmeans(X, 2, random_seed=0)
    >>> sorted(res.centers[:, 0].round(2).tolist())
    [0.05, 5.05]
    >>> bool(res.labels[0] == res.labels[1] != res.labels[2])
    True
    """
    if _dask_base.is_dask(X):
        kw = _dask_keywords(locals())
        from bayesmix.cluster._dask import kmeans_dask

        kw.pop("missing")
        return kmeans_dask(sys.modules[__name__], X, n_components, **kw)
    X, feature_names = check_data(X, return_names=True, missing=missing)
    if missing == "mar" and np.isnan(X).any():
        return _kmeans_gaps(
            X,
            feature_names,
            n_components,
            n_init,
            max_iter,
            tol,
            init,
            random_seed,
            progress,
            sample_weight,
        )
    n, d = X.shape
    w = check_sample_weight(sample_weight, n)
    k = check_n_components(n_components, n if w is None else int(np.count_nonzero(w)))
    n_init = check_int(n_init, "n_init", minimum=1)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_positive(tol, "tol", strict=False)
    init_centers = _check_init(init, k, d)
    if init_centers is not None and n_init != 1:
        # an explicit initialisation is deterministic: restarts would repeat it
        n_init = 1
    rng = check_random_state(random_seed)
    # work on centred data (as scikit-learn does): the assignment criterion
    # ||c||^2 - 2 x.c is then accurate however far the data are from the origin
    x_mean = X.mean(axis=0) if w is None else np.average(X, axis=0, weights=w)
    Xc = X - x_mean
    var = np.var(X, axis=0) if w is None else np.average(Xc**2, axis=0, weights=w)
    tol_abs = float(np.mean(var) * tol) if tol > 0 else 0.0
    streams = rng.spawn(n_init) if init_centers is None else [rng]
    start = None if init_centers is None else init_centers - x_mean
    best, degenerate = _best_run(Xc, k, streams, start, max_iter, tol_abs, progress, w)
    labels, inertia, centers, n_iter, conv, start = best

    if not degenerate and k > 1:
        # coinciding centres (e.g. from an explicit init) also signal degenerate data
        dc = _sq_dists(centers, centers)
        np.fill_diagonal(dc, np.inf)
        degenerate = bool((dc == 0).any())
    if degenerate:
        warn(
            f"X has fewer distinct points than n_components={k}; some centres coincide and "
            "some clusters are empty. Use fewer components or remove duplicated points.",
            DegenerateDataWarning,
        )
    if not conv:
        warn(
            f"kmeans did not converge in max_iter={max_iter} iterations (tol={tol}); "
            "increase max_iter or tol.",
            ConvergenceWarning,
        )
    return KMeansResult(
        centers=centers + x_mean,
        labels=labels,
        inertia=inertia,
        n_iter=int(n_iter),
        converged=bool(conv),
        n_init=len(streams),
        init_centers=init_centers.copy() if init_centers is not None else start + x_mean,
        feature_names=list(feature_names),
    )


#: Lloyd rounds over the observed coordinates at most (after the start)
_GAP_MAX_ROUNDS = 300


def _observed_centres(X0, obs, labels, k, old, w):
    """Per cluster and feature, the (weighted) mean of the observed entries; a feature
    with no observed entry in a cluster (or an empty cluster) keeps its old value."""
    R = np.zeros((X0.shape[0], k))
    R[np.arange(X0.shape[0]), labels] = 1.0 if w is None else w
    num = R.T @ X0
    den = R.T @ obs.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, old)


def _kmeans_gaps(X, names, k, n_init, max_iter, tol, init, random_seed, progress, w):
    """k-means on data with NaN: the observed-coordinate objective (see :func:`kmeans`)."""
    obs = ~np.isnan(X)
    X0 = np.where(obs, X, 0.0)
    start = kmeans(
        np.where(obs, X, np.nanmean(X, axis=0)),
        k,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        init=init,
        random_seed=random_seed,
        progress=progress,
        sample_weight=w,
    )
    centers, labels = start.centers, None
    converged, rounds = False, 0
    while rounds < _GAP_MAX_ROUNDS:
        rounds += 1
        new = np.argmin(_sq_dists_gaps(X, centers), axis=1)
        if labels is not None and np.array_equal(new, labels):
            converged = True
            break
        labels = new
        centers = _observed_centres(X0, obs, labels, k, centers, w)
    if not converged:
        warn(
            f"kmeans on data with gaps did not converge in {_GAP_MAX_ROUNDS} rounds over the "
            "observed coordinates.",
            ConvergenceWarning,
        )
    d = _sq_dists_gaps(X, centers)[np.arange(X.shape[0]), labels]
    return KMeansResult(
        centers=centers,
        labels=labels,
        inertia=float(d.sum() if w is None else w @ d),
        n_iter=int(start.n_iter + rounds),
        converged=bool(start.converged and converged),
        n_init=start.n_init,
        init_centers=start.init_centers,
        feature_names=list(names),
    )


# --------------------------------------------------------------------------------------
# the zero-variance limit of EM
# --------------------------------------------------------------------------------------
