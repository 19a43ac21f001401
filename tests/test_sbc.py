"""Simulation-based calibration of the Gibbs samplers (Talts et al. 2018).

Each replication draws parameters from the prior (independently of bayesmix: numpy and
scipy.stats, from the densities written in :mod:`bayesmix.core._priors`), simulates a
data set from them, samples the posterior and records the rank of the true value of a
statistic among thinned posterior draws. When the sampler targets the posterior of the
model the data came from, every rank is uniform on 0..L (whatever the data). Statistics
are label-invariant functions of the parameters (the largest weight, the mixture's mean
and variance of feature 0, the smallest and largest component mean of feature 0, the
variance of feature 0 of the component with the smallest mean, and for the MFM K and K+),
so label switching cannot bias them. Discrete statistics get randomised tie-breaking.

The test of uniformity: ranks binned into ``BINS`` equal bins, a chi-square test per
statistic. The threshold p > ``P_MIN`` over about 40 statistics in all keeps the chance
of a false alarm near 1 % under calibration (seeds are fixed, so each run is the same).
The negative control samples with a prior that differs from the one the data came from
(mean shrinkage 4x, covariance scale 1.5x): the same test must reject it, which shows the
replications are enough to see a miscalibration of that size.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import bayesmix as bm

pytestmark = pytest.mark.slow

#: replications per case; L + 1 = 51 rank values binned into BINS bins
REPS = 250
L = 50
THIN = 6
BINS = 10
#: Bonferroni-style: about 40 chi-square tests at this level give ~1 % family-wise error
P_MIN = 2.5e-4


def _prior(D, kappa0=0.5, scale=1.0):
    nu0 = D + 3.0
    return bm.GMMPrior(
        mean=np.zeros(D),
        scale=np.eye(D) * (nu0 - D - 1) * scale,  # E[Sigma] = scale * I
        dof=nu0,
        mean_shrinkage=kappa0,
        weight_concentration=1.0,
    )


def _draw_components(rng, prior, covariance, K):
    """(means (K, D), covariances (K, D, D)) from the normal-inverse-Wishart /
    normal-inverse-gamma prior, by scipy.stats."""
    D, nu0, k0 = prior.mean.size, prior.dof, prior.mean_shrinkage
    if covariance == "full":
        iw = stats.invwishart(df=nu0, scale=prior.scale)
        S = np.asarray(iw.rvs(size=K, random_state=rng)).reshape(K, D, D)
    elif covariance == "diag":
        psi = np.diag(prior.scale)
        v = stats.invgamma(a=nu0 / 2, scale=psi / 2).rvs(size=(K, D), random_state=rng)
        S = np.stack([np.diag(vk) for vk in v])
    else:  # spherical
        psi = np.trace(prior.scale) / D
        v = stats.invgamma(a=nu0 / 2, scale=psi / 2).rvs(size=K, random_state=rng)
        S = np.stack([vk * np.eye(D) for vk in np.atleast_1d(v)])
    m = np.stack([rng.multivariate_normal(prior.mean, S[k] / k0) for k in range(K)])
    return m, S


def _simulate(rng, w, m, S, N):
    """(X (N, D), the allocations z (N,))."""
    z = rng.choice(w.size, size=N, p=w)
    return np.stack([rng.multivariate_normal(m[k], S[k]) for k in z]), z


def _stats(w, m, S):
    """Label-invariant statistics of parameter arrays (..., K), (..., K, D), (..., K, D, D);
    components of zero weight (the MFM's absent ones) do not count as means."""
    mu0 = m[..., 0]
    mix_mean = (w * mu0).sum(-1)
    mix_var = (w * (S[..., 0, 0] + mu0**2)).sum(-1) - mix_mean**2
    present = w > 0
    lo = np.where(present, mu0, np.inf).argmin(-1)
    hi = np.where(present, mu0, -np.inf).max(-1)
    take = np.take_along_axis
    return {
        "max weight": w.max(-1),
        "mixture mean x0": mix_mean,
        "mixture variance x0": mix_var,
        "lowest mean x0": take(mu0, lo[..., None], -1)[..., 0],
        "highest mean x0": hi,
        "variance x0 of the lowest": take(S[..., 0, 0], lo[..., None], -1)[..., 0],
    }


def _rank(draws, truth, rng):
    """#draws below the truth, ties broken uniformly at random (0..len(draws))."""
    below = int((draws < truth).sum())
    ties = int((draws == truth).sum())
    return below + int(rng.integers(ties + 1))


def _posterior(model, seed, init=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = bm.sample(
            model,
            init=init,
            sampler="gibbs",
            draws=L * THIN,
            tune=100,
            chains=1,
            random_seed=seed,
            progressbar=False,
            log_likelihood=False,
        )
    post = dt["posterior"]
    sl = slice(THIN - 1, None, THIN)
    arrays = [post[v].values[0, sl] for v in ("weights", "means", "covariances")]
    return post, arrays


def sbc_finite(covariance, D, N, seed, K=2, sampler_prior=None):
    """Ranks (REPS,) per statistic for the finite mixture sampled by Gibbs."""
    rng = np.random.default_rng(seed)
    prior = _prior(D)
    ranks = {}
    for r in range(REPS):
        w = rng.dirichlet(np.full(K, prior.weight_concentration))
        m, S = _draw_components(rng, prior, covariance, K)
        X, _ = _simulate(rng, w, m, S, N)
        model = bm.build_gmm(X, K, covariance=covariance, prior=sampler_prior or prior)
        _, (wd, md, Sd) = _posterior(model, seed * 1000 + r)
        truth, draws = _stats(w, m, S), _stats(wd, md, Sd)
        for name in truth:
            ranks.setdefault(name, []).append(_rank(draws[name], truth[name], rng))
    return {k: np.asarray(v) for k, v in ranks.items()}


#: the MFM case: K ~ this pmf on 1..4 (max_components = 4)
MFM_K_PRIOR = np.array([0.25, 0.35, 0.25, 0.15])


def sbc_mfm(D, N, seed):
    """Ranks per statistic (and K, K+) for the static MFM sampled by Gibbs."""
    rng = np.random.default_rng(seed)
    prior = _prior(D)
    Kmax = MFM_K_PRIOR.size
    ranks = {}
    for r in range(REPS):
        K = int(rng.choice(np.arange(1, Kmax + 1), p=MFM_K_PRIOR))
        w = rng.dirichlet(np.full(K, prior.weight_concentration))
        m, S = _draw_components(rng, prior, "full", K)
        X, z = _simulate(rng, w, m, S, N)
        model = bm.build_mfm(X, prior=prior, k_prior=MFM_K_PRIOR, max_components=Kmax)
        # one cheap EM start (K = 2, one k-means start; K = 1 for tiny data): the chain
        # forgets it in the burn-in, and the default start (EM over several K) would
        # cost more than the sampling
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a collapsed EM component: only a start
            em = bm.fit_em(X, 2, prior=prior, n_init=1, random_seed=r)
        post, (wd, md, Sd) = _posterior(model, seed * 1000 + r, init=em)
        sl = slice(THIN - 1, None, THIN)
        truth, draws = _stats(w, m, S), _stats(wd, md, Sd)
        truth["K"], draws["K"] = K, post["n_components"].values[0, sl]
        truth["K+"] = np.unique(z).size
        draws["K+"] = post["n_occupied"].values[0, sl]
        for name in truth:
            ranks.setdefault(name, []).append(_rank(draws[name], truth[name], rng))
    return {k: np.asarray(v) for k, v in ranks.items()}


#: the DP case: truncation T, concentration ~ Gamma(shape, rate) (the prior's default)
DP_TRUNCATION = 8


def sbc_dp(D, N, seed):
    """Ranks per statistic (and the concentration, K+) for the truncated DP by Gibbs."""
    rng = np.random.default_rng(seed)
    prior = _prior(D)
    shape, rate = prior.dp_concentration
    T = DP_TRUNCATION
    ranks = {}
    for r in range(REPS):
        alpha = rng.gamma(shape, 1.0 / rate)
        v = rng.beta(1.0, alpha, size=T - 1)
        w = np.append(v, 1.0) * np.concatenate([[1.0], np.cumprod(1.0 - v)])
        m, S = _draw_components(rng, prior, "full", T)
        X, z = _simulate(rng, w / w.sum(), m, S, N)
        model = bm.build_dpgmm(X, truncation=T, prior=prior)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            em = bm.fit_em(X, 2, prior=prior, n_init=1, random_seed=r)
        post, (wd, md, Sd) = _posterior(model, seed * 1000 + r, init=em)
        sl = slice(THIN - 1, None, THIN)
        truth, draws = _stats(w, m, S), _stats(wd, md, Sd)
        truth["concentration"] = alpha
        draws["concentration"] = post["concentration"].values[0, sl]
        truth["K+"], draws["K+"] = np.unique(z).size, post["n_occupied"].values[0, sl]
        for name in truth:
            ranks.setdefault(name, []).append(_rank(draws[name], truth[name], rng))
    return {k: np.asarray(v) for k, v in ranks.items()}


def uniformity_p(ranks):
    """Chi-square p-value of ranks 0..L binned into BINS equal bins."""
    counts = np.bincount(ranks * BINS // (L + 1), minlength=BINS)
    return float(stats.chisquare(counts).pvalue)


CASES = [
    ("full", 2, 40),
    ("diag", 2, 40),
    ("spherical", 2, 40),
    ("full", 10, 60),
]


@pytest.mark.parametrize(("covariance", "D", "N"), CASES, ids=[f"{c}-D{d}" for c, d, _ in CASES])
def test_finite_gibbs_is_calibrated(covariance, D, N):
    ranks = sbc_finite(covariance, D, N, seed=11)
    pvals = {name: uniformity_p(r) for name, r in ranks.items()}
    assert min(pvals.values()) > P_MIN, pvals


def test_sbc_rejects_a_sampler_with_the_wrong_prior():
    """Negative control: data from one prior, posterior under another; SBC must see it."""
    wrong = _prior(2, kappa0=2.0, scale=1.5)
    ranks = sbc_finite("full", 2, 40, seed=12, sampler_prior=wrong)
    pvals = {name: uniformity_p(r) for name, r in ranks.items()}
    assert min(pvals.values()) < P_MIN, pvals


def test_mfm_gibbs_is_calibrated_on_k_and_k_plus():
    ranks = sbc_mfm(2, 50, seed=13)
    pvals = {name: uniformity_p(r) for name, r in ranks.items()}
    assert {"K", "K+"} <= set(pvals)
    assert min(pvals.values()) > P_MIN, pvals


def test_dp_gibbs_is_calibrated_on_the_concentration_and_k_plus():
    ranks = sbc_dp(2, 50, seed=14)
    pvals = {name: uniformity_p(r) for name, r in ranks.items()}
    assert {"concentration", "K+"} <= set(pvals)
    assert min(pvals.values()) > P_MIN, pvals
