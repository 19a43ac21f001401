r"""Conditionally conjugate Gibbs samplers (data augmentation) for bayesmix models.

``bm.sample(model, sampler="gibbs")`` runs the samplers of this module on a model
built by :func:`bayesmix.build_gmm`, :func:`bayesmix.build_dpgmm` or
:func:`bayesmix.build_mfm` with the conjugate prior of :mod:`bayesmix.core._priors`; the
result has the DataTree layout of the NUTS sampler (:mod:`bayesmix.mcmc._trace`).

One sweep
---------
1. **Allocations** :math:`z_n \mid \pi, \mu, \Sigma` for every observation, in log
   space, by inverse-CDF sampling with one uniform per observation from numpy's
   Generator, fused with the sufficient statistics of step 3 in one pass over the
   data (numba kernel :func:`bayesmix.mcmc._gibbs_kernels.allocate_stats`: chunks of
   rows, in ``cores // chains`` threads per chain; the draws do not depend on it).

   DP and MFM models up to N = ``COLLAPSED_MAX_N`` (1e5) with the full, diag or
   spherical covariance (and a static
   :math:`\gamma` for the MFM) instead run ``COLLAPSED_SWEEPS`` *collapsed* sweeps per
   draw (fewer when N exceeds ``COLLAPSED_POINTS_PER_DRAW / COLLAPSED_SWEEPS``, at
   least one; Neal 2000, algorithm 3; :func:`bayesmix.mcmc._gibbs_kernels.collapsed_allocate`):
   each observation in turn is re-allocated with the weights and the component
   parameters integrated out, by its prior allocation weight given the others (the
   labelled stick-breaking prior's :math:`E[\pi_k \mid z_{-n}]` for the DP, the
   restaurant process :math:`N_k + \gamma` or :math:`\gamma V_N(t+1)/V_N(t)` for the
   MFM, Miller & Harrison 2018) times its posterior predictive density under the
   cluster's other members. The label swaps, the concentration, the split-merge moves
   (below), the weights and the parameters are then updated once per draw (a
   partially collapsed Gibbs sampler: every step draws from a conditional of the
   joint posterior, or of a margin of it taken in the right order). The chains'
   first allocations are drawn from the starting point's responsibilities. On Old
   Faithful (4 x 2000 draws, with the split-merge moves below) the smallest bulk ESS
   of the label-invariant quantities is 1774 for the DP and 1189 for the MFM, against
   350 and 424 when allocating given the parameters (``benchmarks/RESULTS.md``,
   section "gibbs").
2. **Weights** given the counts :math:`N_k`:

   * finite mixture: :math:`\pi \sim \mathrm{Dirichlet}(\alpha + N_k)` (drawn in log
     space, so tiny weights never underflow to an absorbing zero);
   * truncated Dirichlet process (T components, Ishwaran & James 2001): first
     Metropolis label swaps (Papaspiliopoulos & Roberts 2008) under the allocation
     prior with the sticks integrated out, then the concentration, then the sticks
     :math:`v_k \sim \mathrm{Beta}(1 + N_k, a + \sum_{j>k} N_j)`, :math:`k < T`;
     the last weight takes the remainder. The concentration :math:`a` with prior
     Gamma(shape :math:`s`, rate :math:`r`) (``prior.dp_concentration``) uses Escobar &
     West's (1995) auxiliary-variable update in the form that is exact for the
     truncated model: with the sticks integrated out,
     :math:`p(z \mid a) \propto \prod_{k<T} a\,B(a + m_k, N_k + 1)`,
     :math:`m_k = \sum_{j>k} N_j`; auxiliary :math:`\eta_k \sim \mathrm{Beta}(a + m_k,
     N_k + 1)` for the :math:`J` factors with :math:`N_k + m_k > 0` make
     :math:`a \mid \eta \sim \mathrm{Gamma}(s + J, r - \sum_k \log\eta_k)`. (E&W's single
     :math:`\mathrm{Beta}(a + 1, n)` variable is exact for the untruncated process only.)
   * mixture of finite mixtures (telescoping sampler, Frühwirth-Schnatter,
     Malsiner-Walli & Grün 2021): the occupied components are moved first, then
     :math:`K \mid` partition with weights and empty components integrated out,
     :math:`p(K \mid C) \propto p(K)\,\frac{K!}{(K-K_+)!}
     \frac{\Gamma(K\gamma_K)}{\Gamma(N + K\gamma_K)}
     \prod_{k \le K_+} \frac{\Gamma(N_k + \gamma_K)}{\Gamma(\gamma_K)}` for
     :math:`K = K_+, \dots,` ``max_components``, then :math:`K - K_+` empty components
     from the prior and :math:`\pi \mid K \sim \mathrm{Dirichlet}(\gamma_K + N_k)`.
   For DP and MFM models, after the allocation sweeps and before the weights (for the
   MFM: before K), ``SPLIT_MERGE_MOVES`` split-merge moves per draw (sequentially
   allocated, Dahl 2005; fewer when N is large, ``SPLIT_MERGE_POINTS_PER_DRAW``)
   change the allocations with the component parameters and weights integrated out
   (:func:`bayesmix.mcmc._gibbs_kernels.split_merge_moves`): a pair of observations in one
   cluster proposes to split it (the other members follow one by one, each by its
   predictive probability, nearest to the first observation first), in two clusters
   to merge them. The pair's first observation i is, half the time, drawn in
   proportion to the volume of its 10-nearest-neighbour ball (``SM_SPARSE_LAUNCH``: a
   point in a sparse region, where small clusters form and clusters meet), else
   uniformly; j is, nine times in ten, one of i's nearest tenth of the data
   (``SM_NEIGHBOUR_PAIRS``, ``SM_NEIGHBOURS``), else uniform. The pairs' distribution
   and the member order depend on the data only, never on the allocations, so each
   pair's move is reversible and so is the mixture of them. Such pairs propose the
   moves that change the number of clusters (a small cluster merging with the one
   beside it, a cluster splitting where it is thin) rather than merging two large,
   distant clusters, which is rejected. Measured on Old Faithful's MFM (a two-cluster
   and a three-cluster mode, the third a dozen points between the two clouds), 4 x
   2000 draws, 8 sweeps and 40 moves per draw, seeds 1-3: smallest bulk ESS of K+
   828-988 with uniform pairs, 789-1148 with neighbour j, 1109-1189 with neighbour j
   and sparse-weighted i (12.4-13.5 s; before this design, 7 sweeps and 5 uniform
   moves: 295). The moves run after the sweeps, just before the draw is recorded: the
   same moves spread between the sweeps gave half the ESS. *Local* moves (only the
   members within i's nearest 10-50% re-allocated) cost less but gave 0.6x the ESS,
   and Jain & Neal's (2004) restricted-Gibbs launch state, tried with 1 and 3
   intermediate scans, fewer effective draws per second.
   Split-merge moves exist for the full, diag and spherical covariance; the tied
   covariance couples the clusters' marginal likelihoods and has none. Their
   allocation prior is the labelled Dirichlet-multinomial (finite), the labelled
   truncated stick-breaking prior with the sticks integrated out (DP), and the MFM's
   partition prior with K summed out (Miller & Harrison 2018).
3. **Component parameters** given the allocations, from their exact conditionals
   (sufficient statistics from the fused pass, or by
   :func:`bayesmix.mcmc._gibbs_kernels.suff_stats` after collapsed or split-merge moves):
   normal-inverse-Wishart for ``full`` and ``tied`` (one matrix from all
   components' scatter), normal-inverse-gamma per feature for ``diag`` and per
   component for ``spherical``. Empty components are drawn from the prior: this is
   what lets a DP, an MFM or an over-fitted mixture mix.

The inverse-Wishart draws use Bartlett's decomposition on batches of components. The
data are centred at the prior mean inside the sampler (the means are shifted back).

Data with missing (NaN) entries: each sweep ends by drawing the missing coordinates
given the observed ones, the allocations and the new parameters, on a per-chain copy of
the data (:mod:`bayesmix.mcmc._gibbs_missing`); the recorded log-likelihoods are the
observed-data ones.

Chains start at the EM fit (as for NUTS, :func:`bayesmix.mcmc._common._em_init`), each
with its own random stream spawned from ``random_seed``: the draws do not depend on
``cores`` (chains run in threads when ``cores > 1``; the numba kernels release the
GIL).
"""

