"""scikit-learn estimators over bayesmix: KMeans, GaussianMixture, BayesianGaussianMixture.

For people who come from scikit-learn: the estimators take scikit-learn's constructor
arguments where the meaning is the same, expose scikit-learn's fitted attributes, and
plug into ``Pipeline``, ``GridSearchCV``, ``clone`` and pickling. They pass
scikit-learn's own estimator checks (``sklearn.utils.estimator_checks``), apart from the
documented :data:`EXPECTED_FAILED_CHECKS`.

* :class:`KMeans`: :func:`bayesmix.kmeans` (k-means++ seeding, Lloyd, restarts).
* :class:`GaussianMixture`: :func:`bayesmix.fit_em`, maximum likelihood, or MAP when
  ``prior`` is a :class:`bayesmix.GMMPrior`; ``em_result_`` is the
  :class:`bayesmix.EMResult`.
* :class:`BayesianGaussianMixture`: variational inference by default
  (:func:`bayesmix.fit_vi`, scikit-learn's method, parameters and fitted attributes;
  ``vi_result_`` is the :class:`bayesmix.VIResult`), or with ``inference="mcmc"`` the
  PyMC model (:func:`bayesmix.build_gmm`, or :func:`bayesmix.build_dpgmm` for the DP)
  sampled by :func:`bayesmix.sample` from the EM MAP, relabelled against it
  (:func:`bayesmix.relabel`); ``idata_`` is then the posterior DataTree, so
  ``bm.membership``, ``bm.loo`` ... apply to it, and predictions for new data average
  over the posterior draws.
* :func:`bic_scorer`: ``-bic`` (greater is better) for ``GridSearchCV``.

scikit-learn's checks (``tests/test_sklearn.py``, scikit-learn 1.9): every check passes
except, for :class:`KMeans`, the ``sample_weight`` checks while :func:`bayesmix.kmeans`
has no ``sample_weight`` (``fit`` then raises ``NotImplementedError`` for weights; see
:func:`expected_failed_checks` for the reasons). The array-API check runs only with
``SCIPY_ARRAY_API=1`` set before scipy is imported (it passes then). The
:class:`BayesianGaussianMixture` checks run for VI (fast) and, with
``inference="mcmc"``, refit the PyMC model dozens of times; those run with ``draws=20,
tune=20, chains=1`` and are marked slow.

This module imports scikit-learn, which bayesmix itself does not need: install it with
``pip install 'bayesmix[sklearn]'`` and import it as ``bayesmix.sklearn``.

Input goes through scikit-learn's ``validate_data`` once (float64, C order: no copy for
such input) and the validated array is passed to bayesmix as it is, so bad input gets
scikit-learn's error types and messages (NaN/inf, sparse, complex, 1-D, empty, a
different number of features at predict time; a DataFrame's datetime, complex or text
columns get the error of :func:`bayesmix.fit_em`, naming them), and the argument checks of the
bayesmix functions (``TypeError``/``ValueError`` naming the parameter) run at ``fit``.
"""

from __future__ import annotations

import numpy as np

from bayesmix._sklearn_base import (
    _INIT_PARAMS,
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _AllowNaN,
    _check_covariance_type,
    _DensityEstimator,
    _draw_mixture,
    _native_covariances,
    _native_precisions,
    _seed,
    _validate,
    _validate_fitted,
    check_is_fitted,
)
from bayesmix._sklearn_bayes import BayesianGaussianMixture

__all__ = [
    "EXPECTED_FAILED_CHECKS",
    "BayesianGaussianMixture",
    "GaussianMixture",
    "KMeans",
    "bic_scorer",
    "expected_failed_checks",
]


