"""EM against MCMC: the point estimate next to the posterior it summarises.

:func:`compare_fits` relabels the posterior against the EM fit
(:func:`bayesmix.relabel`, Stephens' cost), then reports

* parameter by parameter: the EM value, the posterior mean, the ``prob`` highest
  density interval (:func:`arviz_stats.hdi`) and whether the EM value lies inside;
* agreement of hard partitions: the adjusted Rand index (Hubert & Arabie 1985)
  between the EM partition (``em_result.predict(X)``) and the posterior point
  partition (:func:`bayesmix.point_partition`, Binder loss), plus the share of
  observations whose EM label equals the posterior most probable label
  (:func:`bayesmix.membership`, same labelling after relabelling);
* predictive fit on the data: the plug-in EM log density
  ``sum_i log p(x_i | theta_EM)`` next to the posterior predictive
  ``sum_i log (1/S) sum_s p(x_i | theta_s)`` (the lppd), both on the same data (not
  cross-validated: use :func:`bayesmix.loo` for that).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from bayesmix.mcmc._relabel import check_labels_usable, relabel
from bayesmix.mcmc._trace import get_observed
from bayesmix.posterior._membership import membership, point_partition

# arviz_stats is imported inside _parameter_table() only (import cost of ArviZ).

__all__ = ["FitComparison", "adjusted_rand_index", "compare_fits"]

#: Above this many observations the N x N co-clustering matrix is not formed and the
#: ARI uses the posterior most probable labels instead of the point partition.
MAX_OBS_POINT_PARTITION = 5000


def adjusted_rand_index(labels_a, labels_b):
    """Adjusted Rand index between two partitions of the same observations.

    ``ARI = (sum_ij C(n_ij, 2) - E) / (0.5 (sum_i C(a_i, 2) + sum_j C(b_j, 2)) - E)``
    with ``E = sum_i C(a_i, 2) sum_j C(b_j, 2) / C(n, 2)`` (Hubert & Arabie 1985), ``n_ij``
    the contingency table and ``a_i``, ``b_j`` its margins. Label values are arbitrary.

    Parameters
    ----------
    labels_a, labels_b : array_like of int, shape (N,)

    Returns
    -------
    float
        1 for identical partitions, about 0 for independent ones.

    Examples
    --------
    >>> adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    a = np.asarray(labels_a).ravel()
    b = np.asarray(labels_b).ravel()
    if a.shape != b.shape:
        raise ValueError(
            f"the two partitions must label the same observations; got {a.size} and {b.size} "
            "labels."
        )
    n = a.size
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), dtype=np.int64)
    np.add.at(table, (ai, bi), 1)

    def comb2(x):
        x = np.asarray(x, dtype=float)
        return (x * (x - 1) / 2).sum()

    sum_ij = comb2(table)
    sum_a = comb2(table.sum(1))
    sum_b = comb2(table.sum(0))
    total = n * (n - 1) / 2
    expected = sum_a * sum_b / total if total else 0.0
    max_index = 0.5 * (sum_a + sum_b)
    if max_index == expected:  # both trivial partitions (all in one, or all singletons)
        return 1.0
    return float((sum_ij - expected) / (max_index - expected))


@dataclass
class FitComparison:
    """Result of :func:`compare_fits`.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``parameter``, ``component``, ``feature``, ``feature2``, ``em``,
        ``posterior_mean``, ``hdi_low``, ``hdi_high``, ``inside``.
    ari : float
        Adjusted Rand index, EM partition vs posterior point partition.
    label_agreement : float
        Share of observations with EM label == posterior most probable label.
    log_predictive : dict
        ``{"em": plug-in sum log p(x_i | theta_EM), "posterior": lppd}``.
    prob : float
        HDI mass.
    partition : str
        How the posterior partition was obtained.
    relabelled : xarray.DataTree
        The posterior relabelled against the EM fit.
    """

    table: pd.DataFrame
    ari: float
    label_agreement: float
    log_predictive: dict
    prob: float
    partition: str
    relabelled: xr.DataTree

    @property
    def fraction_inside(self):
        """Share of parameters whose EM value lies inside the posterior HDI."""
        return float(self.table["inside"].mean()) if len(self.table) else float("nan")

    def __repr__(self):
        t = self.table
        lines = [
            f"FitComparison: EM vs posterior ({len(t)} parameters, {self.prob:.0%} HDI)",
            f"  EM value inside the HDI: {int(t['inside'].sum())}/{len(t)} "
            f"({self.fraction_inside:.0%})",
        ]
        outside = t[~t["inside"]]
        for _, row in outside.head(5).iterrows():
            where = ", ".join(
                str(row[c]) for c in ("component", "feature", "feature2") if row[c] != ""
            )
            lines.append(
                f"    outside: {row['parameter']}[{where}] EM {row['em']:.4g}, HDI "
                f"[{row['hdi_low']:.4g}, {row['hdi_high']:.4g}]"
            )
        lines += [
            f"  ARI(EM partition, {self.partition}): {self.ari:.3f}; "
            f"label agreement {self.label_agreement:.1%}",
            f"  log predictive density on the data: EM plug-in {self.log_predictive['em']:.2f}, "
            f"posterior predictive {self.log_predictive['posterior']:.2f}",
        ]
        return "\n".join(lines)