from __future__ import annotations

import contextlib
import dataclasses
import numbers
import os
import time
import warnings

import numpy as np
import xarray as xr

from bayesmix.mcmc import _collapsed_kernels
from bayesmix.mcmc import _gibbs_kernels as _gk
from bayesmix.mcmc._choice import _NUTS_ONLY, resolve_sampler
from bayesmix.mcmc._conjugate import _Conj
from bayesmix.mcmc._gibbs_missing import GapLayout, chain_spec, impute_missing
from bayesmix.mcmc._gibbs_sweeps import (
    _SM_TYPES,
    _SWEEPS,
    SM_ORDER_MAX_N,
    _allocate,
    _sm_launch,
    _Spec,
    _State,
    _use_collapsed,
    chain_threads,
    log_v_mfm,
    tracks_loglik,
)
from bayesmix.mcmc._gibbs_sweeps import log_likelihood as gibbs_log_likelihood

__all__ = ["sample_gibbs"]


# ---------------------------------------------------------------------------- chains
def _record_arrays(spec, draws, store_z):
    K, (N, D) = spec.n_slots, spec.Xc.shape
    out = {
        "log_w": np.empty((draws, K)),
        "means": np.empty((draws, K, D)),
        "cov": np.empty((draws, K, D, D)),
        "n_occupied": np.empty(draws, dtype=np.int64),
    }
    if store_z:
        out["z"] = np.empty((draws, N), dtype=np.int32)
    if spec.kind == "dpgmm":
        out["sticks"] = np.empty((draws, K - 1))
        out["alpha"] = np.empty(draws)
    if spec.kind == "mfm":
        out["K"] = np.empty(draws, dtype=np.int64)
    return out