# =========================================================================== KMeans
class KMeans(
    _AllowNaN, ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator
):
    """k-means clustering with scikit-learn's interface, over :func:`bayesmix.kmeans`.

    Parameters
    ----------
    n_clusters : int, default 8
        Number of clusters K.
    n_init : int, default 10
        Runs from independent k-means++ seedings; the lowest inertia wins.
    max_iter : int, default 300
        Lloyd iterations per run.
    tol : float, default 1e-4
        Relative tolerance on the centre shift (scikit-learn's rule: the summed squared
        shift at most ``tol * mean(var(X, axis=0))``).
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None
        Seed of the k-means++ seedings (``random_seed`` of :func:`bayesmix.kmeans`).

    Attributes
    ----------
    cluster_centers_ : ndarray, shape (K, D)
    labels_ : ndarray of int, shape (N,)
    inertia_ : float
        Sum of squared distances to the nearest centre.
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str, shape (D,)
        Only when ``X`` had string column names.
    result_ : KMeansResult
        The :func:`bayesmix.kmeans` result.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.sklearn import KMeans
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_[:, 0].round(2).tolist())
    [0.05, 5.05]
    >>> km.transform(X).shape
    (4, 2)
    """

    def __init__(self, n_clusters=8, *, n_init=10, max_iter=300, tol=1e-4, random_state=None):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y=None, sample_weight=None):
        """Cluster ``X``.

        Parameters
        ----------
        X : array_like, shape (N, D)
        y : ignored
        sample_weight : array_like, shape (N,), optional
            Passed to :func:`bayesmix.kmeans` when it accepts weights; with a version
            that does not, giving weights raises ``NotImplementedError``.

        Returns
        -------
        self
        """
        from bayesmix.cluster._kmeans import kmeans
        from bayesmix.core._validation import check_n_components

        X = _validate(self, X, reset=True)
        check_n_components(self.n_clusters, X.shape[0], name="n_clusters")
        kwargs = {}
        if sample_weight is not None:
            kwargs["sample_weight"] = sample_weight
        res = kmeans(
            X,
            self.n_clusters,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            random_seed=_seed(self.random_state),
            **kwargs,
        )
        self.result_ = res
        self.cluster_centers_ = np.asarray(res.centers)
        self.labels_ = np.asarray(res.labels)
        self.inertia_ = float(res.inertia)
        self.n_iter_ = int(res.n_iter)
        self._n_features_out = self.cluster_centers_.shape[0]
        return self

    def _sq_dists(self, X):
        X = _validate_fitted(self, X)
        return self.result_.transform(X)

    def predict(self, X):
        """Index of the nearest centre of each row, shape (N,).

        Parameters
        ----------
        X : array_like, shape (N, D)

        Returns
        -------
        ndarray of int, shape (N,)
        """
        return np.argmin(self._sq_dists(X), axis=1)

    def transform(self, X):
        """Euclidean distances to the centres, shape (N, K), as scikit-learn.

        Parameters
        ----------
        X : array_like, shape (N, D)

        Returns
        -------
        ndarray, shape (N, K)
        """
        return np.sqrt(self._sq_dists(X))

    def score(self, X, y=None):
        """Negative inertia of ``X`` under the fitted centres (greater is better).

        Parameters
        ----------
        X : array_like, shape (N, D)
        y : None
            Ignored (scikit-learn's API).

        Returns
        -------
        float
        """
        return -float(self._sq_dists(X).min(axis=1).sum())


# =========================================================================== mixtures, shared
def _em_method(name, summary, returns):
    """A :class:`GaussianMixture` method ``name(X)``: ``em_result_.name`` on the validated X.

    The numpydoc docstring is ``summary``, ``X`` and the Returns line ``returns``.
    """

    def method(self, X):
        em, X = self._em(X)
        return getattr(em, name)(X)

    method.__name__ = name
    method.__qualname__ = f"GaussianMixture.{name}"
    method.__doc__ = (
        f"{summary}\n\nParameters\n----------\nX : array_like, shape (N, D)\n\n"
        f"Returns\n-------\n{returns}\n"
    )
    return method


