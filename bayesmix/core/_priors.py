r"""Prior objects shared by the EM (MAP) fit and the PyMC model builders.

One :class:`GMMPrior` given to :func:`bayesmix.fit_em` and to
:func:`bayesmix.build_gmm` defines one posterior: ``fit_em`` returns its mode
(in the parameterisation weights / means / covariance matrices) and ``sample``
explores it.

Densities
---------
With :math:`K` components, :math:`D` features, and the prior's fields
``weight_concentration`` :math:`=\alpha`, ``mean`` :math:`=m_0`,
``mean_shrinkage`` :math:`=\kappa_0`, ``dof`` :math:`=\nu_0` and
``scale`` :math:`=\Psi_0` (a :math:`D\times D` SPD matrix):

* weights: :math:`\pi \sim \mathrm{Dirichlet}(\alpha, \dots, \alpha)` (density on
  the simplex, as ``scipy.stats.dirichlet``).
* ``covariance="full"``: :math:`\Sigma_k \sim \mathrm{InvWishart}(\nu_0, \Psi_0)`
  (``scipy.stats.invwishart(df=nu0, scale=Psi0)``) and
  :math:`\mu_k \mid \Sigma_k \sim N(m_0, \Sigma_k / \kappa_0)`:
  the normal-inverse-Wishart prior.
* ``covariance="tied"``: one :math:`\Sigma \sim \mathrm{InvWishart}(\nu_0, \Psi_0)`
  shared by all components, :math:`\mu_k \mid \Sigma \sim N(m_0, \Sigma/\kappa_0)`.
* ``covariance="diag"``: per feature :math:`\sigma^2_{kj} \sim
  \mathrm{InvGamma}(\nu_0/2, \psi_j/2)` with :math:`\psi_j = (\Psi_0)_{jj}`
  (``scipy.stats.invgamma(a=nu0/2, scale=psi_j/2)``) and
  :math:`\mu_{kj} \mid \sigma^2_{kj} \sim N(m_{0j}, \sigma^2_{kj}/\kappa_0)`.
* ``covariance="spherical"``: :math:`\sigma^2_k \sim \mathrm{InvGamma}(\nu_0/2,
  \psi/2)` with :math:`\psi = \mathrm{tr}(\Psi_0)/D` and
  :math:`\mu_k \mid \sigma^2_k \sim N(m_0, \sigma^2_k I / \kappa_0)`.

All densities are normalised; :meth:`GMMPrior.log_prior` evaluates their sum in
closed form (numpy; checked against scipy.stats and the textbook densities in the
tests), independently of the EM and PyMC code. It is the MAP objective's prior term,
evaluated at every EM iteration: scipy.stats' frozen distributions cost about 2 ms a
call there, most of the EM start of a DP or MFM Gibbs run.

MAP updates (M-step with responsibilities :math:`r_{nk}`, :math:`N_k = \sum_n r_{nk}`,
weighted mean :math:`\bar x_k` and scatter :math:`S_k = \sum_n r_{nk}(x_n-\bar x_k)(x_n-\bar x_k)^T`;
Fraley & Raftery 2007):

* :math:`\hat\pi_k = (N_k + \alpha - 1) / (N + K(\alpha - 1))` (needs :math:`\alpha \ge 1`).
* :math:`\hat\mu_k = (N_k \bar x_k + \kappa_0 m_0)/(N_k + \kappa_0)`.
* full: :math:`\hat\Sigma_k = [\Psi_0 + S_k + \tfrac{\kappa_0 N_k}{\kappa_0 + N_k}(\bar x_k - m_0)(\bar x_k - m_0)^T] / (\nu_0 + N_k + D + 2)`.
* diag: :math:`\hat\sigma^2_{kj} = [\psi_j + (S_k)_{jj} + \tfrac{\kappa_0 N_k}{\kappa_0+N_k}(\bar x_{kj}-m_{0j})^2] / (\nu_0 + N_k + 3)`.
* spherical: :math:`\hat\sigma^2_k = [\psi + \mathrm{tr} S_k + \tfrac{\kappa_0 N_k}{\kappa_0+N_k}\lVert\bar x_k-m_0\rVert^2] / (\nu_0 + 2 + D(N_k + 1))`.
* tied: :math:`\hat\Sigma = [\Psi_0 + \sum_k (S_k + \tfrac{\kappa_0 N_k}{\kappa_0 + N_k}(\bar x_k - m_0)(\bar x_k - m_0)^T)] / (\nu_0 + N + D + 1 + K)`.

Defaults (:meth:`GMMPrior.from_data`, after mclust's ``priorControl``):
:math:`m_0` = data mean, :math:`\kappa_0 = 0.01`, :math:`\nu_0 = D + 2`,
:math:`\Psi_0 = \mathrm{cov}(X) / K^{2/D}`, :math:`\alpha = 1`. For the Dirichlet-process
model the concentration gets a Gamma(shape=1, rate=1) prior.

``covariance_prior="lkj"`` replaces the inverse-Wishart by PyMC's
``LKJCholeskyCov`` (correlation matrix ~ LKJ(``lkj_eta``), standard deviations
~ HalfNormal(``2 * sqrt(diag(Psi_0) * K^{2/D})``), i.e. twice the data's standard
deviations) with :math:`\mu_k \sim N(m_0, \mathrm{diag}(\Psi_0)/\kappa_0)`. It is
available in the PyMC builders only: it has no closed-form MAP, so ``fit_em``
rejects it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy.special import gammaln, multigammaln

from bayesmix.core._constants import LOG_2PI
from bayesmix.core._validation import (
    EM_COVARIANCE_TYPES,
    check_covariance_type,
    check_data,
    check_n_components,
    check_positive,
)

_LOG2 = float(np.log(2.0))

__all__ = ["GMMPrior", "check_prior", "default_prior"]

_COVARIANCE_PRIORS = ("conjugate", "lkj")


@dataclass(frozen=True, eq=False)
class GMMPrior:
    """Prior on the parameters of a Gaussian mixture (see the module docstring).

    Parameters
    ----------
    mean : ndarray, shape (D,)
        Prior mean of the component means, :math:`m_0`.
    scale : ndarray, shape (D, D)
        Inverse-Wishart scale :math:`\\Psi_0` (SPD). Diagonal and spherical models use
        its diagonal and its mean diagonal.
    dof : float
        Degrees of freedom :math:`\\nu_0`; must exceed ``D - 1``.
    mean_shrinkage : float
        :math:`\\kappa_0 > 0`: the prior on a mean is worth this many observations.
    weight_concentration : float
        Symmetric Dirichlet parameter :math:`\\alpha > 0` (``fit_em`` needs ``>= 1``).
    covariance_prior : {"conjugate", "lkj"}
        ``"conjugate"`` (default) gives the normal-inverse-Wishart family above;
        ``"lkj"`` is for the PyMC builders only.
    lkj_eta : float
        LKJ shape when ``covariance_prior="lkj"``.
    dp_concentration : tuple of float
        (shape, rate) of the Gamma prior on the Dirichlet-process concentration.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> prior = GMMPrior.from_data(X, n_components=2)
    >>> prior.dof
    4.0
    """

    mean: np.ndarray
    scale: np.ndarray
    dof: float
    mean_shrinkage: float = 0.01
    weight_concentration: float = 1.0
    covariance_prior: str = "conjugate"
    lkj_eta: float = 2.0
    dp_concentration: tuple = field(default=(1.0, 1.0))

    def __post_init__(self):
        mean = np.atleast_1d(np.asarray(self.mean, dtype=float))
        if mean.ndim != 1 or not np.all(np.isfinite(mean)):
            raise ValueError(f"prior mean must be a finite 1-D array; got {self.mean!r}.")
        D = mean.size
        scale = np.asarray(self.scale, dtype=float)
        if scale.ndim == 0:
            scale = scale * np.eye(D)
        elif scale.ndim == 1:
            scale = np.diag(scale)
        if scale.shape != (D, D):
            raise ValueError(
                f"prior mean has D={D} entries but the prior scale has shape {scale.shape}; "
                f"they must agree on the number of features: give a ({D}, {D}) scale or a "
                f"mean of length {scale.shape[0] if scale.ndim else '?'}."
            )
        if not np.allclose(scale, scale.T) or np.any(np.linalg.eigvalsh(scale) <= 0):
            raise ValueError("prior scale must be symmetric positive definite.")
        dof = check_positive(self.dof, "dof")
        if dof <= D - 1:
            raise ValueError(f"prior dof must be > D - 1 = {D - 1}; got {dof}.")
        if self.covariance_prior not in _COVARIANCE_PRIORS:
            raise ValueError(
                f"covariance_prior must be one of {list(_COVARIANCE_PRIORS)}; got "
                f"{self.covariance_prior!r}."
            )
        a, b = self.dp_concentration
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "dof", dof)
        object.__setattr__(
            self, "mean_shrinkage", check_positive(self.mean_shrinkage, "mean_shrinkage")
        )
        object.__setattr__(
            self,
            "weight_concentration",
            check_positive(self.weight_concentration, "weight_concentration"),
        )
        object.__setattr__(self, "lkj_eta", check_positive(self.lkj_eta, "lkj_eta"))
        object.__setattr__(
            self,
            "dp_concentration",
            (check_positive(a, "dp_concentration[0]"), check_positive(b, "dp_concentration[1]")),
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def mclust_default(cls, X, n_components, covariance="VVV"):
        """R mclust's ``defaultPrior(X, G, modelName)`` (``priorControl()``) as a prior.

        Shrinkage 0.01, the column means, ``dof = D + 2`` and the scale
        ``(1 / G)^(2 / D)`` times the data covariance (ellipsoidal models: EEE, VEE,
        EVE, VVE, EEV, VEV, EVV, VVV) or times the mean of the column variances times the
        identity (spherical and diagonal models), with R's ``var`` (``n - 1``); no prior
        on the weights (``weight_concentration = 1``). Checked against mclust 6.0.0's
        values (benchmarks/mclust_default_prior.csv).

        Parameters
        ----------
        X : array_like, shape (N, D)
            Complete data (mclust has no missing values), N >= 2.
        n_components : int
            G, the number of components.
        covariance : str, default "VVV"
            One of mclust's 14 model names or bayesmix's aliases ("full" is VVV).

        Returns
        -------
        GMMPrior

        Examples
        --------
        >>> import numpy as np
        >>> X = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
        >>> GMMPrior.mclust_default(X, 2, "VII").scale
        array([[4.25, 0.  ],
               [0.  , 4.25]])
        """
        from bayesmix.core._mclust_models import BASE_TYPE, MODEL_OF_TYPE

        name = check_covariance_type(covariance, allowed=EM_COVARIANCE_TYPES)
        model = MODEL_OF_TYPE.get(name, name)
        X = check_data(X)
        N, D = X.shape
        K = check_n_components(n_components)
        if N < 2:
            raise ValueError(
                f"GMMPrior.mclust_default needs at least 2 rows of X for its covariance; got {N}."
            )
        fac = (1.0 / K) ** (2.0 / D)
        if BASE_TYPE[model] in ("spherical", "diag"):
            scale = fac * float(X.var(axis=0, ddof=1).mean()) * np.eye(D)
        else:
            scale = fac * np.atleast_2d(np.cov(X, rowvar=False))
        return cls(mean=X.mean(axis=0), scale=scale, dof=D + 2.0, mean_shrinkage=0.01)

    @classmethod
    def from_data(cls, X, n_components, **overrides):
        """Data-scaled default prior (after mclust's ``priorControl``).

        Parameters
        ----------
        X : array_like, shape (N, D)
        n_components : int
            K; the covariance scale is ``cov(X) / K**(2/D)``.
        **overrides
            Any field of :class:`GMMPrior` to set explicitly.

        Returns
        -------
        GMMPrior
        """
        X = check_data(X, missing="mar")
        N, D = X.shape
        K = check_n_components(n_components)
        _check_overrides_match(overrides, D)
        gaps = np.isnan(X).any()
        if gaps:  # missing values: observed means, pairwise-complete covariance
            cov = _pairwise_cov(X)
        elif N > 1:
            cov = np.atleast_2d(np.cov(X, rowvar=False))
        else:
            cov = np.eye(D)
        # guard constant features: the prior scale must be SPD
        var = np.diag(cov).copy()
        floor = 1e-6 * max(float(var.max()), 1.0) if var.size else 1e-6
        cov = cov + np.eye(D) * np.where(var <= floor, floor, 0.0)
        if np.any(np.linalg.eigvalsh(cov) <= 0):
            cov = cov + np.eye(D) * floor
        mean = np.nanmean(X, axis=0) if gaps else X.mean(axis=0)
        params = dict(mean=mean, scale=cov / K ** (2.0 / D), dof=D + 2.0)
        params.update(overrides)
        return cls(**params)

    @classmethod
    def from_sklearn(
        cls,
        X,
        n_components,
        covariance="full",
        *,
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
    ):
        """scikit-learn's ``BayesianGaussianMixture`` prior, its defaults included.

        ===============================  ==========================================
        scikit-learn (default)           GMMPrior
        ===============================  ==========================================
        ``weight_concentration_prior``   ``weight_concentration`` (``1 / K``); for the
                                         DP, :func:`bayesmix.fit_vi`'s fixed
                                         ``dp_concentration``
        ``mean_precision_prior`` (1)     ``mean_shrinkage``
        ``mean_prior`` (data mean)       ``mean``
        ``degrees_of_freedom_prior`` (D) ``dof``
        ``covariance_prior``             ``scale``: (D, D) full/tied, (D,) diag, a float
        (``cov(X)``; its diagonal for    spherical (``scale * I``, whose mean diagonal
        diag, mean for spherical)        is the spherical prior's ``psi``)
        ===============================  ==========================================

        Parameters
        ----------
        X : array_like, shape (N, D)
            The data, for the defaults.
        n_components : int
            K (the default weight concentration is ``1 / K``).
        covariance : {"full", "tied", "diag", "spherical"}, default "full"
            Sets the shape of the default ``covariance_prior``.
        weight_concentration_prior, mean_precision_prior, mean_prior, \
degrees_of_freedom_prior, covariance_prior : optional
            scikit-learn's parameters (``None``: scikit-learn's default).

        Returns
        -------
        GMMPrior

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(50, 3))
        >>> p = GMMPrior.from_sklearn(X, 4)
        >>> p.dof, p.mean_shrinkage, p.weight_concentration
        (3.0, 1.0, 0.25)
        """
        X = check_data(X)
        D = X.shape[1]
        K = check_n_components(n_components)
        covariance = check_covariance_type(covariance)
        scale = covariance_prior
        if scale is None:
            cov = np.atleast_2d(np.cov(X, rowvar=False))
            if covariance == "diag":
                scale = np.diag(cov).copy()
            elif covariance == "spherical":
                scale = float(np.diag(cov).mean())
            else:
                scale = cov
        return cls(
            mean=X.mean(axis=0) if mean_prior is None else mean_prior,
            scale=scale,
            dof=float(D) if degrees_of_freedom_prior is None else degrees_of_freedom_prior,
            mean_shrinkage=1.0 if mean_precision_prior is None else mean_precision_prior,
            weight_concentration=(
                1.0 / K if weight_concentration_prior is None else weight_concentration_prior
            ),
        )

    def with_(self, **changes):
        """Return a copy with some fields changed.

        Parameters
        ----------
        **changes
            Field names and their new values, e.g. ``weight_concentration=0.5``.

        Returns
        -------
        GMMPrior
        """
        return replace(self, **changes)

    @property
    def n_features(self):
        return self.mean.size

    # ------------------------------------------------------------------ per type
    def covariance_scale(self, covariance):
        """The scale parameter used by a covariance type.

        Parameters
        ----------
        covariance : {"full", "tied", "diag", "spherical"}

        Returns
        -------
        ndarray (D, D) for ``full``/``tied``, ndarray (D,) for ``diag`` (the
        inverse-gamma parameters :math:`\\psi_j`), float for ``spherical``.
        """
        covariance = check_covariance_type(covariance)
        if covariance in ("full", "tied"):
            return self.scale
        if covariance == "diag":
            return np.diag(self.scale).copy()
        return float(np.trace(self.scale) / self.n_features)

    def log_prior(self, weights, means, covariances, covariance="full"):
        """Log prior density of a parameter point, in closed form.

        Parameters
        ----------
        weights : ndarray, shape (K,)
        means : ndarray, shape (K, D)
        covariances : ndarray, shape (K, D, D)
            Full matrices; for ``diag`` only the diagonals are used, for
            ``spherical`` the (common) diagonal value, for ``tied`` the first matrix.
        covariance : str

        Returns
        -------
        float
        """
        covariance = check_covariance_type(covariance)
        if self.covariance_prior != "conjugate":
            raise ValueError(
                "log_prior is defined for covariance_prior='conjugate' only; got "
                f"{self.covariance_prior!r}."
            )
        weights = np.asarray(weights, dtype=float)
        means = np.asarray(means, dtype=float)
        covariances = np.asarray(covariances, dtype=float)
        K, D = means.shape
        lp = 0.0
        if K > 1:
            w = np.clip(weights, 1e-300, None)
            w = w / w.sum()
            a = self.weight_concentration
            lp += gammaln(K * a) - K * gammaln(a) + (a - 1.0) * np.log(w).sum()
        m0, k0, nu = self.mean, self.mean_shrinkage, self.dof
        dev = means - m0
        if covariance in ("full", "tied"):
            mats = covariances[:1] if covariance == "tied" else covariances
            L = np.linalg.cholesky(mats)  # (M, D, D); LinAlgError if not SPD
            logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(-1)
            inv = np.linalg.inv(mats)
            # inverse-Wishart(nu, Psi): Bartlett's normalising constant, closed form
            lp += mats.shape[0] * (
                0.5 * nu * np.linalg.slogdet(self.scale)[1]
                - 0.5 * nu * D * _LOG2
                - multigammaln(0.5 * nu, D)
            )
            lp += np.sum(
                -0.5 * (nu + D + 1.0) * logdet - 0.5 * np.einsum("ij,mji->m", self.scale, inv)
            )
            if covariance == "tied":
                logdet, inv = np.repeat(logdet, K), np.repeat(inv, K, axis=0)
            maha = np.einsum("ki,kij,kj->k", dev, inv, dev)
            lp += np.sum(-0.5 * (D * (LOG_2PI - np.log(k0)) + logdet + k0 * maha))
        else:
            if covariance == "diag":
                psi = self.covariance_scale("diag")
                v_ig = var = np.diagonal(covariances, axis1=1, axis2=2)
            else:
                psi = self.covariance_scale("spherical")
                v_ig = covariances[:, 0, 0]
                var = np.broadcast_to(v_ig[:, None], (K, D))
            a, b = 0.5 * nu, 0.5 * np.asarray(psi)
            lp += np.sum(a * np.log(b) - gammaln(a) - (a + 1.0) * np.log(v_ig) - b / v_ig)
            lp += np.sum(-0.5 * (LOG_2PI + np.log(var / k0)) - 0.5 * k0 * dev**2 / var)
        return float(lp)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self):
        """Plain-JSON representation (stored in fitted results' attrs)."""
        d = asdict(self)
        d["mean"] = self.mean.tolist()
        d["scale"] = self.scale.tolist()
        d["dp_concentration"] = list(self.dp_concentration)
        return d

    def to_json(self):
        """The prior as a JSON string (stored in a posterior's ``prior`` attribute).

        Returns
        -------
        str
        """
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d):
        """Rebuild a prior from :meth:`to_dict` output (keys and values checked).

        Parameters
        ----------
        d : dict
            GMMPrior fields; ``mean``, ``scale`` and ``dof`` are required.

        Returns
        -------
        GMMPrior

        Examples
        --------
        >>> GMMPrior.from_dict({"mean": [0.0], "scale": [[1.0]], "dof": 3.0}).dof
        3.0
        """
        if not isinstance(d, dict):
            raise TypeError(f"prior must be a dict of GMMPrior fields; got {type(d).__name__}.")
        fields = set(cls.__dataclass_fields__)
        missing = sorted({"mean", "scale", "dof"} - set(d))
        unknown = sorted(set(d) - fields)
        if missing or unknown:
            raise ValueError(
                "prior dict "
                + (f"lacks the required key(s) {missing}" if missing else "")
                + (" and " if missing and unknown else "")
                + (f"has unknown key(s) {unknown}" if unknown else "")
                + f"; GMMPrior fields are {sorted(fields)}."
            )
        d = dict(d)
        d["dp_concentration"] = tuple(d.get("dp_concentration", (1.0, 1.0)))
        return cls(**d)

    def __eq__(self, other):
        if not isinstance(other, GMMPrior):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self):
        return (
            f"GMMPrior(D={self.n_features}, mean_shrinkage={self.mean_shrinkage}, dof={self.dof}, "
            f"weight_concentration={self.weight_concentration}, "
            f"covariance_prior={self.covariance_prior!r})"
        )


