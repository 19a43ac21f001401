r"""PyTensor pieces of the bayesmix PyMC models: the inverse-Wishart density on SPD
matrices, its unconstraining transform, and the vectorised mixture log-likelihood.

Nothing here loops over components: every function works on a leading component
axis of batched matrices.

Transform
---------
An SPD matrix :math:`\Sigma = L L^\top` is represented by the packed lower
Cholesky factor (row-major ``np.tril_indices`` order) with the logarithm of the
diagonal, a vector of length :math:`D(D+1)/2`. This is PyMC's
:class:`pymc.distributions.transforms.CholeskyCovTransform` (the one PyMC uses
for ``pm.Wishart``), whose log-Jacobian of :math:`y \mapsto \Sigma` is

.. math:: \log|J| = D \log 2 + \sum_{i=1}^{D} (D - i + 2)\, y_{ii},
   \qquad y_{ii} = \log L_{ii}.

``tests/test_models.py`` checks it against a numerical Jacobian determinant.
Because the factor produced by the transform is tagged lower-triangular, PyTensor
rewrites ``cholesky(L @ L.T)`` to ``L``: neither the prior nor the likelihood
factorises a matrix at run time.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.transforms import CholeskyCovTransform
from scipy import stats

from bayesmix.core._gaussian import LOG_2PI, cholesky_or_raise
from bayesmix.core._gaussian import tri_inv as tri_inv_numpy
from bayesmix.mcmc._op import lower_llt, mixture_loglik_op, tri_inv

__all__ = [
    "SPDTransform",
    "inv_wishart_logp",
    "inv_wishart_random",
    "mixture_loglik",
    "mixture_random",
    "mvnormal_prec_chol_logp",
    "mvnormal_prec_chol_random",
    "packed_to_spd",
    "spd_to_packed",
]


class SPDTransform(CholeskyCovTransform):
    """SPD matrix <-> packed log-Cholesky vector (see the module docstring).

    PyMC's ``CholeskyCovTransform`` with the log-Jacobian's ``D log 2`` computed in
    float64: PyMC 6.4 builds ``pt.log(2.0)`` from a float32 constant, an error of
    ~2e-8 per unit of D that the 1e-8 logp tests detect.
    """

    name = "spd-log-cholesky"

    def backward(self, value, *inputs):
        # PyMC's backward with the final L @ L.T through LowerLLT (no BLAS call); the
        # tag lets cholesky(backward(y)) rewrite to L (``_mixture_op.cholesky_of_lower_llt``)
        value = pt.as_tensor_variable(value)
        n = self.n
        value_pos = value[..., self.diag_idxs].set(pt.exp(value[..., self.diag_idxs]))
        L = pt.zeros((*value.shape[:-1], n, n), dtype=value.dtype)
        L = L[..., self.tril_idxs[0], self.tril_idxs[1]].set(value_pos)
        L.tag.bayesmix_cholesky_factor = True
        return lower_llt(L)

    def log_jac_det(self, value, *inputs):
        value = pt.as_tensor_variable(value)
        n = self.n
        log_diag = value[..., self.diag_idxs]
        coeffs = pt.arange(n + 1, 1, -1).astype(value.dtype)
        return n * np.log(2.0) + pt.sum(coeffs * log_diag, axis=-1)


def spd_to_packed(S):
    """numpy forward map: SPD matrices (..., D, D) -> packed log-Cholesky (..., D(D+1)/2)."""
    S = np.asarray(S, dtype=float)
    D = S.shape[-1]
    L = cholesky_or_raise(S, name="S")
    r, c = np.tril_indices(D)
    flat = L[..., r, c].copy()
    diag = np.flatnonzero(r == c)
    flat[..., diag] = np.log(flat[..., diag])
    return flat


def packed_to_spd(y, D):
    """numpy inverse map: packed log-Cholesky (..., D(D+1)/2) -> SPD (..., D, D)."""
    y = np.asarray(y, dtype=float)
    r, c = np.tril_indices(D)
    L = np.zeros((*y.shape[:-1], D, D))
    vals = y.copy()
    diag = np.flatnonzero(r == c)
    vals[..., diag] = np.exp(vals[..., diag])
    L[..., r, c] = vals
    return L @ np.swapaxes(L, -1, -2)


def _multigammaln(a, D):
    """log Gamma_D(a), batched over a's shape."""
    j = pt.arange(D, dtype="float64")
    return D * (D - 1) / 4.0 * np.log(np.pi) + pt.sum(pt.gammaln(a[..., None] - j / 2.0), axis=-1)


