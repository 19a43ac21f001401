r"""Initial responsibilities for :func:`bayesmix.fit_em`, one function per strategy.

Every strategy returns an (N, K) array of responsibilities (rows summing to 1) from
which EM's first M-step is computed:

* ``"kmeans"``: one k-means run (k-means++ seeds, Lloyd iterations) on the data as
  given; its labels, one-hot.
* ``"kmeans-standardized"``: the same on the data with every feature centred and
  divided by its standard deviation, so that no feature dominates by its units.
* ``"k-means++"``: k-means++ seeds on the raw data, each point to its nearest seed.
* ``"random"``: uniform random responsibilities, rows normalised.
* ``"hierarchical"``: mclust's default initialiser: model-based hierarchical
  agglomeration (criterion ``"VVV"``, Fraley 1998; see :mod:`bayesmix.em._hierarchical`)
  of the data transformed as mclust's ``hcUse = "SVD"`` (standardised, rotated to the
  principal axes and scaled by ``1/sqrt`` of the singular values), cut at K clusters.
  Deterministic, and invariant to the units of the features. It keeps an (n, n)
  matrix, ``8 n^2`` bytes: above :data:`HC_MAX_N` rows it agglomerates a random
  subsample of that size and assigns every other row to the most probable of the K
  clusters under a Gaussian of the fitted covariance type estimated (one M-step) from
  the subsample's partition, in standardised units.
"""

from __future__ import annotations

import numpy as np

from bayesmix.cluster._engine import nearest
from bayesmix.cluster._kmeans import _kmeans_plusplus, kmeans
from bayesmix.core import _covariance as cv
from bayesmix.core._gaussian import row_chunks
from bayesmix.em import _hierarchical as hc

__all__ = [
    "HC_MAX_N",
    "STRATEGIES",
    "initial_labels",
    "initial_resp",
    "stats_from_labels",
    "stats_from_resp",
]

#: named strategies (``"auto"`` is the portfolio run by :mod:`bayesmix.em`)
STRATEGIES = ("auto", "hierarchical", "kmeans", "kmeans-standardized", "k-means++", "random")
#: above this many rows the hierarchical agglomeration runs on a random subsample
#: (mclust's ``mclust.options("subset")`` default is also 2000): its cost matrix
#: takes 8 * HC_MAX_N**2 bytes = 32 MB and about a second
HC_MAX_N = 2000


def one_hot(labels, K):
    """(N, K) responsibilities with a 1 in each row's label."""
    resp = np.zeros((labels.shape[0], K))
    resp[np.arange(labels.shape[0]), labels] = 1.0
    return resp


def standardize(X):
    """Columns centred and divided by their standard deviation (constant ones by 1)."""
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _kmeans_resp(X, K, rng, sample_weight=None):
    km = kmeans(X, K, n_init=1, random_seed=rng, sample_weight=sample_weight)
    return one_hot(np.asarray(km.labels), K)


def _kmeanspp_resp(X, K, rng, sample_weight=None):
    centers = _kmeans_plusplus(X, K, rng, sample_weight=sample_weight)[0]
    return one_hot(nearest(X, centers), K)


def _random_resp(X, K, rng):
    resp = rng.uniform(size=(X.shape[0], K))
    return resp / resp.sum(1, keepdims=True)


def hierarchical_labels(X, K, rng, covariance="full", max_n=None):
    """Labels (N,) of the hierarchical initialiser (see the module docstring)."""
    N = X.shape[0]
    max_n = HC_MAX_N if max_n is None else max_n
    if K == 1:
        return np.zeros(N, dtype=np.int64)
    idx = None if N <= max_n else np.sort(rng.choice(N, size=max_n, replace=False))
    Z = hc.svd_scale(X if idx is None else X[idx])
    merges, _ = hc.agglomerate(Z, "VVV", n_stop=K)
    labels = hc.partition(merges, Z.shape[0], K)
    if idx is None:
        return labels
    return _assign_rest(standardize(X), idx, labels, K, covariance)


def _assign_rest(Xs, idx, sub_labels, K, covariance, reg=1e-6):
    """Every row's most probable cluster under Gaussians fitted to a labelled subsample."""
    resp = one_hot(sub_labels, K)
    Xsub = Xs[idx]
    nk, sx = resp.sum(0), resp.T @ Xsub
    sxx = cv.SECOND_MOMENTS[covariance](Xsub, resp)
    weights, means = cv.m_step_weights_means(nk, sx, idx.size, None)
    cov = cv.M_STEP[covariance](nk, sx, sxx, idx.size, reg, None)
    try:
        prec = cv.PRECISION_CHOLESKY[covariance](cov, reg)
    except cv.SingularCovarianceError:  # a degenerate cluster: nearest mean instead
        labels = nearest(Xs, means)
    else:
        labels = np.empty(Xs.shape[0], dtype=np.int64)
        with np.errstate(divide="ignore"):
            logw = np.log(weights)
        for sl in row_chunks(Xs.shape[0], 4 * K * Xs.shape[1]):
            lp = cv.LOG_GAUSSIAN_PROB[covariance](Xs[sl], means, prec) + logw
            labels[sl] = np.argmax(lp, axis=1)
    labels[idx] = sub_labels
    return labels


