"""Recovery of a known truth (simulated data): ARI and parameter errors after matching
components (the report's "Recovery" section)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from bayesmix.mcmc._trace import get_params
from bayesmix.posterior._compare import adjusted_rand_index

__all__ = ["recovery"]


def _match_components(true_means, est_means):
    cost = ((true_means[:, None, :] - est_means[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


def recovery(truth, em_result=None, idata=None, labels=None):
    """Recovery of a known truth: ARI and parameter errors after matching components.

    Parameters
    ----------
    truth : dict
        ``labels`` (N,), ``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D, D).
    em_result : EMResult-like, optional
    idata : xarray.DataTree, optional
        A posterior (its posterior means are compared).
    labels : array_like of int, shape (N,), optional
        Estimated labels (their ARI against the true labels).

    Returns
    -------
    dict
        ``ari`` (of ``labels`` against the truth) and, when the fitted K equals the true
        K, per source (``em``, ``posterior mean``) the largest absolute error of the
        weights and means and the largest Frobenius error of the covariances, after
        matching components to the truth by their means (Hungarian algorithm).

    Examples
    --------
    >>> truth = {"labels": [0, 0, 1], "weights": [0.5, 0.5], "means": np.zeros((2, 1))}
    >>> recovery(truth, labels=[1, 1, 0])
    {'ari': 1.0, 'parameter_errors': []}
    """
    out = {}
    if labels is not None:
        out["ari"] = adjusted_rand_index(truth["labels"], labels)
    Kt = len(truth["weights"])
    sources = []
    if em_result is not None:
        sources.append(("EM", em_result.weights, em_result.means, em_result.covariances))
    if idata is not None:
        w, m, c = get_params(idata)
        sources.append(("posterior mean", w.mean((0, 1)), m.mean((0, 1)), c.mean((0, 1))))
    errors = []
    for name, w, m, c in sources:
        if len(w) != Kt:
            continue
        perm = _match_components(truth["means"], m)
        errors.append(
            {
                "estimate": name,
                "max |weight error|": float(np.abs(w[perm] - truth["weights"]).max()),
                "max |mean error|": float(np.abs(m[perm] - truth["means"]).max()),
                "max covariance error (Frobenius)": float(
                    np.linalg.norm(c[perm] - truth["covariances"], axis=(1, 2)).max()
                ),
            }
        )
    out["parameter_errors"] = errors
    return out
