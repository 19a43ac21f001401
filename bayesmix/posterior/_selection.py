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
* The one rule for choosing K (:data:`CHOICE_RULE`): :func:`choose_elpd` (the
  one-standard-error rule on ELPD) and :func:`choose_model` (ELPD-LOO when there is
  MCMC, else BIC), used by :func:`select_k`, :func:`bayesmix.workflow._pipeline.run_experiment`,
  the report and the command line.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats import ELPDData

from bayesmix.core._covariance import n_parameters
from bayesmix.core._validation import (
    COVARIANCE_TYPES,
    EM_COVARIANCE_TYPES,
    BayesmixWarning,
    check_covariance_type,
    check_data,
    check_int,
    check_n_components,
    check_random_state,
)
from bayesmix.em import fit_em
from bayesmix.em._lrt import add_lrt, check_n_boot
from bayesmix.mcmc._relabel import LabelSwitchingWarning, diagnostics, relabel
from bayesmix.posterior._loo import (  # noqa: F401 - re-exported (public here before)
    P_WAIC_I_MAX,
    PARETO_K_MAX,
    ELPDDataWAIC,
    loo,
    waic,
)

__all__ = [
    "CHOICE_RULE",
    "ELPD_NEGLIGIBLE_DIFF",
    "ELPDChoice",
    "ELPDDataWAIC",
    "SelectKFit",
    "choose_elpd",
    "choose_model",
    "loo",
    "select_k",
    "waic",
]


#: ELPD differences smaller than this (nats) count as negligible whatever their standard
#: error: below about 4 nats the normal approximation behind the SE of an ELPD
#: difference is poorly calibrated and the models predict alike (Sivula, Magnusson,
#: Matamoros & Vehtari, "Uncertainty in Bayesian leave-one-out cross-validation based
#: model comparison", 2022; the ``loo`` package's cross-validation FAQ). Without this
#: floor, two nearly equal models have a tiny SE of the difference and a 1.5-nat gain
#: of an over-fitted K (with R-hat 2 and Pareto k > 1) decides the choice.
ELPD_NEGLIGIBLE_DIFF = 4.0

#: The rule for choosing the model (K and covariance type), in words: applied by
#: :func:`choose_model` (the pipeline, the report, the command line); :func:`select_k`
#: applies its ELPD part (:func:`choose_elpd`) to one covariance type.
CHOICE_RULE = (
    "With MCMC: the highest ELPD-LOO, except that the model with the fewest parameters "
    "whose ELPD-LOO is within one standard error (of the pointwise difference) of the "
    f"best, or within {ELPD_NEGLIGIBLE_DIFF:g} nats of it (a negligible difference), is "
    "preferred. Without MCMC: the lowest BIC."
)


# --------------------------------------------------------------------------- choosing K

_RULES = ("one-se", "best")


@dataclass(frozen=True)
class ELPDChoice:
    """The outcome of :func:`choose_elpd`.

    ``chosen`` and ``best`` are candidate keys; ``diff`` (key -> ELPD minus the best
    ELPD, <= 0) and ``diff_se`` (key -> standard error of that difference, 0 for the
    best) cover every candidate.
    """

    chosen: object
    best: object
    diff: dict
    diff_se: dict


