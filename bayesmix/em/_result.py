"""The result of an EM fit, :class:`EMResult`: parameters, criteria (BIC, AIC, ICL) and
prediction on new data (``predict_proba``, ``predict``, ``score_samples``), serialisable
with ``to_dict`` / ``from_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayesmix.core import _covariance as cv
from bayesmix.core import (
    _dask,  # imports no Dask itself (only on Dask input)
    _missing,
)
from bayesmix.core import _gaussian as gs
from bayesmix.core import _mclust_models as mm
from bayesmix.core._priors import GMMPrior
from bayesmix.core._validation import (
    check_data,
    check_sample_weight,
)
from bayesmix.core._validation import (
    match_columns as _match_columns,
)

__all__ = ["EMResult"]


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
        The native covariance type of the fit, the representation its densities use:
        ``"spherical"``, ``"diag"``, ``"full"`` or ``"tied"`` (an ``EVE`` fit is
        ``"full"``, an ``EEI`` one ``"diag"``; see ``model_name``).
    model_name : str
        mclust's name of the covariance model (Celeux & Govaert 1995,
        :mod:`bayesmix.core._mclust_models`): ``"VII"``, ``"VVI"``, ``"VVV"`` or ``"EEE"``
        for ``covariance="spherical"``, ``"diag"``, ``"full"`` or ``"tied"``, or the name
        given to :func:`fit_em` (``"VEV"``, ...). It sets :attr:`n_parameters`. Filled in
        from ``covariance`` when not given (results saved before it existed).
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
    n_missing : int
        The number of missing (NaN) entries of the training data (0 without gaps); with
        gaps, ``log_likelihood`` and the criteria are observed-data quantities.
    noise_sides : tuple of float or None
        With a noise component: the side lengths (D,) of its box (product
        ``noise_volume``); on a row with gaps its density is ``1 / prod`` of the
        observed sides. ``None`` without noise (or in results saved before it existed:
        then rows with gaps use sides ``noise_volume ** (1 / D)``).

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
    n_missing: int = 0
    noise_sides: tuple | None = None
    model_name: str | None = None

    def __post_init__(self):
        if self.model_name is None:
            object.__setattr__(self, "model_name", mm.MODEL_OF_TYPE[self.covariance])
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
        """Number of free parameters: mclust's ``nVarParams`` of ``model_name`` + means +
        K - 1 weights (mclust's ``df``; for the four native types also scikit-learn's count).

        A noise component adds one (its weight; the volume is fixed), as mclust.
        """
        extra = 0 if self.noise_weight is None else 1
        K, D = self.n_components, self.n_features
        return mm.n_var_params(self.model_name, K, D) + K * D + K - 1 + extra

    # ------------------------------------------------------------------ prediction
    def _check_X(self, X):
        X = _match_columns(X, self.feature_names)
        # a point far from the data is valid input here (check_scale=False): the
        # densities below stay finite however far it is
        X = check_data(X, check_scale=False, missing="mar")
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features but the mixture was fitted on {self.n_features} "
                f"({self.feature_names}); pass data with the same columns."
            )
        return X

    def _log_joint(self, X, far_scale=gs.FAR_ORDER):
        """(N, K) ``log w_k + log N(x_n | mu_k, Sigma_k)``; points too far for float64 are
        evaluated ``far_scale`` Mahalanobis units out along their ray (see
        :func:`bayesmix.core._gaussian.log_gaussian_prob`). With a noise component, (N, K + 1)
        with ``log w_0 - log V`` last. Rows with NaN: on their observed coordinates."""
        pats = _missing.missing_patterns(X)
        if pats is not None:
            return self._log_joint_gaps(X, pats)
        lj = gs.backend("numpy").log_joint(
            X, self.weights, self.means, self.precisions_cholesky, far_scale=far_scale
        )
        if self.noise_weight is None:
            return lj
        with np.errstate(divide="ignore"):
            noise = np.log(self.noise_weight) - np.log(self.noise_volume)
        return np.column_stack([lj, np.full(X.shape[0], noise)])

    def _log_joint_gaps(self, X, pats):
        noise = None
        if self.noise_weight is not None:
            D = self.n_features
            sides = self.noise_sides or (self.noise_volume ** (1.0 / D),) * D
            with np.errstate(divide="ignore"):
                noise = (np.log(self.noise_weight), np.log(np.asarray(sides, dtype=float)))
        return _missing.log_joint_missing(
            X, pats, self.weights, self.means, self.covariances, noise=noise
        )

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
        return gs.logsumexp_rows(self._log_joint(self._check_X(X), gs.FAR_SCORE))

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
        return np.exp(lj - gs.logsumexp_rows(lj)[:, None])

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
        """Integrated completed likelihood criterion, mclust's definition (lower is better).

        ``ICL = BIC - 2 * sum_n log r_n,c(n)``, where ``c(n)`` is observation n's hard
        MAP classification (its most probable component) and ``r`` the responsibilities
        (Biernacki, Celeux & Govaert 2000; mclust 6's ``icl``: ``BIC + 2 * sum(C * log z)``
        with ``C`` the hard classification, on its higher-is-better scale, so mclust
        reports the negative of this value). ``icl(X) >= bic(X)``.

        Parameters
        ----------
        X : array_like, shape (N, D)
        sample_weight : array_like, shape (N,), optional
            As in :meth:`bic`; each row's classification term is weighted too.

        Returns
        -------
        float

        Examples
        --------
        >>> import bayesmix as bm
        >>> X = bm.load_old_faithful()
        >>> fit = bm.fit_em(X, 2, random_seed=0)
        >>> bool(fit.icl(X) >= fit.bic(X))
        True
        """
        X, w, n = self._weighted(X, sample_weight)
        lj = self._log_joint(X)
        lse = gs.logsumexp_rows(lj)
        log_r_map = lj.max(axis=1) - lse  # log responsibility of the MAP component, <= 0
        classification = float(log_r_map.sum() if w is None else w @ log_r_map)
        ll = float(lse.sum() if w is None else w @ lse)
        return -2.0 * ll + self.n_parameters * np.log(n) - 2.0 * classification

    # ------------------------------------------------------------------ I/O
    def to_dict(self):
        """Plain JSON-able dict (lists, floats, strings); ``labels`` are not included."""
        return {
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
            "covariance": self.covariance,
            "model_name": self.model_name,
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
            "n_missing": int(self.n_missing),
            "noise_sides": None if self.noise_sides is None else list(self.noise_sides),
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

        Raises
        ------
        ValueError
            When a stored covariance matrix is not symmetric positive definite (a fit
            never stores one: the dict is corrupt or was edited).
        """
        d = dict(d)
        cov = np.asarray(d.pop("covariances"), dtype=float)
        _check_stored_covariances(cov)
        prior = d.pop("prior")
        return cls(
            weights=np.asarray(d.pop("weights"), dtype=float),
            means=np.asarray(d.pop("means"), dtype=float),
            covariances=cov,
            precisions_cholesky=cv.precision_cholesky_full(cov),
            prior=None if prior is None else GMMPrior.from_dict(prior),
            history=tuple(d.pop("history")),
            collapsed=tuple(d.pop("collapsed", ())),
            noise_sides=None if d.get("noise_sides") is None else tuple(d["noise_sides"]),
            **{k: v for k, v in d.items() if k != "noise_sides"},
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
        own = mm.MODEL_OF_TYPE.get(self.covariance) == self.model_name
        model = "" if own else f", model_name={self.model_name!r}"
        return (
            f"EMResult({kind}, covariance={self.covariance!r}{model}, K={self.n_components}, "
            f"D={self.n_features}, N={self.n_obs}, {obj}, weights={w}, n_iter={self.n_iter}, "
            f"converged={self.converged}{extra})"
        )


def _check_stored_covariances(cov):
    """Each stored covariance (K, D, D) must be symmetric positive definite."""
    if cov.ndim != 3 or cov.shape[1] != cov.shape[2]:
        raise ValueError(
            f"the stored covariances have shape {cov.shape}, expected (K, D, D): the dict is "
            "corrupt or was edited; save the fit again (EMResult.to_dict)."
        )
    for k, c in enumerate(cov):
        try:
            symmetric = np.abs(c - c.T).max() <= 1e-8 * np.abs(c).max()
            ok = symmetric and np.linalg.cholesky(c) is not None
        except np.linalg.LinAlgError:
            ok = False
        if not ok:
            raise ValueError(
                f"the stored covariance of component {k} (covariances[{k}]) is not symmetric "
                "positive definite; a fit never stores such a matrix, so the dict is corrupt "
                "or was edited. Save the fit again (EMResult.to_dict) from the original fit."
            )
