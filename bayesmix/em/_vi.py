r"""Mean-field variational inference for Gaussian mixtures: :func:`fit_vi`.

Coordinate-ascent variational inference (CAVI; Bishop, *PRML*, sec. 10.2) of the
finite mixture, and of the truncated stick-breaking Dirichlet-process mixture (Blei &
Jordan 2006), under the conjugate :class:`bayesmix.GMMPrior` of :func:`bayesmix.fit_em`
(MAP) and of the PyMC builders and Gibbs samplers. The updates, the expectations and the
ELBO are written in :mod:`bayesmix.em._vi_math`. The E-step is EM's E-step
(:meth:`bayesmix.core._gaussian.GaussianDensity.estep`, numpy or the fused numba pass)
with per-component log weights ``E[log pi_k] + c_k`` and covariances ``Psi_k / nu_k``.

scikit-learn's ``BayesianGaussianMixture`` and :class:`GMMPrior`
------------------------------------------------------------------
The same model for ``covariance="full"``, with

=================================  ========================================
scikit-learn                       :class:`bayesmix.GMMPrior`
=================================  ========================================
``mean_prior``                     ``mean``
``mean_precision_prior``           ``mean_shrinkage``
``degrees_of_freedom_prior``       ``dof``
``covariance_prior``               ``scale`` (the inverse-Wishart scale)
``weight_concentration_prior``     ``weight_concentration`` (finite), ``dp_concentration=``
                                   keyword of :func:`fit_vi` (DP, fixed)
=================================  ========================================

and these differences: scikit-learn's ``covariances_`` is ``Psi_k / nu_k`` (ours is the
posterior mean ``Psi_k / (nu_k - D - 1)``); its DP gives the last stick a Beta
distribution (mass beyond the truncation that no component carries) where ours sets
it to 1 (Blei & Jordan); its ``reg_covar`` defaults to 1e-6 (``fit_vi``'s to 0); its
diag and spherical models use the Wishart's ``E[log|Lambda|]`` and ``nu_k = nu_0 + N_k``
where the inverse-gamma posteriors of :mod:`bayesmix.core._priors` give
``D (psi(nu_k/2) - log(Psi_kj/2))`` and, for spherical, ``nu_k = nu_0 + D N_k``; its
tied model has ``nu = nu_0 + N / K`` (ours: ``nu_0 + N``, one inverse-Wishart);
scikit-learn's lower bound leaves out constants.
"""

from __future__ import annotations

import numpy as np

from bayesmix.core import _gaussian as gs
from bayesmix.core._dask import is_dask
from bayesmix.core._priors import GMMPrior
from bayesmix.core._validation import (
    MissingValueError,
    check_covariance_type,
    check_data,
    check_int,
    check_n_components,
    check_positive,
    check_random_state,
    check_sample_weight,
)
from bayesmix.em import _vi_math as vm
from bayesmix.em._checks import _parse_init
from bayesmix.em._loop import _NUMBA_MIN_WORK, _initial_resp, _numba_available, _stats_from_resp
from bayesmix.em._starts import initial_labels, nearest, stats_from_labels
from bayesmix.em._vi_loop import (
    VI_COVARIANCES,
    cavi_loop,
    check_components,
    check_vi_prior,
    vi_result,
)
from bayesmix.em._vi_result import VIResult

__all__ = ["fit_vi"]

_ENGINES = ("auto", "numpy", "numba")