def choose_elpd(elpd, n_params, *, elpd_i=None, elpd_se=None, rule="one-se"):
    """The one-standard-error rule on ELPD: the rule for choosing K.

    The best candidate has the highest ELPD (the first one on ties). The standard error
    of candidate k's difference with the best is ``sqrt(N Var_i(elpd_i,best - elpd_i,k))``
    (arviz ``compare``'s ``dse``) when both have pointwise values of the same length N,
    else ``elpd_se[k]``. With ``rule="one-se"`` the chosen candidate is the one with the
    fewest parameters among those whose ELPD is within ``max(se, 4)`` nats of the best
    (:data:`ELPD_NEGLIGIBLE_DIFF`: below 4 nats a difference is negligible and its SE
    unreliable; ties: the higher ELPD); with ``rule="best"`` it is the best.

    Parameters
    ----------
    elpd : dict
        Candidate key (K, or (covariance, K)) -> ELPD (log scale, higher is better).
        Candidates with a non-finite ELPD are left out.
    n_params : dict
        Key -> number of free parameters.
    elpd_i : dict, optional
        Key -> pointwise ELPD, shape (N,) (array_like or DataArray), or None.
    elpd_se : dict, optional
        Key -> fallback standard error of the difference when pointwise values are missing.
    rule : {"one-se", "best"}

    Returns
    -------
    ELPDChoice

    Examples
    --------
    >>> c = choose_elpd({2: -100.0, 3: -99.5}, {2: 11, 3: 17},
    ...                 elpd_i={2: [-50.0, -50.0], 3: [-49.0, -50.5]})
    >>> c.best, c.chosen, float(c.diff_se[2])
    (3, 2, 1.5)
    """
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {list(_RULES)}; got {rule!r}.")
    elpd = {k: float(v) for k, v in elpd.items() if np.isfinite(v)}
    if not elpd:
        raise ValueError("choose_elpd needs at least one candidate with a finite ELPD.")
    elpd_i = {k: _pointwise(v) for k, v in (elpd_i or {}).items()}
    elpd_se = elpd_se or {}
    best = max(elpd, key=elpd.get)
    best_i = elpd_i.get(best)
    diff, diff_se = {}, {}
    for k, e in elpd.items():
        e_i = elpd_i.get(k)
        if k == best:
            se = 0.0
        elif e_i is not None and best_i is not None and e_i.size == best_i.size:
            se = float(np.sqrt(e_i.size * np.var(best_i - e_i, ddof=1)))
        else:
            se = float(elpd_se.get(k, np.nan))
        diff[k], diff_se[k] = e - elpd[best], se
    if rule == "best":
        return ELPDChoice(best, best, diff, diff_se)
    tol = {k: max(diff_se[k], ELPD_NEGLIGIBLE_DIFF) for k in elpd}
    within = [k for k, e in elpd.items() if e >= elpd[best] - tol[k]]
    chosen = min(within, key=lambda k: (n_params[k], -elpd[k]))
    return ELPDChoice(chosen, best, diff, diff_se)


def _pointwise(values):
    if values is None:
        return None
    return np.asarray(getattr(values, "values", values), float).ravel()


def choose_model(table, loo_results, n_features):
    """Apply :data:`CHOICE_RULE` to a table of fits over covariance types and K.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per fit: ``covariance``, ``K``, ``bic``, optional ``error`` (rows with an
        error are skipped), ``elpd_loo`` and ``elpd_loo_se`` (NaN where not sampled).
    loo_results : dict
        ``(covariance, K)`` -> the LOO result (with ``elpd_i``) of the sampled fits.
    n_features : int
        D, for the number of parameters of each fit.

    Returns
    -------
    key : tuple
        ``(covariance, K)`` of the chosen fit.
    reason : str
        The choice in words (for the report).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"covariance": ["full", "full"], "K": [1, 2], "bic": [9.0, 7.5]})
    >>> choose_model(t, {}, 2)
    (('full', 2), 'full covariance, K=2: lowest BIC (7.5)')
    """
    ok = table[table["error"].isna()] if "error" in table else table
    if ok.empty:
        raise RuntimeError("every EM fit failed; nothing to choose from (see the table).")
    mc = ok[ok["elpd_loo"].notna()] if "elpd_loo" in ok else ok.iloc[:0]
    if mc.empty:
        best = ok.loc[ok["bic"].idxmin()]
        key = (best["covariance"], int(best["K"]))
        return key, f"{key[0]} covariance, K={key[1]}: lowest BIC ({best['bic']:.1f})"
    keys = [(row["covariance"], int(row["K"])) for _, row in mc.iterrows()]
    choice = choose_elpd(
        dict(zip(keys, mc["elpd_loo"], strict=True)),
        {key: n_parameters(key[0], key[1], n_features) for key in keys},
        elpd_i={key: getattr(loo_results.get(key), "elpd_i", None) for key in keys},
        elpd_se=dict(zip(keys, mc.get("elpd_loo_se", pd.Series(np.nan, mc.index)), strict=True)),
    )
    key, best_key = choice.chosen, choice.best
    elpd = dict(zip(keys, mc["elpd_loo"], strict=True))
    reason = (
        f"{key[0]} covariance, K={key[1]}: ELPD-LOO {elpd[key]:.1f}; "
        f"best ELPD-LOO {elpd[best_key]:.1f} at {best_key[0]} K={best_key[1]}"
        + (
            ""
            if key == best_key
            else " (within one SE of the difference or 4 nats, fewer parameters)"
        )
    )
    return key, reason


# --------------------------------------------------------------------------- select_k


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


