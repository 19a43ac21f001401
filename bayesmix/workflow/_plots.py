"""Plots of mixture fits: data with component ellipses, membership uncertainty,
model selection curves, trace/rank diagnostics, the co-clustering matrix and the
posterior predictive check of the marginals.

Every function draws with matplotlib's object-oriented API on a new
:class:`matplotlib.figure.Figure` (or on the ``ax`` given) and returns the Figure, so
it works without pyplot, in scripts (Agg), notebooks and the report alike. Inputs are
the objects the rest of bayesmix returns: an EM result (anything with ``weights``
(K,), ``means`` (K, D) and full ``covariances`` (K, D, D)), a posterior
:class:`xarray.DataTree` in the schema of :mod:`bayesmix.mcmc._trace`, and plain arrays.

For data with more than two features, :func:`plot_fit` draws a pairs grid for up to
four features and the first two features beyond that (its title says so).

Large data: above ``max_points`` observations (default 5,000) the points under the
ellipses are a log-count hexbin density of all of them (or a seeded random subsample),
and per-point plots draw a seeded random subsample; the title says which. The rules
are in :mod:`bayesmix.workflow._plot_points`. The co-clustering and number-of-clusters
plots are in :mod:`bayesmix.workflow._plots_clusters`, the posterior predictive check in
:mod:`bayesmix.workflow._plots_ppc`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bayesmix.core._gaussian import cholesky_or_raise, log_component_densities, responsibilities
from bayesmix.core._validation import check_data, check_random_state
from bayesmix.mcmc._trace import flat_params, get_observed, mixture_params
from bayesmix.workflow._plot_points import (
    MAX_POINTS,
    check_large,
    check_max_points,
    draw_hexbin,
    hexbin_note,
    marker_scale,
    shown_note,
    subsample,
)
from bayesmix.workflow._plots_clusters import plot_coclustering, plot_n_clusters
from bayesmix.workflow._plots_ppc import plot_ppc

__all__ = [
    "membership_summary",
    "plot_coclustering",
    "plot_ellipses",
    "plot_fit",
    "plot_n_clusters",
    "plot_ppc",
    "plot_rank",
    "plot_selection",
    "plot_uncertainty",
]

#: posterior components lighter than this are not drawn (empty Dirichlet-process sticks)
MIN_DRAWN_WEIGHT = 0.01
_PAIRS_MAX = 4


def _colors(K):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if K <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(K)]


#: the colour of noise points (label -1)
_NOISE_GREY = (0.6, 0.6, 0.6, 1.0)


def _new_axes(ax, figsize=(6.0, 4.8)):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _ellipse_xy(mean, cov, radius, n=100):
    """Points of the ellipse {x : (x - mean)^T cov^-1 (x - mean) = radius^2} in 2-D."""
    t = np.linspace(0.0, 2.0 * np.pi, n)
    L = cholesky_or_raise(cov, name="covariances")
    circle = radius * np.stack([np.cos(t), np.sin(t)])
    return (mean[:, None] + L @ circle).T


def _is_tree(obj):
    return hasattr(obj, "children") and hasattr(obj, "attrs") and "posterior" in obj.children


def _default_names(names, D):
    return names is None or list(names) == [f"x{j}" for j in range(D)]


def _names(feature_names, D, idata=None, *, data=None, em_result=None):
    """Feature names for the axes, in this order of preference: ``feature_names`` as
    given, the columns of ``data`` (a DataFrame), the EM result's ``feature_names``, the
    posterior's ``feature`` coordinate, and ``x0, x1, ...``."""
    if feature_names is not None:
        names = [str(f) for f in feature_names]
        if len(names) != D:
            raise ValueError(
                f"feature_names must name each of the data's {D} features; got {len(names)} "
                f"names {names}. Pass {D} names or leave feature_names out to take them from "
                "a DataFrame, the EM result or the posterior."
            )
        return names
    candidates = []
    if data is not None and hasattr(data, "columns"):
        candidates.append([str(c) for c in data.columns])
    if em_result is not None:
        candidates.append(getattr(em_result, "feature_names", None))
    if idata is not None:
        try:
            candidates.append([str(f) for f in idata["posterior"]["feature"].values])
        except KeyError:
            pass
    for names in candidates:
        if names is not None and len(names) == D and not _default_names(names, D):
            return [str(n) for n in names]
    return [f"x{j}" for j in range(D)]


