r"""mclust's 14 covariance models (Celeux & Govaert 1995): names, parameter counts and
maximum-likelihood M-steps.

Every model writes :math:`\Sigma_k = \lambda_k D_k A_k D_k^\top` (volume ``lambda``,
orientation ``D`` orthogonal, shape ``A`` diagonal with determinant 1), each of the three
either Equal across components, Variable, or the Identity (mclust's three-letter names,
e.g. ``VEV``: variable volume, equal shape, variable orientation).

===== ============ ===================== =======================================
model native type  nVarParams (mclust)    M-step
===== ============ ===================== =======================================
EII   spherical    1                      closed form
VII   spherical    K                      closed form (bayesmix ``spherical``)
EEI   diag         D                      closed form
VEI   diag         K + D - 1              fixed point (Celeux & Govaert)
EVI   diag         1 + K (D - 1)          closed form
VVI   diag         K D                    closed form (bayesmix ``diag``)
EEE   tied         D (D + 1) / 2          closed form (bayesmix ``tied``)
VEE   full         K + D - 1 + D(D-1)/2   fixed point (Celeux & Govaert)
EVE   full         1 + K(D-1) + D(D-1)/2  MM (Browne & McNicholas 2014)
VVE   full         K D + D(D-1)/2         MM (Browne & McNicholas 2014) [*]
EEV   full         D + K D(D-1)/2         closed form (eigen-decomposition)
VEV   full         K + D - 1 + K D(D-1)/2 fixed point on the eigenvalues
EVV   full         1 + K(D-1) + K D(D-1)/2 closed form
VVV   full         K D (D + 1) / 2        closed form (bayesmix ``full``)
===== ============ ===================== =======================================

[*] VVE's MM weights differ from mclust's so that the likelihood never decreases
(see ``_mm_loop``).

The *native type* is the representation the densities and sufficient statistics use
(:mod:`bayesmix.core._covariance`): an ``EII`` fit is a ``spherical`` one with equal
variances, an ``EVE`` fit a ``full`` one, and so on. The four models bayesmix had before
(VII, VVI, EEE, VVV) keep their own M-steps there; this module holds the other ten.

Under a conjugate prior (:class:`bayesmix.core._covariance.MapPrior`) EII, EEI, VEI,
EVI, EEV and VEV have mclust 6.0's MAP M-steps (``meeiip``, ``meeeip``, ``meveip``,
``meevip``, ``meeevp``, ``mevevp``): the scatter matrices become mclust's posterior
scatter (prior scale + W_k + the mean-shrinkage term) with mclust's denominators;
:data:`MAP_MODELS` lists them, :data:`UNSHRUNK_MEANS` the model whose means mclust does
not shrink.

The iterative M-steps follow mclust 6.0's Fortran (``mclust.f``: ``mevei``, ``mevev``;
``mclustaddson.f``: ``mevee``, ``meeve``, ``mevve``): the same updates, the same starting
values (volumes and shapes 1, orientation the identity, carried from one EM iteration to
the next where mclust carries them: VEI, VEV, EVE, VVE), mclust's inner tolerance
``sqrt(eps)`` on the same quantity, and a cap of :data:`INNER_MAX` inner iterations.
Each function takes the statistics ``(nk, sx, sxx)`` of its native type, the
regularisation ``reg_covar`` (added to the diagonal of the covariances; for EVI, EVV and
EVE, which divide each scatter matrix by its own determinant, ``n_k reg_covar`` is added
to the diagonal of the scatter matrix W_k instead, so a collapsed component stays
finite), and the state of the previous M-step (``None`` at
the first), and returns ``(native covariances, state)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BASE_TYPE",
    "INNER_MAX",
    "INNER_TOL",
    "MAP_MODELS",
    "MCLUST_ALIASES",
    "MCLUST_MODELS",
    "MODEL_M_STEP",
    "MODEL_OF_TYPE",
    "NEW_MODELS",
    "UNSHRUNK_MEANS",
    "n_var_params",
]

#: mclust's 14 model names, in mclust's order
MCLUST_MODELS = (
    "EII",
    "VII",
    "EEI",
    "VEI",
    "EVI",
    "VVI",
    "EEE",
    "VEE",
    "EVE",
    "VVE",
    "EEV",
    "VEV",
    "EVV",
    "VVV",
)
#: the mclust name of bayesmix's four original covariance types
MODEL_OF_TYPE = {"spherical": "VII", "diag": "VVI", "full": "VVV", "tied": "EEE"}
#: the native (density) type of every model
BASE_TYPE = {
    "EII": "spherical",
    "VII": "spherical",
    "EEI": "diag",
    "VEI": "diag",
    "EVI": "diag",
    "VVI": "diag",
    "EEE": "tied",
    **{m: "full" for m in ("VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")},
}
#: the ten models with an M-step of this module
NEW_MODELS = tuple(m for m in MCLUST_MODELS if m not in MODEL_OF_TYPE.values())

#: the new models with a MAP M-step under the conjugate prior (mclust's own M-steps)
MAP_MODELS = ("EII", "EEI", "VEI", "EVI", "EEV", "VEV")
#: mclust 6.0's EEI MAP (``meeeip``) keeps the plain weighted means (its prior shrinks
#: the shape, not the means); bayesmix reproduces it
UNSHRUNK_MEANS = ("EEI",)

#: lower-case mclust names -> the canonical covariance names (the native type for the
#: four models bayesmix had, else the model name itself)
MCLUST_ALIASES = {
    **{m.lower(): m for m in NEW_MODELS},
    **{m.lower(): t for t, m in MODEL_OF_TYPE.items()},
}

#: mclust's inner tolerance (``emControl()$tol[2]``) and this module's inner iteration cap
INNER_TOL = float(np.sqrt(np.finfo(float).eps))
INNER_MAX = 10_000
_NK_EPS = 10.0 * np.finfo(np.float64).eps
_FLMAX = np.finfo(float).max


def n_var_params(model, n_components, n_features):
    """mclust's ``nVarParams``: free parameters of the K covariance matrices of a model.

    Parameters
    ----------
    model : str
        One of :data:`MCLUST_MODELS`.
    n_components, n_features : int

    Returns
    -------
    int

    Examples
    --------
    >>> n_var_params("VEV", 3, 2)
    7
    """
    G, d = n_components, n_features
    rot = d * (d - 1) // 2
    counts = {
        "EII": 1,
        "VII": G,
        "EEI": d,
        "VEI": G + d - 1,
        "EVI": 1 + G * (d - 1),
        "VVI": G * d,
        "EEE": d * (d + 1) // 2,
        "VEE": G + d - 1 + rot,
        "EVE": 1 + G * (d - 1) + rot,
        "VVE": G * d + rot,
        "EEV": 1 + (d - 1) + G * rot,
        "VEV": G + (d - 1) + G * rot,
        "EVV": 1 + G * (d - 1) + G * rot,
        "VVV": G * d * (d + 1) // 2,
    }
    return counts[model]


# --------------------------------------------------------------------------- scatter
def _diag_w(nk, sx, sxx):
    """Diagonals of the scatter matrices W_k, (K, D), from diag statistics."""
    return np.maximum(sxx - sx * sx / (nk + _NK_EPS)[:, None], 0.0)


def _full_w(nk, sx, sxx):
    """Scatter matrices W_k (K, D, D) from full statistics."""
    W = sxx - np.einsum("ki,kj->kij", sx, sx) / (nk + _NK_EPS)[:, None, None]
    return 0.5 * (W + np.swapaxes(W, 1, 2))


def _geomean(a, axis=-1):
    with np.errstate(divide="ignore"):
        return np.exp(np.mean(np.log(a), axis=axis))


def _add_diag(cov, reg):
    """``cov`` with ``reg`` (a scalar, or one value per matrix (K, 1)) on the diagonals."""
    if np.any(reg):
        D = cov.shape[-1]
        cov[..., np.arange(D), np.arange(D)] += reg
    return cov


def _eig_desc(W):
    """Eigenvalues (K, D), decreasing, and eigenvectors (K, D, D) (columns) of each W_k."""
    vals, vecs = np.linalg.eigh(W)
    return np.maximum(vals[:, ::-1], 0.0), vecs[:, :, ::-1]


# --------------------------------------------------------------------------- diagonal family
def _shrinkage(nk, sx, prior):
    """``kappa n_k / (kappa + n_k) (xbar_k - m0)^2`` per feature (K, D), and the count of
    the mean's prior (1 when kappa > 0) in mclust's denominators."""
    nke = nk + _NK_EPS
    c = prior.kappa0 * nke / (prior.kappa0 + nke)
    return c[:, None] * (sx / nke[:, None] - prior.m0) ** 2, (1.0 if prior.kappa0 > 0 else 0.0)


def _m_eii(nk, sx, sxx, reg, state, prior=None):
    W = _diag_w(nk, sx, sxx)
    K, D = W.shape
    if prior is None:
        var = W.sum() / (nk.sum() * D)
    else:  # mclust's meeiip (its sigma^2 has no prior scale term)
        var = (W.sum() + _shrinkage(nk, sx, prior)[0].sum()) / (
            prior.nu0 + (nk.sum() + K) * D + 2.0
        )
    return np.full(K, var) + reg, None


def _m_eei(nk, sx, sxx, reg, state, prior=None):
    W = _diag_w(nk, sx, sxx)
    if prior is None:
        return np.broadcast_to(W.sum(0) / nk.sum(), W.shape).copy() + reg, None
    shrink, one = _shrinkage(nk, sx, prior)  # mclust's meeeip
    num = np.asarray(prior.scale) + (W + shrink).sum(0)
    return np.broadcast_to(num / (nk.sum() + prior.nu0 + 1.0 + one), W.shape).copy() + reg, None


def _m_evi(nk, sx, sxx, reg, state, prior=None):
    # EV* models normalise each W_k by its own determinant, which a component on a few
    # (or on duplicated) points makes 0: reg_covar enters as n_k reg_covar added to the
    # diagonal of W_k (a covariance of order reg_covar in a collapsed direction)
    W = _diag_w(nk, sx, sxx) + reg * (nk + _NK_EPS)[:, None]
    denom = nk.sum()
    if prior is not None:  # mclust's meevip
        shrink, one = _shrinkage(nk, sx, prior)
        W = W + np.asarray(prior.scale)[None] + shrink
        denom += prior.nu0 + 1.0 + one
    det = _geomean(W)  # det(diag W_k)^(1/D)
    lam = det.sum() / denom
    return lam * W / det[:, None], None


def _fixed_point_scale_shape(Om, nk, scale, shape, extra=0.0):
    """mclust's VEI / VEV inner loop: volumes ``scale`` (K,) and a common shape (D,)
    (determinant 1) for the eigenvalue (or diagonal) matrix ``Om`` (K, D); ``extra`` is
    added to the volumes' denominators ``D n_k`` (a prior's degrees of freedom)."""
    D = Om.shape[1]
    for _ in range(INNER_MAX):
        old_scale, old_shape = scale, shape
        scale = (Om / shape[None]).sum(1) / (D * nk + extra)
        shape = (Om / scale[:, None]).sum(0)
        shape = shape / _geomean(shape)
        err = max(
            np.max(np.abs(old_scale - scale) / (1.0 + scale)),
            np.max(np.abs(old_shape - shape) / (1.0 + shape)),
        )
        if not err > INNER_TOL:
            break
    return scale, shape


def _m_vei(nk, sx, sxx, reg, state, prior=None):
    W = _diag_w(nk, sx, sxx)
    K, D = W.shape
    scale, shape = (np.ones(K), np.ones(D)) if state is None else state
    extra = 0.0
    if prior is not None:  # mclust's meveip
        shrink, one = _shrinkage(nk, sx, prior)
        W = W + np.asarray(prior.scale)[None] + shrink
        extra = prior.nu0 + 2.0 + one
    scale, shape = _fixed_point_scale_shape(W, nk + _NK_EPS, scale, shape, extra)
    return scale[:, None] * shape[None] + reg, (scale, shape)


# --------------------------------------------------------------------------- ellipsoidal family
def _posterior_w(nk, sx, sxx, prior):
    """W_k, or under a conjugate prior mclust's posterior scatter
    ``Psi + W_k + kappa n_k / (kappa + n_k) (xbar_k - m0)(xbar_k - m0)^T``."""
    W = _full_w(nk, sx, sxx)
    if prior is None:
        return W
    nke = nk + _NK_EPS
    dev = sx / nke[:, None] - prior.m0
    c = prior.kappa0 * nke / (prior.kappa0 + nke)
    return W + np.asarray(prior.scale)[None] + c[:, None, None] * np.einsum("ki,kj->kij", dev, dev)


def _m_eev(nk, sx, sxx, reg, state, prior=None):
    Om, L = _eig_desc(_posterior_w(nk, sx, sxx, prior))
    denom = nk.sum()
    if prior is not None:  # mclust's meeevp: one prior's worth of degrees of freedom
        denom += prior.nu0 + Om.shape[1] + 1.0 + (1.0 if prior.kappa0 > 0 else 0.0)
    common = Om.sum(0) / denom  # lambda * A
    cov = np.einsum("kij,j,klj->kil", L, common, L)
    return _add_diag(cov, reg), None


def _m_vev(nk, sx, sxx, reg, state, prior=None):
    # under a prior, mclust's mevevp: the posterior scatter, the volumes still over n_k
    Om, L = _eig_desc(_posterior_w(nk, sx, sxx, prior))
    K = Om.shape[0]
    if state is None:  # mclust's first iteration: the EEV solution
        tot = Om.sum(0)
        g = _geomean(tot)
        state = (np.full(K, g / nk.sum()), tot / g)
    scale, shape = _fixed_point_scale_shape(Om, nk + _NK_EPS, *state)
    cov = np.einsum("kij,kj,klj->kil", L, scale[:, None] * shape[None], L)
    return _add_diag(cov, reg), (scale, shape)


def _m_evv(nk, sx, sxx, reg, state, prior=None):
    W = _add_diag(_full_w(nk, sx, sxx), reg * (nk + _NK_EPS)[:, None])  # as in _m_evi
    det = _geomean(np.linalg.eigvalsh(W).clip(0.0))  # det(W_k)^(1/D)
    lam = det.sum() / nk.sum()
    return lam * W / det[:, None, None], None


def _m_vee(nk, sx, sxx, reg, state, prior=None):
    W = _full_w(nk, sx, sxx)
    nke = nk + _NK_EPS
    D = W.shape[1]
    scale = np.ones(W.shape[0])
    prev = _FLMAX / 2
    for _ in range(INNER_MAX):
        C = (W / scale[:, None, None]).sum(0)
        C = C / _geomean(np.linalg.eigvalsh(C).clip(0.0))
        Cinv = np.linalg.inv(C)
        scale = np.einsum("kij,ji->k", W, Cinv) / (D * nke)
        with np.errstate(divide="ignore"):
            trgt = nk.sum() * D + D * float(np.sum(np.log(scale) * nk))
        err = abs(trgt - prev) / (1.0 + abs(trgt))
        prev = trgt
        if not err > INNER_TOL:
            break
    return _add_diag(scale[:, None, None] * C[None], reg), None


def _mm_orientation(W, Wm, O, shape):
    """One MM 1 + MM 2 update (Browne & McNicholas 2014, as mclust's ``meeve``) of the
    common orientation. ``O`` is ``D^T`` (rows the axes); ``shape`` (D, K); ``Wm`` the
    W_k less their largest eigenvalue times the identity."""
    inv = 1.0 / shape.T  # (K, D)
    # MM 1: F = sum_k inv(A_k) D^T (W_k - omega_k I)
    F = ((O @ Wm) * inv[:, :, None]).sum(0)
    P, _, Rt = np.linalg.svd(F)
    WD = W @ (P @ Rt).T  # W_k D, (K, D, D)
    # MM 2: F = sum_k W_k D (inv(A_k) - max(inv(A_k)) I)
    F = (WD * (inv - inv.max(1, keepdims=True))[:, None, :]).sum(0)
    P, _, Rt = np.linalg.svd(F)
    return (P @ Rt).T  # D^T


def _mm_loop(W, nk, state, variable_volume):
    """The inner loop of EVE (mclust's ``meeve``) and VVE: orientation updates, each
    followed by the shapes (and volumes) given it. Returns ``D^T``, the MM weights
    (D, K) and the diagonals ``(D^T W_k D)_jj`` (D, K).

    EVE's weights are the shapes ``A_k`` (determinant 1), as mclust. VVE's are the whole
    eigenvalues ``lambda_k A_k``: mclust's ``mevve`` weights by ``A_k`` alone, which
    minimises another criterion than the likelihood's and lets the log-likelihood
    decrease (by up to 1e-4 relative on the benchmark data); weighting by
    ``lambda_k A_k`` makes every update an MM step of the likelihood (Browne &
    McNicholas 2014), so EM never decreases it.
    """
    K, D, _ = W.shape
    nke = nk + _NK_EPS
    if K == 1:  # the optimum is W's eigen-decomposition (mclust's mvn for G = 1)
        vals, vecs = _eig_desc(W)
        O, diag = vecs[0].T, vals.T
        return O, (diag / nke if variable_volume else diag / _geomean(diag, axis=0)), diag
    omega = np.linalg.eigvalsh(W)[:, -1]
    Wm = W - omega[:, None, None] * np.eye(D)[None]
    O, shape = (np.eye(D), np.ones((D, K))) if state is None else state
    prev = _FLMAX / 2
    for _ in range(INNER_MAX):
        O = _mm_orientation(W, Wm, O, shape)
        diag = ((O @ W) * O[None]).sum(-1).T  # (D^T W_k D)_jj, (D, K)
        if variable_volume:
            shape = diag / nke[None]
            with np.errstate(divide="ignore"):
                trgt = float((nk[None] * np.log(shape)).sum())
        else:
            shape = diag / _geomean(diag, axis=0)[None]
            trgt = float((diag / shape).sum())
        err = abs(trgt - prev) / (1.0 + abs(trgt))
        prev = trgt
        if not err > INNER_TOL:
            break
    return O, shape, diag


def _m_eve(nk, sx, sxx, reg, state, prior=None):
    W = _add_diag(_full_w(nk, sx, sxx), reg * (nk + _NK_EPS)[:, None])  # as in _m_evi
    O, shape, diag = _mm_loop(W, nk, state, variable_volume=False)
    scale = float((diag / shape).sum()) / (nk.sum() * W.shape[1])
    cov = scale * np.einsum("ji,jk,jl->kil", O, shape, O)
    return cov, (O, shape)


def _m_vve(nk, sx, sxx, reg, state, prior=None):
    W = _full_w(nk, sx, sxx)
    O, eig, _ = _mm_loop(W, nk, state, variable_volume=True)
    cov = np.einsum("ji,jk,jl->kil", O, eig, O)
    return _add_diag(cov, reg), (O, eig)


#: ``MODEL_M_STEP[model](nk, sx, sxx, reg_covar, state, prior=None) -> (covariances, state)``
#: (``prior``: a ``bayesmix.core._covariance.MapPrior``, for the models of MAP_MODELS)
MODEL_M_STEP = {
    "EII": _m_eii,
    "EEI": _m_eei,
    "VEI": _m_vei,
    "EVI": _m_evi,
    "VEE": _m_vee,
    "EVE": _m_eve,
    "VVE": _m_vve,
    "EEV": _m_eev,
    "VEV": _m_vev,
    "EVV": _m_evv,
}