def _run_mcmc(X, K, *, covariance, prior, em, sample_weight=None, **sample_kwargs):
    """Build the finite mixture and sample it from the EM fit.

    PyMC is imported here, deliberately lazily: select_k with ``mcmc=False`` (and
    loo/waic) must not pay for importing PyMC.
    """
    from bayesmix.mcmc._builders import build_gmm
    from bayesmix.mcmc._sample import sample

    model = build_gmm(X, K, covariance=covariance, prior=prior, sample_weight=sample_weight)
    return sample(model, **{"init": em, **sample_kwargs})


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
    sample_weight=None,
    lrt=False,
    lrt_boot=99,
    mfm=False,
    client=None,
    **sample_kwargs,
):
    """Compare numbers of components: BIC/ICL from EM, ELPD-LOO/WAIC from MCMC.

    Parameters
    ----------
    X : array_like or pandas.DataFrame, shape (N, D)
    ks : iterable of int
        The K grid, e.g. ``range(1, 7)``.
    covariance : {"full", "diag", "spherical", "tied"} or one of mclust's model names
        mclust's names (``"EII"`` ... ``"VVV"``, :func:`bayesmix.fit_em`) other than the
        four these types are need ``mcmc=False`` (EM only).
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
        Print one line per K to stderr, and show the sampler's progress bar unless
        ``progressbar`` is given.
    rule : {"one-se", "best"}
        For ELPD: ``"one-se"`` recommends the smallest K whose ELPD is within one
        standard error of the best (the SE of the pointwise difference with the
        best K, ``sqrt(N Var_i(elpd_i,K - elpd_i,best))``, as arviz ``compare``'s
        ``dse``) or within 4 nats of it (:data:`ELPD_NEGLIGIBLE_DIFF`: smaller
        differences are negligible and their SE unreliable); ``"best"`` the
        highest ELPD.
    mfm : bool or dict
        Also fit one mixture of finite mixtures (:func:`bayesmix.build_mfm`, same
        covariance type, sampled by the Gibbs sampler with ``draws``/``tune``/``chains``)
        and put its posterior ``P(K = k | data)`` next to the criteria: columns
        ``p_mfm`` and ``p_mfm_mcse`` (:func:`bayesmix.n_clusters`), recommendation
        ``"mfm"`` = the posterior mode of K. A dict gives :func:`bayesmix.build_mfm`
        keywords (``k_prior``, ``max_components``, ``dynamic``, ``prior``); a
        :class:`GMMPrior` given as ``prior`` is used for it too.
    client : dask.distributed.Client, optional
        Run the per-K fits (EM, then MCMC from it) as tasks on this client, one line
        per finished fit on stderr with ``progress``. The seeds are drawn up front in
        the serial order, so the table equals the serial one.
    **sample_kwargs
        More keyword arguments for :func:`bayesmix.sample` and ``pymc.sample``
        (``progressbar``, ``nuts_sampler``, ``target_accept``, ``init`` ...); they take
        precedence over the defaults select_k passes (``progressbar=progress``, the EM
        fit as ``init``). ``model`` is not accepted: select_k builds one per K.
    sample_weight : array_like, shape (N,), optional
        Frequency weights for every EM fit, BIC/ICL (``n = sum(w)``) and PyMC model
        (see :func:`bayesmix.fit_em`).
    lrt : bool, default False
        Add the bootstrap likelihood-ratio test of each K against K + 1
        (:func:`bayesmix.bootstrap_lrt`, ``lrt_boot`` replicates): columns ``lrt`` and
        ``lrt_p_value``, and the recommendation ``"lrt"``: the smallest K whose test
        against K + 1 is not rejected at the 5% level (mclust's sequential use). Not
        available with ``sample_weight`` or a callable ``prior``.
    lrt_boot : int, default 99
        Bootstrap replicates per test (at least 19).

    Returns
    -------
    pandas.DataFrame
        One row per K: ``K``, ``covariance``, ``estimate`` ("ML"/"MAP"),
        ``log_likelihood``, ``log_posterior``, ``n_params``, ``bic``, ``icl`` (lower is
        better, scikit-learn's convention ``-2 log L + p log N``; ICL adds twice the
        hard classification's cost, as mclust), ``converged``, ``collapsed`` (number of collapsed
        EM components) and, with ``mcmc``: ``elpd_loo``, ``elpd_loo_se``, ``p_loo``,
        ``pareto_k_max``, ``elpd_waic``, ``elpd_waic_se``, ``p_waic`` (higher is
        better), ``elpd_loo_diff`` / ``elpd_loo_diff_se`` (and the WAIC pair) relative
        to the best K, ``max_rhat``, ``min_ess_bulk`` (weights and means, after
        relabelling to the EM fit), ``divergences``, ``label_switching`` (chains sat
        in different labellings), ``mcmc_seconds``; :func:`arviz_stats.compare`'s
        ``rank`` (0 = highest ELPD-LOO), ``elpd_diff``, ``dse`` and ``weight``
        (stacking weights over the K, summing to 1; see
        :func:`bayesmix.posterior._modelcompare.compare_models`); finally
        ``recommended_by`` (criteria recommending that K).

        The ELPD-LOO choice in terms of compare's table: the K of rank 0 is the best;
        the recommended K is the smallest among those with ``elpd_diff >=
        -max(dse * sqrt(N / (N - 1)), 4)`` (the rule's SE, ``elpd_loo_diff_se``, has
        divisor N - 1 and compare's ``dse`` divisor N). The stacking weights are shown
        beside it, not used by the rule.

        ``attrs``: ``recommended`` (criterion -> K), ``rules`` (criterion -> the
        rule in words), ``fits`` (K -> :class:`SelectKFit` with ``em``, ``idata``,
        ``loo``, ``waic``), with ``mcmc`` ``compare``: the table of
        ``arviz_stats.compare`` over the fits' LOO results (``method="stacking"``,
        unrounded, best first, index ``"K=k"``) with ``n_params``, ``bic``, ``icl``
        (and ``p_mfm``) beside it. BIC/ICL recommendations skip fits with collapsed
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
    data = X  # fits get the user's data as given (a DataFrame keeps its feature names)
    X = check_data(X)
    covariance = check_covariance_type(covariance, allowed=EM_COVARIANCE_TYPES)
    if mcmc and covariance not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance={covariance!r} is one of mclust's models that only EM fits; the "
            f"MCMC samplers cover {list(COVARIANCE_TYPES)}. Pass mcmc=False for the BIC/ICL "
            "table of EM fits, or one of those covariance types."
        )
    ks = _check_ks(ks, X.shape[0])
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {list(_RULES)}; got {rule!r}.")
    if "model" in sample_kwargs:
        raise TypeError(
            "select_k builds one PyMC model per K; remove the model= argument (to sample a "
            "model of your own, use bayesmix.sample(model))."
        )
    sample_kwargs = {"progressbar": progress, **sample_kwargs}
    if lrt and (sample_weight is not None or callable(prior)):
        raise ValueError(
            "select_k(lrt=True) supports neither sample_weight nor a callable prior (the "
            "bootstrap simulates unweighted data from one model); drop lrt or those options."
        )
    if lrt:
        check_n_boot(lrt_boot, name="lrt_boot")
    if mcmc:
        _check_draws(draws, chains)
    if sample_weight is not None:
        sample_kwargs["sample_weight"] = sample_weight
    mcmc_settings = dict(draws=draws, tune=tune, chains=chains, **sample_kwargs) if mcmc else None
    rng = check_random_state(random_seed)
    # the seeds in the serial order (EM, then MCMC, per K): identical on a client
    seeds = [(int(rng.integers(2**31)), int(rng.integers(2**31)) if mcmc else None) for _ in ks]
    tasks = [
        (data, X, K, covariance, prior(K) if callable(prior) else prior, n_init, *sd)
        for K, sd in zip(ks, seeds, strict=True)
    ]
    t_grid = time.perf_counter()
    if client is not None:
        from bayesmix.em._dask import run_tasks

        names = [f"select_k K={K} ({covariance})" for K in ks]
        tasks = [(*t, mcmc_settings, sample_weight) for t in tasks]
        done = run_tasks(client, _k_fit, tasks, names, _say if progress else None)
    else:
        done = []
        for i, t in enumerate(tasks):
            t0 = time.perf_counter()
            done.append(_k_fit(*t, mcmc_settings, sample_weight))
            if progress:
                _say(
                    f"select_k [{i + 1}/{len(ks)}] K={t[2]} ({covariance}): "
                    f"{_k_summary(done[-1][1])} ({time.perf_counter() - t0:.1f} s)"
                )
    fits = _Fits(zip(ks, (fit for fit, _ in done), strict=True))
    df = pd.DataFrame([row for _, row in done])
    recommended, rules = _recommend(df, fits, mcmc, rule)
    if lrt:
        add_lrt(df, data, covariance, prior, lrt_boot, rng, progress, recommended, rules)
    if mfm:
        mfm_settings = dict(draws=draws, tune=tune, chains=chains, progress=progress)
        _add_mfm(df, data, covariance, prior, mfm, rng, mfm_settings, recommended, rules)
    if mcmc:
        _add_compare(df, fits, ks)
    df["recommended_by"] = [",".join(c for c, k in recommended.items() if k == K) for K in df["K"]]
    df.attrs["recommended"] = recommended
    df.attrs["rules"] = rules
    df.attrs["fits"] = fits
    if progress:
        chosen = ", ".join(f"{c.upper()}: K={k}" for c, k in recommended.items())
        _say(f"select_k: recommended {chosen} ({time.perf_counter() - t_grid:.1f} s)")
    return df


def _add_compare(df, fits, ks):
    """compare's rank, elpd_diff, dse and stacking weight as columns; its table in attrs."""
    from bayesmix.posterior._modelcompare import compare_columns, compare_models, with_criteria

    cmp = compare_models({K: fits[K].loo for K in ks})
    compare_columns(df, cmp, lambda row: int(row["K"]))
    df.attrs["compare"] = with_criteria(cmp, df, lambda row: int(row["K"]))


