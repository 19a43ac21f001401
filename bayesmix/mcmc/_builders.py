r"""PyMC model builders: finite (:func:`build_gmm`) and Dirichlet-process
(:func:`build_dpgmm`) Gaussian mixtures.

Parameterisation
----------------
The value variables are the quantities :func:`bayesmix.fit_em` maximises over, each
with a transform to unconstrained space, so ``model.logp(jacobian=False)`` is exactly
the log posterior density EM maximises (log-likelihood + :meth:`GMMPrior.log_prior`,
all normalising constants included) and ``pymc.find_MAP`` started at the EM MAP does
not move; sampling uses ``jacobian=True`` and is correct in any case.

===============  ===================================================================
covariance       free variables (dims)
===============  ===================================================================
``full``         ``weights`` (component) ~ Dirichlet(alpha), simplex transform;
                 ``covariances`` (component, feature, feature2) ~ InvWishart(nu0, Psi0)
                 written on the matrix, log-Cholesky transform
                 (:mod:`bayesmix.mcmc._pt_dists`); ``means`` (component, feature) ~
                 MvNormal(m0, covariances / kappa0)
``tied``         ``covariance`` (feature, feature2) ~ InvWishart(nu0, Psi0); ``means``
                 ~ MvNormal(m0, covariance / kappa0)
``diag``         ``variances`` (component, feature) ~ InvGamma(nu0/2, psi_j/2);
                 ``means`` ~ Normal(m0, sqrt(variances / kappa0))
``spherical``    ``variances`` (component) ~ InvGamma(nu0/2, psi/2); ``means`` ~
                 Normal(m0, sqrt(variances / kappa0)) for every feature
``full`` + LKJ   ``chol_cov`` (component, chol_packed) ~ LKJCholeskyCov(lkj_eta,
                 HalfNormal(2 sqrt(diag(Psi0) K^{2/D}))) per component; ``means`` ~
                 Normal(m0, sqrt(diag(Psi0) / kappa0)). No EM-MAP equivalence.
===============  ===================================================================

The likelihood is one observed variable ``X`` (obs, feature) whose log density per
observation sums the labels out with a single log-sum-exp over the component axis,
on batched precision Cholesky factors (no list of component distributions, no loop
over components in the graph): one PyTensor Op with numba kernels and a hand-written
gradient (:mod:`bayesmix.mcmc._op`). The precision factors come from the
covariance Cholesky factors through a second small Op (batched triangular inverse,
``_mixture_op.TriInv``), and the means' MvNormal prior is written on the same
factors (:func:`bayesmix.mcmc._pt_dists.mvnormal_prec_chol_logp`), so the model's graph
has no batched linear-algebra node: at K=3, D=2 this cut the compile-and-load time
of the log density and gradient from 1.2 s to 0.7 s (warm caches) and a call from
21 us to 17 us (n=300).

Compilation is paid once per model structure, not once per data set: the data and
the numbers :meth:`GMMPrior.from_data` derives from it (prior mean and scale) enter
the graph as PyTensor shared variables, not constants, so two data sets with the
same K, D, covariance type and fixed prior constants share one compiled function
(PyTensor's on-disk numba cache). ``benchmarks/RESULTS.md`` measures what this buys.

The Dirichlet-process model replaces the weights by a truncated stick-breaking
construction: ``concentration`` ~ Gamma(shape, rate) (``prior.dp_concentration``),
``sticks`` (stick) ~ Beta(1, concentration) for the first T-1 sticks, the last
weight takes the remainder; ``weights`` is a deterministic (component).

Each model carries its configuration as ``model.bayesmix_config`` (a
:class:`ModelConfig`) for :func:`bayesmix.sample`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.distributions.transforms import CholeskyCovPacked

from bayesmix.core._priors import GMMPrior, check_prior
from bayesmix.core._validation import (
    check_covariance_type,
    check_data,
    check_degenerate,
    check_int,
    check_n_components,
    check_sample_weight,
)
from bayesmix.mcmc._op import tri_inv
from bayesmix.mcmc._pt_dists import (
    SPDTransform,
    _drop_batch,
    inv_wishart_logp,
    inv_wishart_random,
    lkj_chol_cov_logp,
    lkj_chol_cov_random,
    mixture_loglik,
    mixture_random,
    mvnormal_prec_chol_logp,
    mvnormal_prec_chol_random,
)

__all__ = ["ModelConfig", "build_dpgmm", "build_gmm", "get_config"]


@dataclass(frozen=True, eq=False)
class ModelConfig:
    """What :func:`bayesmix.sample` needs to know about a built model."""

    model: str  # "gmm" or "dpgmm"
    X: np.ndarray
    n_components: int
    covariance: str
    prior: GMMPrior
    feature_names: list = field(default_factory=list)
    truncation: int | None = None
    sample_weight: np.ndarray | None = field(default=None, repr=False)
    noise_volume: float | None = None

    @property
    def covariance_prior(self):
        return self.prior.covariance_prior


def get_config(model):
    """Return the :class:`ModelConfig` of a model built by bayesmix.

    Raises
    ------
    TypeError
        If ``model`` was not built by :func:`build_gmm` or :func:`build_dpgmm`.
    """
    cfg = getattr(model, "bayesmix_config", None)
    if not isinstance(cfg, ModelConfig):
        raise TypeError(
            "model must be a pymc.Model built by bayesmix.build_gmm or bayesmix.build_dpgmm; got "
            f"{type(model).__name__} without a bayesmix configuration. Build the model with "
            "bm.build_gmm(X, n_components) first."
        )
    return cfg


# ---------------------------------------------------------------------------- helpers
def _data(name, value, leading_none=False):
    """The data-dependent numbers of a model as PyTensor shared variables.

    Numbers in a PyTensor graph are part of its compile-cache key; the data and the
    hyperparameters that :meth:`GMMPrior.from_data` derives from it enter as shared
    variables instead, so one compiled graph (PyTensor's on-disk numba cache) serves
    every data set with the same K, D, covariance type and fixed prior constants.
    """
    value = np.array(value, dtype=np.float64)
    shape = (None, *value.shape[1:]) if leading_none else value.shape
    return pytensor.shared(value, name=f"bayesmix_{name}", shape=shape)


def _prior_or_default(prior, X, n_for_default, covariance, sample_weight=None):
    """The given prior, checked against the data (None: GMMPrior.from_data(X, K)).

    With sample weights the default's mean and covariance are the weighted ones, with
    the frequency-weight denominator ``sum(w) - 1``: for integer weights exactly
    ``GMMPrior.from_data`` of the data with duplicated rows.
    """
    if prior is None:
        default = GMMPrior.from_data(X, n_for_default)
        if sample_weight is None:
            return default
        w = sample_weight
        m = np.average(X, axis=0, weights=w)
        Z = X - m
        D = X.shape[1]
        n = w.sum()
        cov = (Z * w[:, None]).T @ Z / (n - 1.0) if n > 1 else default.scale
        return default.with_(mean=m, scale=np.atleast_2d(cov) / n_for_default ** (2.0 / D))
    return check_prior(prior, X.shape[1], covariance)


def _coords(K, feature_names, N):
    return {
        "component": np.arange(K),
        "feature": list(feature_names),
        "feature2": list(feature_names),
        "obs": np.arange(N),
    }


def _inv_wishart(name, prior, dims, batch_shape):
    """InvWishart(nu0, Psi0) on SPD matrices with shape (*batch_shape, D, D)."""
    D = prior.n_features
    scale_chol = _data("scale_chol", np.linalg.cholesky(prior.scale))
    nu = pt.as_tensor_variable(np.float64(prior.dof))
    mode = prior.scale / (prior.dof + D + 1.0)

    def support_point(rv, size, nu, scale_chol):
        return pt.broadcast_to(pt.as_tensor_variable(mode), rv.shape)

    return pm.CustomDist(
        name,
        nu,
        scale_chol,
        logp=inv_wishart_logp,
        random=inv_wishart_random,
        support_point=support_point,
        signature="(),(d,d)->(d,d)",
        transform=SPDTransform(D),
        shape=(*batch_shape, D, D),
        dims=dims,
    )


def _components_full(prior, K, D):
    if prior.covariance_prior == "lkj":
        return _components_lkj(prior, K, D)
    cov = _inv_wishart("covariances", prior, ("component", "feature", "feature2"), (K,))
    prec = tri_inv(pt.linalg.cholesky(cov))
    return _means_given_prec(prior, prec, K, D), prec


def _components_tied(prior, K, D):
    cov = _inv_wishart("covariance", prior, ("feature", "feature2"), ())
    prec = pt.broadcast_to(tri_inv(pt.linalg.cholesky(cov)), (K, D, D))
    return _means_given_prec(prior, prec, K, D), prec


def _means_given_prec(prior, prec, K, D):
    """means (K, D) ~ MvNormal(m0, Sigma_k / kappa0), on the precision factors (K, D, D)."""
    mu = _data("prior_mean", prior.mean)

    def support_point(rv, size, mu, prec, kappa):
        return pt.broadcast_to(mu, rv.shape)

    return pm.CustomDist(
        "means",
        mu,
        prec,
        np.float64(prior.mean_shrinkage),
        logp=mvnormal_prec_chol_logp,
        random=mvnormal_prec_chol_random,
        support_point=support_point,
        signature="(d),(d,d),()->(d)",
        shape=(K, D),
        dims=("component", "feature"),
    )


def _components_diag(prior, K, D):
    psi = _data("psi", prior.covariance_scale("diag"))
    var = pm.InverseGamma(
        "variances", alpha=prior.dof / 2.0, beta=psi / 2.0, dims=("component", "feature")
    )
    means = pm.Normal(
        "means",
        mu=_data("prior_mean", prior.mean),
        sigma=pt.sqrt(var / prior.mean_shrinkage),
        dims=("component", "feature"),
    )
    prec = pt.eye(D)[None, :, :] * (1.0 / pt.sqrt(var))[:, :, None]
    return means, prec


def _components_spherical(prior, K, D):
    psi = _data("psi", prior.covariance_scale("spherical"))
    var = pm.InverseGamma("variances", alpha=prior.dof / 2.0, beta=psi / 2.0, dims="component")
    means = pm.Normal(
        "means",
        mu=_data("prior_mean", prior.mean),
        sigma=pt.sqrt(var[:, None] / prior.mean_shrinkage),
        dims=("component", "feature"),
    )
    prec = pt.eye(D)[None, :, :] * (1.0 / pt.sqrt(var))[:, None, None]
    return means, prec


def _components_lkj(prior, K, D):
    sd_scale = 2.0 * np.sqrt(np.diag(prior.scale) * K ** (2.0 / D))
    model = pm.modelcontext(None)
    model.add_coord("chol_packed", np.arange(D * (D + 1) // 2))
    # PyMC's LKJCholeskyCov logp handles one vector only: the same density, batched
    packed = pm.CustomDist(
        "chol_cov",
        np.float64(prior.lkj_eta),
        _data("sd_scale", np.broadcast_to(sd_scale, (K, D))),
        np.zeros(D * (D + 1) // 2),  # carries the support length for shape inference only
        logp=lkj_chol_cov_logp,
        random=lkj_chol_cov_random,
        support_point=lambda rv, size, eta, sd, _: _lkj_support_point(sd, D),
        signature="(),(d),(p)->(p)",
        transform=CholeskyCovPacked(D),
        dims=("component", "chol_packed"),
    )
    r, c = np.tril_indices(D)
    L = pt.zeros((K, D, D))[:, r, c].set(packed)
    means = pm.Normal(
        "means",
        mu=_data("prior_mean", prior.mean),
        sigma=_data("mean_sd", np.sqrt(np.diag(prior.scale) / prior.mean_shrinkage)),
        dims=("component", "feature"),
    )
    return means, tri_inv(L)


def _lkj_support_point(sd, D):
    """Diagonal Cholesky factor with the HalfNormal scales as standard deviations."""
    r, c = np.tril_indices(D)
    out = pt.zeros((*sd.shape[:-1], D * (D + 1) // 2))
    return out[..., np.flatnonzero(r == c)].set(sd)


#: one builder per covariance type, shared signature (prior, K, D) -> (means, prec_chol)
_COMPONENTS = {
    "full": _components_full,
    "tied": _components_tied,
    "diag": _components_diag,
    "spherical": _components_spherical,
}


def _extended_loglik(value, log_weights, means, prec_chol, *extra, noise, weighted):
    """:func:`mixture_loglik` with a noise component and/or sample weights.

    ``extra`` holds, in this order, the noise component's ``log w_0 - log V`` (scalar:
    it joins the log-sum-exp over components) and the sample weights (obs,) that
    multiply the pointwise log density (PyTensor differentiates through both).
    """
    ll = mixture_loglik(value, log_weights, means, prec_chol)
    if noise:
        ll = pt.logaddexp(ll, _drop_batch(extra[0], 0))
    if weighted:
        ll = ll * extra[-1]
    return ll


def _extended_random(log_weights, means, prec_chol, *extra, noise, box, rng=None, size=None):
    """Draws of the extended model: noise points uniform over ``box`` (low, high)."""
    x = mixture_random(log_weights, means, prec_chol, rng=rng, size=size)
    if noise:
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        log_w0 = float(np.asarray(extra[0]).reshape(-1)[0]) + np.log(np.prod(box[1] - box[0]))
        flat = x.reshape(-1, x.shape[-1])
        is_noise = rng.uniform(size=flat.shape[0]) < np.exp(log_w0)
        flat[is_noise] = rng.uniform(box[0], box[1], size=(int(is_noise.sum()), flat.shape[1]))
        x = flat.reshape(x.shape)
    return x


def _likelihood(X, log_weights, means, prec_chol, sample_weight=None, log_noise=None, box=None):
    if sample_weight is not None or log_noise is not None:
        extra = [] if log_noise is None else [log_noise]
        if sample_weight is not None:
            extra.append(_data("sample_weight", sample_weight, leading_none=True))
        flags = dict(noise=log_noise is not None)
        return pm.CustomDist(
            "X",
            log_weights,
            means,
            prec_chol,
            *extra,
            logp=partial(_extended_loglik, weighted=sample_weight is not None, **flags),
            random=partial(_extended_random, box=box, **flags),
            signature="(k),(k,d),(k,d,d)" + ",()" * len(extra) + "->(d)",
            observed=_data("X", X, leading_none=True),
            dims=("obs", "feature"),
        )
    return pm.CustomDist(
        "X",
        log_weights,
        means,
        prec_chol,
        logp=mixture_loglik,
        random=mixture_random,
        signature="(k),(k,d),(k,d,d)->(d)",
        observed=_data("X", X, leading_none=True),
        dims=("obs", "feature"),
    )


# ---------------------------------------------------------------------------- builders
def build_gmm(X, n_components, *, covariance="full", prior=None, sample_weight=None, noise=False):
    """Finite Bayesian Gaussian mixture as a PyMC model, labels summed out.

    Parameters
    ----------
    X : array_like or pandas.DataFrame, shape (N, D)
        Data; DataFrame column names become the ``feature`` coordinate. NaN entries
        are missing at random: such a model is sampled by the Gibbs sampler, which
        draws them each sweep (``sampler="nuts"`` is refused; the same holds for
        :func:`build_dpgmm` and :func:`build_mfm`). Infinite values, rows with no
        observed entry and features with no observed value are errors.
    n_components : int
        K, at least 1 and at most N.
    covariance : {"full", "diag", "spherical", "tied"}
        Covariance type (``"diagonal"`` is accepted for ``"diag"``).
    prior : GMMPrior, optional
        Default ``GMMPrior.from_data(X, n_components)`` (see :mod:`bayesmix.core._priors`).
        The same prior given to :func:`bayesmix.fit_em` makes its MAP the mode of this
        model's posterior in the weights / means / covariance parameterisation. With
        ``sample_weight`` the default uses the weighted mean and covariance.
    sample_weight : array_like, shape (N,), optional
        Non-negative frequency weights: the likelihood is ``sum_n w_n log p(x_n)``
        (the pointwise log density times the weights, a shared variable, inside the same
        mixture Op; gradients follow), so integer weights give the posterior of the data
        with duplicated rows. Zero-weight rows drop out of the fit. The Gibbs sampler
        does not support weights.
    noise : bool or float, default False
        Add a uniform noise component of density ``1 / V`` (as :func:`bayesmix.fit_em`:
        ``True`` for the data's bounding-box volume, or a positive volume). The weights
        are then a Dirichlet over K + 1 components, the free variable ``weights_noise``
        (component_noise); ``weights`` (component) is the deterministic Gaussian part
        and ``noise_weight`` the noise weight; the density adds ``w_0 / V`` inside the
        log-sum-exp. Predictive draws put noise points uniformly in the data's bounding
        box (scaled about its centre to volume V).

    Raises
    ------
    ValueError
        On degenerate data (fewer distinct points than K, every feature constant, and
        for full/tied covariances collinear columns or fewer than D + 1 distinct
        points), naming the columns; with a ``prior`` of your own these are a
        ``DegenerateDataWarning`` instead (see :func:`bayesmix.core._validation.check_degenerate`).

    Returns
    -------
    pymc.Model
        Coordinates ``component``, ``feature``, ``feature2``, ``obs``; free variables
        as in the module docstring; observed ``X`` (obs, feature); the configuration in
        ``model.bayesmix_config``.

    Examples
    --------
    >>> import bayesmix as bm
    >>> X = bm.load_old_faithful()
    >>> model = bm.build_gmm(X, 2)
    >>> sorted(v.name for v in model.free_RVs)
    ['covariances', 'means', 'weights']
    """
    X, names = _model_data(X)
    N, D = X.shape
    sw = check_sample_weight(sample_weight, N)
    K = check_n_components(n_components, N if sw is None else int(np.count_nonzero(sw)))
    covariance = check_covariance_type(covariance)
    # degenerate data are refused before the default prior (derived from them) is built
    check_degenerate(
        _mean_filled(X), K, names, covariance=covariance, prior_given=prior is not None
    )
    prior = _prior_or_default(prior, X, K, covariance, sw)
    volume, box = _noise_box(noise, X if sw is None else X[sw > 0])
    coords = _coords(K, names, N)
    with pm.Model(coords=coords) as model:
        log_noise = None
        if volume is not None:
            model.add_coord("component_noise", np.arange(K + 1))
            w_all = pm.Dirichlet(
                "weights_noise",
                a=np.full(K + 1, prior.weight_concentration),
                dims="component_noise",
            )
            weights = pm.Deterministic("weights", w_all[:K], dims="component")
            pm.Deterministic("noise_weight", w_all[K])
            log_noise = pt.log(w_all[K]) - _data("log_noise_volume", np.log(volume))
        elif K > 1:
            weights = pm.Dirichlet(
                "weights", a=np.full(K, prior.weight_concentration), dims="component"
            )
        else:
            weights = pm.Deterministic("weights", pt.ones(1), dims="component")
        means, prec_chol = _COMPONENTS[covariance](prior, K, D)
        _likelihood(X, pt.log(weights), means, prec_chol, sw, log_noise, box)
    model.bayesmix_config = ModelConfig(
        model="gmm",
        X=X,
        n_components=K,
        covariance=covariance,
        prior=prior,
        feature_names=list(names),
        sample_weight=sw,
        noise_volume=volume,
    )
    return model


def _noise_box(noise, X):
    """(volume, (low, high) box of that volume about the data's bounding box) or Nones."""
    from bayesmix.em._checks import _noise_volume  # the one check of ``noise``

    volume = _noise_volume(noise, X)
    if volume is None:
        return None, None
    lo, hi = X.min(axis=0), X.max(axis=0)
    side = hi - lo
    box_vol = float(np.prod(side))
    if box_vol > 0:
        side = side * (volume / box_vol) ** (1.0 / X.shape[1])
    else:
        side = np.full(X.shape[1], volume ** (1.0 / X.shape[1]))
    mid = 0.5 * (lo + hi)
    return volume, (mid - side / 2, mid + side / 2)


def build_dpgmm(X, *, truncation=20, covariance="full", prior=None, sample_weight=None):
    """Dirichlet-process Gaussian mixture by truncated stick-breaking.

    Parameters
    ----------
    X : array_like or pandas.DataFrame, shape (N, D)
    truncation : int
        Number of components T of the truncation, ``2 <= T <= N``. :func:`bayesmix.sample`
        warns when the posterior puts more than 1% of the mass on the last component
        (increase ``truncation`` then).
    covariance : {"full", "diag", "spherical", "tied"}
    prior : GMMPrior, optional
        Default :func:`default_cluster_prior` at K0 = 2: mclust's scale ``cov(X) /
        2**(2/D)`` (a component's prior mean covariance fills half the data's volume), ``nu0
        = D + 2``, ``kappa0 = 0.01``. In one dimension this is Richardson & Green's (1997)
        data-dependent choice (component sd about a tenth of the range, ~sd(X)/2); in two,
        the telescoping paper's default (E[Sigma] about 0.4 var(X)). Measured with the Gibbs
        sampler: Old Faithful P(K+ = 2, 3, 4) about 0.2, 0.54, 0.2 (benchmarks/RESULTS.md);
        four 1-D groups (n = 82, two of them 3 sd apart) P(K+ = 4) = 0.37, E[K+] = 5.0. The
        previous default, the data covariance (K0 = 1), merged those two groups (P(K+ = 3) =
        0.70); K0 = E[K+] of the DP prior (Antoniak: 5.8 at N = 272) over-splits (Old
        Faithful P(K+ = 2) = 0.04). The concentration gets
        Gamma(``prior.dp_concentration``), default Gamma(shape=1, rate=1), whose implied
        prior on K+ (which does not depend on the component prior) is wide: at N = 272,
        E[K+] = 5.8 and P(K+ = 1, 2, 3, 4) = 0.14, 0.13, 0.12, 0.10; at N = 82, E[K+] = 4.6.
    sample_weight : array_like, shape (N,), optional
        Frequency weights, as in :func:`build_gmm` (the default prior then uses the
        weighted data covariance).

    Returns
    -------
    pymc.Model
        Free variables ``concentration``, ``sticks`` (stick, length T-1) and the
        component parameters as in :func:`build_gmm`; ``weights`` (component) is a
        deterministic.

    Notes
    -----
    A DP mixture's posterior on the number of clusters is not consistent (Miller &
    Harrison 2013): read ``n_occupied`` from the sampled result as a description of
    the fit, not as an estimate of K.

    Examples
    --------
    >>> import bayesmix as bm
    >>> model = bm.build_dpgmm(bm.load_old_faithful(), truncation=10)
    >>> model.coords["component"][-1]
    np.int64(9)
    """
    X, names = _model_data(X)
    N, D = X.shape
    sw = check_sample_weight(sample_weight, N)
    T = check_int(
        truncation,
        "truncation",
        minimum=2,
        hint="It is the number of stick-breaking components: use truncation=20 (the default) "
        "or bm.build_gmm for a one-component model.",
    )
    if T > N:
        raise ValueError(
            f"truncation={T} is larger than the number of observations N={N}; use "
            f"truncation <= {N}."
        )
    covariance = check_covariance_type(covariance)
    check_degenerate(
        _mean_filled(X), 1, names, covariance=covariance, prior_given=prior is not None
    )
    if prior is None:  # mclust's scale at K0 = DP_DEFAULT_K0 (weighted data covariance)
        base = _prior_or_default(None, X, 1, covariance, sw)
        prior = base.with_(scale=base.scale / DP_DEFAULT_K0 ** (2.0 / X.shape[1]))
    prior = _prior_or_default(prior, X, 1, covariance, sw)
    coords = _coords(T, names, N)
    coords["stick"] = np.arange(T - 1)
    shape, rate = prior.dp_concentration
    with pm.Model(coords=coords) as model:
        alpha = pm.Gamma("concentration", alpha=shape, beta=rate)
        v = pm.Beta("sticks", alpha=1.0, beta=alpha, dims="stick")
        log_rest = pt.concatenate([pt.zeros(1), pt.cumsum(pt.log1p(-v))])  # (T,)
        log_weights = pt.concatenate([pt.log(v), pt.zeros(1)]) + log_rest
        pm.Deterministic("weights", pt.exp(log_weights), dims="component")
        means, prec_chol = _COMPONENTS[covariance](prior, T, D)
        _likelihood(X, log_weights, means, prec_chol, sw)
    model.bayesmix_config = ModelConfig(
        model="dpgmm",
        X=X,
        n_components=T,
        covariance=covariance,
        prior=prior,
        feature_names=list(names),
        truncation=T,
        sample_weight=sw,
    )
    return model


# ---------------------------------------------------------------------------- MFM
#: K0 of the DP's default prior (:func:`default_cluster_prior`; see build_dpgmm)
DP_DEFAULT_K0 = 2.0


@dataclass(frozen=True, eq=False)
class MFMConfig(ModelConfig):
    """:class:`ModelConfig` of a mixture of finite mixtures (``model="mfm"``).

    ``n_components`` is ``max_components``; ``k_prior`` holds P(K = 1..max_components).
    """

    k_prior: np.ndarray = None
    dynamic: bool = False


class MFMModel:
    """A mixture of finite mixtures built by :func:`build_mfm`, for :func:`bayesmix.sample`.

    Not a ``pymc.Model``: the number of components is a random variable, which NUTS
    cannot sample; ``bm.sample`` runs the telescoping Gibbs sampler of
    :mod:`bayesmix.mcmc._gibbs`. The configuration is in ``bayesmix_config`` (:class:`MFMConfig`)
    and the coordinates in ``coords``, as for the PyMC models.
    """

    def __init__(self, config):
        self.bayesmix_config = config
        self.coords = _coords(config.n_components, config.feature_names, config.X.shape[0])

    def __repr__(self):
        c = self.bayesmix_config
        return (
            f"MFMModel(N={c.X.shape[0]}, D={c.X.shape[1]}, covariance={c.covariance!r}, "
            f"max_components={c.n_components}, dynamic={c.dynamic})"
        )


def _mfm_k_prior(k_prior, max_components):
    """P(K = 1..max_components) from an array or a frozen scipy.stats distribution on K-1."""
    from scipy import stats

    if k_prior is None:
        k_prior = stats.betanbinom(n=1, a=4, b=3)
    if hasattr(k_prior, "pmf") and hasattr(k_prior, "dist"):
        p = np.asarray(k_prior.pmf(np.arange(max_components)), dtype=float)
    else:
        try:
            p = np.asarray(k_prior, dtype=float)
        except (TypeError, ValueError):
            p = np.array([np.nan])
        if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)):
            raise ValueError(
                "k_prior must be a 1-D array of probabilities for K = 1, 2, ... or a frozen "
                f"scipy.stats discrete distribution on K - 1; got {k_prior!r}. E.g. "
                "k_prior=scipy.stats.betanbinom(n=1, a=4, b=3) (the default)."
            )
        if np.any(p < 0) or abs(p.sum() - 1.0) > 1e-8:
            raise ValueError(
                "k_prior must have non-negative entries summing to 1 (tolerance 1e-8); got "
                f"minimum {p.min():.3g} and sum {p.sum():.10g}. Normalise it: p / p.sum()."
            )
        p = np.concatenate([p, np.zeros(max(0, max_components - p.size))])[:max_components]
    if not p.sum() > 0:
        raise ValueError(
            f"k_prior puts all its mass above max_components={max_components}; increase "
            "max_components or move k_prior's mass to K <= max_components."
        )
    return p / p.sum()


