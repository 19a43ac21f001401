r"""The variational families behind :func:`bayesmix.fit_vi`: updates, expectations and
KL divergences in closed form, one small function per covariance type.

Notation (Bishop, *PRML*, sec. 10.2, written with the inverse-Wishart scale instead of
the Wishart one, as :class:`bayesmix.GMMPrior` is): the prior is
``mean`` :math:`m_0`, ``mean_shrinkage`` :math:`\beta_0 = \kappa_0`, ``dof``
:math:`\nu_0`, ``scale`` :math:`\Psi_0` and ``weight_concentration`` :math:`\alpha_0`.
The mean-field family is

* full: :math:`q(\mu_k, \Lambda_k) = N(\mu_k \mid m_k, (\beta_k\Lambda_k)^{-1})\,
  \mathrm{Wishart}(\Lambda_k \mid \Psi_k^{-1}, \nu_k)`, i.e.
  :math:`\Sigma_k \sim \mathrm{InvWishart}(\nu_k, \Psi_k)`;
* diag: per feature :math:`\lambda_{kj} \sim \mathrm{Gamma}(\nu_k/2,\ \mathrm{rate}\ \Psi_{kj}/2)`
  (:math:`\sigma^2_{kj} \sim \mathrm{InvGamma}(\nu_k/2, \Psi_{kj}/2)`) and
  :math:`\mu_{kj} \mid \lambda_{kj} \sim N(m_{kj}, (\beta_k\lambda_{kj})^{-1})`;
* spherical: one :math:`\lambda_k \sim \mathrm{Gamma}(\nu_k/2, \Psi_k/2)` for all
  features, :math:`\mu_k \mid \lambda_k \sim N(m_k, (\beta_k\lambda_k)^{-1} I)`;
* tied: one :math:`\Lambda \sim \mathrm{Wishart}(\Psi^{-1}, \nu)` and
  :math:`\mu_k \mid \Lambda \sim N(m_k, (\beta_k\Lambda)^{-1})`, with
  :math:`\nu = \nu_0 + N` and :math:`\Psi = \Psi_0 + \sum_k(S^{xx}_k + \beta_0 m_0 m_0^\top
  - \beta_k m_k m_k^\top)` (the exact conditional posterior given the labels);

the same families as the prior (the prior's diag and spherical forms are those of
:mod:`bayesmix.core._priors`: :math:`\psi_j = (\Psi_0)_{jj}`, :math:`\psi =
\mathrm{tr}\,\Psi_0 / D`). Updates from responsibilities :math:`r_{nk}` with
:math:`N_k = \sum_n r_{nk}`, :math:`s_k = \sum_n r_{nk} x_n`, raw second moments
:math:`S^{xx}_k`:

.. math::

    \beta_k = \beta_0 + N_k,\quad m_k = (\beta_0 m_0 + s_k)/\beta_k,\quad
    \Psi_k = \Psi_0 + S^{xx}_k + \beta_0 m_0 m_0^\top - \beta_k m_k m_k^\top,

with :math:`\nu_k = \nu_0 + N_k` (full, diag: the diagonal of the same expression) and
:math:`\nu_k = \nu_0 + D N_k` (spherical: :math:`\Psi_k` summed over the features).
The E-step's log weight of component k at row n is

.. math::

    \log\rho_{nk} = E[\log\pi_k] + \log N(x_n \mid m_k, \Psi_k/\nu_k) + c_k,\qquad
    c_k = \tfrac12\textstyle\sum_{i=1}^D[\psi(\tfrac{\nu_k+1-i}2) - \log\tfrac{\nu_k}2]
    - \tfrac{D}{2\beta_k}

(full; diag and spherical: :math:`\tfrac D2[\psi(\nu_k/2) - \log(\nu_k/2)] - D/(2\beta_k)`),
which is Bishop's (10.64)-(10.67) rewritten so that EM's E-step (a Gaussian log density
on a precision Cholesky factor plus a log weight per component) computes it: the same
numpy and numba passes as :func:`bayesmix.fit_em`.

The evidence lower bound after an E-step is
:math:`\mathcal L = \sum_n w_n \log\sum_k\rho_{nk} - \mathrm{KL}(q(\theta)\,\|\,p(\theta))`
(the terms of :math:`q(z)` collapse to the log normaliser when :math:`q(z)` is optimal),
with every normalising constant, so it is a lower bound on :math:`\log p(X)` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, digamma, gammaln, multigammaln

from bayesmix.core import _gaussian as gs

_LOG2 = float(np.log(2.0))


# =========================================================================== prior in the frame
@dataclass(frozen=True, eq=False)
class VIPrior:
    """The prior's numbers in the fitting frame (data centred at ``shift``), natively
    shaped for the covariance type: ``psi0`` (D, D) full, (D,) diag, scalar spherical."""

    m0: np.ndarray
    beta0: float
    nu0: float
    psi0: object
    alpha0: float
    dp_shape: float
    dp_rate: float
    dp_alpha: float | None  # a fixed DP concentration, or None (Gamma prior, q(alpha))

    @classmethod
    def from_prior(cls, prior, covariance, shift, dp_alpha=None):
        return cls(
            m0=prior.mean - shift,
            beta0=float(prior.mean_shrinkage),
            nu0=float(prior.dof),
            psi0=prior.covariance_scale(covariance),
            alpha0=float(prior.weight_concentration),
            dp_shape=float(prior.dp_concentration[0]),
            dp_rate=float(prior.dp_concentration[1]),
            dp_alpha=dp_alpha,
        )


@dataclass(eq=False)
class Components:
    """q(mu, Lambda) of every component in the fitting frame: ``beta`` (K,), ``m`` (K, D),
    ``nu`` (K,), ``psi`` (native: (K, D, D) full, (K, D) diag, (K,) spherical) and the
    lower Cholesky factor ``chol`` of ``psi`` (full only)."""

    beta: np.ndarray
    m: np.ndarray
    nu: np.ndarray
    psi: np.ndarray
    chol: np.ndarray | None = None


# =========================================================================== M-step
def estep_type(covariance):
    """The covariance type of the E-step's Gaussian pass: tied components run as
    ``"full"`` (K equal factors), so their statistics come per component."""
    return "full" if covariance == "tied" else covariance


def update_components(nk, sx, sxx, pr, covariance, reg_covar=0.0):
    """q(mu, Lambda) from the sufficient statistics (module docstring); ``reg_covar > 0``
    adds ``N_k reg_covar`` to the diagonal of the scatter (scikit-learn's ``reg_covar``)."""
    nk = np.maximum(nk, 0.0)
    if reg_covar:
        D = sx.shape[1]
        if covariance in ("full", "tied"):
            sxx = sxx + reg_covar * nk[:, None, None] * np.eye(D)
        else:
            sxx = sxx + reg_covar * nk[:, None]
    beta = pr.beta0 + nk
    m = (pr.beta0 * pr.m0 + sx) / beta[:, None]
    if covariance == "full":
        psi = (
            pr.psi0
            + sxx
            + pr.beta0 * np.outer(pr.m0, pr.m0)
            - beta[:, None, None] * m[:, :, None] * m[:, None, :]
        )
        psi = 0.5 * (psi + np.swapaxes(psi, 1, 2))
        chol = gs.cholesky_or_raise(psi, name="the variational scale matrices")
        return Components(beta, m, pr.nu0 + nk, psi, chol)
    if covariance == "tied":  # one Sigma: psi and chol (1, D, D), nu_k = nu0 + N for all k
        psi = (
            pr.psi0
            + (sxx + pr.beta0 * np.outer(pr.m0, pr.m0)).sum(0)
            - np.einsum("k,ki,kj->ij", beta, m, m)
        )
        psi = 0.5 * (psi + psi.T)[None]
        chol = gs.cholesky_or_raise(psi, name="the variational scale matrix")
        return Components(beta, m, np.full(nk.shape, pr.nu0 + nk.sum()), psi, chol)
    scatter = sxx + pr.beta0 * pr.m0**2 - beta[:, None] * m**2  # (K, D)
    if covariance == "diag":
        return Components(beta, m, pr.nu0 + nk, np.maximum(pr.psi0 + scatter, 1e-300))
    D = m.shape[1]
    return Components(beta, m, pr.nu0 + D * nk, np.maximum(pr.psi0 + scatter.sum(1), 1e-300))


def logdet_psi(q, covariance):
    """``log |Psi_k|`` (K,): the full determinant, the diag product, ``D log psi``."""
    if covariance in ("full", "tied"):  # tied: shape (1,)
        return 2.0 * np.log(np.diagonal(q.chol, axis1=1, axis2=2)).sum(1)
    if covariance == "diag":
        return np.log(q.psi).sum(1)
    return q.m.shape[1] * np.log(q.psi)


def e_log_det_precision(q, covariance):
    """``E[log |Lambda_k|]`` (K,)."""
    D = q.m.shape[1]
    if covariance in ("full", "tied"):
        i = np.arange(1, D + 1)
        dig = digamma(0.5 * (q.nu[:, None] + 1.0 - i)).sum(1)
    else:
        dig = D * digamma(0.5 * q.nu)
    return dig + D * _LOG2 - logdet_psi(q, covariance)


def estep_gaussian(q, covariance):
    """``(prec_chol, c)``: the native precision Cholesky factor of ``Psi_k / nu_k`` for
    EM's E-step and the per-component constant ``c_k`` of the module docstring."""
    D = q.m.shape[1]
    if covariance in ("full", "tied"):  # tied: K equal full factors (see estep_type)
        i = np.arange(1, D + 1)
        half = 0.5 * (digamma(0.5 * (q.nu[:, None] + 1.0 - i)) - np.log(0.5 * q.nu)[:, None]).sum(1)
        prec = np.swapaxes(gs.tri_inv(q.chol), 1, 2) * np.sqrt(q.nu)[:, None, None]
    else:
        half = 0.5 * D * (digamma(0.5 * q.nu) - np.log(0.5 * q.nu))
        scale = q.nu[:, None] if covariance == "diag" else q.nu
        prec = np.sqrt(scale / q.psi)
    return prec, half - 0.5 * D / q.beta


def expected_precision_maha(q, covariance, dev):
    """``E[dev_k^T Lambda_k dev_k]`` (K,) for a (K, D) array of deviations."""
    if covariance in ("full", "tied"):
        z = np.linalg.solve(q.chol, dev[:, :, None])[:, :, 0]
        return q.nu * (z * z).sum(1)
    if covariance == "diag":
        return (q.nu[:, None] * dev**2 / q.psi).sum(1)
    return q.nu * (dev**2).sum(1) / q.psi


def kl_components(q, pr, covariance):
    """``sum_k KL(q(mu_k, Lambda_k) || p(mu_k, Lambda_k))``."""
    D = q.m.shape[1]
    r = pr.beta0 / q.beta
    kl = 0.5 * (
        D * (r - 1.0 - np.log(r)) + pr.beta0 * expected_precision_maha(q, covariance, q.m - pr.m0)
    )
    if covariance in ("full", "tied"):
        nu, nu0 = (q.nu[:1] if covariance == "tied" else q.nu), pr.nu0  # tied: one Sigma
        ld = logdet_psi(q, covariance)
        ld0 = np.linalg.slogdet(pr.psi0)[1]
        c0 = np.linalg.cholesky(pr.psi0)
        z = np.linalg.solve(q.chol, np.broadcast_to(c0, q.chol.shape))
        tr = (z * z).sum((1, 2))  # tr(Psi0 Psi_k^{-1})
        e_ld = e_log_det_precision(q, covariance)[: nu.size]
        wish = (
            0.5 * nu * ld
            - 0.5 * nu0 * ld0
            - 0.5 * (nu - nu0) * D * _LOG2
            - multigammaln(0.5 * nu, D)
            + multigammaln(0.5 * nu0, D)
            + 0.5 * (nu - nu0) * e_ld
            - 0.5 * nu * D
            + 0.5 * nu * tr
        )
        return float(kl.sum() + wish.sum())
    a, a0 = 0.5 * q.nu, 0.5 * pr.nu0
    if covariance == "diag":
        a, b, b0 = a[:, None], 0.5 * q.psi, 0.5 * np.asarray(pr.psi0)[None, :]
    else:
        b, b0 = 0.5 * q.psi, 0.5 * pr.psi0
    return float(kl.sum() + np.sum(kl_gamma(a, b, a0, b0)))


def kl_gamma(a, b, a0, b0):
    """KL(Gamma(a, rate b) || Gamma(a0, rate b0)), elementwise."""
    return (
        (a - a0) * digamma(a)
        - gammaln(a)
        + gammaln(a0)
        + a0 * (np.log(b) - np.log(b0))
        + a * (b0 - b) / b
    )


# =========================================================================== weights
@dataclass(eq=False)
class Weights:
    """q(pi): ``dirichlet`` (K,) for a finite mixture; ``sticks`` (T - 1, 2) Beta
    parameters of a truncated stick-breaking DP (the last stick is 1), with q(alpha) =
    Gamma(``alpha_shape``, rate ``alpha_rate``) or a fixed ``alpha``."""

    dirichlet: np.ndarray | None = None
    sticks: np.ndarray | None = None
    alpha_shape: float | None = None
    alpha_rate: float | None = None
    alpha: float | None = None

    def e_alpha(self):
        if self.alpha is not None:
            return self.alpha
        return self.alpha_shape / self.alpha_rate

    def e_log_alpha(self):
        if self.alpha is not None:
            return float(np.log(self.alpha))
        return float(digamma(self.alpha_shape) - np.log(self.alpha_rate))


def initial_weights(pr, dp):
    """q(pi) before the first update: for the DP, q(alpha) is the prior (or fixed)."""
    if not dp:
        return Weights()
    if pr.dp_alpha is not None:
        return Weights(alpha=pr.dp_alpha)
    return Weights(alpha_shape=pr.dp_shape, alpha_rate=pr.dp_rate)


def update_weights(nk, pr, w):
    """q(pi) from the responsibility sums, then q(alpha) from the new sticks (DP)."""
    nk = np.maximum(nk, 0.0)
    if w.sticks is None and w.alpha is None and w.alpha_shape is None:
        return Weights(dirichlet=pr.alpha0 + nk)
    tail = np.cumsum(nk[::-1])[::-1]  # sum_{j >= t} N_j
    g1 = 1.0 + nk[:-1]
    g2 = w.e_alpha() + tail[1:]
    sticks = np.column_stack([g1, g2])
    if w.alpha is not None:
        return Weights(sticks=sticks, alpha=w.alpha)
    e_log1mv = digamma(g2) - digamma(g1 + g2)
    return Weights(
        sticks=sticks,
        alpha_shape=pr.dp_shape + sticks.shape[0],
        alpha_rate=pr.dp_rate - float(e_log1mv.sum()),
    )


def e_log_weights(w, K):
    """``E[log pi_k]`` (K,)."""
    if w.dirichlet is not None:
        return digamma(w.dirichlet) - digamma(w.dirichlet.sum())
    if K == 1:
        return np.zeros(1)
    g1, g2 = w.sticks[:, 0], w.sticks[:, 1]
    s = digamma(g1 + g2)
    return np.append(digamma(g1) - s, 0.0) + np.concatenate([[0.0], np.cumsum(digamma(g2) - s)])


def mean_weights(w, K):
    """``E[pi_k]`` (K,), summing to 1."""
    if w.dirichlet is not None:
        return w.dirichlet / w.dirichlet.sum()
    if K == 1:
        return np.ones(1)
    ev = w.sticks[:, 0] / w.sticks.sum(1)
    return np.append(ev, 1.0) * np.concatenate([[1.0], np.cumprod(1.0 - ev)])


def kl_weights(w, pr, K):
    """KL of q(pi) (and q(alpha)) from the prior."""
    if w.dirichlet is not None:
        a, a0 = w.dirichlet, pr.alpha0
        sa = a.sum()
        return float(
            gammaln(sa)
            - gammaln(a).sum()
            - gammaln(K * a0)
            + K * gammaln(a0)
            + ((a - a0) * (digamma(a) - digamma(sa))).sum()
        )
    if K == 1:
        return (
            0.0
            if w.alpha is not None
            else float(kl_gamma(w.alpha_shape, w.alpha_rate, pr.dp_shape, pr.dp_rate))
        )
    g1, g2 = w.sticks[:, 0], w.sticks[:, 1]
    s = digamma(g1 + g2)
    e_logv, e_log1mv = digamma(g1) - s, digamma(g2) - s
    e_log_q = -betaln(g1, g2) + (g1 - 1.0) * e_logv + (g2 - 1.0) * e_log1mv
    e_log_p = w.e_log_alpha() + (w.e_alpha() - 1.0) * e_log1mv  # Beta(1, alpha) sticks
    kl = float((e_log_q - e_log_p).sum())
    if w.alpha is None:
        kl += float(kl_gamma(w.alpha_shape, w.alpha_rate, pr.dp_shape, pr.dp_rate))
    return kl


# =========================================================================== summaries
def mean_covariances(q, covariance):
    """Posterior means ``E[Sigma_k]`` as full (K, D, D) matrices; NaN where the mean does
    not exist (``nu_k <= D + 1`` full, ``nu_k <= 2`` diag and spherical)."""
    K, D = q.m.shape
    if covariance in ("full", "tied"):
        den = q.nu - D - 1.0
        return np.broadcast_to(q.psi, (K, D, D)) / np.where(den > 0, den, np.nan)[:, None, None]
    den = q.nu - 2.0
    den = np.where(den > 0, den, np.nan)
    if covariance == "diag":
        var = q.psi / den[:, None]
    else:
        var = np.repeat((q.psi / den)[:, None], D, axis=1)
    out = np.zeros((K, D, D))
    out[:, np.arange(D), np.arange(D)] = var
    return out


def mean_precisions(q, covariance):
    """``E[Lambda_k]`` as full (K, D, D) matrices."""
    K, D = q.m.shape
    if covariance in ("full", "tied"):
        Linv = gs.tri_inv(q.chol)
        return q.nu[:, None, None] * (np.swapaxes(Linv, 1, 2) @ Linv)
    lam = (
        q.nu[:, None] / q.psi if covariance == "diag" else np.repeat((q.nu / q.psi)[:, None], D, 1)
    )
    out = np.zeros((K, D, D))
    out[:, np.arange(D), np.arange(D)] = lam
    return out


def log_predictive_components(X, q, covariance, shift):
    """``log p(x_n | component k, X)`` (N, K) under q: Student-t densities (Bishop 10.81).

    full: t with ``nu_k + 1 - D`` degrees of freedom and shape
    ``Psi_k (1 + beta_k) / (beta_k (nu_k + 1 - D))``; spherical: t with ``nu_k`` degrees
    of freedom and shape ``psi_k (1 + beta_k) / (beta_k nu_k) I``; diag: a product of
    univariate t densities with ``nu_k`` degrees of freedom and squared scales
    ``Psi_kj (1 + beta_k) / (beta_k nu_k)``.
    """
    N, D = X.shape
    K = q.m.shape[0]
    means = q.m + shift
    out = np.empty((N, K))
    if covariance in ("full", "tied"):  # tied: the shared chol broadcasts over k
        df = q.nu + 1.0 - D
        c = (1.0 + q.beta) / (q.beta * df)  # shape = c * Psi
        logdet = logdet_psi(q, covariance) + D * np.log(c)
        Linv = gs.tri_inv(q.chol) / np.sqrt(c)[:, None, None]  # shape^{-1/2}, lower
        for sl in gs.row_chunks(N, K * D):
            dev = X[sl][:, None, :] - means[None]
            z = np.einsum("kij,nkj->nki", Linv, dev)
            out[sl] = (z * z).sum(2)
        return _log_t(out, df, D, logdet)
    if covariance == "spherical":
        df = q.nu
        s2 = q.psi * (1.0 + q.beta) / (q.beta * df)
        for sl in gs.row_chunks(N, K * D):
            dev = X[sl][:, None, :] - means[None]
            out[sl] = (dev * dev).sum(2) / s2
        return _log_t(out, df, D, D * np.log(s2))
    df = q.nu
    s2 = q.psi * ((1.0 + q.beta) / (q.beta * df))[:, None]  # (K, D)
    for sl in gs.row_chunks(N, K * D):
        dev = X[sl][:, None, :] - means[None]
        t = np.log1p(dev * dev / (s2[None] * df[None, :, None])).sum(2)
        out[sl] = -0.5 * (df + 1.0) * t
    const = D * (gammaln(0.5 * (df + 1.0)) - gammaln(0.5 * df) - 0.5 * np.log(df * np.pi))
    return out + const - 0.5 * np.log(s2).sum(1)


def _log_t(maha, df, D, logdet_shape):
    """Multivariate t log density from squared Mahalanobis distances (N, K)."""
    const = (
        gammaln(0.5 * (df + D))
        - gammaln(0.5 * df)
        - 0.5 * D * np.log(df * np.pi)
        - 0.5 * logdet_shape
    )
    return const - 0.5 * (df + D) * np.log1p(maha / df)
