"""The zero-variance limit of EM: k-means as hard EM (teaching code).

k-means is the zero-variance limit of EM for a Gaussian mixture with equal weights
and a shared isotropic covariance ``eps * I``: the E-step responsibilities
``softmax(-||x - c_k||^2 / (2 eps))`` become the one-hot nearest-centre assignment
as ``eps -> 0``, and the M-step means become Lloyd's centroid update.
:func:`soft_kmeans` runs that EM at a fixed ``beta = 1 / eps`` (in log space, so it
is stable for huge ``beta``), and :func:`em_kmeans_limit` runs it over a decreasing
sequence of ``eps`` from the same starting centres to show the soft assignments
hardening into the k-means partition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesmix.cluster._engine import _sq_dists
from bayesmix.cluster._kmeans import KMeansResult, kmeans
from bayesmix.core._validation import (
    ConvergenceWarning,
    check_data,
    check_int,
    check_n_components,
    check_positive,
    warn,
)

# numpy layer: pandas is imported only by KMeansLimitResult.to_dataframe().

__all__ = ["KMeansLimitResult", "SoftKMeansResult", "em_kmeans_limit", "soft_kmeans"]


@dataclass(frozen=True, eq=False)
class SoftKMeansResult:
    """Result of :func:`soft_kmeans`.

    Attributes
    ----------
    centers : ndarray, shape (K, D)
        Responsibility-weighted means at the fixed point.
    responsibilities : ndarray, shape (N, K)
        ``softmax(-beta/2 * ||x - c_k||^2)`` at the returned centres.
    n_iter : int
        EM iterations run.
    converged : bool
        Whether the stopping rule was met before ``max_iter``.
    beta : float
        Inverse variance of the components.
    """

    centers: np.ndarray
    responsibilities: np.ndarray
    n_iter: int
    converged: bool
    beta: float

    @property
    def labels(self):
        """Most responsible component of each observation, shape (N,)."""
        return np.argmax(self.responsibilities, axis=1)


def _soft_responsibilities(X, centers, beta):
    """Log-space softmax of ``-beta/2 * ||x - c||^2`` over components."""
    logits = _sq_dists(X, centers)
    # subtract the row minimum first: the largest logit is exactly 0 and beta * 0 = 0,
    # so nothing overflows to NaN even when beta * distance overflows to inf.
    logits -= logits.min(axis=1, keepdims=True)
    logits *= -0.5 * beta
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def soft_kmeans(X, centers, *, beta, max_iter=1000, tol=1e-10):
    """EM for equal-weight Gaussians with a fixed isotropic covariance ``(1/beta) I``.

    Only the means are estimated: the E-step gives responsibilities
    ``r_nk = softmax_k(-beta/2 * ||x_n - c_k||^2)`` (computed in log space, so any
    ``beta`` up to ``inf``-like values is stable) and the M-step sets
    ``c_k = sum_n r_nk x_n / sum_n r_nk``. As ``beta -> inf`` this is Lloyd's
    algorithm (see :func:`em_kmeans_limit`).

    Parameters
    ----------
    X : array_like, shape (n_obs, n_features)
        Data.
    centers : array_like, shape (n_components, n_features)
        Initial centres.
    beta : float
        Inverse of the component variance (``eps = 1 / beta``), in 1 / (data units)^2.
    max_iter : int, default 1000
        Maximum EM iterations.
    tol : float, default 1e-10
        Stop when the sum of squared centre shifts is at most ``tol * mean(var(X, axis=0))``
        (0 stops only when the centres no longer change).

    Returns
    -------
    SoftKMeansResult
        ``centers`` (K, D), ``responsibilities`` (N, K) at those centres, ``n_iter``,
        ``converged``.

    Notes
    -----
    A component whose total responsibility underflows to exactly 0 keeps its centre
    (the M-step is undefined there); this can only happen for very large ``beta``,
    where it is also what Lloyd's algorithm does with an empty cluster before
    re-seeding.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> res = soft_kmeans(X, [[0.0], [10.0]], beta=1e6)
    >>> res.centers.ravel().tolist()
    [0.5, 10.5]
    """
    X = check_data(X)
    n, d = X.shape
    c = np.array(centers, dtype=np.float64, order="C", copy=True)
    if c.ndim != 2 or c.shape[1] != d:
        raise ValueError(
            f"centers must have shape (n_components, {d}) to match X; got shape {c.shape}."
        )
    check_n_components(c.shape[0], n, name="centers.shape[0]")
    if not np.isfinite(c).all():
        raise ValueError("centers contains NaN or infinite values; give finite centres.")
    beta = check_positive(beta, "beta", allow_inf=False)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_positive(tol, "tol", strict=False)
    tol_abs = float(np.mean(np.var(X, axis=0)) * tol)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        resp = _soft_responsibilities(X, c, beta)
        nk = resp.sum(axis=0)
        new = c.copy()
        ok = nk > 0
        new[ok] = (resp.T @ X)[ok] / nk[ok, None]
        shift = float(((new - c) ** 2).sum())
        c = new
        if shift <= tol_abs:
            converged = True
            break
    if not converged:
        warn(
            f"soft_kmeans did not converge in max_iter={max_iter} iterations (beta={beta:g}); "
            "increase max_iter or tol.",
            ConvergenceWarning,
        )
    resp = _soft_responsibilities(X, c, beta)
    return SoftKMeansResult(
        centers=c, responsibilities=resp, n_iter=it, converged=converged, beta=beta
    )


@dataclass(frozen=True, eq=False)
class KMeansLimitResult:
    """Result of :func:`em_kmeans_limit`: soft EM fixed points over a sequence of eps.

    Attributes
    ----------
    epsilons : ndarray, shape (E,)
        Component variances, in the order given.
    responsibilities : ndarray, shape (E, N, K)
        Soft-EM responsibilities at each eps.
    centers : ndarray, shape (E, K, D)
        Soft-EM centres at each eps.
    n_iter : ndarray of int, shape (E,)
        EM iterations at each eps.
    max_abs_deviation : ndarray, shape (E,)
        ``max |responsibilities - onehot(kmeans labels)|`` at each eps.
    center_error : ndarray, shape (E,)
        ``max |centers - kmeans centers|`` at each eps.
    kmeans : KMeansResult
        Lloyd's algorithm from the same initial centres.
    init_centers : ndarray, shape (K, D)
    """

    epsilons: np.ndarray
    responsibilities: np.ndarray
    centers: np.ndarray
    n_iter: np.ndarray
    max_abs_deviation: np.ndarray
    center_error: np.ndarray
    kmeans: KMeansResult
    init_centers: np.ndarray

    def to_dataframe(self):
        """One row per eps: ``eps``, ``beta``, ``max_abs_deviation``, ``center_error``,
        ``n_iter`` and the mean assignment entropy (nats) -- ready to plot."""
        import pandas as pd

        r = self.responsibilities
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.where(r > 0, r * np.log(r), 0.0).sum(axis=2).mean(axis=1)
        return pd.DataFrame(
            {
                "eps": self.epsilons,
                "beta": 1.0 / self.epsilons,
                "max_abs_deviation": self.max_abs_deviation,
                "center_error": self.center_error,
                "mean_entropy": ent,
                "n_iter": self.n_iter,
            }
        )


def em_kmeans_limit(X, centers, epsilons=None, *, max_iter=5000, tol=1e-10):
    """Soft assignments hardening into k-means as the component variance eps shrinks.

    For each ``eps`` runs :func:`soft_kmeans` with ``beta = 1/eps`` from ``centers``,
    and compares the fixed point with Lloyd's algorithm (:func:`kmeans` with
    ``init=centers``, ``tol=0``) from the same centres.

    Parameters
    ----------
    X : array_like, shape (n_obs, n_features)
        Data.
    centers : array_like, shape (n_components, n_features)
        Common initial centres.
    epsilons : array_like of float, shape (E,), optional
        Component variances in data units squared. Default: ``mean(var(X, axis=0))``
        times ``logspace(0, -6, 13)``.
    max_iter, tol
        Passed to :func:`soft_kmeans` (EM is slow to converge near the eps where
        clusters split, hence the larger default ``max_iter``); ``max_iter`` also bounds
        Lloyd's algorithm.

    Returns
    -------
    KMeansLimitResult
        Arrays over eps (responsibilities (E, N, K), centres (E, K, D), deviations
        from the k-means partition); ``to_dataframe()`` for plotting.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [4.0], [5.0]])
    >>> lim = em_kmeans_limit(X, [[0.0], [5.0]], epsilons=[10.0, 1e-3])
    >>> bool(lim.max_abs_deviation[0] > 0.1), bool(lim.max_abs_deviation[1] < 1e-12)
    (True, True)
    """
    X = check_data(X)
    c0 = np.array(centers, dtype=np.float64, order="C", copy=True)
    if c0.ndim != 2 or c0.shape[1] != X.shape[1]:
        raise ValueError(
            f"centers must have shape (n_components, {X.shape[1]}); got shape {c0.shape}."
        )
    if epsilons is None:
        epsilons = float(np.mean(np.var(X, axis=0))) * np.logspace(0, -6, 13)
    eps = np.atleast_1d(np.asarray(epsilons, dtype=np.float64))
    if eps.ndim != 1 or eps.size == 0 or not np.all(np.isfinite(eps)) or np.any(eps <= 0):
        raise ValueError(
            f"epsilons must be a non-empty 1-D sequence of finite positive variances; got {eps}."
        )
    km = kmeans(X, c0.shape[0], init=c0, n_init=1, tol=0.0, max_iter=max_iter)
    onehot = np.zeros((X.shape[0], c0.shape[0]))
    onehot[np.arange(X.shape[0]), km.labels] = 1.0
    resp, cents, iters, dev, cerr = [], [], [], [], []
    for e in eps:
        res = soft_kmeans(X, c0, beta=1.0 / e, max_iter=max_iter, tol=tol)
        resp.append(res.responsibilities)
        cents.append(res.centers)
        iters.append(res.n_iter)
        dev.append(float(np.abs(res.responsibilities - onehot).max()))
        cerr.append(float(np.abs(res.centers - km.centers).max()))
    return KMeansLimitResult(
        epsilons=eps,
        responsibilities=np.stack(resp),
        centers=np.stack(cents),
        n_iter=np.asarray(iters, dtype=np.int64),
        max_abs_deviation=np.asarray(dev),
        center_error=np.asarray(cerr),
        kmeans=km,
        init_centers=c0,
    )
