"""NUTS sampling of a bayesmix PyMC model, initialised from an EM fit.

:func:`sample` runs ``pymc.sample`` from per-chain starting points near the EM MAP
and returns an ``xarray.DataTree`` in the bayesmix schema (:mod:`bayesmix.mcmc._trace`):
``weights``, ``means`` and full ``covariances`` for every covariance type, the
model-specific variables, ``sample_stats``, and the pointwise marginal
log-likelihood (computed after sampling in numpy, never as a per-observation
Deterministic in the model).

Default sampler
---------------
``nuts_sampler=None`` uses PyMC's own NUTS (``"pymc"``). The model compiles through
PyTensor's numba backend; because the data and the data-derived prior numbers enter
the graph as shared variables (:mod:`bayesmix.mcmc._builders`), PyTensor's on-disk numba
cache serves every later data set of the same model structure, so after the first
fit on a machine the set-up takes under a second. nutpie rebuilds its numba wrapper
on every call (13-15 s here), which dominates at these sizes: D=2, K=3, 2 x 1000
draws take 2.5-4.5 s wall with PyMC's NUTS and 14-16 s with nutpie (benchmarks/
RESULTS.md, section "pymc", which also compares with a hand-written ``pm.Mixture``).

bayesmix builds PyMC's NUTS step itself (``pm.sample(step=...)``): each chain starts
at its own jittered EM point, with a dense mass-matrix adaptation up to 60 parameters
(``mass_matrix``); the chains' traces share one compiled function; and Python's cyclic
garbage collector is paused during the call (full collections over PyMC's, PyTensor's
and numba's objects cost 0.4-0.5 s per fit). ``"nutpie"`` (and ``"numpyro"`` /
``"blackjax"`` where installed) are passed through; nutpie accepts a single starting
point, so all its chains start at the first chain's jittered EM point.
"""

from __future__ import annotations

import contextlib
import gc
import numbers
import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.backends.ndarray import NDArray
from pymc.blocking import DictToArrayBijection
from pymc.pytensorf import resolve_backend_compile_kwargs
from pymc.step_methods.hmc import quadpotential as qp
from pytensor.compile.mode import Mode

from bayesmix.core._validation import (
    check_int,
    check_random_state,
    degenerate_report,
)
from bayesmix.mcmc._builders import get_config
from bayesmix.mcmc._common import (  # shared with bayesmix.mcmc._gibbs (no import cycle)
    NUTS_STEP_KWARGS,
    TruncationWarning,
    _check_init,
    _diagnose,
    _em_init,
    _pad_components,
)
from bayesmix.mcmc._common import _varying as _varying  # re-exported (tests, old import path)
from bayesmix.mcmc._trace import from_arrays, map_occupied

# This is the PyMC layer (PyMC and PyTensor come with bayesmix.mcmc._builders anyway); only
# arviz_stats is imported inside the function that needs it, to keep `import` light.

__all__ = ["TruncationWarning", "sample"]


#: sample statistics copied from PyMC / nutpie when present (chain, draw) only
_STATS = (
    "diverging",
    "lp",
    "energy",
    "tree_depth",
    "depth",
    "n_steps",
    "step_size",
    "acceptance_rate",
    "mean_tree_accept",
    "max_energy_error",
    "logp",
)

#: jitter scale in unconstrained space for the transformed variables
_JITTER = 0.05


# ---------------------------------------------------------------------------- init