def _add_mfm(df, data, covariance, prior, mfm, rng, settings, recommended, rules):
    """One MFM fit: its P(K = k) as columns of ``df``, its mode as a recommendation."""
    from bayesmix.core._priors import GMMPrior
    from bayesmix.mcmc._builders import build_mfm
    from bayesmix.mcmc._sample import sample
    from bayesmix.posterior._nclusters import n_clusters

    if not isinstance(mfm, bool | dict):
        raise TypeError(
            "mfm must be True/False or a dict of bayesmix.build_mfm keywords (k_prior, "
            f"max_components, dynamic, prior); got {type(mfm).__name__}."
        )
    opts = dict(mfm) if isinstance(mfm, dict) else {}
    if isinstance(prior, GMMPrior):
        opts.setdefault("prior", prior)
    t0 = time.perf_counter()
    idata = sample(
        build_mfm(data, covariance=covariance, **opts),
        sampler="gibbs",
        draws=settings["draws"],
        tune=settings["tune"],
        chains=settings["chains"],
        random_seed=int(rng.integers(2**31 - 1)),
        progressbar=settings["progress"],
    )
    table = n_clusters(idata)
    k = table[table["variable"] == "n_components"].set_index("k")
    df["p_mfm"] = df["K"].map(k["probability"]).fillna(0.0).astype(float)
    df["p_mfm_mcse"] = df["K"].map(k["mcse"]).fillna(0.0).astype(float)
    recommended["mfm"] = int(table.attrs["summary"]["n_components"]["mode"])
    rules["mfm"] = "posterior mode of K under a mixture of finite mixtures (bm.build_mfm)"
    df.attrs["mfm"] = idata
    df.attrs["mfm_n_clusters"] = table
    if settings["progress"]:
        p = table.attrs["summary"]["n_components"]
        _say(
            f"select_k: MFM posterior mode K={p['mode']} (P = {p['mode_probability']:.2f}, "
            f"E[K] = {p['mean']:.2f}) ({time.perf_counter() - t0:.1f} s)"
        )