def _em_params(em_result):
    return mixture_params(em_result, "em_result")


# ---------------------------------------------------------------------------- ellipses
def _data(X, idata, what):
    """``(X as given, checked X)``; ``X`` is ``idata``'s observed data when None."""
    if X is None:
        if idata is None:
            raise ValueError(f"{what} needs X or idata (to take the observed data from).")
        X = get_observed(idata)
    return X, check_data(X, missing="mar")


def _random_draws(idata, n_draws, random_seed):
    """``(w, m, c)`` of all draws (chains flattened) and the indices of ``n_draws`` of them."""
    w, m, c = flat_params(idata)
    rng = check_random_state(random_seed)
    return w, m, c, rng.choice(w.shape[0], size=min(n_draws, w.shape[0]), replace=False)


def plot_ellipses(
    X=None,
    em_result=None,
    idata=None,
    *,
    features=(0, 1),
    feature_names=None,
    n_draws=20,
    random_seed=0,
    ax=None,
    truth=None,
    max_points=MAX_POINTS,
    large="hexbin",
):
    """Scatter the data with EM ellipses (1 and 2 sd) and posterior ellipses from draws.

    Parameters
    ----------
    X : array_like, shape (N, D), optional
        Data; taken from ``idata``'s observed data when omitted.
    em_result : EMResult, optional
        Its components are drawn as solid (1 sd) and dashed (2 sd) ellipses of the
        two-feature marginal, with a cross at each mean.
    idata : xarray.DataTree, optional
        ``n_draws`` random posterior draws are drawn as thin translucent 1-sd ellipses
        (components lighter than 1 % are skipped). Relabel first so that colours match
        components across draws.
    features : tuple of two int
        Which two features to plot.
    feature_names : list of str, optional
        Axis labels; by default the columns of ``X`` when it is a DataFrame, else the
        EM result's ``feature_names``, else the posterior's ``feature`` coordinate.
    n_draws : int
    random_seed : int or numpy.random.Generator
        Chooses the posterior draws.
    ax : matplotlib.axes.Axes, optional
    truth : dict or EMResult-like, optional
        Known components (simulated data): ``weights`` (K,), ``means`` (K, D),
        ``covariances`` (K, D, D), drawn as black dotted 1- and 2-sd ellipses with a
        plus at each mean.
    max_points : int or None
        Up to this many observations (default 5,000) every point is drawn; above it
        the data are drawn as ``large`` says, and the axes title says what is shown.
        None: always every point.
    large : {"hexbin", "subsample"}
        How more than ``max_points`` observations are drawn: ``"hexbin"`` (default), a
        density of all of them in hexagonal bins with log-scaled counts and a light
        grey colormap under the ellipses; ``"subsample"``, ``max_points`` of them
        chosen uniformly at random with ``numpy.random.default_rng(random_seed)``
        (title: "5,000 of 100,000 points shown (random subsample, seed 0)"). Markers
        shrink and fade as more than 1,000 points are drawn.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> em = SimpleNamespace(weights=np.ones(1), means=np.zeros((1, 2)),
    ...                      covariances=np.eye(2)[None])
    >>> fig = plot_ellipses(X, em)
    """
    X_in, X = _data(X, idata, "plot_ellipses")
    D = X.shape[1]
    i, j = features
    if D < 2 or not (0 <= i < D and 0 <= j < D) or i == j:
        raise ValueError(
            f"features must be two distinct indices in 0..{D - 1} of the data's {D} features; "
            f"got {features!r}. For one feature use plot_fit."
        )
    names = _names(feature_names, D, idata, data=X_in, em_result=em_result)
    sub = np.ix_([i, j], [i, j])
    fig, ax = _new_axes(ax)
    handles, note = _draw_data(ax, X[:, i], X[:, j], max_points, large, random_seed)
    if idata is not None:
        w, m, c, idx = _random_draws(idata, n_draws, random_seed)
        colors = _colors(w.shape[1])
        for s in idx:
            for k in range(w.shape[1]):
                if w[s, k] < MIN_DRAWN_WEIGHT:
                    continue
                xy = _ellipse_xy(m[s, k, [i, j]], c[s, k][sub], 1.0)
                ax.plot(xy[:, 0], xy[:, 1], color=colors[k], lw=0.6, alpha=0.35, zorder=2)
        handles.append(
            Line2D([], [], color="0.3", lw=0.6, alpha=0.6, label=f"posterior, {len(idx)} draws")
        )
    if em_result is not None:
        w, m, c = _em_params(em_result)
        colors = _colors(len(w))
        for k in range(len(w)):
            for radius, ls in ((1.0, "-"), (2.0, "--")):
                xy = _ellipse_xy(m[k, [i, j]], c[k][sub], radius)
                ax.plot(xy[:, 0], xy[:, 1], color=colors[k], lw=1.8, ls=ls, zorder=3)
            ax.plot(*m[k, [i, j]], marker="x", color=colors[k], ms=9, mew=2.5, zorder=4)
        handles += [
            Line2D([], [], color="k", lw=1.8, label="EM 1 sd"),
            Line2D([], [], color="k", lw=1.8, ls="--", label="EM 2 sd"),
        ]
    if truth is not None:
        _, m, c = _truth_params(truth, D)
        for k in range(len(m)):
            for radius in (1.0, 2.0):
                xy = _ellipse_xy(m[k, [i, j]], c[k][sub], radius)
                ax.plot(xy[:, 0], xy[:, 1], color="k", lw=1.1, ls=":", zorder=5)
            ax.plot(*m[k, [i, j]], marker="+", color="k", ms=10, mew=1.8, zorder=5)
        handles.append(Line2D([], [], color="k", lw=1.1, ls=":", label="truth 1 and 2 sd"))
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.8)
    if note:
        ax.set_title(note, fontsize="small")
    return fig


