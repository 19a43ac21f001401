"""bm.n_clusters / prior_n_clusters / plot_n_clusters, and the exact partition reference.

The exact reference (tests/_partitions.py) enumerates all set partitions of n <= 8
points; it is checked here against independent computations (numerical integration of
the block marginal likelihood, Antoniak's closed form, the untruncated DP as the
truncation grows), then used against the Gibbs samplers in test_gibbs_exact below.
"""

from __future__ import annotations

import warnings

import _partitions as P
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import bayesmix as bm
from bayesmix.mcmc._trace import from_arrays


def _tree(counts, *, n_components=None, allocations=None):
    counts = np.asarray(counts)
    C, S = counts.shape
    extra = {"n_occupied": counts}
    dims = {"n_occupied": []}
    if n_components is not None:
        extra["n_components"] = np.asarray(n_components)
        dims["n_components"] = []
    if allocations is not None:
        extra = {"allocations": allocations}
        dims = {"allocations": ["obs"]}
    return from_arrays(
        np.ones((C, S, 1)),
        np.zeros((C, S, 1, 1)),
        np.ones((C, S, 1, 1, 1)),
        np.zeros((3, 1)),
        extra=extra,
        extra_dims=dims,
        log_likelihood=False,
    )


def _markov_chain(rng, S, q, states=(1, 2)):
    """Two-state chain switching with probability q per step (stationary 1/2, 1/2)."""
    flips = rng.random(S) < q
    idx = np.cumsum(flips) % 2
    if rng.random() < 0.5:
        idx = 1 - idx
    return np.asarray(states)[idx]


# ----------------------------------------------------------------------------- reference
def test_bell_numbers():
    assert [len(P.set_partitions(n)) for n in range(1, 9)] == [1, 2, 5, 15, 52, 203, 877, 4140]


def test_block_marginal_matches_numerical_integration():
    # the closed form against a 2-D quadrature over (mu, log s2) of the product of the
    # densities N(x | mu, s2) N(mu | m0, s2/k0) InvGamma(s2 | nu0/2, psi/2) written out
    # by hand (quad's relative accuracy ~1e-10; the tails cut off are < 1e-10)
    x = np.array([0.3, -0.4, 1.1])
    m0, k0, nu0, psi = 0.2, 0.5, 3.0, 1.4
    a, b = nu0 / 2, psi / 2
    log_ig_const = a * np.log(b) - special.gammaln(a)

    def integrand(mu, u):
        s2 = np.exp(u)
        ll = -0.5 * np.sum((x - mu) ** 2) / s2 - 1.5 * np.log(2 * np.pi * s2)
        lm = -0.5 * k0 * (mu - m0) ** 2 / s2 - 0.5 * np.log(2 * np.pi * s2 / k0)
        lig = log_ig_const - (a + 1) * u - b / s2
        return np.exp(ll + lm + lig + u)  # + u: ds2 = s2 du

    half = lambda u: 3.0 + 30 * np.sqrt(np.exp(u) / k0)  # noqa: E731  mu's range grows with s2
    val, _ = integrate.dblquad(
        integrand, -12.0, 8.0, lambda u: m0 - half(u), lambda u: m0 + half(u), epsrel=1e-10
    )
    got = P.log_marginal_block(3, x.sum(), (x**2).sum(), m0=m0, kappa0=k0, nu0=nu0, psi=psi)
    assert abs(got - np.log(val)) < 1e-8, (got, np.log(val))


@pytest.mark.parametrize("alpha", [0.4, 1.0, 3.0])
def test_dp_eppf_sums_to_antoniak(alpha):
    labels = P.set_partitions(7)
    p = np.exp(P.log_eppf_dp(labels, alpha))
    t = P.n_blocks(labels)
    by_k = np.array([p[t == k].sum() for k in range(1, 8)])
    np.testing.assert_allclose(by_k, P.antoniak(7, alpha), rtol=1e-12, atol=1e-15)


def test_truncated_stick_breaking_sums_to_one_and_tends_to_dp():
    labels = P.set_partitions(6)
    for T in (2, 4, 6):
        total = np.exp(special.logsumexp(P.log_eppf_tsb(labels, T, alpha=1.3)))
        assert abs(total - 1) < 1e-12
    # E[mass beyond T] = (a/(1+a))^(T-1) -> 0: at T = 80, 1.3/2.3 ^ 79 ~ 1e-19
    big = np.exp(P.log_eppf_tsb(labels, 80, alpha=1.3))
    np.testing.assert_allclose(big, np.exp(P.log_eppf_dp(labels, 1.3)), rtol=1e-10)
    # at T = 6 the truncation matters (the reason the exact checks use the truncated EPPF)
    small = np.exp(P.log_eppf_tsb(labels, 6, alpha=1.3))
    assert np.abs(small - big).max() > 1e-3