def _store(out, s, st):
    out["log_w"][s] = st.log_w
    out["means"][s] = st.means
    out["cov"][s] = st.cov
    out["n_occupied"][s] = int((st.counts > 0).sum())
    for name, value in st.own.items():
        if name == "covariances":  # the same as "cov"
            continue
        out.setdefault(name, np.empty((out["means"].shape[0], *np.shape(value))))[s] = value
    if "z" in out:
        out["z"][s] = st.z
    if "sticks" in out:
        out["sticks"][s] = st.sticks
        out["alpha"][s] = st.alpha
    if "K" in out:
        out["K"][s] = st.K


def _run_chain(spec, init, seed, draws, tune, store_z, tick):
    """Run one chain from a copy of ``init``; returns the recorded arrays."""
    rng = np.random.default_rng(seed)
    spec = chain_spec(spec)  # gaps: the chain's own filled data
    st = dataclasses.replace(init, z=init.z.copy(), counts=init.counts.copy(), own=dict(init.own))
    sweep = _SWEEPS[spec.kind]
    if _use_collapsed(spec):
        # the collapsed sweeps start from allocations, not parameters: draw them once
        # from the starting point's (EM fit's) responsibilities
        _allocate(spec, st, rng)
    out = _record_arrays(spec, draws, store_z)
    loglik = np.empty(draws) if tracks_loglik(spec) else None
    done = 0
    for it in range(tune + draws):
        sweep(spec, st, rng)
        if spec.gaps is not None:  # x_mis | x_obs, z, parameters (_gibbs_missing)
            impute_missing(spec, st, rng)
        if it >= tune:
            _store(out, it - tune, st)
        if loglik is not None and it > tune:  # this sweep allocated at draw it - 1's parameters
            loglik[it - tune - 1] = st.loglik
        done += 1
        if done == 100:
            tick(done)
            done = 0
    if loglik is not None:
        loglik[-1] = gibbs_log_likelihood(spec, st)
        out["loglik"] = loglik
    tick(done)
    return out


