r"""Expectation-maximisation for Gaussian mixtures: maximum likelihood and MAP.

:func:`fit_em` fits a Gaussian mixture with ``spherical``, ``diag`` (alias
``diagonal``), ``full`` or ``tied`` covariance by EM, either by maximum likelihood
(``prior=None``) or as the maximum a posteriori (MAP) estimate under a conjugate
:class:`bayesmix.GMMPrior` (Dirichlet weights, normal-inverse-Wishart /
normal-inverse-gamma means and covariances; the M-step is exactly the one documented
in :mod:`bayesmix.core._priors`). With the same prior object, ``fit_em`` returns the mode of
the posterior that :func:`bayesmix.build_gmm` samples, in the parameterisation
weights / means / covariance matrices (or variances).

Everything goes through precision Cholesky factors (see :mod:`bayesmix.core._covariance`):
the log-determinant is a sum of logs, and responsibilities are computed in log space
with a log-sum-exp, so points thousands of standard deviations from every component
are handled exactly. Large data go through a fused numba pass
(:mod:`bayesmix.core._estep_kernels`) that computes the log densities, responsibilities and
sufficient statistics in one sweep over chunks of rows, in parallel; small data use a
plain numpy path (the reference the numba path is tested against).
"""

from __future__ import annotations

import numpy as np

from bayesmix.core import _gaussian as gs
from bayesmix.core._missing import missing_patterns
from bayesmix.core._validation import (
    MissingValueError,
    check_data,
    check_missing,
    check_n_components,
    check_sample_weight,
)
from bayesmix.em import (
    _dask,  # imports no Dask itself (only on Dask input)
    _missing,
)
from bayesmix.em._checks import (
    _check_arguments,
    _check_constant_features,
    _dask_keywords,
    _em_result,
    _map_prior,
    _model_settings,
    _noise_volume,
    _singular_under_prior,
    _warn_fit_problems,
)
from bayesmix.em._loop import (
    _NUMBA_MIN_WORK,
    _best_of_portfolio,
    _best_of_restarts,
    _numba_available,
    _RunSettings,
)

__all__ = ["fit_em"]