def test_tsb_gamma_quadrature_matches_quad():
    shape, rate = 1.0, 1.0
    key = (1, 2, 3)
    dens = stats.gamma(a=shape, scale=1 / rate)
    val, _ = integrate.quad(
        lambda a: float(P._tsb_sizes_prob(key, a, 6)) * dens.pdf(a), 0, np.inf, epsrel=1e-11
    )
    x, w = P._gamma_quadrature(shape, rate)
    assert abs(w @ P._tsb_sizes_prob(key, x, 6) / val - 1) < 1e-9


def test_mfm_eppf_normalised_and_matches_prior_formula():
    labels = P.set_partitions(7)
    t = P.n_blocks(labels)
    kp = stats.betabinom(20, 1, 4).pmf(np.arange(21))  # any p(K) on 1..21
    for dynamic in (False, True):
        p = np.exp(P.log_eppf_mfm(labels, kp, 1.0, dynamic=dynamic))
        assert abs(p.sum() - 1) < 1e-12
        by_k = np.array([p[t == k].sum() for k in range(1, 8)])
        np.testing.assert_allclose(by_k, P.mfm_prior_k_plus(7, kp, 1.0, dynamic=dynamic))


# ----------------------------------------------------------------------------- prior_n_clusters
@pytest.mark.parametrize("concentration", [0.5, 2.0, (1.0, 1.0), (2.0, 4.0)])
def test_prior_n_clusters_dp_against_enumeration(concentration):
    labels = P.set_partitions(8)
    t = P.n_blocks(labels)
    if isinstance(concentration, tuple):
        lp = P.log_eppf_dp_gamma(labels, *concentration)
    else:
        lp = P.log_eppf_dp(labels, concentration)
    want = np.array([np.exp(lp[t == k]).sum() for k in range(1, 9)])
    got = bm.prior_n_clusters(8, concentration=concentration)
    assert list(got["variable"].unique()) == ["n_occupied"]
    np.testing.assert_allclose(got["probability"], want, rtol=1e-8, atol=1e-14)


def test_prior_n_clusters_mfm_against_enumeration():
    labels = P.set_partitions(8)
    t = P.n_blocks(labels)
    kp = np.r_[stats.betabinom(28, 1, 4).pmf(np.arange(29)), 0.0]  # K = 1..30
    kp = kp / kp.sum()
    for gamma, dynamic in [(1.0, False), (0.3, False), (2.0, True)]:
        lp = P.log_eppf_mfm(labels, kp, gamma, dynamic=dynamic)
        want = np.array([np.exp(lp[t == k]).sum() for k in range(1, 9)])
        got = bm.prior_n_clusters(8, k_prior=kp, weight_concentration=gamma, dynamic=dynamic)
        plus = got[got["variable"] == "n_occupied"]["probability"].to_numpy()
        np.testing.assert_allclose(plus, want, rtol=1e-10, atol=1e-15)
        k = got[got["variable"] == "n_components"]
        np.testing.assert_allclose(k["probability"], kp)


def test_prior_n_clusters_large_n_is_finite():
    # n = 2000 must not overflow (log-space recurrences)
    p = bm.prior_n_clusters(2000, concentration=(1.0, 1.0))["probability"]
    assert np.all(np.isfinite(p)) and abs(p.sum() - 1) < 1e-8
    kp = np.full(30, 1 / 30)
    q = bm.prior_n_clusters(2000, k_prior=kp)
    plus = q[q["variable"] == "n_occupied"]["probability"]
    assert abs(plus.sum() - 1) < 1e-8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of concentration"),
        ({"concentration": 1.0, "k_prior": [1.0]}, "exactly one of concentration"),
        ({"concentration": -1.0}, "concentration"),
        ({"concentration": (1.0, 2.0, 3.0)}, r"\(shape, rate\)"),
        ({"k_prior": [0.5, 0.6]}, "summing to 1"),
        ({"k_prior": [1.5, -0.5]}, "k_prior"),
    ],
)
def test_prior_n_clusters_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bm.prior_n_clusters(10, **kwargs)


