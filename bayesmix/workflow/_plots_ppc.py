"""The posterior predictive check of the marginals: :func:`plot_ppc`.

Re-exported by :mod:`bayesmix.workflow._plots` and :mod:`bayesmix.plots`; densities are
binned kernel densities (:func:`bayesmix.posterior._ppc.binned_density`), so a panel
costs O(N + grid) per replicate whatever N.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from bayesmix.core._validation import check_int, check_random_state
from bayesmix.mcmc._trace import get_observed
from bayesmix.posterior._ppc import _bandwidth, binned_density, posterior_predictive

__all__ = ["PPC_MAX_FEATURES", "plot_ppc"]

# ---------------------------------------------------------------------------- PPC
#: at most this many features get a panel in :func:`plot_ppc`
PPC_MAX_FEATURES = 6
_PPC_STATS_SHOWN = ("sd", "min", "max", "n_modes")


def plot_ppc(idata, *, n_replicates=40, features=None, table=None, random_seed=0):
    """Posterior predictive check of the marginals: observed against replicate densities.

    One panel per feature: the kernel density of the observed values (black), of
    ``n_replicates`` replicate data sets (thin blue, one per posterior draw) and their
    average (dashed orange), all with the same bandwidth (Silverman's rule on the
    observed values) on the same grid. A model that fits puts the black curve inside
    the blue band; heavy tails or a missing cluster show as black outside it.

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior with ``observed_data/X``. Its ``posterior_predictive``
        group (:func:`bayesmix.posterior_predictive`) is used when present, otherwise
        about ``n_replicates`` replicates are drawn (evenly spaced draws per chain).
    n_replicates : int
        Replicate curves per panel (chosen at random among the replicates).
    features : sequence of str, optional
        Features to show (default: the first :data:`PPC_MAX_FEATURES`).
    table : pandas.DataFrame, optional
        The output of :func:`bayesmix.ppc_statistics`: each panel then lists the
        p-values of ``sd``, ``min``, ``max`` and ``n_modes`` for its feature.
    random_seed : int or numpy.random.Generator, optional
        Seed of the replicate choice (and of the replicates, when drawn here).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> dt = from_arrays(np.ones((2, 20, 1)), np.zeros((2, 20, 1, 2)),
    ...                  np.broadcast_to(np.eye(2), (2, 20, 1, 2, 2)), X)
    >>> fig = plot_ppc(dt, n_replicates=10)
    >>> len(fig.axes)
    2
    """
    n_replicates = check_int(n_replicates, "n_replicates", minimum=1)
    rng = check_random_state(random_seed)
    if not (hasattr(idata, "children") and "posterior" in idata.children):
        raise TypeError(
            "idata must be a bayesmix posterior DataTree with a 'posterior' group; got "
            f"{type(idata).__name__}."
        )
    if "posterior_predictive" not in idata.children:
        n_chains = idata["posterior"].sizes["chain"]
        per_chain = int(np.ceil(n_replicates / n_chains))
        idata = posterior_predictive(idata, n_draws=per_chain, random_seed=rng)
    pp = idata["posterior_predictive"]["X"].transpose("chain", "draw", "obs", "feature")
    names = [str(f) for f in pp.coords["feature"].values]
    if features is None:
        chosen = names[:PPC_MAX_FEATURES]
    else:
        chosen = [str(f) for f in features]
        unknown = [f for f in chosen if f not in names]
        if unknown or not chosen:
            raise ValueError(
                f"features must be a non-empty list of the posterior's features {names}; "
                f"got {chosen} (unknown: {unknown})."
            )
    X = get_observed(idata)
    C, S, N, D = pp.shape
    pick = rng.choice(C * S, size=min(n_replicates, C * S), replace=False)
    rows = {}
    if table is not None:
        rows = {(r.statistic, r.feature): r.p_value for r in table.itertuples()}
    n_cols = min(3, len(chosen))
    n_rows = int(np.ceil(len(chosen) / n_cols))
    fig = Figure(figsize=(4.0 * n_cols, 3.2 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[len(chosen) :]:
        ax.set_visible(False)
    for ax, name in zip(axes, chosen, strict=False):
        j = names.index(name)
        x = X[:, j]
        rep = pp.isel(feature=j).values.reshape(C * S, N)[pick]
        h = _bandwidth(x)
        lo, hi = np.nanmin(x), np.nanmax(x)
        pad = 0.15 * (hi - lo) + 3 * h
        lo, hi = lo - pad, hi + pad
        G = 256
        grid = lo + (np.arange(G) + 0.5) * (hi - lo) / G
        d_rep = binned_density(rep, h, lo, hi, G, clip=False)
        d_obs = binned_density(x[None], h, lo, hi, G, clip=False)[0]
        for i, d in enumerate(d_rep):
            ax.plot(grid, d, color="C0", lw=0.6, alpha=0.3, label="replicates" * (i == 0))
        ax.plot(grid, d_rep.mean(0), color="C1", lw=1.4, ls="--", label="replicate mean")
        ax.plot(grid, d_obs, color="k", lw=1.8, label="observed")
        ax.set_xlabel(name)
        ax.set_ylabel("density")
        ax.set_ylim(bottom=0)
        ps = [(st, rows[(st, name)]) for st in _PPC_STATS_SHOWN if (st, name) in rows]
        if ps:
            ax.text(
                0.98,
                0.97,
                "\n".join(f"p({st}) = {p:.2f}" for st, p in ps),
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize="x-small",
            )
    axes[0].legend(fontsize="x-small", loc="upper left")
    extra = "" if len(chosen) == D or features is not None else f" (first {len(chosen)} of {D})"
    fig.suptitle(f"posterior predictive check: {len(pick)} replicates{extra}", fontsize="medium")
    return fig