def _check_overrides_match(overrides, D):
    """An explicit prior mean / scale must have the data's number of features D."""
    if "mean" in overrides:
        mean = np.atleast_1d(np.asarray(overrides["mean"], dtype=float))
        if mean.ndim != 1 or mean.size != D:
            raise ValueError(
                f"prior mean must have one entry per feature of X (D={D}); got shape "
                f"{mean.shape}. Give a mean of length {D}."
            )
    if "scale" in overrides:
        scale = np.asarray(overrides["scale"], dtype=float)
        if scale.ndim > 0 and scale.shape not in ((D,), (D, D)):
            raise ValueError(
                f"prior scale must be a ({D}, {D}) matrix (or {D} variances, or a scalar) "
                f"for X with D={D} features; got shape {scale.shape}."
            )


def default_prior(X, n_components, **overrides):
    """Shortcut for :meth:`GMMPrior.from_data`.

    Parameters
    ----------
    X : array_like or pandas.DataFrame, shape (N, D)
        The data the prior is scaled to.
    n_components : int
        Number of components K (the covariance scale is shrunk by ``K^(2/D)``).
    **overrides
        Prior fields to set instead of their data-derived defaults.

    Returns
    -------
    GMMPrior

    Examples
    --------
    >>> import numpy as np
    >>> prior = default_prior(np.eye(3) * 2.0, n_components=1)
    >>> prior.mean.shape
    (3,)
    """
    return GMMPrior.from_data(X, n_components, **overrides)