def _init_values(cfg, w, m, c):
    """Constrained starting values keyed by free-variable name."""
    cov = cfg.covariance
    vals = {"means": m}
    if cfg.model == "dpgmm":
        rest = 1.0 - np.concatenate([[0.0], np.cumsum(w[:-1])])
        sticks = np.clip(w[:-1] / np.maximum(rest[:-1], 1e-12), 1e-6, 1 - 1e-6)
        vals["sticks"] = sticks
        a, b = cfg.prior.dp_concentration
        vals["concentration"] = np.float64(a / b)
    elif cfg.n_components > 1:
        vals["weights"] = np.clip(w, 1e-10, None) / np.clip(w, 1e-10, None).sum()
    if getattr(cfg, "noise_volume", None) is not None:
        # noise model: the free Dirichlet is over K + 1 weights (an EM noise fit leaves
        # 1 - sum(w) to the noise; a start without noise gives it 1%)
        vals.pop("weights", None)
        wn = np.append(np.clip(w, 1e-10, None), max(1.0 - float(np.sum(w)), 0.01))
        vals["weights_noise"] = wn / wn.sum()
    if cov == "full" and cfg.covariance_prior == "lkj":
        L = np.linalg.cholesky(c)
        r, cc = np.tril_indices(c.shape[-1])
        vals["chol_cov"] = L[:, r, cc]
    elif cov == "full":
        vals["covariances"] = c
    elif cov == "tied":
        vals["covariance"] = np.average(c, axis=0, weights=w)
    elif cov == "diag":
        vals["variances"] = np.diagonal(c, axis1=1, axis2=2).copy()
    else:
        vals["variances"] = np.trace(c, axis1=1, axis2=2) / c.shape[-1]
    return vals


#: bm.sample's mass_matrix -> pm.sample's init (chains start at our own jittered points)
_MASS_MATRIX = {"auto": None, "diag": "adapt_diag", "full": "adapt_full"}
#: "auto" adapts a dense mass matrix up to this many unconstrained parameters
_DENSE_MAX_PARAMS = 60


def _jittered_points(model, values, chains, rng, w, c):
    """Per-chain starting points: small Gaussian jitter in unconstrained space.

    Returns the points (constrained values keyed by variable name, for ``initvals``),
    the unconstrained centre and per-chain points (keyed by value-variable name, for
    the NUTS set-up) and the number of unconstrained parameters. The transforms are
    evaluated with PyTensor's Python linker and no graph rewriting: a few small
    arrays, where compiling would cost more than running.
    """

    N = model.bayesmix_config.X.shape[0]
    names, vnames, fwd, bwd_in, bwd_out = [], [], [], [], []
    for rv in model.free_RVs:
        name = rv.name
        tr = model.rvs_to_transforms.get(rv)
        val = pt.as_tensor_variable(np.asarray(values[name], dtype=float))
        names.append(name)
        vnames.append(model.rvs_to_values[rv].name)
        if tr is None:
            fwd.append(val)
            x = pt.tensor(shape=val.type.shape, dtype="float64")
            bwd_in.append(x)
            bwd_out.append(x)
        else:
            fwd.append(tr.forward(val, *rv.owner.inputs))
            x = pt.tensor(shape=(None,) * fwd[-1].ndim, dtype="float64")
            bwd_in.append(x)
            bwd_out.append(tr.backward(x, *rv.owner.inputs))
    mode = Mode(linker="py", optimizer=None)
    unconstrained = pytensor.function([], fwd, mode=mode, on_unused_input="ignore")()
    unconstrained = [np.asarray(v, dtype=float) for v in unconstrained]
    back = pytensor.function(bwd_in, bwd_out, mode=mode, on_unused_input="ignore")
    # means: jitter ~ 0.1 posterior sd (sd of the component / sqrt(its count))
    sd_means = (
        0.1 * np.sqrt(np.diagonal(c, axis1=1, axis2=2)) / np.sqrt(np.maximum(w * N, 1.0))[:, None]
    )
    points, upoints = [], []
    for _ in range(chains):
        u = []
        for name, rv, val in zip(names, model.free_RVs, unconstrained, strict=True):
            if model.rvs_to_transforms.get(rv) is None and name == "means":
                u.append(val + sd_means * rng.standard_normal(val.shape))
            else:
                u.append(val + _JITTER * rng.standard_normal(val.shape))
        points.append({n: np.asarray(v) for n, v in zip(names, back(*u), strict=True)})
        upoints.append({n: np.asarray(v, dtype=float) for n, v in zip(vnames, u, strict=True)})
    centre = dict(zip(vnames, unconstrained, strict=True))
    return points, centre, upoints, int(sum(v.size for v in unconstrained))


#: keyword arguments of pm.sample that configure the NUTS step (bm.sample builds it)
_NUTS_KWARGS = NUTS_STEP_KWARGS


