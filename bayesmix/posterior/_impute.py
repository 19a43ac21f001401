"""Imputation of missing values (NaN) from a fitted mixture: :func:`impute`.

From an :class:`~bayesmix.EMResult`, each row's gaps get their conditional mean given the
row's observed coordinates under the fitted mixture (or ``n_draws`` draws from that
conditional distribution); from a posterior (an ``xarray.DataTree`` in the layout of
:mod:`bayesmix.mcmc._trace`), one imputation per posterior draw, each a draw from the
conditional distribution under that draw's parameters (proper multiple imputation).
The conditional Gaussian algebra is :func:`bayesmix.core._missing.conditional_impute`.
"""

from __future__ import annotations

import numpy as np

from bayesmix.core._missing import MissingPatterns, conditional_impute
from bayesmix.core._validation import (
    check_data,
    check_int,
    check_random_state,
    match_columns,
)

__all__ = ["MAX_IMPUTATION_VALUES", "impute"]

#: a posterior imputation keeps at most this many values (draws x N x D); above it the
#: draws are thinned evenly within each chain
MAX_IMPUTATION_VALUES = 50_000_000


def impute(fit, X, *, n_draws=None, random_seed=None):
    """Fill the missing (NaN) entries of ``X`` from a fitted mixture.

    Parameters
    ----------
    fit : EMResult or xarray.DataTree
        An EM fit (:func:`bayesmix.fit_em`) or a posterior (:func:`bayesmix.sample`,
        :func:`bayesmix.load_fit`) with ``posterior`` variables ``weights``, ``means``
        and ``covariances``.
    X : array_like or pandas.DataFrame, shape (N, D)
        Data with NaN where values are missing (DataFrame columns are matched to the
        fit's feature names). A row with no observed entry is an error.
    n_draws : int, optional
        EM fit: ``None`` (default) returns the conditional means
        ``E[x_m | x_o] = sum_k p(k | x_o) E[x_m | x_o, k]``; an integer returns that many
        draws from the conditional distribution (component drawn from its
        responsibilities, then the missing block from its conditional Gaussian).
        Posterior: the number of posterior draws to use per chain (evenly spaced);
        ``None`` uses every draw, thinned evenly when draws x N x D would exceed
        :data:`MAX_IMPUTATION_VALUES`.
    random_seed : int or numpy.random.Generator, optional
        Seed of the conditional draws.

    Returns
    -------
    ndarray, shape (N, D) or (n_draws, N, D), or xarray.DataArray
        EM fit: ``X`` as float64 with its gaps filled (observed entries unchanged).
        Posterior: a DataArray ``imputed`` with dims (chain, draw, obs, feature), one
        completed data set per posterior draw.

    Notes
    -----
    A noise component (``fit_em(..., noise=...)``) is left out: gaps are filled given
    that the row belongs to a Gaussian component.

    Examples
    --------
    >>> import numpy as np
    >>> import bayesmix as bm
    >>> X = bm.load_old_faithful().to_numpy()
    >>> X[::10, 1] = np.nan
    >>> fit = bm.fit_em(X, 2, random_seed=0)
    >>> filled = bm.impute(fit, X)
    >>> bool(np.isnan(filled).any()), filled.shape
    (False, (272, 2))
    >>> bm.impute(fit, X, n_draws=3, random_seed=0).shape
    (3, 272, 2)
    """
    if hasattr(fit, "children") and "posterior" in getattr(fit, "children", {}):
        return _impute_posterior(fit, X, n_draws, random_seed)
    if not hasattr(fit, "covariances") or not hasattr(fit, "feature_names"):
        raise TypeError(
            "fit must be a bayesmix.EMResult (bm.fit_em) or a posterior DataTree with a "
            f"'posterior' group (bm.sample); got {type(fit).__name__}."
        )
    X = _checked(X, fit.feature_names)
    pats = MissingPatterns(X)
    if n_draws is None:
        return conditional_impute(X, pats, fit.weights, fit.means, fit.covariances)
    n_draws = check_int(n_draws, "n_draws", minimum=1)
    rng = check_random_state(random_seed)
    return conditional_impute(
        X, pats, fit.weights, fit.means, fit.covariances, rng=rng, n_draws=n_draws
    )


def _checked(X, feature_names):
    X = check_data(match_columns(X, feature_names), missing="mar", check_scale=False)
    if X.shape[1] != len(feature_names):
        raise ValueError(
            f"X has {X.shape[1]} features but the mixture was fitted on "
            f"{len(feature_names)} ({list(feature_names)}); pass data with the same columns."
        )
    return X


def _draw_positions(n_chain_draws, n_draws, n_values):
    """Evenly spaced draw positions within a chain."""
    cap = max(1, MAX_IMPUTATION_VALUES // max(n_values, 1))
    want = n_chain_draws if n_draws is None else min(n_draws, n_chain_draws)
    want = min(want, cap) if n_draws is None else want
    return np.unique(np.linspace(0, n_chain_draws - 1, want).round().astype(int))


def _impute_posterior(idata, X, n_draws, random_seed):
    import xarray as xr

    post = idata["posterior"]
    for var in ("weights", "means", "covariances"):
        if var not in post.data_vars:
            raise ValueError(
                f"the posterior has no {var!r} variable; impute needs weights, means and "
                "covariances (the layout of bayesmix.sample)."
            )
    names = [str(f) for f in post["means"].coords["feature"].values]
    X = _checked(X, names)
    if n_draws is not None:
        n_draws = check_int(n_draws, "n_draws", minimum=1)
    rng = check_random_state(random_seed)
    W = post["weights"].transpose("chain", "draw", "component").values
    M = post["means"].transpose("chain", "draw", "component", "feature").values
    C = post["covariances"].transpose("chain", "draw", "component", "feature", "feature2").values
    keep = _draw_positions(W.shape[1], n_draws, X.size * W.shape[0])
    pats = MissingPatterns(X)
    out = np.empty((W.shape[0], keep.size, *X.shape))
    for c in range(W.shape[0]):
        for i, d in enumerate(keep):
            live = W[c, d] > 0  # padded components (an MFM's) carry no weight
            out[c, i] = conditional_impute(
                X, pats, W[c, d][live], M[c, d][live], C[c, d][live], rng=rng, n_draws=1
            )[0]
    draws = post["draw"].values[keep]
    return xr.DataArray(
        out,
        dims=("chain", "draw", "obs", "feature"),
        coords={"chain": post["chain"].values, "draw": draws, "feature": names},
        name="imputed",
        attrs={"n_missing": int(pats.n_missing)},
    )