# =========================================================================== public
def fit_em(
    X,
    n_components,
    *,
    covariance="full",
    prior=None,
    n_init=1,
    init="auto",
    max_iter=500,
    tol=1e-6,
    reg_covar=None,
    random_seed=None,
    progress=False,
    engine="auto",
    sample_weight=None,
    noise=False,
    persist=None,
    missing="mar",
):
    r"""Fit a Gaussian mixture by EM: maximum likelihood, or MAP under a conjugate prior.

    Parameters
    ----------
    X : array_like, pandas.DataFrame or dask.array.Array, shape (N, D)
        Data; DataFrame column names become ``feature_names``. A ``dask.array.Array``
        (or an ``xarray.DataArray`` backed by one, e.g. ``dask.array.from_zarr(store)``)
        is fitted chunk by chunk: each EM iteration is one Dask computation in which
        every row chunk runs the E-step and returns its sufficient statistics, summed by
        a tree reduction, with the M-step on the client (:mod:`bayesmix.em._dask`); the
        initialisation is k-means|| (:func:`bayesmix.kmeans` on Dask input). The result
        is the same :class:`EMResult`, with ``labels`` a lazy Dask array.
    n_components : int
        Number of components K, ``1 <= K <= N``.
    covariance : {"full", "diag", "spherical", "tied"} or an mclust model name, default "full"
        Covariance type (``"diagonal"`` is accepted for ``"diag"``), or one of mclust's 14
        models ``Sigma_k = lambda_k D_k A_k D_k^T`` (Celeux & Govaert 1995; any case):
        ``"EII"``, ``"VII"``, ``"EEI"``, ``"VEI"``, ``"EVI"``, ``"VVI"``, ``"EEE"``,
        ``"VEE"``, ``"EVE"``, ``"VVE"``, ``"EEV"``, ``"VEV"``, ``"EVV"``, ``"VVV"`` (volume,
        shape, orientation: Equal, Variable or Identity). ``VII``, ``VVI``, ``VVV`` and
        ``EEE`` are ``spherical``, ``diag``, ``full`` and ``tied``; the ten others have
        the M-steps of :mod:`bayesmix.core._mclust_models`, by maximum likelihood, and
        with a prior (mclust's MAP M-steps) for EII, EEI, VEI, EVI, EEV and VEV (mclust
        has no prior for EVE, VEE, VVE, EVV). ``EMResult.model_name`` records the model.
    prior : GMMPrior, optional
        ``None`` (default): maximum likelihood. A :class:`bayesmix.GMMPrior` with
        ``covariance_prior="conjugate"`` and ``weight_concentration >= 1``: the MAP
        estimate, with the M-step of :mod:`bayesmix.core._priors`, i.e. the mode of the
        posterior :func:`bayesmix.build_gmm` samples with the same prior.
    n_init : int, default 1
        Number of EM runs from independent initialisations; the run with the highest
        final objective is returned. With ``init="auto"``: the number of k-means starts
        of each kind in the portfolio. Must be 1 when ``init`` is an array.
    init : str or ndarray, default "auto"
        How EM starts; the first M-step is computed from initial responsibilities, as
        in scikit-learn. ``EMResult.init_strategy`` records the start that won.

        * ``"auto"``: a portfolio whose best objective wins, so that the result does
          not depend on the units of the features: mclust's ``"hierarchical"`` start,
          ``n_init`` ``"kmeans-standardized"`` and ``n_init`` ``"kmeans"`` starts, and
          one ``"random"`` start (one start when K=1). Every start gets 20 EM updates;
          the two best of these short runs, and the hierarchical one (mclust's own
          start) always, then run to convergence (on small data, N x K <= 100,000,
          every start runs to convergence: milliseconds). Budget: the k-means runs, the
          agglomeration (at most 2000 rows, under a second) and ``20 * (2 n_init + 2)``
          EM updates, plus at most three runs to convergence. Measured
          (``benchmarks/RESULTS.md``, section "mclust"): 1.1x ``init="kmeans"`` with
          the same ``n_init=10`` over 144 small fits; with ``n_init=1``, 1.7x one
          k-means-started fit on n=200,000, d=10, K=8, and up to ~8x on tiny data
          (Old Faithful, 0.27 s instead of 0.03 s). EM updates cost the same as from
          any other start.
        * ``"hierarchical"``: model-based hierarchical agglomeration (Fraley 1998,
          criterion ``"VVV"``) on the standardised, SVD-rotated data, as R mclust's
          default (``hc(X, "VVV", use = "SVD")``), cut at K clusters: deterministic
          and invariant to the units. It needs ``8 n^2`` bytes for n rows, so above
          2000 rows a random subsample of 2000 is agglomerated and the other rows go
          to the most probable cluster under Gaussians fitted to it.
        * ``"kmeans-standardized"``: one k-means run (:func:`bayesmix.kmeans`) on the
          data with every feature centred and scaled to unit variance, its labels
          one-hot.
        * ``"kmeans"``: one k-means run on the data as given (the default before
          ``"auto"``; a feature with large units dominates it).
        * ``"k-means++"``: k-means++ seeds, each point assigned to its nearest seed.
        * ``"random"``: uniform random responsibilities, rows normalised.
        * an (N, K) array of responsibilities (non-negative, rows summing to 1), or a
          (K, D) array of initial means (points assigned to the nearest mean give the
          initial weights and covariances; the means are used as given).
    max_iter : int, default 500
        Maximum number of EM updates per run.
    tol : float, default 1e-6
        Convergence tolerance on the change of the objective *per observation*: a run
        stops when ``|objective_t - objective_{t-1}| / N <= tol`` (the objective is the
        total log-likelihood for ML, the log posterior for MAP). This is
        scikit-learn's convention for ``tol`` (it uses the mean log-likelihood).
    reg_covar : float, optional
        Non-negative value added to the diagonal of every covariance after each M-step.
        Default ``1e-6`` for maximum likelihood and ``0`` for MAP (the prior keeps the
        covariances positive definite; a positive value moves the estimate slightly off
        the exact posterior mode).
    random_seed : int or numpy.random.Generator, optional
        Seed of the initialisations.
    progress : bool, default False
        Print restarts and the objective every 10 iterations to stderr.
    engine : {"auto", "numpy", "numba"}, default "auto"
        ``"numpy"``: the reference path; ``"numba"``: a fused parallel pass (compiled
        on first use, cached on disk); ``"auto"``: numba when ``N * K >= 20000``.
        Both give the same result up to rounding.
    sample_weight : array_like, shape (N,), optional
        Non-negative frequency weights: row n counts ``sample_weight[n]`` times in the
        log-likelihood ``sum_n w_n log p(x_n)`` and in the sufficient statistics, so
        integer weights give the fit of the data with duplicated rows (binned or
        deduplicated data). Rows with weight 0 are dropped from the fit (they still get
        a label). The convergence tolerance and the ML/MAP M-steps use ``n = sum(w)``;
        :meth:`EMResult.bic` / ``icl`` take the same ``sample_weight`` (and ``n = sum(w)``).
        The result records ``total_weight`` but keeps no copy of the weights. With Dask
        ``X``: a 1-D ``dask.array.Array`` (rechunked to ``X``'s row chunks) or an
        in-memory array; its chunks travel with ``X``'s rows into every pass and its
        values are checked in the first pass over the data, with the same errors.
    noise : bool or float, default False
        Add a noise component (Banfield & Raftery 1993, mclust's ``EMclustN``): a uniform
        density ``1 / V`` with its own weight, for outliers and background points.
        ``True``: ``V`` is the volume of the data's bounding box (the product of the
        feature ranges over the rows with positive weight; mclust's ``hypvol`` takes the
        smaller of this and the box of the principal components); a positive finite
        number: that volume. Every point starts with noise responsibility 0.1. The
        result's ``predict_proba`` then has K + 1 columns (noise last), ``predict``
        labels noise points ``-1``, ``score_samples`` includes the noise density and the
        BIC counts one more parameter. With a prior the Dirichlet is over the K + 1
        weights.
        Both give the same result up to rounding. On Dask input, the engine of the
        per-chunk E-step (``"auto"``: numba).
    persist : bool, optional
        Dask input only. ``True``: ``X.persist()`` once, so the data are read from
        storage once and every iteration reads the workers' memory (fast; needs
        ``X.nbytes`` of cluster memory). ``False``: the data are streamed from storage
        (or recomputed from their graph) in every pass: memory per worker is one chunk,
        and every iteration costs a full read of ``X`` (about ``X.nbytes`` of I/O).
        ``None`` (default): persist when ``X.nbytes`` is below half
        (``bayesmix.em._dask.PERSIST_FRACTION``) of the available memory (the workers'
        memory limits under a ``dask.distributed`` client, else the machine's).

    missing : {"mar", "error"}, default "mar"
        ``"mar"``: NaN entries (and ``pd.NA``) are missing at random, fitted by the
        observed-data likelihood (EM of Ghahramani & Jordan 1994: each row's E-step on
        its observed coordinates, rows grouped by missingness pattern; the M-step from
        the expected sufficient statistics, with the conditional covariance of the
        missing block). ``log_likelihood``, the criteria and the prediction methods are
        then the observed-data quantities (BIC's n is the number of rows), and
        ``EMResult.n_missing`` records the number of gaps. The starts see the data with
        each gap filled by its feature's observed mean. A row with no observed entry is
        an error naming it. A noise component's box has the observed feature ranges as
        sides (scaled to a given volume), and its density on a row with gaps is the
        marginal on the observed sides. Data without NaN are fitted exactly as before.
        ``"error"``: NaN is refused, as infinite values always are. Dask input with NaN
        raises ``NotImplementedError`` (compute it into memory first).

    Returns
    -------
    EMResult

    Raises
    ------
    ValueError
        Bad data (NaN/inf, 1-D, non-numeric: see :func:`bayesmix.core._validation.check_data`),
        ``n_components`` outside ``1..N``, unknown covariance types or init, an LKJ prior
        or a prior with ``weight_concentration < 1``, or a singular covariance
        (``reg_covar=0`` and a collapsed component), with advice on what to change.

    Warns
    -----
    ConvergenceWarning
        When the returned run hit ``max_iter`` before the tolerance.
    DegenerateDataWarning
        For constant features, and for components that collapsed (see
        ``EMResult.collapsed``), with what to change.

    Notes
    -----
    ``log_posterior`` is ``log p(X | theta) + log p(theta)`` with every normalising
    constant of the likelihood and of the prior densities included (the prior is
    evaluated with scipy.stats by :meth:`GMMPrior.log_prior`); only the evidence
    ``log p(X)`` is left out. The data are centred at their mean internally (for
    numerical accuracy of the sufficient statistics); results are reported in the
    original coordinates.

    Examples
    --------
    >>> import bayesmix as bm
    >>> X = bm.load_old_faithful()
    >>> ml = bm.fit_em(X, 2, covariance="full", random_seed=0)
    >>> [round(float(w), 3) for w in sorted(ml.weights)]
    [0.356, 0.644]
    >>> mp = bm.fit_em(X, 2, prior=bm.GMMPrior.from_data(X, 2), random_seed=0)
    >>> mp.log_posterior is not None
    True

    Frequency weights (every row counted twice doubles the log-likelihood) and a
    noise component (its class is the last column of ``predict_proba``):

    >>> import numpy as np
    >>> wt = bm.fit_em(X, 2, sample_weight=np.full(len(X), 2.0), random_seed=0)
    >>> round(wt.log_likelihood / ml.log_likelihood, 6)
    2.0
    >>> vev = bm.fit_em(X, 2, covariance="VEV", random_seed=0)
    >>> vev.model_name, vev.covariance, vev.n_parameters
    ('VEV', 'full', 10)
    >>> nz = bm.fit_em(X, 2, noise=True, random_seed=0)
    >>> nz.predict_proba(X).shape
    (272, 3)
    """
    missing = check_missing(missing)
    if _dask.is_dask(X):
        return _fit_dask(X, n_components, missing, _dask_keywords(locals()))
    X, feature_names = check_data(X, return_names=True, missing=missing)
    N, D = X.shape
    w = check_sample_weight(sample_weight, N)
    K = check_n_components(n_components, N if w is None else int(np.count_nonzero(w)))
    pats = missing_patterns(X) if missing == "mar" else None
    volume = _noise_volume(noise, X if w is None else X[w > 0])
    covariance, n_init, max_iter, tol, reg_covar, init_parsed, init_name, rng = _check_arguments(
        X,
        K,
        covariance=covariance,
        prior=prior,
        n_init=n_init,
        init=init,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        random_seed=random_seed,
        engine=engine,
    )
    if engine == "auto":
        engine = "numba" if N * K >= _NUMBA_MIN_WORK and _numba_available() else "numpy"
    Xw = X if w is None else X[w > 0]
    variances = None if pats is None else np.nanvar(Xw, axis=0)
    _check_constant_features(Xw, feature_names, prior, reg_covar, variances)

    # fit in a frame centred at the data mean (accurate raw-moment statistics)
    if pats is None:
        shift = X.mean(axis=0) if w is None else np.average(X, axis=0, weights=w)
    else:  # the observed mean of every feature
        shift = _nan_average(X, w)
    Xc = np.ascontiguousarray(X - shift)
    cfg = _RunSettings(
        **_model_settings(covariance),
        n_components=K,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        engine=engine,
        progress=progress,
        prior=prior,
        shift=shift,
        map_prior=_map_prior(prior, shift, covariance),
        sample_weight=w,
        n_eff=None if w is None else float(w.sum()),
        log_noise=None if volume is None else -float(np.log(volume)),
        missing=pats,
        noise_log_sides=None if volume is None else _missing.noise_log_sides(Xw, volume, noise),
    )
    if isinstance(init_parsed, tuple) and init_parsed[0] == "means":
        init_parsed = ("means", init_parsed[1] - shift)
    try:
        if init_parsed == "auto":
            best = _best_of_portfolio(Xc, cfg, n_init, rng)
        else:
            best = _best_of_restarts(Xc, init_parsed, cfg, n_init, rng)
    except gs.SingularCovarianceError as exc:
        if prior is None:
            raise
        raise _singular_under_prior(X, feature_names, K, covariance) from exc

    data_cov = None
    if pats is not None:  # the collapse check's scale: the covariance of the filled data
        Xf = _missing.filled(Xc)
        data_cov = np.atleast_2d(np.cov(Xf, rowvar=False, bias=True, aweights=w))
    collapsed = _warn_fit_problems(best, X, cfg, data_cov)
    return _em_result(
        best,
        cfg,
        X.shape[0],
        feature_names,
        collapsed=collapsed,
        n_init=n_init,
        init=init_name,
        random_seed=random_seed,
        noise_volume=volume,
        n_missing=0 if pats is None else pats.n_missing,
    )


def _nan_average(X, w):
    """Per-feature mean of the observed entries (weighted by ``w``)."""
    obs = ~np.isnan(X)
    ww = obs.astype(float) if w is None else obs * w[:, None]
    return (np.where(obs, X, 0.0) * ww).sum(0) / ww.sum(0)


def _fit_dask(X, n_components, missing, keywords):
    """The Dask path; NaN in a Dask array under ``missing="mar"`` is not supported yet."""
    keywords.pop("missing", None)
    try:
        return _dask.fit_em_dask(X, n_components, **keywords)
    except MissingValueError as err:
        if missing == "error":
            raise
        raise NotImplementedError(
            f"fit_em on a Dask array does not handle missing values (NaN) yet ({err}). Fit "
            "in memory, where NaN entries are fitted as missing at random: "
            "bm.fit_em(X.compute(), ...), or drop the rows with gaps; missing='error' "
            "refuses them with a ValueError."
        ) from err


# =========================================================================== fit_em's stages
