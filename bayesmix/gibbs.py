r"""Conditionally conjugate Gibbs samplers (data augmentation) for bayesmix models.

``bm.sample(model, sampler="gibbs")`` runs the samplers of this module on a model
built by :func:`bayesmix.build_gmm`, :func:`bayesmix.build_dpgmm` or
:func:`bayesmix.build_mfm` with the conjugate prior of :mod:`bayesmix.priors`; the
result has the DataTree layout of the NUTS sampler (:mod:`bayesmix._trace`).

One sweep
---------
1. **Allocations** :math:`z_n \mid \pi, \mu, \Sigma` for every observation, in log
   space, by inverse-CDF sampling with one uniform per observation from numpy's
   Generator (numba kernel :func:`bayesmix._gibbs_kernels.allocate`).

   DP and MFM models with the full, diag or spherical covariance (and a static
   :math:`\gamma` for the MFM) instead run ``COLLAPSED_SWEEPS`` *collapsed* sweeps per
   draw (fewer when N exceeds ``COLLAPSED_POINTS_PER_DRAW / COLLAPSED_SWEEPS``, at
   least one; Neal 2000, algorithm 3; :func:`bayesmix._gibbs_kernels.collapsed_allocate`):
   each observation in turn is re-allocated with the weights and the component
   parameters integrated out, by its prior allocation weight given the others (the
   labelled stick-breaking prior's :math:`E[\pi_k \mid z_{-n}]` for the DP, the
   restaurant process :math:`N_k + \gamma` or :math:`\gamma V_N(t+1)/V_N(t)` for the
   MFM, Miller & Harrison 2018) times its posterior predictive density under the
   cluster's other members. The label swaps, the concentration, the split-merge moves
   (below), the weights and the parameters are then updated once per draw (a
   partially collapsed Gibbs sampler: every step draws from a conditional of the
   joint posterior, or of a margin of it taken in the right order). The chains'
   first allocations are drawn from the starting point's responsibilities. On Old
   Faithful (4 x 2000 draws, with the split-merge moves below) the smallest bulk ESS
   of the label-invariant quantities is 1774 for the DP and 1189 for the MFM, against
   350 and 424 when allocating given the parameters (``benchmarks/RESULTS.md``,
   section "gibbs").
2. **Weights** given the counts :math:`N_k`:

   * finite mixture: :math:`\pi \sim \mathrm{Dirichlet}(\alpha + N_k)` (drawn in log
     space, so tiny weights never underflow to an absorbing zero);
   * truncated Dirichlet process (T components, Ishwaran & James 2001): first
     Metropolis label swaps (Papaspiliopoulos & Roberts 2008) under the allocation
     prior with the sticks integrated out, then the concentration, then the sticks
     :math:`v_k \sim \mathrm{Beta}(1 + N_k, a + \sum_{j>k} N_j)`, :math:`k < T`;
     the last weight takes the remainder. The concentration :math:`a` with prior
     Gamma(shape :math:`s`, rate :math:`r`) (``prior.dp_concentration``) uses Escobar &
     West's (1995) auxiliary-variable update in the form that is exact for the
     truncated model: with the sticks integrated out,
     :math:`p(z \mid a) \propto \prod_{k<T} a\,B(a + m_k, N_k + 1)`,
     :math:`m_k = \sum_{j>k} N_j`; auxiliary :math:`\eta_k \sim \mathrm{Beta}(a + m_k,
     N_k + 1)` for the :math:`J` factors with :math:`N_k + m_k > 0` make
     :math:`a \mid \eta \sim \mathrm{Gamma}(s + J, r - \sum_k \log\eta_k)`. (E&W's single
     :math:`\mathrm{Beta}(a + 1, n)` variable is exact for the untruncated process only.)
   * mixture of finite mixtures (telescoping sampler, Frühwirth-Schnatter,
     Malsiner-Walli & Grün 2021): the occupied components are moved first, then
     :math:`K \mid` partition with weights and empty components integrated out,
     :math:`p(K \mid C) \propto p(K)\,\frac{K!}{(K-K_+)!}
     \frac{\Gamma(K\gamma_K)}{\Gamma(N + K\gamma_K)}
     \prod_{k \le K_+} \frac{\Gamma(N_k + \gamma_K)}{\Gamma(\gamma_K)}` for
     :math:`K = K_+, \dots,` ``max_components``, then :math:`K - K_+` empty components
     from the prior and :math:`\pi \mid K \sim \mathrm{Dirichlet}(\gamma_K + N_k)`.
   For DP and MFM models, after the allocation sweeps and before the weights (for the
   MFM: before K), ``SPLIT_MERGE_MOVES`` split-merge moves per draw (sequentially
   allocated, Dahl 2005; fewer when N is large, ``SPLIT_MERGE_POINTS_PER_DRAW``)
   change the allocations with the component parameters and weights integrated out
   (:func:`bayesmix._gibbs_kernels.split_merge_moves`): a pair of observations in one
   cluster proposes to split it (the other members follow one by one, each by its
   predictive probability, nearest to the first observation first), in two clusters
   to merge them. The pair's first observation i is, half the time, drawn in
   proportion to the volume of its 10-nearest-neighbour ball (``SM_SPARSE_LAUNCH``: a
   point in a sparse region, where small clusters form and clusters meet), else
   uniformly; j is, nine times in ten, one of i's nearest tenth of the data
   (``SM_NEIGHBOUR_PAIRS``, ``SM_NEIGHBOURS``), else uniform. The pairs' distribution
   and the member order depend on the data only, never on the allocations, so each
   pair's move is reversible and so is the mixture of them. Such pairs propose the
   moves that change the number of clusters (a small cluster merging with the one
   beside it, a cluster splitting where it is thin) rather than merging two large,
   distant clusters, which is rejected. Measured on Old Faithful's MFM (a two-cluster
   and a three-cluster mode, the third a dozen points between the two clouds), 4 x
   2000 draws, 8 sweeps and 40 moves per draw, seeds 1-3: smallest bulk ESS of K+
   828-988 with uniform pairs, 789-1148 with neighbour j, 1109-1189 with neighbour j
   and sparse-weighted i (12.4-13.5 s; before this design, 7 sweeps and 5 uniform
   moves: 295). The moves run after the sweeps, just before the draw is recorded: the
   same moves spread between the sweeps gave half the ESS. *Local* moves (only the
   members within i's nearest 10-50% re-allocated) cost less but gave 0.6x the ESS,
   and Jain & Neal's (2004) restricted-Gibbs launch state, tried with 1 and 3
   intermediate scans, fewer effective draws per second.
   Split-merge moves exist for the full, diag and spherical covariance; the tied
   covariance couples the clusters' marginal likelihoods and has none. Their
   allocation prior is the labelled Dirichlet-multinomial (finite), the labelled
   truncated stick-breaking prior with the sticks integrated out (DP), and the MFM's
   partition prior with K summed out (Miller & Harrison 2018).
3. **Component parameters** given the allocations, from their exact conditionals
   (sufficient statistics by :func:`bayesmix._gibbs_kernels.suff_stats`):
   normal-inverse-Wishart for ``full`` and ``tied`` (one matrix from all
   components' scatter), normal-inverse-gamma per feature for ``diag`` and per
   component for ``spherical``. Empty components are drawn from the prior: this is
   what lets a DP, an MFM or an over-fitted mixture mix.

The inverse-Wishart draws use Bartlett's decomposition on batches of components. The
data are centred at the prior mean inside the sampler (the means are shifted back).

Chains start at the EM fit (as for NUTS, :func:`bayesmix._mcmc._em_init`), each
with its own random stream spawned from ``random_seed``: the draws do not depend on
``cores`` (chains run in threads when ``cores > 1``; the numba kernels release the
GIL).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import numbers
import os
import time
import warnings

import numpy as np
from scipy.special import gammaln

from bayesmix import _gibbs_kernels as _gk
from bayesmix._mcmc import NUTS_STEP_KWARGS

__all__ = ["SAMPLERS", "resolve_sampler", "sample_gibbs"]

SAMPLERS = ("gibbs", "nuts")

#: allocations (chain, draw, obs) are stored when chains * draws * N is at most this
MAX_STORED_ALLOCATIONS = 20_000_000

#: default sampler of a finite mixture: ``"auto"`` picks Gibbs above
#: ``FINITE_GIBBS_MIN_PARAMS`` free parameters, NUTS below. Measured (benchmarks/
#: RESULTS.md, "gibbs-finite"; n = 3000, ESS per second of wall time, Gibbs / NUTS):
#: D=2, K=3 (17 parameters) 0.9x, 2.1x and 1.1x in three runs (a tie within the noise
#: of a shared machine, so NUTS stays); D=5, K=5 (104) 2.7x and 3.4x; D=10, K=8 (527) 7.4x.
FINITE_DEFAULT = "auto"
FINITE_GIBBS_MIN_PARAMS = 60

#: NUTS-only keywords that are accepted and ignored by the Gibbs sampler
_NUTS_ONLY = (*NUTS_STEP_KWARGS, "nuts", "compile_kwargs", "compute_convergence_checks")


# ---------------------------------------------------------------------------- dispatch
def resolve_sampler(model, sampler, *, nuts_options=False):
    """Which sampler :func:`bayesmix.sample` runs: ``"gibbs"`` or ``"nuts"``.

    Parameters
    ----------
    model : pymc.Model or MFMModel
        Built by a bayesmix builder.
    sampler : {"gibbs", "nuts"} or None
        ``None``: NUTS when the prior is LKJ, the model has sample weights or a noise
        component, or NUTS options were given (``nuts_options``); otherwise Gibbs for
        DP and MFM models, and for finite ones Gibbs above
        ``FINITE_GIBBS_MIN_PARAMS`` (60) free parameters, NUTS below
        (``FINITE_DEFAULT``). An MFM is always sampled by Gibbs.
    nuts_options : bool
        Whether the caller passed options that only NUTS uses.

    Returns
    -------
    str
    """
    from bayesmix.models import get_config

    cfg = get_config(model)
    if sampler is not None and sampler not in SAMPLERS:
        raise ValueError(
            f"sampler must be one of {list(SAMPLERS)} or None; got {sampler!r}. Use "
            "sampler='gibbs' (conjugate priors) or sampler='nuts'."
        )
    lkj = cfg.prior.covariance_prior == "lkj"
    if cfg.model == "mfm":
        if sampler == "nuts":
            raise ValueError(
                "sampler='nuts' cannot sample a mixture of finite mixtures (its number of "
                "components varies); use sampler='gibbs' (the default for build_mfm models)."
            )
        sampler = "gibbs"
    if sampler == "gibbs" and lkj:
        raise ValueError(
            "sampler='gibbs' needs the conjugate prior, but the model's prior has "
            "covariance_prior='lkj'; sample it with sampler='nuts', or build the model with "
            "GMMPrior(..., covariance_prior='conjugate')."
        )
    weighted = getattr(cfg, "sample_weight", None) is not None
    noise = bool(getattr(cfg, "noise_volume", None))
    if sampler == "gibbs" and (weighted or noise):
        what = "sample_weight" if weighted else "a noise component"
        raise ValueError(
            f"sampler='gibbs' does not support models built with {what} (the Gibbs "
            "sampler allocates whole, unweighted observations to Gaussian components); "
            "sample this model with sampler='nuts'."
        )
    if sampler is None:
        if lkj or nuts_options or weighted or noise:
            sampler = "nuts"
        elif cfg.model == "dpgmm":
            sampler = "gibbs"
        elif FINITE_DEFAULT == "auto":
            big = _n_params(cfg.covariance, cfg.n_components, cfg.X.shape[1])
            sampler = "gibbs" if big > FINITE_GIBBS_MIN_PARAMS else "nuts"
        else:
            sampler = FINITE_DEFAULT
    return sampler


def _n_params(covariance, K, D):
    """Free parameters of a finite mixture (weights, means, covariances)."""
    cov = {"full": K * D * (D + 1) // 2, "tied": D * (D + 1) // 2, "diag": K * D}
    return (K - 1) + K * D + cov.get(covariance, K)


# ---------------------------------------------------------------------------- conjugate draws
@dataclasses.dataclass(frozen=True)
class _Conj:
    """Prior constants in the centred coordinates (prior mean 0)."""

    covariance: str
    k0: float
    nu0: float
    Psi0: np.ndarray  # (D, D)
    psi: np.ndarray  # (D,) diag scales; spherical uses psi[0]

    @classmethod
    def from_prior(cls, prior, covariance):
        psi = np.atleast_1d(np.asarray(prior.covariance_scale(covariance), dtype=float))
        if covariance in ("full", "tied"):
            psi = np.diag(prior.scale).copy()
        return cls(covariance, prior.mean_shrinkage, prior.dof, prior.scale, psi)


@functools.lru_cache(maxsize=32)
def _tril_below(D):
    return np.tril_indices(D, -1)


def inv_wishart_draws(rng, dof, scale):
    """Batched inverse-Wishart draws by Bartlett's decomposition.

    Parameters
    ----------
    rng : numpy.random.Generator
    dof : ndarray, shape (K,)
        Degrees of freedom, each > D - 1.
    scale : ndarray, shape (K, D, D)
        SPD scale matrices.

    Returns
    -------
    cov, chol : ndarray, shape (K, D, D)
        The draws :math:`\\Sigma_k \\sim \\mathrm{InvWishart}(\\nu_k, \\Psi_k)` and their
        lower Cholesky factors.

    Examples
    --------
    >>> import numpy as np
    >>> cov, chol = inv_wishart_draws(np.random.default_rng(0), np.array([5.0]), np.eye(2)[None])
    >>> cov.shape, bool(np.allclose(chol @ chol.swapaxes(-1, -2), cov))
    ((1, 2, 2), True)
    """
    K, D = scale.shape[0], scale.shape[-1]
    U = np.linalg.cholesky(scale)
    A = np.zeros((K, D, D))
    r, c = _tril_below(D)
    A[:, r, c] = rng.standard_normal((K, r.size))
    diag = np.arange(D)
    A[:, diag, diag] = np.sqrt(rng.chisquare(dof[:, None] - diag[None, :]))
    # Sigma^{-1} = U^{-T} A A^T U^{-1} ~ Wishart(nu, Psi^{-1})  =>  Sigma = T T^T, T = U A^{-T}
    T = U @ np.swapaxes(np.linalg.inv(A), -1, -2)
    cov = T @ np.swapaxes(T, -1, -2)
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    return cov, np.linalg.cholesky(cov)


def _posterior_terms(conj, counts, sums, scatter):
    """kappa_n, mean m_n and the Psi_n increment S_k + k0 n/(k0+n) xbar xbar^T (m0 = 0)."""
    n = counts.astype(float)
    kn = conj.k0 + n
    xbar = sums / np.maximum(n, 1.0)[:, None]
    mn = sums / kn[:, None]
    shrink = conj.k0 * n / kn
    return kn, mn, xbar, shrink


def draw_components(rng, conj, counts, sums, scatter):
    """Draw every component's mean and covariance from its conditional given z.

    Parameters
    ----------
    rng : numpy.random.Generator
    conj : _Conj
    counts : ndarray of int, shape (K,)
    sums : ndarray, shape (K, D)
        Sums of the (centred) observations per component.
    scatter : ndarray, shape (K, D, D)
        Centred scatter matrices.

    Returns
    -------
    means : ndarray, shape (K, D)
        In centred coordinates.
    cov : ndarray, shape (K, D, D)
    chol : ndarray, shape (K, D, D)
        Lower Cholesky factors of ``cov``.
    own : dict
        The model's own variable (``covariances``, ``covariance`` or ``variances``).
    """
    K, D = sums.shape
    cv = conj.covariance
    if cv == "full":  # one numba kernel (numpy's batched linear algebra: 3x the time at K=3)
        z = rng.standard_normal((K, D + D * (D - 1) // 2))
        chisq = rng.chisquare((conj.nu0 + counts)[:, None] - np.arange(D)[None, :])
        means, cov, chol, prec = (np.empty((K, D)), *np.empty((3, K, D, D)))
        _gk.niw_draws(
            counts, sums, scatter, conj.k0, conj.nu0, conj.Psi0, z, chisq, means, cov, chol, prec
        )
        return means, cov, chol, {"covariances": cov}
    kn, mn, xbar, shrink = _posterior_terms(conj, counts, sums, scatter)
    eps = rng.standard_normal((K, D))
    if cv == "tied":
        outer = shrink[:, None, None] * xbar[:, :, None] * xbar[:, None, :]
        psin = conj.Psi0 + (scatter + outer).sum(0)
        cov1, chol1 = inv_wishart_draws(rng, np.array([conj.nu0 + counts.sum()]), psin[None])
        cov = np.broadcast_to(cov1, (K, D, D))
        chol = np.broadcast_to(chol1, (K, D, D))
        own = {"covariance": cov1[0]}
        means = mn + np.einsum("kij,kj->ki", chol, eps) / np.sqrt(kn)[:, None]
        return means, cov, chol, own
    if cv == "diag":
        a = np.broadcast_to(((conj.nu0 + counts) / 2.0)[:, None], (K, D))
        b = (conj.psi + np.diagonal(scatter, axis1=1, axis2=2) + shrink[:, None] * xbar**2) / 2
        var = b / rng.gamma(a)
        sd = np.sqrt(var)
    else:
        a = (conj.nu0 + counts * D) / 2.0
        b = (conj.psi[0] + np.trace(scatter, axis1=1, axis2=2) + shrink * (xbar**2).sum(1)) / 2
        var = b / rng.gamma(a)
        sd = np.broadcast_to(np.sqrt(var)[:, None], (K, D))
    means = mn + sd * eps / np.sqrt(kn)[:, None]
    eye = np.eye(D)
    return means, sd[:, :, None] ** 2 * eye, sd[:, :, None] * eye, {"variances": var}


def log_dirichlet(rng, a):
    """Log of a Dirichlet(a) draw, exact for small ``a`` (no underflow to log 0).

    Uses :math:`G(a) = G(a + 1)\\,U^{1/a}` for the Gamma variables.

    Examples
    --------
    >>> import numpy as np
    >>> lw = log_dirichlet(np.random.default_rng(0), np.array([1e-3, 1e-3, 5.0]))
    >>> bool(np.isclose(np.exp(lw).sum(), 1.0)) and bool(np.all(np.isfinite(lw)))
    True
    """
    lg = _log_gamma_draws(rng, np.asarray(a, dtype=float))
    mx = lg.max()
    return lg - (mx + np.log(np.exp(lg - mx).sum()))  # (scipy's logsumexp: 10x the overhead)


def _log_gamma_draws(rng, a):
    return np.log(rng.gamma(a + 1.0)) + np.log(rng.random(np.shape(a))) / a


def log_beta(rng, a, b):
    """``(log v, log(1 - v))`` of Beta(a, b) draws, both exact when v is near 0 or 1.

    A stick ``v`` drawn as a float can round to 1 (e.g. Beta(1, a) with a tiny
    concentration ``a``), which would cut every later weight to an exact 0; the
    ratio of two Gamma variables in log space keeps ``log(1 - v)`` finite.

    Examples
    --------
    >>> import numpy as np
    >>> lv, l1m = log_beta(np.random.default_rng(0), np.array([1.0]), np.array([1e-3]))
    >>> bool(np.isfinite(l1m[0])) and bool(np.isclose(np.exp(lv) + np.exp(l1m), 1.0)[0])
    True
    """
    la, lb = _log_gamma_draws(rng, a), _log_gamma_draws(rng, b)
    tot = np.logaddexp(la, lb)
    return la - tot, lb - tot


# ---------------------------------------------------------------------------- state
@dataclasses.dataclass(frozen=True)
class _Spec:
    """What every sweep of one model needs (read-only, shared by the chains)."""

    kind: str  # "gmm", "dpgmm" or "mfm"
    Xc: np.ndarray  # (N, D) data centred at the prior mean
    conj: _Conj
    n_slots: int
    weight_concentration: float
    dp_shape: float = 1.0
    dp_rate: float = 1.0
    log_k_prior: np.ndarray | None = None  # (max_components,), log P(K = 1..Kmax)
    dynamic: bool = False
    sm_conj: tuple | None = None  # split-merge constants; None: no split-merge moves
    log_v: np.ndarray | None = None  # MFM, static gamma: log V_N(t), t = 0 .. Kmax + 1
    Xs: np.ndarray | None = None  # (N, D) standardised data: split-merge allocation order
    #: (N, N) nearest-first order per observation (``_gk.nearest_order``), or (0, 0):
    #: sorted per move (N above ``SM_ORDER_MAX_N``)
    sm_order: np.ndarray = dataclasses.field(default_factory=lambda: np.empty((0, 0), np.int32))
    sm_self: np.ndarray | None = None  # (N,) position of i in sm_order[i]
    sm_launch: np.ndarray | None = None  # (N,) cumulative launch probabilities of i


@dataclasses.dataclass
class _State:
    """One chain's current parameters (component arrays have ``n_slots`` rows)."""

    log_w: np.ndarray
    means: np.ndarray
    cov: np.ndarray
    chol: np.ndarray
    own: dict
    z: np.ndarray
    counts: np.ndarray
    sticks: np.ndarray | None = None
    alpha: float = 1.0
    K: int = 0

    def permute(self, perm):
        """Relabel: new component ``j`` is old component ``perm[j]``."""
        self.means = self.means[perm]
        self.cov = self.cov[perm]
        self.chol = self.chol[perm]
        self.own = {k: (v if k == "covariance" else v[perm]) for k, v in self.own.items()}
        inv = np.empty_like(perm)
        inv[perm] = np.arange(perm.size)
        self.z = inv[self.z]
        self.counts = self.counts[perm]


