"""LOO-PIT of each feature's marginal predictive: :func:`loo_pit_features`.

For observation ``i`` and feature ``j`` the LOO-PIT value is
``P(x_rep,ij <= x_ij | x_{-i})``: the leave-one-out predictive of row ``i`` (the whole
row left out) read on feature ``j``. :func:`arviz_stats.loo_pit` computes it from the
replicates of the ``posterior_predictive`` group (:func:`bayesmix.posterior_predictive`)
weighted by Pareto-smoothed importance weights whose log ratios are minus the row's
joint log-likelihood ``log p(x_i | theta_s)`` (the marginal mixture density, the same as
:func:`bayesmix.loo`), evaluated at the replicated draws. Under a model that predicts
well the values are uniform on (0, 1) for every feature; a one-component fit to two
separated clusters gives values piled around Phi(+-distance / (2 sd)) instead.
:func:`loo_pit_features` also reports each feature's Kolmogorov-Smirnov distance to the
uniform and its p-value (approximate: the PIT values of different rows are not
independent, and a finite number of replicates makes them discrete).
"""

from __future__ import annotations

import warnings

import numpy as np

from bayesmix.mcmc._pointwise import pointwise_log_likelihood
from bayesmix.posterior._ppc import posterior_predictive

__all__ = ["loo_pit_features", "loo_pit_tree"]


def loo_pit_features(idata, *, n_draws=None, random_seed=None):
    """LOO-PIT values of every feature and their distance to the uniform.

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior with ``observed_data/X``; its ``posterior_predictive`` group
        is used when present, else drawn with ``n_draws`` (per chain) and
        ``random_seed``. At least 25 replicated draws in all (PSIS).
    n_draws, random_seed
        As :func:`bayesmix.posterior_predictive`, when the replicate is drawn here.

    Returns
    -------
    pit : xarray.Dataset
        One variable per feature, dims (obs,): the LOO-PIT values (NaN where the feature
        is missing).
    table : pandas.DataFrame
        ``feature``, ``ks_distance`` (sup |ECDF - u|), ``ks_p_value``
        (:func:`scipy.stats.kstest` against the uniform), ``n`` (rows used).

    Examples
    --------
    >>> import numpy as np
    >>> import bayesmix as bm
    >>> from bayesmix.posterior._loopit import loo_pit_features
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 1))
    >>> dt = bm.from_arrays(np.ones((2, 50, 1)), rng.normal(0, 0.07, (2, 50, 1, 1)),
    ...                     np.ones((2, 50, 1, 1, 1)), X)
    >>> pit, table = loo_pit_features(dt, random_seed=0)
    >>> pit["x0"].shape, bool(table["ks_p_value"].iloc[0] > 0.01)
    ((200,), True)
    """
    import arviz_stats
    import pandas as pd
    import xarray as xr
    from scipy import stats

    tree = loo_pit_tree(idata, n_draws=n_draws, random_seed=random_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k: bayesmix.loo reports it
        values = arviz_stats.loo_pit(tree, random_state=0)
    X = idata["observed_data"]["X"].transpose("obs", "feature")
    out, rows = {}, []
    for j, name in enumerate(tree["observed_data"].data_vars):
        x = X.isel(feature=j).values
        keep = np.isfinite(x)
        v = values[name].values
        full = np.full(x.shape, np.nan)
        full[keep] = v[keep]
        out[name] = (("obs",), full)
        ks = stats.kstest(v[keep], "uniform")
        rows.append(
            {
                "feature": name,
                "ks_distance": float(ks.statistic),
                "ks_p_value": float(ks.pvalue),
                "n": int(keep.sum()),
            }
        )
    pit = xr.Dataset(out, coords={"obs": X["obs"].values})
    return pit, pd.DataFrame(rows)


def loo_pit_tree(idata, *, n_draws=None, random_seed=None):
    """The DataTree :func:`arviz_stats.loo_pit` and ``arviz_plots.plot_loo_pit`` read:
    one variable per feature (named after it, dims (obs,)) in ``observed_data``,
    ``posterior_predictive`` and ``log_likelihood`` (the row's joint log-likelihood,
    the same for every feature), and the replicated draws' ``posterior``. A missing
    entry is replaced by its replicates' median (its PIT is then set to NaN by
    :func:`loo_pit_features`)."""
    import xarray as xr

    if "posterior_predictive" not in idata.children:
        idata = posterior_predictive(idata, n_draws=n_draws, random_seed=random_seed)
    pp = idata["posterior_predictive"]["X"].transpose("chain", "draw", "obs", "feature")
    n_rep = pp.sizes["chain"] * pp.sizes["draw"]
    if n_rep < 25:
        raise ValueError(
            f"loo_pit_features needs at least 25 replicated draws (chains x draws) for "
            f"Pareto-smoothed importance sampling; the posterior_predictive group has {n_rep}."
        )
    post = idata["posterior"].to_dataset().sel(chain=pp["chain"], draw=pp["draw"])
    obs_ds = idata["observed_data"].to_dataset()
    thin = xr.DataTree.from_dict({"posterior": post, "observed_data": obs_ds})
    ll = pointwise_log_likelihood(thin).transpose("chain", "draw", "obs")
    X = obs_ds["X"].transpose("obs", "feature")
    names = [str(f) for f in X["feature"].values]
    coords = {"chain": pp["chain"].values, "draw": pp["draw"].values, "obs": X["obs"].values}
    obs, rep, logl = {}, {}, {}
    for j, name in enumerate(names):
        x = X.isel(feature=j).values
        r = pp.isel(feature=j).values
        gap = ~np.isfinite(x)
        if gap.any():
            x = np.where(gap, np.median(r, axis=(0, 1)), x)
        obs[name] = (("obs",), x)
        rep[name] = (("chain", "draw", "obs"), r)
        logl[name] = (("chain", "draw", "obs"), ll.values)
    return xr.DataTree.from_dict(
        {
            "posterior": post,
            "observed_data": xr.Dataset(obs, coords={"obs": coords["obs"]}),
            "posterior_predictive": xr.Dataset(rep, coords=coords),
            "log_likelihood": xr.Dataset(logl, coords=coords),
        }
    )