# ----------------------------------------------------------------------------- n_clusters
def test_n_clusters_probabilities_sum_to_one_and_match_counts():
    rng = np.random.default_rng(1)
    occ = rng.choice([1, 2, 3, 5], p=[0.1, 0.6, 0.2, 0.1], size=(2, 500))
    kk = occ + rng.integers(0, 3, size=occ.shape)
    table = bm.n_clusters(_tree(occ, n_components=kk))
    assert list(table.columns) == ["variable", "k", "probability", "mcse", "ess"]
    for var, arr in (("n_occupied", occ), ("n_components", kk)):
        sub = table[table["variable"] == var]
        assert abs(sub["probability"].sum() - 1) < 1e-12
        assert list(sub["k"]) == list(range(1, arr.max() + 1))
        for k, p in zip(sub["k"], sub["probability"], strict=True):
            assert p == np.mean(arr == k)
        s = table.attrs["summary"][var]
        assert s["mean"] == arr.mean() and s["n_draws"] == arr.size
    assert table.attrs["summary"]["n_occupied"]["mode"] == 2
    # k = 4 never drawn: probability and MCSE exactly 0
    row = table[(table["variable"] == "n_occupied") & (table["k"] == 4)]
    assert row["probability"].item() == 0 and row["mcse"].item() == 0


def _capped_tree(counts, attrs, N=60, D=2):
    counts = np.asarray(counts)
    C, S = counts.shape
    X = np.random.default_rng(0).normal(size=(N, D))
    return from_arrays(
        np.ones((C, S, 1)),
        np.zeros((C, S, 1, D)),
        np.broadcast_to(np.eye(D), (C, S, 1, D, D)).copy(),
        X,
        extra={"n_occupied": counts},
        extra_dims={"n_occupied": []},
        attrs=attrs,
        log_likelihood=False,
    )


@pytest.mark.parametrize(
    ("attrs", "fix"),
    [
        ({"model": "dpgmm", "truncation": 20, "covariance": "spherical"}, "truncation"),
        ({"model": "mfm", "max_components": 20, "covariance": "spherical"}, "max_components"),
    ],
)
def test_n_clusters_warns_when_the_count_sits_at_its_cap(attrs, fix):
    occ = np.full((2, 100), 7)
    occ[:, :6] = 20  # 6 % of draws at the cap: above CAP_SHARE = 5 %
    with pytest.warns(bm.BayesmixWarning, match=rf"equals its cap 20 in 6% .*Raise .*{fix}"):
        bm.n_clusters(_capped_tree(occ, attrs))
    occ[:, :6] = 19  # below the cap: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bm.n_clusters(_capped_tree(occ, attrs))


@pytest.mark.parametrize(
    ("D", "covariance", "warns"),
    [(2, "full", False), (10, "full", True), (50, "diag", True), (10, "spherical", False)],
)
def test_n_clusters_warns_when_the_prior_dominates(D, covariance, warns):
    # 60 rows: full at D = 10 has 55 covariance parameters per component, so two
    # components get 60 / 110 < 1 row per parameter; diag at D = 50: 60 / 100; the
    # spherical and D = 2 cases have many rows per parameter
    occ = np.ones((2, 100), dtype=int)
    dt = _capped_tree(occ, {"model": "mfm", "max_components": 30, "covariance": covariance}, D=D)
    if warns:
        with pytest.warns(bm.BayesmixWarning, match="prior dominates"):
            bm.n_clusters(dt)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            bm.n_clusters(dt)


def test_n_clusters_ess_accounts_for_autocorrelation():
    # two-state chain flipping with probability q: the indicator's lag-1 autocorrelation
    # is 1 - 2q and its integrated autocorrelation time (1 - q)/q, so ESS ~ S q / (1 - q).
    # At q = 0.05, 4 chains x 5000 draws: expected ESS 1053; the ESS estimator's relative
    # sd at this size is ~5%, so +-25% is five sds and still excludes the iid value 20000.
    rng = np.random.default_rng(2)
    q = 0.05
    occ = np.stack([_markov_chain(rng, 5000, q) for _ in range(4)])
    table = bm.n_clusters(_tree(occ))
    expected = occ.size * q / (1 - q)
    for ess in table.loc[table["k"] >= 1, "ess"].iloc[:2]:
        assert abs(ess / expected - 1) < 0.25, (ess, expected)
    row = table[table["k"] == 2]
    p = row["probability"].item()
    assert row["mcse"].item() == pytest.approx(np.sqrt(p * (1 - p) / row["ess"].item()))
    # an independent sample of the same size has a ~sqrt(19) times smaller error
    iid = bm.n_clusters(_tree(rng.choice([1, 2], size=occ.shape)))
    assert row["mcse"].item() > 3 * iid.loc[iid["k"] == 2, "mcse"].item()