def fit_vi(
    X,
    n_components=None,
    *,
    covariance="full",
    prior=None,
    truncation=None,
    dp_concentration=None,
    init="kmeans",
    n_init=1,
    max_iter=1000,
    tol=1e-6,
    random_seed=None,
    engine="auto",
    sample_weight=None,
    reg_covar=0.0,
    progress=False,
    warm_start=None,
):
    r"""Fit a Gaussian mixture by mean-field variational inference (CAVI).

    The variational posterior :math:`q(z)\,q(\pi)\prod_k q(\mu_k, \Sigma_k)` of a finite
    mixture with Dirichlet weights (Bishop, *PRML*, sec. 10.2), or, with ``truncation``,
    of a Dirichlet-process mixture truncated at ``truncation`` sticks (Blei & Jordan
    2006, with q(alpha) for the concentration's Gamma prior), under the conjugate
    :class:`bayesmix.GMMPrior` that :func:`bayesmix.fit_em` (MAP) and the PyMC models
    use. Updates and ELBO: :mod:`bayesmix.em._vi_math`; scikit-learn's parameters:
    :mod:`bayesmix.em._vi`.

    Parameters
    ----------
    X : array_like, pandas.DataFrame or dask.array.Array, shape (N, D)
        Data; NaN is refused (missing values are not handled by VI yet). A Dask array is
        fitted chunk by chunk (:mod:`bayesmix.em._vi_dask`: one pass per update, EM's
        E-step on every chunk, the statistics summed by a tree reduction); the result's
        ``labels`` are then a lazy Dask array.
    n_components : int, optional
        K of a finite mixture, ``1 <= K <= N``. Leave it out with ``truncation`` (or give
        the same number).
    covariance : {"full", "tied", "diag", "spherical"}, default "full"
        Covariance type (``"diagonal"`` is accepted for ``"diag"``). ``"tied"``: one
        :math:`\Sigma \sim \mathrm{InvWishart}` shared by the components, with
        :math:`q(\Sigma)\prod_k q(\mu_k \mid \Sigma)`.
    prior : GMMPrior, optional
        Conjugate prior; default ``GMMPrior.from_data(X, K)`` with K the number of
        components (the truncation for the DP). ``weight_concentration`` is the
        symmetric Dirichlet parameter (any value > 0); ``dp_concentration`` the
        (shape, rate) of the DP concentration's Gamma prior.
    truncation : int, optional
        Fit the truncated stick-breaking DP mixture with this many components.
    dp_concentration : float, optional
        DP only: a fixed concentration alpha (sticks ~ Beta(1, alpha)) instead of the
        Gamma prior ``prior.dp_concentration`` (scikit-learn's
        ``weight_concentration_prior`` is a fixed alpha).
    init : str or ndarray, default "kmeans"
        Initial responsibilities, from which the first update is computed: one of
        ``"kmeans"``, ``"kmeans-standardized"``, ``"k-means++"``, ``"random"``,
        ``"hierarchical"`` (as in :func:`bayesmix.fit_em`), an (N, K) responsibility
        matrix or (K, D) means (rows to the nearest).
    n_init : int, default 1
        Runs from independent starts; the highest final ELBO wins.
    max_iter : int, default 1000
        Maximum number of updates (an M-step then an E-step) per run.
    tol : float, default 1e-6
        Stop when the ELBO changes by at most ``tol`` per observation.
    random_seed : int or numpy.random.Generator, optional
    engine : {"auto", "numpy", "numba"}, default "auto"
        The E-step pass (EM's); ``"auto"``: numba when ``N * K >= 20000``.
    sample_weight : array_like, shape (N,), optional
        Non-negative frequency weights (as in :func:`bayesmix.fit_em`).
    reg_covar : float, default 0
        Added, times N_k, to the diagonal of every component's scatter in the update of
        :math:`\Psi_k` (scikit-learn's ``reg_covar``, whose default is 1e-6). 0 is exact
        CAVI; a positive value perturbs the update, so the ELBO may then decrease by
        about that much between updates.
    progress : bool, default False
        Print the ELBO every 10 updates to stderr.
    warm_start : VIResult, optional
        Continue an earlier ``fit_vi`` run (same K, covariance, finite or DP; its prior
        when ``prior`` is None; ``init`` and ``n_init`` are ignored). On the same data
        (same rows: the same N and mean) the run goes on from its last E-step exactly
        as if ``max_iter`` had been larger, with its last ELBO as the reference of the
        first tolerance test; on other data it starts from its responsibilities
        ``warm_start.predict_proba(X)``.

    Returns
    -------
    VIResult

    Raises
    ------
    ValueError
        Bad data (NaN, inf, 1-D), a number of components outside ``1..N``, neither or
        conflicting ``n_components`` and ``truncation``, an LKJ prior, unknown settings.

    Examples
    --------
    >>> import bayesmix as bm
    >>> X = bm.load_old_faithful()
    >>> fit = bm.fit_vi(X, 2, random_seed=0)
    >>> [round(float(w), 2) for w in sorted(fit.weights)]
    [0.36, 0.64]
    >>> dp = bm.fit_vi(X, truncation=10, random_seed=0)
    >>> int((dp.weights > 0.05).sum())
    2
    """
    if is_dask(X):
        settings = {k: v for k, v in locals().items() if k not in ("X", "n_components")}
        from bayesmix.em._vi_dask import fit_vi_dask

        return fit_vi_dask(X, n_components, **settings)
    try:
        X, feature_names = check_data(X, return_names=True, missing="error")
    except MissingValueError as err:
        raise MissingValueError(
            f"{err} fit_vi does not handle missing values: fill them first (bm.impute of a "
            "bm.fit_em fit) or drop the rows; bm.fit_em fits NaN as missing at random."
        ) from None
    N, D = X.shape
    covariance = check_covariance_type(covariance, allowed=VI_COVARIANCES)
    K, dp = check_components(n_components, truncation, N)
    w = check_sample_weight(sample_weight, N)
    if w is not None and np.count_nonzero(w) < K:
        check_n_components(K, int(np.count_nonzero(w)), name="truncation" if dp else "n_components")
    n_init = check_int(n_init, "n_init", minimum=1)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_positive(tol, "tol", strict=False)
    reg_covar = check_positive(reg_covar, "reg_covar", strict=False)
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {list(_ENGINES)}; got {engine!r}.")
    if dp_concentration is not None:
        if not dp:
            raise ValueError(
                "dp_concentration is for the Dirichlet-process mixture (truncation=T); for a "
                "finite mixture set prior.weight_concentration."
            )
        dp_concentration = check_positive(dp_concentration, "dp_concentration")
    if isinstance(init, str) and init == "auto":
        raise ValueError(
            "init='auto' (fit_em's start portfolio) is not available in fit_vi; use one of "
            "'kmeans', 'kmeans-standardized', 'k-means++', 'random', 'hierarchical' or an "
            "array, and n_init for restarts."
        )
    if warm_start is not None:
        _check_warm_start(warm_start, K, covariance, dp)
        init, n_init = warm_start.predict_proba(X), 1
        prior = warm_start.prior if prior is None else prior
    init_parsed, init_name = _parse_init(init, X, K, n_init)
    rng = check_random_state(random_seed)
    if prior is None:
        prior = GMMPrior.from_data(X, K)
    prior = check_vi_prior(prior, D, covariance)
    if engine == "auto":
        engine = "numba" if N * K >= _NUMBA_MIN_WORK and _numba_available() else "numpy"

    shift = X.mean(axis=0) if w is None else np.average(X, axis=0, weights=w)
    Xc = np.ascontiguousarray(X - shift)
    pr = vm.VIPrior.from_prior(prior, covariance, shift, dp_concentration)
    if isinstance(init_parsed, tuple) and init_parsed[0] == "means":  # the fitting frame
        init_parsed = ("means", init_parsed[1] - shift)
    n_eff = float(N if w is None else w.sum())
    best = None
    same = (
        warm_start is not None
        and warm_start.n_obs == N
        and np.allclose(warm_start._shift, shift, rtol=1e-12, atol=0)
    )
    for r in range(n_init):
        if same:  # continue the run from its last E-step
            stats, wq, prev = warm_start._stats, warm_start._w, warm_start.elbo
            init_name = "warm_start"
        else:
            stats, wq, prev = _initial_stats(init_parsed, Xc, K, rng, covariance, w), None, None
        args = (pr, covariance, engine, w, max_iter, tol * n_eff, reg_covar, progress, r, dp)
        run = _cavi(Xc, stats, *args, wq=wq, prev=prev)
        if best is None or run["elbo"] > best["elbo"]:
            best = run
    return vi_result(
        best,
        pr,
        prior,
        covariance,
        dp,
        shift,
        N,
        feature_names,
        tol,
        max_iter,
        init_name,
        random_seed,
    )


