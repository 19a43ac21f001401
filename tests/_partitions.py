r"""Exact posterior over partitions for tiny 1-D data: an independent reference.

Written from the formulas (numpy/scipy only), not from bayesmix's samplers, so that
the Gibbs samplers' P(K+ = k) and P(K = k) can be checked against it.

Model (1-D, every covariance type of :class:`bayesmix.GMMPrior` at D = 1 is this one):
cluster c has mean/variance ``mu_c | s2_c ~ N(m0, s2_c / kappa0)``, ``s2_c ~
InvGamma(nu0/2, psi/2)`` and ``x_i | c, mu, s2 ~ N(mu_c, s2_c)``. Integrating mu and
s2 out of a block of m points (Murphy 2007, "Conjugate Bayesian analysis of the
Gaussian distribution", eq. 95):

    log p(x_block) = lgamma(a_m) - lgamma(a_0) + a_0 log b_0 - a_m log b_m
                     + 0.5 log(kappa0 / kappa_m) - (m/2) log(2 pi)

with a_0 = nu0/2, b_0 = psi/2, kappa_m = kappa0 + m, a_m = a_0 + m/2 and
b_m = b_0 + S/2 + kappa0 m (xbar - m0)^2 / (2 kappa_m), S = sum (x - xbar)^2.
(:func:`log_marginal_block` is cross-checked by 2-D numerical integration in the tests.)

Exchangeable partition priors p(C) for a partition C of {1..n} with t blocks of sizes
n_1..n_t:

* Dirichlet process, concentration alpha (Antoniak 1974):
  ``alpha^t Gamma(alpha) / Gamma(alpha + n) prod_c (n_c - 1)!``;
  with alpha ~ Gamma(shape a, rate b) the alpha-dependent factor is integrated with
  ``scipy.integrate.quad``.
* Truncated stick-breaking with T components (what ``bm.build_dpgmm(truncation=T)``
  defines: V_j ~ Beta(1, alpha) for j < T, V_T = 1, w_j = V_j prod_{l<j} (1 - V_l)).
  A labelled allocation with counts m_1..m_T has probability
  ``E prod_j w_j^{m_j} = prod_{j<T} alpha B(1 + m_j, alpha + M_{>j})`` with
  ``M_{>j} = sum_{l>j} m_l`` (collect V_l's exponents: m_l on V_l, M_{>l} on 1-V_l; and
  E[V^a (1-V)^b] = B(1+a, alpha+b) / B(1, alpha), B(1, alpha) = 1/alpha). A partition's
  probability sums this over the injective maps blocks -> labels, by dynamic programming
  over labels T..1 with the set of blocks already placed as the state.
* Mixture of finite mixtures (Miller & Harrison 2018, JASA 113:340; Fruehwirth-Schnatter,
  Malsiner-Walli & Gruen 2021): K ~ p(K), weights | K ~ Dirichlet(g_K, ..., g_K) with
  g_K = gamma (static) or gamma / K (dynamic):
  ``p(C) = sum_K p(K) K_(t) / (K g_K)^(n) prod_c g_K^(n_c)`` with K_(t) = K!/(K-t)! the
  falling and x^(m) = Gamma(x+m)/Gamma(x) the rising factorial. For static gamma this is
  Miller & Harrison's ``V_n(t) prod_c gamma^(n_c)``. Given the partition, K depends on
  it only through t: ``P(K = k | C) ∝ p(k) k_(t) / (k g_k)^(n) prod_c g_k^(n_c)``.

Why the truncated stick-breaking EPPF: ``build_dpgmm`` requires ``truncation <= N``, so at
n <= 8 the truncation is at most 8, and the mass beyond it is not negligible
(E[w_T] = (alpha/(1+alpha))^(T-1) = 1/128 for alpha=1, T=8). The Gibbs sampler targets the
truncated model, so comparing it with the truncated EPPF is exact; the untruncated DP
EPPF is provided too, and the two agree as T grows (tested).
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
from scipy import integrate, special, stats

__all__ = [
    "antoniak",
    "log_eppf_dp",
    "log_eppf_dp_gamma",
    "log_eppf_mfm",
    "log_eppf_tsb",
    "log_marginal_block",
    "mfm_prior_k_plus",
    "partition_log_likelihood",
    "posterior",
    "set_partitions",
]


# ----------------------------------------------------------------------------- partitions
@cache
def set_partitions(n):
    """All set partitions of {0..n-1} as restricted growth strings, shape (Bell(n), n)."""
    out = []

    def rec(prefix, m):
        if len(prefix) == n:
            out.append(prefix.copy())
            return
        for label in range(m + 1):
            prefix.append(label)
            rec(prefix, max(m, label + 1))
            prefix.pop()

    rec([], 0)
    arr = np.array(out, dtype=np.int64).reshape(-1, n)
    arr.setflags(write=False)
    return arr


def block_sizes(labels):
    """Block sizes per partition, shape (P, n) (zero for unused labels)."""
    n = labels.shape[1]
    onehot = labels[:, :, None] == np.arange(n)[None, None, :]
    return onehot.sum(1)


def n_blocks(labels):
    return labels.max(1) + 1


# ----------------------------------------------------------------------------- likelihood
def log_marginal_block(m, xsum, xsumsq, *, m0, kappa0, nu0, psi):
    """Log marginal likelihood of blocks with m points, sum xsum, sum of squares xsumsq.

    Arrays broadcast; blocks with m = 0 give 0.
    """
    m = np.asarray(m, dtype=float)
    safe = np.where(m > 0, m, 1.0)
    xbar = xsum / safe
    scatter = np.maximum(xsumsq - safe * xbar**2, 0.0)
    a0, b0 = nu0 / 2.0, psi / 2.0
    km = kappa0 + m
    am = a0 + m / 2.0
    bm = b0 + scatter / 2.0 + kappa0 * m * (xbar - m0) ** 2 / (2.0 * km)
    out = (
        special.gammaln(am)
        - special.gammaln(a0)
        + a0 * np.log(b0)
        - am * np.log(bm)
        + 0.5 * np.log(kappa0 / km)
        - m / 2.0 * np.log(2 * np.pi)
    )
    return np.where(m > 0, out, 0.0)


def partition_log_likelihood(x, labels, *, m0, kappa0, nu0, psi):
    """sum over blocks of :func:`log_marginal_block`, per partition, shape (P,)."""
    x = np.asarray(x, dtype=float).ravel()
    n = x.size
    onehot = (labels[:, :, None] == np.arange(n)[None, None, :]).astype(float)  # (P, n, blk)
    m = onehot.sum(1)
    s1 = np.einsum("pib,i->pb", onehot, x)
    s2 = np.einsum("pib,i->pb", onehot, x**2)
    return log_marginal_block(m, s1, s2, m0=m0, kappa0=kappa0, nu0=nu0, psi=psi).sum(1)


# ----------------------------------------------------------------------------- priors
def _log_rising(x, m):
    return special.gammaln(x + m) - special.gammaln(x)


def log_eppf_dp(labels, alpha):
    """Dirichlet-process EPPF, fixed concentration, shape (P,)."""
    n = labels.shape[1]
    sizes = block_sizes(labels)
    t = n_blocks(labels)
    logfact = np.where(sizes > 0, special.gammaln(np.maximum(sizes, 1)), 0.0).sum(1)
    return t * np.log(alpha) + special.gammaln(alpha) - special.gammaln(alpha + n) + logfact


def log_eppf_dp_gamma(labels, shape, rate):
    """DP EPPF with alpha ~ Gamma(shape, rate) integrated out (quad), shape (P,)."""
    n = labels.shape[1]
    sizes = block_sizes(labels)
    t = n_blocks(labels)
    logfact = np.where(sizes > 0, special.gammaln(np.maximum(sizes, 1)), 0.0).sum(1)
    dens = stats.gamma(a=shape, scale=1.0 / rate)
    log_int = {}
    for k in np.unique(t):

        def f(a, k=k):
            return np.exp(k * np.log(a) + special.gammaln(a) - special.gammaln(a + n)) * dens.pdf(a)

        val, err = integrate.quad(f, 0, np.inf, epsabs=0, epsrel=1e-11, limit=200)
        assert err < 1e-8 * val, (k, val, err)
        log_int[int(k)] = np.log(val)
    return np.array([log_int[int(k)] for k in t]) + logfact


def _tsb_sizes_prob(sizes, alpha, T):
    """Truncated stick-breaking probability of one partition with these block sizes.

    alpha may be an array (vectorised); returns an array of alpha's shape.
    """
    sizes = [int(s) for s in sizes]
    t = len(sizes)
    alpha = np.asarray(alpha, dtype=float)
    if t > T:
        return np.zeros_like(alpha)
    nstate = 1 << t
    mass = np.array([sum(sizes[b] for b in range(t) if s >> b & 1) for s in range(nstate)])
    # the last label T: any single block or none, factor 1 (V_T = 1)
    prob = np.zeros((nstate, *alpha.shape))
    prob[0] = 1.0
    for b in range(t):
        prob[1 << b] = 1.0
    for _j in range(T - 1, 0, -1):  # labels T-1 .. 1
        new = np.zeros_like(prob)
        # g(m, M) = alpha * B(1 + m, alpha + M)
        for s in range(nstate):
            if not prob[s].any():
                continue
            M = mass[s]
            new[s] += prob[s] * alpha * np.exp(special.betaln(1.0, alpha + M))
            for b in range(t):
                if not s >> b & 1:
                    g = alpha * np.exp(special.betaln(1.0 + sizes[b], alpha + M))
                    new[s | 1 << b] += prob[s] * g
        prob = new
    return prob[nstate - 1]


def log_eppf_tsb(labels, T, *, alpha=None, gamma_prior=None):
    """Truncated stick-breaking EPPF (T components), shape (P,).

    Exactly one of ``alpha`` (fixed concentration) or ``gamma_prior`` = (shape, rate)
    (alpha integrated out by :func:`_gamma_quadrature`).
    The probability depends on the partition only through its multiset of block sizes;
    it is computed once per integer partition of n.
    """
    sizes = block_sizes(labels)
    keys = [tuple(sorted(int(v) for v in row if v > 0)) for row in sizes]
    cache = {}
    if alpha is None:
        nodes, qweights = _gamma_quadrature(*gamma_prior)
    for key in set(keys):
        if alpha is not None:
            cache[key] = float(_tsb_sizes_prob(key, alpha, T))
        else:
            cache[key] = float(qweights @ _tsb_sizes_prob(key, nodes, T))
    with np.errstate(divide="ignore"):
        return np.log(np.array([cache[k] for k in keys]))


def _gamma_quadrature(shape, rate, order=80):
    """Nodes and weights with sum_i w_i f(a_i) = E f(alpha), alpha ~ Gamma(shape, rate).

    Generalised Gauss-Laguerre (weight x^(shape-1) e^-x, x = rate * alpha). The truncated
    stick-breaking EPPF is smooth in alpha (products of Beta functions), so order 80 is
    exact to ~1e-12; checked against ``scipy.integrate.quad`` in the tests.
    """
    x, w = special.roots_genlaguerre(order, shape - 1.0)
    return x / rate, w / special.gamma(shape)


def _log_mfm_joint(labels, k_probs, gamma, dynamic):
    """MFM prior ``log p(C, K = k)``, shape (P, len(k_probs)); ``k_probs[i]`` = P(K = i + 1)."""
    n = labels.shape[1]
    sizes = block_sizes(labels)
    t = n_blocks(labels)
    k_probs = np.asarray(k_probs, dtype=float)
    ks = np.arange(1, k_probs.size + 1)
    joint = np.full((labels.shape[0], ks.size), -np.inf)
    for i, k in enumerate(ks):
        if k_probs[i] <= 0:
            continue
        g = gamma / k if dynamic else gamma
        log_fall = special.gammaln(k + 1) - special.gammaln(np.maximum(k - t, 0) + 1)
        blocks = np.where(sizes > 0, _log_rising(g, sizes), 0.0).sum(1)
        val = np.log(k_probs[i]) + log_fall - _log_rising(g * k, n) + blocks
        joint[:, i] = np.where(t <= k, val, -np.inf)
    return joint


def log_eppf_mfm(labels, k_probs, gamma, *, dynamic=False):
    """MFM EPPF (Miller & Harrison 2018), shape (P,).

    ``k_probs[i]`` = P(K = i + 1).
    """
    return special.logsumexp(_log_mfm_joint(labels, k_probs, gamma, dynamic), axis=1)


def mfm_posterior_k(labels, log_post_c, k_probs, gamma, *, dynamic=False):
    """P(K = k | x) for k = 1..len(k_probs) from the partition posterior."""
    # joint log p(C, K = k | x) up to the constant of log_post_c
    joint = _log_mfm_joint(labels, k_probs, gamma, dynamic)
    prior_c = special.logsumexp(joint, axis=1)
    cond = joint - prior_c[:, None]  # log P(K = k | C)
    post = np.exp(special.logsumexp(cond + log_post_c[:, None], axis=0))
    return post / post.sum()


# ----------------------------------------------------------------------------- posterior
def posterior(labels, log_prior_c, log_lik_c):
    """Normalised partition posterior (log) and P(K+ = k | x) for k = 1..n."""
    n = labels.shape[1]
    lp = log_prior_c + log_lik_c
    lp = lp - special.logsumexp(lp)
    t = n_blocks(labels)
    pk = np.array(
        [np.exp(special.logsumexp(lp[t == k])) if np.any(t == k) else 0.0 for k in range(1, n + 1)]
    )
    return lp, pk


# ----------------------------------------------------------------------------- closed forms
def log_stirling1(n):
    """log |s(n, k)| (unsigned Stirling numbers of the first kind), k = 0..n."""
    table = np.full(n + 1, -np.inf)
    table[0] = 0.0
    for m in range(1, n + 1):
        new = np.full(n + 1, -np.inf)
        # |s(m, k)| = |s(m-1, k-1)| + (m-1) |s(m-1, k)|
        with np.errstate(divide="ignore"):
            new[1:] = np.logaddexp(table[:-1], np.log(m - 1) + table[1:])
        table = new
    return table


def antoniak(n, alpha):
    """Antoniak (1974): P(K+ = k) = |s(n,k)| alpha^k Gamma(alpha)/Gamma(alpha+n), k = 1..n."""
    ls = log_stirling1(n)[1:]
    k = np.arange(1, n + 1)
    return np.exp(ls + k * np.log(alpha) + special.gammaln(alpha) - special.gammaln(alpha + n))


def mfm_prior_k_plus(n, k_probs, gamma, *, dynamic=False):
    """Implied prior P(K+ = t), t = 1..n, of an MFM, from the formula.

    P(K+ = t) = sum_K p(K) K_(t) / (K g_K)^(n) * C(n, t; g_K), where C(n, t; g) is the sum
    over partitions of n into t blocks of prod_c g^(n_c), by the recurrence (add point m
    as a new block, factor g, or to one of t existing blocks of total size m-1, factor
    sum_c (g + n_c) = t g + m - 1):  C(m, t) = g C(m-1, t-1) + (t g + m - 1) C(m-1, t).
    """
    k_probs = np.asarray(k_probs, dtype=float)
    out = np.zeros(n)
    for i, p in enumerate(k_probs):
        if p <= 0:
            continue
        k = i + 1
        g = gamma / k if dynamic else gamma
        logc = np.full(n + 1, -np.inf)
        logc[0] = 0.0
        for m in range(1, n + 1):
            new = np.full(n + 1, -np.inf)
            tt = np.arange(1, n + 1)
            new[1:] = np.logaddexp(np.log(g) + logc[:-1], np.log(tt * g + m - 1) + logc[1:])
            logc = new
        t = np.arange(1, n + 1)
        log_fall = np.where(
            t <= k, special.gammaln(k + 1) - special.gammaln(np.maximum(k - t, 0) + 1), -np.inf
        )
        out += p * np.exp(log_fall - _log_rising(g * k, n) + logc[1:])
    return out


def integer_partitions(n):
    """Integer partitions of n (used in tests of the reference)."""
    return {
        tuple(sorted(p))
        for r in range(1, n + 1)
        for p in itertools.combinations_with_replacement(range(1, n + 1), r)
        if sum(p) == n
    }
