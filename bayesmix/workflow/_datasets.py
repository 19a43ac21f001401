"""Built-in data: Old Faithful, and simulated mixtures with known truth."""

from __future__ import annotations

from importlib import resources

import numpy as np

from bayesmix.core._validation import check_random_state

__all__ = ["load_old_faithful", "simulate"]


def load_old_faithful():
    """Load the Old Faithful geyser data (272 eruptions, shipped with the package).

    Returns
    -------
    pandas.DataFrame, shape (272, 2)
        Columns ``eruptions`` (eruption time, minutes) and ``waiting`` (waiting time
        to the next eruption, minutes).

    Notes
    -----
    Härdle (1991) via R's ``datasets::faithful``. The waiting times are integers,
    which lets a diagonal or spherical component collapse onto a single value in a
    maximum-likelihood fit with many components.

    Examples
    --------
    >>> df = load_old_faithful()
    >>> df.shape
    (272, 2)
    >>> list(df.columns)
    ['eruptions', 'waiting']
    """
    import pandas as pd

    with resources.files("bayesmix").joinpath("data/old_faithful.csv").open("r") as fh:
        return pd.read_csv(fh)


def simulate(n_obs, weights, means, covariances, *, random_seed=None):
    """Draw data from a Gaussian mixture with known parameters.

    Parameters
    ----------
    n_obs : int
        Number of observations.
    weights : array_like, shape (K,)
        Mixing weights: non-negative, summing to 1.
    means : array_like, shape (K, D)
        Component means.
    covariances : array_like, shape (K, D, D), (K, D) or (K,)
        Component covariance matrices; a (K, D) array is read as diagonal variances
        and a (K,) array as spherical variances.
    random_seed : int or numpy.random.Generator, optional
        Seed for reproducible draws.

    Returns
    -------
    X : ndarray, shape (n_obs, D)
        The data.
    z : ndarray of int, shape (n_obs,)
        The true component of each observation.

    Examples
    --------
    >>> X, z = simulate(100, [0.5, 0.5], [[0, 0], [5, 5]], [[1, 1], [1, 1]], random_seed=0)
    >>> X.shape, z.shape
    ((100, 2), (100,))
    """
    rng = check_random_state(random_seed)
    if int(n_obs) != n_obs or n_obs < 1:
        raise ValueError(f"n_obs must be a positive integer; got {n_obs!r}.")
    n_obs = int(n_obs)
    weights = np.asarray(weights, dtype=float)
    means = np.atleast_2d(np.asarray(means, dtype=float))
    if weights.ndim != 1:
        raise ValueError(f"weights must have shape (K,); got shape {weights.shape}.")
    K = weights.size
    if means.shape[0] != K:
        raise ValueError(
            f"means must have shape (K, D) with K={K} rows (one per weight); got {means.shape}."
        )
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
        raise ValueError(
            f"weights must be non-negative and sum to 1; got {weights.tolist()} "
            f"(sum {weights.sum():.6g}). Divide by their sum to normalise."
        )
    D = means.shape[1]
    covariances = np.asarray(covariances, dtype=float)
    if covariances.shape == (K,):
        covariances = covariances[:, None, None] * np.eye(D)
    elif covariances.shape == (K, D):
        covariances = covariances[:, :, None] * np.eye(D)
    elif covariances.shape != (K, D, D):
        raise ValueError(
            f"covariances must have shape (K, D, D)=({K}, {D}, {D}), (K, D) for diagonal or "
            f"(K,) for spherical; got {covariances.shape}."
        )
    chol = np.empty_like(covariances)
    for k in range(K):
        try:
            chol[k] = np.linalg.cholesky(covariances[k])
        except np.linalg.LinAlgError as exc:
            raise ValueError(
                f"covariances[{k}] is not symmetric positive definite; every covariance matrix "
                "must be SPD."
            ) from exc
    z = rng.choice(K, size=n_obs, p=weights / weights.sum())
    eps = rng.standard_normal((n_obs, D))
    X = means[z] + np.einsum("nij,nj->ni", chol[z], eps)
    return X, z