@contextlib.contextmanager
def _progress(total, enabled):
    """A rich progress bar (PyMC's) advanced by the chains; a no-op when disabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("Gibbs sampling", total=total)
        yield lambda n: bar.advance(task, n)


def _run_chains(spec, init, seeds, draws, tune, store_z, cores, progressbar):
    chains = len(seeds)
    spec = dataclasses.replace(spec, threads=chain_threads(cores, chains))
    with _progress(chains * (tune + draws), progressbar) as tick:
        if cores <= 1 or chains == 1:
            return [_run_chain(spec, init, s, draws, tune, store_z, tick) for s in seeds]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(cores, chains)) as pool:
            futures = [
                pool.submit(_run_chain, spec, init, s, draws, tune, store_z, tick) for s in seeds
            ]
            return [f.result() for f in futures]


# ---------------------------------------------------------------------------- set-up
def prior_mode_components(prior, covariance, n):
    """Means (n, D) and full covariances (n, D, D) at the prior mode.

    Used to start and to pad components that do not exist (MFM components beyond K):
    the mean :math:`m_0` and the mode of the covariance prior (inverse-Wishart
    :math:`\\Psi_0/(\\nu_0 + D + 1)`; inverse-gamma :math:`\\psi/(\\nu_0 + 2)`).
    """
    D = prior.n_features
    if covariance in ("full", "tied"):
        cov = prior.scale / (prior.dof + D + 1.0)
    else:
        cov = np.diag(np.broadcast_to(prior.covariance_scale(covariance), (D,))) / (prior.dof + 2.0)
    return np.repeat(prior.mean[None], n, axis=0), np.repeat(cov[None], n, axis=0)


def _own_from_full(covariance, w, c):
    """The model's own covariance variable from full matrices (K, D, D)."""
    if covariance == "full":
        return {"covariances": c}
    if covariance == "tied":
        return {"covariance": np.average(c, axis=0, weights=np.maximum(w, 1e-12))}
    var = np.diagonal(c, axis1=1, axis2=2).copy()
    if covariance == "diag":
        return {"variances": var}
    return {"variances": var.mean(1)}


def _full_from_own(covariance, own, K, D):
    if covariance == "full":
        return own["covariances"]
    if covariance == "tied":
        return np.broadcast_to(own["covariance"], (K, D, D)).copy()
    var = own["variances"]
    var = var if covariance == "diag" else np.repeat(var[:, None], D, axis=1)
    return var[:, :, None] * np.eye(D)


def _initial_state(cfg, spec, w, m, c):
    """A state from an EM-like point (w (k,), m (k, D), c (k, D, D)), padded as needed."""
    from bayesmix.mcmc._common import _pad_components

    K, (N, D) = spec.n_slots, spec.Xc.shape
    k_init = w.size
    if cfg.model == "dpgmm":
        w, m, c = _pad_components(cfg, w, m, c)
    elif cfg.model == "mfm":
        w, m, c, k_init = _mfm_start(cfg, w, m, c)
        pm_, pc = prior_mode_components(cfg.prior, cfg.covariance, K - k_init)
        w = np.concatenate([w, np.zeros(K - k_init)])
        m = np.concatenate([m, pm_])
        c = np.concatenate([c, pc])
    own = _own_from_full(cfg.covariance, w, c)
    cov = _full_from_own(cfg.covariance, own, K, D)
    with np.errstate(divide="ignore"):
        log_w = np.log(np.clip(w, 0.0, None) / w.sum())
    a, b = cfg.prior.dp_concentration
    return _State(
        log_w=log_w,
        means=m - cfg.prior.mean,
        cov=cov,
        chol=np.linalg.cholesky(cov),
        own=own,
        z=np.zeros(N, dtype=np.int64),
        counts=np.zeros(K, dtype=np.int64),
        sticks=None,
        alpha=a / b,
        K=k_init if cfg.model == "mfm" else K,
    )


def _mfm_start(cfg, w, m, c):
    """Order by weight; K at the start: the largest K <= k with prior mass (else the least)."""
    order = np.argsort(-w)
    w, m, c = w[order], m[order], c[order]
    support = np.flatnonzero(cfg.k_prior > 0) + 1
    below = support[support <= w.size]
    k = int(below.max()) if below.size else int(support.min())
    if k < w.size:
        w, m, c = w[:k] / w[:k].sum(), m[:k], c[:k]
    elif k > w.size:
        pm_, pc = prior_mode_components(cfg.prior, cfg.covariance, k - w.size)
        w = np.concatenate([w * (1 - 1e-3), np.full(k - w.size, 1e-3 / (k - w.size))])
        m, c = np.concatenate([m, pm_]), np.concatenate([c, pc])
    return w, m, c, k