def test_n_clusters_mcse_shrinks_with_draws():
    rng = np.random.default_rng(3)
    chain = np.stack([_markov_chain(rng, 16000, 0.2, states=(2, 3)) for _ in range(2)])
    errs = [bm.n_clusters(_tree(chain[:, :S])).set_index("k").loc[2, "mcse"] for S in (1000, 16000)]
    # MCSE ~ 1/sqrt(S): 16x the draws, 4x smaller; +-30% for the ESS estimates' noise
    assert 4 / 1.3 < errs[0] / errs[1] < 4 * 1.3, errs


def test_n_clusters_from_map_allocations_when_nothing_stored():
    # two components at 0 and 10; draw 0 puts weight on both, draw 1 all on the first
    X = np.array([[0.0], [0.2], [10.0]])
    w = np.array([[[0.5, 0.5], [1.0, 0.0]]])
    mu = np.array([[[[0.0], [10.0]], [[0.0], [10.0]]]])
    tree = from_arrays(w, mu, np.ones((1, 2, 2, 1, 1)), X)
    table = bm.n_clusters(tree)
    np.testing.assert_array_equal(table["probability"], [0.5, 0.5])


def test_n_clusters_from_allocations_when_n_occupied_missing():
    z = np.array([[[0, 0, 1], [2, 2, 2], [0, 1, 3]]])  # K+ = 2, 1, 3
    table = bm.n_clusters(_tree(np.zeros((1, 3)), allocations=z))
    np.testing.assert_allclose(table["probability"], [1 / 3, 1 / 3, 1 / 3])


def test_n_clusters_errors():
    tree = _tree(np.ones((1, 5), dtype=int))
    post = tree["posterior"].to_dataset()
    tree["posterior"] = post.drop_vars(["n_occupied", "weights", "means", "covariances"])
    with pytest.raises(ValueError, match=r"no variable 'n_occupied'.*bm.sample"):
        bm.n_clusters(tree)
    with pytest.raises(ValueError, match=r"no variable 'n_components'.*build_mfm"):
        bm.n_clusters(_tree(np.ones((1, 5), dtype=int)), var_names="n_components")
    with pytest.raises(ValueError, match="var_names"):
        bm.n_clusters(_tree(np.ones((1, 5), dtype=int)), var_names=["weights"])
    with pytest.raises(TypeError, match="DataTree"):
        bm.n_clusters({"posterior": None})
    with pytest.raises(ValueError, match="integer counts"):
        bm.n_clusters(_tree(np.full((1, 5), 1.5)))


def test_plot_n_clusters_bars_and_prior():
    rng = np.random.default_rng(4)
    occ = rng.choice([2, 3], size=(2, 100))
    tree = _tree(occ, n_components=occ + 1)
    prior = bm.prior_n_clusters(3, k_prior=[0.2, 0.3, 0.3, 0.2])
    fig = bm.plot_n_clusters(tree, prior=prior)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == [
        "posterior K (components)",
        "posterior K+ (occupied)",
        "prior K (components)",
        "prior K+ (occupied)",
    ]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches if p.get_height() > 0)
    table = bm.n_clusters(tree)
    want = sorted(round(p, 6) for p in table["probability"] if p > 0)
    assert heights == want
    with pytest.raises(ValueError, match="lacks"):
        bm.plot_n_clusters(pd.DataFrame({"k": [1]}))


# ----------------------------------------------------------------------------- Gibbs vs exact
#: tiny 1-D data: three loose groups, so the posterior on K+ is spread over 2..6
X_TINY = np.array([-2.2, -1.7, -1.1, 0.0, 0.4, 1.6, 2.0, 2.5])
#: the 1-D normal-inverse-gamma prior (full, diag and spherical coincide at D = 1)
NIG = dict(m0=0.0, kappa0=0.1, nu0=3.0, psi=0.5)
#: |z| bound. Each z = (p_hat - p) / MCSE is ~N(0, 1) under a correct sampler (CLT for
#: the Markov chain; ESS in the hundreds to thousands here); over the <= 18 values of k
#: checked per run P(max |z| > 4) < 18 * 6.3e-5 ~ 1e-3, with room for the ESS estimate's
#: own ~10% noise. A wrong target moves some z far beyond it: see the power check in
#: test_gibbs_dp_matches_enumeration (the untruncated DP is rejected at |z| > 4).
Z_MAX = 4.0


