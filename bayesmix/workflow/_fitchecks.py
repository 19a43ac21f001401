"""The report's checks of a sampled fit: the diagnostics summary of a posterior, what
a fit misses of the thresholds (max R-hat < 1.01, bulk ESS >= 100 per chain, no
divergences; the MFM's ESS of P(K = k)), and the seed of a repeated run."""

from __future__ import annotations

import warnings

import numpy as np

from bayesmix.core._gaussian import responsibilities
from bayesmix.mcmc._relabel import diagnostics
from bayesmix.mcmc._trace import get_observed, get_params

__all__ = [
    "ESS_PER_CHAIN",
    "RHAT_MAX",
    "diag_summary",
    "failed_checks",
    "mfm_failed_checks",
    "occupied",
    "retry_seed",
]

#: the report's thresholds (as :func:`bayesmix.diagnostics` and ``bm.sample`` warn)
RHAT_MAX = 1.01
ESS_PER_CHAIN = 100


def failed_checks(diag, chains):
    """What a fit's diagnostics miss ('max R-hat 1.013 >= 1.01, ...'), '' when they pass
    (or cannot be computed: one chain)."""
    out = []
    rhat, ess = diag.get("max_rhat", np.nan), diag.get("min_ess_bulk", np.nan)
    if np.isfinite(rhat) and rhat >= RHAT_MAX:
        out.append(f"max R-hat {rhat:.3f} >= {RHAT_MAX}")
    if chains > 1 and np.isfinite(ess) and ess < ESS_PER_CHAIN * chains:
        out.append(f"min bulk ESS {ess:.0f} < {ESS_PER_CHAIN * chains}")
    if diag.get("divergences"):
        out.append(f"{diag['divergences']} divergences")
    return ", ".join(out)


def mfm_failed_checks(table, chains):
    """The MFM's check: the ESS of every P(K = k) and P(K+ = k) of at least 0.05
    (the probabilities the report reads) reaches 100 per chain; '' when it does."""
    rows = table[(table["probability"] >= 0.05) & (table["probability"] <= 0.95)]
    ess = rows["ess"].to_numpy(dtype=float)
    ess = ess[np.isfinite(ess)]
    if chains < 2 or not ess.size or ess.min() >= ESS_PER_CHAIN * chains:
        return ""
    return f"min ESS of P(K = k) {ess.min():.0f} < {ESS_PER_CHAIN * chains}"


def retry_seed(seed):
    """The seed of a repeated run: derived from the first run's, so reruns agree."""
    return int(np.random.default_rng([int(seed), 1]).integers(2**31 - 1))


def diag_summary(idata, relabelled):
    """Divergences, and (``relabelled``) max R-hat and min bulk ESS of weights and means."""
    out = {}
    ss = idata.children.get("sample_stats") if hasattr(idata, "children") else None
    if ss is not None and "diverging" in ss.data_vars:
        out["divergences"] = int(ss["diverging"].values.sum())
    if relabelled:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                d = diagnostics(idata, var_names=("weights", "means"))
            out["max_rhat"] = _nan_extreme(np.nanmax, d["rhat"])  # NaN with one chain
            out["min_ess_bulk"] = _nan_extreme(np.nanmin, d["ess_bulk"])
        except Exception as exc:  # diagnostics are informative, never fatal
            out["diagnostics_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _nan_extreme(fn, values):
    """``fn`` (nanmax / nanmin) of ``values``; NaN, without a RuntimeWarning, when every
    value is NaN or there are none."""
    values = np.asarray(values, dtype=float)
    return float(fn(values)) if (~np.isnan(values)).any() else float("nan")


def occupied(idata, max_draws=400):
    """Posterior distribution of the number of occupied components: the sampled
    ``n_occupied`` when the posterior has it (bm.n_clusters), else hard allocations."""
    if "n_occupied" in idata["posterior"].data_vars:
        from bayesmix.posterior._nclusters import n_clusters

        table = n_clusters(idata, var_names="n_occupied")
        pairs = zip(table["k"], table["probability"], strict=True)
        return {int(k): float(p) for k, p in pairs if p > 0}
    w, m, c = get_params(idata)
    C, S = w.shape[:2]
    X = get_observed(idata)
    flat = np.unique(np.linspace(0, C * S - 1, min(C * S, max_draws)).round().astype(int))
    w, m, c = (a.reshape(C * S, *a.shape[2:])[flat] for a in (w, m, c))
    lab = responsibilities(X, w, m, c).argmax(-1)
    counts = np.array([np.unique(r).size for r in lab])
    values, freq = np.unique(counts, return_counts=True)
    return {int(v): float(f / counts.size) for v, f in zip(values, freq, strict=True)}