def _spec(cfg, start=None):
    """The sampler's spec; with gaps in ``cfg.X``, ``Xc`` is the starting fill: the
    conditional means under ``start`` = (w, m, c) (``_gibbs_missing``)."""
    conj = _Conj.from_prior(cfg.prior, cfg.covariance)
    gaps = GapLayout.from_data(cfg.X)
    X = cfg.X
    if gaps is not None:
        from bayesmix.core._missing import MissingPatterns, conditional_impute

        X = conditional_impute(cfg.X, MissingPatterns(cfg.X), *start)
    Xc = np.ascontiguousarray(X - cfg.prior.mean)
    a, b = cfg.prior.dp_concentration
    extra = {}
    if cfg.model == "mfm":
        with np.errstate(divide="ignore"):
            extra = dict(log_k_prior=np.log(cfg.k_prior), dynamic=cfg.dynamic)
        if not cfg.dynamic:
            extra["log_v"] = log_v_mfm(
                extra["log_k_prior"], cfg.prior.weight_concentration, cfg.X.shape[0]
            )
    if cfg.covariance in _SM_TYPES:
        ct = _SM_TYPES[cfg.covariance]
        psi = np.ascontiguousarray(conj.psi[:1] if ct == 3 else conj.psi)
        Psi0 = np.ascontiguousarray(conj.Psi0)
        c0 = float(_gk.prior_constant(ct, float(conj.nu0), Psi0, psi))
        extra["sm_conj"] = (ct, float(conj.k0), float(conj.nu0), Psi0, psi, c0)
        sd = Xc.std(0)
        extra["Xs"] = Xc / np.where(sd > 0, sd, 1.0)
        if Xc.shape[0] <= SM_ORDER_MAX_N:
            order = _collapsed_kernels.nearest_order(extra["Xs"])
            extra["sm_order"] = order
            extra["sm_self"] = np.argmax(order == np.arange(order.shape[0])[:, None], axis=1)
            extra["sm_launch"] = _sm_launch(extra["Xs"], order)
    return _Spec(
        kind=cfg.model,
        Xc=Xc,
        conj=conj,
        n_slots=cfg.n_components,
        weight_concentration=cfg.prior.weight_concentration,
        dp_shape=a,
        dp_rate=b,
        gaps=gaps,
        **extra,
    )


def _init_point(cfg, init, rng):
    """(w, m, c) of the starting point: the EM fit by default, as for NUTS."""
    from bayesmix.mcmc._common import _check_init, _em_init

    D = cfg.X.shape[1]
    if init is None:
        em_cfg = cfg
        if cfg.model == "mfm":  # EM fits with K = 1 .. min(6, ...) as for a DP
            em_cfg = dataclasses.replace(cfg, model="dpgmm")
        init = _em_init(em_cfg, rng)
        w, m, c = _check_init(init, None, D)
    else:
        w, m, c = _check_init(init, None if cfg.model != "gmm" else cfg.n_components, D)
    if w.size > cfg.n_components:
        raise ValueError(
            f"init has {w.size} components, more than the model's {cfg.n_components}; fit EM "
            "with fewer components or increase truncation / max_components."
        )
    return init, w, m, c


# ---------------------------------------------------------------------------- output
def _stack(results, name):
    return np.stack([r[name] for r in results])


def _posterior_arrays(cfg, results):
    """weights, means, full covariances and the model's own variables (C, S, ...)."""
    w = np.exp(_stack(results, "log_w"))
    m = _stack(results, "means") + cfg.prior.mean
    c = _stack(results, "cov")
    own_names = {"full": ["covariances"], "tied": ["covariance"]}.get(cfg.covariance, ["variances"])
    own = {k: _stack(results, k) for k in own_names if k != "covariances"}
    extra = dict(own)
    dims = {"covariance": ["feature", "feature2"]}
    dims["variances"] = ["component", "feature"] if cfg.covariance == "diag" else ["component"]
    if cfg.model == "dpgmm":
        extra["concentration"] = _stack(results, "alpha")
        extra["sticks"] = _stack(results, "sticks")
        dims.update(concentration=[], sticks=["stick"])
    if cfg.model == "mfm":
        Kd = _stack(results, "K")
        absent = np.arange(cfg.n_components)[None, None, :] >= Kd[..., None]  # (C, S, Kmax)
        pm_, pc = prior_mode_components(cfg.prior, cfg.covariance, 1)
        w = np.where(absent, 0.0, w)
        m = np.where(absent[..., None], pm_[0], m)
        c = np.where(absent[..., None, None], pc[0], c)
        if "variances" in extra:
            mode = np.diagonal(pc[0]) if cfg.covariance == "diag" else pc[0, 0, 0]
            vshape = absent[..., None] if cfg.covariance == "diag" else absent
            extra["variances"] = np.where(vshape, mode, extra["variances"])
        extra["n_components"] = Kd
        dims["n_components"] = []
    extra["n_occupied"] = _stack(results, "n_occupied")
    dims["n_occupied"] = []
    return w, m, c, extra, {k: dims[k] for k in extra}