def _chain_trace(model, point):
    """PyMC's NDArray trace with one compiled point function shared by all chains.

    ``pm.sample`` builds one ``NDArray`` per chain, each compiling the same function
    from the sampler's values to the recorded variables (0.16 s each at K=3, D=2);
    given a trace object it makes a shallow copy per chain instead, which would share
    the sample arrays, so the copies here are fresh traces reusing the function only.
    """

    class _ChainNDArray(NDArray):
        def __copy__(self):
            return _ChainNDArray(
                model=self.model,
                vars=self.vars,
                fn=self.fn,
                var_shapes=self.var_shapes,
                var_dtypes=self.var_dtypes,
            )

    return _ChainNDArray(model=model, test_point=point)


def _nuts_step(model, centre, upoints, mass_matrix, rng, nuts_kwargs, compile_kwargs):
    """PyMC's NUTS step, set up as ``pm.sample(init="adapt_full" / "adapt_diag")`` would.

    The adaptation starts from the identity (weight 10 draws) around the mean of the
    chains' starting points, as in PyMC. Starting it from the inverse Hessian at the
    EM point instead saved 5-10% of the sampling time on well-identified posteriors
    but made over-fitted ones diverge more (Old Faithful, K=4, 4 x 500 draws, seeds
    1-9: divergences 372, 0, 0, 1, 0, 12, 7, 91, 1 against 0, 14, 0, 0, 0, 0, 0, 2,
    2), so it is not used.
    """

    # the EM point stands in for PyMC's initial point (which it would compile a function for)
    func = model.logp_dlogp_function(ravel_inputs=True, initial_point=centre, **compile_kwargs)
    func.trust_input = True
    grad_vars = func._grad_vars
    starts = np.array(
        [DictToArrayBijection.map({v.name: p[v.name] for v in grad_vars}).data for p in upoints]
    )
    mean = starts.mean(axis=0)
    n = mean.size
    seed = int(rng.integers(2**30))
    if mass_matrix == "full":
        potential = qp.QuadPotentialFullAdapt(n, mean, np.eye(n), 10, rng=seed)
    else:
        potential = qp.QuadPotentialDiagAdapt(n, mean, np.ones(n), 10, rng=seed)
    return pm.NUTS(
        potential=potential,
        model=model,
        rng=seed,
        logp_dlogp_func=func,
        **nuts_kwargs,
    )


# ---------------------------------------------------------------------------- post
def _full_covariances(cfg, post):
    cov = cfg.covariance
    D = len(cfg.feature_names)
    if cov == "full" and cfg.covariance_prior == "lkj":
        packed = post["chol_cov"]
        r, c = np.tril_indices(D)
        L = np.zeros((*packed.shape[:-1], D, D))
        L[..., r, c] = packed
        return L @ np.swapaxes(L, -1, -2)
    if cov == "full":
        return post["covariances"]
    if cov == "tied":
        S = post["covariance"]
        return np.broadcast_to(
            S[:, :, None], (S.shape[0], S.shape[1], cfg.n_components, D, D)
        ).copy()
    var = post["variances"]
    if cov == "diag":
        return var[..., :, None] * np.eye(D)
    return var[..., None, None] * np.eye(D)


