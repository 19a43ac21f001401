"""The CAVI loop of :func:`bayesmix.fit_vi` and what the in-memory and Dask paths share:
the checks of the number of components and of the prior, and the result."""

from __future__ import annotations

import sys

import numpy as np

from bayesmix.core._priors import check_prior
from bayesmix.core._validation import ConvergenceWarning, check_int, check_n_components, warn
from bayesmix.em import _vi_math as vm
from bayesmix.em._checks import _seed_record
from bayesmix.em._vi_result import VIResult

__all__ = ["VI_COVARIANCES", "cavi_loop", "check_components", "check_vi_prior", "vi_result"]

#: the covariance types with a variational family (mclust's other models have none yet)
VI_COVARIANCES = ("full", "tied", "diag", "spherical")


# =========================================================================== checks
def check_components(n_components, truncation, N):
    if truncation is None:
        if n_components is None:
            raise ValueError(
                "fit_vi needs n_components=K for a finite mixture or truncation=T for a "
                "Dirichlet-process mixture; got neither."
            )
        return check_n_components(n_components, N), False
    T = check_n_components(truncation, N, name="truncation")
    if n_components is not None and check_int(n_components, "n_components", minimum=1) != T:
        raise ValueError(
            f"n_components={n_components} and truncation={truncation} disagree: the DP "
            "mixture has as many components as its truncation; give truncation only."
        )
    return T, True


def check_vi_prior(prior, D, covariance):
    check_prior(prior, D, covariance)
    if prior.covariance_prior != "conjugate":
        raise ValueError(
            f"fit_vi needs prior.covariance_prior='conjugate'; got {prior.covariance_prior!r}. "
            "Use prior.with_(covariance_prior='conjugate') (the LKJ prior has no conjugate "
            "variational update)."
        )
    return prior


def cavi_loop(
    stats,
    estep,
    pr,
    covariance,
    dp,
    max_iter,
    tol_total,
    reg_covar,
    progress,
    run_id,
    wq=None,
    prev_elbo=None,
):
    """CAVI from sufficient statistics ``(nk, sx, sxx)``: the q(theta) update, then
    q(z) by ``estep(weights, means, prec_chol) -> (sum log Z, nk, sx, sxx)``; the ELBO
    after every q(z). Shared by the in-memory and the Dask paths. A continued run
    passes its q(pi) ``wq`` and last ELBO ``prev_elbo`` (the tolerance test of the
    first update)."""
    nk, sx, sxx = stats
    K = sx.shape[0]
    wq = vm.initial_weights(pr, dp) if wq is None else wq
    history = []
    converged = False
    for it in range(1, max_iter + 1):
        q = vm.update_components(nk, sx, sxx, pr, covariance, reg_covar)
        wq = vm.update_weights(nk, pr, wq)
        prec, c = vm.estep_gaussian(q, covariance)
        logw = vm.e_log_weights(wq, K) + c
        ll, nk, sx, sxx = estep(np.exp(logw), q.m, prec)
        elbo = ll - vm.kl_components(q, pr, covariance) - vm.kl_weights(wq, pr, K)
        history.append(float(elbo))
        if progress and it % 10 == 0:
            print(f"fit_vi run {run_id}: update {it}, ELBO {elbo:.6f}", file=sys.stderr)
        last = history[-2] if it > 1 else prev_elbo
        if last is not None and abs(history[-1] - last) <= tol_total:
            converged = True
            break
    return dict(
        q=q,
        w=wq,
        elbo=history[-1],
        history=tuple(history),
        n_iter=it,
        converged=converged,
        stats=(nk, sx, sxx),
    )


def vi_result(
    run, pr, prior, covariance, dp, shift, N, feature_names, tol, max_iter, init, random_seed
):
    q, wq = run["q"], run["w"]
    K = q.m.shape[0]
    if not run["converged"]:
        warn(
            f"fit_vi stopped at max_iter={max_iter} before the ELBO changed by less than "
            f"tol={tol} per observation; increase max_iter or tol.",
            ConvergenceWarning,
        )
    if not dp:
        dpc = None
        conc = wq.dirichlet
    else:
        dpc = (
            ("fixed", wq.alpha)
            if wq.alpha is not None
            else ("gamma", wq.alpha_shape, wq.alpha_rate)
        )
        conc = wq.sticks
    return VIResult(
        weights=vm.mean_weights(wq, K),
        means=q.m + shift,
        covariances=vm.mean_covariances(q, covariance),
        precisions=vm.mean_precisions(q, covariance),
        mean_precision=q.beta.copy(),
        degrees_of_freedom=q.nu.copy(),
        scale=(q.psi[0] if covariance == "tied" else q.psi).copy(),
        weight_concentration=conc,
        dp_concentration=dpc,
        elbo=run["elbo"],
        elbo_history=run["history"],
        n_iter=run["n_iter"],
        converged=run["converged"],
        covariance=covariance,
        truncation=K if dp else None,
        prior=prior,
        labels=run["labels"],
        n_obs=N,
        feature_names=feature_names,
        tol=tol,
        max_iter=max_iter,
        init=init,
        random_seed=_seed_record(random_seed),
        _q=q,
        _w=wq,
        _shift=shift,
        _stats=run.get("stats"),
    )