def _k_fit(
    data, X, K, covariance, prior, n_init, em_seed, mcmc_seed, mcmc_settings, sample_weight=None
):
    """One K of the grid: the EM fit and its row, then MCMC from it (a pure task)."""
    fit, row = _em_row(data, X, K, covariance, prior, n_init, em_seed, sample_weight)
    if mcmc_settings is not None:
        row.update(_mcmc_row(data, K, covariance, prior, fit, mcmc_seed, mcmc_settings))
    return fit, row


def _k_summary(row):
    msg = f"BIC {row['bic']:.1f}, ICL {row['icl']:.1f}"
    if "elpd_loo" in row:
        msg += (
            f"; ELPD-LOO {row['elpd_loo']:.1f} ± {row['elpd_loo_se']:.1f}, "
            f"max R-hat {row['max_rhat']:.3f}"
        )
    return msg


def _say(msg):
    print(msg, file=sys.stderr, flush=True)


def _check_draws(draws, chains):
    """Enough draws per K for PSIS-LOO, checked before the first fit."""
    draws, chains = check_int(draws, "draws", minimum=1), check_int(chains, "chains", minimum=1)
    if draws * chains < 25:
        raise ValueError(
            f"select_k: draws={draws} x chains={chains} = {draws * chains} posterior draws "
            "per K, but ELPD-LOO (PSIS, which compares the K) needs at least 25; pass "
            f"draws={-(-25 // chains)} or more (or more chains), or mcmc=False for the EM-only "
            "table (BIC, ICL)."
        )


