"""Plots of the cluster structure of a posterior: the co-clustering matrix and the
posterior on the number of clusters (re-exported by :mod:`bayesmix.workflow._plots`).

The co-clustering heatmap has one row and column per observation, so it shows at most
``max_points`` of them (default :data:`COCLUSTERING_MAX_POINTS`: more rows than a
figure has pixels only alias); above that a seeded random subset, and the title says
how many. A co-clustering matrix that is itself of a subset of the observations (an
:class:`xarray.DataArray` whose ``obs`` coordinate holds their indices into the data)
is matched to a partition of all observations through that coordinate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bayesmix.posterior._nclusters import _LABELS, n_clusters
from bayesmix.workflow._plot_points import check_max_points, subsample

__all__ = ["COCLUSTERING_MAX_POINTS", "plot_coclustering", "plot_n_clusters"]

#: the co-clustering heatmap shows at most this many observations by default
COCLUSTERING_MAX_POINTS = 2000
#: up to this many rows the heatmap's cells are drawn as they are, above it smoothed
_NEAREST_MAX = 600


def _new_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _rows_of(coclustering, P, z):
    """The partition's label of each row of ``P``, and the number of observations the
    partition (or the co-clustering's attrs) says there are."""
    M = P.shape[0]
    obs = None
    if (
        hasattr(coclustering, "coords")
        and coclustering.dims
        and coclustering.dims[0] in (coclustering.coords)
    ):
        obs = np.asarray(coclustering.coords[coclustering.dims[0]].values)
    attrs = getattr(coclustering, "attrs", {}) or {}
    n_total = attrs.get("n_obs")
    if z.shape == (M,):
        return z, int(n_total) if n_total is not None else M
    if obs is not None and np.issubdtype(obs.dtype, np.integer) and len(z) > M:
        if obs.min() >= 0 and obs.max() < len(z):
            return z[obs], len(z)
        raise ValueError(
            f"coclustering's obs coordinate holds indices {obs.min()}..{obs.max()}, outside "
            f"the partition's {len(z)} observations; pass the partition of the data the "
            "co-clustering was computed from."
        )
    raise ValueError(
        f"partition must give one label per row of the (M, M) coclustering (M = {M}) or, "
        f"when the co-clustering is of a subset of the observations, one per observation "
        f"with the subset's indices as the DataArray's obs coordinate; got a partition of "
        f"shape {z.shape} for a coclustering of shape {P.shape}"
        + ("" if obs is not None else " without an obs coordinate")
        + "."
    )


def plot_coclustering(
    coclustering, partition, *, ax=None, max_points=COCLUSTERING_MAX_POINTS, random_seed=0
):
    """The co-clustering matrix with observations ordered by a point partition.

    Parameters
    ----------
    coclustering : array_like or xarray.DataArray, shape (M, M)
        Posterior probability that observations n and m share a component
        (:func:`bayesmix.coclustering`). It may be of a subset of the N observations:
        then a DataArray whose first dim's coordinate (``obs``) holds the subset's
        indices into the data, and ``partition`` may be of all N.
    partition : array_like of int, shape (M,) or (N,)
        Point-estimate cluster labels (:func:`bayesmix.point_partition`); observations
        are sorted by cluster (largest first) and, within one, by their mean
        co-clustering with the cluster. White lines separate the clusters.
    ax : matplotlib.axes.Axes, optional
    max_points : int or None
        Show at most this many observations (default 2,000; None: all M): above it a
        uniform random subset of the rows (and the same columns), drawn with
        ``numpy.random.default_rng(random_seed)``. The title says how many of how many
        observations are shown.
    random_seed : int or numpy.random.Generator
        Seed of that subset.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([0, 1, 0, 1])
    >>> fig = plot_coclustering((z[:, None] == z[None, :]).astype(float), z)
    >>> fig.axes[0].get_title()
    'co-clustering, 2 clusters in the point partition'
    """
    P = np.asarray(getattr(coclustering, "values", coclustering), dtype=float)
    z_all = np.asarray(partition).astype(int)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or z_all.ndim != 1:
        raise ValueError(
            f"coclustering must be square (M, M) and partition one-dimensional; got "
            f"{P.shape} and {z_all.shape}."
        )
    z, n_total = _rows_of(coclustering, P, z_all)
    keep = subsample(P.shape[0], check_max_points(max_points), random_seed)
    if len(keep) < P.shape[0]:
        P, z = P[np.ix_(keep, keep)], z[keep]
    labels, counts = np.unique(z, return_counts=True)
    order_labels = labels[np.argsort(-counts, kind="stable")]
    order = []
    for lab in order_labels:
        members = np.flatnonzero(z == lab)
        within = P[np.ix_(members, members)].mean(axis=1)
        order.extend(members[np.argsort(-within, kind="stable")])
    order = np.array(order)
    fig, ax = _new_axes(ax, figsize=(6.0, 5.2))
    im = ax.imshow(
        P[np.ix_(order, order)],
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest" if len(z) <= _NEAREST_MAX else "antialiased",
    )
    bounds = np.cumsum([np.sum(z == lab) for lab in order_labels])[:-1] - 0.5
    for b in bounds:
        ax.axhline(b, color="w", lw=0.8)
        ax.axvline(b, color="w", lw=0.8)
    fig.colorbar(im, ax=ax, label="P(same component)")
    ax.set_xlabel("observation (ordered by cluster)")
    ax.set_ylabel("observation (ordered by cluster)")
    n_clusters_all = len(np.unique(z_all))
    title = f"co-clustering, {n_clusters_all} clusters in the point partition"
    if len(z) < n_total:
        title += f"\n{len(z):,} of {n_total:,} observations shown (random subset)"
    ax.set_title(title)
    return fig


# ------------------------------------------------------------------ number of clusters
def _as_table(obj):
    if isinstance(obj, pd.DataFrame):
        missing = [c for c in ("variable", "k", "probability") if c not in obj.columns]
        if missing:
            raise ValueError(
                f"a table for plot_n_clusters needs columns variable, k, probability (as "
                f"returned by bm.n_clusters); it lacks {missing}."
            )
        return obj
    return n_clusters(obj)


def plot_n_clusters(data, *, prior=None, ax=None, max_k=None):
    """Bar chart of P(K+ = k) (and P(K = k) for an MFM) with Monte-Carlo error bars.

    Parameters
    ----------
    data : xarray.DataTree or pandas.DataFrame
        A posterior (summarised with :func:`bayesmix.n_clusters`) or the table it returned.
    prior : pandas.DataFrame or dict, optional
        The prior to overlay: a table from :func:`bayesmix.prior_n_clusters`, or a dict
        ``{"n_occupied": p, "n_components": q}`` of probability arrays for k = 1, 2, ...
    ax : matplotlib.axes.Axes, optional
    max_k : int, optional
        Right end of the k axis (default: the largest k with posterior probability
        >= 0.001 or prior probability >= 0.01).

    Returns
    -------
    matplotlib.figure.Figure
        Bars are the posterior probabilities, error bars +- 2 MCSE (cut at 0 and 1);
        the prior is drawn as open markers joined by a thin line.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"variable": "n_occupied", "k": [1, 2, 3],
    ...                   "probability": [0.1, 0.8, 0.1], "mcse": [0.01, 0.02, 0.01]})
    >>> fig = plot_n_clusters(t, prior={"n_occupied": [0.3, 0.4, 0.2, 0.1]})
    >>> fig.axes[0].get_xlabel()
    'number of clusters k'
    """
    table = _as_table(data)
    if isinstance(prior, dict):
        prior = pd.concat(
            [
                pd.DataFrame({"variable": v, "k": np.arange(1, len(p) + 1), "probability": p})
                for v, p in prior.items()
            ],
            ignore_index=True,
        )
    elif prior is not None:
        prior = _as_table(prior)
    fig, ax = _new_axes(ax, figsize=(6.0, 3.8))
    variables = list(dict.fromkeys(table["variable"]))
    width = 0.8 / max(len(variables), 1)
    shown = table.loc[table["probability"] >= 1e-3, "k"]
    if prior is not None:
        shown = pd.concat([shown, prior.loc[prior["probability"] >= 1e-2, "k"]])
    kmax = int(max_k if max_k is not None else (shown.max() if len(shown) else 1))
    for i, var in enumerate(variables):
        sub = table[(table["variable"] == var) & (table["k"] <= kmax)]
        off = (i - (len(variables) - 1) / 2) * width
        p = sub["probability"].to_numpy()
        yerr = None
        if "mcse" in sub:  # +- 2 MCSE, cut at 0 and 1
            two = 2 * sub["mcse"].to_numpy()
            yerr = np.vstack([np.minimum(two, p), np.minimum(two, 1 - p)])
        ax.bar(
            sub["k"] + off,
            p,
            width=width * 0.95,
            color=f"C{i}",
            alpha=0.8,
            yerr=yerr,
            capsize=3,
            label=f"posterior {_LABELS.get(var, var)}",
        )
        if prior is not None:
            pr = prior[(prior["variable"] == var) & (prior["k"] <= kmax)]
            if len(pr):
                ax.plot(
                    pr["k"] + off,
                    pr["probability"],
                    "o-",
                    color=f"C{i}",
                    mfc="white",
                    lw=0.8,
                    ms=5,
                    label=f"prior {_LABELS.get(var, var)}",
                )
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("probability")
    ax.set_xticks(np.arange(1, kmax + 1))
    ax.set_xlim(0.5, kmax + 0.5)
    ax.set_ylim(0, None)
    ax.legend(fontsize="small")
    ax.set_title("Posterior on the number of clusters (error bars: ±2 MCSE)")
    return fig
