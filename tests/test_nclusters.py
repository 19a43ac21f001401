"""bm.n_clusters / prior_n_clusters / plot_n_clusters, and the exact partition reference.

The exact reference (tests/_partitions.py) enumerates all set partitions of n <= 8
points; it is checked here against independent computations (numerical integration of
the block marginal likelihood, Antoniak's closed form, the untruncated DP as the
truncation grows), then used against the Gibbs samplers in test_gibbs_exact below.
"""

from __future__ import annotations

import _partitions as P
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import bayesmix as bm
from bayesmix._trace import from_arrays


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


def test_n_clusters_from_allocations_when_n_occupied_missing():
    z = np.array([[[0, 0, 1], [2, 2, 2], [0, 1, 3]]])  # K+ = 2, 1, 3
    table = bm.n_clusters(_tree(np.zeros((1, 3)), allocations=z))
    np.testing.assert_allclose(table["probability"], [1 / 3, 1 / 3, 1 / 3])


def test_n_clusters_errors():
    tree = _tree(np.ones((1, 5), dtype=int))
    del tree["posterior"]["n_occupied"]
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