# =========================================================================== GaussianMixture
class GaussianMixture(_AllowNaN, _DensityEstimator):
    """Gaussian mixture by EM with scikit-learn's interface, over :func:`bayesmix.fit_em`.

    Maximum likelihood (``prior=None``, as scikit-learn), or the MAP estimate under a
    conjugate :class:`bayesmix.GMMPrior` (the mode of the posterior that
    :class:`BayesianGaussianMixture` samples with the same prior).

    Parameters
    ----------
    n_components : int, default 1
    covariance_type : {"full", "tied", "diag", "spherical"} or an mclust name, default "full"
        Also any of mclust's 14 models (``"EII"`` ... ``"VVV"``, see
        :func:`bayesmix.fit_em`); ``covariances_`` then has the shape of the model's native
        type (``"EVE"``: full, ``"EEI"``: diag), so ``GridSearchCV`` with
        :func:`bic_scorer` can search over the models.
    tol : float, default 1e-3
        A run stops when the objective per observation changes by at most ``tol``
        between EM iterations: for maximum likelihood this is scikit-learn's rule (the
        change of the mean log-likelihood per sample; scikit-learn stops on ``<``,
        bayesmix on ``<=``); for MAP the objective is the log posterior per sample.
        One difference in what is returned: once the test is met scikit-learn applies
        one more M-step, bayesmix returns the parameters whose log-likelihood was
        tested. From the same start the two stop at the same test, so ``lower_bound_``
        equals scikit-learn's and ``n_iter_`` is one less than scikit-learn's
        (measured on Old Faithful, K=3, full and diag, tol 1e-3 and 1e-6).
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance (also for MAP, where
        :func:`bayesmix.fit_em` defaults to 0: pass ``reg_covar=0.0`` for the exact mode).
    max_iter : int, default 100
    n_init : int, default 1
        EM runs; the highest final objective wins.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default "kmeans"
        ``"kmeans"``, ``"k-means++"`` and ``"random"`` are :func:`bayesmix.fit_em`'s
        ``init``; ``"random_from_data"`` starts each run from K distinct random rows as
        means (``init`` as a (K, D) array; ``n_init`` runs, the best kept).
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None
    prior : GMMPrior, optional
        ``None`` for maximum likelihood; a conjugate :class:`bayesmix.GMMPrior` for MAP.

    Attributes
    ----------
    weights_ : ndarray, shape (K,)
    means_ : ndarray, shape (K, D)
    covariances_ : ndarray
        (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical, as scikit-learn.
    precisions_, precisions_cholesky_ : ndarray
        Same shapes; ``precisions_cholesky_`` upper triangular (full, tied) with
        ``P @ P.T = inv(covariance)`` as scikit-learn.
    converged_ : bool
    n_iter_ : int
        EM updates of the best run (:attr:`bayesmix.EMResult.n_iter`).
    lower_bound_ : float
        Final objective per observation: the mean log-likelihood (ML, as
        scikit-learn) or the log posterior divided by N (MAP).
    lower_bounds_ : list of float
        The objective per observation after every EM iteration of the best run.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, shape (D,)
        Only when ``X`` had string column names.
    em_result_ : EMResult

    Examples
    --------
    >>> import bayesmix as bm
    >>> from bayesmix.sklearn import GaussianMixture
    >>> X = bm.load_old_faithful().to_numpy()
    >>> gm = GaussianMixture(2, tol=1e-8, random_state=0).fit(X)
    >>> gm.covariances_.shape, gm.predict_proba(X[:3]).shape
    ((2, 2, 2), (3, 2))
    >>> round(gm.score(X) * X.shape[0], 3)  # the published maximum (mclust, scikit-learn)
    -1130.264
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
        random_state=None,
        prior=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.prior = prior

    def _fit_em(self, X):
        from bayesmix.em._fit import fit_em

        if self.init_params not in _INIT_PARAMS:
            raise ValueError(
                f"init_params must be one of {list(_INIT_PARAMS)}; got {self.init_params!r}."
            )
        kwargs = dict(
            covariance=_check_covariance_type(self.covariance_type, em=True),
            prior=self.prior,
            max_iter=self.max_iter,
            tol=self.tol,
            reg_covar=self.reg_covar,
        )
        seed = _seed(self.random_state)
        if self.init_params != "random_from_data":
            return fit_em(
                X,
                self.n_components,
                n_init=self.n_init,
                init=self.init_params,
                random_seed=seed,
                **kwargs,
            )
        from bayesmix.core._validation import check_int, check_n_components

        K = check_n_components(self.n_components, X.shape[0])
        rng = np.random.default_rng(seed)
        best = None
        for _ in range(check_int(self.n_init, "n_init", minimum=1)):
            means = X[rng.choice(X.shape[0], size=K, replace=False)]
            means = np.where(np.isnan(means), np.nanmean(X, axis=0), means)  # gaps
            fit = fit_em(X, K, init=means, random_seed=rng, **kwargs)
            obj = fit.log_likelihood if fit.log_posterior is None else fit.log_posterior
            if best is None or obj > best[0]:
                best = (obj, fit)
        return best[1]

    def fit(self, X, y=None):
        """Fit the mixture by EM.

        Parameters
        ----------
        X : array_like, shape (N, D)
        y : ignored

        Returns
        -------
        self
        """
        X = _validate(self, X, reset=True, min_samples=2)
        em = self._fit_em(X)
        self._set_fitted(em, X.shape[0])
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
        return np.asarray(self.fit(X).em_result_.labels)

    def _set_fitted(self, em, n_obs):
        cov_type = em.covariance
        self.em_result_ = em
        self.weights_ = np.array(em.weights)
        self.means_ = np.array(em.means)
        self.covariances_ = _native_covariances(em.covariances, cov_type)
        self.precisions_, self.precisions_cholesky_ = _native_precisions(em, cov_type)
        self.converged_ = bool(em.converged)
        self.n_iter_ = int(em.n_iter)
        self.lower_bounds_ = [float(h) / n_obs for h in em.history]
        self.lower_bound_ = self.lower_bounds_[-1]

    def _em(self, X):
        """The fitted EMResult and the validated ``X``."""
        X = _validate_fitted(self, X)
        return self.em_result_, X

    score_samples = _em_method(
        "score_samples",
        "Log density ``log p(x_n)`` of every row, shape (N,).",
        "ndarray, shape (N,)",
    )
    predict_proba = _em_method(
        "predict_proba",
        "Membership probabilities (responsibilities), shape (N, K).",
        "ndarray, shape (N, K)",
    )
    predict = _em_method(
        "predict", "Most probable component of each row, shape (N,).", "ndarray of int, shape (N,)"
    )
    bic = _em_method(
        "bic",
        "Bayesian information criterion on ``X`` (lower is better), as scikit-learn.",
        "float",
    )
    aic = _em_method(
        "aic", "Akaike information criterion on ``X`` (lower is better), as scikit-learn.", "float"
    )
    icl = _em_method("icl", "Integrated completed likelihood, mclust's (lower is better).", "float")

    def sample(self, n_samples=1):
        """Draw from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default 1

        Returns
        -------
        X : ndarray, shape (n_samples, D)
        y : ndarray of int, shape (n_samples,)
            Component of each draw (grouped by component, as scikit-learn).
        """
        check_is_fitted(self)
        from bayesmix.core._validation import check_int

        n_samples = check_int(n_samples, "n_samples", minimum=1)
        rng = np.random.default_rng(_seed(self.random_state))
        em = self.em_result_
        return _draw_mixture(rng, n_samples, em.weights, em.means, em.covariances)


# =========================================================================== scorer
def bic_scorer(estimator, X, y=None):
    """``-estimator.bic(X)`` (greater is better), a scorer for ``GridSearchCV``.

    Works on a :class:`GaussianMixture` and on a ``Pipeline`` ending in one (the
    earlier steps transform ``X`` first).

    Parameters
    ----------
    estimator : GaussianMixture or Pipeline
        Fitted.
    X : array_like, shape (N, D)
    y : ignored

    Returns
    -------
    float

    Examples
    --------
    >>> import bayesmix as bm
    >>> from bayesmix.sklearn import GaussianMixture, bic_scorer
    >>> X = bm.load_old_faithful().to_numpy()
    >>> gm = GaussianMixture(2, random_state=0).fit(X)
    >>> bic_scorer(gm, X) == -gm.bic(X)
    True
    """
    if not hasattr(estimator, "bic") and hasattr(estimator, "steps"):
        X = estimator[:-1].transform(X)
        estimator = estimator[-1]
    if not hasattr(estimator, "bic"):
        raise TypeError(
            "bic_scorer needs an estimator with a bic(X) method (bayesmix.sklearn."
            f"GaussianMixture, or a Pipeline ending in one); got {type(estimator).__name__}."
        )
    return -float(estimator.bic(X))


# =========================================================================== checks
_WEIGHT_EQUIVALENCE = (
    "randomised k-means++ seeding draws from the data: weights are not equivalent to "
    "repeated rows for one seed (scikit-learn marks the same check for its KMeans)"
)

#: checks expected to fail, per estimator class, with the reason (see
#: :func:`expected_failed_checks`)
EXPECTED_FAILED_CHECKS = {
    "KMeans": {
        "check_sample_weight_equivalence_on_dense_data": _WEIGHT_EQUIVALENCE,
        "check_sample_weight_equivalence_on_sparse_data": _WEIGHT_EQUIVALENCE,
    },
    "GaussianMixture": {},
    "BayesianGaussianMixture": {},
}


def expected_failed_checks(estimator):
    """Checks of ``sklearn.utils.estimator_checks`` that ``estimator`` fails, with why.

    For ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``
    or ``check_estimator(est, expected_failed_checks=expected_failed_checks(est))``.

    Parameters
    ----------
    estimator : KMeans, GaussianMixture or BayesianGaussianMixture

    Returns
    -------
    dict of str -> str
        Check name -> reason.

    Examples
    --------
    >>> from bayesmix.sklearn import GaussianMixture, expected_failed_checks
    >>> expected_failed_checks(GaussianMixture())
    {}
    """
    return dict(EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {}))