def default_cluster_prior(X, expected_clusters, **overrides):
    """Default prior of the DP and MFM models: mclust's scale at the expected K.

    Parameters
    ----------
    X : array_like, shape (N, D)
    expected_clusters : float
        ``K0 >= 1``: the inverse-Wishart scale is ``cov(X) / K0**(2/D)`` (Fraley &
        Raftery 2007's ``priorControl`` at K0 clusters), so with ``nu0 = D + 2`` a
        component's prior mean covariance fills ``1/K0`` of the data's volume.
        :func:`build_dpgmm` uses 2, :func:`build_mfm` the k_prior's E[K] (2 for the
        default).
    **overrides
        Any field of :class:`GMMPrior`.

    Returns
    -------
    GMMPrior
        ``m0`` the data mean, ``kappa0 = 0.01`` (a mean's prior sd is 10 component sd,
        about the data's range, as Richardson & Green 1997's ``N(midrange, R^2)``),
        ``nu0 = D + 2``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> p = default_cluster_prior(X, 4.0)
    >>> bool(np.allclose(p.scale, np.cov(X, rowvar=False) / 4.0))
    True
    """
    base = GMMPrior.from_data(X, 1)  # cov(X), guarded for constant features
    k0 = max(float(expected_clusters), 1.0)
    params = dict(mean=base.mean, scale=base.scale / k0 ** (2.0 / base.n_features), dof=base.dof)
    params.update(overrides)
    return GMMPrior(**params)


