"""What :func:`bayesmix.fit_em` checks and concludes around its runs, shared by the
in-memory and the Dask path: the settings (``_check_arguments``, one order and one
message for both), the data against the prior (constant features, singular
covariances), the noise component's volume, the fit's warnings (collapsed components,
no convergence) and the assembly of the :class:`~bayesmix.EMResult`.
"""

from __future__ import annotations

import numbers

import numpy as np

from bayesmix.core import _covariance as cv
from bayesmix.core import _gaussian as gs
from bayesmix.core import _mclust_models as mm
from bayesmix.core._priors import check_prior
from bayesmix.core._validation import (
    EM_COVARIANCE_TYPES,
    ConvergenceWarning,
    DegenerateDataWarning,
    check_covariance_type,
    check_int,
    check_positive,
    check_random_state,
    degenerate_report,
    warn,
)
from bayesmix.em._loop import _ENGINES, _collapse_check, _init_array
from bayesmix.em._result import EMResult
from bayesmix.em._starts import (
    STRATEGIES,
)


def _noise_volume(noise, X):
    """The noise component's hypervolume (None without one)."""
    if noise is False or noise is None:
        return None
    if noise is True:
        ranges = np.nanmax(X, axis=0) - np.nanmin(X, axis=0) if np.isnan(X).any() else np.ptp(X, 0)
        volume = float(np.prod(ranges))
        if not (np.isfinite(volume) and volume > 0):
            raise ValueError(
                f"noise=True needs a positive bounding-box volume, but the data's feature ranges "
                f"{ranges.tolist()} give {volume:g} (a constant feature, or fewer than "
                "two distinct points). Drop constant features or pass noise=<positive volume>."
            )
        return volume
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(
            f"noise must be False, True or a positive finite volume; got {type(noise).__name__} "
            f"{noise!r}."
        )
    volume = float(noise)
    if not (np.isfinite(volume) and volume > 0):
        raise ValueError(
            f"noise as a volume must be positive and finite; got {volume!r}. Pass the "
            "hypervolume of the region the noise is uniform over, or noise=True for the "
            "data's bounding box."
        )
    return volume


def _singular_under_prior(X, feature_names, K, covariance):
    """The error when a MAP fit still meets a singular covariance: say why, not "use a
    prior" (one is in use)."""
    rep = degenerate_report(X, feature_names)
    found = [f"columns {g} are collinear ({rel})" for g, rel in rep["collinear"]]
    if rep["constant"]:
        found.append(f"feature(s) {rep['constant']} are constant")
    if rep["n_distinct"] <= X.shape[1]:
        found.append(f"only {rep['n_distinct']} distinct point(s) for {X.shape[1]} features")
    why = "; ".join(found) or "a component sits on too few distinct points"
    return gs.SingularCovarianceError(
        f"the MAP fit (K={K}, covariance={covariance!r}) met a covariance that is not "
        f"positive definite although a prior is in use: {why}. The prior's scale is too "
        "small to regularise this; drop one column of each collinear group (or the constant "
        "ones), use covariance='diag' or fewer components, or give the prior a larger scale "
        "(bayesmix.GMMPrior(..., scale=...))."
    )


def _check_arguments(
    X, K, *, covariance, prior, n_init, init, max_iter, tol, reg_covar, random_seed, engine, **_
):
    """fit_em's checks of its settings, after those of ``X`` and ``K`` (Dask path too).

    Other keywords of :func:`fit_em` are ignored. Returns ``(covariance, n_init,
    max_iter, tol, reg_covar, parsed init, init name, rng)``: ``reg_covar`` defaults to
    1e-6 for maximum likelihood and 0 for MAP.
    """
    covariance = check_covariance_type(covariance, allowed=EM_COVARIANCE_TYPES)
    if prior is not None and covariance in mm.NEW_MODELS and covariance not in mm.MAP_MODELS:
        raise NotImplementedError(
            f"covariance={covariance!r} with a prior (MAP) is not implemented yet; the MAP "
            f"fit covers {list(cv.M_STEP)} (mclust's VII, VVI, VVV, EEE) and "
            f"{list(mm.MAP_MODELS)}. Use prior=None for the maximum-likelihood "
            f"{covariance} fit."
        )
    n_init = check_int(n_init, "n_init", minimum=1)
    max_iter = check_int(max_iter, "max_iter", minimum=0)
    tol = check_positive(tol, "tol", strict=False)
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {list(_ENGINES)}; got {engine!r}.")
    if prior is not None:
        base = _model_settings(covariance)["covariance"]
        check_prior(prior, X.shape[1], base, n_components=K, method="em")
    if reg_covar is None:
        reg_covar = 1e-6 if prior is None else 0.0
    reg_covar = check_positive(reg_covar, "reg_covar", strict=False)
    init_parsed, init_name = _parse_init(init, X, K, n_init)
    rng = check_random_state(random_seed)
    return covariance, n_init, max_iter, tol, reg_covar, init_parsed, init_name, rng


def _model_settings(covariance):
    """The ``_RunSettings`` fields of a checked covariance name: the native (density)
    type and mclust's model name (``"full"`` -> ``("full", "VVV")``, ``"VEV"`` ->
    ``("full", "VEV")``)."""
    if covariance in mm.MODEL_OF_TYPE:
        return {"covariance": covariance, "model_name": mm.MODEL_OF_TYPE[covariance]}
    return {"covariance": mm.BASE_TYPE[covariance], "model_name": covariance}


