"""Model comparison through :func:`arviz_stats.compare`: ranks, ELPD differences, stacking.

:func:`compare_models` passes the LOO results of a set of fits (K, or covariance type
and K) to :func:`arviz_stats.compare` with ``method="stacking"`` (Yao, Vehtari,
Simpson & Gelman 2018) and unrounded numbers, and returns its table with the fit's key
beside each row: ``rank`` (0 = highest ELPD-LOO), ``elpd`` (ELPD-LOO), ``se``, ``p``
(p_loo), ``elpd_diff`` (ELPD minus the best's, <= 0), ``dse`` (standard error of that
difference, ``sqrt(N Var_i(elpd_i - elpd_i,best))`` with divisor N), ``weight``
(stacking weights, summing to 1), ``diag_diff`` and ``diag_elpd`` (arviz's warnings:
``N < 100``, ``|elpd_diff| < 4``, high Pareto k).

**Subsampled LOO.** Above :data:`bayesmix.posterior._loo.LOO_EXACT_MAX_N` observations
without the stored pointwise group, :func:`bayesmix.loo` subsamples (the same seed and
subsample size for every fit of the same data, hence the same observations). The
results are passed to ``compare`` as they were computed, so its ``elpd`` is the
selection table's ``elpd_loo``; ``compare`` then estimates ``elpd_diff`` and ``dse``
with the difference estimator on the observations common to the subsamples (column
``subsampling_dse``: the part of ``dse`` due to subsampling). Its stacking weights
would use the pointwise values, which are NaN outside the subsample: the ``weight``
column is then the stacking of the observations that every fit evaluated exactly
(``compare`` on those pointwise values only; a uniform random subsample, so the stacking
objective is estimated without bias up to a constant factor), and ``attrs["weights"]``
says so.

**The choice rule in terms of this table** (:data:`bayesmix.posterior._selection.CHOICE_RULE`,
applied by :func:`bayesmix.posterior._selection.choose_elpd`): the fit of rank 0 is the
best; the chosen fit is the one with the fewest parameters among those whose
``elpd_diff >= -max(dse', 4)``, where ``dse' = dse * sqrt(N / (N - 1))`` (the rule's
standard error has divisor N - 1, compare's N; the same to 0.2 % at N = 272), ties to
the higher ``elpd``. The stacking ``weight`` is shown, not used by the rule: it answers
"which mixture of these predictive distributions predicts best", and can spread weight
over several K when they predict alike.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["COMPARE_COLUMNS", "compare_columns", "compare_models", "model_label", "with_criteria"]

#: compare's columns kept, in this order (``subsampling_dse`` too when present)
COMPARE_COLUMNS = (
    "rank",
    "elpd",
    "se",
    "p",
    "elpd_diff",
    "dse",
    "weight",
    "diag_diff",
    "diag_elpd",
)


def model_label(key):
    """The name of a fit in the comparison: ``"K=2"`` or ``"full K=2"``.

    Examples
    --------
    >>> model_label(3), model_label(("diag", 2))
    ('K=3', 'diag K=2')
    """
    if isinstance(key, tuple):
        return " ".join([str(k) for k in key[:-1]] + [f"K={key[-1]}"])
    return f"K={key}"


def _is_subsampled(result):
    return getattr(result, "loo_subsample_observations", None) is not None


def compare_models(loos, *, method="stacking"):
    """:func:`arviz_stats.compare` over fits keyed by K (or (covariance, K)).

    Parameters
    ----------
    loos : dict
        Key (K, or a tuple ending in K) -> pointwise LOO result (:func:`bayesmix.loo`,
        an :class:`arviz_stats.ELPDData` with ``elpd_i``), all on the same N
        observations. At least one.
    method : {"stacking", "bb-pseudo-bma", "pseudo-bma"}
        Weights of :func:`arviz_stats.compare` (default: stacking).

    Returns
    -------
    pandas.DataFrame
        One row per fit, best first, indexed by :func:`model_label`: ``key`` and the
        columns of :data:`COMPARE_COLUMNS` (module docstring), unrounded, as
        ``arviz_stats.compare(..., round_to="none")`` gives them (``weight`` recomputed
        on the common subsample when LOO was subsampled). ``attrs``: ``method``,
        ``weights`` (how the weights were computed, in words), ``warnings`` (compare's
        warnings, as text).

    Raises
    ------
    ValueError
        For an empty ``loos`` or a result without pointwise values.

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> from arviz_stats import ELPDDataLOO
    >>> def res(e):
    ...     e = xr.DataArray(np.asarray(e), dims="obs")
    ...     return ELPDDataLOO(elpd=float(e.sum()), se=1.0, p=1.0, n_samples=100,
    ...                     n_data_points=e.size, scale="log", warning=False, good_k=0.7,
    ...                     elpd_i=e)
    >>> t = compare_models({1: res([-2.0, -2.1, -1.9]), 2: res([-1.0, -1.2, -1.1])})
    >>> t.index.tolist(), int(t.loc["K=1", "rank"]), round(float(t["weight"].sum()), 6)
    (['K=2', 'K=1'], 1, 1.0)
    """
    import arviz_stats

    if not loos:
        raise ValueError("compare_models needs at least one LOO result; got none.")
    named = {}
    for key, res in loos.items():
        if getattr(res, "elpd_i", None) is None:
            raise ValueError(
                f"the LOO result of {model_label(key)} has no pointwise values (elpd_i); "
                "compute it with bayesmix.loo(idata, pointwise=True)."
            )
        named[model_label(key)] = res
    keys = {model_label(key): key for key in loos}
    caught = []
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        table = arviz_stats.compare(named, method=method, round_to="none")
    caught += [str(w.message) for w in rec]
    how = f"{method} of the pointwise ELPD-LOO of all observations"
    if any(_is_subsampled(r) for r in named.values()) and len(named) > 1:
        table["weight"], how = _subsample_weights(named, method, table.index, caught)
    cols = [c for c in COMPARE_COLUMNS if c in table.columns]
    if "subsampling_dse" in table.columns:
        cols.append("subsampling_dse")
    out = table[cols].copy()
    out.insert(0, "key", [keys[name] for name in out.index])
    out["rank"] = out["rank"].astype(int)
    out.attrs = {"method": method, "weights": how, "warnings": list(dict.fromkeys(caught))}
    return out


def _subsample_weights(named, method, order, caught):
    """Weights of ``compare`` on the observations every (subsampled) fit has exactly."""
    import arviz_stats
    import xarray as xr
    from arviz_stats import ELPDDataLOO

    pointwise = {n: np.asarray(r.elpd_i, dtype=float).ravel() for n, r in named.items()}
    common = np.logical_and.reduce([np.isfinite(v) for v in pointwise.values()])
    m = int(common.sum())
    if m < 2:
        return np.full(len(order), np.nan), "not computed: the subsamples share < 2 observations"
    light = {
        n: ELPDDataLOO(
            elpd=float(v[common].sum()),
            se=float(np.sqrt(m * np.var(v[common]))),
            p=float(named[n].p),
            n_samples=int(named[n].n_samples),
            n_data_points=m,
            scale="log",
            warning=False,
            good_k=named[n].good_k,
            elpd_i=xr.DataArray(v[common], dims="obs"),
        )
        for n, v in pointwise.items()
    }
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sub = arviz_stats.compare(light, method=method, round_to="none")
    caught += [str(w.message) for w in rec]
    how = (
        f"{method} of the pointwise ELPD-LOO of the {m} observations that every fit's "
        "subsampled LOO evaluated exactly"
    )
    return sub.loc[list(order), "weight"].to_numpy(), how


def compare_columns(table, cmp, key_of):
    """Add compare's ``rank``, ``elpd_diff``, ``dse`` and ``weight`` to ``table`` in place
    (NaN for rows not compared); ``key_of(row)`` gives a row's key in ``cmp["key"]``."""
    by_key = {k: row for k, row in zip(cmp["key"], cmp.itertuples(), strict=True)}
    rows = [by_key.get(key_of(r)) for _, r in table.iterrows()]
    for col in ("rank", "elpd_diff", "dse", "weight"):
        table[col] = [np.nan if r is None else float(getattr(r, col)) for r in rows]


def with_criteria(cmp, table, key_of, columns=("n_params", "bic", "icl", "p_mfm")):
    """compare's table with the criteria of ``table`` (BIC, ICL, P(K) ...) beside it."""
    crit = {key_of(r): r for _, r in table.iterrows()}
    out = cmp.copy()
    for col in columns:
        if col in table.columns:
            out[col] = [crit[k][col] if k in crit else np.nan for k in cmp["key"]]
    return out