# ---------------------------------------------------------------------------- sample
def sample(
    model,
    *,
    init=None,
    draws=1000,
    tune=1000,
    chains=4,
    random_seed=None,
    nuts_sampler=None,
    progressbar=True,
    mass_matrix="auto",
    sampler=None,
    log_likelihood="auto",
    allocations=False,
    **pymc_kwargs,
):
    """Sample a bayesmix model with NUTS, chains started near the EM MAP.

    Parameters
    ----------
    model : pymc.Model
        Built by :func:`bayesmix.build_gmm` or :func:`bayesmix.build_dpgmm`.
    init : EMResult-like, optional
        Anything with ``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D, D),
        e.g. ``bm.fit_em(X, K, covariance=..., prior=prior)``. ``None`` runs
        :func:`bayesmix.fit_em` on the model's data with the model's prior; for a DP
        model, MAP fits with K = 1 .. min(truncation, 6, N // 10) components and the
        lowest BIC among those without a warning (collapsed component, no convergence),
        padded to the truncation with prior-mode components. Each chain starts
        at this point plus a small Gaussian jitter in unconstrained space (sd 0.05;
        0.1 posterior sd for the means), reproducible from ``random_seed``.
    draws, tune, chains : int
        As in ``pymc.sample``.
    random_seed : int or numpy.random.Generator, optional
        Seeds the jitter, the EM initialisation and the sampler: the same seed gives
        identical draws.
    nuts_sampler : {"pymc", "nutpie", "numpyro", "blackjax"}, optional
        Default ``"pymc"`` (see the module docstring for why).
    progressbar : bool
        Show PyMC's progress bar.
    mass_matrix : {"auto", "diag", "full"}, default "auto"
        Mass-matrix adaptation of PyMC's NUTS (``nuts_sampler="pymc"``; the other
        samplers adapt their own): ``"diag"`` adapts a diagonal matrix like PyMC's
        ``init="adapt_diag"``, ``"full"`` a dense one like its ``"adapt_full"``
        (estimated from the tuning draws; it captures the correlations between means,
        covariances and weights). ``"auto"`` uses ``"full"`` up to 60 unconstrained
        parameters (e.g. K=6, D=3, full covariance has 59) and ``"diag"`` above, where
        a dense estimate from ~1000 tuning draws gets noisy. Both start from the
        identity with a weight of 10 draws, as in PyMC. Measured on three clusters,
        D=2, K=3 (17 parameters), 2 x 1000 draws, seeds 1-3: min bulk ESS 2216-2839
        with ``"diag"``, 2854-3328 with ``"full"``, same number of gradient
        evaluations. PyMC labels its dense adaptation experimental; its warning saying
        so is not shown. Passing PyMC's ``step``
        bypasses all of this (``init`` then follows ``mass_matrix``).
    sampler : {"gibbs", "nuts"}, optional
        ``"gibbs"``: the conditionally conjugate Gibbs sampler of :mod:`bayesmix.mcmc._gibbs`
        (conjugate priors only; it takes ``init``, ``draws``, ``tune`` (burn-in),
        ``chains``, ``random_seed``, ``progressbar`` and ``cores``, ignores NUTS
        settings, and adds ``allocations`` and ``n_occupied`` to the posterior).
        ``None``: Gibbs for DP and MFM models (an MFM has no NUTS sampler) and for
        finite models with the conjugate prior (more ESS per second of wall time than
        NUTS, compilation included, at every size measured in benchmarks/RESULTS.md,
        "gibbs-rule"; :mod:`bayesmix.mcmc._choice`); NUTS whenever an LKJ prior, sample
        weights, a noise component or a NUTS option (``nuts_sampler``, ``mass_matrix``,
        ``step``, ``target_accept`` ...) is given. ``sampler="nuts"`` forces NUTS.
    log_likelihood : bool or "auto", default "auto"
        Store the pointwise log-likelihood group ``log_likelihood/X`` (chain, draw,
        obs). ``"auto"``: only when chains * draws * N <=
        :data:`bayesmix.mcmc._pointwise.POINTWISE_MAX_ENTRIES` (5e6, 40 MB; Old
        Faithful at 4 x 2000 draws is 2.2e6). Without it :func:`bayesmix.loo` and
        :func:`bayesmix.waic` compute it from the parameters in chunks of
        observations. Root attrs ``log_likelihood_stored`` and ``log_likelihood_note``
        record what happened. ``True`` raises MemoryError before sampling when the
        array cannot fit in the available memory.
    allocations : bool, default False
        Gibbs only: store the sampled allocations ``posterior/allocations`` (chain,
        draw, obs) int32 (MemoryError before sampling when they cannot fit). Without
        them :func:`bayesmix.coclustering`, :func:`bayesmix.point_partition` and
        :func:`bayesmix.membership` use the parameters; ``n_occupied`` is always
        kept. NUTS integrates the allocations out: ``True`` is an error there.
    **pymc_kwargs
        Passed to ``pymc.sample`` (``cores``, ``compile_kwargs``, ...); the NUTS
        settings (``target_accept``, ``max_treedepth``, ``step_scale``, ...; or a
        ``nuts`` dict of them) go to the NUTS step that bayesmix builds.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (``weights`` (chain, draw, component), ``means``
        (chain, draw, component, feature), ``covariances`` (chain, draw, component,
        feature, feature2) and the model's own variables; DP models add
        ``concentration``, ``sticks`` and ``n_occupied`` (chain, draw): the number of
        components with at least one observation under the draw's MAP allocation),
        ``sample_stats``, ``log_likelihood`` (``X`` (chain, draw, obs), marginal; see
        ``log_likelihood``),
        ``observed_data``; root attrs ``model``, ``n_components``, ``covariance``,
        ``prior`` (JSON), ``bayesmix_version``, ``nuts_sampler``, ``random_seed``,
        ``mass_matrix`` (``"diag"`` or ``"full"``, with ``nuts_sampler="pymc"``).

    Warns
    -----
    ConvergenceWarning
        Divergences; R-hat > 1.01 or bulk ESS < 100 per chain (computed after
        relabelling against ``init``).
    TruncationWarning
        DP model whose last component keeps posterior mean weight > 1%.

    Examples
    --------
    >>> import bayesmix as bm
    >>> X = bm.load_old_faithful()
    >>> model = bm.build_gmm(X, 2)
    >>> idata = bm.sample(model, draws=200, tune=200, random_seed=1)  # doctest: +SKIP
    >>> idata["posterior"]["means"].dims  # doctest: +SKIP
    ('chain', 'draw', 'component', 'feature')
    """
    from bayesmix.mcmc._choice import _NUTS_ONLY, resolve_sampler
    from bayesmix.mcmc._gibbs import sample_gibbs

    nuts_options = nuts_sampler is not None or mass_matrix != "auto" or "step" in pymc_kwargs
    nuts_options = nuts_options or any(k in pymc_kwargs for k in _NUTS_ONLY)
    if resolve_sampler(model, sampler, nuts_options=nuts_options) == "gibbs":
        return sample_gibbs(
            model,
            init=init,
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=random_seed,
            progressbar=progressbar,
            log_likelihood=log_likelihood,
            allocations=allocations,
            **pymc_kwargs,
        )
    if allocations is not False:
        raise ValueError(
            f"allocations={allocations!r} needs the Gibbs sampler: NUTS integrates the "
            "allocations out and has none to store. Use sampler='gibbs' (conjugate prior) or "
            "allocations=False (membership and co-clustering then use the parameters)."
        )
    with _gc_paused():
        dt = _sample(
            model,
            init=init,
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=random_seed,
            nuts_sampler=nuts_sampler,
            progressbar=progressbar,
            mass_matrix=mass_matrix,
            log_likelihood=log_likelihood,
            **pymc_kwargs,
        )
    dt.attrs.setdefault("sampler", "nuts")
    return dt