def _draw_data(ax, x, y, max_points, large, random_seed):
    """The data layer of :func:`plot_ellipses`: ``(legend handles, title note)``."""
    n = len(x)
    limit = check_max_points(max_points)
    if check_large(large) == "hexbin" and limit is not None and n > limit:
        draw_hexbin(ax, x, y)
        label = f"data ({n:,}, hexbin, log counts)"
        return [Line2D([], [], ls="", marker="h", color="0.55", ms=7, label=label)], hexbin_note(n)
    idx = subsample(n, limit, random_seed)
    f = marker_scale(len(idx))
    ax.scatter(x[idx], y[idx], s=9 * f, color="0.45", alpha=0.7 * f, linewidths=0, zorder=1)
    label = "data" if len(idx) == n else f"data ({len(idx):,} of {n:,})"
    handles = [Line2D([], [], ls="", marker="o", color="0.45", ms=4, label=label)]
    return handles, shown_note(len(idx), n, random_seed)


def _truth_params(truth, D):
    if isinstance(truth, dict):
        from types import SimpleNamespace

        truth = SimpleNamespace(**{k: truth[k] for k in ("weights", "means", "covariances")})
    return mixture_params(truth, "truth", n_features=D)


def _weighted_pdf_1d(grid, w, m, c):
    """``w_k N(grid | m_k, c_k)`` of one-feature components, shape (..., G, K)."""
    w = np.asarray(w, dtype=float)
    return w[..., None, :] * np.exp(log_component_densities(grid[:, None], m, c))