def _gmm_prior(**kw):
    return bm.GMMPrior(
        mean=[NIG["m0"]], scale=[[NIG["psi"]]], dof=NIG["nu0"], mean_shrinkage=NIG["kappa0"], **kw
    )


def _gibbs(model, draws, chains=2, seed=1, allocations=False):
    import warnings

    with warnings.catch_warnings():
        # short chains on 8 points: R-hat/ESS warnings on label-dependent summaries
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        return bm.sample(
            model,
            sampler="gibbs",
            draws=draws,
            tune=200,
            chains=chains,
            random_seed=seed,
            progressbar=False,
            allocations=allocations,
        )


def _z_scores(table, var, exact):
    """z-scores of P(var = k), with n_clusters' ESS; returns (p_hat, p_exact, z) per bin.

    The standard error is the MCSE at the exact p, sqrt(p (1 - p) / ESS_k) (score form):
    the Wald form sqrt(p_hat (1 - p_hat) / ESS_k) that n_clusters reports is too small
    for a rare k drawn only a handful of times (measured: P(K+ = 14) = 0.0015 drawn twice
    in 6000 gives Wald z = -4.9). For the common k the two agree, which checks the
    reported MCSE itself. The k with p ESS_k < 10 (too few expected draws for a normal
    approximation: P(K+ = 11) = 3e-5 drawn twice in 4000 would give z = 5.4) are lumped
    into one tail bin whose ESS is the smallest of theirs (a larger, conservative error).
    """
    sub = table[table["variable"] == var].set_index("k")
    kmax = max(len(exact), int(sub.index.max()))
    exact = np.r_[exact, np.zeros(kmax - len(exact))]
    sub = sub.reindex(np.arange(1, kmax + 1))
    p = sub["probability"].fillna(0.0).to_numpy()
    n_draws = table.attrs["summary"][var]["n_draws"]
    ess = sub["ess"].fillna(n_draws).to_numpy()
    se = np.sqrt(exact * (1 - exact) / ess)
    common = (exact > 0.05) & (p > 0.05)
    np.testing.assert_allclose(sub["mcse"].to_numpy()[common], se[common], rtol=0.3)
    main = exact * ess >= 10
    if not main.all():
        p = np.r_[p[main], p[~main].sum()]
        exact = np.r_[exact[main], exact[~main].sum()]
        ess = np.r_[ess[main], ess[~main].min()]
        se = np.sqrt(exact * (1 - exact) / ess)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(p == exact, 0.0, (p - exact) / se)
    return p, exact, z


def _exact_dp(alpha=None, gamma_prior=None, T=8, truncated=True):
    L = P.set_partitions(X_TINY.size)
    ll = P.partition_log_likelihood(X_TINY, L, **NIG)
    if truncated:
        lp = P.log_eppf_tsb(L, T, alpha=alpha, gamma_prior=gamma_prior)
    elif alpha is not None:
        lp = P.log_eppf_dp(L, alpha)
    else:
        lp = P.log_eppf_dp_gamma(L, *gamma_prior)
    return P.posterior(L, lp, ll)[1]


@pytest.fixture(scope="module")
def dp_gamma_fit():
    """Gibbs DP fit of X_TINY, alpha ~ Gamma(2, 2), truncation 8, 2 x 3000 draws."""
    prior = _gmm_prior(dp_concentration=(2.0, 2.0))
    return _gibbs(
        bm.build_dpgmm(X_TINY[:, None], truncation=8, prior=prior), draws=3000, allocations=True
    )


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("gamma", id="alpha~Gamma(2,2)"),
        pytest.param("fixed", id="alpha=1", marks=pytest.mark.slow),
    ],
)
def test_gibbs_dp_matches_enumeration(case, request):
    # build_dpgmm needs truncation <= N = 8: the target is the truncated stick-breaking
    # model, whose partition law the reference computes exactly (tests/_partitions.py).
    # A fixed alpha is Gamma(1e6, 1e6): sd 1e-3, which moves P(K+ = k) by O(1e-6).
    conc = (2.0, 2.0) if case == "gamma" else (1e6, 1e6)
    if case == "gamma":
        fit = request.getfixturevalue("dp_gamma_fit")
    else:
        prior = _gmm_prior(dp_concentration=conc)
        fit = _gibbs(bm.build_dpgmm(X_TINY[:, None], truncation=8, prior=prior), draws=5000)
    table = bm.n_clusters(fit)
    exact = _exact_dp(gamma_prior=conc) if case == "gamma" else _exact_dp(alpha=1.0)
    p, exact, z = _z_scores(table, "n_occupied", exact)
    assert np.all(np.abs(z) < Z_MAX), (p.round(4), exact.round(4), z.round(2))
    if case == "gamma":
        # power: the same draws reject the untruncated DP's posterior (with alpha ~
        # Gamma(2, 2) the truncation at 8 matters: P(K+ = 7) 0.005 truncated vs 0.020)
        wrong = _exact_dp(gamma_prior=conc, truncated=False)
        assert np.abs(_z_scores(table, "n_occupied", wrong)[2]).max() > Z_MAX


