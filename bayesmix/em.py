r"""Expectation-maximisation for Gaussian mixtures: maximum likelihood and MAP.

:func:`fit_em` fits a Gaussian mixture with ``spherical``, ``diag`` (alias
``diagonal``), ``full`` or ``tied`` covariance by EM, either by maximum likelihood
(``prior=None``) or as the maximum a posteriori (MAP) estimate under a conjugate
:class:`bayesmix.GMMPrior` (Dirichlet weights, normal-inverse-Wishart /
normal-inverse-gamma means and covariances; the M-step is exactly the one documented
in :mod:`bayesmix.priors`). With the same prior object, ``fit_em`` returns the mode of
the posterior that :func:`bayesmix.build_gmm` samples, in the parameterisation
weights / means / covariance matrices (or variances).

Everything goes through precision Cholesky factors (see :mod:`bayesmix._covariance`):
the log-determinant is a sum of logs, and responsibilities are computed in log space
with a log-sum-exp, so points thousands of standard deviations from every component
are handled exactly. Large data go through a fused numba pass
(:mod:`bayesmix._em_kernels`) that computes the log densities, responsibilities and
sufficient statistics in one sweep over chunks of rows, in parallel; small data use a
plain numpy path (the reference the numba path is tested against).
"""

from __future__ import annotations

import dataclasses
import numbers
import sys
from dataclasses import dataclass, field

import numpy as np

from bayesmix import _covariance as cv
from bayesmix import _dask  # imports no Dask itself (only on Dask input)
from bayesmix import _gaussian as gs
from bayesmix._em_init import (
    STRATEGIES,
    initial_labels,
    initial_resp,
    nearest,
    one_hot,
    stats_from_labels,
    stats_from_resp,
)
from bayesmix._validation import (
    ConvergenceWarning,
    DegenerateDataWarning,
    check_covariance_type,
    check_data,
    check_int,
    check_n_components,
    check_positive,
    check_random_state,
    check_sample_weight,
    degenerate_report,
    warn,
)
from bayesmix._validation import (
    match_columns as _match_columns,
)
from bayesmix.priors import GMMPrior, check_prior

__all__ = ["EMResult", "fit_em"]

_INIT_METHODS = STRATEGIES
#: init="auto": EM updates of the short run from every start of the portfolio ...
_AUTO_SHORT_ITER = 20
#: ... and how many of the best short runs are then run to convergence (the
#: hierarchical start, mclust's, always is)
_AUTO_FINALISTS = 2
#: ... except on small data (n_obs x n_components up to this), where every start runs to
#: convergence: it costs milliseconds, and a ridge that 20 updates have not climbed yet
#: cannot hide the best mode (Old Faithful, full, K=3, MAP: a finalist-only portfolio
#: stopped at log posterior -1158.87 where another start reaches -1155.23)
_AUTO_ALL_FINAL_WORK = 100_000
_HC = "hierarchical"
_ENGINES = ("auto", "numpy", "numba")
#: data with at least this many (observation x component) pairs use the numba pass
_NUMBA_MIN_WORK = 20_000
#: a component is flagged as collapsed when an eigenvalue of its covariance, relative
#: to the data covariance in the same direction, falls below this (a standard
#: deviation 1e-4 times the data's), ...
_COLLAPSE_REL_EIG = 1e-8
#: ... or when its effective number of points is below this
_COLLAPSE_MIN_NK = 1.0


# =========================================================================== result


