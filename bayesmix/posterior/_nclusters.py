r"""Reading the number of clusters from a posterior: P(K+ = k), P(K = k), their MCSE.

* ``K+`` (``n_occupied``): the number of components holding at least one observation
  in a draw. Every bayesmix sampler writes it: the Gibbs samplers from the sampled
  allocations, NUTS from each draw's MAP allocation.
* ``K`` (``n_components``): the number of components of a mixture of finite mixtures
  (:func:`bayesmix.build_mfm`), which may exceed ``K+`` (empty components).

:func:`n_clusters` estimates ``P(K+ = k)`` by the fraction of draws with ``K+ = k``,
with a Monte-Carlo standard error that accounts for autocorrelation: the indicator
``1(K+ = k)`` has variance ``p (1 - p)`` and its effective sample size ``ESS_k``
(``arviz_stats.ess(..., method="mean")``, the ESS for the mean over all chains), so

.. math:: \mathrm{MCSE}_k = \sqrt{\hat p_k (1 - \hat p_k) / \mathrm{ESS}_k}.

When every draw agrees (:math:`\hat p_k \in \{0, 1\}`) this is 0: the chain carries no
information on the error then, and a few thousand draws bound an unseen probability
only by about ``3 / S``. :func:`prior_n_clusters` gives the prior these are updated
from (Antoniak's distribution for a Dirichlet process; the implied prior on ``K+``
of a mixture of finite mixtures), and :func:`bayesmix.plot_n_clusters` draws both.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from bayesmix.core._validation import BayesmixWarning, warn

__all__ = ["CAP_SHARE", "n_clusters", "prior_n_clusters"]

#: share of draws at the cap (``max_components`` of an MFM, the truncation of a DP)
#: above which :func:`n_clusters` warns that the posterior on the count is cut off
CAP_SHARE = 0.05
#: covariance parameters per component, by covariance type
_COV_PARAMS = {"full": lambda D: D * (D + 1) // 2, "diag": lambda D: D, "spherical": lambda D: 1}

_LABELS = {"n_occupied": "K+ (occupied)", "n_components": "K (components)"}
_SHORT = {"n_occupied": "K+", "n_components": "K"}
_COLUMNS = ["variable", "k", "probability", "mcse", "ess"]


def _count_variable(idata, name):
    """(chain, draw) integer draws of ``name`` from the posterior group."""
    post = idata["posterior"]
    if name in post.data_vars:
        da = post[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if extra:
            raise ValueError(
                f"posterior variable {name!r} must have dims (chain, draw); got {da.dims}."
            )
        return np.asarray(da.transpose("chain", "draw").values)
    if name == "n_occupied" and "allocations" in post.data_vars:
        z = np.sort(post["allocations"].transpose("chain", "draw", "obs").values, axis=-1)
        return 1 + (np.diff(z, axis=-1) != 0).sum(-1)
    if name == "n_occupied" and {"weights", "means", "covariances"} <= set(post.data_vars):
        return _map_occupied(idata)
    fix = (
        "sample with bm.sample (every sampler writes n_occupied), or add it as "
        "extra={'n_occupied': ...} to bayesmix.mcmc._trace.from_arrays"
        if name == "n_occupied"
        else "only a mixture of finite mixtures (bm.build_mfm) has n_components; leave "
        "var_names=None to summarise what the posterior has"
    )
    raise ValueError(
        f"idata's posterior has no variable {name!r} (it has {sorted(post.data_vars)}); {fix}."
    )


def _map_occupied(idata):
    """Components holding >= 1 observation under each draw's MAP allocation, (C, S).

    The definition ``bm.sample`` uses for NUTS fits of a DP
    (:func:`bayesmix.mcmc._trace.map_occupied`); used for posteriors that carry neither
    ``n_occupied`` nor ``allocations`` (finite NUTS fits).
    """
    from bayesmix.mcmc._trace import get_observed, get_params, map_occupied

    return map_occupied(get_observed(idata), *get_params(idata))


def _summarise(name, counts):
    """Tidy rows and a summary dict for one (chain, draw) array of counts."""
    import arviz_stats as azs

    counts = np.asarray(counts)
    if not np.all(np.isfinite(counts)) or not np.allclose(counts, np.round(counts)):
        raise ValueError(f"posterior variable {name!r} must hold integer counts per draw.")
    counts = np.round(counts).astype(np.int64)
    C, S = counts.shape
    ks = np.arange(1, max(int(counts.max()), 1) + 1)
    ind = (counts[..., None] == ks).astype(float)  # (C, S, k)
    p = ind.mean(axis=(0, 1))
    if C * S >= 4:
        ess = np.asarray(azs.ess(ind, method="mean", chain_axis=0, draw_axis=1), dtype=float)
        ess_mean = float(azs.ess(counts.astype(float), method="mean"))
    else:
        ess = np.full(ks.size, np.nan)
        ess_mean = np.nan
    const = (p == 0) | (p == 1)
    mcse = np.where(const, 0.0, np.sqrt(p * (1 - p) / np.where(const, 1.0, ess)))
    rows = pd.DataFrame(
        {"variable": name, "k": ks, "probability": p, "mcse": mcse, "ess": ess},
        columns=_COLUMNS,
    )
    sd = float(counts.std(ddof=1)) if counts.size > 1 else 0.0
    summary = {
        "mean": float(counts.mean()),
        "mean_mcse": sd / np.sqrt(ess_mean) if np.isfinite(ess_mean) and ess_mean > 0 else np.nan,
        "mode": int(ks[np.argmax(p)]),
        "mode_probability": float(p.max()),
        "n_draws": int(C * S),
    }
    return rows, summary


def n_clusters(idata, *, var_names=None):
    """Posterior distribution of the number of clusters, with Monte-Carlo errors.

    Parameters
    ----------
    idata : xarray.DataTree
        A posterior from :func:`bayesmix.sample` (NUTS or Gibbs). ``n_occupied``
        (chain, draw) is read from its ``posterior`` group; without it, the sampled
        ``allocations`` (chain, draw, obs) are counted, and without those each draw's
        MAP allocation (as NUTS does for a DP). A mixture of finite mixtures also has
        ``n_components`` (chain, draw).
    var_names : str or list of str, optional
        Which counts to summarise among ``"n_occupied"`` (K+) and ``"n_components"``
        (K). Default: ``n_occupied``, and ``n_components`` when present.

    Returns
    -------
    pandas.DataFrame
        Tidy, one row per variable and k = 1 .. (largest value drawn), columns:

        - ``variable``: ``"n_occupied"`` or ``"n_components"``
        - ``k``: the value
        - ``probability``: fraction of draws (all chains) equal to k
        - ``mcse``: ``sqrt(p (1 - p) / ess)``, 0 when every draw agrees on the indicator
        - ``ess``: effective sample size of the indicator ``1(count == k)``
          (``arviz_stats.ess(method="mean")``)

        ``df.attrs["summary"]`` maps each variable to a dict with ``mean``,
        ``mean_mcse`` (posterior sd over the square root of the count's ESS), ``mode``,
        ``mode_probability`` and ``n_draws``.

    Raises
    ------
    ValueError
        If the posterior lacks the requested variable and the parameters to derive it
        (the message says how to get it).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> C, S = 2, 200
    >>> occ = np.tile([2, 2, 2, 1, 3, 2, 2, 2, 1, 2], (C, S // 10))  # K+ per draw
    >>> dt = from_arrays(np.full((C, S, 1), 1.0), np.zeros((C, S, 1, 1)),
    ...                  np.ones((C, S, 1, 1, 1)), np.zeros((3, 1)),
    ...                  extra={"n_occupied": occ}, extra_dims={"n_occupied": []},
    ...                  log_likelihood=False)
    >>> table = n_clusters(dt)
    >>> table[["k", "probability"]].round(2).to_dict("list")
    {'k': [1, 2, 3], 'probability': [0.2, 0.7, 0.1]}
    >>> table.attrs["summary"]["n_occupied"]["mode"]
    2
    """
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"idata must be an xarray.DataTree from bayesmix.sample; got {type(idata).__name__}."
        )
    if "posterior" not in idata.children:
        raise ValueError("idata has no 'posterior' group; pass the result of bayesmix.sample.")
    post = idata["posterior"]
    if var_names is None:
        var_names = ["n_occupied"] + (["n_components"] if "n_components" in post else [])
    elif isinstance(var_names, str):
        var_names = [var_names]
    bad = [v for v in var_names if v not in _LABELS]
    if bad or not var_names:
        raise ValueError(
            f"var_names must name 'n_occupied' and/or 'n_components'; got {var_names!r}."
        )
    parts, summary = [], {}
    for name in var_names:
        counts = _count_variable(idata, name)
        rows, summary[name] = _summarise(name, counts)
        parts.append(rows)
        _warn_at_cap(idata, name, counts)
    _warn_prior_dominates(idata, summary.get("n_occupied"))
    table = pd.concat(parts, ignore_index=True)
    table.attrs["summary"] = summary
    return table


def _cap(idata):
    """(cap, what to raise) of a DP or MFM posterior; None for a finite mixture."""
    attrs = idata.attrs
    if "max_components" in attrs:
        return int(attrs["max_components"]), "max_components (bm.build_mfm(max_components=...))"
    if "truncation" in attrs:
        return int(attrs["truncation"]), "the truncation (bm.build_dpgmm(truncation=...))"
    return None


def _warn_at_cap(idata, name, counts):
    """Warn when more than CAP_SHARE of the draws sit at the DP's or MFM's cap."""
    cap = _cap(idata)
    if cap is None:
        return
    share = float(np.mean(np.asarray(counts) >= cap[0]))
    if share > CAP_SHARE:
        warn(
            f"n_clusters: {_LABELS[name]} equals its cap {cap[0]} in {share:.0%} of draws "
            f"(more than {CAP_SHARE:.0%}), so its posterior is cut off there and "
            f"P({_SHORT[name]} = k) understates the larger counts. Raise {cap[1]}, or, if "
            "the data cannot support that many components, use a parsimonious covariance "
            "(covariance='diag' or 'spherical') or a prior that expects fewer clusters.",
            BayesmixWarning,
            stacklevel=4,
        )


def _warn_prior_dominates(idata, occupied):
    """Warn when the rows per covariance parameter are below 1 (the prior decides K)."""
    cov = idata.attrs.get("covariance")
    if occupied is None or cov not in _COV_PARAMS or "observed_data" not in idata.children:
        return
    obs = idata["observed_data"]
    X = next(iter(obs.data_vars.values()), None)
    if X is None or X.ndim != 2:
        return
    N, D = X.shape
    q = _COV_PARAMS[cov](D)
    k = max(2.0, occupied["mean"])  # two components at least: could K = 2 be told apart?
    rows = N / (k * q)
    if rows < 1:
        warn(
            f"n_clusters: the prior dominates the posterior on the number of clusters: "
            f"{N} rows over {k:.3g} components is {rows:.2f} rows per covariance parameter "
            f"({q} per component for covariance={cov!r} at D = {D}), below 1. The data "
            "cannot pin down that many covariances, so K+ follows the prior (large D often "
            "gives K+ = 1 with full covariance, or many small clusters with a diagonal "
            "one). Use covariance='spherical' or 'diag' when n per component is below "
            "about 2 D, reduce the features (e.g. PCA), or add rows.",
            BayesmixWarning,
            stacklevel=4,
        )


# ----------------------------------------------------------------------------- prior
def _dp_prior(n, concentration):
    """Antoniak's P(K+ = k), k = 1..n, fixed or Gamma(shape, rate) concentration."""
    log_s = np.full(n + 1, -np.inf)  # log |s(m, k)|, unsigned Stirling, first kind
    log_s[0] = 0.0
    with np.errstate(divide="ignore"):
        for m in range(1, n + 1):
            log_s = np.concatenate([[-np.inf], np.logaddexp(log_s[:-1], np.log(m - 1) + log_s[1:])])
    k = np.arange(1, n + 1)
    if isinstance(concentration, numbers.Real):
        alphas, wts = np.array([float(concentration)]), np.array([1.0])
    else:
        shape, rate = (float(v) for v in concentration)
        # alpha ~ Gamma(shape, rate) by generalised Gauss-Laguerre quadrature: the
        # integrand alpha^k Gamma(alpha)/Gamma(alpha+n) is smooth and bounded
        x, w = special.roots_genlaguerre(200, shape - 1.0)
        alphas, wts = x / rate, w / special.gamma(shape)
    logp = (
        log_s[1:][None, :]
        + k[None, :] * np.log(alphas)[:, None]
        + (special.gammaln(alphas) - special.gammaln(alphas + n))[:, None]
    )
    return wts @ np.exp(logp)


def _mfm_prior(n, k_prior, gamma, dynamic):
    """MFM's P(K+ = t), t = 1..n (Miller & Harrison 2018, Fruehwirth-Schnatter et al. 2021)."""
    K = np.flatnonzero(k_prior > 0) + 1.0  # (J,) values of K with prior mass
    g = gamma / K if dynamic else np.full(K.size, float(gamma))
    tmax = int(min(n, K.max()))  # K+ <= K
    t = np.arange(1, tmax + 1)
    # log C(m, t) for every K at once: the sum over partitions of m points into t blocks
    # of prod_c g^(n_c) (rising factorials); point m opens a block (factor g) or joins one
    # of the t blocks of total size m - 1 (factor sum_c (g + n_c) = t g + m - 1)
    logc = np.full((K.size, tmax + 1), -np.inf)
    logc[:, 0] = 0.0
    log_g = np.log(g)[:, None]
    with np.errstate(divide="ignore"):
        for m in range(1, n + 1):
            grow = np.log(t[None, :] * g[:, None] + m - 1)
            logc[:, 1:] = np.logaddexp(log_g + logc[:, :-1], grow + logc[:, 1:])
            logc[:, 0] = -np.inf
        ok = t[None, :] <= K[:, None]
        log_fall = np.where(
            ok,
            special.gammaln(K + 1)[:, None] - special.gammaln(np.where(ok, K[:, None] - t + 1, 1)),
            -np.inf,
        )
    log_rise = special.gammaln(g * K + n) - special.gammaln(g * K)
    terms = log_fall - log_rise[:, None] + logc[:, 1:]
    out = np.zeros(n)
    out[:tmax] = k_prior[k_prior > 0] @ np.exp(terms)
    return out


def prior_n_clusters(
    n_obs, *, concentration=None, k_prior=None, weight_concentration=1.0, dynamic=False
):
    """Prior on the number of clusters K+ among ``n_obs`` observations (and on K for an MFM).

    Parameters
    ----------
    n_obs : int
        Number of observations N.
    concentration : float or (float, float), optional
        Dirichlet process: a fixed concentration alpha, or the (shape, rate) of its Gamma
        prior (``GMMPrior.dp_concentration``). Gives Antoniak's distribution
        ``P(K+ = k) = |s(N, k)| alpha^k Gamma(alpha) / Gamma(alpha + N)`` (unsigned
        Stirling numbers of the first kind), averaged over alpha. This is the
        untruncated process; a truncation T changes it by about
        ``N E[(alpha/(1+alpha))^(T-1)]``.
    k_prior : array_like, shape (K_max,), optional
        Mixture of finite mixtures: ``k_prior[i] = P(K = i + 1)``. Gives
        ``P(K+ = t) = sum_K p(K) K!/(K-t)! / (K g)^(N) * C(N, t; g)`` with
        ``C(N, t; g)`` the sum over partitions into t blocks of ``prod_c g^(n_c)``
        (rising factorials) and ``g = weight_concentration`` (``/ K`` if ``dynamic``).
    weight_concentration : float
        The Dirichlet parameter gamma of an MFM's weights.
    dynamic : bool
        MFM weights ~ Dirichlet(gamma / K) instead of Dirichlet(gamma).

    Returns
    -------
    pandas.DataFrame
        Columns ``variable`` (``"n_occupied"``, and ``"n_components"`` for an MFM),
        ``k`` and ``probability``, the layout of :func:`n_clusters` (for
        :func:`bayesmix.plot_n_clusters`'s ``prior``).

    Examples
    --------
    >>> p = prior_n_clusters(10, concentration=1.0)
    >>> round(float(p["probability"].sum()), 12), round(float(p["probability"].iloc[0]), 4)
    (1.0, 0.1)
    """
    from bayesmix.core._validation import check_int, check_positive

    n = check_int(n_obs, "n_obs", minimum=1)
    if (concentration is None) == (k_prior is None):
        raise ValueError(
            "prior_n_clusters needs exactly one of concentration (Dirichlet process) or "
            f"k_prior (mixture of finite mixtures); got concentration={concentration!r}, "
            f"k_prior={'None' if k_prior is None else 'array'}."
        )
    k = np.arange(1, n + 1)
    if concentration is not None:
        if not isinstance(concentration, numbers.Real):
            concentration = tuple(concentration)
            if len(concentration) != 2:
                raise ValueError(
                    "concentration must be a number or a (shape, rate) pair; got "
                    f"{concentration!r}."
                )
            for i, v in enumerate(concentration):
                check_positive(v, f"concentration[{i}]")
        else:
            check_positive(concentration, "concentration")
        p = _dp_prior(n, concentration)
        return pd.DataFrame({"variable": "n_occupied", "k": k, "probability": p})
    kp = np.asarray(k_prior, dtype=float)
    if kp.ndim != 1 or np.any(kp < 0) or not np.isclose(kp.sum(), 1.0):
        raise ValueError(
            "k_prior must be a 1-D array of probabilities of K = 1, 2, ... summing to 1; "
            f"got shape {kp.shape}, sum {kp.sum():.4g}."
        )
    gamma = check_positive(weight_concentration, "weight_concentration")
    p_plus = _mfm_prior(n, kp, gamma, bool(dynamic))
    return pd.concat(
        [
            pd.DataFrame({"variable": "n_occupied", "k": k, "probability": p_plus}),
            pd.DataFrame(
                {"variable": "n_components", "k": np.arange(1, kp.size + 1), "probability": kp}
            ),
        ],
        ignore_index=True,
    )