def _plot_density_1d(X, em_result, idata, name, n_draws, random_seed, ax, truth=None):
    x = X[:, 0]
    grid = np.linspace(x.min() - 0.1 * np.ptp(x), x.max() + 0.1 * np.ptp(x), 300)
    ax.hist(x, bins="auto", density=True, color="0.8", edgecolor="0.6", label="data")
    if idata is not None:
        w, m, c, idx = _random_draws(idata, n_draws, random_seed)
        dens = _weighted_pdf_1d(grid, w[idx], m[idx], c[idx]).sum(-1)  # (draws, G)
        for n in range(len(idx)):
            ax.plot(
                grid, dens[n], color="C0", lw=0.6, alpha=0.35, label="posterior draws" * (n == 0)
            )
    if em_result is not None:
        w, m, c = _em_params(em_result)
        comp = _weighted_pdf_1d(grid, w, m, c)
        for k, color in enumerate(_colors(len(w))):
            ax.plot(grid, comp[:, k], color=color, lw=1.2, ls="--")
        ax.plot(grid, comp.sum(1), color="k", lw=1.8, label="EM mixture")
    if truth is not None:
        w, m, c = _truth_params(truth, 1)
        ax.plot(
            grid, _weighted_pdf_1d(grid, w, m, c).sum(1), color="k", lw=1.2, ls=":", label="truth"
        )
    ax.set_xlabel(name)
    ax.set_ylabel("density")
    ax.legend(fontsize="small")


def plot_fit(
    X=None,
    em_result=None,
    idata=None,
    *,
    feature_names=None,
    n_draws=20,
    random_seed=0,
    truth=None,
    max_points=MAX_POINTS,
    large="hexbin",
):
    """The data with the fitted components, whatever the number of features.

    One feature: histogram with the EM mixture density (components dashed) and
    posterior draws of the density. Two features: :func:`plot_ellipses`. Three or four:
    a pairs grid of :func:`plot_ellipses` panels. More: the first two features only
    (the title says so).

    Parameters
    ----------
    X : array_like, shape (N, D), optional
        Defaults to ``idata``'s observed data.
    em_result, idata, feature_names, n_draws, random_seed, truth, max_points, large
        As in :func:`plot_ellipses` (one feature: the true density, dotted; the
        histogram always counts every observation). A pairs grid states what its
        panels show (all points, a hexbin density or a subsample) in its title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> em = SimpleNamespace(weights=np.ones(1), means=np.zeros((1, 3)),
    ...                      covariances=np.eye(3)[None])
    >>> len(plot_fit(X, em).axes)
    3
    """
    X_in, X = _data(X, idata, "plot_fit")
    D = X.shape[1]
    names = _names(feature_names, D, idata, data=X_in, em_result=em_result)
    kw = dict(
        feature_names=names,
        n_draws=n_draws,
        random_seed=random_seed,
        truth=truth,
        max_points=max_points,
        large=large,
    )
    if D == 1:
        fig, ax = _new_axes(None)
        _plot_density_1d(X, em_result, idata, names[0], n_draws, random_seed, ax, truth)
        return fig
    if D == 2 or D > _PAIRS_MAX:
        fig, ax = _new_axes(None, figsize=(6.5, 5.2))
        plot_ellipses(X, em_result, idata, features=(0, 1), ax=ax, **kw)
        if D > 2:
            fig.suptitle(f"first two of {D} features ({names[0]}, {names[1]})")
        return fig
    fig = Figure(figsize=(3.6 * (D - 1), 3.4 * (D - 1)), layout="constrained")
    axes = fig.subplots(D - 1, D - 1, squeeze=False)
    for r in range(D - 1):
        for col in range(D - 1):
            ax = axes[r, col]
            if col > r:
                fig.delaxes(ax)
                continue
            plot_ellipses(X, em_result, idata, features=(col, r + 1), ax=ax, **kw)
            note = ax.get_title()
            ax.set_title("")
            legend = ax.get_legend()
            if (r, col) == (0, 0):  # one legend, in the empty upper triangle
                fig.legend(
                    handles=legend.legend_handles,
                    labels=[t.get_text() for t in legend.texts],
                    loc="upper right",
                    bbox_to_anchor=(0.98, 0.93),
                    fontsize="small",
                    framealpha=0.8,
                )
            legend.remove()
    fig.suptitle(f"pairs of all {D} features" + (f"; {note}" if note else ""))
    return fig