def inv_wishart_logp(value, nu, scale_chol):
    r"""Log density of :math:`\mathrm{InvWishart}(\nu, \Psi)` at SPD ``value`` (..., D, D).

    ``scale_chol`` (..., D, D) is the lower Cholesky factor of :math:`\Psi`; ``nu`` and
    ``scale_chol`` broadcast against the batch shape of ``value``. With
    :math:`\Sigma = L L^\top`,

    .. math:: \log p = \tfrac{\nu}{2}\log|\Psi| - \tfrac{\nu D}{2}\log 2
              - \log\Gamma_D(\tfrac{\nu}{2}) - \tfrac{\nu + D + 1}{2}\log|\Sigma|
              - \tfrac12 \lVert L^{-1} L_\Psi \rVert_F^2 .
    """
    D = value.type.shape[-1]
    if D is None:
        D = scale_chol.type.shape[-1]
    if D is None:
        raise ValueError("inv_wishart_logp needs matrices of static shape (D, D).")
    L = pt.linalg.cholesky(value)
    logdet = 2.0 * pt.sum(pt.log(pt.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    logdet_psi = 2.0 * pt.sum(pt.log(pt.diagonal(scale_chol, axis1=-2, axis2=-1)), axis=-1)
    # tr(Psi Sigma^-1) = ||L^-1 L_Psi||_F^2, the product written as a broadcast sum
    P = tri_inv(L)
    M = pt.sum(P[..., :, :, None] * scale_chol[..., None, :, :], axis=-2)
    tr = pt.sum(pt.sqr(M), axis=(-2, -1))
    return (
        0.5 * nu * logdet_psi
        - 0.5 * nu * D * np.log(2.0)
        - _multigammaln(0.5 * nu, D)
        - 0.5 * (nu + D + 1.0) * logdet
        - 0.5 * tr
    )


def inv_wishart_random(nu, scale_chol, rng=None, size=None):
    """numpy draws from the inverse-Wishart (for prior predictive checks)."""
    nu = np.asarray(nu, dtype=float).reshape(-1)[0]  # PyMC may add leading batch dims
    scale_chol = np.asarray(scale_chol, dtype=float)
    scale_chol = scale_chol.reshape(-1, *scale_chol.shape[-2:])[0]
    scale = scale_chol @ scale_chol.T
    size = () if size is None else tuple(np.atleast_1d(size))
    D = scale.shape[-1]
    n = int(np.prod(size)) if size else 1
    draws = stats.invwishart(df=float(nu), scale=scale).rvs(size=n, random_state=rng)
    return np.reshape(draws, (*size, D, D))


def mvnormal_prec_chol_logp(value, mu, prec_chol, kappa):
    r"""Log density of :math:`N(\mu, \Sigma / \kappa)` with :math:`\Sigma^{-1} = P^\top P`.

    ``value`` (..., D), ``mu`` (..., D), ``prec_chol`` (..., D, D) lower-triangular
    :math:`P`, ``kappa`` scalar; returns (...). The same density as
    ``pm.MvNormal(mu, chol=L / sqrt(kappa))`` with :math:`L = P^{-1}`, written on the
    precision factor the likelihood uses anyway, so the means' prior adds no
    triangular solve to the model:

    .. math:: \log p = \sum_i \log P_{ii} + \tfrac{D}{2}(\log\kappa - \log 2\pi)
              - \tfrac{\kappa}{2} \lVert P (x - \mu) \rVert^2 .
    """
    D = prec_chol.type.shape[-1]
    if D is None:
        raise ValueError("mvnormal_prec_chol_logp needs prec_chol of static shape (D, D).")
    z = pt.sum(prec_chol * (value - mu)[..., None, :], axis=-1)
    logdet = pt.sum(pt.log(pt.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)
    return logdet + 0.5 * D * (pt.log(kappa) - LOG_2PI) - 0.5 * kappa * pt.sum(pt.sqr(z), axis=-1)


def mvnormal_prec_chol_random(mu, prec_chol, kappa, rng=None, size=None):
    """numpy draws matching :func:`mvnormal_prec_chol_logp`."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    mu = np.asarray(mu, dtype=float)
    prec_chol = np.asarray(prec_chol, dtype=float)
    kappa = float(np.asarray(kappa).reshape(-1)[0])
    batch = np.broadcast_shapes(mu.shape[:-1], prec_chol.shape[:-2])
    size = batch if size is None else tuple(np.atleast_1d(size))
    D = prec_chol.shape[-1]
    L = tri_inv_numpy(np.broadcast_to(prec_chol, (*size, D, D)))
    eps = rng.standard_normal((*size, D))
    return mu + np.einsum("...ij,...j->...i", L, eps) / np.sqrt(kappa)


def mixture_loglik(value, log_weights, means, prec_chol):
    r"""Pointwise log density of a Gaussian mixture, labels summed out.

    Parameters
    ----------
    value : tensor (N, D)
    log_weights : tensor (K,)
    means : tensor (K, D)
    prec_chol : tensor (K, D, D)
        Lower-triangular :math:`P_k = L_k^{-1}` with :math:`\Sigma_k = L_k L_k^\top`, so
        :math:`\Sigma_k^{-1} = P_k^\top P_k`.

    Returns
    -------
    tensor (N,)
        :math:`\log\sum_k \pi_k N(x_n \mid \mu_k, \Sigma_k)`, computed by
        :class:`bayesmix.mcmc._op.MixtureLogLik` (one pass over the data, log-sum-exp
        over the component axis, hand-written gradient; the same expression in plain
        PyTensor is :func:`bayesmix.mcmc._op.mixture_loglik_graph`).
    """
    # PyMC adds broadcastable leading (batch) dims to the parameters: drop them
    log_weights, means, prec_chol = (
        _drop_batch(p, nd) for p, nd in ((log_weights, 1), (means, 2), (prec_chol, 3))
    )
    return mixture_loglik_op(value, log_weights, means, prec_chol)


def _drop_batch(x, ndim):
    while x.ndim > ndim:
        x = x[0]
    return x


def mixture_random(log_weights, means, prec_chol, rng=None, size=None):
    """numpy draws from the mixture (prior/posterior predictive); ``size`` = batch (N,)."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    size = (1,) if size is None else tuple(np.atleast_1d(size))
    n = int(np.prod(size))
    log_weights = np.asarray(log_weights).reshape(-1)
    means = np.asarray(means).reshape(-1, *np.shape(means)[-2:])[0]
    prec_chol = np.asarray(prec_chol).reshape(-1, *np.shape(prec_chol)[-3:])[0]
    w = np.exp(log_weights - np.max(log_weights))
    w = w / w.sum()
    z = rng.choice(w.size, size=n, p=w)
    L = tri_inv_numpy(prec_chol)  # lower-triangular inverse: Cholesky factor of Sigma
    eps = rng.standard_normal((n, means.shape[-1]))
    x = means[z] + np.einsum("nij,nj->ni", L[z], eps)
    return x.reshape(*size, means.shape[-1])


# ---------------------------------------------------------------------------- LKJ, batched
def _lkj_log_norm(eta, n):
    k = np.arange(1, n)
    return (n - 1) * pt.gammaln(eta + 0.5 * (n - 1)) - pt.sum(
        0.5 * k * np.log(np.pi) + pt.gammaln(eta + 0.5 * (n - 1 - k))
    )


def lkj_chol_cov_logp(value, eta, sd_sigma, _support=None):
    r"""Batched density of PyMC's ``LKJCholeskyCov(eta, n, HalfNormal(sd_sigma))``.

    ``value`` (..., D(D+1)/2) is the packed lower Cholesky factor of a covariance
    matrix (row-major ``tril_indices`` order), ``sd_sigma`` (..., D) the HalfNormal
    scales of the standard deviations. Same density as
    ``pymc.distributions.multivariate._LKJCholeksyCovRV_logp`` (which handles a single
    vector only): LKJ(eta) on the correlation Cholesky factor, HalfNormal on the row
    norms, plus the log-determinant of the map (sd, correlation factor) -> L.
    """
    n = sd_sigma.type.shape[-1]
    eta = _drop_batch(eta, 0)
    r, c = np.tril_indices(n)
    L = pt.zeros((*value.shape[:-1], n, n))[..., r, c].set(value)
    sd = pt.sqrt(pt.sum(pt.sqr(L), axis=-1))  # (..., n)
    corr_diag = pt.diagonal(L, axis1=-2, axis2=-1) / sd
    i = np.arange(n)
    logp_lkj = pt.sum((2 * eta - 3 + n - i) * pt.log(corr_diag), axis=-1)
    logp_sd = pt.sum(
        0.5 * np.log(2.0 / np.pi) - pt.log(sd_sigma) - 0.5 * pt.sqr(sd / sd_sigma), axis=-1
    )
    det_invjac = pt.sum(pt.log(corr_diag) - i * pt.log(sd), axis=-1)
    return _lkj_log_norm(eta, n) + logp_lkj + logp_sd + det_invjac


def lkj_chol_cov_random(eta, sd_sigma, _support=None, rng=None, size=None):
    """numpy draws of the packed Cholesky factor (onion method for the correlations)."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    eta = float(np.asarray(eta).reshape(-1)[0])
    sd_sigma = np.asarray(sd_sigma, dtype=float)
    n = sd_sigma.shape[-1]
    size = sd_sigma.shape[:-1] if size is None else tuple(np.atleast_1d(size))
    m = int(np.prod(size)) if size else 1
    out = np.empty((m, n * (n + 1) // 2))
    r, c = np.tril_indices(n)
    sig = np.broadcast_to(sd_sigma, (*size, n)).reshape(m, n)
    for s in range(m):
        C = np.zeros((n, n))
        C[0, 0] = 1.0
        beta = eta + (n - 2) / 2.0
        for k in range(1, n):
            if k == 1:
                r12 = 2 * rng.beta(beta, beta) - 1
                C[1, :2] = r12, np.sqrt(1 - r12**2)
            else:
                beta -= 0.5
                y = rng.beta(k / 2.0, beta)
                u = rng.standard_normal(k)
                C[k, :k] = np.sqrt(y) * u / np.linalg.norm(u)
                C[k, k] = np.sqrt(1 - y)
        sd = np.abs(rng.normal(0.0, sig[s]))
        out[s] = (sd[:, None] * C)[r, c]
    return out.reshape(*size, n * (n + 1) // 2)
