"""Variational inference on chunked data: :func:`bayesmix.fit_vi` on a ``dask.array.Array``.

The same passes as EM on Dask (:mod:`bayesmix.em._dask`, which imports Dask only on Dask
input): one moments pass (centre, covariance for the default prior, the NaN/inf and
weight checks), the start (k-means|| and Lloyd for ``init="kmeans"``, k-means|| seeds
for the other names, or given responsibilities / means) and its statistics, then one
pass per CAVI update: every chunk runs EM's in-memory E-step with the variational log
weights and covariances (:func:`bayesmix.em._vi.cavi_loop`) and returns
``(sum log Z, nk, sx, sxx)``, summed by a tree reduction; the updates of q(theta) and the
ELBO run on the client. The result's ``labels`` are a lazy Dask array.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from bayesmix.core import _dask as cd
from bayesmix.core._priors import GMMPrior
from bayesmix.core._validation import (
    check_covariance_type,
    check_int,
    check_n_components,
    check_positive,
    check_random_state,
)
from bayesmix.em import _vi_loop as vl
from bayesmix.em import _vi_math as vm
from bayesmix.em._checks import _parse_init
from bayesmix.em._dask import _initial_stats
from bayesmix.em._loop import _numba_available, _stats_from_resp
from bayesmix.em._starts import nearest, one_hot

__all__ = ["fit_vi_dask"]

#: fit_vi keywords the Dask path takes (the others must keep their defaults)
_KEYWORDS = frozenset(
    {
        "covariance",
        "prior",
        "truncation",
        "dp_concentration",
        "init",
        "n_init",
        "max_iter",
        "tol",
        "random_seed",
        "engine",
        "sample_weight",
        "reg_covar",
        "progress",
        "warm_start",
    }
)


def _default_prior(mom, K, D):
    """``GMMPrior.from_data`` from the moments pass (ddof 1 covariance, guarded)."""
    cov = mom.cov * (mom.wsum / max(mom.wsum - 1.0, 1.0)) if mom.n > 1 else np.eye(D)
    var = np.diag(cov).copy()
    floor = 1e-6 * max(float(var.max()), 1.0)
    cov = cov + np.eye(D) * np.where(var <= floor, floor, 0.0)
    if np.any(np.linalg.eigvalsh(cov) <= 0):
        cov = cov + np.eye(D) * floor
    return GMMPrior(mean=mom.mean, scale=cov / K ** (2.0 / D), dof=D + 2.0)


def fit_vi_dask(X, n_components=None, **kw):
    """:func:`bayesmix.fit_vi` on a Dask array (called by it on Dask input).

    Settings are checked as on the in-memory path; the CAVI loop, the result and its
    warnings are the in-memory ones (:mod:`bayesmix.em._vi`).
    """
    unsupported = sorted(k for k in kw if k not in _KEYWORDS)
    if unsupported:
        raise TypeError(f"fit_vi got unexpected keyword(s) {unsupported}.")
    if kw.get("warm_start") is not None:
        raise NotImplementedError(
            "fit_vi(warm_start=...) on a Dask array is not supported; fit again with more "
            "max_iter, or warm-start an in-memory fit."
        )
    X_in, names = cd.as_dask_array(X)
    N, D = X_in.shape
    covariance = check_covariance_type(kw.get("covariance", "full"), allowed=vl.VI_COVARIANCES)
    K, dp = vl.check_components(n_components, kw.get("truncation"), N)
    w = cd.as_dask_weights(kw.get("sample_weight"), X_in)
    n_init = check_int(kw.get("n_init", 1), "n_init", minimum=1)
    max_iter = check_int(kw.get("max_iter", 1000), "max_iter", minimum=1)
    tol = check_positive(kw.get("tol", 1e-6), "tol", strict=False)
    reg_covar = check_positive(kw.get("reg_covar", 0.0), "reg_covar", strict=False)
    alpha = kw.get("dp_concentration")
    if alpha is not None:
        if not dp:
            raise ValueError(
                "dp_concentration is for the Dirichlet-process mixture (truncation=T); for a "
                "finite mixture set prior.weight_concentration."
            )
        alpha = check_positive(alpha, "dp_concentration")
    init = kw.get("init", "kmeans")
    if isinstance(init, str) and init == "auto":
        raise ValueError("init='auto' is not available in fit_vi; use 'kmeans' or an array.")
    init_parsed, init_name = _parse_init(init, X_in, K, n_init)
    rng = check_random_state(kw.get("random_seed"))
    engine = kw.get("engine", "auto")
    engine = "numpy" if engine == "numpy" or not _numba_available() else "numba"

    mom = cd.moments(X_in, w=w, feature_names=names)
    if w is not None:
        check_n_components(K, mom.n_pos, name="truncation" if dp else "n_components")
    prior = kw.get("prior")
    prior = _default_prior(mom, K, D) if prior is None else prior
    prior = vl.check_vi_prior(prior, D, covariance)
    shift = mom.mean
    pr = vm.VIPrior.from_prior(prior, covariance, shift, alpha)
    etype = vm.estep_type(covariance)
    ctx = cd._Context(X_in, shift, engine, mom.var, (one_hot, nearest, _stats_from_resp), w)
    cfg = SimpleNamespace(n_components=K, covariance=etype)
    if isinstance(init_parsed, tuple) and init_parsed[0] == "means":
        init_parsed = ("means", init_parsed[1] - shift)

    def estep(weights, means, prec):
        args = (shift, engine, etype, weights, means, prec)
        return ctx.reduce(cd._block_estep, args, cd.add_tuples)

    n_eff = float(mom.wsum)
    best = None
    for r in range(n_init):
        stats0, _ = _initial_stats(ctx, cfg, init_parsed, rng)
        run = vl.cavi_loop(
            stats0,
            estep,
            pr,
            covariance,
            dp,
            max_iter,
            tol * n_eff,
            reg_covar,
            kw.get("progress", False),
            r,
        )
        if best is None or run["elbo"] > best["elbo"]:
            best = run
    best["labels"] = None
    res = vl.vi_result(
        best,
        pr,
        prior,
        covariance,
        dp,
        shift,
        N,
        names,
        tol,
        max_iter,
        init_name,
        kw.get("random_seed"),
    )
    return replace(res, labels=cd.lazy_predict(res, X_in, "predict"))