# ---------------------------------------------------------------------------- membership
def membership_summary(fit, X=None):
    """Most probable label and classification uncertainty of every observation.

    Parameters
    ----------
    fit : EMResult, xarray.DataTree or xarray.Dataset
        An EM result (needs ``X``; uses ``predict_proba``), a posterior (membership
        probabilities averaged over draws; relabel first), or the output of
        :func:`bayesmix.membership` (or a dict) with ``label`` and ``uncertainty``.
    X : array_like, shape (N, D), optional

    Returns
    -------
    labels : ndarray of int, shape (N,)
    uncertainty : ndarray, shape (N,)
        ``1 - max_k p(z_n = k | data)``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> dt = from_arrays(np.full((1, 2, 1), 1.0), np.zeros((1, 2, 1, 1)),
    ...                  np.ones((1, 2, 1, 1, 1)), np.zeros((3, 1)))
    >>> membership_summary(dt)[1]
    array([0., 0., 0.])
    """
    if isinstance(fit, dict) or (hasattr(fit, "data_vars") and "uncertainty" in fit.data_vars):
        labels = np.asarray(getattr(fit["label"], "values", fit["label"]), dtype=int)
        unc = np.asarray(getattr(fit["uncertainty"], "values", fit["uncertainty"]), dtype=float)
        return labels, unc
    if _is_tree(fit):
        Xo = get_observed(fit) if X is None else check_data(X)
        w, m, c = flat_params(fit)
        prob = np.zeros((Xo.shape[0], w.shape[1]))
        for start in range(0, w.shape[0], 200):
            sl = slice(start, start + 200)
            prob += responsibilities(Xo, w[sl], m[sl], c[sl]).sum(axis=0)
        prob /= w.shape[0]
    elif hasattr(fit, "predict_proba"):
        if X is None:
            raise ValueError("membership_summary needs X with an EM result.")
        prob = np.asarray(fit.predict_proba(check_data(X, missing="mar")))
        if getattr(fit, "noise_weight", None) is not None:  # noise (last column) -> -1
            labels = prob.argmax(axis=1)
            return np.where(labels == prob.shape[1] - 1, -1, labels), 1.0 - prob.max(axis=1)
    else:
        raise TypeError(
            "fit must be an EM result, a posterior DataTree or a bayesmix.membership Dataset; "
            f"got {type(fit).__name__}."
        )
    return prob.argmax(axis=1), 1.0 - prob.max(axis=1)