def check_prior(prior, n_features, covariance, *, n_components=1, method="pymc"):
    """Check that ``prior`` is a :class:`GMMPrior` that ``method`` can use on this data.

    The one prior check of the package (:func:`bayesmix.fit_em` and the model builders).

    Parameters
    ----------
    prior : GMMPrior
        The prior to check (``None`` is the caller's business: maximum likelihood for
        :func:`bayesmix.fit_em`, a default prior for the model builders).
    n_features : int
        Number of features D of the data.
    covariance : str
        Canonical covariance type of the fit.
    n_components : int, default 1
        Number of components K (the MAP needs ``weight_concentration >= 1`` when K > 1).
    method : {"pymc", "em"}, default "pymc"
        ``"pymc"``: the LKJ covariance prior needs ``covariance="full"``. ``"em"``: the
        MAP M-step needs the conjugate covariance prior and a Dirichlet density that is
        bounded (``weight_concentration >= 1``).

    Returns
    -------
    GMMPrior
        ``prior``, unchanged.

    Raises
    ------
    TypeError
        If ``prior`` is not a :class:`GMMPrior`.
    ValueError
        If it does not match the data or the method, with what to change.

    Examples
    --------
    >>> import numpy as np
    >>> prior = GMMPrior.from_data(np.eye(3) * 2.0, 1)
    >>> check_prior(prior, 3, "full") is prior
    True
    """
    if not isinstance(prior, GMMPrior):
        raise TypeError(
            "prior must be a bayesmix.GMMPrior or None (for fit_em: None is maximum likelihood, "
            f"a GMMPrior the MAP); got {type(prior).__name__}. Build one with "
            "bayesmix.GMMPrior.from_data(X, n_components)."
        )
    if prior.n_features != n_features:
        raise ValueError(
            f"prior has {prior.n_features} features but X has {n_features}; build the prior "
            "from the same data (bayesmix.GMMPrior.from_data(X, n_components))."
        )
    if method == "em":
        _check_em_prior(prior, n_components)
    elif prior.covariance_prior == "lkj" and covariance != "full":
        raise ValueError(
            f"covariance_prior='lkj' is available for covariance='full' only; got "
            f"covariance={covariance!r}. Use covariance='full' or covariance_prior='conjugate'."
        )
    return prior