def _to_datatree(cfg, results, attrs, store_z, log_likelihood="auto"):
    from bayesmix.mcmc._pointwise import total_log_likelihood_arrays
    from bayesmix.mcmc._trace import from_arrays

    w, m, c, extra, dims = _posterior_arrays(cfg, results)
    if store_z:
        extra["allocations"] = _stack(results, "z")
        dims["allocations"] = ["obs"]
    dt = from_arrays(
        w,
        m,
        c,
        cfg.X,
        feature_names=cfg.feature_names,
        attrs=attrs,
        extra=extra,
        extra_dims=dims,
        log_likelihood=log_likelihood,
    )
    post = dt["posterior"].to_dataset()
    coords = {}
    if "stick" in post.dims:
        coords["stick"] = np.arange(cfg.n_components - 1)
    if "obs" in post.dims:
        coords["obs"] = np.arange(cfg.X.shape[0])
    if coords:
        dt["posterior"] = post.assign_coords(coords)
    if "log_likelihood" in dt.children:
        loglik = dt["log_likelihood"]["X"].sum("obs", skipna=False).values
    elif all("loglik" in r for r in results):  # from the fused passes (tracks_loglik)
        loglik = _stack(results, "loglik")
    else:  # chunks of observations: never the (chain, draw, obs) array
        loglik = total_log_likelihood_arrays(cfg.X, w, m, c)
    dt["sample_stats"] = xr.Dataset(
        {"loglik": (("chain", "draw"), loglik)},
        coords={"chain": dt["posterior"]["chain"].values, "draw": dt["posterior"]["draw"].values},
    )
    return dt


def _warn_truncation(cfg, dt):
    from bayesmix.mcmc._common import TruncationWarning

    last = float(dt["posterior"]["weights"].isel(component=-1).mean())
    if last > 0.01:
        warnings.warn(
            f"The last of the {cfg.n_components} stick-breaking components keeps posterior "
            f"mean weight {last:.3f} > 0.01: the truncation is too small. Increase "
            f"truncation (e.g. bm.build_dpgmm(X, truncation={2 * cfg.n_components})).",
            TruncationWarning,
            stacklevel=4,
        )


def _check_count(value, name, minimum):
    from bayesmix.core._validation import check_int

    return check_int(value, name, minimum=minimum)


