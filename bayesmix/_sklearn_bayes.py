"""scikit-learn's ``BayesianGaussianMixture`` over bayesmix: variational inference
(:func:`bayesmix.fit_vi`) by default, MCMC (:func:`bayesmix.sample`) with
``inference="mcmc"``. Public as :class:`bayesmix.sklearn.BayesianGaussianMixture`."""

from __future__ import annotations

import numpy as np

from bayesmix._sklearn_base import (
    _INIT_PARAMS,
    _check_covariance_type,
    _DensityEstimator,
    _draw_mixture,
    _native_covariances,
    _rows_per_chunk,
    _seed,
    _validate,
    _validate_fitted,
    check_is_fitted,
)

__all__ = ["BayesianGaussianMixture"]

#: fitted attributes that only a VI fit sets (removed by an MCMC refit)
_VI_ONLY = (
    "vi_result_",
    "precisions_",
    "precisions_cholesky_",
    "converged_",
    "n_iter_",
    "lower_bound_",
    "lower_bounds_",
    "weight_concentration_prior_",
    "weight_concentration_",
    "mean_precision_prior_",
    "mean_precision_",
    "mean_prior_",
    "degrees_of_freedom_prior_",
    "degrees_of_freedom_",
    "covariance_prior_",
)

_INFERENCE = ("vi", "mcmc")
_WEIGHT_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
_SK_PRIOR_PARAMS = (
    "weight_concentration_prior",
    "mean_precision_prior",
    "mean_prior",
    "degrees_of_freedom_prior",
    "covariance_prior",
)