def _check_em_prior(prior, n_components):
    """The MAP by EM needs a closed-form M-step and an interior posterior mode."""
    if prior.covariance_prior != "conjugate":
        raise ValueError(
            f"fit_em needs prior.covariance_prior='conjugate'; got {prior.covariance_prior!r}. "
            "The LKJ prior has no closed-form MAP M-step: use prior.with_(covariance_prior="
            "'conjugate') for EM, and keep the LKJ prior for the PyMC model."
        )
    if n_components > 1 and prior.weight_concentration < 1.0:
        raise ValueError(
            f"prior.weight_concentration={prior.weight_concentration} < 1: the Dirichlet "
            "density is unbounded at the edges of the simplex, so the posterior has no "
            "interior mode and the MAP is not defined. Use weight_concentration >= 1 for "
            "fit_em (the PyMC model can keep the sparse prior)."
        )


def _em_compatible(prior):
    """``prior`` made acceptable to :func:`bayesmix.fit_em` for a sampler's EM start.

    The conjugate covariance prior in place of the LKJ one, and ``weight_concentration``
    raised to 1 (a bounded Dirichlet density); ``prior`` itself when it already is.
    """
    if prior.covariance_prior != "conjugate":
        prior = prior.with_(covariance_prior="conjugate")
    if prior.weight_concentration < 1:
        prior = prior.with_(weight_concentration=1.0)
    return prior


def _pairwise_cov(X):
    """Covariance of data with NaN from the pairwise-complete rows (ddof 1); its diagonal
    when that matrix is not positive definite (or a pair has under two common rows)."""
    obs = (~np.isnan(X)).astype(float)
    X0 = np.where(obs > 0, X, 0.0)
    n = obs.T @ obs
    with np.errstate(invalid="ignore", divide="ignore"):
        sx = X0.T @ obs  # sum of x_i over the rows where j is observed too
        cov = (X0.T @ X0 - sx * sx.T / n) / (n - 1.0)
    m = np.diag(n)  # observed entries per column
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = X0.sum(axis=0) / m
        var = (((X0 - mean) * obs) ** 2).sum(axis=0) / (m - 1.0)  # NaN/inf when m < 2
    diag = np.diag(np.where(np.isfinite(var), var, 1.0))
    if not np.isfinite(cov).all() or np.linalg.eigvalsh(cov).min() <= 0:
        return diag
    return cov