def plot_uncertainty(
    X,
    labels,
    uncertainty,
    *,
    features=(0, 1),
    feature_names=None,
    ax=None,
    max_points=MAX_POINTS,
    random_seed=0,
):
    """Data coloured by most probable component, sized by classification uncertainty.

    Parameters
    ----------
    X : array_like, shape (N, D)
    labels : array_like of int, shape (N,)
        Components ``0..K-1``; ``-1`` marks the noise class (fits with a noise
        component), drawn in grey.
    uncertainty : array_like, shape (N,)
        ``1 - max_k p(z_n = k)`` (see :func:`membership_summary`).
    features : tuple of two int
        Features on the axes (D >= 2); with one feature the y axis is the uncertainty.
    feature_names : list of str, optional
        Axis labels; by default the columns of ``X`` when it is a DataFrame.
    ax : matplotlib.axes.Axes, optional
    max_points : int or None
        Draw at most this many points (default 5,000; None: all): above it a uniform
        random subsample from ``numpy.random.default_rng(random_seed)``, stated in the
        title, drawn in order of increasing uncertainty (the uncertain points on
        top). The component counts in the legend and the numbers in the title are
        of all N observations. Markers shrink and fade as more than 1,000 are drawn.
    random_seed : int or numpy.random.Generator
        Seed of that subsample.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(20, 2))
    >>> fig = plot_uncertainty(X, np.zeros(20, int), np.linspace(0, 0.5, 20))
    """
    X_in, X = X, check_data(X, missing="mar")
    labels = np.asarray(labels, dtype=int)
    u = np.asarray(uncertainty, dtype=float)
    if labels.shape != (X.shape[0],) or u.shape != (X.shape[0],):
        raise ValueError(
            f"labels and uncertainty must have shape ({X.shape[0]},) like X's rows; got "
            f"{labels.shape} and {u.shape}."
        )
    names = _names(feature_names, X.shape[1], data=X_in)
    fig, ax = _new_axes(ax, figsize=(7.2, 4.8))
    palette = [*_colors(max(int(labels.max()), 0) + 1), _NOISE_GREY]  # index -1: noise
    idx = subsample(X.shape[0], max_points, random_seed)
    if len(idx) < X.shape[0]:  # the uncertain points, the few worth seeing, on top
        idx = idx[np.argsort(u[idx], kind="stable")]
    f = marker_scale(len(idx))
    colors = np.array(palette)[labels[idx]]
    size = (6.0 + 400.0 * u[idx]) * f
    if X.shape[1] == 1:
        x, y, ylabel = X[idx, 0], u[idx], "uncertainty"
    else:
        i, j = features
        x, y, ylabel = X[idx, i], X[idx, j], names[j]
    ax.scatter(x, y, s=size, c=colors, alpha=0.6 * max(f, 0.5), edgecolors="k", linewidths=0.3 * f)
    ax.set_xlabel(names[0] if X.shape[1] == 1 else names[features[0]])
    ax.set_ylabel(ylabel)
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            color="0.5",
            mec="k",
            mew=0.3,
            ms=np.sqrt((6.0 + 400.0 * v) * f),
            label=f"{v:g}",
        )
        for v in (0.05, 0.2, 0.4)
    ]
    # both legends outside the axes, on the right, so that they never hide points
    size_legend = ax.legend(
        handles=handles,
        title="uncertainty",
        fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    present = np.unique(labels)
    comp_handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            color=palette[k],
            mec="k",
            mew=0.3,
            ms=6,
            label=f"{'noise' if k == -1 else k} ({int((labels == k).sum()):,})",
        )
        for k in present
    ]
    if len(present) <= 12:
        ax.add_artist(size_legend)
        ax.legend(
            handles=comp_handles,
            title="component (n)",
            fontsize="small",
            loc="lower left",
            bbox_to_anchor=(1.01, 0.0),
        )
    title = f"membership uncertainty (max {u.max():.2f}, {int((u > 0.2).sum()):,} obs > 0.2)"
    note = shown_note(len(idx), X.shape[0], random_seed)
    ax.set_title(title + (f"\n{note}" if note else ""))
    return fig