# ---------------------------------------------------------------------------- sample
def sample_gibbs(
    model,
    *,
    init=None,
    draws=1000,
    tune=1000,
    chains=4,
    random_seed=None,
    progressbar=True,
    cores=None,
    log_likelihood="auto",
    allocations=False,
    **kwargs,
):
    """Sample a conjugate bayesmix model with the Gibbs sampler (module docstring).

    Called by :func:`bayesmix.sample` with ``sampler="gibbs"``; the keywords are
    those of :func:`bayesmix.sample`.

    Parameters
    ----------
    model : pymc.Model or MFMModel
        Built by :func:`bayesmix.build_gmm`, :func:`bayesmix.build_dpgmm` or
        :func:`bayesmix.build_mfm` with ``covariance_prior="conjugate"``.
    init : EMResult-like, optional
        Starting point (default: the EM fit, as for NUTS).
    draws, tune, chains : int
        Kept sweeps, burn-in sweeps, chains.
    random_seed : int or numpy.random.Generator, optional
        Same seed, same draws (also whatever ``cores``).
    progressbar : bool
    cores : int, optional
        Chains run in this many threads; default as ``pymc.sample``: the number of CPUs,
        at most 4 (and at most ``chains``). The draws do not depend on it.
    log_likelihood : bool or "auto", default "auto"
        Store ``log_likelihood/X`` (chain, draw, obs); as :func:`bayesmix.sample`.
    allocations : bool, default False
        Store the sampled allocations ``posterior/allocations`` (chain, draw, obs) int32.
        Either ``True`` raises MemoryError before sampling when the array cannot fit.
    **kwargs
        NUTS-only settings of :func:`bayesmix.sample` (``target_accept``, ...) are
        accepted and ignored; anything else is a TypeError.

    Returns
    -------
    xarray.DataTree
        As :func:`bayesmix.sample` (module :mod:`bayesmix.mcmc._trace`), plus posterior
        ``n_occupied`` (chain, draw), ``allocations`` (chain, draw, obs) with
        ``allocations=True``, for an MFM ``n_components`` (chain, draw);
        ``sample_stats`` ``loglik`` (chain, draw): the total log-likelihood of the
        draw; root attrs ``sampler="gibbs"``, ``allocations_stored``.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np, bayesmix as bm
    >>> X = np.random.default_rng(0).normal(size=(40, 1))
    >>> with warnings.catch_warnings():  # 20 draws: the ESS warning is expected
    ...     warnings.simplefilter("ignore", bm.ConvergenceWarning)
    ...     dt = sample_gibbs(bm.build_gmm(X, 2), draws=20, tune=20, chains=2,
    ...                       random_seed=1, progressbar=False, allocations=True)
    >>> dt["posterior"]["allocations"].dims
    ('chain', 'draw', 'obs')
    """
    from bayesmix.core._validation import check_random_state
    from bayesmix.mcmc._builders import get_config
    from bayesmix.mcmc._common import _diagnose
    from bayesmix.mcmc._pointwise import check_fits_memory, resolve_storage

    cfg = get_config(model)
    unknown = sorted(set(kwargs) - set(_NUTS_ONLY))
    if unknown:
        raise TypeError(
            f"sample(sampler='gibbs') got unexpected keyword argument(s) {unknown}; the Gibbs "
            "sampler takes init, draws, tune, chains, random_seed, progressbar and cores."
        )
    resolve_sampler(model, "gibbs")  # LKJ prior: clear error
    draws = _check_count(draws, "draws", 1)
    tune = _check_count(tune, "tune", 0)
    chains = _check_count(chains, "chains", 1)
    if cores is None:
        cores = min(4, os.cpu_count() or 1)
    cores = _check_count(cores, "cores", 1)
    rng = check_random_state(random_seed)
    init, w, m, c = _init_point(cfg, init, rng)
    spec = _spec(cfg, (w, m, c))
    start = _initial_state(cfg, spec, w, m, c)
    seeds = np.random.SeedSequence(int(rng.integers(2**63))).spawn(chains)
    store_z = _check_allocations(allocations)
    n_entries = chains * draws * cfg.X.shape[0]
    if store_z:  # before any sampling
        check_fits_memory(
            4 * n_entries, "allocations (chain, draw, obs) int32", "allocations=False"
        )
    if resolve_storage(log_likelihood, n_entries)[0]:
        check_fits_memory(
            8 * n_entries, "log_likelihood (chain, draw, obs)", "log_likelihood=False"
        )
    t0 = time.perf_counter()
    results = _run_chains(spec, start, seeds, draws, tune, store_z, cores, progressbar)
    attrs = {
        "model": cfg.model,
        "n_components": cfg.n_components,
        "covariance": cfg.covariance,
        "covariance_prior": cfg.covariance_prior,
        "prior": cfg.prior.to_json(),
        "sampler": "gibbs",
        "random_seed": int(random_seed) if isinstance(random_seed, numbers.Integral) else -1,
        "sampling_time": time.perf_counter() - t0,
        "allocations_stored": int(store_z),
    }
    if not store_z:
        attrs["allocations_note"] = (
            "allocations not stored (allocations=False); membership and co-clustering use "
            "the parameters"
        )
    attrs.update(_model_attrs(cfg))
    dt = _to_datatree(cfg, results, attrs, store_z, log_likelihood)
    if cfg.model == "dpgmm":
        _warn_truncation(cfg, dt)
    _diagnose(dt, cfg, init if cfg.model == "gmm" else None)
    return dt


def _check_allocations(allocations):
    if isinstance(allocations, (bool, np.bool_)):
        return bool(allocations)
    raise ValueError(
        f"allocations must be True or False; got {allocations!r}. True stores the sampled "
        "allocations (chain, draw, obs) int32; False (the default) keeps n_occupied only."
    )


def _model_attrs(cfg):
    if cfg.model == "dpgmm":
        return {"truncation": cfg.truncation}
    if cfg.model == "mfm":
        return {
            "max_components": cfg.n_components,
            "dynamic": int(cfg.dynamic),
            "k_prior": list(map(float, cfg.k_prior)),
        }
    return {}
