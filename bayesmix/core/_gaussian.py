r"""The one Gaussian-density layer: log densities, responsibilities, E-step statistics.

Everything in bayesmix that evaluates Gaussian components on data goes through here:
EM (:mod:`bayesmix.em`), the posterior analysis (pointwise log-likelihood in the
DataTree, membership probabilities, plug-in predictive densities, plots), and, as the
reference of the PyMC Op's numba kernels, :mod:`bayesmix.core._mixture_kernels`.

Conventions (one of each)
-------------------------
* **Precision Cholesky factors, as scikit-learn.** A component is described by its mean
  and the upper-triangular ``P`` with ``P @ P.T = inv(Sigma)``, i.e. ``P = inv(L).T``
  for the lower Cholesky factor ``L`` of ``Sigma``. Then

  .. math:: \log N(x \mid \mu, \Sigma) = -\tfrac{D}{2}\log 2\pi + \sum_i \log P_{ii}
            - \tfrac12 \lVert (x - \mu)^\top P \rVert^2 ,

  no matrix is inverted beyond one triangular inverse and the log-determinant is a sum
  of logs. Native factors per covariance type (``PRECISION_CHOLESKY``): (K, D, D) full,
  (D, D) tied, (K, D) ``1 / sqrt(variance)`` diag, (K,) spherical. The numba kernels of
  the PyMC Op read the same factor transposed, ``P.T = inv(L)`` (lower triangular, so
  that their inner loops run over contiguous rows); :func:`kernel_layout` converts.
* ``LOG_2PI``: the constant every density (numpy, numba, PyTensor) uses.
* :func:`tri_inv`: the numpy inverse of lower-triangular matrices.
* :func:`cholesky_or_raise`: the Cholesky factorisation, raising
  :class:`SingularCovarianceError` (a ValueError) that names the parameter and the fixes.

Backends
--------
:class:`GaussianDensity` is the numpy reference implementation. Its subclass
:class:`NumbaGaussianDensity` overrides the hot methods (the fused EM pass, the batch
over posterior draws) with the compiled kernels of :mod:`bayesmix.core._estep_kernels` and
:mod:`bayesmix.core._mixture_kernels` and keeps the same API, as arviz-stats keeps its numba
array class a subclass of the numpy one. :func:`backend` returns one or the other. The
kernel modules are imported on first use only (numba takes about a second to import),
and they import nothing from here (``LOG_2PI`` comes from the leaf
:mod:`bayesmix.core._constants`), so there is no import cycle.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from bayesmix.core._constants import LOG_2PI

__all__ = [
    "LOG_2PI",
    "LOG_DET_CHOLESKY",
    "LOG_GAUSSIAN_PROB",
    "PRECISION_CHOLESKY",
    "SECOND_MOMENTS",
    "GaussianDensity",
    "NumbaGaussianDensity",
    "SingularCovarianceError",
    "backend",
    "cholesky_or_raise",
    "kernel_layout",
    "log_component_densities",
    "log_gaussian_prob",
    "log_mixture_density",
    "logsumexp_rows",
    "numba_available",
    "precision_cholesky",
    "responsibilities",
    "row_chunks",
    "tri_inv",
]


# --------------------------------------------------------------------------- Cholesky
class SingularCovarianceError(ValueError):
    """A covariance matrix is not symmetric positive definite (a collapsed component)."""


def singular_covariance_error(name="covariances", reg_covar=None):
    """The :class:`SingularCovarianceError` for parameter ``name``, with the fixes."""
    reg = "" if reg_covar is None else f" (it is {reg_covar:g})"
    return SingularCovarianceError(
        f"{name} contains a covariance matrix that is not symmetric positive definite: some "
        "components have ill-defined empirical covariance (for instance caused by singleton "
        "or collapsed samples). Decrease the number of components K, increase reg_covar"
        f"{reg}, standardise the data, or use a prior (MAP: "
        "prior=bayesmix.GMMPrior.from_data(X, K))."
    )


def cholesky_or_raise(covariances, *, name="covariances", reg_covar=None):
    """Batched lower Cholesky factors, or a :class:`SingularCovarianceError`.

    Parameters
    ----------
    covariances : array_like, shape (..., D, D)
        Symmetric positive definite matrices.
    name : str
        The caller's parameter name, used in the error message.
    reg_covar : float, optional
        The regularisation in use, quoted in the error message.

    Returns
    -------
    ndarray, shape (..., D, D)
        Lower-triangular ``L`` with ``L @ L.T = covariances`` and a positive diagonal.

    Raises
    ------
    SingularCovarianceError
        When a matrix is not positive definite (or holds NaN).

    Examples
    --------
    >>> cholesky_or_raise([[4.0, 2.0], [2.0, 2.0]])
    array([[2., 0.],
           [1., 1.]])
    """
    covariances = np.asarray(covariances, dtype=float)
    try:
        L = np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError:
        raise singular_covariance_error(name, reg_covar) from None
    if not np.all(np.diagonal(L, axis1=-2, axis2=-1) > 0):
        raise singular_covariance_error(name, reg_covar)
    return L


def tri_inv(L):
    """Inverse of batched lower-triangular matrices by forward substitution.

    Plain numpy (einsum, no BLAS call): for the small D of mixture models this is exact to
    rounding and avoids multithreaded BLAS overhead on tiny matrices. Only the lower
    triangle of ``L`` is read; the result has exact zeros above the diagonal.

    Parameters
    ----------
    L : array_like, shape (..., D, D)

    Returns
    -------
    ndarray, shape (..., D, D)

    Examples
    --------
    >>> tri_inv([[2.0, 9.0], [1.0, 1.0]])
    array([[ 0.5,  0. ],
           [-0.5,  1. ]])
    """
    L = np.asarray(L, dtype=float)
    D = L.shape[-1]
    out = np.zeros_like(L)
    eye = np.eye(D)
    for i in range(D):
        acc = np.broadcast_to(eye[i], (*L.shape[:-2], D))
        if i:
            acc = acc - np.einsum("...j,...jd->...d", L[..., i, :i], out[..., :i, :])
        out[..., i, :] = acc / L[..., i, i, None]
    return out


def precision_cholesky(covariances, *, name="covariances", reg_covar=None):
    """Upper-triangular precision Cholesky factors ``P`` (``P @ P.T = inv(Sigma)``).

    Parameters
    ----------
    covariances : array_like, shape (..., D, D)
    name, reg_covar
        As in :func:`cholesky_or_raise`.

    Returns
    -------
    ndarray, shape (..., D, D)

    Examples
    --------
    >>> precision_cholesky([[4.0, 0.0], [0.0, 0.25]])
    array([[0.5, 0. ],
           [0. , 2. ]])
    """
    L = cholesky_or_raise(covariances, name=name, reg_covar=reg_covar)
    return np.swapaxes(tri_inv(L), -1, -2)


def kernel_layout(prec_chol):
    """The numba kernels' layout of full factors: ``P.T`` (lower), C-contiguous."""
    return np.ascontiguousarray(np.swapaxes(prec_chol, -1, -2))