def _exact_psm(log_post, labels):
    """P(z_n = z_m | x) = sum over partitions of p(C | x) 1(n ~ m)."""
    same = labels[:, :, None] == labels[:, None, :]
    return np.einsum("p,pnm->nm", np.exp(log_post), same)


def test_coclustering_from_allocations_matches_enumeration(dp_gamma_fit):
    import arviz_stats as azs

    psm = bm.coclustering(dp_gamma_fit)
    assert psm.attrs["source"] == "allocations"
    L = P.set_partitions(X_TINY.size)
    lp = P.log_eppf_tsb(L, 8, gamma_prior=(2.0, 2.0))
    log_post, _ = P.posterior(L, lp, P.partition_log_likelihood(X_TINY, L, **NIG))
    exact = _exact_psm(log_post, L)
    # z-scores per pair, MCSE from the ESS of the pair's indicator (as n_clusters does);
    # same |z| bound as above over the 28 pairs
    z_draws = dp_gamma_fit["posterior"]["allocations"].transpose("chain", "draw", "obs").values
    iu = np.triu_indices(X_TINY.size, 1)
    ind = (z_draws[..., iu[0]] == z_draws[..., iu[1]]).astype(float)
    ess = np.asarray(azs.ess(ind, method="mean", chain_axis=0, draw_axis=1))
    p = exact[iu]
    z = (psm.values[iu] - p) / np.sqrt(p * (1 - p) / ess)
    assert np.abs(z).max() < Z_MAX, z.round(2)
    # the Rao-Blackwellised estimate from the parameters targets the same matrix with no
    # larger MC error: sd <= sqrt(0.25 / ESS) ~ 0.02 for the ESS of several hundred here
    rb = bm.coclustering(dp_gamma_fit, source="parameters")
    assert rb.attrs["source"] == "parameters"
    assert np.abs(rb.values - exact).max() < 0.05
    with pytest.raises(ValueError, match="source"):
        bm.coclustering(dp_gamma_fit, source="labels")


@pytest.mark.parametrize("loss", ["binder", "vi"])
def test_point_partition_finds_the_exact_optimum(loss, dp_gamma_fit):
    # the search (hierarchical cuts + greedy moves) against brute force over all 4140
    # partitions, with the exact PSM: the same minimal expected loss
    from bayesmix.posterior._membership import binder_loss, vi_lower_bound

    L = P.set_partitions(X_TINY.size)
    lp = P.log_eppf_tsb(L, 8, gamma_prior=(2.0, 2.0))
    log_post, _ = P.posterior(L, lp, P.partition_log_likelihood(X_TINY, L, **NIG))
    exact = _exact_psm(log_post, L)
    fn = binder_loss if loss == "binder" else vi_lower_bound
    best = min(fn(lab, exact) for lab in L)
    assert bm.point_partition(exact, loss=loss).expected_loss == pytest.approx(best, abs=1e-9)
    # from the Gibbs fit: candidates include the sampled allocations
    got = bm.point_partition(dp_gamma_fit, loss=loss)
    assert fn(got.labels, exact) < best + 0.05 * X_TINY.size


def test_gibbs_dp_default_concentration_prior_runs():
    # the default Gamma(1, 1) concentration on 8 points reaches alpha ~ 1e-3, where
    # E&W's auxiliary eta ~ Beta(alpha + m_k, N_k + 1) underflowed to 0 in a first version
    model = bm.build_dpgmm(X_TINY[:, None], truncation=8, prior=_gmm_prior())
    table = bm.n_clusters(_gibbs(model, draws=3000))
    p, exact, z = _z_scores(table, "n_occupied", _exact_dp(gamma_prior=(1.0, 1.0)))
    assert np.all(np.abs(z) < Z_MAX), (p.round(4), exact.round(4), z.round(2))