class BayesianGaussianMixture(_DensityEstimator):
    """Bayesian Gaussian mixture with scikit-learn's interface: variational inference by
    default (:func:`bayesmix.fit_vi`), MCMC with ``inference="mcmc"``.

    ``inference="vi"`` (default) fits the mean-field posterior by CAVI, scikit-learn's
    method, with scikit-learn's parameters and fitted attributes; for full covariances
    the updates are scikit-learn's (tested to ~1e-10 from the same responsibilities),
    except that the truncated DP's last stick is 1 (Blei & Jordan), see
    :mod:`bayesmix.em._vi`. ``vi_result_`` is the :class:`bayesmix.VIResult`.

    ``inference="mcmc"`` builds :func:`bayesmix.build_gmm` (or
    :func:`bayesmix.build_dpgmm` for the DP), fits the EM MAP under the model's prior
    (:func:`bayesmix.fit_em`), samples from it with :func:`bayesmix.sample`, and
    relabels the draws against the EM fit (:func:`bayesmix.relabel`). Predictions
    average over the posterior draws; ``idata_`` is the relabelled posterior DataTree.

    Parameters
    ----------
    n_components : int, default 1
        K of the finite mixture, or the truncation of the DP.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
        VI tied: one covariance with ``nu_0 + N`` degrees of freedom (scikit-learn uses
        ``nu_0 + N / K``).
    tol : float, default 1e-3
        VI: stop when the ELBO (a total over the rows, as scikit-learn's lower bound)
        changes by at most ``tol``.
    reg_covar : float, default 1e-6
        VI: added, times N_k, to the diagonal of each component's scatter (scikit-learn's
        convention; 0 for exact CAVI).
    max_iter : int, default 100
        VI updates.
    n_init : int, default 1
        VI runs from independent starts; the highest ELBO wins.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default "kmeans"
        VI start (``"random_from_data"``: K distinct random rows as means).
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}
        Default ``"dirichlet_process"`` (scikit-learn's): the truncated stick-breaking DP
        with ``n_components`` sticks; ``"dirichlet_distribution"``: a finite mixture.
    weight_concentration_prior : float, optional
        Dirichlet parameter (finite) or the DP's fixed concentration; default
        ``1 / n_components``. With ``inference="mcmc"`` the DP's concentration keeps
        the Gamma prior of ``GMMPrior.dp_concentration``.
    mean_precision_prior : float, optional
        :math:`\\kappa_0` (``GMMPrior.mean_shrinkage``); default 1.
    mean_prior : array_like, shape (D,), optional
        Default: the data mean.
    degrees_of_freedom_prior : float, optional
        :math:`\\nu_0` (``GMMPrior.dof``); default D.
    covariance_prior : float or array_like, optional
        The inverse-Wishart scale (``GMMPrior.scale``): (D, D) full and tied, (D,) diag,
        a float spherical. Default: the data covariance (its diagonal for diag, the mean
        variance for spherical), as scikit-learn.
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None
    warm_start : bool, default False
        VI: start ``fit`` from the responsibilities of the previous fit (``n_init``
        ignored), as scikit-learn.
    verbose : int, default 0
        VI: print the ELBO every 10 updates when positive.
    verbose_interval : int, default 10
        Accepted for scikit-learn's API (the interval is 10).
    inference : {"vi", "mcmc"}, default "vi"
    prior : GMMPrior, optional
        A :class:`bayesmix.GMMPrior` instead of scikit-learn's five prior parameters
        (give one or the other); with the DP, its ``dp_concentration`` Gamma prior is
        then used (VI: a factor q(alpha)). With ``inference="mcmc"`` and neither: the
        builders' data-scaled prior (:meth:`bayesmix.GMMPrior.from_data`).
    draws, tune, chains : int, default 1000, 1000, 4
        MCMC: as in :func:`bayesmix.sample`.
    sampler : str, optional
        MCMC: passed to :func:`bayesmix.sample` as ``sampler`` (``None``: its default
        for the model).
    truncation : int, optional
        Fit the DP with this many sticks (instead of ``n_components``). With
        ``inference="mcmc"`` its labels are not relabelled (stick order;
        :func:`bayesmix.relabel` and :func:`bayesmix.membership` refuse DP fits):
        ``predict_proba`` then averages the per-draw memberships as they are, and the
        label-invariant :func:`bayesmix.coclustering` (``idata_``) is the sound summary;
        the EM start is :func:`bayesmix.sample`'s own (``em_result_`` is ``None``).
    progressbar : bool, default False
        MCMC only.

    Attributes
    ----------
    weights_, means_ : ndarray, shape (K,), (K, D)
        Posterior means.
    covariances_ : ndarray
        scikit-learn's per-type shapes. VI: scikit-learn's ``E[Lambda_k]^{-1} = Psi_k /
        nu_k`` (``vi_result_.covariances`` are the posterior means); MCMC: posterior
        means.
    precisions_, precisions_cholesky_ : ndarray
        VI: ``E[Lambda_k]`` and its upper Cholesky factor, scikit-learn's shapes.
    converged_, n_iter_, lower_bound_, lower_bounds_ :
        VI: the run's convergence, updates, final ELBO (with every constant, so not equal
        to scikit-learn's, which leaves constants out) and the ELBO after every update.
    weight_concentration_prior_, weight_concentration_ :
        VI: the prior and posterior Dirichlet parameters (K,), or for the DP the fixed
        concentration (or the Gamma prior's (shape, rate)) and the sticks' Beta
        parameters as a tuple of two arrays of length K, the last stick
        ``Beta(1 + N_K, 0)`` (the point mass at 1 of the truncation).
    mean_precision_prior_, mean_precision_, mean_prior_, degrees_of_freedom_prior_,
    degrees_of_freedom_, covariance_prior_ :
        VI: the prior and the variational parameters, as scikit-learn names them.
    vi_result_ : VIResult
        VI only.
    idata_ : xarray.DataTree
        MCMC only: the posterior (relabelled against ``em_result_`` for a finite mixture).
    em_result_ : EMResult or None
        MCMC only: the EM MAP start.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, shape (D,)
        Only when ``X`` had string column names.

    Examples
    --------
    >>> import bayesmix as bm
    >>> from bayesmix.sklearn import BayesianGaussianMixture
    >>> X = bm.load_old_faithful().to_numpy()
    >>> bgm = BayesianGaussianMixture(n_components=6, random_state=0).fit(X)
    >>> int((bgm.weights_ > 0.05).sum())
    2
    >>> mc = BayesianGaussianMixture(2, inference="mcmc", draws=100, tune=100, chains=2)
    >>> mc.fit(X).predict_proba(X).shape  # doctest: +SKIP
    (272, 2)
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        inference="vi",
        prior=None,
        draws=1000,
        tune=1000,
        chains=4,
        sampler=None,
        truncation=None,
        progressbar=False,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.inference = inference
        self.prior = prior
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.sampler = sampler
        self.truncation = truncation
        self.progressbar = progressbar

    def _sampler_kwargs(self):
        return {} if self.sampler is None else {"sampler": self.sampler}

    # ------------------------------------------------------------------ settings
    def _model_kind(self):
        """``(dp, K)``: whether the model is the truncated DP, and its K."""
        from bayesmix.core._validation import check_int

        if self.weight_concentration_prior_type not in _WEIGHT_PRIOR_TYPES:
            raise ValueError(
                f"weight_concentration_prior_type must be one of {list(_WEIGHT_PRIOR_TYPES)}; "
                f"got {self.weight_concentration_prior_type!r}."
            )
        if self.truncation is not None:
            return True, check_int(self.truncation, "truncation", minimum=1)
        dp = self.weight_concentration_prior_type == "dirichlet_process"
        return dp, check_int(self.n_components, "n_components", minimum=1)

    def _prior(self, X, K, covariance, dp):
        """``(GMMPrior or None, fixed DP concentration or None)`` from the parameters."""
        from bayesmix.core._priors import GMMPrior

        given = [p for p in _SK_PRIOR_PARAMS if getattr(self, p) is not None]
        if self.prior is not None:
            if given:
                raise ValueError(
                    "give either prior (a bayesmix.GMMPrior) or scikit-learn's prior "
                    f"parameters, not both; got prior and {given}."
                )
            return self.prior, None
        if self.inference == "mcmc" and not given:
            return None, None
        dof, D = self.degrees_of_freedom_prior, X.shape[1]
        if dof is not None and not dof > D - 1:  # scikit-learn's check and message
            raise ValueError(
                f"The parameter 'degrees_of_freedom_prior' should be greater than {D - 1}, "
                f"but got {dof:.3f}."
            )
        prior = GMMPrior.from_sklearn(
            X, K, covariance, **{p: getattr(self, p) for p in _SK_PRIOR_PARAMS}
        )
        alpha = prior.weight_concentration
        return prior, (alpha if dp else None)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Fit the posterior of the mixture given ``X`` (VI, or MCMC).

        Parameters
        ----------
        X : array_like, shape (N, D)
        y : ignored

        Returns
        -------
        self
        """
        if self.inference not in _INFERENCE:
            raise ValueError(
                f"inference must be one of {list(_INFERENCE)}; got {self.inference!r}."
            )
        X = _validate(self, X, reset=True, min_samples=2)
        covariance = _check_covariance_type(self.covariance_type)
        dp, K = self._model_kind()
        if K > X.shape[0]:  # scikit-learn's check and message
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = {K}, "
                f"n_samples = {X.shape[0]}"
            )
        prior, alpha = self._prior(X, K, covariance, dp)
        if self.inference == "vi":
            self._fit_vi(X, covariance, dp, K, prior, alpha)
        else:
            self._fit_mcmc(X, covariance, dp, K, prior)
        return self

    def fit_predict(self, X, y=None):
        """Fit, then return the most probable component of each row, shape (N,).

        Parameters
        ----------
        X : array_like, shape (N, D)
        y : None
            Ignored (scikit-learn's API).

        Returns
        -------
        ndarray of int, shape (N,)
        """
        return self.fit(X).predict(X)

    def _fit_vi(self, X, covariance, dp, K, prior, alpha):
        from bayesmix.em._vi import fit_vi

        if self.init_params not in _INIT_PARAMS:
            raise ValueError(
                f"init_params must be one of {list(_INIT_PARAMS)}; got {self.init_params!r}."
            )
        N = X.shape[0]
        kw = dict(
            covariance=covariance,
            prior=prior,
            max_iter=self.max_iter,
            tol=float(self.tol) / N,
            reg_covar=self.reg_covar,
            progress=bool(self.verbose),
        )
        kw.update(dict(truncation=K, dp_concentration=alpha) if dp else dict(n_components=K))
        seed = _seed(self.random_state)
        old = getattr(self, "vi_result_", None)
        same = old is not None and (old.n_components, old.covariance) == (K, covariance)
        if self.warm_start and same and (old.truncation is not None) == dp:
            res = fit_vi(X, warm_start=old, **kw)
        elif self.init_params != "random_from_data":
            res = fit_vi(X, init=self.init_params, n_init=self.n_init, random_seed=seed, **kw)
        else:
            from bayesmix.core._validation import check_int, check_n_components

            check_n_components(K, N, name="truncation" if dp else "n_components")
            rng = np.random.default_rng(seed)
            res = None
            for _ in range(check_int(self.n_init, "n_init", minimum=1)):
                means = X[rng.choice(N, size=K, replace=False)]
                fit = fit_vi(X, init=means, random_seed=rng, **kw)
                if res is None or fit.elbo > res.elbo:
                    res = fit
        self._set_vi(res, alpha)

    def _set_vi(self, res, alpha):
        from bayesmix.core._gaussian import precision_cholesky

        cov, nu, prior = res.covariance, res.degrees_of_freedom, res.prior
        self.__dict__.pop("idata_", None)  # an MCMC fit before this one
        self.__dict__.pop("em_result_", None)
        self.vi_result_ = res
        self.weights_ = np.array(res.weights)
        self.means_ = np.array(res.means)
        if cov in ("full", "tied"):
            self.covariances_ = res.scale / (nu[0] if cov == "tied" else nu[:, None, None])
            self.precisions_cholesky_ = precision_cholesky(self.covariances_)
            pc = self.precisions_cholesky_
            self.precisions_ = pc @ np.swapaxes(pc, -1, -2)
            self.covariance_prior_ = prior.scale.copy()
        else:
            self.covariances_ = res.scale / (nu[:, None] if cov == "diag" else nu)
            self.precisions_ = 1.0 / self.covariances_
            self.precisions_cholesky_ = np.sqrt(self.precisions_)
            self.covariance_prior_ = prior.covariance_scale(cov)
        self.converged_ = bool(res.converged)
        self.n_iter_ = int(res.n_iter)
        self.lower_bounds_ = list(res.elbo_history)
        self.lower_bound_ = float(res.elbo)
        if res.truncation is None:
            self.weight_concentration_prior_ = prior.weight_concentration
            self.weight_concentration_ = np.array(res.weight_concentration)
        else:
            self.weight_concentration_prior_ = (
                alpha if alpha is not None else tuple(prior.dp_concentration)
            )
            # scikit-learn's K sticks: ours and the last one, Beta(1 + N_K, 0), i.e. 1
            sticks = res.weight_concentration
            n_last = float(res.mean_precision[-1] - prior.mean_shrinkage)
            self.weight_concentration_ = (
                np.append(sticks[:, 0], 1.0 + n_last),
                np.append(sticks[:, 1], 0.0),
            )
        self.mean_precision_prior_ = prior.mean_shrinkage
        self.mean_precision_ = np.array(res.mean_precision)
        self.mean_prior_ = prior.mean.copy()
        self.degrees_of_freedom_prior_ = prior.dof
        self.degrees_of_freedom_ = float(nu[0]) if cov == "tied" else np.array(nu)

    def _fit_mcmc(self, X, covariance, dp, K, prior):
        import bayesmix as bm
        from bayesmix.core._priors import _em_compatible

        seed = _seed(self.random_state)
        kwargs = self._sampler_kwargs()
        if not dp:
            model = bm.build_gmm(X, K, covariance=covariance, prior=prior)
            cfg = model.bayesmix_config
            em = bm.fit_em(
                X,
                cfg.n_components,
                covariance=cfg.covariance,
                prior=_em_compatible(cfg.prior),
                random_seed=seed,
            )
        else:
            model = bm.build_dpgmm(X, truncation=K, covariance=covariance, prior=prior)
            cfg, em = model.bayesmix_config, None
        idata = bm.sample(
            model,
            init=em,
            draws=self.draws,
            tune=self.tune,
            chains=self.chains,
            random_seed=seed,
            progressbar=self.progressbar,
            **kwargs,
        )
        if em is not None:
            idata = bm.relabel(idata, reference=em)
        self._set_fitted(idata, em, cfg.covariance)

    def _set_fitted(self, idata, em, covariance):
        from bayesmix.mcmc._trace import get_params

        w, m, c = get_params(idata)
        for name in _VI_ONLY:  # a VI fit before this one
            self.__dict__.pop(name, None)
        self.idata_ = idata
        self.em_result_ = em
        self.weights_ = w.mean(axis=(0, 1))
        self.means_ = m.mean(axis=(0, 1))
        self.covariances_ = _native_covariances(c.mean(axis=(0, 1)), covariance)

    def _per_draw(self, X, fn, reduce):
        """Apply ``fn(X_chunk, w, m, c)`` -> (S, n, ...) over row chunks and reduce."""
        X = _validate_fitted(self, X)
        from bayesmix.mcmc._trace import flat_params

        w, m, c = flat_params(self.idata_)
        step = _rows_per_chunk(*w.shape)
        parts = [reduce(fn(X[i : i + step], w, m, c)) for i in range(0, X.shape[0], step)]
        return np.concatenate(parts, axis=-2 if parts[0].ndim > 1 else 0)

    def _vi(self):
        """The VIResult of a VI fit, or None for an MCMC fit (unfitted: NotFittedError)."""
        check_is_fitted(self)
        return getattr(self, "vi_result_", None)

    def predict_proba(self, X):
        """Membership probabilities, (N, K).

        VI: the variational ``q(z_n = k)`` (:meth:`bayesmix.VIResult.predict_proba`, as
        scikit-learn). MCMC: the posterior mean ``E[p(z_n = k | x_n, theta)]`` over the
        draws; for the training data ``bm.membership(idata_)["probability"]``.

        Parameters
        ----------
        X : array_like, shape (N, D)

        Returns
        -------
        ndarray, shape (N, K)
        """
        from bayesmix.core._gaussian import responsibilities

        if (vi := self._vi()) is not None:
            return vi.predict_proba(_validate_fitted(self, X))
        return self._per_draw(X, responsibilities, lambda P: P.mean(axis=0))

    def predict_proba_interval(self, X, prob=0.94):
        """Equal-tailed credible interval of the membership probabilities over draws
        (``inference="mcmc"`` only).

        Parameters
        ----------
        X : array_like, shape (N, D)
        prob : float, default 0.94
            Mass of the interval (quantiles ``(1 - prob)/2`` and ``(1 + prob)/2``).

        Returns
        -------
        lower, upper : ndarray, shape (N, K)
        """
        from bayesmix.core._gaussian import responsibilities

        if self._vi() is not None:
            raise AttributeError(
                "predict_proba_interval needs the posterior draws of inference='mcmc'; this "
                "estimator was fitted by variational inference."
            )
        if not (isinstance(prob, float | int) and 0 < prob < 1):
            raise ValueError(f"prob must be a number in (0, 1); got {prob!r}.")
        q = [(1 - prob) / 2, (1 + prob) / 2]
        out = self._per_draw(X, responsibilities, lambda P: np.quantile(P, q, axis=0))
        return out[0], out[1]

    def predict(self, X):
        """Component with the highest posterior mean membership, shape (N,).

        Parameters
        ----------
        X : array_like, shape (N, D)

        Returns
        -------
        ndarray of int, shape (N,)
        """
        return np.argmax(self.predict_proba(X), axis=1)

    def score_samples(self, X):
        """Log density of every row, (N,).

        VI: scikit-learn's quantity, ``log sum_k exp(E[log pi_k] + E[log N(x_n | mu_k,
        Lambda_k)])`` (:meth:`bayesmix.VIResult.score_samples` with ``kind="expected"``,
        a lower bound on the predictive density; ``vi_result_.score_samples(X)`` is the
        posterior predictive). MCMC: the posterior predictive density
        ``log (1/S) sum_s p(x_n | theta_s)`` over the draws.

        Parameters
        ----------
        X : array_like, shape (N, D)

        Returns
        -------
        ndarray, shape (N,)
        """
        from scipy.special import logsumexp

        from bayesmix.core._gaussian import log_mixture_density

        def reduce(L):
            return logsumexp(L, axis=0) - np.log(L.shape[0])

        if (vi := self._vi()) is not None:
            return vi.score_samples(_validate_fitted(self, X), kind="expected")
        return self._per_draw(X, log_mixture_density, reduce)

    def sample(self, n_samples=1):
        """Draw from the mixture with the fitted ``weights_``, ``means_``, ``covariances_``.

        Parameters
        ----------
        n_samples : int, default 1

        Returns
        -------
        X : ndarray, shape (n_samples, D)
        y : ndarray of int, shape (n_samples,)
            Component of each draw (grouped by component, as scikit-learn).
        """
        from bayesmix.core._validation import check_int

        check_is_fitted(self)
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        rng = np.random.default_rng(_seed(self.random_state))
        K, D = self.means_.shape
        cov = _full_covariances(
            self.covariances_, _check_covariance_type(self.covariance_type), K, D
        )
        return _draw_mixture(rng, n_samples, self.weights_ / self.weights_.sum(), self.means_, cov)


def _full_covariances(native, covariance, K, D):
    """(K, D, D) matrices from scikit-learn's per-type shapes."""
    native = np.asarray(native, dtype=float)
    if covariance == "full":
        return native
    if covariance == "tied":
        return np.broadcast_to(native, (K, D, D))
    var = np.broadcast_to(native[:, None], (K, D)) if covariance == "spherical" else native
    out = np.zeros((K, D, D))
    out[:, np.arange(D), np.arange(D)] = var
    return out


BayesianGaussianMixture.__module__ = "bayesmix.sklearn"  # its public home (pickles, docs)