#: DP and static-gamma MFM models (full, diag, spherical covariance) allocate with the
#: component parameters and weights integrated out (``_gk.collapsed_allocate``), then
#: draw them given the allocations (``False``: allocations given the parameters, as for
#: finite mixtures). Measured on Old Faithful: benchmarks/RESULTS.md, section "gibbs".
COLLAPSED = True
#: collapsed allocation sweeps per draw; the label swaps, the concentration, the
#: split-merge moves, the weights and the parameters are updated once per draw
COLLAPSED_SWEEPS = 8
#: ... but at most this many observation updates per draw (a collapsed sweep is
#: sequential, about 0.35 microseconds per observation on Old Faithful): one sweep per
#: draw from N = 10,000
COLLAPSED_POINTS_PER_DRAW = 20_000


def _n_sweeps(spec):
    return max(1, min(COLLAPSED_SWEEPS, COLLAPSED_POINTS_PER_DRAW // spec.Xc.shape[0]))


def _use_collapsed(spec):
    return COLLAPSED and spec.sm_conj is not None and (spec.kind != "mfm" or spec.log_v is not None)


def _collapsed(spec, st, rng, kind, param):
    """One sweep of ``z | concentration`` with parameters and weights integrated out."""
    u = rng.random(spec.Xc.shape[0])
    log_v = spec.log_v if kind == 2 else _NO_K_PRIOR
    _gk.collapsed_allocate(
        spec.Xc, st.z, st.counts, spec.n_slots, u, spec.sm_conj, kind, float(param), log_v
    )


def log_v_mfm(log_k_prior, gamma, N):
    """``log V_N(t)``, t = 0 .. Kmax + 1, of an MFM with a static gamma (Miller &
    Harrison 2018): ``V_N(t) = sum_{K >= t} p(K) K! / (K - t)! Gamma(K gamma) /
    Gamma(N + K gamma)``; ``-inf`` where no K >= t has prior mass."""
    Kmax = log_k_prior.size
    Ks = np.arange(1, Kmax + 1, dtype=float)
    base = log_k_prior + gammaln(Ks + 1.0) + gammaln(Ks * gamma) - gammaln(N + Ks * gamma)
    out = np.full(Kmax + 2, -np.inf)
    for t in range(Kmax + 1):
        terms = base[t - 1 if t else 0 :] - gammaln(Ks[t - 1 if t else 0 :] - t + 1.0)
        terms = terms[np.isfinite(terms)]
        if terms.size:
            m = terms.max()
            out[t] = m + np.log(np.exp(terms - m).sum())
    return out


def _allocate(spec, st, rng):
    prec = np.linalg.inv(st.chol)
    u = rng.random(spec.Xc.shape[0])
    return _gk.allocate(spec.Xc, st.log_w, st.means, prec, u, st.z, st.counts)


def _update_components(spec, st, rng):
    K, D = spec.n_slots, spec.Xc.shape[1]
    sums = np.empty((K, D))
    scatter = np.empty((K, D, D))
    _gk.suff_stats(spec.Xc, st.z, st.counts, sums, scatter)
    st.means, st.cov, st.chol, st.own = draw_components(rng, spec.conj, st.counts, sums, scatter)


#: split-merge proposals per draw (none for the tied covariance: its shared matrix
#: makes the clusters' marginal likelihoods dependent), after the allocation sweeps
SPLIT_MERGE_MOVES = 40
#: ... but at most this many members allocated per draw, counting N per move (one move
#: allocates up to N - 2 members, about 0.15 microseconds each): 40 moves up to N = 500,
#: one from N = 20,000
SPLIT_MERGE_POINTS_PER_DRAW = 20_000
_NO_K_PRIOR = np.zeros(1)
#: split-merge moves for finite mixtures too (off: with K fixed they only help an
#: over-fitted mixture, and cost more than the rest of a sweep at large N)
FINITE_SPLIT_MERGE = False
_SM_TYPES = {"full": 0, "diag": 2, "spherical": 3}
#: the split-merge allocation order is tabulated up to this N (N^2 int32: 9 MB); above
#: it members are sorted per move and pairs are uniform
SM_ORDER_MAX_N = 1500
#: probability that a split-merge pair's i is drawn in proportion to its k-NN volume
#: (k = SM_DENSITY_NEIGHBOURS) rather than uniformly
SM_SPARSE_LAUNCH = 0.5
SM_DENSITY_NEIGHBOURS = 10
#: probability that a split-merge pair's j is one of i's neighbours
SM_NEIGHBOUR_PAIRS = 0.9
#: those neighbours: this fraction of N, at least SM_MIN_NEIGHBOURS
SM_NEIGHBOURS = 0.1
SM_MIN_NEIGHBOURS = 5


def _sm_pairs(spec, rng, M):
    """M ordered pairs (i, j) of distinct observations for split-merge moves.

    With the ``spec.sm_order`` table: i is drawn from ``spec.sm_launch`` (a mixture of
    uniform and in proportion to the volume of its k-nearest-neighbour ball: points in
    sparse regions, where small clusters form and clusters meet, launch more moves);
    j is, with probability ``SM_NEIGHBOUR_PAIRS``, uniform among i's ``SM_NEIGHBOURS *
    N`` (at least ``SM_MIN_NEIGHBOURS``) nearest other observations (standardised
    distance), else uniform among all the others. Without the table (N above
    ``SM_ORDER_MAX_N``) both are uniform. The pairs' distribution depends on the data
    only, never on the allocations, so every pair's move is reversible on its own and
    so is their mixture.
    """
    N = spec.Xc.shape[0]
    if spec.sm_order.shape[0]:
        i = np.minimum(np.searchsorted(spec.sm_launch, rng.random(M), side="right"), N - 1)
    else:
        i = rng.integers(N, size=M)
    j = rng.integers(N - 1, size=M)
    j += j >= i
    if spec.sm_order.shape[0]:
        k = min(N - 1, max(SM_MIN_NEIGHBOURS, int(SM_NEIGHBOURS * N)))
        near = rng.random(M) < SM_NEIGHBOUR_PAIRS
        r = rng.integers(k, size=M)
        nearest = spec.sm_order[i, r + (r >= spec.sm_self[i])]  # skips i itself
        j = np.where(near, nearest, j)
    return np.stack([i, j], axis=1)


def _sm_launch(Xs, order):
    """Cumulative launch probabilities of i for ``_sm_pairs``: ``SM_SPARSE_LAUNCH``
    of the mass in proportion to r_i^D (r_i: distance to the ``SM_DENSITY_NEIGHBOURS``-th
    nearest other observation, so r_i^D is inversely proportional to a k-NN density
    estimate), the rest uniform."""
    N, D = Xs.shape
    k = min(N - 1, SM_DENSITY_NEIGHBOURS)
    r = np.sqrt(((Xs - Xs[order[:, k]]) ** 2).sum(1))
    with np.errstate(divide="ignore"):
        log_v = D * np.log(r)
    p = np.full(N, 1.0 / N)
    if np.isfinite(log_v).any():
        v = np.exp(log_v - log_v[np.isfinite(log_v)].max())
        p = (1.0 - SM_SPARSE_LAUNCH) * p + SM_SPARSE_LAUNCH * v / v.sum()
    return np.cumsum(p) / p.sum()


def _split_merge(spec, st, rng, n_active, kind, param):
    """Split-merge moves on z (weights and parameters integrated out), Dahl (2005).

    ``kind``: 0 finite mixture (labelled, Dirichlet-multinomial), 1 truncated DP
    (labelled), 2 MFM partition (K summed out; ``n_active`` is then ``max_components``).
    """
    if spec.sm_conj is None or n_active < 2:
        return
    N = spec.Xc.shape[0]
    logk = spec.log_k_prior if kind == 2 else _NO_K_PRIOR
    prior = (kind, float(param), logk, bool(spec.dynamic))
    M = max(1, min(SPLIT_MERGE_MOVES, SPLIT_MERGE_POINTS_PER_DRAW // N))
    pairs = _sm_pairs(spec, rng, M)
    u = rng.random((M, N))
    u_slot, log_u = rng.random(M), np.log(rng.random(M))
    _gk.split_merge_moves(
        spec.Xc,
        spec.Xs,
        spec.sm_order,
        st.z,
        st.counts,
        n_active,
        pairs,
        u,
        u_slot,
        log_u,
        spec.sm_conj,
        prior,
    )


# ---------------------------------------------------------------------------- sweeps
def _sweep_finite(spec, st, rng):
    _allocate(spec, st, rng)
    if FINITE_SPLIT_MERGE:
        _split_merge(spec, st, rng, spec.n_slots, 0, spec.weight_concentration)
    if spec.n_slots > 1:
        st.log_w = log_dirichlet(rng, spec.weight_concentration + st.counts)
    _update_components(spec, st, rng)


def _dp_concentration(spec, st, rng):
    """Escobar & West's auxiliary-variable update, exact for the truncated process."""
    counts = st.counts[:-1].astype(float)
    rest = st.counts[::-1].cumsum()[::-1][1:].astype(float)  # m_k = sum_{j > k} N_j
    active = (counts + rest) > 0
    log_eta, _ = log_beta(rng, st.alpha + rest[active], counts[active] + 1.0)
    rate = spec.dp_rate - log_eta.sum()
    st.alpha = float(rng.gamma(spec.dp_shape + active.sum()) / rate)
    return counts, rest


def _label_swaps(spec, st, rng):
    T = spec.n_slots
    pairs = rng.integers(T, size=(T, 2))
    log_u = np.log(rng.random(T))
    perm = np.empty(T, dtype=np.int64)
    if _gk.dp_label_swaps(st.counts, st.alpha, pairs, log_u, perm):
        counts = st.counts.copy()  # already in the new labelling
        st.permute(perm)
        st.counts = counts


def _sweep_dp(spec, st, rng):
    T = spec.n_slots
    if _use_collapsed(spec):
        for _ in range(_n_sweeps(spec)):
            _collapsed(spec, st, rng, 1, st.alpha)
    else:
        _allocate(spec, st, rng)
    _label_swaps(spec, st, rng)
    _dp_concentration(spec, st, rng)
    _split_merge(spec, st, rng, T, 1, st.alpha)
    counts = st.counts[:-1].astype(float)
    rest = st.counts[::-1].cumsum()[::-1][1:].astype(float)
    log_v, log1m = log_beta(rng, 1.0 + counts, st.alpha + rest)
    st.log_w = np.concatenate([log_v, [0.0]]) + np.concatenate([[0.0], np.cumsum(log1m)])
    st.sticks = np.exp(log_v)
    _update_components(spec, st, rng)


def _log_p_k(spec, counts_occupied, N):
    """log p(K | partition) for K = K+ .. Kmax, unnormalised (module docstring)."""
    kp = counts_occupied.size
    Ks = np.arange(kp, spec.n_slots + 1, dtype=float)
    g = (
        spec.weight_concentration / Ks
        if spec.dynamic
        else np.full(Ks.shape, spec.weight_concentration)
    )
    occ = counts_occupied[None, :].astype(float)
    lp = (
        spec.log_k_prior[kp - 1 :]
        + gammaln(Ks + 1.0)
        - gammaln(Ks - kp + 1.0)
        + gammaln(Ks * g)
        - gammaln(N + Ks * g)
        + (gammaln(occ + g[:, None]) - gammaln(g[:, None])).sum(1)
    )
    return Ks.astype(int), g, lp


def _sweep_mfm(spec, st, rng):
    if _use_collapsed(spec):
        for _ in range(_n_sweeps(spec)):
            _collapsed(spec, st, rng, 2, spec.weight_concentration)
    else:
        _allocate(spec, st, rng)
    _split_merge(spec, st, rng, spec.n_slots, 2, spec.weight_concentration)
    order = np.argsort(st.counts == 0, kind="stable")  # occupied components first
    st.permute(order)
    kp = int((st.counts > 0).sum())
    Ks, g, lp = _log_p_k(spec, st.counts[:kp], spec.Xc.shape[0])
    p = np.exp(lp - lp.max())
    i = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right"))
    i = min(i, p.size - 1)
    st.K = int(Ks[i])
    log_w = np.full(spec.n_slots, -np.inf)
    log_w[: st.K] = log_dirichlet(rng, g[i] + st.counts[: st.K])
    st.log_w = log_w
    _update_components(spec, st, rng)


_SWEEPS = {"gmm": _sweep_finite, "dpgmm": _sweep_dp, "mfm": _sweep_mfm}


# ---------------------------------------------------------------------------- chains
def _record_arrays(spec, draws, store_z):
    K, (N, D) = spec.n_slots, spec.Xc.shape
    out = {
        "log_w": np.empty((draws, K)),
        "means": np.empty((draws, K, D)),
        "cov": np.empty((draws, K, D, D)),
        "n_occupied": np.empty(draws, dtype=np.int64),
    }
    if store_z:
        out["z"] = np.empty((draws, N), dtype=np.int32)
    if spec.kind == "dpgmm":
        out["sticks"] = np.empty((draws, K - 1))
        out["alpha"] = np.empty(draws)
    if spec.kind == "mfm":
        out["K"] = np.empty(draws, dtype=np.int64)
    return out


def _store(out, s, st):
    out["log_w"][s] = st.log_w
    out["means"][s] = st.means
    out["cov"][s] = st.cov
    out["n_occupied"][s] = int((st.counts > 0).sum())
    for name, value in st.own.items():
        if name == "covariances":  # the same as "cov"
            continue
        out.setdefault(name, np.empty((out["means"].shape[0], *np.shape(value))))[s] = value
    if "z" in out:
        out["z"][s] = st.z
    if "sticks" in out:
        out["sticks"][s] = st.sticks
        out["alpha"][s] = st.alpha
    if "K" in out:
        out["K"][s] = st.K


def _run_chain(spec, init, seed, draws, tune, store_z, tick):
    """Run one chain from a copy of ``init``; returns the recorded arrays."""
    rng = np.random.default_rng(seed)
    st = dataclasses.replace(init, z=init.z.copy(), counts=init.counts.copy(), own=dict(init.own))
    sweep = _SWEEPS[spec.kind]
    if spec.kind != "gmm" and _use_collapsed(spec):
        # the collapsed sweeps start from allocations, not parameters: draw them once
        # from the starting point's (EM fit's) responsibilities
        _allocate(spec, st, rng)
    out = _record_arrays(spec, draws, store_z)
    done = 0
    for it in range(tune + draws):
        sweep(spec, st, rng)
        if it >= tune:
            _store(out, it - tune, st)
        done += 1
        if done == 100:
            tick(done)
            done = 0
    tick(done)
    return out


@contextlib.contextmanager
def _progress(total, enabled):
    """A rich progress bar (PyMC's) advanced by the chains; a no-op when disabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("Gibbs sampling", total=total)
        yield lambda n: bar.advance(task, n)


def _run_chains(spec, init, seeds, draws, tune, store_z, cores, progressbar):
    chains = len(seeds)
    with _progress(chains * (tune + draws), progressbar) as tick:
        if cores <= 1 or chains == 1:
            return [_run_chain(spec, init, s, draws, tune, store_z, tick) for s in seeds]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(cores, chains)) as pool:
            futures = [
                pool.submit(_run_chain, spec, init, s, draws, tune, store_z, tick) for s in seeds
            ]
            return [f.result() for f in futures]


# ---------------------------------------------------------------------------- set-up
def prior_mode_components(prior, covariance, n):
    """Means (n, D) and full covariances (n, D, D) at the prior mode.

    Used to start and to pad components that do not exist (MFM components beyond K):
    the mean :math:`m_0` and the mode of the covariance prior (inverse-Wishart
    :math:`\\Psi_0/(\\nu_0 + D + 1)`; inverse-gamma :math:`\\psi/(\\nu_0 + 2)`).
    """
    D = prior.n_features
    if covariance in ("full", "tied"):
        cov = prior.scale / (prior.dof + D + 1.0)
    else:
        cov = np.diag(np.broadcast_to(prior.covariance_scale(covariance), (D,))) / (prior.dof + 2.0)
    return np.repeat(prior.mean[None], n, axis=0), np.repeat(cov[None], n, axis=0)


def _own_from_full(covariance, w, c):
    """The model's own covariance variable from full matrices (K, D, D)."""
    if covariance == "full":
        return {"covariances": c}
    if covariance == "tied":
        return {"covariance": np.average(c, axis=0, weights=np.maximum(w, 1e-12))}
    var = np.diagonal(c, axis1=1, axis2=2).copy()
    if covariance == "diag":
        return {"variances": var}
    return {"variances": var.mean(1)}


def _full_from_own(covariance, own, K, D):
    if covariance == "full":
        return own["covariances"]
    if covariance == "tied":
        return np.broadcast_to(own["covariance"], (K, D, D)).copy()
    var = own["variances"]
    var = var if covariance == "diag" else np.repeat(var[:, None], D, axis=1)
    return var[:, :, None] * np.eye(D)


def _initial_state(cfg, spec, w, m, c):
    """A state from an EM-like point (w (k,), m (k, D), c (k, D, D)), padded as needed."""
    from bayesmix._mcmc import _pad_components

    K, (N, D) = spec.n_slots, spec.Xc.shape
    k_init = w.size
    if cfg.model == "dpgmm":
        w, m, c = _pad_components(cfg, w, m, c)
    elif cfg.model == "mfm":
        w, m, c, k_init = _mfm_start(cfg, w, m, c)
        pm_, pc = prior_mode_components(cfg.prior, cfg.covariance, K - k_init)
        w = np.concatenate([w, np.zeros(K - k_init)])
        m = np.concatenate([m, pm_])
        c = np.concatenate([c, pc])
    own = _own_from_full(cfg.covariance, w, c)
    cov = _full_from_own(cfg.covariance, own, K, D)
    with np.errstate(divide="ignore"):
        log_w = np.log(np.clip(w, 0.0, None) / w.sum())
    a, b = cfg.prior.dp_concentration
    return _State(
        log_w=log_w,
        means=m - cfg.prior.mean,
        cov=cov,
        chol=np.linalg.cholesky(cov),
        own=own,
        z=np.zeros(N, dtype=np.int64),
        counts=np.zeros(K, dtype=np.int64),
        sticks=None,
        alpha=a / b,
        K=k_init if cfg.model == "mfm" else K,
    )


def _mfm_start(cfg, w, m, c):
    """Order by weight; K at the start: the largest K <= k with prior mass (else the least)."""
    order = np.argsort(-w)
    w, m, c = w[order], m[order], c[order]
    support = np.flatnonzero(cfg.k_prior > 0) + 1
    below = support[support <= w.size]
    k = int(below.max()) if below.size else int(support.min())
    if k < w.size:
        w, m, c = w[:k] / w[:k].sum(), m[:k], c[:k]
    elif k > w.size:
        pm_, pc = prior_mode_components(cfg.prior, cfg.covariance, k - w.size)
        w = np.concatenate([w * (1 - 1e-3), np.full(k - w.size, 1e-3 / (k - w.size))])
        m, c = np.concatenate([m, pm_]), np.concatenate([c, pc])
    return w, m, c, k


def _spec(cfg):
    conj = _Conj.from_prior(cfg.prior, cfg.covariance)
    Xc = np.ascontiguousarray(cfg.X - cfg.prior.mean)
    a, b = cfg.prior.dp_concentration
    extra = {}
    if cfg.model == "mfm":
        with np.errstate(divide="ignore"):
            extra = dict(log_k_prior=np.log(cfg.k_prior), dynamic=cfg.dynamic)
        if not cfg.dynamic:
            extra["log_v"] = log_v_mfm(
                extra["log_k_prior"], cfg.prior.weight_concentration, cfg.X.shape[0]
            )
    if cfg.covariance in _SM_TYPES:
        ct = _SM_TYPES[cfg.covariance]
        psi = np.ascontiguousarray(conj.psi[:1] if ct == 3 else conj.psi)
        Psi0 = np.ascontiguousarray(conj.Psi0)
        c0 = float(_gk.prior_constant(ct, float(conj.nu0), Psi0, psi))
        extra["sm_conj"] = (ct, float(conj.k0), float(conj.nu0), Psi0, psi, c0)
        sd = Xc.std(0)
        extra["Xs"] = Xc / np.where(sd > 0, sd, 1.0)
        if Xc.shape[0] <= SM_ORDER_MAX_N:
            order = _gk.nearest_order(extra["Xs"])
            extra["sm_order"] = order
            extra["sm_self"] = np.argmax(order == np.arange(order.shape[0])[:, None], axis=1)
            extra["sm_launch"] = _sm_launch(extra["Xs"], order)
    return _Spec(
        kind=cfg.model,
        Xc=Xc,
        conj=conj,
        n_slots=cfg.n_components,
        weight_concentration=cfg.prior.weight_concentration,
        dp_shape=a,
        dp_rate=b,
        **extra,
    )


def _init_point(cfg, init, rng):
    """(w, m, c) of the starting point: the EM fit by default, as for NUTS."""
    from bayesmix._mcmc import _check_init, _em_init

    D = cfg.X.shape[1]
    if init is None:
        em_cfg = cfg
        if cfg.model == "mfm":  # EM fits with K = 1 .. min(6, ...) as for a DP
            em_cfg = dataclasses.replace(cfg, model="dpgmm")
        init = _em_init(em_cfg, rng)
        w, m, c = _check_init(init, None, D)
    else:
        w, m, c = _check_init(init, None if cfg.model != "gmm" else cfg.n_components, D)
    if w.size > cfg.n_components:
        raise ValueError(
            f"init has {w.size} components, more than the model's {cfg.n_components}; fit EM "
            "with fewer components or increase truncation / max_components."
        )
    return init, w, m, c


# ---------------------------------------------------------------------------- output
def _stack(results, name):
    return np.stack([r[name] for r in results])


def _posterior_arrays(cfg, results):
    """weights, means, full covariances and the model's own variables (C, S, ...)."""
    w = np.exp(_stack(results, "log_w"))
    m = _stack(results, "means") + cfg.prior.mean
    c = _stack(results, "cov")
    own_names = {"full": ["covariances"], "tied": ["covariance"]}.get(cfg.covariance, ["variances"])
    own = {k: _stack(results, k) for k in own_names if k != "covariances"}
    extra = dict(own)
    dims = {"covariance": ["feature", "feature2"]}
    dims["variances"] = ["component", "feature"] if cfg.covariance == "diag" else ["component"]
    if cfg.model == "dpgmm":
        extra["concentration"] = _stack(results, "alpha")
        extra["sticks"] = _stack(results, "sticks")
        dims.update(concentration=[], sticks=["stick"])
    if cfg.model == "mfm":
        Kd = _stack(results, "K")
        absent = np.arange(cfg.n_components)[None, None, :] >= Kd[..., None]  # (C, S, Kmax)
        pm_, pc = prior_mode_components(cfg.prior, cfg.covariance, 1)
        w = np.where(absent, 0.0, w)
        m = np.where(absent[..., None], pm_[0], m)
        c = np.where(absent[..., None, None], pc[0], c)
        if "variances" in extra:
            mode = np.diagonal(pc[0]) if cfg.covariance == "diag" else pc[0, 0, 0]
            vshape = absent[..., None] if cfg.covariance == "diag" else absent
            extra["variances"] = np.where(vshape, mode, extra["variances"])
        extra["n_components"] = Kd
        dims["n_components"] = []
    extra["n_occupied"] = _stack(results, "n_occupied")
    dims["n_occupied"] = []
    return w, m, c, extra, {k: dims[k] for k in extra}


def _to_datatree(cfg, results, attrs, store_z):
    from bayesmix._trace import from_arrays

    w, m, c, extra, dims = _posterior_arrays(cfg, results)
    if store_z:
        extra["allocations"] = _stack(results, "z")
        dims["allocations"] = ["obs"]
    dt = from_arrays(
        w,
        m,
        c,
        cfg.X,
        feature_names=cfg.feature_names,
        attrs=attrs,
        extra=extra,
        extra_dims=dims,
    )
    post = dt["posterior"].to_dataset()
    coords = {}
    if "stick" in post.dims:
        coords["stick"] = np.arange(cfg.n_components - 1)
    if "obs" in post.dims:
        coords["obs"] = np.arange(cfg.X.shape[0])
    if coords:
        dt["posterior"] = post.assign_coords(coords)
    loglik = dt["log_likelihood"]["X"].sum("obs", skipna=False)  # NaN-aware sum: 40x slower
    dt["sample_stats"] = loglik.rename("loglik").to_dataset()
    return dt


def _warn_truncation(cfg, dt):
    from bayesmix._mcmc import TruncationWarning

    last = float(dt["posterior"]["weights"].isel(component=-1).mean())
    if last > 0.01:
        warnings.warn(
            f"The last of the {cfg.n_components} stick-breaking components keeps posterior "
            f"mean weight {last:.3f} > 0.01: the truncation is too small. Increase "
            f"truncation (e.g. bm.build_dpgmm(X, truncation={2 * cfg.n_components})).",
            TruncationWarning,
            stacklevel=4,
        )


def _check_count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


# ---------------------------------------------------------------------------- sample
def sample_gibbs(
    model,
    *,
    init=None,
    draws=1000,
    tune=1000,
    chains=4,
    random_seed=None,
    progressbar=True,
    cores=None,
    **kwargs,
):
    """Sample a conjugate bayesmix model with the Gibbs sampler (module docstring).

    Called by :func:`bayesmix.sample` with ``sampler="gibbs"``; the keywords are
    those of :func:`bayesmix.sample`.

    Parameters
    ----------
    model : pymc.Model or MFMModel
        Built by :func:`bayesmix.build_gmm`, :func:`bayesmix.build_dpgmm` or
        :func:`bayesmix.build_mfm` with ``covariance_prior="conjugate"``.
    init : EMResult-like, optional
        Starting point (default: the EM fit, as for NUTS).
    draws, tune, chains : int
        Kept sweeps, burn-in sweeps, chains.
    random_seed : int or numpy.random.Generator, optional
        Same seed, same draws (also whatever ``cores``).
    progressbar : bool
    cores : int, optional
        Chains run in this many threads; default as ``pymc.sample``: the number of CPUs,
        at most 4 (and at most ``chains``). The draws do not depend on it.
    **kwargs
        NUTS-only settings of :func:`bayesmix.sample` (``target_accept``, ...) are
        accepted and ignored; anything else is a TypeError.

    Returns
    -------
    xarray.DataTree
        As :func:`bayesmix.sample` (module :mod:`bayesmix._trace`), plus posterior
        ``n_occupied`` (chain, draw), ``allocations`` (chain, draw, obs) when
        ``chains * draws * N <= 2e7``, for an MFM ``n_components`` (chain, draw);
        ``sample_stats`` ``loglik`` (chain, draw): the total log-likelihood of the
        draw; root attrs ``sampler="gibbs"``, ``allocations_stored``.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np, bayesmix as bm
    >>> X = np.random.default_rng(0).normal(size=(40, 1))
    >>> with warnings.catch_warnings():  # 20 draws: the ESS warning is expected
    ...     warnings.simplefilter("ignore", bm.ConvergenceWarning)
    ...     dt = sample_gibbs(bm.build_gmm(X, 2), draws=20, tune=20, chains=2,
    ...                       random_seed=1, progressbar=False)
    >>> dt["posterior"]["allocations"].dims
    ('chain', 'draw', 'obs')
    """
    from bayesmix._mcmc import _diagnose
    from bayesmix._validation import check_random_state
    from bayesmix.models import get_config

    cfg = get_config(model)
    unknown = sorted(set(kwargs) - set(_NUTS_ONLY))
    if unknown:
        raise TypeError(
            f"sample(sampler='gibbs') got unexpected keyword argument(s) {unknown}; the Gibbs "
            "sampler takes init, draws, tune, chains, random_seed, progressbar and cores."
        )
    resolve_sampler(model, "gibbs")  # LKJ prior: clear error
    draws = _check_count(draws, "draws", 1)
    tune = _check_count(tune, "tune", 0)
    chains = _check_count(chains, "chains", 1)
    if cores is None:
        cores = min(4, os.cpu_count() or 1)
    cores = _check_count(cores, "cores", 1)
    rng = check_random_state(random_seed)
    init, w, m, c = _init_point(cfg, init, rng)
    spec = _spec(cfg)
    start = _initial_state(cfg, spec, w, m, c)
    seeds = np.random.SeedSequence(int(rng.integers(2**63))).spawn(chains)
    store_z = chains * draws * cfg.X.shape[0] <= MAX_STORED_ALLOCATIONS
    t0 = time.perf_counter()
    results = _run_chains(spec, start, seeds, draws, tune, store_z, cores, progressbar)
    attrs = {
        "model": cfg.model,
        "n_components": cfg.n_components,
        "covariance": cfg.covariance,
        "covariance_prior": cfg.covariance_prior,
        "prior": cfg.prior.to_json(),
        "sampler": "gibbs",
        "random_seed": int(random_seed) if isinstance(random_seed, numbers.Integral) else -1,
        "sampling_time": time.perf_counter() - t0,
        "allocations_stored": int(store_z),
    }
    if not store_z:
        attrs["allocations_note"] = (
            f"allocations not stored: chains * draws * N > {MAX_STORED_ALLOCATIONS:.0e}"
        )
    attrs.update(_model_attrs(cfg))
    dt = _to_datatree(cfg, results, attrs, store_z)
    if cfg.model == "dpgmm":
        _warn_truncation(cfg, dt)
    _diagnose(dt, cfg, init if cfg.model == "gmm" else None)
    return dt


def _model_attrs(cfg):
    if cfg.model == "dpgmm":
        return {"truncation": cfg.truncation}
    if cfg.model == "mfm":
        return {
            "max_components": cfg.n_components,
            "dynamic": int(cfg.dynamic),
            "k_prior": list(map(float, cfg.k_prior)),
        }
    return {}
