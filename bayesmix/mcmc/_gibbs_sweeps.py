"""One Gibbs sweep per model kind: the sampler's state, the allocation update (blocked
given the parameters, or collapsed with cached Student-t predictives), the split-merge
moves and their pair proposals, the Dirichlet-process concentration and label swaps, and
the MFM's number of components. ``_SWEEPS`` maps a model kind to its sweep; the
numba kernels are in :mod:`bayesmix.mcmc._gibbs_kernels` and
:mod:`bayesmix.mcmc._collapsed_kernels`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import gammaln

from bayesmix.mcmc import _collapsed_kernels
from bayesmix.mcmc import _gibbs_kernels as _gk
from bayesmix.mcmc._conjugate import _Conj, draw_components, log_beta, log_dirichlet


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
    #: (N, N) nearest-first order per observation (``_collapsed_kernels.nearest_order``), or (0, 0):
    #: sorted per move (N above ``SM_ORDER_MAX_N``)
    sm_order: np.ndarray = dataclasses.field(default_factory=lambda: np.empty((0, 0), np.int32))
    sm_self: np.ndarray | None = None  # (N,) position of i in sm_order[i]
    sm_launch: np.ndarray | None = None  # (N,) cumulative launch probabilities of i
    #: numba threads of one chain's fused allocation pass (the draws do not depend on it)
    threads: int = 1
    #: the missing entries (``_gibbs_missing.GapLayout``), or None: then ``Xc`` is the
    #: starting fill, copied per chain and redrawn each sweep (``_gibbs_missing``)
    gaps: object = None


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
    #: (sums (K, D), scatter (K, D, D)) of the current z from the fused allocation pass;
    #: None once z changed otherwise (collapsed sweeps, split-merge moves)
    stats: tuple | None = None
    #: log-likelihood of the data at the parameters the last fused pass allocated with
    loglik: float = float("nan")

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
        if self.stats is not None:
            self.stats = (self.stats[0][perm], self.stats[1][perm])


#: DP and static-gamma MFM models (full, diag, spherical covariance) allocate with the
#: component parameters and weights integrated out (``_collapsed_kernels.collapsed_allocate``), then
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


#: DP and MFM models above this N allocate given the parameters (the fused blocked pass,
#: ``_gibbs_kernels.allocate_stats``): one sequential collapsed sweep costs about 0.9 s
#: at N = 1e6, D = 5 (20x the blocked pass), and the allocations' posterior is then
#: concentrated (benchmarks/RESULTS.md, section "gibbs-throughput")
COLLAPSED_MAX_N = 100_000


def _use_collapsed(spec):
    if spec.kind == "gmm":
        return (
            COLLAPSED
            and spec.sm_conj is not None
            and spec.n_slots > 1
            and spec.Xc.shape[0] <= FINITE_COLLAPSED_MAX_N
        )
    return (
        COLLAPSED
        and spec.sm_conj is not None
        and (spec.kind != "mfm" or spec.log_v is not None)
        and spec.Xc.shape[0] <= COLLAPSED_MAX_N
    )


def _collapsed(spec, st, rng, kind, param):
    """One sweep of ``z | concentration`` with parameters and weights integrated out."""
    u = rng.random(spec.Xc.shape[0])
    log_v = spec.log_v if kind == 2 else _NO_K_PRIOR
    _collapsed_kernels.collapsed_allocate(
        spec.Xc, st.z, st.counts, spec.n_slots, u, spec.sm_conj, kind, float(param), log_v
    )
    st.stats = None


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


def chain_threads(cores, chains):
    """Numba threads per chain: the cores left over when the chains run in threads
    (``cores // min(cores, chains)``, so one chain alone uses them all), at most numba's
    thread count; 1 when several chains would share numba's workqueue threading layer,
    which concurrent launches from several threads would abort. The draws do not depend
    on it (``_gibbs_kernels.allocate_stats``)."""
    import numba

    workers = min(cores, chains) if cores > 1 else 1
    threads = max(1, min(cores // workers, numba.config.NUMBA_NUM_THREADS))
    if threads > 1 and workers > 1 and _threading_layer() == "workqueue":
        return 1
    return threads


def _threading_layer():
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: launch one
        _gk.warm_threads()
        return numba.threading_layer()


def _allocate(spec, st, rng):
    """z | weights, parameters, and the statistics of the new z, in one pass over the
    data (``spec.threads`` threads); returns the log-likelihood at the parameters."""
    K, D = spec.n_slots, spec.Xc.shape[1]
    prec = np.linalg.inv(st.chol)
    u = rng.random(spec.Xc.shape[0])
    sums, scatter = np.empty((K, D)), np.empty((K, D, D))
    ll = _gk.allocate_stats(
        spec.Xc, st.log_w, st.means, prec, u, st.z, st.counts, sums, scatter, spec.threads
    )
    st.stats = (sums, scatter)
    st.loglik = ll
    return ll


def tracks_loglik(spec):
    """Whether every sweep allocates with the fused pass, whose log-likelihood at the
    previous draw's parameters is then that draw's ``sample_stats/loglik``, free: the
    label swaps and the MFM's reordering permute components with their weights, which
    leaves the mixture density unchanged, and the split-merge moves change z only."""
    return not _use_collapsed(spec) and spec.gaps is None  # gaps: the filled data's is not it


def log_likelihood(spec, st):
    """``sum_n log sum_k w_k N(x_n | mu_k, Sigma_k)`` at the state's parameters (one fused
    pass on scratch outputs; the state is unchanged)."""
    K, (N, D) = spec.n_slots, spec.Xc.shape
    return _gk.allocate_stats(
        spec.Xc,
        st.log_w,
        st.means,
        np.linalg.inv(st.chol),
        np.zeros(N),
        np.empty(N, dtype=np.int64),
        np.empty(K, dtype=np.int64),
        np.empty((K, D)),
        np.empty((K, D, D)),
        spec.threads,
    )


def _update_components(spec, st, rng):
    if st.stats is None:  # z changed after the fused pass (or there was none)
        K, D = spec.n_slots, spec.Xc.shape[1]
        sums, scatter = np.empty((K, D)), np.empty((K, D, D))
        _gk.suff_stats(spec.Xc, st.z, st.counts, sums, scatter)
    else:
        sums, scatter = st.stats
    st.stats = None
    st.means, st.cov, st.chol, st.own = draw_components(rng, spec.conj, st.counts, sums, scatter)


#: split-merge proposals per draw (none for the tied covariance: its shared matrix
#: makes the clusters' marginal likelihoods dependent), after the allocation sweeps
SPLIT_MERGE_MOVES = 40
#: ... but at most this many members allocated per draw, counting N per move (one move
#: allocates up to N - 2 members, about 0.15 microseconds each): 40 moves up to N = 500,
#: one from N = 20,000; above, one move with probability 20,000 / N per draw (chosen
#: independently of the state: a mixture of kernels, each reversible), so a move costs
#: N / 20,000 draws' worth and its average cost per draw stays at 20,000 members
SPLIT_MERGE_POINTS_PER_DRAW = 20_000
_NO_K_PRIOR = np.zeros(1)
#: split-merge moves for finite mixtures sampled by blocked sweeps too (off: above
#: ``FINITE_COLLAPSED_MAX_N`` they cost more than the rest of a sweep)
FINITE_SPLIT_MERGE = False
#: finite mixtures (K >= 2, full, diag or spherical covariance) up to this N are sampled
#: like the DP and the MFM: ``FINITE_COLLAPSED_SWEEPS`` collapsed allocation sweeps (weights
#: and parameters integrated out), then the split-merge moves, then weights and
#: parameters given the allocations. On Old Faithful (4 chains x 2000 draws after 500,
#: seeds 1-3; max R-hat / min bulk ESS of weights and means after relabelling) blocked
#: sweeps gave K=3 1.018-1.076 / 51-214 and K=4 1.063-1.126 / 23-53: an overfitted
#: component's members move one at a time and the chains disagree. Collapsed sweeps
#: alone gave K=4 141-280, split-merge alone 536-775; both, with 4 collapsed sweeps per
#: draw, K=3 1.001-1.002 / 1845-2003 and K=4 1.002-1.005 / 1948-2119 in 4.4-5.1 s.
#: With 2 sweeps per draw (after 200 burn-in draws; 2 shared cores): K=3 1.003-1.005 /
#: 872-1240 and K=4 1.002-1.005 / 1590-1812 in 3.2-3.6 s (1 sweep: R-hat up to 1.013 at
#: 1000 draws). Above this N the posterior of the allocations is concentrated, a
#: sequential collapsed sweep is the bottleneck, and the blocked sweep is used.
FINITE_COLLAPSED_MAX_N = 5000
FINITE_COLLAPSED_SWEEPS = 2
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
    if N > SPLIT_MERGE_POINTS_PER_DRAW and rng.random() * N >= SPLIT_MERGE_POINTS_PER_DRAW:
        return
    logk = spec.log_k_prior if kind == 2 else _NO_K_PRIOR
    prior = (kind, float(param), logk, bool(spec.dynamic))
    M = max(1, min(SPLIT_MERGE_MOVES, SPLIT_MERGE_POINTS_PER_DRAW // N))
    pairs = _sm_pairs(spec, rng, M)
    u = rng.random((M, N))
    u_slot, log_u = rng.random(M), np.log(rng.random(M))
    accepted = _collapsed_kernels.split_merge_moves(
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
    if accepted:
        st.stats = None


# ---------------------------------------------------------------------------- sweeps
def _sweep_finite(spec, st, rng):
    if _use_collapsed(spec):
        n = max(1, min(FINITE_COLLAPSED_SWEEPS, COLLAPSED_POINTS_PER_DRAW // spec.Xc.shape[0]))
        for _ in range(n):
            _collapsed(spec, st, rng, 0, spec.weight_concentration)
        _split_merge(spec, st, rng, spec.n_slots, 0, spec.weight_concentration)
    else:
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
    if np.any(order != np.arange(order.size)):  # relabelling z is O(N): only if needed
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
