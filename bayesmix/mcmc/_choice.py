"""The one place that picks the sampler of a model: :func:`resolve_sampler`.

``bm.sample(model, sampler=None)`` (and everything that samples: the pipeline,
``select_k``, the scikit-learn estimator) asks it: Gibbs for Dirichlet-process and MFM
models (NUTS cannot sample their discrete parts), and for a finite mixture with the
conjugate prior (``FINITE_DEFAULT``); NUTS wherever the model is not one the Gibbs
sampler can draw: an LKJ covariance prior (not conditionally conjugate), sample
weights, a noise component, or NUTS options passed to ``bm.sample``.
``sampler="nuts"`` forces NUTS on any finite model. A model whose data have missing
(NaN) entries is sampled by Gibbs (which draws them each sweep); NUTS is refused on it
with a ``NotImplementedError`` naming ``sampler="gibbs"``.

The finite-mixture rule is the sampler with the higher min bulk ESS (weights and means,
after ``bm.relabel`` against the EM fit) per second of wall time of a first fit of that
model (NUTS's PyTensor compilation included), measured by ``benchmarks/bench_gibbs.py
--rule`` (benchmarks/RESULTS.md, "gibbs-rule"; 2 chains x 1000 draws after 1000
tuning steps / burn-in sweeps, full covariance, 2 shared cores; Gibbs / NUTS ratio):

    ============  =====  ==  =  ===========  ==============  ==============
    data          n      D   K  Gibbs / NUTS  Gibbs wall (s)  NUTS wall (s)
    ============  =====  ==  =  ===========  ==============  ==============
    Old Faithful  272    2   2  4.5x          0.4             2.7
    Old Faithful  272    2   3  0.9x          0.4             4.2
    Old Faithful  272    2   4  8.3x          0.4             8.2
    Old Faithful  272    2   5  26x           0.5             13.1
    simulated     3000   2   3  1.8x          1.6             5.0
    simulated     3000   2   5  3.3x          2.1             37.2
    simulated     3000   5   3  5.2x          2.3             20.6
    simulated     3000   5   5  41x           3.0             177.2
    simulated     30000  2   3  1.8x          13.6            44.9
    simulated     30000  2   5  0.9x          24.1            337.0
    ============  =====  ==  =  ===========  ==============  ==============

The two ties (0.9x) are overfitted K, where neither sampler mixes over the redundant
components' weights and means (min ESS 20-235); Gibbs reaches that in a tenth of the
time.

Gibbs wins or ties at every size measured, mostly by a wide margin: it compiles nothing per K
(numba kernels cached on disk), a sweep costs O(n K D^2) without gradients, and an empty
component of an overfitted K is drawn from its prior instead of making a funnel that
NUTS must tune into (NUTS's time grows with K much faster than Gibbs's). Earlier
(``FINITE_DEFAULT = "auto"``, measured only at n = 3000 with warm compilation caches)
NUTS was kept up to ``FINITE_GIBBS_MIN_PARAMS`` = 60 free parameters; setting
``FINITE_DEFAULT = "auto"`` restores that rule.
"""

from __future__ import annotations

import numpy as np

from bayesmix.mcmc._common import NUTS_STEP_KWARGS

__all__ = ["SAMPLERS", "resolve_sampler"]

SAMPLERS = ("gibbs", "nuts")

#: default sampler of a finite mixture with the conjugate prior (see the module
#: docstring for the measurements): ``"gibbs"``, ``"nuts"``, or ``"auto"``: Gibbs above
#: ``FINITE_GIBBS_MIN_PARAMS`` free parameters, NUTS below (the rule before 0.2)
FINITE_DEFAULT = "gibbs"
FINITE_GIBBS_MIN_PARAMS = 60

#: NUTS-only keywords that are accepted and ignored by the Gibbs sampler
_NUTS_ONLY = (*NUTS_STEP_KWARGS, "nuts", "compile_kwargs", "compute_convergence_checks")