@contextlib.contextmanager
def _gc_paused():
    """Pause Python's cyclic garbage collector, restoring its state on exit.

    Building and compiling the model's PyTensor graphs allocates millions of
    short-lived objects, which trigger full (generation 2) collections over the whole
    heap of PyMC, PyTensor and numba: 0.4-0.5 s of a 2.7 s fit at n=300 (three
    collections of ~0.16 s). Paused, the fit leaves ~10^5 unreachable objects
    (~12 MB) for the next automatic collection. Process-wide, like ``gc.disable``.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sample(
    model,
    *,
    init,
    draws,
    tune,
    chains,
    random_seed,
    nuts_sampler,
    progressbar,
    mass_matrix,
    log_likelihood="auto",
    **pymc_kwargs,
):
    from bayesmix.mcmc._pointwise import check_fits_memory, resolve_storage

    cfg = get_config(model)
    draws = check_int(draws, "draws", minimum=1)
    tune = check_int(tune, "tune", minimum=0)
    chains = check_int(chains, "chains", minimum=1)
    n_ll = chains * draws * cfg.X.shape[0]
    if resolve_storage(log_likelihood, n_ll)[0]:  # before any sampling
        check_fits_memory(8 * n_ll, "log_likelihood (chain, draw, obs)", "log_likelihood=False")
    if mass_matrix not in _MASS_MATRIX:
        raise ValueError(
            f"mass_matrix must be one of {list(_MASS_MATRIX)}; got {mass_matrix!r}. Use 'auto' "
            "(dense up to 60 parameters) unless you have a reason to choose."
        )
    rng = check_random_state(random_seed)
    seed_record = random_seed if isinstance(random_seed, numbers.Integral) else None
    if nuts_sampler is None:
        nuts_sampler = "pymc"
    init, (w, m, c) = _start_point(cfg, init, rng)
    values = _init_values(cfg, w, m, c)
    points, centre, upoints, n_params = _jittered_points(model, values, chains, rng, w, c)
    seed = int(rng.integers(2**31 - 1))
    if nuts_sampler == "pymc":
        initvals = points
        if mass_matrix == "auto":
            mass_matrix = "full" if n_params <= _DENSE_MAX_PARAMS else "diag"
        _set_pymc_step(model, pymc_kwargs, centre, upoints, mass_matrix, rng)
    else:
        initvals = points[0]
        _set_external_compile_kwargs(nuts_sampler, pymc_kwargs)
    idata = _pm_sample(
        model,
        cfg,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        nuts_sampler=nuts_sampler,
        initvals=initvals,
        progressbar=progressbar,
        compute_convergence_checks=False,
        **pymc_kwargs,
    )
    dt = _to_datatree(idata, cfg, nuts_sampler, seed_record, init, log_likelihood)
    if nuts_sampler == "pymc":
        dt.attrs["mass_matrix"] = mass_matrix
    return dt


def _pm_sample(model, cfg, **kwargs):
    """``pymc.sample``; a numerical breakdown of the log density becomes a ValueError."""
    with model, warnings.catch_warnings():
        # PyMC labels its dense adaptation (``adapt_full``, in PyMC since 3.9) experimental;
        # bayesmix chose it deliberately (see ``mass_matrix``), so the label is not repeated
        warnings.filterwarnings(
            "ignore", message="QuadPotentialFullAdapt is an experimental feature"
        )
        try:
            return pm.sample(**kwargs)
        except (ZeroDivisionError, np.linalg.LinAlgError, FloatingPointError) as exc:
            raise ValueError(_degenerate_failure(cfg, exc)) from exc


def _degenerate_failure(cfg, exc):
    """The message when the model's log density breaks down numerically while sampling."""
    rep = degenerate_report(cfg.X, cfg.feature_names)
    found = [f"{rep['n_distinct']} distinct point(s)"]
    if rep["constant"]:
        found.append(f"constant feature(s) {rep['constant']}")
    found += [f"collinear columns {g} ({rel})" for g, rel in rep["collinear"]]
    return (
        f"sampling failed: the model's log density broke down numerically "
        f"({type(exc).__name__}) on these data ({', '.join(found)}, n={cfg.X.shape[0]}). "
        "Use fewer components, drop constant or collinear columns, standardize the data, or "
        "give a prior of your own (prior=bayesmix.GMMPrior(...)) with a well-conditioned scale."
    )