def _prec_chol_full(covariances, reg_covar=None):
    return precision_cholesky(covariances, reg_covar=reg_covar)


def _prec_chol_tied(covariance, reg_covar=None):
    return precision_cholesky(covariance, name="covariance", reg_covar=reg_covar)


def _prec_chol_var(variances, reg_covar=None):
    variances = np.asarray(variances, dtype=float)
    if np.any(~(variances > 0)):
        raise singular_covariance_error("variances", reg_covar)
    return 1.0 / np.sqrt(variances)


#: ``PRECISION_CHOLESKY[type](covariances, reg_covar=None)`` -> native factor
PRECISION_CHOLESKY = {
    "full": _prec_chol_full,
    "tied": _prec_chol_tied,
    "diag": _prec_chol_var,
    "spherical": _prec_chol_var,
}

#: ``LOG_DET_CHOLESKY[type](prec_chol, n_features)`` -> (K,) or scalar ``sum log diag P``
LOG_DET_CHOLESKY = {
    "full": lambda P, D: np.log(np.diagonal(P, axis1=-2, axis2=-1)).sum(-1),
    "tied": lambda P, D: np.log(np.diag(P)).sum(),
    "diag": lambda P, D: np.log(P).sum(-1),
    "spherical": lambda P, D: D * np.log(P),
}