# ---------------------------------------------------------------------------- dispatch
def resolve_sampler(model, sampler, *, nuts_options=False):
    """Which sampler :func:`bayesmix.sample` runs: ``"gibbs"`` or ``"nuts"``.

    Parameters
    ----------
    model : pymc.Model or MFMModel
        Built by a bayesmix builder.
    sampler : {"gibbs", "nuts"} or None
        ``None``: NUTS when the prior is LKJ, the model has sample weights or a noise
        component, or NUTS options were given (``nuts_options``); otherwise Gibbs (DP,
        MFM and finite models alike: ``FINITE_DEFAULT``). An MFM is always sampled by
        Gibbs.
    nuts_options : bool
        Whether the caller passed options that only NUTS uses.

    Returns
    -------
    str
    """
    from bayesmix.mcmc._builders import get_config

    cfg = get_config(model)
    if sampler is not None and sampler not in SAMPLERS:
        raise ValueError(
            f"sampler must be one of {list(SAMPLERS)} or None; got {sampler!r}. Use "
            "sampler='gibbs' (conjugate priors) or sampler='nuts'."
        )
    lkj = cfg.prior.covariance_prior == "lkj"
    if cfg.model == "mfm":
        if sampler == "nuts":
            raise ValueError(
                "sampler='nuts' cannot sample a mixture of finite mixtures (its number of "
                "components varies); use sampler='gibbs' (the default for build_mfm models)."
            )
        sampler = "gibbs"
    if sampler == "gibbs" and lkj:
        raise ValueError(
            "sampler='gibbs' needs the conjugate prior, but the model's prior has "
            "covariance_prior='lkj'; sample it with sampler='nuts', or build the model with "
            "GMMPrior(..., covariance_prior='conjugate')."
        )
    weighted = getattr(cfg, "sample_weight", None) is not None
    noise = bool(getattr(cfg, "noise_volume", None))
    if sampler == "gibbs" and (weighted or noise):
        what = "sample_weight" if weighted else "a noise component"
        raise ValueError(
            f"sampler='gibbs' does not support models built with {what} (the Gibbs "
            "sampler allocates whole, unweighted observations to Gaussian components); "
            "sample this model with sampler='nuts'."
        )
    _check_gaps(cfg, sampler, lkj or weighted or noise)
    if sampler is None and np.isnan(cfg.X).any():
        sampler = "gibbs"  # the one sampler of data with gaps
    if sampler is None:
        if lkj or nuts_options or weighted or noise:
            sampler = "nuts"
        elif cfg.model == "dpgmm":
            sampler = "gibbs"
        elif FINITE_DEFAULT == "auto":
            big = _n_params(cfg.covariance, cfg.n_components, cfg.X.shape[1])
            sampler = "gibbs" if big > FINITE_GIBBS_MIN_PARAMS else "nuts"
        else:
            sampler = FINITE_DEFAULT
    return sampler


def _check_gaps(cfg, sampler, nuts_only):
    """Data with missing (NaN) entries: only the Gibbs sampler draws them (data
    augmentation, :mod:`bayesmix.mcmc._gibbs_missing`); NUTS is refused, naming it."""
    if not np.isnan(cfg.X).any():
        return
    n = int(np.isnan(cfg.X).sum())
    if sampler == "nuts" or (sampler is None and nuts_only):
        why = (
            "sampler='nuts' was asked for"
            if sampler == "nuts"
            else "the model needs NUTS (an LKJ prior, sample weights or a noise component)"
        )
        raise NotImplementedError(
            f"The model's data have {n} missing (NaN) entries and {why}, but NUTS does "
            "not handle missing values yet. Use sampler='gibbs' (the conjugate Gibbs "
            "sampler draws the missing coordinates each sweep; it needs the conjugate "
            "prior, no sample weights and no noise component), or fit the observed-data "
            "likelihood by EM: bm.fit_em(X, K)."
        )


def _n_params(covariance, K, D):
    """Free parameters of a finite mixture (weights, means, covariances)."""
    cov = {"full": K * D * (D + 1) // 2, "tied": D * (D + 1) // 2, "diag": K * D}
    return (K - 1) + K * D + cov.get(covariance, K)
