"""Model comparison and the choice of the number of components.

* :func:`loo`: PSIS-LOO via :func:`arviz_stats.loo` on the ``log_likelihood`` group
  (the pointwise marginal mixture density, label-invariant), with the Pareto k
  diagnostic checked.
* :func:`waic`: the widely applicable information criterion (Watanabe 2010), which
  ArviZ 1.x dropped. With ``l_si = log p(y_i | theta_s)`` over S draws,

  - ``lppd_i = log( (1/S) sum_s exp(l_si) )``
  - ``p_waic_i = Var_s(l_si)`` (sample variance, divisor S - 1, as Gelman, Hwang &
    Vehtari 2014 and the old ``arviz.waic``)
  - ``elpd_waic_i = lppd_i - p_waic_i``; ``elpd_waic = sum_i elpd_waic_i``;
    ``p_waic = sum_i p_waic_i``
  - ``se = sqrt(N * Var_i(elpd_waic_i))`` (divisor N - 1).

  A warning is emitted when any ``p_waic_i > 0.4`` (the old ArviZ rule: WAIC is then
  unreliable; prefer LOO). The result is an :class:`ELPDDataWAIC`, a subclass of
  ArviZ's :class:`arviz_stats.ELPDData` (``elpd``, ``se``, ``p``, ``elpd_i``), so it
  prints and reads like ``arviz_stats.loo``'s result.
* :func:`select_k`: one table over a grid of K: BIC and ICL from EM, ELPD-LOO and
  ELPD-WAIC from MCMC, with the recommended K per criterion.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import xarray as xr
from arviz_stats import ELPDData
from scipy.special import logsumexp

from bayesmix._validation import BayesmixWarning

__all__ = ["ELPDDataWAIC", "SelectKFit", "loo", "select_k", "waic"]

#: Pareto k above which the PSIS estimate of an observation is unreliable.
PARETO_K_MAX = 0.7
#: Pointwise WAIC penalty above which WAIC is flagged unreliable (old ArviZ rule).
P_WAIC_I_MAX = 0.4


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


def _log_likelihood(idata, var_name="X"):
    """The pointwise log-likelihood (chain, draw, obs) DataArray, or a clear error."""
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"idata must be an xarray.DataTree from bayesmix.sample; got {type(idata).__name__}."
        )
    if "log_likelihood" not in idata.children or var_name not in idata["log_likelihood"]:
        raise ValueError(
            f"idata has no log_likelihood/{var_name}: LOO and WAIC need the pointwise "
            "log-likelihood of every observation per draw. bayesmix.sample adds it; for a trace "
            "built elsewhere use bayesmix.from_arrays(weights, means, covariances, X) (which "
            "computes it), or pymc.compute_log_likelihood(idata, model=model)."
        )
    da = idata["log_likelihood"][var_name]
    missing = [d for d in ("chain", "draw") if d not in da.dims]
    if missing:
        raise ValueError(
            f"log_likelihood/{var_name} must have dims ('chain', 'draw', ...); got {da.dims}."
        )
    return da


def loo(idata, *, var_name="X", pointwise=True, **kwargs):
    """PSIS leave-one-out cross-validation (arviz_stats.loo) with the Pareto k check.

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior with a ``log_likelihood`` group.
    var_name : str
        The log-likelihood variable (``"X"`` in bayesmix traces).
    pointwise : bool
        Keep pointwise ``elpd_i`` and ``pareto_k`` (needed for the k check).
    **kwargs
        Passed to :func:`arviz_stats.loo` (``reff``, ``moment_match`` ...).

    Returns
    -------
    arviz_stats.ELPDDataLOO
        ``elpd``, ``se``, ``p`` (p_loo), ``pareto_k`` (obs) ...

    Warns
    -----
    BayesmixWarning
        When any Pareto k exceeds 0.7, naming the observations.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix._trace import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 1))
    >>> dt = from_arrays(np.ones((2, 100, 1)), rng.normal(0, 0.2, (2, 100, 1, 1)),
    ...                  np.ones((2, 100, 1, 1, 1)), X)
    >>> round(float(loo(dt).p), 1) < 3
    True
    """
    da = _log_likelihood(idata, var_name)
    n_draws = int(da.sizes["chain"] * da.sizes["draw"])
    if n_draws < 25:
        # PSIS fits its Pareto tail to the top 20% of the draws and needs >= 5 of them;
        # with fewer, arviz_stats fails with an IndexError or an internal ValueError
        raise ValueError(
            f"loo needs at least 25 posterior draws (chains x draws) for Pareto-smoothed "
            f"importance sampling; idata has {n_draws}. Sample more draws, or use "
            "bayesmix.waic(idata)."
        )
    with warnings.catch_warnings():
        # arviz warns about large k itself; ours below says what to do
        warnings.filterwarnings("ignore", message=".*[Pp]areto.*")
        result = __import__("arviz_stats").loo(
            idata, pointwise=pointwise, var_name=var_name, **kwargs
        )
    if pointwise and result.pareto_k is not None:
        k = np.asarray(result.pareto_k).ravel()
        bad = np.flatnonzero(k > PARETO_K_MAX)
        if bad.size:
            obs = (da["obs"].values[bad] if "obs" in da.coords else bad).tolist()
            warnings.warn(
                f"loo: {bad.size} observation(s) have Pareto k > {PARETO_K_MAX} (max "
                f"{k.max():.2f}; obs {list(obs[:10])}{' ...' if bad.size > 10 else ''}): the PSIS "
                "estimate is unreliable for them. Try more draws, "
                "arviz_stats.loo_moment_match / reloo, K-fold CV (arviz_stats.loo_kfold), or check "
                "these observations (outliers a component fits alone; consider fewer components "
                "or heavier tails).",
                BayesmixWarning,
                stacklevel=2,
            )
    return result


def _waic_arrays(ll):
    """WAIC from a (S, N) log-likelihood matrix: elpd_i, lppd_i, p_waic_i."""
    S = ll.shape[0]
    lppd_i = logsumexp(ll, axis=0) - np.log(S)
    p_i = np.var(ll, axis=0, ddof=1) if S > 1 else np.zeros(ll.shape[1])
    return lppd_i - p_i, lppd_i, p_i


def waic(idata, *, var_name="X"):
    """Widely applicable information criterion (formulas in the module docstring).

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior with a ``log_likelihood`` group.
    var_name : str
        The log-likelihood variable (``"X"`` in bayesmix traces).

    Returns
    -------
    ELPDDataWAIC
        ``elpd`` (elpd_waic, log scale, higher is better), ``se``, ``p`` (p_waic),
        ``elpd_i``, ``lppd_i``, ``p_waic_i`` over ``obs``; ``warning`` true when some
        ``p_waic_i > 0.4``.

    Warns
    -----
    BayesmixWarning
        When any ``p_waic_i > 0.4``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix._trace import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 1))
    >>> dt = from_arrays(np.ones((2, 100, 1)), rng.normal(0, 0.2, (2, 100, 1, 1)),
    ...                  np.ones((2, 100, 1, 1, 1)), X)
    >>> w = waic(dt)
    >>> bool(abs(w.elpd - float(w.elpd_i.sum())) < 1e-9)
    True
    """
    da = _log_likelihood(idata, var_name)
    obs_dims = [d for d in da.dims if d not in ("chain", "draw")]
    da = da.transpose("chain", "draw", *obs_dims)
    obs_shape = da.shape[2:]
    ll = da.values.reshape(da.shape[0] * da.shape[1], -1)
    if not np.all(np.isfinite(ll)):
        raise ValueError(
            f"log_likelihood/{var_name} contains non-finite values; WAIC is undefined. Check the "
            "model (a draw giving zero density to an observation)."
        )
    S, N = ll.shape
    elpd_i, lppd_i, p_i = _waic_arrays(ll)
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
    coords = {d: da.coords[d] for d in obs_dims if d in da.coords}

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


# --------------------------------------------------------------------------- select_k

_RULES = ("one-se", "best")


class _Fits(dict):
    """K -> SelectKFit; shared, not deep-copied, when pandas copies ``DataFrame.attrs``."""

    def __deepcopy__(self, memo):
        return self


@dataclass
class SelectKFit:
    """The fitted objects behind one row of the :func:`select_k` table."""

    em: object
    idata: xr.DataTree | None = None
    loo: ELPDData | None = None
    waic: ELPDData | None = None


def _run_mcmc(X, K, *, covariance, prior, em, draws, tune, chains, random_seed, progress, **kw):
    """Build the finite mixture and sample it from the EM fit (PyMC imported here only)."""
    from bayesmix.models import build_gmm
    from bayesmix.sampling import sample

    model = build_gmm(X, K, covariance=covariance, prior=prior)
    return sample(
        model,
        init=em,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=random_seed,
        progressbar=progress,
        **kw,
    )


def _elpd_choice(df, fits, crit, rule, N):
    """Recommended K for an ELPD criterion and the difference columns."""
    col = f"elpd_{crit}"
    e = {k: np.asarray(getattr(fits[k], crit).elpd_i).ravel() for k in df["K"]}
    best_k = int(df.loc[df[col].idxmax(), "K"])
    diff = df[col] - df[col].max()
    se = np.array(
        [np.sqrt(N * np.var(e[k] - e[best_k], ddof=1)) if k != best_k else 0.0 for k in df["K"]]
    )
    df[f"{col}_diff"] = diff
    df[f"{col}_diff_se"] = se
    if rule == "best":
        return best_k
    within = df["K"][diff.values >= -se]
    return int(within.min())


def select_k(
    X,
    ks,
    *,
    covariance="full",
    prior=None,
    mcmc=True,
    draws=500,
    tune=500,
    chains=2,
    random_seed=None,
    n_init=10,
    progress=True,
    rule="one-se",
    **sample_kwargs,
):
    """Compare numbers of components: BIC/ICL from EM, ELPD-LOO/WAIC from MCMC.

    Parameters
    ----------
    X : array_like or pandas.DataFrame, shape (N, D)
    ks : iterable of int
        The K grid, e.g. ``range(1, 7)``.
    covariance : {"full", "diag", "spherical", "tied"}
    prior : None, GMMPrior or callable K -> GMMPrior
        ``None``: EM is maximum likelihood and the PyMC model uses its default prior
        (``GMMPrior.from_data(X, K)``). A prior (or a function giving one per K):
        EM is the MAP of the same posterior MCMC samples.
    mcmc : bool
        ``False`` gives the EM-only table in seconds.
    draws, tune, chains : int
        Passed to :func:`bayesmix.sample` (initialised from the EM fit).
    random_seed : int or numpy.random.Generator, optional
        One generator; every EM and MCMC run gets a seed drawn from it.
    n_init : int
        EM restarts per K.
    progress : bool
        Print one line per K to stderr (and the sampler's progress bar).
    rule : {"one-se", "best"}
        For ELPD: ``"one-se"`` recommends the smallest K whose ELPD is within one
        standard error of the best (the SE of the pointwise difference with the
        best K, ``sqrt(N Var_i(elpd_i,K - elpd_i,best))``, as arviz ``compare``'s
        ``dse``); ``"best"`` the highest ELPD.
    **sample_kwargs
        More keyword arguments for :func:`bayesmix.sample`.

    Returns
    -------
    pandas.DataFrame
        One row per K: ``K``, ``covariance``, ``estimate`` ("ML"/"MAP"),
        ``log_likelihood``, ``log_posterior``, ``n_params``, ``bic``, ``icl`` (lower is
        better, scikit-learn's convention ``-2 log L + p log N``; ICL adds twice the
        classification entropy), ``converged``, ``collapsed`` (number of collapsed
        EM components) and, with ``mcmc``: ``elpd_loo``, ``elpd_loo_se``, ``p_loo``,
        ``pareto_k_max``, ``elpd_waic``, ``elpd_waic_se``, ``p_waic`` (higher is
        better), ``elpd_loo_diff`` / ``elpd_loo_diff_se`` (and the WAIC pair) relative
        to the best K, ``max_rhat``, ``min_ess_bulk`` (weights and means, after
        relabelling to the EM fit), ``divergences``, ``label_switching`` (chains sat
        in different labellings), ``mcmc_seconds``; finally ``recommended_by``
        (criteria recommending that K).

        ``attrs``: ``recommended`` (criterion -> K), ``rules`` (criterion -> the
        rule in words), ``fits`` (K -> :class:`SelectKFit` with ``em``, ``idata``,
        ``loo``, ``waic``). BIC/ICL recommendations skip fits with collapsed
        components (reported in ``collapsed``) unless all collapsed.

    Examples
    --------
    >>> import numpy as np
    >>> import bayesmix as bm
    >>> X, _ = bm.simulate(300, [0.3, 0.3, 0.4], [[0, 0], [8, 0], [0, 8]],
    ...                    [np.eye(2)] * 3, random_seed=0)
    >>> table = select_k(X, range(1, 5), mcmc=False, n_init=2, random_seed=0, progress=False)
    >>> table.attrs["recommended"]["bic"]
    3
    """
    import pandas as pd

    from bayesmix._validation import (
        check_covariance_type,
        check_data,
        check_n_components,
        check_random_state,
    )
    from bayesmix.em import fit_em
    from bayesmix.labelswitching import LabelSwitchingWarning, diagnostics, relabel

    data = X  # fits get the user's data as given (a DataFrame keeps its feature names)
    X = check_data(X)
    N = X.shape[0]
    covariance = check_covariance_type(covariance)
    if isinstance(ks, int | np.integer):
        ks = [ks]
    try:
        ks = [check_n_components(k, N, name="ks") for k in ks]
    except TypeError as exc:
        raise TypeError(f"ks must be an iterable of integers such as range(1, 7); {exc}") from exc
    if not ks:
        raise ValueError("ks is empty; give at least one number of components, e.g. range(1, 7).")
    if len(set(ks)) != len(ks):
        raise ValueError(f"ks has repeated values {ks}; give each K once.")
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {list(_RULES)}; got {rule!r}.")
    rng = check_random_state(random_seed)
    fits = _Fits()
    rows = []
    t_grid = time.perf_counter()
    for i, K in enumerate(ks):
        t0 = time.perf_counter()
        p = prior(K) if callable(prior) else prior
        em = fit_em(
            data,
            K,
            covariance=covariance,
            prior=p,
            n_init=n_init,
            random_seed=int(rng.integers(2**31)),
        )
        row = {
            "K": K,
            "covariance": covariance,
            "estimate": "ML" if p is None else "MAP",
            "log_likelihood": float(em.log_likelihood),
            "log_posterior": np.nan if em.log_posterior is None else float(em.log_posterior),
            "n_params": int(em.n_parameters),
            "bic": float(em.bic(X)),
            "icl": float(em.icl(X)),
            "converged": bool(em.converged),
            "collapsed": len(getattr(em, "collapsed", ()) or ()),
        }
        fit = SelectKFit(em=em)
        msg = f"BIC {row['bic']:.1f}, ICL {row['icl']:.1f}"
        if mcmc:
            t1 = time.perf_counter()
            idata = _run_mcmc(
                data,
                K,
                covariance=covariance,
                prior=p,
                em=em,
                draws=draws,
                tune=tune,
                chains=chains,
                random_seed=int(rng.integers(2**31)),
                progress=progress,
                **sample_kwargs,
            )
            switched = False
            if K > 1:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", LabelSwitchingWarning)
                    idata = relabel(idata, reference=em)
                for w in caught:
                    if issubclass(w.category, LabelSwitchingWarning):
                        switched = True
                    else:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            fit.idata = idata
            fit.loo = loo(idata)
            fit.waic = waic(idata)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BayesmixWarning)
                diag = diagnostics(idata, var_names=("weights", "means"))
            ss = idata.children.get("sample_stats")
            div = (
                int(ss["diverging"].values.sum())
                if ss is not None and "diverging" in ss.data_vars
                else np.nan
            )
            pk = fit.loo.pareto_k
            row.update(
                {
                    "elpd_loo": float(fit.loo.elpd),
                    "elpd_loo_se": float(fit.loo.se),
                    "p_loo": float(fit.loo.p),
                    "pareto_k_max": float(np.max(pk)) if pk is not None else np.nan,
                    "elpd_waic": float(fit.waic.elpd),
                    "elpd_waic_se": float(fit.waic.se),
                    "p_waic": float(fit.waic.p),
                    "max_rhat": float(np.nanmax(diag["rhat"])) if len(diag) else np.nan,
                    "min_ess_bulk": float(np.nanmin(diag["ess_bulk"])) if len(diag) else np.nan,
                    "divergences": div,
                    "label_switching": switched,
                    "mcmc_seconds": time.perf_counter() - t1,
                }
            )
            msg += (
                f"; ELPD-LOO {row['elpd_loo']:.1f} ± {row['elpd_loo_se']:.1f}, "
                f"max R-hat {row['max_rhat']:.3f}"
            )
        fits[K] = fit
        rows.append(row)
        if progress:
            print(
                f"select_k [{i + 1}/{len(ks)}] K={K} ({covariance}): {msg} "
                f"({time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    df = pd.DataFrame(rows)
    ok = df[df["collapsed"] == 0]
    if ok.empty:
        ok = df
    recommended = {
        "bic": int(ok.loc[ok["bic"].idxmin(), "K"]),
        "icl": int(ok.loc[ok["icl"].idxmin(), "K"]),
    }
    skip = " among fits without collapsed components" if len(ok) < len(df) else ""
    rules = {
        "bic": f"lowest BIC (-2 log L + p log N){skip}",
        "icl": f"lowest ICL (BIC + 2 x classification entropy){skip}",
    }
    if mcmc:
        for crit in ("loo", "waic"):
            recommended[crit] = _elpd_choice(df, fits, crit, rule, N)
            rules[crit] = (
                f"smallest K with ELPD-{crit.upper()} within one SE (of the pointwise "
                "difference) of the best"
                if rule == "one-se"
                else f"highest ELPD-{crit.upper()}"
            )
        bad = df[df["max_rhat"] > 1.01]
        if len(bad):
            warnings.warn(
                f"select_k: K={bad['K'].tolist()} have max R-hat > 1.01 after relabelling; their "
                "ELPD may be unreliable. Increase draws/tune or chains, or drop those K.",
                BayesmixWarning,
                stacklevel=2,
            )
    df["recommended_by"] = [",".join(c for c, k in recommended.items() if k == K) for K in df["K"]]
    df.attrs["recommended"] = recommended
    df.attrs["rules"] = rules
    df.attrs["fits"] = fits
    if progress:
        chosen = ", ".join(f"{c.upper()}: K={k}" for c, k in recommended.items())
        print(
            f"select_k: recommended {chosen} ({time.perf_counter() - t_grid:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    return df