def _check_ks(ks, n_obs):
    if isinstance(ks, int | np.integer):
        ks = [ks]
    try:
        ks = [check_n_components(k, n_obs, name="ks") for k in ks]
    except TypeError as exc:
        raise TypeError(f"ks must be an iterable of integers such as range(1, 7); {exc}") from exc
    if not ks:
        raise ValueError("ks is empty; give at least one number of components, e.g. range(1, 7).")
    if len(set(ks)) != len(ks):
        raise ValueError(f"ks has repeated values {ks}; give each K once.")
    return ks


def _em_row(data, X, K, covariance, prior, n_init, seed, sample_weight=None):
    """EM fit for one K and its row of the table (BIC, ICL ...)."""
    em = fit_em(
        data,
        K,
        covariance=covariance,
        prior=prior,
        n_init=n_init,
        random_seed=seed,
        sample_weight=sample_weight,
    )
    row = {
        "K": K,
        "covariance": covariance,
        "estimate": "ML" if prior is None else "MAP",
        "log_likelihood": float(em.log_likelihood),
        "log_posterior": np.nan if em.log_posterior is None else float(em.log_posterior),
        "n_params": int(em.n_parameters),
        "bic": float(em.bic(X, sample_weight=sample_weight)),
        "icl": float(em.icl(X, sample_weight=sample_weight)),
        "converged": bool(em.converged),
        "collapsed": len(getattr(em, "collapsed", ()) or ()),
    }
    return SelectKFit(em=em), row


def _mcmc_row(data, K, covariance, prior, fit, seed, settings):
    """MCMC from the EM fit, relabelled against it; fills ``fit`` and returns the columns."""
    t1 = time.perf_counter()
    idata = _run_mcmc(
        data,
        K,
        covariance=covariance,
        prior=prior,
        em=fit.em,
        random_seed=seed,
        **settings,
    )
    idata, switched = _relabel_to(idata, fit.em) if K > 1 else (idata, False)
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
    return {
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


def _relabel_to(idata, em):
    """Relabel against the EM fit; label switching is recorded, other warnings re-raised."""
    switched = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LabelSwitchingWarning)
        idata = relabel(idata, reference=em)
    for w in caught:
        if issubclass(w.category, LabelSwitchingWarning):
            switched = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return idata, switched


def _recommend(df, fits, mcmc, rule):
    """Recommended K per criterion and the rules in words (adds the ELPD diff columns)."""
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
        "icl": f"lowest ICL (BIC + 2 x hard-classification cost){skip}",
    }
    if not mcmc:
        return recommended, rules
    ks = [int(k) for k in df["K"]]
    for crit in ("loo", "waic"):
        col = f"elpd_{crit}"
        choice = choose_elpd(
            dict(zip(ks, df[col], strict=True)),
            dict(zip(ks, df["n_params"], strict=True)),
            elpd_i={k: getattr(fits[k], crit).elpd_i for k in ks},
            rule=rule,
        )
        df[f"{col}_diff"] = [choice.diff[k] for k in ks]
        df[f"{col}_diff_se"] = [choice.diff_se[k] for k in ks]
        recommended[crit] = int(choice.chosen)
        rules[crit] = (
            f"smallest K with ELPD-{crit.upper()} within one SE (of the pointwise "
            f"difference) or {ELPD_NEGLIGIBLE_DIFF:g} nats of the best"
            if rule == "one-se"
            else f"highest ELPD-{crit.upper()}"
        )
    bad = df[df["max_rhat"] > 1.01]
    if len(bad):
        warnings.warn(
            f"select_k: K={bad['K'].tolist()} have max R-hat > 1.01 after relabelling; their "
            "ELPD may be unreliable. Increase draws/tune or chains, or drop those K.",
            BayesmixWarning,
            stacklevel=3,
        )
    return recommended, rules