def stats_from_labels(X, covariance, labels, K):
    """Sufficient statistics ``(N_k, Sx, Sxx)`` of one-hot responsibilities, by groups.

    Equal (up to rounding) to those of ``one_hot(labels, K)``, in O(N D^2) operations
    instead of O(N K D^2): the portfolio of ``init="auto"`` starts EM from several
    partitions of large data, where the dense products would cost more than an E-step.
    """
    D = X.shape[1]
    nk = np.bincount(labels, minlength=K).astype(float)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(K + 1))
    sx = np.zeros((K, D))
    sxx = np.zeros((K, D, D)) if covariance == "full" else np.zeros((K, D))
    for k in range(K):
        Xk = X[order[bounds[k] : bounds[k + 1]]]
        sx[k] = Xk.sum(axis=0)
        if covariance == "full":
            sxx[k] = np.ascontiguousarray(Xk.T) @ Xk
        elif covariance != "tied":
            sxx[k] = (Xk * Xk).sum(axis=0)
    if covariance == "tied":
        sxx = np.ascontiguousarray(X.T) @ X
    return nk, sx, sxx


def stats_from_resp(X, covariance, resp):
    """Sufficient statistics of soft responsibilities (N, K), one matrix product per
    component for ``"full"`` (no (N, K, D) temporary)."""
    if covariance != "full":
        return resp.sum(0), resp.T @ X, cv.SECOND_MOMENTS[covariance](X, resp)
    Xt = np.ascontiguousarray(X.T)
    sxx = np.stack([(Xt * resp[:, k]) @ X for k in range(resp.shape[1])])
    return resp.sum(0), resp.T @ X, sxx


def initial_labels(strategy, X, K, rng, covariance="full", sample_weight=None):
    """Hard labels (N,) of a partition strategy; ``None`` for ``"random"`` (soft).

    Draws from ``rng`` exactly as :func:`initial_resp` does. ``sample_weight`` weights the
    k-means starts; the hierarchical start ignores it (it only starts EM).
    """
    w = sample_weight
    if strategy == "random":
        return None
    if strategy == "kmeans":
        return np.asarray(kmeans(X, K, n_init=1, random_seed=rng, sample_weight=w).labels)
    if strategy == "kmeans-standardized":
        Xs = standardize(X)
        return np.asarray(kmeans(Xs, K, n_init=1, random_seed=rng, sample_weight=w).labels)
    if strategy == "k-means++":
        return nearest(X, _kmeans_plusplus(X, K, rng, sample_weight=w)[0])
    if strategy == "hierarchical":
        return hierarchical_labels(X, K, rng, covariance)
    raise ValueError(f"unknown initialisation strategy {strategy!r}; expected {STRATEGIES[1:]}.")


def initial_resp(strategy, X, K, rng, covariance="full", sample_weight=None):
    """(N, K) initial responsibilities of a named strategy (not ``"auto"``).

    Parameters
    ----------
    strategy : str
        One of :data:`STRATEGIES` except ``"auto"``.
    X : ndarray, shape (N, D)
        The data in the fitting frame.
    K : int
    rng : numpy.random.Generator
    covariance : str
        The fitted covariance type (used to assign rows outside the hierarchical
        subsample).
    sample_weight : ndarray, shape (N,), optional
        Frequency weights for the k-means starts (the hierarchical start ignores them).

    Returns
    -------
    ndarray, shape (N, K)
    """
    if strategy == "kmeans":
        return _kmeans_resp(X, K, rng, sample_weight)
    if strategy == "kmeans-standardized":
        return _kmeans_resp(standardize(X), K, rng, sample_weight)
    if strategy == "k-means++":
        return _kmeanspp_resp(X, K, rng, sample_weight)
    if strategy == "random":
        return _random_resp(X, K, rng)
    if strategy == "hierarchical":
        return one_hot(hierarchical_labels(X, K, rng, covariance), K)
    raise ValueError(f"unknown initialisation strategy {strategy!r}; expected {STRATEGIES[1:]}.")