@pytest.mark.parametrize(
    "dynamic",
    [pytest.param(False, id="static"), pytest.param(True, id="dynamic", marks=pytest.mark.slow)],
)
def test_gibbs_mfm_matches_enumeration(dynamic):
    # k_prior: the default BNB(1, 4, 3) on K - 1, cut at max_components = 10
    kp = stats.betanbinom(n=1, a=4, b=3).pmf(np.arange(10))
    kp /= kp.sum()
    gamma = 1.0
    model = bm.build_mfm(
        X_TINY[:, None],
        prior=_gmm_prior(weight_concentration=gamma),
        k_prior=kp,
        max_components=10,
        dynamic=dynamic,
    )
    table = bm.n_clusters(_gibbs(model, draws=4000))
    L = P.set_partitions(X_TINY.size)
    log_post, pk_plus = P.posterior(
        L,
        P.log_eppf_mfm(L, kp, gamma, dynamic=dynamic),
        P.partition_log_likelihood(X_TINY, L, **NIG),
    )
    pk = P.mfm_posterior_k(L, log_post, kp, gamma, dynamic=dynamic)
    for var, exact in (("n_occupied", pk_plus), ("n_components", pk)):
        p, exact, z = _z_scores(table, var, exact)
        assert np.all(np.abs(z) < Z_MAX), (var, p.round(4), exact.round(4), z.round(2))
    # K >= K+ in every draw
    post = _gibbs(model, draws=50, seed=2)["posterior"]
    assert np.all(post["n_components"] >= post["n_occupied"])


# ----------------------------------------------------------------------------- prior checks
def _likelihood_off(monkeypatch):
    """Allocations drawn with every component at the same parameters (mean 0, unit
    precision): the likelihood of an allocation no longer depends on it, so the chain of
    (allocations, weights, concentration, K) targets the prior. Component parameters are
    still updated, but nothing else reads them. The split-merge moves integrate the
    parameters out inside a compiled kernel that reads the data, so they are switched off
    here, and so is the collapsed allocation sweep (_gibbs_sweeps.COLLAPSED; the exact
    posterior checks above run both)."""
    from bayesmix.mcmc import _gibbs_kernels, _gibbs_sweeps

    def allocate(spec, st, rng):
        K, D = st.means.shape
        prec = np.broadcast_to(np.eye(D), (K, D, D)).copy()
        u = rng.random(spec.Xc.shape[0])
        return _gibbs_kernels.allocate(
            spec.Xc, st.log_w, np.zeros((K, D)), prec, u, st.z, st.counts
        )

    monkeypatch.setattr(_gibbs_sweeps, "_allocate", allocate)
    monkeypatch.setattr(_gibbs_sweeps, "COLLAPSED", False)
    monkeypatch.setattr(_gibbs_sweeps, "_split_merge", lambda *args, **kwargs: None)


def _antoniak_gamma(n, shape, rate):
    """Antoniak's distribution with alpha ~ Gamma(shape, rate), by quad."""
    log_s = P.log_stirling1(n)[1:]
    out = []
    for k in range(1, n + 1):

        def f(a, k=k):
            return np.exp(
                log_s[k - 1]
                + k * np.log(a)
                + special.gammaln(a)
                - special.gammaln(a + n)
                + stats.gamma.logpdf(a, shape, scale=1 / rate)
            )

        out.append(integrate.quad(f, 0, np.inf, epsrel=1e-10)[0])
    return np.array(out)


@pytest.mark.parametrize(
    "conc",
    [
        pytest.param((2.0, 2.0), id="Gamma(2,2)"),
        pytest.param((1e6, 1e6), id="alpha=1", marks=pytest.mark.slow),
    ],
)
def test_gibbs_dp_prior_is_antoniak(monkeypatch, conc):
    # n = T = 50: the truncated process differs from the DP by at most (Ishwaran & James
    # 2001) 4 n E[(alpha / (1 + alpha))^(T-1)] in total variation, computed below
    # (7e-5 for Gamma(2, 2), 1e-13 for alpha = 1), far below the Monte-Carlo error.
    n = 50
    shape, rate = conc
    bound = (
        4
        * n
        * integrate.quad(
            lambda a: stats.gamma.pdf(a, shape, scale=1 / rate) * (a / (1 + a)) ** (n - 1),
            0,
            np.inf,
        )[0]
    )
    assert bound < 1e-4
    _likelihood_off(monkeypatch)
    X = np.random.default_rng(0).normal(size=(n, 1))
    model = bm.build_dpgmm(
        X, truncation=n, prior=bm.GMMPrior.from_data(X, 1).with_(dp_concentration=conc)
    )
    # 4 chains: ESS estimates from 2 chains of 3000 were noisy enough that max |z| reached
    # 4.1 in 2 of 4 seeds, while 4 x 25000 draws put every |z| below 2.4 (no bias at
    # +-0.002); 4 x 2500 gave max |z| <= 3.0 over 6 seeds
    table = bm.n_clusters(_gibbs(model, draws=2500, chains=4))
    exact = P.antoniak(n, 1.0) if shape > 1e5 else _antoniak_gamma(n, shape, rate)
    p, exact, z = _z_scores(table, "n_occupied", exact)
    assert np.all(np.abs(z) < Z_MAX), (p.round(4), exact.round(4), z.round(2))


