"""The one place that picks the sampler of a model: :func:`resolve_sampler`.

``bm.sample(model, sampler=None)`` (and everything that samples: the pipeline,
``select_k``, the scikit-learn estimator) asks it: Gibbs for Dirichlet-process and MFM
models (NUTS cannot sample their discrete parts), and for a finite mixture the rule
measured in ``benchmarks/RESULTS.md`` (``FINITE_DEFAULT``, ``FINITE_GIBBS_MIN_PARAMS``);
NUTS wherever a prior is not conditionally conjugate.
"""

from __future__ import annotations

from bayesmix.mcmc._common import NUTS_STEP_KWARGS

__all__ = ["SAMPLERS", "resolve_sampler"]

SAMPLERS = ("gibbs", "nuts")

#: default sampler of a finite mixture: ``"auto"`` picks Gibbs above
#: ``FINITE_GIBBS_MIN_PARAMS`` free parameters, NUTS below. Measured (benchmarks/
#: RESULTS.md, "gibbs-finite"; n = 3000, ESS per second of wall time, Gibbs / NUTS):
#: D=2, K=3 (17 parameters) 0.9x, 2.1x and 1.1x in three runs (a tie within the noise
#: of a shared machine, so NUTS stays); D=5, K=5 (104) 2.7x and 3.4x; D=10, K=8 (527) 7.4x.
FINITE_DEFAULT = "auto"
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
        component, or NUTS options were given (``nuts_options``); otherwise Gibbs for
        DP and MFM models, and for finite ones Gibbs above
        ``FINITE_GIBBS_MIN_PARAMS`` (60) free parameters, NUTS below
        (``FINITE_DEFAULT``). An MFM is always sampled by Gibbs.
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


def _n_params(covariance, K, D):
    """Free parameters of a finite mixture (weights, means, covariances)."""
    cov = {"full": K * D * (D + 1) // 2, "tied": D * (D + 1) // 2, "diag": K * D}
    return (K - 1) + K * D + cov.get(covariance, K)