# --------------------------------------------------------------------------- log densities
def row_chunks(n, width, budget=2**21):
    """Row slices such that a (rows, width) float64 temporary stays near 16 MB."""
    step = max(1, int(budget // max(width, 1)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _maha_full(Xs, means, prec_chol):
    K, D = means.shape
    # all components at once: Y = X @ [P_1 ... P_K] - [mu_1 P_1 ... mu_K P_K]
    P_all = np.ascontiguousarray(np.transpose(prec_chol, (1, 0, 2)).reshape(D, K * D))
    b = np.einsum("kd,kde->ke", means, prec_chol).reshape(K * D)
    Y = Xs @ P_all
    Y -= b
    np.square(Y, out=Y)
    return Y @ np.kron(np.eye(K), np.ones((D, 1)))  # (K*D, K): sums each block of D


def _maha_tied(Xs, means, prec_chol):
    Y = (Xs @ prec_chol)[:, None, :] - (means @ prec_chol)[None]
    return np.einsum("nkd,nkd->nk", Y, Y)


def _maha_diag(Xs, means, prec_chol):
    Y = (Xs[:, None, :] - means[None]) * prec_chol[None]
    return np.einsum("nkd,nkd->nk", Y, Y)


def _maha_spherical(Xs, means, prec_chol):
    Y = Xs[:, None, :] - means[None]
    return np.einsum("nkd,nkd->nk", Y, Y) * prec_chol**2


#: squared Mahalanobis distances (rows, K) of a chunk of rows, per covariance type
_MAHALANOBIS = {
    "full": _maha_full,
    "tied": _maha_tied,
    "diag": _maha_diag,
    "spherical": _maha_spherical,
}


#: A row whose squared Mahalanobis distance overflows float64 (a point 1e200 away) is
#: moved out along its ray from the components' centre to about this many Mahalanobis
#: units when ``far_scale=FAR_ORDER``: enough to order the components as infinitely far
#: points are ordered (for tied covariances too, where the linear term decides), for
#: responsibilities and labels ...
FAR_ORDER = 1e8
#: ... and to about this many for log densities: they saturate near -1e300 (finite)
#: instead of overflowing to NaN; the true value is below float64's range.
FAR_SCORE = 1e150


def log_gaussian_prob(X, means, prec_chol, covariance="full", far_scale=None):
    """Log density of every row under every component, on precision Cholesky factors.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    means : ndarray, shape (K, D)
    prec_chol : ndarray
        The native factor of ``covariance`` (see the module docstring).
    covariance : {"full", "tied", "diag", "spherical"}
    far_scale : float, optional
        When given (:data:`FAR_ORDER` or :data:`FAR_SCORE`), rows whose squared distance
        overflows are recomputed at ``c + (x - c) * far_scale / (G * max|x - c|)``, c the
        mean of the component means and G the largest absolute column sum of the
        factors, so every scaled difference stays near ``far_scale``: finite output
        however far a point is. ``None`` (the fits' default) computes as is.

    Returns
    -------
    ndarray, shape (N, K)

    Examples
    --------
    >>> import numpy as np
    >>> log_gaussian_prob(np.zeros((1, 2)), np.zeros((1, 2)), np.ones(1), "spherical")
    array([[-1.83787707]])
    """
    N, D = X.shape
    K = means.shape[0]
    maha = _MAHALANOBIS[covariance]
    out = np.empty((N, K))
    quiet = "ignore" if far_scale else None  # overflowing rows are recomputed below
    with np.errstate(over=quiet, invalid=quiet):
        for sl in row_chunks(N, K * D):
            out[sl] = maha(X[sl], means, prec_chol)
    logdet = LOG_DET_CHOLESKY[covariance](prec_chol, D)
    out = -0.5 * (D * LOG_2PI + out) + logdet
    far = ~np.isfinite(out).all(axis=1) if far_scale else None
    if far is not None and far.any():
        centre = means.mean(axis=0)
        d = X[far] - centre
        P = np.abs(prec_chol)
        G = float(P.sum(axis=-2).max() if P.ndim >= 2 else P.max())
        Xf = centre + d * (far_scale / G / np.abs(d).max(axis=1))[:, None]
        out[far] = log_gaussian_prob(Xf, means, prec_chol, covariance)
    return out


#: ``LOG_GAUSSIAN_PROB[type](X (N, D), means (K, D), prec_chol)`` -> (N, K)
LOG_GAUSSIAN_PROB = {c: partial(log_gaussian_prob, covariance=c) for c in _MAHALANOBIS}


def logsumexp_rows(a):
    """``log(sum(exp(a), axis=1))`` of an (N, K) array; rows of all -inf give -inf."""
    mx = a.max(axis=1)
    safe = np.where(np.isfinite(mx), mx, 0.0)
    with np.errstate(divide="ignore", under="ignore"):
        return safe + np.log(np.exp(a - safe[:, None]).sum(axis=1))


# --------------------------------------------------------------------------- sufficient statistics
def _sxx_full(X, resp):
    N, D = X.shape
    K = resp.shape[1]
    acc = np.zeros((D, K * D))
    for sl in row_chunks(N, K * D):
        Z = (resp[sl][:, :, None] * X[sl][:, None, :]).reshape(-1, K * D)
        # a contiguous X^T: OpenBLAS is very slow on the transposed view of a skinny matrix
        acc += np.ascontiguousarray(X[sl].T) @ Z
    return np.ascontiguousarray(acc.reshape(D, K, D).transpose(1, 0, 2))


def _sxx_tied(X, resp):
    return np.ascontiguousarray(X.T) @ X


def _sxx_diag(X, resp):
    return np.ascontiguousarray(resp.T) @ (X * X)


#: ``SECOND_MOMENTS[type](X, resp)`` -> ``Sxx``: (K, D, D) full, (D, D) tied (summed over
#: components), (K, D) diagonals for diag and spherical
SECOND_MOMENTS = {
    "full": _sxx_full,
    "tied": _sxx_tied,
    "diag": _sxx_diag,
    "spherical": _sxx_diag,
}


# --------------------------------------------------------------------------- backends
class GaussianDensity:
    """Mixture densities on precision Cholesky factors: the numpy reference backend.

    The numba backend (:class:`NumbaGaussianDensity`) subclasses this class and overrides
    :meth:`estep` and :meth:`mixture_draws`; both backends give the same results up to
    rounding (``tests/test_gaussian.py``).
    """

    name = "numpy"

    def log_joint(self, X, weights, means, prec_chol, covariance="full", far_scale=None):
        """``log w_k + log N(x_n | mu_k, Sigma_k)``, shape (N, K) (``far_scale``: see
        :func:`log_gaussian_prob`)."""
        with np.errstate(divide="ignore"):
            logw = np.log(weights)
        return log_gaussian_prob(X, means, prec_chol, covariance, far_scale) + logw

    def estep(
        self, X, covariance, weights, means, prec_chol, labels, sample_weight=None, log_noise=None
    ):
        """One EM pass: total log-likelihood and sufficient statistics; labels in place.

        Parameters
        ----------
        X : ndarray, shape (N, D)
        covariance : str
            Canonical covariance type.
        weights : ndarray, shape (K,), or (K + 1,) with a noise component (last)
        means : ndarray, shape (K, D)
        prec_chol : native precision Cholesky factor (``PRECISION_CHOLESKY``)
        labels : ndarray of int64, shape (N,)
            Written with the most probable component of every row (``K`` for noise).
        sample_weight : ndarray, shape (N,), optional
            Frequency weights: every row's log-likelihood and responsibilities count
            ``sample_weight[n]`` times (integer weights equal duplicated rows).
        log_noise : float, optional
            With a noise component: its constant log density ``-log(volume)``.

        Returns
        -------
        ll : float
            ``sum_n w_n log p(x_n)``.
        nk : ndarray, shape (K,) or (K + 1,)
            Weighted responsibility sums (the noise component's last).
        sx : ndarray, shape (K, D)
        sxx : the second-moment statistic of ``covariance`` (``SECOND_MOMENTS``) over the
            K Gaussian components
        """
        N, D = X.shape
        K = means.shape[0]
        ll = 0.0
        nk = np.zeros(weights.shape[0])
        sx = np.zeros((K, D))
        sxx = None
        plain = sample_weight is None and log_noise is None
        for sl in row_chunks(N, 4 * K * D):
            Xs = X[sl]
            lp = self.log_joint(Xs, weights[:K], means, prec_chol, covariance)
            if log_noise is not None:
                with np.errstate(divide="ignore"):
                    lp = np.column_stack([lp, np.full(len(Xs), np.log(weights[K]) + log_noise)])
            lse = logsumexp_rows(lp)
            r = np.exp(lp - lse[:, None])
            labels[sl] = np.argmax(lp, axis=1)
            if sample_weight is None:
                ll += float(lse.sum())
            else:
                ws = sample_weight[sl]
                ll += float(ws @ lse)
                r *= ws[:, None]
            nk += r.sum(0)
            rg = r[:, :K]
            sx += np.ascontiguousarray(rg.T) @ Xs
            if covariance == "tied" and not plain:
                s = np.ascontiguousarray((Xs * rg.sum(1)[:, None]).T) @ Xs
            else:
                s = SECOND_MOMENTS[covariance](Xs, np.ascontiguousarray(rg))
            sxx = s if sxx is None else sxx + s
        return ll, nk, sx, sxx

    def mixture_draws(self, X, weights, means, prec_chol, want_resp):
        """Log mixture density (S, N) or responsibilities (S, N, K) for S parameter sets.

        ``weights`` (S, K), ``means`` (S, K, D), full ``prec_chol`` (S, K, D, D).
        """
        S, K = weights.shape
        out = np.empty((S, X.shape[0], K) if want_resp else (S, X.shape[0]))
        for s in range(S):
            lj = self.log_joint(X, weights[s], means[s], prec_chol[s])
            lse = logsumexp_rows(lj)
            out[s] = np.exp(lj - lse[:, None]) if want_resp else lse
        return out


def _unpack_upper(packed, D):
    K = packed.shape[0]
    out = np.empty((K, D, D))
    iu = np.triu_indices(D)
    out[:, iu[0], iu[1]] = packed
    out[:, iu[1], iu[0]] = packed
    return out


class NumbaGaussianDensity(GaussianDensity):
    """The numba backend: :class:`GaussianDensity` with compiled hot methods."""

    name = "numba"

    def estep(
        self, X, covariance, weights, means, prec_chol, labels, sample_weight=None, log_noise=None
    ):
        """Same as the numpy method, as one fused parallel pass (``X`` C-contiguous float64).

        Every row's component log densities, log-sum-exp and responsibilities, and the
        sufficient statistics, in one sweep with no (N, K) array
        (:func:`bayesmix.core._estep_kernels._pass_full` / ``_pass_diag``). Sample weights
        multiply each row's contributions (ones when None: exact, the unweighted pass is
        unchanged). A noise component enters as one more component with a zero precision
        factor (so its squared distance is 0) and the constant ``log w_0 - log V``.
        """
        from bayesmix.core import _estep_kernels  # deliberately lazy: numba is heavy

        D = X.shape[1]
        K = means.shape[0]
        with np.errstate(divide="ignore"):
            logw = np.log(weights)
        logdet = LOG_DET_CHOLESKY[covariance](prec_chol, D)
        const = logw[:K] + logdet - 0.5 * D * LOG_2PI
        if log_noise is not None:
            const = np.append(const, logw[K] + log_noise)
            means = np.vstack([means, np.zeros(D)])
        const = np.ascontiguousarray(const, dtype=np.float64)
        Kt = const.shape[0]
        sw = np.ones(X.shape[0]) if sample_weight is None else sample_weight
        if covariance in ("full", "tied"):
            P = prec_chol if covariance == "full" else np.broadcast_to(prec_chol, (K, D, D))
            if log_noise is not None:
                P = np.concatenate([P, np.zeros((1, D, D))])
            # P_all[i, j * Kt + k] = P_k[i, j]; b[j * Kt + k] = (mu_k @ P_k)[j]
            P_all = np.ascontiguousarray(np.transpose(P, (1, 2, 0)).reshape(D, D * Kt))
            b = np.ascontiguousarray(np.einsum("kd,kde->ek", means, P).reshape(D * Kt))
            # tied: the total sum_n w_n x x^T, or with noise the per-component moments
            mode = 2 if covariance == "tied" and log_noise is None else 1
            a_ll, a_n, a_x, a_xx = _estep_kernels._pass_full(X, P_all, b, const, mode, labels, sw)
            sxx = _unpack_upper(a_xx.sum(0)[:K], D)
            if covariance == "tied":
                sxx = sxx.sum(0)
        else:
            prec = prec_chol if covariance == "diag" else np.repeat(prec_chol[:, None], D, 1)
            if log_noise is not None:
                prec = np.vstack([prec, np.zeros(D)])
            prec_t = np.ascontiguousarray(np.asarray(prec, dtype=np.float64).T)
            means_t = np.ascontiguousarray(np.asarray(means, dtype=np.float64).T)
            a_ll, a_n, a_x, a_xx = _estep_kernels._pass_diag(X, means_t, prec_t, const, labels, sw)
            sxx = a_xx.sum(0)[:K]
        return float(a_ll.sum()), a_n.sum(0), a_x.sum(0)[:K], sxx

    def mixture_draws(self, X, weights, means, prec_chol, want_resp, layout="snk"):
        """Same as the numpy method, through :func:`bayesmix.core._draws_kernels.draws_eval`.

        One threaded pass over blocks of rows for all S draws (the Gibbs sweep's
        arithmetic). ``layout="skn"`` returns the responsibilities as (S, K, N).
        """
        from bayesmix.core._draws_kernels import draws_eval  # deliberately lazy (numba)

        ll, resp = draws_eval(
            X, weights, means, kernel_layout(prec_chol), layout if want_resp else "ll"
        )
        return resp if want_resp else ll


_BACKENDS = {"numpy": GaussianDensity(), "numba": NumbaGaussianDensity()}


def numba_available():
    """Whether the numba backend imports (numba installed and working)."""
    try:
        from bayesmix.core import _estep_kernels, _mixture_kernels  # noqa: F401  (deliberately lazy)
    except ImportError:
        return False
    return True


def backend(engine="numpy"):
    """The density backend: ``"numpy"`` (reference) or ``"numba"`` (compiled kernels).

    Examples
    --------
    >>> backend("numpy").name
    'numpy'
    """
    if engine not in _BACKENDS:
        raise ValueError(f"engine must be 'numpy' or 'numba'; got {engine!r}.")
    return _BACKENDS[engine]


# --------------------------------------------------------------------------- on covariances
def log_component_densities(X, means, covariances):
    """Log density of every observation under every component.

    Parameters
    ----------
    X : array_like, shape (N, D)
    means : array_like, shape (..., K, D)
    covariances : array_like, shape (..., K, D, D)

    Returns
    -------
    ndarray, shape (..., N, K)
        ``log N(x_n | mu_k, Sigma_k)``.

    Examples
    --------
    >>> import numpy as np
    >>> log_component_densities(np.zeros((1, 1)), np.zeros((1, 1)), np.ones((1, 1, 1)))
    array([[-0.91893853]])
    """
    X = np.asarray(X, dtype=float)
    means = np.asarray(means, dtype=float)
    P = precision_cholesky(covariances)
    batch = np.broadcast_shapes(means.shape[:-2], P.shape[:-3])
    K, D = means.shape[-2:]
    means = np.broadcast_to(means, (*batch, K, D)).reshape(-1, K, D)
    P = np.broadcast_to(P, (*batch, K, D, D)).reshape(-1, K, D, D)
    out = np.stack([log_gaussian_prob(X, m, p) for m, p in zip(means, P, strict=True)])
    return out.reshape(*batch, X.shape[0], K)


def log_mixture_density(X, weights, means, covariances):
    """Pointwise log density of a Gaussian mixture, labels summed out.

    One parameter set goes through the numpy backend, a batch (leading sample axis,
    e.g. posterior draws; callers chunk long batches) through the numba backend.

    Parameters
    ----------
    X : array_like, shape (N, D)
    weights : array_like, shape (S, K) or (K,)
    means : array_like, shape (S, K, D) or (K, D)
    covariances : array_like, shape (S, K, D, D) or (K, D, D)

    Returns
    -------
    ndarray, shape (S, N) or (N,)

    Examples
    --------
    >>> import numpy as np
    >>> log_mixture_density(np.zeros((1, 1)), [0.5, 0.5], [[0.0], [0.0]], np.ones((2, 1, 1)))
    array([-0.91893853])
    """
    return _dispatch(X, weights, means, covariances, want_resp=False)


def responsibilities(X, weights, means, covariances):
    """Posterior membership probabilities ``p(z_n = k | x_n, theta)``.

    Same inputs as :func:`log_mixture_density`; returns shape (S, N, K) or (N, K).

    Examples
    --------
    >>> import numpy as np
    >>> responsibilities(np.zeros((1, 1)), [0.25, 0.75], [[0.0], [0.0]], np.ones((2, 1, 1)))
    array([[0.25, 0.75]])
    """
    return _dispatch(X, weights, means, covariances, want_resp=True)


def responsibilities_skn(X, weights, means, covariances):
    """:func:`responsibilities` of a batch of S parameter sets, shape (S, K, N).

    The layout the numba kernel writes (no per-draw transposing copy), for callers that
    reduce over draws (:func:`bayesmix.membership`). ``weights`` (S, K), ``means``
    (S, K, D), ``covariances`` (S, K, D, D).

    Examples
    --------
    >>> import numpy as np
    >>> responsibilities_skn(np.zeros((1, 1)), [[0.25, 0.75]], [[[0.0], [0.0]]],
    ...                      np.ones((1, 2, 1, 1))).shape
    (1, 2, 1)
    """
    X = np.ascontiguousarray(X, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if np.isnan(X).any():  # rows with gaps: the observed coordinates' marginal
        resp = _dispatch_missing(X, weights, np.asarray(means, dtype=float), covariances, True)
        return np.ascontiguousarray(np.swapaxes(resp, 1, 2))
    P = precision_cholesky(covariances)
    return backend("numba").mixture_draws(
        X, weights, np.asarray(means, dtype=float), P, True, layout="skn"
    )


def _dispatch(X, weights, means, covariances, want_resp):
    """One parameter set: numpy; a batch (leading sample axis): the numba backend. Rows
    with missing (NaN) entries: the observed-data density (marginal Gaussian of the
    observed coordinates, :func:`bayesmix.core._missing.log_joint_missing_draws`)."""
    X = np.ascontiguousarray(X, dtype=float)
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    if np.isnan(X).any():
        return _dispatch_missing(X, weights, means, covariances, want_resp)
    P = precision_cholesky(covariances)
    if weights.ndim == 1:
        lj = _BACKENDS["numpy"].log_joint(X, weights, means, P)
        lse = logsumexp_rows(lj)
        return np.exp(lj - lse[:, None]) if want_resp else lse
    return backend("numba").mixture_draws(X, weights, means, P, want_resp)


def _dispatch_missing(X, weights, means, covariances, want_resp):
    from bayesmix.core._missing import log_joint_missing_draws

    one = weights.ndim == 1
    cov = np.asarray(covariances, dtype=float)
    if one:
        weights, means, cov = weights[None], means[None], cov[None]
    lj = log_joint_missing_draws(X, weights, means, cov)  # (S, N, K)
    mx = lj.max(-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    lse = mx[..., 0] + np.log(np.exp(lj - mx).sum(-1))
    out = np.exp(lj - lse[..., None]) if want_resp else lse
    return out[0] if one else out