@dataclass(frozen=True, eq=False)
class EMResult:
    """A fitted Gaussian mixture (maximum likelihood or MAP), returned by :func:`fit_em`.

    Attributes
    ----------
    weights : ndarray, shape (K,)
        Mixing weights of the Gaussian components (sum to 1, or to
        ``1 - noise_weight`` with a noise component).
    means : ndarray, shape (K, D)
        Component means.
    covariances : ndarray, shape (K, D, D)
        Component covariance matrices, always full matrices (diagonal, spherical and
        tied fits are expanded; ``tied`` repeats the shared matrix).
    precisions_cholesky : ndarray, shape (K, D, D)
        Upper-triangular ``P_k`` with ``P_k @ P_k.T = inv(covariances[k])``.
    covariance : str
        Canonical covariance type: ``"spherical"``, ``"diag"``, ``"full"`` or ``"tied"``.
    prior : GMMPrior or None
        The prior of a MAP fit; ``None`` for maximum likelihood.
    log_likelihood : float
        Total (summed over observations) log-likelihood of the training data.
    log_posterior : float or None
        MAP only: ``log_likelihood + prior.log_prior(...)``, the unnormalised log
        posterior with the prior's full normalising constants; ``None`` for ML.
    n_iter : int
        EM updates of the returned run.
    converged : bool
        Whether the returned run met the tolerance before ``max_iter``.
    history : tuple of float
        The objective (log-likelihood for ML, log posterior for MAP) after the initial
        M-step and after every EM update of the returned run; never decreasing (up to
        rounding, and up to the tiny effect of ``reg_covar`` for ML).
    n_components, n_features, n_obs : int
    feature_names : list of str
    reg_covar : float
        Added to the diagonal of every covariance.
    random_seed : int or None
        The seed given to :func:`fit_em` (``None`` when a Generator or nothing was given).
    collapsed : tuple of int
        Components whose covariance is near-singular relative to the data scale (an
        eigenvalue below 1e-8 times the data variance in that direction, or fully set by
        ``reg_covar``) or with fewer than one effective point. A warning was emitted.
    labels : ndarray of int, shape (n_obs,) or None
        Most probable component of each training point under the returned parameters
        (from a final E-step, so ``labels == result.predict(X)``). Not saved by
        :meth:`to_dict`.
    tol, max_iter, n_init, init :
        The settings used.
    init_strategy : str or None
        The initialisation that produced the returned run: with ``init="auto"`` the
        winning start of the portfolio (``"hierarchical"``, ``"kmeans-standardized"``,
        ``"kmeans"`` or ``"random"``); otherwise ``init`` itself (``"array (resp)"`` or
        ``"array (means)"`` for an array). ``None`` in results saved before it existed.
    noise_weight : float or None
        With ``fit_em(..., noise=...)``: the weight of the uniform noise component
        (Banfield & Raftery 1993); ``None`` without one.
    noise_volume : float or None
        The hypervolume ``V`` of the noise component's uniform density ``1 / V``.
    total_weight : float or None
        With ``sample_weight``: the sum of the weights (the effective number of
        observations used by :meth:`bic` / :meth:`icl` on the training data); ``None``
        for an unweighted fit. The weights themselves are not stored.

    Examples
    --------
    >>> import bayesmix as bm
    >>> X = bm.load_old_faithful()
    >>> res = bm.fit_em(X, 2, random_seed=0)
    >>> round(res.log_likelihood, 3)
    -1130.264
    >>> res.covariances.shape
    (2, 2, 2)
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    covariance: str
    prior: object
    log_likelihood: float
    log_posterior: float | None
    n_iter: int
    converged: bool
    history: tuple
    n_obs: int
    feature_names: list
    reg_covar: float
    random_seed: int | None = None
    collapsed: tuple = ()
    labels: np.ndarray | None = field(default=None, repr=False)
    tol: float | None = None
    max_iter: int | None = None
    n_init: int | None = None
    init: str | None = None
    init_strategy: str | None = None
    noise_weight: float | None = None
    noise_volume: float | None = None
    total_weight: float | None = None

    def __post_init__(self):
        for name in ("weights", "means", "covariances", "precisions_cholesky", "labels"):
            value = getattr(self, name)
            if value is not None and not _dask.is_dask(value):  # Dask labels stay lazy
                value = np.array(value)
                value.flags.writeable = False
                object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ sizes
    @property
    def n_components(self):
        """Number of components K."""
        return self.weights.shape[0]

    @property
    def n_features(self):
        """Number of features D."""
        return self.means.shape[1]

    @property
    def n_parameters(self):
        """Number of free parameters (covariances + means + K - 1 weights), as scikit-learn.

        A noise component adds one (its weight; the volume is fixed), as mclust.
        """
        extra = 0 if self.noise_weight is None else 1
        return cv.n_parameters(self.covariance, self.n_components, self.n_features) + extra

    # ------------------------------------------------------------------ prediction
    def _check_X(self, X):
        X = _match_columns(X, self.feature_names)
        # a point far from the data is valid input here (check_scale=False): the
        # densities below stay finite however far it is
        X = check_data(X, check_scale=False)
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features but the mixture was fitted on {self.n_features} "
                f"({self.feature_names}); pass data with the same columns."
            )
        return X

    def _log_joint(self, X, far_scale=gs.FAR_ORDER):
        """(N, K) ``log w_k + log N(x_n | mu_k, Sigma_k)``; points too far for float64 are
        evaluated ``far_scale`` Mahalanobis units out along their ray (see
        :func:`bayesmix._gaussian.log_gaussian_prob`). With a noise component, (N, K + 1)
        with ``log w_0 - log V`` last."""
        lj = gs.backend("numpy").log_joint(
            X, self.weights, self.means, self.precisions_cholesky, far_scale=far_scale
        )
        if self.noise_weight is None:
            return lj
        with np.errstate(divide="ignore"):
            noise = np.log(self.noise_weight) - np.log(self.noise_volume)
        return np.column_stack([lj, np.full(X.shape[0], noise)])

    def score_samples(self, X):
        """Log mixture density ``log p(x_n)`` of every observation.

        Parameters
        ----------
        X : array_like, shape (N, D)

        Returns
        -------
        ndarray, shape (N,)

        Examples
        --------
        >>> import bayesmix as bm
        >>> X = bm.load_old_faithful()
        >>> res = bm.fit_em(X, 2, random_seed=0)
        >>> res.score_samples(X).shape
        (272,)
        """
        if _dask.is_dask(X):
            return _dask.lazy_predict(self, X, "score_samples")
        return _logsumexp_rows(self._log_joint(self._check_X(X), gs.FAR_SCORE))

    def score(self, X):
        """Mean log density per observation, ``score_samples(X).mean()``.

        Parameters
        ----------
        X : array_like, shape (N, D)

        Returns
        -------
        float
        """
        return float(self.score_samples(X).mean())

    def predict_proba(self, X):
        """Membership probabilities (responsibilities) ``p(z_n = k | x_n)``.

        Parameters
        ----------
        X : array_like, shape (N, D)

        Returns
        -------
        ndarray, shape (N, K) or (N, K + 1)
            Rows sum to 1. With a noise component the last column (index K) is the
            probability of the noise class.
        """
        if _dask.is_dask(X):
            return _dask.lazy_predict(self, X, "predict_proba")
        lj = self._log_joint(self._check_X(X))
        return np.exp(lj - _logsumexp_rows(lj)[:, None])

    def predict(self, X):
        """Most probable component of each observation.

        Parameters
        ----------
        X : array_like, shape (N, D)

        Returns
        -------
        ndarray of int, shape (N,)
            Component indices ``0..K-1``; ``-1`` for points whose most probable class is
            the noise component (fits with ``noise``).
        """
        if _dask.is_dask(X):
            return _dask.lazy_predict(self, X, "predict")
        labels = np.argmax(self._log_joint(self._check_X(X)), axis=1)
        if self.noise_weight is not None:
            labels[labels == self.n_components] = -1
        return labels

    # ------------------------------------------------------------------ criteria
    def _weighted(self, X, sample_weight):
        """Checked data, weights (or None) and the effective n (sum of the weights)."""
        X = self._check_X(X)
        w = check_sample_weight(sample_weight, X.shape[0])
        return X, w, float(X.shape[0] if w is None else w.sum())

    def _total_log_likelihood(self, X, sample_weight):
        """``log L`` of ``X`` (weighted sum of ``score_samples``) and the effective n."""
        X, w, n = self._weighted(X, sample_weight)
        ll = self.score_samples(X)
        return (ll.sum() if w is None else w @ ll), n

    def bic(self, X, sample_weight=None):
        """Bayesian information criterion, ``-2 log L + p log n`` (lower is better).

        Same convention as scikit-learn's ``GaussianMixture.bic`` (mclust reports the
        negative).

        Parameters
        ----------
        X : array_like, shape (N, D)
        sample_weight : array_like, shape (N,), optional
            Frequency weights: ``log L = sum_n w_n log p(x_n)`` and ``n = sum_n w_n``.
            The sum of the weights is the number of observations the weights stand for
            (integer weights give exactly the BIC of the data with duplicated rows); the
            number of distinct rows would understate it for binned data.

        Returns
        -------
        float
        """
        ll, n = self._total_log_likelihood(X, sample_weight)
        return float(-2.0 * ll + self.n_parameters * np.log(n))

    def aic(self, X, sample_weight=None):
        """Akaike information criterion, ``-2 log L + 2 p`` (lower is better).

        Parameters
        ----------
        X : array_like, shape (N, D)
        sample_weight : array_like, shape (N,), optional
            As in :meth:`bic`.

        Returns
        -------
        float
        """
        ll, _ = self._total_log_likelihood(X, sample_weight)
        return float(-2.0 * ll + 2.0 * self.n_parameters)

    def icl(self, X, sample_weight=None):
        """Integrated completed likelihood criterion, ``BIC + 2 * entropy`` (lower is better).

        ``entropy = -sum_n sum_k r_nk log r_nk`` of the responsibilities (Biernacki,
        Celeux & Govaert 2000, with the soft classification as in mclust). On the
        lower-is-better BIC scale, so ``icl(X) >= bic(X)``; mclust reports the negative.

        Parameters
        ----------
        X : array_like, shape (N, D)
        sample_weight : array_like, shape (N,), optional
            As in :meth:`bic`; the entropy is weighted too.

        Returns
        -------
        float
        """
        X, w, n = self._weighted(X, sample_weight)
        lj = self._log_joint(X)
        lse = _logsumexp_rows(lj)
        log_r = lj - lse[:, None]
        r = np.exp(log_r)
        ent_n = -np.sum(r * np.where(r > 0, log_r, 0.0), axis=1)
        entropy = float(ent_n.sum() if w is None else w @ ent_n)
        ll = float(lse.sum() if w is None else w @ lse)
        return -2.0 * ll + self.n_parameters * np.log(n) + 2.0 * entropy

    # ------------------------------------------------------------------ I/O
    def to_dict(self):
        """Plain JSON-able dict (lists, floats, strings); ``labels`` are not included."""
        return {
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
            "covariance": self.covariance,
            "prior": None if self.prior is None else self.prior.to_dict(),
            "log_likelihood": float(self.log_likelihood),
            "log_posterior": None if self.log_posterior is None else float(self.log_posterior),
            "n_iter": int(self.n_iter),
            "converged": bool(self.converged),
            "history": [float(h) for h in self.history],
            "n_obs": int(self.n_obs),
            "feature_names": list(self.feature_names),
            "reg_covar": float(self.reg_covar),
            "random_seed": self.random_seed,
            "collapsed": [int(k) for k in self.collapsed],
            "tol": self.tol,
            "max_iter": self.max_iter,
            "n_init": self.n_init,
            "init": self.init,
            "init_strategy": self.init_strategy,
            "noise_weight": self.noise_weight,
            "noise_volume": self.noise_volume,
            "total_weight": self.total_weight,
        }

    @classmethod
    def from_dict(cls, d):
        """Rebuild an :class:`EMResult` from :meth:`to_dict` output.

        Parameters
        ----------
        d : dict
            As returned by :meth:`to_dict` (or read back from its JSON).

        Returns
        -------
        EMResult
        """
        d = dict(d)
        cov = np.asarray(d.pop("covariances"), dtype=float)
        prior = d.pop("prior")
        return cls(
            weights=np.asarray(d.pop("weights"), dtype=float),
            means=np.asarray(d.pop("means"), dtype=float),
            covariances=cov,
            precisions_cholesky=cv.precision_cholesky_full(cov),
            prior=None if prior is None else GMMPrior.from_dict(prior),
            history=tuple(d.pop("history")),
            collapsed=tuple(d.pop("collapsed", ())),
            **d,
        )

    def __repr__(self):
        kind = "ML" if self.prior is None else "MAP"
        obj = (
            f"log_likelihood={self.log_likelihood:.6g}"
            if self.log_posterior is None
            else f"log_posterior={self.log_posterior:.6g}, log_likelihood={self.log_likelihood:.6g}"
        )
        w = np.array2string(self.weights, precision=3, separator=", ")
        extra = f", init_strategy={self.init_strategy!r}" if self.init_strategy else ""
        extra += f", collapsed={list(self.collapsed)}" if self.collapsed else ""
        if self.noise_weight is not None:
            extra += f", noise_weight={self.noise_weight:.3g}"
        return (
            f"EMResult({kind}, covariance={self.covariance!r}, K={self.n_components}, "
            f"D={self.n_features}, N={self.n_obs}, {obj}, weights={w}, n_iter={self.n_iter}, "
            f"converged={self.converged}{extra})"
        )


# =========================================================================== helpers
_logsumexp_rows = gs.logsumexp_rows


def _stats_from_resp(X, covariance, resp, n_gauss=None, sample_weight=None):
    """Weighted ``nk`` (all columns, noise last) and ``sx``, ``sxx`` of the Gaussian columns."""
    n_gauss = resp.shape[1] if n_gauss is None else n_gauss
    if sample_weight is not None:
        resp = resp * sample_weight[:, None]
    rg = np.ascontiguousarray(resp[:, :n_gauss])
    if covariance == "tied" and (sample_weight is not None or resp.shape[1] > n_gauss):
        sxx = np.ascontiguousarray((X * rg.sum(1)[:, None]).T) @ X
    else:
        sxx = cv.SECOND_MOMENTS[covariance](X, rg)
    return resp.sum(0), np.ascontiguousarray(rg.T) @ X, sxx


class _Model:
    """Parameters in the fitting frame (data centred at the data mean)."""

    __slots__ = ("cov", "means", "prec_chol", "weights")

    def __init__(self, weights, means, cov, prec_chol):
        self.weights, self.means, self.cov, self.prec_chol = weights, means, cov, prec_chol


def _m_step(nk, sx, sxx, covariance, n_obs, reg_covar, map_prior):
    K = sx.shape[0]
    weights, means = cv.m_step_weights_means(nk[:K], sx, n_obs, map_prior)
    if nk.shape[0] > K:  # a noise component: K + 1 weights (a Dirichlet over K + 1 for MAP)
        weights = cv.m_step_weights_means(nk, np.zeros((K + 1, sx.shape[1])), n_obs, map_prior)[0]
    cov = cv.M_STEP[covariance](nk[:K], sx, sxx, n_obs, reg_covar, map_prior)
    prec = cv.PRECISION_CHOLESKY[covariance](cov, reg_covar)
    return _Model(weights, means, cov, prec)


def _init_array(init, X, n_components):
    """Classify an array init: (N, K) responsibilities or (K, D) means."""
    N, D = X.shape
    K = n_components
    arr = np.asarray(init, dtype=float)
    if arr.ndim != 2 or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"init array must be finite and 2-D: responsibilities of shape (N, K)=({N}, {K}) "
            f"or means of shape (K, D)=({K}, {D}); got shape {arr.shape}."
        )
    is_resp_shape = arr.shape == (N, K)
    is_means_shape = arr.shape == (K, D)
    looks_like_resp = (
        is_resp_shape and np.all(arr >= 0) and np.allclose(arr.sum(1), 1.0, rtol=0, atol=1e-8)
    )
    if looks_like_resp:
        return "resp", arr
    if is_means_shape:
        return "means", arr
    if is_resp_shape:
        raise ValueError(
            "init responsibilities of shape (N, K) must be non-negative with rows summing to 1; "
            f"row sums range over [{arr.sum(1).min():.3g}, {arr.sum(1).max():.3g}]."
        )
    raise ValueError(
        f"init array has shape {arr.shape}; expected responsibilities (N, K)=({N}, {K}) or "
        f"means (K, D)=({K}, {D})."
    )


def _initial_resp(init, X, K, rng, covariance="full", sample_weight=None):
    """Initial responsibilities (N, K), or (labels-based resp, means override)."""
    if isinstance(init, str):
        return initial_resp(init, X, K, rng, covariance, sample_weight), None
    kind, arr = init
    if kind == "resp":
        return arr, None
    return one_hot(nearest(X, arr), K), arr


# =========================================================================== the EM loop
@dataclass(frozen=True, eq=False)
class _RunSettings:
    """What every EM run of one :func:`fit_em` call shares (the fitting frame is centred)."""

    covariance: str
    n_components: int
    max_iter: int
    tol: float
    reg_covar: float
    engine: str
    progress: bool
    prior: object  # GMMPrior or None (maximum likelihood)
    shift: np.ndarray  # the data mean: original coordinates = fitting frame + shift
    map_prior: object  # the prior in the fitting frame (cv.MapPrior), or None
    sample_weight: np.ndarray | None = None  # frequency weights (N,), or None
    n_eff: float | None = None  # the sum of the weights (N unweighted)
    log_noise: float | None = None  # -log(noise volume) with a noise component, else None

    def n_obs(self, X):
        """The number of observations the M-step and the tolerance use (sum of weights)."""
        return X.shape[0] if self.n_eff is None else self.n_eff

    def to_full(self, model):
        """Full covariance matrices (K, D, D) of a model."""
        return cv.TO_FULL[self.covariance](model.cov, self.n_components, self.shift.size)

    def objective(self, ll, model):
        """The log-likelihood (ML) or the log posterior up to the evidence (MAP)."""
        if self.prior is None:
            return ll
        K = self.n_components
        w = model.weights
        lp = self.prior.log_prior(
            w[:K] / w[:K].sum(), model.means + self.shift, self.to_full(model), self.covariance
        )
        if self.log_noise is not None:  # the Dirichlet is over the K + 1 weights
            a = self.prior.weight_concentration
            lp += _dirichlet_logpdf(w, a) - _dirichlet_logpdf(w[:K] / w[:K].sum(), a)
        return ll + lp


@dataclass(frozen=True, eq=False)
class _RunResult:
    """The outcome of one EM run, in the fitting frame."""

    model: _Model
    log_likelihood: float
    objective: float
    history: tuple
    n_iter: int
    converged: bool
    labels: np.ndarray
    nk: np.ndarray
    stats: tuple = ()  # (nk, sx, sxx) of the last E-step, to continue the run
    strategy: str | None = None  # the initialisation strategy of the run


def _dirichlet_logpdf(w, a):
    """Symmetric Dirichlet(a) log density of the weights ``w`` (K,)."""
    from scipy.special import gammaln

    K = w.shape[0]
    return float(
        gammaln(K * a) - K * gammaln(a) + (a - 1.0) * np.log(np.clip(w, 1e-300, None)).sum()
    )


#: initial responsibility of the noise class (every point), as a starting weight
_NOISE_INIT = 0.1


def _run_em(X, resp, means_init, cfg, label="", max_iter=None, stats=None):
    """One EM run from initial responsibilities (or their statistics ``stats``), and
    optionally initial means."""
    N = cfg.n_obs(X)
    K = cfg.n_components
    if stats is None:
        if cfg.log_noise is not None and resp.shape[1] == K:
            resp = np.column_stack([(1.0 - _NOISE_INIT) * resp, np.full(X.shape[0], _NOISE_INIT)])
        stats = _stats_from_resp(X, cfg.covariance, resp, K, cfg.sample_weight)
    nk, sx, sxx = stats
    model = _m_step(nk, sx, sxx, cfg.covariance, N, cfg.reg_covar, cfg.map_prior)
    if means_init is not None:
        model.means = np.array(means_init, dtype=float)
    return _em_loop(X, model, cfg, [], cfg.max_iter if max_iter is None else max_iter, label)


def _continue_em(X, run, cfg, label=""):
    """Continue a run stopped before convergence, up to ``cfg.max_iter`` updates in all."""
    if run.converged or run.n_iter >= cfg.max_iter:
        return run
    model = _m_step(*run.stats, cfg.covariance, cfg.n_obs(X), cfg.reg_covar, cfg.map_prior)
    out = _em_loop(X, model, cfg, list(run.history), cfg.max_iter - run.n_iter - 1, label)
    return dataclasses.replace(out, strategy=run.strategy)


def _em_loop(X, model, cfg, history, max_iter, label):
    """E-step / M-step updates from ``model``; ``history`` holds the earlier objectives."""
    # one E-step pass (log-likelihood, sufficient statistics, labels) of the density
    # backend: numpy, or the numba kernels of bayesmix._em_kernels
    estep = gs.backend("numpy" if cfg.engine == "numpy" else "numba").estep
    labels = np.empty(X.shape[0], dtype=np.int64)

    def e_step(m):
        return estep(
            X,
            cfg.covariance,
            m.weights,
            m.means,
            m.prec_chol,
            labels,
            cfg.sample_weight,
            cfg.log_noise,
        )

    return _iterate(e_step, model, cfg, cfg.n_obs(X), history, max_iter, label, labels)


def _iterate(e_step, model, cfg, N, history, max_iter, label, labels=None):
    """The EM iterations given an E-step ``e_step(model) -> (ll, nk, sx, sxx)``: the
    in-memory pass here, a Dask reduction in :mod:`bayesmix._dask` (one loop, one
    convergence rule)."""
    converged = False
    for it in range(max_iter + 1):
        ll, nk, sx, sxx = e_step(model)
        obj = cfg.objective(ll, model)
        history.append(obj)
        if cfg.progress and (it % 10 == 0):
            print(f"[fit_em{label}] iteration {it}: objective {obj:.10g}", file=sys.stderr)
        if len(history) > 1 and abs(obj - history[-2]) <= cfg.tol * N:
            converged = True
            break
        if it == max_iter:
            break
        model = _m_step(nk, sx, sxx, cfg.covariance, N, cfg.reg_covar, cfg.map_prior)
    return _RunResult(
        model=model,
        log_likelihood=ll,
        objective=obj,
        history=tuple(history),
        n_iter=len(history) - 1,
        converged=converged,
        labels=labels,
        nk=nk,
        stats=(nk, sx, sxx),
    )


def _best_of_restarts(Xc, init, cfg, n_init, rng):
    """``n_init`` EM runs from independent initialisations; the highest objective wins."""
    best = None
    for run in range(n_init):
        if cfg.progress:
            print(f"[fit_em] run {run + 1}/{n_init}", file=sys.stderr)
        resp, init_means = _initial_resp(
            init, Xc, cfg.n_components, rng, cfg.covariance, cfg.sample_weight
        )
        out = _run_em(Xc, resp, init_means, cfg, f" run {run + 1}" if n_init > 1 else "")
        if best is None or out.objective > best.objective:
            best = out
    name = init if isinstance(init, str) else f"array ({init[0]})"
    return dataclasses.replace(best, strategy=name)


def _portfolio(n_init, n_components):
    """The starts of init="auto", in the order they are drawn (one for K=1: all agree)."""
    if n_components == 1:
        return [_HC]
    return [_HC] + ["kmeans-standardized", "kmeans"] * n_init + ["random"]


def _start(name, Xc, cfg, rng):
    """``(None, statistics)`` of the first M-step of a start, computed without the dense
    products of ``_stats_from_resp`` (by groups for a hard partition), which on large
    data cost more than an E-step."""
    K = cfg.n_components
    w = cfg.sample_weight
    labels = initial_labels(name, Xc, K, rng, cfg.covariance, w)
    resp = initial_resp(name, Xc, K, rng, cfg.covariance, w) if labels is None else None
    if w is not None or cfg.log_noise is not None:  # weighted or noise: the general path
        return (one_hot(labels, K) if resp is None else resp), None
    if resp is not None:
        return None, stats_from_resp(Xc, cfg.covariance, resp)
    return None, stats_from_labels(Xc, cfg.covariance, labels, K)


def _best_of_portfolio(Xc, cfg, n_init, rng):
    """init="auto": short EM runs from every start, the best ones run to convergence."""
    short = []
    failure = None
    for name in _portfolio(n_init, cfg.n_components):
        label = f" {name} start"
        if cfg.progress:
            print(f"[fit_em] short run from a {name} start", file=sys.stderr)
        try:
            resp, stats = _start(name, Xc, cfg, rng)
            n_short = min(_AUTO_SHORT_ITER, cfg.max_iter)
            out = _run_em(Xc, resp, None, cfg, label, n_short, stats=stats)
        except cv.SingularCovarianceError as err:  # only with reg_covar=0: try the others
            failure = err
            continue
        short.append(dataclasses.replace(out, strategy=name))
    if not short:
        raise failure
    # the best short runs, and always mclust's own start, the hierarchical one, continue
    score = [r.objective if np.isfinite(r.objective) else -np.inf for r in short]
    order = sorted(range(len(short)), key=lambda i: -score[i])
    small = Xc.shape[0] * cfg.n_components <= _AUTO_ALL_FINAL_WORK
    n_final = len(short) if small else _AUTO_FINALISTS
    keep = set(order[:n_final]) | {i for i, r in enumerate(short) if r.strategy == _HC}
    finals = []
    for i in sorted(keep):
        try:
            finals.append(_continue_em(Xc, short[i], cfg, f" {short[i].strategy} start"))
        except cv.SingularCovarianceError as err:
            failure = err
    if not finals:
        raise failure
    return max(finals, key=lambda r: r.objective if np.isfinite(r.objective) else -np.inf)


_numba_available = gs.numba_available


def _collapse_check(model_full_cov, nk, covariance, data_cov, reg_covar):
    """Indices of collapsed components (see EMResult.collapsed) and a reason for each."""
    D = data_cov.shape[0]
    var = np.diag(data_cov)
    keep = var > 0  # constant features are reported separately
    found = []
    if not keep.any():
        return found
    # work in correlation units (same generalised eigenvalues) with a 1e-12 jitter, so a
    # rank-deficient data covariance (fewer distinct points than features, collinear
    # features) does not make the Cholesky factorisation fail
    s = np.sqrt(var[keep])
    ss = np.outer(s, s)
    C = data_cov[np.ix_(keep, keep)] / ss
    L = np.linalg.cholesky(C + 1e-12 * np.eye(C.shape[0]))
    for k in range(model_full_cov.shape[0]):
        if nk[k] < _COLLAPSE_MIN_NK:
            found.append((k, f"only {nk[k]:.3g} effective points"))
            continue
        S = model_full_cov[k][np.ix_(keep, keep)]
        # a data variance near the underflow limit (1e-286) against reg_covar overflows
        # the ratio: such a component is far from collapsed (rel = inf, not flagged)
        with np.errstate(over="ignore", invalid="ignore"):
            Z = np.linalg.solve(L, np.linalg.solve(L, S / ss).T)
            rel = (
                float(np.linalg.eigvalsh(0.5 * (Z + Z.T)).min()) if np.isfinite(Z).all() else np.inf
            )
        eig_abs = float(np.linalg.eigvalsh(S).min())
        if rel < _COLLAPSE_REL_EIG:
            found.append((k, f"covariance eigenvalue {rel:.2g} x the data variance"))
        elif reg_covar > 0 and eig_abs <= 2.0 * reg_covar:
            found.append((k, f"covariance eigenvalue {eig_abs:.2g} set by reg_covar={reg_covar:g}"))
    del D
    return found


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
):
    r"""Fit a Gaussian mixture by EM: maximum likelihood, or MAP under a conjugate prior.

    Parameters
    ----------
    X : array_like, pandas.DataFrame or dask.array.Array, shape (N, D)
        Data; DataFrame column names become ``feature_names``. A ``dask.array.Array``
        (or an ``xarray.DataArray`` backed by one, e.g. ``dask.array.from_zarr(store)``)
        is fitted chunk by chunk: each EM iteration is one Dask computation in which
        every row chunk runs the E-step and returns its sufficient statistics, summed by
        a tree reduction, with the M-step on the client (:mod:`bayesmix._dask`); the
        initialisation is k-means|| (:func:`bayesmix.kmeans` on Dask input). The result
        is the same :class:`EMResult`, with ``labels`` a lazy Dask array.
    n_components : int
        Number of components K, ``1 <= K <= N``.
    covariance : {"full", "diag", "spherical", "tied"}, default "full"
        Covariance type (``"diagonal"`` is accepted for ``"diag"``).
    prior : GMMPrior, optional
        ``None`` (default): maximum likelihood. A :class:`bayesmix.GMMPrior` with
        ``covariance_prior="conjugate"`` and ``weight_concentration >= 1``: the MAP
        estimate, with the M-step of :mod:`bayesmix.priors`, i.e. the mode of the
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
        (``bayesmix._dask.PERSIST_FRACTION``) of the available memory (the workers'
        memory limits under a ``dask.distributed`` client, else the machine's).

    Returns
    -------
    EMResult

    Raises
    ------
    ValueError
        Bad data (NaN/inf, 1-D, non-numeric: see :func:`bayesmix._validation.check_data`),
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
    >>> nz = bm.fit_em(X, 2, noise=True, random_seed=0)
    >>> nz.predict_proba(X).shape
    (272, 3)
    """
    if _dask.is_dask(X):
        return _dask.fit_em_dask(sys.modules[__name__], X, n_components, **_dask_keywords(locals()))
    X, feature_names = check_data(X, return_names=True)
    N, D = X.shape
    w = check_sample_weight(sample_weight, N)
    K = check_n_components(n_components, N if w is None else int(np.count_nonzero(w)))
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
    _check_constant_features(X if w is None else X[w > 0], feature_names, prior, reg_covar)

    # fit in a frame centred at the data mean (accurate raw-moment statistics)
    shift = X.mean(axis=0) if w is None else np.average(X, axis=0, weights=w)
    Xc = np.ascontiguousarray(X - shift)
    cfg = _RunSettings(
        covariance=covariance,
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

    collapsed = _warn_fit_problems(best, X, cfg)
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
    )


# =========================================================================== fit_em's stages
def _noise_volume(noise, X):
    """The noise component's hypervolume (None without one)."""
    if noise is False or noise is None:
        return None
    if noise is True:
        volume = float(np.prod(np.ptp(X, axis=0)))
        if not (np.isfinite(volume) and volume > 0):
            raise ValueError(
                f"noise=True needs a positive bounding-box volume, but the data's feature ranges "
                f"{np.ptp(X, axis=0).tolist()} give {volume:g} (a constant feature, or fewer than "
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
    covariance = check_covariance_type(covariance)
    n_init = check_int(n_init, "n_init", minimum=1)
    max_iter = check_int(max_iter, "max_iter", minimum=0)
    tol = check_positive(tol, "tol", strict=False)
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {list(_ENGINES)}; got {engine!r}.")
    if prior is not None:
        check_prior(prior, X.shape[1], covariance, n_components=K, method="em")
    if reg_covar is None:
        reg_covar = 1e-6 if prior is None else 0.0
    reg_covar = check_positive(reg_covar, "reg_covar", strict=False)
    init_parsed, init_name = _parse_init(init, X, K, n_init)
    rng = check_random_state(random_seed)
    return covariance, n_init, max_iter, tol, reg_covar, init_parsed, init_name, rng


def _dask_keywords(arguments):
    """fit_em's keyword arguments, passed on to :func:`bayesmix._dask.fit_em_dask`."""
    return {k: v for k, v in arguments.items() if k not in ("X", "n_components")}


def _parse_init(init, X, K, n_init):
    """``(parsed init, name recorded in the result)`` for a string or an array init."""
    if isinstance(init, str):
        if init not in _INIT_METHODS:
            raise ValueError(
                f"init must be one of {list(_INIT_METHODS)} or an array of responsibilities "
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
    best, cfg, n_obs, feature_names, *, collapsed, n_init, init, random_seed, noise_volume=None
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
    )
