"""The result of a variational fit, :class:`VIResult`: posterior means, the variational
parameters, the evidence lower bound, and prediction on new data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayesmix.core import _dask
from bayesmix.core import _gaussian as gs
from bayesmix.core._priors import GMMPrior
from bayesmix.core._validation import MissingValueError, check_data
from bayesmix.core._validation import match_columns as _match_columns
from bayesmix.em import _vi_math as vm

__all__ = ["VIResult"]

_SCORE_KINDS = ("predictive", "plugin", "expected")


@dataclass(frozen=True, eq=False)
class VIResult:
    r"""A mean-field variational posterior of a Gaussian mixture, from :func:`fit_vi`.

    Attributes
    ----------
    weights : ndarray, shape (K,)
        Posterior means :math:`E_q[\pi_k]` (sum to 1; for the truncated DP the
        stick-breaking means :math:`E[v_k]\prod_{j<k}(1 - E[v_j])`, last stick 1).
    means : ndarray, shape (K, D)
        Posterior means :math:`E_q[\mu_k] = m_k`.
    covariances : ndarray, shape (K, D, D)
        Posterior means :math:`E_q[\Sigma_k]` as full matrices: ``Psi_k / (nu_k - D - 1)``
        (full, tied: the shared matrix repeated), ``Psi_kj / (nu_k - 2)`` on the diagonal
        (diag, spherical). NaN for a component whose posterior mean does not exist
        (``nu_k <= D + 1`` full and tied,
        ``nu_k <= 2`` otherwise; only with a prior ``dof`` below the default and an
        empty component). scikit-learn's ``covariances_`` is instead
        ``E[Lambda_k]^{-1} = Psi_k / nu_k`` (:attr:`precisions` inverted).
    precisions : ndarray, shape (K, D, D)
        :math:`E_q[\Lambda_k]` (full matrices), the inverse of scikit-learn's
        ``covariances_``.
    mean_precision : ndarray, shape (K,)
        :math:`\beta_k` (scikit-learn's ``mean_precision_``).
    degrees_of_freedom : ndarray, shape (K,)
        :math:`\nu_k`: inverse-Wishart degrees of freedom (full; tied: ``nu_0 + N`` for
        every k), twice the inverse-gamma shape (diag, spherical; ``nu_0 + D N_k`` for
        spherical).
    scale : ndarray
        :math:`\Psi_k`: the inverse-Wishart scales (K, D, D) (full) or the shared (D, D)
        (tied), twice the inverse-gamma scales (K, D) (diag) or (K,) (spherical).
    weight_concentration : ndarray
        The Dirichlet parameters (K,) of a finite mixture, or the Beta parameters
        (K - 1, 2) of the sticks of the truncated DP.
    dp_concentration : tuple or None
        DP only: ``("gamma", shape, rate)`` of q(alpha), or ``("fixed", alpha)``.
    elbo : float
        The evidence lower bound at the returned parameters (every normalising constant
        included: a lower bound on ``log p(X)``).
    elbo_history : tuple of float
        The ELBO after every update (one M-step and one E-step); non-decreasing.
    n_iter : int
    converged : bool
    covariance : str
    truncation : int or None
        The DP's truncation level (``None`` for a finite mixture).
    prior : GMMPrior
    labels : ndarray of int, shape (N,)
        Most probable component of every training row under q(z).
    n_obs, feature_names, tol, max_iter, init, random_seed :
        The data and settings.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions: np.ndarray
    mean_precision: np.ndarray
    degrees_of_freedom: np.ndarray
    scale: np.ndarray
    weight_concentration: np.ndarray
    dp_concentration: tuple | None
    elbo: float
    elbo_history: tuple
    n_iter: int
    converged: bool
    covariance: str
    truncation: int | None
    prior: GMMPrior
    labels: np.ndarray
    n_obs: int
    feature_names: list
    tol: float
    max_iter: int
    init: str
    random_seed: int | None = None
    _q: object = field(default=None, repr=False)  # the Components in the fitting frame
    _w: object = field(default=None, repr=False)  # the Weights
    _shift: np.ndarray = field(default=None, repr=False)
    _stats: tuple = field(default=None, repr=False)  # the last E-step's (nk, sx, sxx)

    @property
    def n_components(self):
        """K (the truncation level for the DP)."""
        return int(self.weights.shape[0])

    @property
    def n_features(self):
        return int(self.means.shape[1])

    # ------------------------------------------------------------------ prediction
    def _check_X(self, X):
        X = _match_columns(X, self.feature_names)
        try:
            X = check_data(X, check_scale=False, missing="error")
        except MissingValueError as err:
            raise MissingValueError(
                f"{err} VIResult's prediction methods do not handle missing values; fill "
                "them (bm.impute with an EM fit) or drop the rows."
            ) from None
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features but the mixture was fitted on {self.n_features} "
                f"({self.feature_names}); pass data with the same columns."
            )
        return X

    def _log_rho(self, X):
        """(N, K) ``E[log pi_k] + E[log N(x_n | mu_k, Lambda_k)]`` (the E-step's terms)."""
        prec, c = vm.estep_gaussian(self._q, self.covariance)
        lw = vm.e_log_weights(self._w, self.n_components) + c
        cov = vm.estep_type(self.covariance)
        lg = gs.log_gaussian_prob(X - self._shift, self._q.m, prec, cov, gs.FAR_ORDER)
        return lg + lw

    def predict_proba(self, X):
        r"""Variational membership probabilities :math:`q(z_n = k)`, ``∝ rho_nk``.

        The E-step of the fit (:math:`\rho_{nk} = \exp(E[\log\pi_k] + E[\log N(x_n\mid
        \mu_k, \Lambda_k)])`), as scikit-learn's ``BayesianGaussianMixture.predict_proba``.

        Parameters
        ----------
        X : array_like or dask.array.Array, shape (N, D)
            A Dask array gives a lazy Dask array.

        Returns
        -------
        ndarray, shape (N, K)
            Rows sum to 1.
        """
        if _dask.is_dask(X):
            return _dask.lazy_predict(self, X, "predict_proba")
        lr = self._log_rho(self._check_X(X))
        return np.exp(lr - gs.logsumexp_rows(lr)[:, None])

    def predict(self, X):
        """Most probable component of each row under :meth:`predict_proba`.

        Parameters
        ----------
        X : array_like, shape (N, D)

        Returns
        -------
        ndarray of int, shape (N,)
        """
        if _dask.is_dask(X):
            return _dask.lazy_predict(self, X, "predict")
        return np.argmax(self._log_rho(self._check_X(X)), axis=1)

    def score_samples(self, X, kind="predictive"):
        r"""Log density of every row.

        Parameters
        ----------
        X : array_like, shape (N, D)
        kind : {"predictive", "plugin", "expected"}, default "predictive"
            * ``"predictive"``: the posterior predictive density under q,
              :math:`\log\sum_k E[\pi_k]\,\mathrm{St}(x \mid \dots)`, a mixture of
              Student-t densities (Bishop eq. 10.81; see
              :func:`bayesmix.em._vi_math.log_predictive_components`). A normalised
              density: the one to compare held-out fits with.
            * ``"plugin"``: :math:`\log\sum_k E[\pi_k] N(x \mid E[\mu_k], E[\Sigma_k])`
              with the attributes ``weights``, ``means``, ``covariances``.
            * ``"expected"``: :math:`\log\sum_k \rho_{nk}`, the row's term of the ELBO
              (not a normalised density; a lower bound on the predictive one). This is
              what scikit-learn's ``BayesianGaussianMixture.score_samples`` returns.

        Returns
        -------
        ndarray, shape (N,)

        Examples
        --------
        >>> import numpy as np, bayesmix as bm
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> fit = bm.fit_vi(X, 2, random_seed=0)
        >>> fit.score_samples(X[:3]).shape
        (3,)
        """
        if kind not in _SCORE_KINDS:
            raise ValueError(f"kind must be one of {list(_SCORE_KINDS)}; got {kind!r}.")
        if _dask.is_dask(X) and kind == "predictive":
            return _dask.lazy_predict(self, X, "score_samples")
        X = self._check_X(X)
        if kind == "expected":
            return gs.logsumexp_rows(self._log_rho(X))
        if kind == "plugin":
            return gs.log_mixture_density(X, self.weights, self.means, self.covariances)
        lp = vm.log_predictive_components(X, self._q, self.covariance, self._shift)
        with np.errstate(divide="ignore"):
            lp = lp + np.log(self.weights)
        return gs.logsumexp_rows(lp)

    def score(self, X, kind="predictive"):
        """Mean of :meth:`score_samples` over the rows.

        Parameters
        ----------
        X : array_like, shape (N, D)
        kind : str
            As in :meth:`score_samples`.

        Returns
        -------
        float
        """
        return float(self.score_samples(X, kind).mean())

    def draws(self, n_draws=1000, random_seed=None):
        """Draws of (weights, means, covariances) from the variational posterior q.

        For intervals and comparisons with an MCMC posterior: ``bm.from_arrays(w[None],
        m[None], c[None], X)`` makes them a one-chain DataTree for ``bm.membership``,
        ``bm.compare_fits`` ... (mean-field q is narrower than the posterior: it
        ignores the dependence between labels and parameters).

        Parameters
        ----------
        n_draws : int, default 1000
        random_seed : int or numpy.random.Generator, optional

        Returns
        -------
        weights : ndarray, shape (n_draws, K)
        means : ndarray, shape (n_draws, K, D)
        covariances : ndarray, shape (n_draws, K, D, D)

        Examples
        --------
        >>> import numpy as np, bayesmix as bm
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> w, m, c = bm.fit_vi(X, 2, random_seed=0).draws(10, random_seed=1)
        >>> w.shape, m.shape, c.shape
        ((10, 2), (10, 2, 2), (10, 2, 2, 2))
        """
        from scipy import stats

        from bayesmix.core._validation import check_int, check_random_state

        S = check_int(n_draws, "n_draws", minimum=1)
        rng = check_random_state(random_seed)
        q, cov = self._q, self.covariance
        K, D = q.m.shape
        covs = np.zeros((S, K, D, D))
        for k in range(1 if cov == "tied" else K):
            if cov in ("full", "tied"):
                iw = stats.invwishart(df=q.nu[k], scale=q.psi[k])
                covs[:, k] = iw.rvs(size=S, random_state=rng).reshape(S, D, D)
            else:
                b = 0.5 * (q.psi[k] if cov == "diag" else np.full(D, q.psi[k]))
                size = (S, D) if cov == "diag" else (S, 1)
                var = b[: size[1]] / rng.gamma(0.5 * q.nu[k], size=size)
                covs[:, k, np.arange(D), np.arange(D)] = np.broadcast_to(var, (S, D))
        if cov == "tied":
            covs[:] = covs[:, :1]
        L = np.linalg.cholesky(covs / q.beta[None, :, None, None])
        z = rng.standard_normal((S, K, D))
        means = q.m + self._shift + np.einsum("skij,skj->ski", L, z)
        w = self._w
        if w.dirichlet is not None:
            weights = rng.dirichlet(w.dirichlet, size=S)
        elif K == 1:
            weights = np.ones((S, 1))
        else:
            v = rng.beta(w.sticks[:, 0], w.sticks[:, 1], size=(S, K - 1))
            rest = np.cumprod(1.0 - v, axis=1)
            weights = np.concatenate([v, np.ones((S, 1))], 1) * np.concatenate(
                [np.ones((S, 1)), rest], 1
            )
        return weights, means, covs

    def __repr__(self):
        kind = "finite" if self.truncation is None else f"DP(truncation={self.truncation})"
        return (
            f"VIResult({kind}, K={self.n_components}, D={self.n_features}, "
            f"covariance={self.covariance!r}, elbo={self.elbo:.4f}, n_iter={self.n_iter}, "
            f"converged={self.converged})"
        )