@pytest.mark.parametrize(
    "dynamic",
    [pytest.param(False, id="static"), pytest.param(True, id="dynamic", marks=pytest.mark.slow)],
)
def test_gibbs_mfm_prior_on_k_plus(monkeypatch, dynamic):
    _likelihood_off(monkeypatch)
    n, kmax = 40, 12
    kp = stats.betanbinom(n=1, a=4, b=3).pmf(np.arange(kmax))
    kp /= kp.sum()
    X = np.random.default_rng(1).normal(size=(n, 1))
    gamma = 0.5
    model = bm.build_mfm(
        X,
        k_prior=kp,
        max_components=kmax,
        dynamic=dynamic,
        prior=bm.GMMPrior.from_data(X, 1).with_(weight_concentration=gamma),
    )
    table = bm.n_clusters(_gibbs(model, draws=2000))
    for var, exact in (
        ("n_occupied", P.mfm_prior_k_plus(n, kp, gamma, dynamic=dynamic)),
        ("n_components", kp),
    ):
        p, exact, z = _z_scores(table, var, exact)
        assert np.all(np.abs(z) < Z_MAX), (var, p.round(4), exact.round(4), z.round(2))


@pytest.mark.slow
def test_n_clusters_on_a_nuts_fit():
    # NUTS trees carry n_occupied (each draw's MAP allocation), no allocations
    X, _ = bm.simulate(60, [0.5, 0.5], [[0.0], [8.0]], [1.0, 1.0], random_seed=0)
    idata = bm.sample(
        bm.build_gmm(X, 3),
        sampler="nuts",
        draws=100,
        tune=100,
        chains=1,
        random_seed=0,
        progressbar=False,
    )
    assert "allocations" not in idata["posterior"]
    table = bm.n_clusters(idata)
    assert abs(table["probability"].sum() - 1) < 1e-12
    # two groups 8 sd apart: at least two occupied components in every draw
    assert table.loc[table["k"] == 1, "probability"].sum() == 0
    assert bm.coclustering(idata).attrs["source"] == "parameters"


# ----------------------------------------------------------------------------- integration
def test_select_k_puts_the_mfm_posterior_next_to_the_criteria():
    X, _ = bm.simulate(
        150,
        [0.4, 0.3, 0.3],
        [[0.0, 0.0], [7.0, 0.0], [0.0, 7.0]],
        [1.0, 1.0, 1.0],
        random_seed=0,
    )
    table = bm.select_k(
        X,
        range(1, 5),
        mcmc=False,
        n_init=2,
        random_seed=0,
        progress=False,
        mfm={"max_components": 8},
        draws=300,
        tune=100,
        chains=2,
    )
    assert {"p_mfm", "p_mfm_mcse"} <= set(table.columns)
    nc = table.attrs["mfm_n_clusters"]
    k = nc[nc["variable"] == "n_components"].set_index("k")
    for _, row in table.iterrows():
        want = k["probability"].get(row["K"], 0.0)
        assert row["p_mfm"] == want
    assert table["p_mfm"].sum() <= 1 + 1e-12
    # three clusters 7 sd apart: BIC and the MFM agree, and the table says so
    assert table.attrs["recommended"]["bic"] == 3 == table.attrs["recommended"]["mfm"]
    assert "mfm" in table.loc[table["K"] == 3, "recommended_by"].item()
    assert table.attrs["mfm"]["posterior"]["n_components"].sizes == {"chain": 2, "draw": 300}
    assert table.attrs["mfm"].attrs["max_components"] == 8
    with pytest.raises(TypeError, match="mfm"):
        bm.select_k(X, [1, 2], mcmc=False, progress=False, mfm="yes")