def _dask_keywords(arguments):
    """fit_em's keyword arguments, passed on to :func:`bayesmix.em._dask.fit_em_dask`."""
    return {k: v for k, v in arguments.items() if k not in ("X", "n_components")}


def _parse_init(init, X, K, n_init):
    """``(parsed init, name recorded in the result)`` for a string or an array init."""
    if isinstance(init, str):
        if init not in STRATEGIES:
            raise ValueError(
                f"init must be one of {list(STRATEGIES)} or an array of responsibilities "
                f"(N, K) or means (K, D); got {init!r}."
            )
        return init, init
    if n_init != 1:
        raise ValueError(
            f"n_init={n_init} but init is an array, so every run would be identical; use "
            "n_init=1 with an array init, or a string init for restarts."
        )
    kind, arr = _init_array(init, X, K)
    return (kind, arr), f"array ({kind})"


def _seed_record(random_seed):
    """The seed as recorded in the result: an int seed, else None."""
    if isinstance(random_seed, numbers.Integral) and not isinstance(random_seed, bool):
        return int(random_seed)
    return None


def _check_constant_features(X, feature_names, prior, reg_covar, variances=None):
    """Warn about constant features (reg_covar or the prior keeps the fit finite)."""
    const = np.flatnonzero((X.var(axis=0) if variances is None else variances) == 0)
    if not const.size:
        return
    names = [feature_names[j] for j in const]
    warn(
        f"feature(s) {names} are constant; they carry no information about the "
        "components and their variance in every component is set by "
        f"{'reg_covar' if prior is None else 'the prior'}. Drop them before fitting.",
        DegenerateDataWarning,
        stacklevel=4,
    )
    if prior is None and reg_covar == 0:
        raise ValueError(
            f"feature(s) {names} are constant and reg_covar=0, so every covariance is "
            "singular. Drop the constant features, or set reg_covar > 0 (default 1e-6)."
        )


def _map_prior(prior, shift, covariance):
    """The conjugate prior's M-step constants in the fitting frame (None for ML)."""
    if prior is None:
        return None
    covariance = _model_settings(covariance)["covariance"]  # the scale of the native type
    return cv.MapPrior(
        prior.mean - shift,
        prior.mean_shrinkage,
        prior.dof,
        prior.weight_concentration,
        prior.covariance_scale(covariance),
    )


def _warn_fit_problems(best, X, cfg, data_cov=None):
    """Warn on no convergence and on collapsed components; return the collapsed indices."""
    N, D = X.shape
    cov_full = cfg.to_full(best.model)
    if not best.converged:
        warn(
            f"EM did not converge: the objective still changed by more than tol={cfg.tol:g} "
            f"per observation after max_iter={cfg.max_iter} iterations. Increase max_iter or "
            "tol, or standardize the data.",
            ConvergenceWarning,
            stacklevel=4,
        )
    if data_cov is None:
        aw = cfg.sample_weight
        data_cov = (
            np.atleast_2d(np.cov(X, rowvar=False, bias=True, aweights=aw)) if N > 1 else np.eye(D)
        )
    found = _collapse_check(cov_full, best.nk, cfg.covariance, data_cov, cfg.reg_covar)
    if found:
        details = "; ".join(f"component {k}: {why}" for k, why in found)
        warn(
            f"{len(found)} component(s) collapsed ({details}). Such a component sits on a few "
            "(or on integer-valued / duplicated) points and inflates the likelihood. Use fewer "
            + (
                "components, a prior (prior=bayesmix.GMMPrior.from_data(X, K), i.e. MAP), a "
                "larger reg_covar, or standardize the data."
                if cfg.prior is None
                else "components, drop duplicated or collinear columns, a prior with a larger "
                "scale (the prior in use does not prevent it), or standardize the data."
            ),
            DegenerateDataWarning,
            stacklevel=4,
        )
    return tuple(int(k) for k, _ in found)


def _em_result(
    best,
    cfg,
    n_obs,
    feature_names,
    *,
    collapsed,
    n_init,
    init,
    random_seed,
    noise_volume=None,
    n_missing=0,
):
    """The :class:`EMResult` of the best run, in the original coordinates."""
    cov_full = cfg.to_full(best.model)
    K = cfg.n_components
    labels = best.labels
    if noise_volume is not None:
        labels = np.where(labels == K, -1, labels)
    return EMResult(
        weights=best.model.weights[:K],
        means=best.model.means + cfg.shift,
        covariances=cov_full,
        precisions_cholesky=cv.precision_cholesky_full(cov_full),
        covariance=cfg.covariance,
        model_name=cfg.model_name,
        prior=cfg.prior,
        log_likelihood=float(best.log_likelihood),
        log_posterior=None if cfg.prior is None else float(best.objective),
        n_iter=int(best.n_iter),
        converged=bool(best.converged),
        history=best.history,
        n_obs=n_obs,
        feature_names=list(feature_names),
        reg_covar=float(cfg.reg_covar),
        random_seed=_seed_record(random_seed),
        collapsed=collapsed,
        labels=labels,
        tol=float(cfg.tol),
        max_iter=int(cfg.max_iter),
        n_init=int(n_init),
        init=init,
        init_strategy=best.strategy,
        noise_weight=None if noise_volume is None else float(best.model.weights[K]),
        noise_volume=noise_volume,
        total_weight=cfg.n_eff,
        n_missing=int(n_missing),
        noise_sides=(
            None
            if cfg.noise_log_sides is None
            else tuple(float(v) for v in np.exp(cfg.noise_log_sides))
        ),
    )
