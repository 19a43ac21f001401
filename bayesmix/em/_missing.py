"""EM on data with missing entries (NaN): the E-step of :mod:`bayesmix.em._loop` when the
data have gaps (Ghahramani & Jordan 1994).

:func:`fit_em` sets ``_RunSettings.missing`` (a :class:`~bayesmix.core._missing.MissingPatterns`)
only when ``X`` has a NaN, so data without NaN never reach this module and give
bit-identical results. The E-step evaluates each row on its observed coordinates (one
Cholesky factorisation per (pattern, component)) and returns the observed-data
log-likelihood with the *expected* sufficient statistics, in the layout the covariance
type's ``SECOND_MOMENTS`` entry has (per component, summed, or diagonals), so the
unchanged ``M_STEP`` entry of :mod:`bayesmix.core._covariance` (ML or MAP, any
covariance type in that table) completes the EM update.

Starts: every initialisation strategy (k-means, the hierarchical agglomeration, random)
runs on the data with each gap filled by its feature's observed mean (0 in the centred
fitting frame), and the first M-step uses the sufficient statistics of that filled data;
from then on every update is the exact EM of the observed-data likelihood.
"""

from __future__ import annotations

import numpy as np

from bayesmix.core import _covariance as cv
from bayesmix.core import _missing as ms

__all__ = ["filled", "missing_estep", "noise_log_sides"]


def filled(X):
    """``X`` (centred at its observed means) with its gaps set to 0, the start data."""
    return np.where(np.isnan(X), 0.0, X)


def noise_log_sides(X, volume, noise):
    """Log side lengths (D,) of the noise box: the observed ranges for ``noise=True``; for
    a given volume, the observed ranges scaled so that their product is ``volume``."""
    ranges = np.nanmax(X, axis=0) - np.nanmin(X, axis=0)
    log_sides = np.log(ranges)
    if noise is not True:
        log_sides += (np.log(volume) - log_sides.sum()) / X.shape[1]
    return log_sides


def missing_estep(X, cfg, labels):
    """``e_step(model) -> (ll, nk, sx, sxx)`` on data with gaps (numpy or numba engine)."""
    pats = cfg.missing
    K, D = cfg.n_components, X.shape[1]
    kind = ms.second_moment_kind(cv.SECOND_MOMENTS[cfg.covariance], D)
    noise = cfg.noise_log_sides

    def e_step(model):
        cov = cv.TO_FULL[cfg.covariance](model.cov, K, D)
        if cfg.engine == "numpy":
            ll, nk, sx, sxx = ms.expected_stats_numpy(
                X, pats, model.weights, model.means, cov, labels, cfg.sample_weight, noise
            )
            if kind == "diag":
                return ll, nk, sx, np.diagonal(sxx, axis1=1, axis2=2).copy()
        else:
            ll, nk, sx, sxx = ms.expected_stats(
                X, pats, model.weights, model.means, cov, labels, cfg.sample_weight, noise, kind
            )
            if kind == "diag":
                return ll, nk, sx, sxx
        return ll, nk, sx, sxx if kind == "full" else sxx.sum(0)

    return e_step