# ---------------------------------------------------------------------------- selection
def _col(table, *names):
    lower = {str(c).lower(): c for c in table.columns}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def plot_selection(table, *, chosen=None):
    """Information criteria against the number of components.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per fit with columns ``K``, optionally ``covariance``, ``bic``, ``icl``
        (lower is better) and, when MCMC ran, ``elpd_loo`` with ``elpd_loo_se`` and
        ``elpd_waic`` with ``elpd_waic_se`` (higher is better). Column names are
        matched case-insensitively.
    chosen : int, optional
        K marked with a vertical dotted line.

    Returns
    -------
    matplotlib.figure.Figure
        One panel for BIC/ICL, a second for ELPD when the table has it.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"K": [1, 2, 3], "bic": [10.0, 8.0, 9.0], "icl": [10.0, 8.5, 9.9]})
    >>> len(plot_selection(t, chosen=2).axes)
    1
    """
    kcol = _col(table, "K", "n_components")
    if kcol is None:
        raise ValueError(f"table needs a 'K' column; got columns {list(table.columns)}.")
    covcol = _col(table, "covariance")
    bic, icl = _col(table, "bic"), _col(table, "icl")
    loo, loo_se = _col(table, "elpd_loo"), _col(table, "elpd_loo_se", "se_loo", "loo_se")
    waic, waic_se = _col(table, "elpd_waic"), _col(table, "elpd_waic_se", "se_waic", "waic_se")
    has_elpd = loo is not None and table[loo].notna().any()
    fig = Figure(figsize=(11.0 if has_elpd else 6.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 2 if has_elpd else 1, squeeze=False)[0]
    groups = [(None, table)] if covcol is None else list(table.groupby(covcol, sort=False))
    for g, (cov, sub) in enumerate(groups):
        sub = sub.sort_values(kcol)
        tag = "" if cov is None else f" ({cov})"
        color = f"C{g}"
        dx = 0.05 * g  # covariance types side by side, so error bars do not hide each other
        if bic is not None:
            axes[0].plot(sub[kcol], sub[bic], "o-", color=color, label=f"BIC{tag}")
        if icl is not None:
            axes[0].plot(sub[kcol], sub[icl], "s--", color=color, mfc="none", label=f"ICL{tag}")
        if has_elpd:
            ok = sub[loo].notna()
            yerr = sub.loc[ok, loo_se] if loo_se is not None else None
            axes[1].errorbar(
                sub.loc[ok, kcol] + dx,
                sub.loc[ok, loo],
                yerr=yerr,
                fmt="o-",
                color=color,
                capsize=4,
                label=f"ELPD-LOO ± SE{tag}",
            )
            if waic is not None and sub[waic].notna().any():
                okw = sub[waic].notna()
                axes[1].errorbar(
                    sub.loc[okw, kcol] + dx + 0.1,
                    sub.loc[okw, waic],
                    yerr=sub.loc[okw, waic_se] if waic_se is not None else None,
                    fmt="s:",
                    color=color,
                    mfc="none",
                    capsize=3,
                    alpha=0.8,
                    label=f"ELPD-WAIC ± SE{tag}",
                )
    axes[0].set_ylabel("criterion (lower is better)")
    axes[0].set_title("EM: BIC and ICL")
    if has_elpd:
        axes[1].set_ylabel("expected log predictive density (higher is better)")
        axes[1].set_title("MCMC: ELPD (LOO, WAIC)")
        _zoom_elpd(axes[1], table, kcol, loo, loo_se)
    for ax in axes:
        ax.set_xlabel("number of components K")
        ks = sorted(set(int(k) for k in table[kcol]))
        ax.set_xticks(ks)
        ax.set_xlim(ks[0] - 0.5, ks[-1] + 0.5)
        if chosen is not None:
            ax.axvline(chosen, color="0.3", ls=":", lw=1.2, label=f"chosen K={chosen}")
        ax.legend(fontsize="small")
    return fig


def _zoom_elpd(ax, table, kcol, loo, loo_se):
    """Keep the competitive models readable: fits far below the best ELPD-LOO.

    A K far too small (e.g. K=1 on Old Faithful, 150 nats below the rest) would
    stretch the axis until differences of a few nats, the ones the one-SE rule weighs,
    vanish. Models more than max(20, 4 x median SE) below the best are drawn as a
    marker on the lower edge with their value written next to it.
    """
    rows = table[[kcol, loo] + ([loo_se] if loo_se is not None else [])].dropna(subset=[loo])
    if len(rows) < 2:
        return
    se = rows[loo_se].to_numpy(float) if loo_se is not None else np.zeros(len(rows))
    se = np.nan_to_num(se)
    val = rows[loo].to_numpy(float)
    window = max(20.0, 4.0 * float(np.median(se)))
    far = val < val.max() - window
    if not far.any():
        return
    top, bottom = np.max(val + se), np.min((val - se)[~far])
    pad = 0.08 * (top - bottom) + 1.0
    lo = bottom - 2.5 * pad
    ax.set_ylim(lo, top + pad)
    for n, (k, v) in enumerate(zip(rows[kcol].to_numpy()[far], val[far], strict=True)):
        ax.plot([k], [lo + 0.6 * pad], marker="v", color="0.35", ms=7, ls="none")
        ax.annotate(
            f"K={int(k)}: {v:.0f}\n(off scale)",
            (k, lo + 0.6 * pad),
            # neighbours staggered: at large n the values are wide enough to run into
            # the next K's note
            xytext=(6, 2 + 18 * (n % 2)),
            textcoords="offset points",
            fontsize="x-small",
            color="0.25",
        )


# ---------------------------------------------------------------------------- diagnostics
def _scalar_params(idata, var_names, max_params):
    post = idata["posterior"]
    out = []
    for var in var_names:
        if var not in post.data_vars:
            continue
        da = post[var].transpose("chain", "draw", ...)
        other = [d for d in da.dims if d not in ("chain", "draw")]
        if "feature2" in other:
            continue
        vals = da.values.reshape(da.sizes["chain"], da.sizes["draw"], -1)
        idx = list(np.ndindex(*[da.sizes[d] for d in other])) or [()]
        for n, ix in enumerate(idx):
            label = var + (
                "[" + ",".join(str(da[d].values[i]) for d, i in zip(other, ix, strict=True)) + "]"
                if ix
                else ""
            )
            out.append((label, vals[:, :, n]))
            if len(out) >= max_params:
                return out
    return out


def plot_rank(idata, *, var_names=("weights", "means"), max_params=12, n_bins=None):
    """Trace and rank plots of scalar parameters, one row each.

    Left: the draws of each chain. Right: the histogram of each chain's ranks among
    all draws (Vehtari et al. 2021); well-mixed chains give flat, overlapping
    histograms, while a chain in another labelling shows up as a shifted one. Relabel
    (:func:`bayesmix.relabel`) before plotting.

    Parameters
    ----------
    idata : xarray.DataTree
    var_names : sequence of str
        Posterior variables to show (matrices with a ``feature2`` dim are skipped).
    max_params : int
        At most this many rows.
    n_bins : int, optional
        Rank histogram bins (default about 20, fewer for short chains).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> dt = from_arrays(np.full((2, 50, 1), 1.0), rng.normal(size=(2, 50, 1, 1)),
    ...                  np.ones((2, 50, 1, 1, 1)), np.zeros((3, 1)))
    >>> fig = plot_rank(dt, var_names=["means"])
    """
    from scipy.stats import rankdata

    params = _scalar_params(idata, var_names, max_params)
    if not params:
        raise ValueError(
            f"none of var_names={list(var_names)} is a posterior variable without a feature2 "
            f"dim; the posterior has {list(idata['posterior'].data_vars)}."
        )
    C, S = params[0][1].shape
    bins = n_bins or int(max(5, min(20, S // 10)))
    fig = Figure(figsize=(10.0, 1.7 * len(params) + 0.6), layout="constrained")
    axes = fig.subplots(len(params), 2, squeeze=False)
    for r, (label, v) in enumerate(params):
        ranks = rankdata(v, axis=None).reshape(C, S)
        edges = np.linspace(0.5, C * S + 0.5, bins + 1)
        for c in range(C):
            axes[r, 0].plot(v[c], lw=0.5, color=f"C{c}", alpha=0.8)
            counts, _ = np.histogram(ranks[c], bins=edges)
            axes[r, 1].stairs(counts, edges, color=f"C{c}", lw=1.2, baseline=None)
        axes[r, 1].axhline(S / bins, color="0.4", ls="--", lw=0.8)
        axes[r, 0].set_ylabel(label, fontsize="small")
        axes[r, 1].set_yticks([])
        axes[r, 1].set_ylim(bottom=0)
    axes[0, 0].set_title("trace (one colour per chain)")
    axes[0, 1].set_title("rank histogram per chain (dashed: uniform)")
    axes[-1, 0].set_xlabel("draw")
    axes[-1, 1].set_xlabel("rank among all draws")
    return fig