def _start_point(cfg, init, rng):
    """The EM-like start ``init`` (run fit_em when None) and its (w, m, c), padded for a DP."""
    D = len(cfg.feature_names)
    if init is None:
        init = _em_init(cfg, rng)
        w, m, c = _check_init(init, None, D)
    else:
        w, m, c = _check_init(init, None if cfg.model == "dpgmm" else cfg.n_components, D)
    if cfg.model == "dpgmm":
        if w.size > cfg.n_components:
            raise ValueError(
                f"init has {w.size} components, more than the truncation "
                f"{cfg.n_components}; increase truncation or fit EM with fewer components."
            )
        w, m, c = _pad_components(cfg, w, m, c)
    return init, (w, m, c)


def _set_pymc_step(model, pymc_kwargs, centre, upoints, mass_matrix, rng):
    """PyMC's NUTS: put bayesmix's step (and chain trace) into ``pymc_kwargs``, in place.

    A user-given ``step`` is kept; then only ``mass_matrix`` picks PyMC's ``init``.
    """

    if "step" in pymc_kwargs:
        pymc_kwargs["init"] = _MASS_MATRIX[mass_matrix]
        return
    nuts_kwargs = dict(pymc_kwargs.pop("nuts", None) or {})
    for key in _NUTS_KWARGS:
        if key in pymc_kwargs:
            nuts_kwargs[key] = pymc_kwargs.pop(key)
    ck = resolve_backend_compile_kwargs(
        pymc_kwargs.get("backend"), pymc_kwargs.get("compile_kwargs")
    )
    with model, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="QuadPotentialFullAdapt is an experimental feature"
        )
        pymc_kwargs["step"] = _nuts_step(model, centre, upoints, mass_matrix, rng, nuts_kwargs, ck)
        if pymc_kwargs.get("trace") is None and pymc_kwargs.get("var_names") is None:
            pymc_kwargs["trace"] = _chain_trace(model, upoints[0])


