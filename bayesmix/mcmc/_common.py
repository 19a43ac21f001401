"""Sampler plumbing shared by NUTS (:mod:`bayesmix.mcmc._sample`) and Gibbs
(:mod:`bayesmix.mcmc._gibbs`).

The EM starting point of the chains (:func:`_em_init`, :func:`_check_init`,
:func:`_pad_components`), the convergence diagnostics run after sampling
(:func:`_diagnose`) and :class:`TruncationWarning`. Both samplers import these from
here, so neither imports the other's module (no import cycle); ``bayesmix.mcmc._sample``
re-exports them under their old names.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from bayesmix.core._priors import _em_compatible
from bayesmix.core._validation import ConvergenceWarning
from bayesmix.em._fit import fit_em
from bayesmix.mcmc._relabel import relabel
from bayesmix.mcmc._trace import mixture_params

__all__ = ["TruncationWarning"]


class TruncationWarning(ConvergenceWarning):
    """A Dirichlet-process truncation kept too much mass on its last component."""


#: DP initialisation without a user init: EM MAP fits with K = 1 .. this many components
_DP_INIT_MAX_K = 6

#: keyword arguments of pm.sample that configure the NUTS step: bm.sample passes them to
#: the NUTS step it builds; the Gibbs sampler accepts and ignores them
NUTS_STEP_KWARGS = (
    "target_accept",
    "max_treedepth",
    "early_max_treedepth",
    "step_scale",
    "Emax",
    "gamma",
    "k",
    "t0",
    "adapt_step_size",
)


def _em_init(cfg, rng):
    """Run fit_em on the model's data and prior (MAP of the same posterior).

    Finite model: one fit with the model's K. DP model: MAP fits with the DP model's
    prior for K = 1 .. min(truncation, 6, N // 10); the fit with the lowest BIC among
    those that did not warn (a collapsed component or no convergence means that K is
    too large for a starting point, not a problem with the user's data) starts the
    chains, the remaining sticks start near the prior. Warnings from the discarded
    fits are not shown; if every fit warned, the K = 1 fit is used and its warnings
    (which then concern the data) are re-emitted.
    """

    prior = _em_compatible(cfg.prior)
    sw = getattr(cfg, "sample_weight", None)
    if cfg.model != "dpgmm":
        return fit_em(
            cfg.X,
            cfg.n_components,
            covariance=cfg.covariance,
            prior=prior,
            random_seed=rng,
            sample_weight=sw,
            noise=getattr(cfg, "noise_volume", None) or False,
        )
    k_max = min(cfg.n_components, _DP_INIT_MAX_K, max(1, cfg.X.shape[0] // 10))
    best, best_bic, first = None, np.inf, None
    for k in range(1, k_max + 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = fit_em(
                cfg.X, k, covariance=cfg.covariance, prior=prior, random_seed=rng, sample_weight=sw
            )
        if first is None:
            first = (fit, caught)
        if caught:
            continue
        bic = fit.bic(cfg.X, sample_weight=sw)
        if bic < best_bic:
            best, best_bic = fit, bic
    if best is None:
        fit, caught = first
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        best = fit
    return best


def _check_init(init, K_fit, D):
    return mixture_params(
        init,
        "init",
        n_components=K_fit,
        n_features=D,
        hint="Fit EM with the model's number of components and data (bm.fit_em(X, K)).",
    )


def _pad_components(cfg, w, m, c):
    """DP: order EM components by weight, pad to the truncation with prior-mode components."""
    T = cfg.n_components
    order = np.argsort(-w)
    w, m, c = w[order], m[order], c[order]
    k = w.size
    if k < T:
        prior = cfg.prior
        D = m.shape[1]
        pad_cov = prior.scale / (prior.dof + D + 2.0)
        m = np.concatenate([m, np.repeat(prior.mean[None], T - k, axis=0)])
        c = np.concatenate([c, np.repeat(pad_cov[None], T - k, axis=0)])
        w = np.concatenate([w * (1 - 1e-3), np.full(T - k, 1e-3 / (T - k))])
    return w / w.sum(), m, c


def _varying(ds):
    """Flatten each variable to (chain, draw, param) and drop the constant parameters.

    R-hat and ESS are undefined (0/0) for a quantity that never changes: the weight of
    a K=1 model, the zero off-diagonal entries of diagonal covariances. They are left
    out instead of producing NaN and warnings.
    """

    out = {}
    for name, da in ds.data_vars.items():
        vals = da.transpose("chain", "draw", ...).values
        flat = vals.reshape(vals.shape[0], vals.shape[1], -1)
        keep = np.ptp(flat, axis=(0, 1)) > 0
        if keep.any():
            out[name] = (("chain", "draw", f"{name}_param"), flat[:, :, keep])
    return xr.Dataset(out)


def _warn_divergences(dt):
    """Warn on divergent transitions after tuning."""
    if "sample_stats" not in dt.children or "diverging" not in dt["sample_stats"].data_vars:
        return
    n_div = int(np.asarray(dt["sample_stats"]["diverging"]).sum())
    if n_div:
        warnings.warn(
            f"{n_div} divergent transition(s) after tuning: the posterior has regions the "
            "sampler cannot explore reliably. Increase target_accept (e.g. "
            "bm.sample(..., target_accept=0.95)) and tune, or simplify the model (fewer "
            "components, a diagonal covariance).",
            ConvergenceWarning,
            stacklevel=4,
        )


def _diagnostic_dataset(dt, cfg, init):
    """What R-hat/ESS are computed on, and a note saying so.

    A finite mixture relabelled against ``init``; otherwise (a DP, or relabel failed)
    label-invariant quantities: sorted weights and the total log-likelihood.
    """
    if cfg.model == "gmm":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rel = relabel(dt, reference=init)
            post = rel["posterior"].to_dataset()[["weights", "means", "covariances"]]
            return post, "after relabelling against the EM fit"
        except Exception:  # relabel failed: label-invariant quantities
            pass

    from bayesmix.mcmc._pointwise import total_log_likelihood

    ll = total_log_likelihood(dt)  # sample_stats/loglik, the stored group, or chunked
    post = xr.Dataset(
        {
            "sorted_weights": (
                ("chain", "draw", "rank"),
                -np.sort(-dt["posterior"]["weights"].values, axis=-1),
            ),
            "log_likelihood": ll,
        }
    )
    return post, "on label-invariant quantities (sorted weights, total log-likelihood)"


def _diagnose(dt, cfg, init):
    """Warn on divergences and on R-hat / bulk ESS problems (relabelled first)."""
    _warn_divergences(dt)
    C = dt["posterior"].sizes["chain"]
    if C < 2:
        warnings.warn(
            "Sampling diagnostics: R-hat needs at least two chains and was not computed "
            "(chains=1); run chains >= 2 (the default is 4) to check convergence.",
            ConvergenceWarning,
            stacklevel=3,
        )
        return
    import arviz_stats as azs  # lazy: only multi-chain fits need it (see the imports)

    post, note = _diagnostic_dataset(dt, cfg, init)
    post = _varying(post)
    if not post.data_vars:  # nothing varies (e.g. K=1 with fixed parameters): no diagnostics
        return
    rhat = azs.rhat(post)
    ess = azs.ess(post, method="bulk")
    rhat_vals = np.concatenate([rhat[v].values.ravel() for v in rhat.data_vars])
    ess_vals = np.concatenate([ess[v].values.ravel() for v in ess.data_vars])
    rhat_vals, ess_vals = rhat_vals[np.isfinite(rhat_vals)], ess_vals[np.isfinite(ess_vals)]
    max_rhat = float(rhat_vals.max()) if rhat_vals.size else np.nan
    min_ess = float(ess_vals.min()) if ess_vals.size else np.nan
    msgs = []
    if max_rhat > 1.01:
        msgs.append(f"max R-hat {max_rhat:.3f} > 1.01")
    if min_ess < 100 * C:
        msgs.append(
            f"min bulk ESS {min_ess:.0f} is below the threshold of 100 per chain "
            f"(100 x {C} chains = {100 * C})"
        )
    if msgs:
        warnings.warn(
            f"Sampling diagnostics {note}: {'; '.join(msgs)}. Try more tune and draws, "
            "relabel with bm.relabel(idata, reference=em_fit) before reading per-component "
            "summaries, and check for multimodality (other EM restarts, fewer components).",
            ConvergenceWarning,
            stacklevel=3,
        )