def build_mfm(X, *, covariance="full", prior=None, k_prior=None, max_components=30, dynamic=False):
    """Mixture of finite mixtures: a prior on the number of components K.

    :math:`K \\sim` ``k_prior`` on 1..``max_components``; weights
    :math:`\\pi \\mid K \\sim \\mathrm{Dirichlet}(\\gamma_K, \\dots, \\gamma_K)` with
    :math:`\\gamma_K = \\gamma` = ``prior.weight_concentration`` (static MFM, Miller &
    Harrison 2018) or :math:`\\gamma/K` with ``dynamic=True`` (Frühwirth-Schnatter,
    Malsiner-Walli & Grün 2021); components from the conjugate prior of
    :mod:`bayesmix.core._priors`. :func:`bayesmix.sample` runs the telescoping sampler
    (:mod:`bayesmix.mcmc._gibbs`); the posterior has ``n_components`` (K) and ``n_occupied``
    (K+, the clusters) per draw, weights/means/covariances padded to
    ``max_components`` (weight 0, prior-mode mean and covariance for absent components).

    Parameters
    ----------
    X : array_like or pandas.DataFrame, shape (N, D)
    covariance : {"full", "diag", "spherical", "tied"}
    prior : GMMPrior, optional
        Conjugate prior (``covariance_prior="lkj"`` is rejected by the sampler). Default
        :func:`default_cluster_prior` at K0 = E[K] under ``k_prior`` (mclust's scale
        ``cov(X) / K0**(2/D)``; K0 = 2 for the default ``k_prior``), weight
        concentration 1.
    k_prior : array_like, shape (L,), or frozen scipy.stats discrete distribution
        P(K = 1), P(K = 2), ... (non-negative, summing to 1; mass above
        ``max_components`` is cut and the rest renormalised), or a distribution on
        K - 1 (its pmf at 0..max_components-1, renormalised). Default
        ``scipy.stats.betanbinom(n=1, a=4, b=3)`` on K - 1, the BNB(1, 4, 3) of
        Frühwirth-Schnatter et al. (2021): P(K=1) = 0.43, E[K] = 2, heavy tail.
    max_components : int
        Upper bound on K, at least 2.
    dynamic : bool
        Dirichlet parameter ``gamma / K`` instead of ``gamma``.

    Returns
    -------
    MFMModel
        ``bayesmix_config`` (:class:`MFMConfig`, ``model="mfm"``) and ``coords``;
        sample it with ``bm.sample(model)`` (Gibbs; ``sampler="nuts"`` is an error).

    Notes
    -----
    The implied prior on K+ depends on ``k_prior``, gamma and N only (not on the
    component prior): with the defaults, E[K+] <= E[K] = 2 and P(K+ = 1) >= 0.43.
    ``bm.n_clusters`` reads the posterior P(K+ = k) and P(K = k).

    Examples
    --------
    >>> import bayesmix as bm
    >>> model = bm.build_mfm(bm.load_old_faithful(), max_components=10)
    >>> model.bayesmix_config.model, round(float(model.bayesmix_config.k_prior.sum()), 6)
    ('mfm', 1.0)
    """
    X, names = _model_data(X)
    max_components = check_int(
        max_components,
        "max_components",
        minimum=2,
        hint="Use max_components=30 (the default) or bm.build_gmm for a fixed K.",
    )
    covariance = check_covariance_type(covariance)
    p = _mfm_k_prior(k_prior, max_components)
    check_degenerate(
        _mean_filled(X), 1, names, covariance=covariance, prior_given=prior is not None
    )
    if prior is None:
        prior = default_cluster_prior(X, float(p @ np.arange(1, p.size + 1)))
    prior = _prior_or_default(prior, X, 1, covariance)
    cfg = MFMConfig(
        model="mfm",
        X=X,
        n_components=max_components,
        covariance=covariance,
        prior=prior,
        feature_names=list(names),
        k_prior=p,
        dynamic=bool(dynamic),
    )
    return MFMModel(cfg)


def _model_data(X):
    """``check_data`` for the PyMC builders: NaN entries are kept as missing at random
    (``missing="mar"``; inf, empty rows and empty features are refused). Such a model
    is sampled by the Gibbs sampler, which draws the missing coordinates each sweep
    (:mod:`bayesmix.mcmc._gibbs_missing`); :func:`bayesmix.mcmc._choice.resolve_sampler`
    refuses NUTS on it."""
    return check_data(X, return_names=True, missing="mar")


def _mean_filled(X):
    """``X`` with its gaps filled by the column means, for the degeneracy checks only
    (constant features and distinct points are judged as on the observed values;
    collinearity among the complete rows is then not detected)."""
    gaps = np.isnan(X)
    if not gaps.any():
        return X
    return np.where(gaps, np.nanmean(X, axis=0), X)


def has_gaps(cfg):
    """Whether the model's data hold missing (NaN) entries."""
    return bool(np.isnan(cfg.X).any())