def _set_external_compile_kwargs(nuts_sampler, pymc_kwargs):
    """nutpie / numpyro / blackjax: their compile options in ``pymc_kwargs``, in place."""
    ck = dict(pymc_kwargs.pop("compile_kwargs", None) or {})
    if nuts_sampler == "nutpie":
        ck.setdefault("jitter_rvs", set())
    if ck:
        pymc_kwargs["compile_kwargs"] = ck


def _to_datatree(idata, cfg, nuts_sampler, seed_record, init, log_likelihood="auto"):
    w, m, c, extra, extra_dims = _posterior_arrays(idata, cfg)
    stats = _sample_stats(idata)
    attrs = {
        "model": cfg.model,
        "n_components": cfg.n_components,
        "covariance": cfg.covariance,
        "covariance_prior": cfg.covariance_prior,
        "prior": cfg.prior.to_json(),
        "nuts_sampler": nuts_sampler,
        "random_seed": -1 if seed_record is None else int(seed_record),
    }
    if cfg.truncation is not None:
        attrs["truncation"] = cfg.truncation
    if getattr(cfg, "noise_volume", None) is not None:
        # the pointwise density includes the noise component's w_0 / V (from_arrays)
        attrs["noise_volume"] = float(cfg.noise_volume)
    sampling_time = idata["posterior"].attrs.get("sampling_time")
    if sampling_time is not None:
        attrs["sampling_time"] = float(sampling_time)
    dt = from_arrays(
        w,
        m,
        c,
        cfg.X,
        feature_names=cfg.feature_names,
        attrs=attrs,
        extra=extra,
        extra_dims=extra_dims,
        sample_stats=stats or None,
        log_likelihood=log_likelihood,
    )
    if "stick" in dt["posterior"].dims:
        dt["posterior"] = (
            dt["posterior"].to_dataset().assign_coords(stick=np.arange(cfg.n_components - 1))
        )
    if cfg.model == "dpgmm":
        _warn_truncation(cfg, w)
    _diagnose(dt, cfg, init if cfg.model == "gmm" else None)
    return dt


def _posterior_arrays(idata, cfg):
    """(w, m, c as full covariances, the model's other variables, their dims) from PyMC's."""
    post_ds = idata["posterior"].to_dataset()
    post = {
        name: post_ds[name].transpose("chain", "draw", ...).values for name in post_ds.data_vars
    }
    dims = {
        name: [d for d in post_ds[name].dims if d not in ("chain", "draw")]
        for name in post_ds.data_vars
    }
    w = post["weights"]
    m = post["means"]
    c = _full_covariances(cfg, post)
    extra = {k: v for k, v in post.items() if k not in ("weights", "means", "covariances")}
    extra_dims = {k: dims[k] for k in extra}
    if cfg.model == "dpgmm":
        extra["n_occupied"] = map_occupied(cfg.X, w, m, c)
        extra_dims["n_occupied"] = []
    return w, m, c, extra, extra_dims


def _sample_stats(idata):
    """The (chain, draw) sampler statistics bayesmix keeps (``_STATS``)."""
    stats = {}
    if "sample_stats" in idata.children:
        ss = idata["sample_stats"].to_dataset()
        for name in _STATS:
            if name in ss.data_vars and set(ss[name].dims) == {"chain", "draw"}:
                stats[name] = ss[name].transpose("chain", "draw").values
    return stats


def _warn_truncation(cfg, w):
    """Warn when the DP's last stick-breaking component keeps posterior weight."""
    last = float(w[..., -1].mean())
    if last > 0.01:
        warnings.warn(
            f"The last of the {cfg.n_components} stick-breaking components keeps posterior "
            f"mean weight {last:.3f} > 0.01: the truncation is too small. Increase "
            f"truncation (e.g. bm.build_dpgmm(X, truncation={2 * cfg.n_components})).",
            TruncationWarning,
            stacklevel=4,
        )
