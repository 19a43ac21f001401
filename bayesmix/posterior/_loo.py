"""LOO and WAIC of a bayesmix posterior, with or without the stored pointwise group.

* :func:`loo`: PSIS-LOO (Vehtari, Gelman & Gabry 2017) via arviz_stats, with the Pareto
  k diagnostic checked. With the ``log_likelihood`` group: :func:`arviz_stats.loo` on
  it. Without it (large data, ``bm.sample(log_likelihood="auto")``): PSIS is per
  observation, so *exact* LOO is computed chunk by chunk over observations from the
  parameters (:func:`bayesmix.mcmc._pointwise.iter_pointwise`), with the relative
  efficiency ``reff`` computed once as arviz_stats does (mean ESS of the posterior
  variables over the number of draws); the result equals the in-memory one to
  rounding. Above :data:`LOO_EXACT_MAX_N` observations (and without the group) it uses
  :func:`arviz_stats.loo_subsample` (Magnusson, Andersen, Jonasson & Vehtari 2019,
  2020): exact PSIS-LOO on :data:`LOO_SUBSAMPLE_SIZE` seeded observations, the
  others' contribution estimated by the difference estimator with the lpd
  approximation ``log mean_s p(x_n | theta_s)`` (computed in chunks, over at most
  :data:`LOO_APPROX_DRAWS` evenly spaced draws: the approximation only changes the
  estimator's variance, never its expectation). The result carries
  ``subsample_size`` and ``subsampling_se``.
* :func:`waic`: the widely applicable information criterion (Watanabe 2010), which
  ArviZ 1.x dropped. With ``l_si = log p(y_i | theta_s)`` over S draws,

  - ``lppd_i = log( (1/S) sum_s exp(l_si) )``
  - ``p_waic_i = Var_s(l_si)`` (sample variance, divisor S - 1, as Gelman, Hwang &
    Vehtari 2014 and the old ``arviz.waic``)
  - ``elpd_waic_i = lppd_i - p_waic_i``; ``elpd_waic = sum_i elpd_waic_i``;
    ``p_waic = sum_i p_waic_i``
  - ``se = sqrt(N * Var_i(elpd_waic_i))`` (divisor N - 1).

  Per-observation sums: chunked over observations when the group is absent (exact).
  A warning is emitted when any ``p_waic_i > 0.4`` (the old ArviZ rule: WAIC is then
  unreliable; prefer LOO). The result is an :class:`ELPDDataWAIC`, a subclass of
  ArviZ's :class:`arviz_stats.ELPDData` (``elpd``, ``se``, ``p``, ``elpd_i``), so it
  prints and reads like ``arviz_stats.loo``'s result.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import arviz_stats
import numpy as np
import xarray as xr
from arviz_stats import ELPDData
from scipy.special import logsumexp

from bayesmix.core._validation import BayesmixWarning

__all__ = [
    "LOO_APPROX_DRAWS",
    "LOO_EXACT_MAX_N",
    "LOO_SUBSAMPLE_SIZE",
    "PARETO_K_MAX",
    "P_WAIC_I_MAX",
    "ELPDDataWAIC",
    "loo",
    "subsample_note",
    "waic",
]

#: Pareto k above which the PSIS estimate of an observation is unreliable.
PARETO_K_MAX = 0.7
#: Pointwise WAIC penalty above which WAIC is flagged unreliable (old ArviZ rule).
P_WAIC_I_MAX = 0.4
#: Without the stored pointwise group, ``method="auto"`` computes exact LOO up to this
#: many observations and subsamples above. Exact chunked LOO costs one pass of
#: draws x N density evaluations plus N Pareto fits (about 40 us each at 1000 draws):
#: at N = 2e4 and 1000 draws about 1-2 s; at 1e6 about a minute of Pareto fits alone.
LOO_EXACT_MAX_N = 20_000
#: Observations evaluated exactly by ``loo_subsample`` (seeded): its subsampling SE is
#: then typically well below the ELPD's own SE (Magnusson et al. 2019 use 100-1000).
LOO_SUBSAMPLE_SIZE = 2000
#: Draws (evenly spaced) used for the lpd approximation of all N observations in
#: ``loo_subsample``: it only steers the difference estimator (the exact subsample
#: corrects it; its error shows in the subsampling SE), and each draw is one density
#: pass over the data (1.5 s for 200 draws at N = 1e5, D = 10, K = 8)
LOO_APPROX_DRAWS = 100


@dataclass(kw_only=True)
class ELPDDataWAIC(ELPDData):
    """WAIC result: ``elpd`` (= elpd_waic), ``se``, ``p`` (= p_waic), pointwise values.

    Attributes beyond :class:`arviz_stats.ELPDData`: ``lppd_i`` and ``p_waic_i``
    (DataArrays over ``obs``), ``n_high_variance`` (points with ``p_waic_i > 0.4``).
    ``good_k`` carries the 0.4 threshold on ``p_waic_i``.
    """

    lppd_i: xr.DataArray = None
    p_waic_i: xr.DataArray = None
    n_high_variance: int = 0

    _kind: ClassVar[str | None] = "waic"
    _display_kind: ClassVar[str | None] = "waic"

    @property
    def elpd_waic(self):
        """Alias of ``elpd``."""
        return self.elpd

    @property
    def p_waic(self):
        """Alias of ``p``."""
        return self.p

    def _footer(self):
        if not self.warning:
            return ""
        return (
            f"\n\nThere has been a warning during the calculation: {self.n_high_variance} "
            f"observation(s) have p_waic_i > {P_WAIC_I_MAX}; WAIC may be unreliable, use loo."
        )


_METHODS = ("auto", "exact", "subsample")


def _check_tree(idata):
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"idata must be an xarray.DataTree from bayesmix.sample; got {type(idata).__name__}."
        )


def _stored(idata, var_name):
    return "log_likelihood" in idata.children and var_name in idata["log_likelihood"].data_vars


def _log_likelihood(idata, var_name="X"):
    """The stored pointwise log-likelihood (chain, draw, obs) DataArray, or None.

    None when the group is absent but the posterior has bayesmix parameters and
    ``observed_data/X`` (then it is computed in chunks); a clear error otherwise.
    """
    _check_tree(idata)
    if not _stored(idata, var_name):
        post = idata["posterior"] if "posterior" in idata.children else None
        if (
            var_name == "X"
            and post is not None
            and {"weights", "means", "covariances"} <= set(post.data_vars)
            and "observed_data" in idata.children
            and "X" in idata["observed_data"].data_vars
        ):
            return None
        raise ValueError(
            f"idata has no log_likelihood/{var_name}: LOO and WAIC need the pointwise "
            "log-likelihood of every observation per draw, or the bayesmix parameters "
            "(posterior weights, means, covariances and observed_data/X) to compute it. "
            "For a trace built elsewhere use bayesmix.from_arrays(weights, means, covariances, "
            "X), or pymc.compute_log_likelihood(idata, model=model)."
        )
    da = idata["log_likelihood"][var_name]
    missing = [d for d in ("chain", "draw") if d not in da.dims]
    if missing:
        raise ValueError(
            f"log_likelihood/{var_name} must have dims ('chain', 'draw', ...); got {da.dims}."
        )
    return da


def _n_draws(idata, da):
    src = da if da is not None else idata["posterior"]
    return int(src.sizes["chain"] * src.sizes["draw"])


def _n_obs(idata, da):
    if da is not None:
        return int(np.prod([da.sizes[d] for d in da.dims if d not in ("chain", "draw")]))
    return int(idata["observed_data"].sizes["obs"])


def loo(
    idata,
    *,
    var_name="X",
    pointwise=True,
    method="auto",
    observations=None,
    seed=315,
    chunk=None,
    **kwargs,
):
    """PSIS leave-one-out cross-validation with the Pareto k check, stored group or not.

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior: with a ``log_likelihood`` group, or with its parameters
        and ``observed_data/X`` (``bm.sample(log_likelihood=False)`` or ``"auto"`` on
        large data), from which the pointwise log-likelihood (chain, draw, obs) is
        computed in chunks of observations (memory: draws x chunk).
    var_name : str
        The log-likelihood variable (``"X"`` in bayesmix traces).
    pointwise : bool
        Keep pointwise ``elpd_i`` and ``pareto_k`` (needed for the k check).
    method : {"auto", "exact", "subsample"}
        ``"exact"``: PSIS-LOO of every observation (:func:`arviz_stats.loo` on the
        stored group, else chunk by chunk with the same ``reff``: the same numbers).
        ``"subsample"``: :func:`arviz_stats.loo_subsample` on ``observations`` seeded
        observations (module docstring). ``"auto"``: exact when the group is stored or
        N <= :data:`LOO_EXACT_MAX_N` (20 000), else subsample.
    observations : int or array_like of int, optional
        ``method="subsample"``: how many observations (default
        :data:`LOO_SUBSAMPLE_SIZE`, 2000, at most N) or which.
    seed : int
        Seed of the subsample (as :func:`arviz_stats.loo_subsample`).
    chunk : int, optional
        Observations per chunk when computing from the parameters.
    **kwargs
        Passed to :func:`arviz_stats.loo` (``reff``, ``moment_match`` ...); without the
        stored group only ``reff``.

    Returns
    -------
    arviz_stats.ELPDDataLOO or arviz_stats.ELPDDataLOOSubsample
        ``elpd``, ``se``, ``p`` (p_loo), ``pareto_k`` (obs) ...; subsampled:
        ``subsample_size``, ``subsampling_se`` (the part of ``se`` due to
        subsampling) and ``loo_subsample_observations`` (the indices); ``elpd_i`` and
        ``pareto_k`` are NaN outside the subsample.

    Raises
    ------
    ValueError
        Fewer than 25 draws; NaN or infinite log-likelihood; an unknown ``method``.

    Warns
    -----
    BayesmixWarning
        When any Pareto k exceeds 0.7, naming the observations.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 1))
    >>> args = (np.ones((2, 100, 1)), rng.normal(0, 0.2, (2, 100, 1, 1)),
    ...         np.ones((2, 100, 1, 1, 1)), X)
    >>> a = loo(from_arrays(*args))
    >>> b = loo(from_arrays(*args, log_likelihood=False))  # chunked, exact
    >>> round(float(a.p), 1) < 3, bool(abs(a.elpd - b.elpd) < 1e-9)
    (True, True)
    """
    if method not in _METHODS:
        raise ValueError(
            f"method must be one of {list(_METHODS)}; got {method!r}. 'auto' computes exact "
            f"LOO up to N = {LOO_EXACT_MAX_N} observations and subsamples above."
        )
    da = _log_likelihood(idata, var_name)
    n_draws = _n_draws(idata, da)
    if n_draws < 25:
        # PSIS fits its Pareto tail to the top 20% of the draws and needs >= 5 of them;
        # with fewer, arviz_stats fails with an IndexError or an internal ValueError
        raise ValueError(
            f"loo needs at least 25 posterior draws (chains x draws) for Pareto-smoothed "
            f"importance sampling; idata has {n_draws}. Sample more draws, or use "
            "bayesmix.waic(idata)."
        )
    N = _n_obs(idata, da)
    if method == "auto":
        method = "exact" if da is not None or N <= LOO_EXACT_MAX_N else "subsample"
    if method == "subsample":
        result = _loo_subsample(idata, da, var_name, observations, seed, chunk, pointwise, kwargs)
        obs_coord = idata["observed_data"]["obs"].values if da is None else None
    elif da is not None:
        _check_finite_draws(da, var_name, "loo")
        with warnings.catch_warnings():
            # arviz warns about large k itself; ours below says what to do
            warnings.filterwarnings("ignore", message=".*[Pp]areto.*")
            result = arviz_stats.loo(idata, pointwise=pointwise, var_name=var_name, **kwargs)
        obs_coord = da["obs"].values if "obs" in da.coords else None
    else:
        result = _loo_chunked(idata, pointwise, chunk, kwargs)
        obs_coord = idata["observed_data"]["obs"].values
    if pointwise and result.pareto_k is not None:
        _warn_k(result, obs_coord)
    return result


def subsample_note(result):
    """``""``, or ``" (subsample of m obs, subsampling SE s)"`` for a subsampled LOO.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> subsample_note(SimpleNamespace(subsample_size=2000, subsampling_se=0.53))
    ' (subsample of 2000 obs, subsampling SE 0.5)'
    """
    m = getattr(result, "subsample_size", None)
    if m is None:
        return ""
    return f" (subsample of {m} obs, subsampling SE {float(result.subsampling_se):.1f})"


def _warn_k(result, obs_coord):
    k = np.asarray(result.pareto_k).ravel()
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(k > PARETO_K_MAX)
    if bad.size:
        obs = (obs_coord[bad] if obs_coord is not None else bad).tolist()
        warnings.warn(
            f"loo: {bad.size} observation(s) have Pareto k > {PARETO_K_MAX} (max "
            f"{np.nanmax(k):.2f}; obs {list(obs[:10])}{' ...' if bad.size > 10 else ''}): the "
            "PSIS estimate is unreliable for them. Try more draws, "
            "arviz_stats.loo_moment_match / reloo, K-fold CV (arviz_stats.loo_kfold), or check "
            "these observations (outliers a component fits alone; consider fewer components "
            "or heavier tails).",
            BayesmixWarning,
            stacklevel=3,
        )


def _reff(idata, n_draws, kwargs):
    from arviz_stats.loo.loo_helper import _get_r_eff

    if kwargs.get("reff") is not None:
        return kwargs["reff"]
    return _get_r_eff(idata, n_draws)  # once, for every chunk: as arviz_stats.loo does


def _no_extra(kwargs, what):
    extra = sorted(set(kwargs) - {"reff"})
    if extra:
        raise ValueError(
            f"loo {what} without a stored log_likelihood group takes only reff; got {extra}. "
            "Sample with log_likelihood=True (or add the group) to use them."
        )


def _loo_chunked(idata, pointwise, chunk, kwargs):
    """Exact PSIS-LOO, chunk by chunk over observations, from the parameters."""
    from arviz_stats.loo.loo_helper import _warn_pareto_k, _warn_pointwise_loo
    from arviz_stats.utils import ELPDDataLOO

    from bayesmix.mcmc._pointwise import iter_pointwise

    _no_extra(kwargs, "exact")
    post = idata["posterior"]
    C, S = post.sizes["chain"], post.sizes["draw"]
    reff = _reff(idata, C * S, kwargs)
    obs = idata["observed_data"]["obs"].values
    check = _FiniteCheck(C, S)
    elpd_i, k_i, p_i = [], [], []
    coords = {"chain": post["chain"].values, "draw": post["draw"].values}
    for idx, ll in iter_pointwise(idata, chunk=chunk):
        check.add(ll)
        if check.bad.any():
            continue
        da = xr.DataArray(ll, dims=("chain", "draw", "obs"), coords={**coords, "obs": obs[idx]})
        e, k, p = da.azstats.loo(sample_dims=["chain", "draw"], r_eff=reff)
        elpd_i.append(e)
        k_i.append(k)
        p_i.append(p)
    check.raise_if_bad(post, "X", "loo")
    elpd_i = xr.concat(elpd_i, "obs")
    pareto_k = xr.concat(k_i, "obs")
    p_loo_i = xr.concat(p_i, "obs")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Pp]areto.*")
        warn_mg, good_k = _warn_pareto_k(pareto_k, C * S)
    elpd, se, p_loo, _ = elpd_i.azstats.loo_summary(p_loo_i)
    if pointwise:
        _warn_pointwise_loo(elpd, elpd_i.values)
    return ELPDDataLOO(
        elpd=elpd,
        se=se,
        p=p_loo,
        n_samples=C * S,
        n_data_points=obs.size,
        scale="log",
        warning=warn_mg,
        good_k=good_k,
        elpd_i=elpd_i if pointwise else None,
        pareto_k=pareto_k if pointwise else None,
        approx_posterior=False,
        log_weights=None,  # (chain, draw, obs): not kept
    )


class _LazyPointwise:
    """A (C, S, N) log-likelihood computed only for the observations indexed."""

    def __init__(self, idata, chunk):
        post = idata["posterior"]
        self.idata, self.chunk = idata, chunk
        self.shape = (post.sizes["chain"], post.sizes["draw"], idata["observed_data"].sizes["obs"])
        self.dtype = np.dtype(float)

    def __getitem__(self, key):
        from xarray.core import indexing

        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw
        )

    def _raw(self, key):
        from bayesmix.mcmc._pointwise import pointwise_log_likelihood

        kc, ks, ko = (tuple(key) + (slice(None),) * 3)[:3]
        obs = np.arange(self.shape[2])[ko]
        vals = pointwise_log_likelihood(self.idata, obs=np.atleast_1d(obs), chunk=self.chunk)
        vals = vals.values[kc][:, ks]
        return vals if np.ndim(obs) else vals[..., 0]


def _lazy_tree(idata, chunk):
    """idata with a lazily computed ``log_likelihood/X`` (nothing of (C, S, N) is built)."""
    from xarray.backends.common import BackendArray
    from xarray.core import indexing

    class _Backend(_LazyPointwise, BackendArray):
        pass

    post = idata["posterior"]
    var = xr.Variable(("chain", "draw", "obs"), indexing.LazilyIndexedArray(_Backend(idata, chunk)))
    coords = {
        "chain": post["chain"].values,
        "draw": post["draw"].values,
        "obs": idata["observed_data"]["obs"].values,
    }
    out = idata.copy()
    out["log_likelihood"] = xr.Dataset({"X": xr.DataArray(var, coords=coords)})
    # arviz_stats reads the observation dims off observed_data/X: one per observation
    # (the row positions; the log_lik_fn reads the data from the original tree)
    out["observed_data"] = xr.Dataset(
        {"X": ("obs", np.arange(coords["obs"].size))}, coords={"obs": coords["obs"]}
    )
    return out


def _lpd_approx_fn(idata, chunk):
    """``log_lik_fn`` for loo_subsample's "plpd" slot: the lpd over thinned draws, chunked.

    ``log mean_s p(x_n | theta_s)`` over at most :data:`LOO_APPROX_DRAWS` evenly spaced
    draws, for every observation, in chunks (memory draws x chunk).
    """
    from bayesmix.mcmc._pointwise import iter_pointwise

    post = idata["posterior"]
    C, S = post.sizes["chain"], post.sizes["draw"]
    flat = np.linspace(0, C * S - 1, min(C * S, LOO_APPROX_DRAWS)).round().astype(int)
    thin = idata.copy()
    thin["posterior"] = (
        post.to_dataset()
        .stack(__s__=("chain", "draw"))
        .isel(__s__=flat)
        .drop_vars(["chain", "draw", "__s__"])
        .rename_dims(__s__="draw")
        .expand_dims("chain")
        .assign_coords(chain=[0], draw=np.arange(flat.size))
        .transpose("chain", "draw", ...)
    )

    def fn(observed, data):
        out = np.empty(observed.sizes["obs"])
        for idx, ll in iter_pointwise(thin, chunk=chunk):
            out[idx] = logsumexp(ll.reshape(-1, idx.size), axis=0) - np.log(flat.size)
        return xr.DataArray(out, dims=("obs",), coords={"obs": observed["obs"].values})

    return fn


def _loo_subsample(idata, da, var_name, observations, seed, chunk, pointwise, kwargs):
    N = _n_obs(idata, da)
    if observations is None:
        observations = min(LOO_SUBSAMPLE_SIZE, N)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Pp]areto.*")
        if da is not None:
            _check_finite_draws(da, var_name, "loo")
            return arviz_stats.loo_subsample(
                idata, observations, pointwise=pointwise, var_name=var_name, seed=seed, **kwargs
            )
        _no_extra(kwargs, "subsample")
        reff = _reff(idata, _n_draws(idata, None), kwargs)
        result = arviz_stats.loo_subsample(
            _lazy_tree(idata, chunk),
            observations,
            pointwise=pointwise,
            var_name="X",
            reff=reff,
            seed=seed,
            method="plpd",
            log_lik_fn=_lpd_approx_fn(idata, chunk),
        )
    if not np.isfinite(result.elpd):
        raise ValueError(
            "loo (subsample): the log-likelihood is NaN or infinite for some draws; LOO is "
            "undefined with them. Check those draws (bayesmix.waic names them), then sample again."
        )
    return result


class _FiniteCheck:
    """Accumulates, chunk by chunk, which draws have NaN or infinite log-likelihood."""

    def __init__(self, C, S):
        self.bad = np.zeros((C, S), dtype=bool)
        self.n_nan = 0

    def add(self, ll):
        self.bad |= ~np.isfinite(ll).all(axis=2)
        self.n_nan += int(np.isnan(ll).sum())

    def raise_if_bad(self, post, var_name, what):
        if self.bad.any():
            _raise_bad(
                self.bad, self.n_nan, post["chain"].values, post["draw"].values, var_name, what
            )


def _raise_bad(bad, n_nan, chains, draws, var_name, what):
    where = [f"chain {chains[c]} draw {draws[d]}" for c, d in np.argwhere(bad)]
    raise ValueError(
        f"{what}: log_likelihood/{var_name} has NaN or infinite values ({n_nan} NaN) in "
        f"{len(where)} of {bad.size} draw(s) ({', '.join(where[:5])}"
        f"{', ...' if len(where) > 5 else ''}); {what.upper()} is undefined with them. Check "
        "those draws (a failed sampler step, or a draw giving an observation zero density), "
        "then sample again, or keep only finite draws (e.g. idata.isel(draw=...))."
    )


def _check_finite_draws(da, var_name, what):
    """Draws whose log-likelihood is NaN or infinite make LOO/WAIC undefined: name them."""
    vals = da.transpose("chain", "draw", ...).values
    vals = vals.reshape(vals.shape[0], vals.shape[1], -1)
    bad = ~np.isfinite(vals).all(axis=2)
    if bad.any():
        _raise_bad(
            bad, int(np.isnan(vals).sum()), da["chain"].values, da["draw"].values, var_name, what
        )


def _waic_arrays(ll):
    """WAIC from a (S, N) log-likelihood matrix: elpd_i, lppd_i, p_waic_i."""
    S = ll.shape[0]
    lppd_i = logsumexp(ll, axis=0) - np.log(S)
    p_i = np.var(ll, axis=0, ddof=1) if S > 1 else np.zeros(ll.shape[1])
    return lppd_i - p_i, lppd_i, p_i


def waic(idata, *, var_name="X", chunk=None):
    """Widely applicable information criterion (formulas in the module docstring).

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior with a ``log_likelihood`` group, or with its parameters
        and ``observed_data/X`` (then computed exactly, in chunks of observations).
    var_name : str
        The log-likelihood variable (``"X"`` in bayesmix traces).
    chunk : int, optional
        Observations per chunk when computing from the parameters.

    Returns
    -------
    ELPDDataWAIC
        ``elpd`` (elpd_waic, log scale, higher is better), ``se``, ``p`` (p_waic),
        ``elpd_i``, ``lppd_i``, ``p_waic_i`` over ``obs`` (N,); ``warning`` true when
        some ``p_waic_i > 0.4``.

    Warns
    -----
    BayesmixWarning
        When any ``p_waic_i > 0.4``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 1))
    >>> dt = from_arrays(np.ones((2, 100, 1)), rng.normal(0, 0.2, (2, 100, 1, 1)),
    ...                  np.ones((2, 100, 1, 1, 1)), X, log_likelihood=False)
    >>> w = waic(dt)
    >>> bool(abs(w.elpd - float(w.elpd_i.sum())) < 1e-9)
    True
    """
    da = _log_likelihood(idata, var_name)
    if da is None:
        from bayesmix.mcmc._pointwise import iter_pointwise

        post = idata["posterior"]
        C, S = post.sizes["chain"], post.sizes["draw"]
        check = _FiniteCheck(C, S)
        parts = []
        for _, ll in iter_pointwise(idata, chunk=chunk):
            check.add(ll)
            if not check.bad.any():
                parts.append(_waic_arrays(ll.reshape(C * S, -1)))
        check.raise_if_bad(post, var_name, "waic")
        elpd_i, lppd_i, p_i = (np.concatenate([p[j] for p in parts]) for j in range(3))
        obs_dims, obs_shape = ["obs"], elpd_i.shape
        coords = {"obs": idata["observed_data"]["obs"]}
        S, N = C * S, elpd_i.size
    else:
        obs_dims = [d for d in da.dims if d not in ("chain", "draw")]
        da = da.transpose("chain", "draw", *obs_dims)
        obs_shape = da.shape[2:]
        _check_finite_draws(da, var_name, "waic")
        ll = da.values.reshape(da.shape[0] * da.shape[1], -1)
        S, N = ll.shape
        elpd_i, lppd_i, p_i = _waic_arrays(ll)
        coords = {d: da.coords[d] for d in obs_dims if d in da.coords}
    se = float(np.sqrt(N * np.var(elpd_i, ddof=1))) if N > 1 else float("nan")
    n_high = int((p_i > P_WAIC_I_MAX).sum())
    if n_high:
        warnings.warn(
            f"waic: {n_high} of {N} observation(s) have a posterior variance of the "
            f"log-likelihood p_waic_i > {P_WAIC_I_MAX}; WAIC may be unreliable. Use "
            "bayesmix.loo (PSIS-LOO with its Pareto k diagnostic) instead.",
            BayesmixWarning,
            stacklevel=2,
        )

    def _wrap(v):
        return xr.DataArray(v.reshape(obs_shape), dims=obs_dims, coords=coords)

    return ELPDDataWAIC(
        elpd=float(elpd_i.sum()),
        se=se,
        p=float(p_i.sum()),
        n_samples=S,
        n_data_points=N,
        scale="log",
        warning=bool(n_high),
        good_k=P_WAIC_I_MAX,
        elpd_i=_wrap(elpd_i),
        lppd_i=_wrap(lppd_i),
        p_waic_i=_wrap(p_i),
        n_high_variance=n_high,
    )