# =========================================================================== CAVI
def _initial_stats(init, X, K, rng, covariance, w):
    """Sufficient statistics of the start: by groups for a hard partition without
    weights (O(N D^2), :func:`bayesmix.em._starts.stats_from_labels`), else from the
    responsibilities; the same draws from ``rng`` either way."""
    etype = vm.estep_type(covariance)
    if w is None and ((isinstance(init, str) and init != "random") or init[0] == "means"):
        if isinstance(init, str):
            labels = initial_labels(init, X, K, rng, covariance)
        else:
            labels = nearest(X, init[1])
        return stats_from_labels(X, etype, labels, K)
    resp, _ = _initial_resp(init, X, K, rng, covariance, w)
    return _stats_from_resp(X, etype, resp, sample_weight=w)


def _check_warm_start(previous, K, covariance, dp):
    if not isinstance(previous, VIResult):
        raise TypeError(
            f"warm_start must be a VIResult of bm.fit_vi; got {type(previous).__name__}."
        )
    got = (previous.n_components, previous.covariance, previous.truncation is not None)
    if got != (K, covariance, dp):
        raise ValueError(
            f"warm_start was fitted with K={previous.n_components}, "
            f"covariance={previous.covariance!r}, truncation={previous.truncation}; this fit "
            f"asks for K={K}, covariance={covariance!r}, "
            f"{'truncation=' + str(K) if dp else 'a finite mixture'}: give the same settings."
        )


def _cavi(
    X,
    stats,
    pr,
    covariance,
    engine,
    w,
    max_iter,
    tol_total,
    reg_covar,
    progress,
    run_id,
    dp,
    wq=None,
    prev=None,
):
    """One CAVI run on in-memory data from the start's statistics (EM's E-step pass)."""
    dens = gs.backend(engine)
    etype = vm.estep_type(covariance)
    labels = np.empty(X.shape[0], dtype=np.int64)

    def estep(weights, means, prec):
        return dens.estep(X, etype, weights, means, prec, labels, w)

    run = cavi_loop(
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
        wq=wq,
        prev_elbo=prev,
    )
    run["labels"] = labels
    return run
