"""Built-in data: Old Faithful, and simulated mixtures with known truth."""

from __future__ import annotations

from importlib import resources

import numpy as np

from bayesmix.core._validation import check_random_state

__all__ = ["check_mixture", "load_old_faithful", "simulate"]


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
    weights, means, covariances = check_mixture(weights, means, covariances)
    K, D = means.shape
    chol = np.linalg.cholesky(covariances)
    z = rng.choice(K, size=n_obs, p=weights / weights.sum())
    eps = rng.standard_normal((n_obs, D))
    X = means[z] + np.einsum("nij,nj->ni", chol[z], eps)
    return X, z


def _numeric(value, name, what):
    """``value`` as a finite float array, or an error naming ``name``."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {what}; got {value!r}.") from None
    if isinstance(value, (str, bytes)) or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be {what} (finite numbers); got {value!r}.")
    return arr


def check_mixture(weights, means, covariances, *, names=("weights", "means", "covariances")):
    """Validate the parameters of a Gaussian mixture (as :func:`simulate` takes them).

    Parameters
    ----------
    weights, means, covariances : array_like
        As in :func:`simulate`.
    names : tuple of str
        How errors name the three parameters (a spec names its keys).

    Returns
    -------
    weights : ndarray, shape (K,)
    means : ndarray, shape (K, D)
    covariances : ndarray, shape (K, D, D)
        Full matrices, each symmetric positive definite.

    Examples
    --------
    >>> w, m, c = check_mixture([0.5, 0.5], [[0.0], [3.0]], [1.0, 2.0])
    >>> c.shape
    (2, 1, 1)
    """
    nw, nm, nc = names
    weights = _numeric(weights, nw, "a list of mixing weights (one per component)")
    means = np.atleast_2d(_numeric(means, nm, "a list of mean vectors, shape (K, D)"))
    if weights.ndim != 1:
        raise ValueError(f"{nw} must have shape (K,); got shape {weights.shape}.")
    K = weights.size
    if means.ndim != 2 or means.shape[0] != K:
        raise ValueError(
            f"{nm} must have shape (K, D) with K={K} rows (one per weight); got {means.shape}."
        )
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
        raise ValueError(
            f"{nw} must be non-negative and sum to 1; got {weights.tolist()} "
            f"(sum {weights.sum():.6g}). Divide by their sum to normalise."
        )
    D = means.shape[1]
    cov = _numeric(covariances, nc, "covariance matrices, diagonal variances or variances")
    if cov.shape == (K,):
        cov = cov[:, None, None] * np.eye(D)
    elif cov.shape == (K, D):
        cov = cov[:, :, None] * np.eye(D)
    elif cov.shape != (K, D, D):
        raise ValueError(
            f"{nc} must have shape (K, D, D)=({K}, {D}, {D}), (K, D) for diagonal or "
            f"(K,) for spherical; got {cov.shape}."
        )
    for k in range(K):
        try:
            np.linalg.cholesky(cov[k])
        except np.linalg.LinAlgError:
            raise ValueError(
                f"{nc}[{k}] is not symmetric positive definite; every covariance matrix "
                "must be SPD."
            ) from None
    return weights, means, cov