def _posterior_lppd(idata):
    if "log_likelihood" in idata.children and "X" in idata["log_likelihood"].data_vars:
        ll = idata["log_likelihood"]["X"].transpose("chain", "draw", "obs").values
        ll = ll.reshape(-1, ll.shape[-1])
        return float((logsumexp(ll, axis=0) - np.log(ll.shape[0])).sum())
    from bayesmix.mcmc._pointwise import iter_pointwise

    total = 0.0  # chunks of observations: never the (draws, N) matrix
    for _, ll in iter_pointwise(idata):
        ll = ll.reshape(-1, ll.shape[-1])
        total += float((logsumexp(ll, axis=0) - np.log(ll.shape[0])).sum())
    return total


def compare_fits(em_result, idata, *, prob=0.94):
    """Compare an EM fit with the posterior, parameter by parameter and in partitions.

    Parameters
    ----------
    em_result : EMResult-like
        ``bayesmix.fit_em(X, K, ...)`` on the data of ``idata`` (anything with
        ``weights``, ``means``, ``covariances``, ``predict(X)`` and
        ``score_samples(X)``), or a :class:`bayesmix.VIResult` of ``bayesmix.fit_vi``
        (its posterior means, and its posterior predictive density as ``"em"``).
    idata : xarray.DataTree
        A finite-mixture posterior with the same K (``bayesmix.sample``).
    prob : float
        Mass of the highest density intervals (arviz_stats.hdi).

    Returns
    -------
    FitComparison
        ``.table``, ``.ari``, ``.label_agreement``, ``.log_predictive`` and a
        readable repr (see the module docstring for the definitions).

    Raises
    ------
    ValueError
        For a Dirichlet-process fit, an EM fit with another K or on other data.

    Examples
    --------
    >>> import numpy as np
    >>> import bayesmix as bm
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> X, _ = bm.simulate(100, [0.5, 0.5], [[0, 0], [6, 0]], [np.eye(2)] * 2, random_seed=0)
    >>> em = bm.fit_em(X, 2, random_seed=0)
    >>> rng = np.random.default_rng(1)
    >>> w = np.broadcast_to(em.weights, (2, 50, 2)) + rng.normal(0, 0.02, (2, 50, 1)) * [1, -1]
    >>> mu = em.means + rng.normal(0, 0.1, (2, 50, 2, 2))
    >>> cov = np.broadcast_to(em.covariances, (2, 50, 2, 2, 2))
    >>> cmp = compare_fits(em, from_arrays(w, mu, cov, X))
    >>> round(cmp.ari, 3)
    1.0
    """
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"idata must be an xarray.DataTree from bayesmix.sample; got {type(idata).__name__}."
        )
    check_labels_usable(idata, what="compare_fits")
    if not (isinstance(prob, float | int) and 0 < prob < 1):
        raise ValueError(f"prob must be a number in (0, 1); got {prob!r}.")
    for attr in ("predict", "score_samples"):
        if not hasattr(em_result, attr):
            raise TypeError(
                f"em_result must be a fitted EM result (bayesmix.fit_em); got "
                f"{type(em_result).__name__} without {attr}()."
            )
    X = get_observed(idata)
    rel = relabel(idata, reference=em_result)  # checks K and shapes
    table = _parameter_table(rel, em_result, prob)

    em_labels = np.asarray(em_result.predict(X))
    memb = membership(rel, relabel=False)
    post_labels = memb["label"].values
    if X.shape[0] <= MAX_OBS_POINT_PARTITION:
        part = point_partition(rel, loss="binder").labels
        how = "posterior point partition (Binder)"
    else:
        part = post_labels
        how = "posterior most probable labels"
    log_pred = {
        "em": float(np.sum(em_result.score_samples(X))),
        "posterior": _posterior_lppd(rel),
    }
    return FitComparison(
        table=table,
        ari=adjusted_rand_index(em_labels, part),
        label_agreement=float(np.mean(em_labels == post_labels)),
        log_predictive=log_pred,
        prob=float(prob),
        partition=how,
        relabelled=rel,
    )


def _parameter_table(rel, em_result, prob):
    """One row per scalar parameter: EM estimate, posterior mean, HDI, EM inside the HDI."""
    import arviz_stats as azs

    post = rel["posterior"].to_dataset()[["weights", "means", "covariances"]]
    mean = post.mean(("chain", "draw"))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        hdi = azs.hdi(post, prob=prob)
    em_vals = {
        "weights": np.asarray(em_result.weights, dtype=float),
        "means": np.asarray(em_result.means, dtype=float),
        "covariances": np.asarray(em_result.covariances, dtype=float),
    }
    rows = []
    for name in ("weights", "means", "covariances"):
        da = post[name]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        pm = mean[name].transpose(*dims).values
        lo = hdi[name].sel(ci_bound="lower").transpose(*dims).values
        hi = hdi[name].sel(ci_bound="upper").transpose(*dims).values
        const = (da.max(("chain", "draw")) == da.min(("chain", "draw"))).transpose(*dims).values
        for idx in np.ndindex(*pm.shape):
            labels = {d: da[d].values[i] for d, i in zip(dims, idx, strict=True)}
            if name == "covariances":
                if idx[2] > idx[1]:
                    continue  # symmetric: lower triangle only
                if const[idx] and idx[1] != idx[2] and em_vals[name][idx] == pm[idx]:
                    continue  # structural zero of a diagonal/spherical covariance
            em = float(em_vals[name][idx])
            rows.append(
                {
                    "parameter": name,
                    "component": labels.get("component", ""),
                    "feature": labels.get("feature", ""),
                    "feature2": labels.get("feature2", ""),
                    "em": em,
                    "posterior_mean": float(pm[idx]),
                    "hdi_low": float(lo[idx]),
                    "hdi_high": float(hi[idx]),
                    "inside": bool(lo[idx] <= em <= hi[idx]),
                }
            )
    return pd.DataFrame(rows)
