"""The report's posterior predictive check of the chosen model.

:func:`ppc_check` draws replicate data sets from the chosen fit's MCMC posterior
(:func:`bayesmix.posterior_predictive`, at most :data:`PPC_DRAWS` evenly spaced draws
in all, fewer when N x D is large so that the replicate stays under
:data:`PPC_MAX_VALUES` values) and computes :func:`bayesmix.ppc_statistics` on them;
:func:`ppc_section` renders the section "Posterior predictive check": the
:func:`bayesmix.plots.plot_ppc` figure, the table of the extreme statistics (p-value
outside [0.025, 0.975]) and one sentence naming them (:func:`failure_sentence`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bayesmix.posterior._loopit import loo_pit_features
from bayesmix.posterior._ppc import posterior_predictive, ppc_statistics

__all__ = ["PPC_DRAWS", "PPC_MAX_VALUES", "PPCCheck", "failure_sentence", "ppc_check"]

#: posterior draws (all chains together) replicated for the report's check
PPC_DRAWS = 200
#: at least this many draws, whatever N
PPC_MIN_DRAWS = 20
#: the replicate's size bound, in values (draws x N x D; 2e7 float64 = 160 MB)
PPC_MAX_VALUES = 20_000_000

#: statistic -> words of the report's sentence
_WORDS = {
    "mean": "the mean",
    "sd": "the standard deviation",
    "min": "the minimum",
    "max": "the maximum",
    "q05": "the 5 % quantile",
    "q95": "the 95 % quantile",
    "corr": "the correlation",
    "n_modes": "the number of modes",
    "deviance": "the deviance (how likely the data are under each draw)",
}


@dataclass
class PPCCheck:
    """What :func:`ppc_check` computed: the statistics table and how."""

    table: object
    #: the posterior with its ``posterior_predictive`` group (the replicates)
    idata: object
    n_draws: int
    seconds: float
    #: LOO-PIT values per feature (xarray.Dataset) and their KS table, or None
    loo_pit: object = None
    loo_pit_table: object = None


def ppc_draws(n_obs, n_features):
    """Draws (all chains) for the check: :data:`PPC_DRAWS`, fewer above
    :data:`PPC_MAX_VALUES` replicate values, at least :data:`PPC_MIN_DRAWS`.

    Examples
    --------
    >>> ppc_draws(272, 2), ppc_draws(100_000, 5)
    (200, 40)
    """
    cap = PPC_MAX_VALUES // max(1, n_obs * n_features)
    return int(max(PPC_MIN_DRAWS, min(PPC_DRAWS, cap)))


def ppc_check(idata, seed, *, n_draws=None):
    """Replicates of ``idata`` and their :func:`bayesmix.ppc_statistics` table.

    Parameters
    ----------
    idata : xarray.DataTree
        The chosen fit's posterior (``observed_data/X``).
    seed : int
        Seed of the replicates.
    n_draws : int, optional
        Draws in all (default :func:`ppc_draws`), split evenly over the chains.

    Returns
    -------
    PPCCheck
    """
    t0 = time.perf_counter()
    N, D = idata["observed_data"]["X"].shape
    total = ppc_draws(N, D) if n_draws is None else int(n_draws)
    chains = idata["posterior"].sizes["chain"]
    per_chain = max(1, -(-total // chains))
    pp = posterior_predictive(idata, n_draws=per_chain, random_seed=seed)
    table = ppc_statistics(pp)
    kept = pp["posterior_predictive"].sizes
    n_kept = kept["chain"] * kept["draw"]
    pit = pit_table = None
    if n_kept >= 25:  # PSIS needs 25 draws
        pit, pit_table = loo_pit_features(pp)
    return PPCCheck(table, pp, n_kept, time.perf_counter() - t0, pit, pit_table)


def ppc_for_report(idata, seed, notes):
    """:func:`ppc_check`, or None with a note when it cannot run (e.g. a replicate
    above :data:`bayesmix.posterior._ppc.MAX_PPC_VALUES` even at
    :data:`PPC_MIN_DRAWS` draws, or a posterior whose log-likelihood PSIS rejects)."""
    try:
        return ppc_check(idata, seed)
    except (ValueError, MemoryError) as exc:
        notes.append(f"posterior predictive check skipped: {exc}")
        return None


def _describe(row):
    what = _WORDS.get(row.statistic, row.statistic)
    of = "" if row.statistic == "deviance" else f" of {row.feature}"
    return f"{what}{of} (p = {row.p_value:.2f})"


def failure_sentence(table):
    """One sentence naming the extreme statistics, or ``""`` when there is none.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"statistic": ["n_modes", "max"], "feature": ["waiting", "x"],
    ...                   "p_value": [0.0, 0.5], "extreme": [True, False]})
    >>> failure_sentence(t)
    'The chosen model does not reproduce: the number of modes of waiting (p = 0.00).'
    """
    bad = table[table["extreme"]]
    if bad.empty:
        return ""
    return (
        "The chosen model does not reproduce: "
        + "; ".join(_describe(r) for r in bad.itertuples())
        + "."
    )


def ppc_section(doc, result, out_dir, save):
    """The section "Posterior predictive check" (``save(doc, fig, out_dir, name)`` writes
    a figure and returns its relative path)."""
    from bayesmix.workflow._plots_ppc import plot_ppc

    check = getattr(result, "ppc", None)
    if check is None:
        return
    table = check.table
    doc.h(2, "Posterior predictive check")
    n_stats = len(table)
    doc.p(
        f"Replicate data sets from {check.n_draws} posterior draws of the chosen fit "
        "(evenly spaced per chain; `bm.posterior_predictive`), each of the data's size; "
        f"{n_stats} test statistics per replicate against the data's "
        "(`bm.ppc_statistics`: per-feature mean, sd, min, max, 5 % and 95 % quantiles, "
        "pairwise correlations, the number of modes of each marginal, the deviance). "
        "The p-value is P(T(replicate) > T(data)) (mid-p); values below 0.025 or above "
        "0.975 are extreme: the model does not reproduce that feature of the data. "
        f"({check.seconds:.2f} s.)"
    )
    sentence = failure_sentence(table)
    if sentence:
        doc.p(f"**{sentence}**")
        show = table[table["extreme"]].drop(columns="extreme")
        doc.table(show.reset_index(drop=True))
    else:
        doc.p("No statistic is extreme: the replicates reproduce every statistic checked.")
    _loo_pit_blocks(doc, check)
    fig = plot_ppc(check.idata, table=table, random_seed=result.spec.seed)
    doc.fig(
        save(doc, fig, out_dir, "ppc.png"),
        "Kernel density of each feature: the data (black), replicates (blue) and their "
        "mean (dashed), with the p-values of sd, min, max and the number of modes",
    )


#: a feature's LOO-PIT is reported as not uniform below this KS p-value
LOO_PIT_ALPHA = 0.01


def loo_pit_sentence(pit_table):
    """One sentence naming the features whose LOO-PIT is not uniform, or ``""``.

    Examples
    --------
    >>> import pandas as pd
    >>> loo_pit_sentence(pd.DataFrame({"feature": ["x0", "x1"], "ks_distance": [0.2, 0.03],
    ...                                "ks_p_value": [1e-9, 0.6], "n": [300, 300]}))
    'LOO-PIT is not uniform for: x0 (KS distance 0.20, p = 1e-09).'
    """
    bad = pit_table[pit_table["ks_p_value"] < LOO_PIT_ALPHA]
    if bad.empty:
        return ""
    return (
        "LOO-PIT is not uniform for: "
        + "; ".join(
            f"{r.feature} (KS distance {r.ks_distance:.2f}, p = {r.ks_p_value:.2g})"
            for r in bad.itertuples()
        )
        + "."
    )


def _loo_pit_blocks(doc, check):
    if check.loo_pit_table is None:
        return
    doc.p(
        "LOO-PIT per feature (`arviz_stats.loo_pit` on the same replicates, importance "
        "weights from each row's joint log-likelihood: the leave-one-out predictive of the "
        "row, read on one feature): uniform on (0, 1) when the model predicts well. "
        "Kolmogorov-Smirnov distance to the uniform and its (approximate) p-value:"
    )
    doc.table(check.loo_pit_table)
    sentence = loo_pit_sentence(check.loo_pit_table)
    if sentence:
        doc.p(f"**{sentence}**")
