"""Posterior predictive replicates (bm.posterior_predictive) and checks (bm.ppc_statistics).

The replicate is checked against the mixture's analytic moments and marginal CDFs on
hand-built posteriors whose parameters are the same in every draw (the replicate is then
an i.i.d. sample of one known mixture), and on real small posteriors of both samplers
for finite, DP and MFM models. The p-values are checked to be exactly uniform when the
posterior is a point mass at the truth, moderate for data simulated from a fitted model,
and extreme for misspecified models.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import bayesmix as bm
from bayesmix.mcmc._trace import from_arrays
from bayesmix.posterior import _ppc

W3 = np.array([0.5, 0.3, 0.2])
M3 = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]])
COV3 = np.array(
    [
        [[1.0, 0.3], [0.3, 0.5]],
        [[0.5, -0.2], [-0.2, 1.5]],
        [[2.0, 0.0], [0.0, 0.3]],
    ]
)


def _constant_tree(w, m, c, X, C=2, S=25, **kw):
    """A posterior whose every draw has the parameters (w, m, c)."""
    return from_arrays(
        np.broadcast_to(w, (C, S, *np.shape(w))),
        np.broadcast_to(m, (C, S, *np.shape(m))),
        np.broadcast_to(c, (C, S, *np.shape(c))),
        X,
        log_likelihood=False,
        **kw,
    )


def _mixture_moments(w, m, c):
    mu = w @ m
    second = np.einsum("k,kij->ij", w, c + np.einsum("ki,kj->kij", m, m))
    return mu, second - np.outer(mu, mu)


def _marginal_cdf(w, m, c, j):
    sd = np.sqrt(c[:, j, j])
    return lambda x: np.sum(w * stats.norm.cdf((np.asarray(x)[..., None] - m[:, j]) / sd), -1)


@pytest.fixture(scope="module")
def known():
    """Replicates of the 3-component mixture: 2 chains x 25 draws x 800 rows = 40,000."""
    X = np.zeros((800, 2))
    dt = _constant_tree(W3, M3, COV3, X, feature_names=["a", "b"])
    rep = bm.posterior_predictive(dt, random_seed=11)["posterior_predictive"]["X"]
    return dt, rep.values.reshape(-1, 2)


# ---------------------------------------------------------------------------- layout
def test_dims_coords_and_thinning():
    rng = np.random.default_rng(0)
    C, S, N = 3, 11, 7
    X = rng.normal(size=(N, 2))
    dt = _constant_tree(W3, M3, COV3, X, C=C, S=S, feature_names=["u", "v"])
    out = bm.posterior_predictive(dt, random_seed=0)
    x = out["posterior_predictive"]["X"]
    assert x.dims == ("chain", "draw", "obs", "feature")
    assert x.shape == (C, S, N, 2)
    assert x.dtype == np.float64 and np.isfinite(x.values).all()
    assert list(x.coords["feature"].values) == ["u", "v"]
    np.testing.assert_array_equal(x.coords["obs"].values, np.arange(N))
    np.testing.assert_array_equal(x.coords["chain"].values, np.arange(C))
    # the other groups are kept and the input tree is not modified
    assert {"posterior", "observed_data"} <= set(out.children)
    assert "posterior_predictive" not in dt.children
    # n_draws: evenly spaced within each chain, first and last draw kept
    thin = bm.posterior_predictive(dt, n_draws=3, random_seed=0)["posterior_predictive"]["X"]
    np.testing.assert_array_equal(thin.coords["draw"].values, [0, 5, 10])
    assert thin.shape == (C, 3, N, 2)
    # more than there are: all of them
    assert bm.posterior_predictive(dt, n_draws=50)["posterior_predictive"]["X"].shape[1] == S
    # drawing again replaces the group
    again = bm.posterior_predictive(out, n_draws=2, random_seed=0)
    assert again["posterior_predictive"]["X"].shape == (C, 2, N, 2)


def test_each_draw_uses_its_own_parameters():
    # one component with a tiny covariance whose mean moves with the draw: each kept
    # draw's replicate must sit at that draw's mean
    C, S, N = 2, 11, 5
    means = np.zeros((C, S, 1, 1))
    means[..., 0, 0] = 10.0 * np.arange(S) + 1000.0 * np.arange(C)[:, None]
    dt = from_arrays(np.ones((C, S, 1)), means, np.full((C, S, 1, 1, 1), 1e-8), np.zeros((N, 1)))
    x = bm.posterior_predictive(dt, n_draws=3, random_seed=0)["posterior_predictive"]["X"]
    expect = means[:, [0, 5, 10], 0, 0]
    np.testing.assert_allclose(
        x.values[..., 0], np.broadcast_to(expect[..., None], (C, 3, N)), atol=1e-3
    )


def test_reproducible_from_the_seed(known):
    dt, _ = known
    a = bm.posterior_predictive(dt, n_draws=4, random_seed=5)["posterior_predictive"]["X"]
    b = bm.posterior_predictive(dt, n_draws=4, random_seed=5)["posterior_predictive"]["X"]
    g = bm.posterior_predictive(dt, n_draws=4, random_seed=np.random.default_rng(5))
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.values, g["posterior_predictive"]["X"].values)
    c = bm.posterior_predictive(dt, n_draws=4, random_seed=6)["posterior_predictive"]["X"]
    assert not np.array_equal(a.values, c.values)


def test_zero_weight_padding_is_never_drawn():
    # an MFM pads its weights with zeros; the padded components' parameters are arbitrary
    w = np.array([0.0, 0.6, 0.0, 0.4, 0.0])
    m = np.array([[1e6], [0.0], [1e6], [5.0], [-1e6]])
    c = np.ones((5, 1, 1))
    dt = _constant_tree(w, m, c, np.zeros((500, 1)), C=1, S=4)
    x = bm.posterior_predictive(dt, random_seed=0)["posterior_predictive"]["X"].values
    assert np.abs(x).max() < 20
    # the two live components in their proportions: 2000 rows, binomial sd 0.011, 4 sd
    share = (x > 2.5).mean()
    assert abs(share - 0.4) < 4 * np.sqrt(0.4 * 0.6 / x.size)


# ---------------------------------------------------------------------------- law
def test_replicate_moments_match_the_mixture(known):
    _, x = known
    n = x.shape[0]
    mu, cov = _mixture_moments(W3, M3, COV3)
    # rows are i.i.d. draws of the mixture: the sample mean has sd sqrt(diag(cov) / n);
    # 4 sd per entry (a false alarm ~6e-5 per entry; the seed is fixed anyway)
    se_mean = np.sqrt(np.diag(cov) / n)
    np.testing.assert_array_less(np.abs(x.mean(0) - mu), 4 * se_mean)
    # the sample covariance entry is a mean of products (x_i - mu_i)(x_j - mu_j): its sd
    # is the products' sd / sqrt(n) (plug-in from the replicate), again 4 sd
    d = x - mu
    prod = np.einsum("ni,nj->nij", d, d)
    se_cov = prod.std(0, ddof=1) / np.sqrt(n)
    np.testing.assert_array_less(np.abs(np.cov(x.T) - cov), 4 * se_cov)
    # the tolerances can fail: the moments of a mixture with two weights swapped are
    # outside them
    mu_bad, cov_bad = _mixture_moments(W3[[1, 0, 2]], M3, COV3)
    assert np.any(np.abs(x.mean(0) - mu_bad) > 4 * se_mean)
    assert np.any(np.abs(np.cov(x.T) - cov_bad) > 4 * se_cov)


def test_replicate_marginals_follow_the_mixture(known):
    _, x = known
    for j in range(2):
        # 40,000 i.i.d. rows of the mixture: Kolmogorov-Smirnov against its marginal CDF
        assert stats.kstest(x[:, j], _marginal_cdf(W3, M3, COV3, j)).pvalue > 1e-3
        # and the same test has the power to reject the wrong weights
        wrong = _marginal_cdf(W3[[1, 0, 2]], M3, COV3, j)
        assert stats.kstest(x[:, j], wrong).pvalue < 1e-6


def test_one_component_is_its_gaussian():
    # K = 1: replicate rows are N(mu, Sigma); its covariance within 4 plug-in sd
    m = np.array([[1.0, -2.0, 0.5]])
    A = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.3, 0.2, 0.5]])
    c = (A @ A.T)[None]
    dt = _constant_tree(np.ones(1), m, c, np.zeros((1000, 3)), C=2, S=10)
    x = bm.posterior_predictive(dt, random_seed=3)["posterior_predictive"]["X"].values
    x = x.reshape(-1, 3)
    d = x - m[0]
    se = np.einsum("ni,nj->nij", d, d).std(0, ddof=1) / np.sqrt(len(x))
    np.testing.assert_array_less(np.abs(np.cov(x.T) - c[0]), 4 * se)
    # whitened rows are independent standard normals
    z = np.linalg.solve(A, d.T).T
    for j in range(3):
        assert stats.kstest(z[:, j], "norm").pvalue > 1e-3


def test_singular_covariance_draws_on_its_support():
    # a rank-1 covariance (a posterior draw on the boundary): Cholesky fails, the
    # symmetric square root draws on the line x1 = x0
    c = np.array([[[1.0, 1.0], [1.0, 1.0]]])
    dt = _constant_tree(np.ones(1), np.zeros((1, 2)), c, np.zeros((300, 2)), C=1, S=2)
    x = bm.posterior_predictive(dt, random_seed=0)["posterior_predictive"]["X"].values
    np.testing.assert_allclose(x[..., 0], x[..., 1], atol=1e-8)
    assert x[..., 0].std() > 0.5


def test_noise_component_rows_are_uniform_on_the_box():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(2000, 2))
    X[0], X[1] = [0.0, 0.0], [1.0, 1.0]  # bounding box exactly [0, 1]^2
    C, S = 1, 2
    dt = from_arrays(
        np.full((C, S, 1), 0.7),
        np.full((C, S, 1, 2), 0.5),
        np.broadcast_to(1e-10 * np.eye(2), (C, S, 1, 2, 2)),
        X,
        extra={"noise_weight": np.full((C, S), 0.3)},
        attrs={"noise_volume": 1.0},
        log_likelihood=False,
    )
    x = bm.posterior_predictive(dt, random_seed=1)["posterior_predictive"]["X"].values
    x = x.reshape(-1, 2)
    at_centre = np.all(np.abs(x - 0.5) < 1e-3, axis=1)
    # Gaussian rows: 0.7 of 4000 (binomial sd 0.0072, 4 sd; uniform rows fall in the
    # 2e-3-wide square with probability 4e-6)
    assert abs(at_centre.mean() - 0.7) < 4 * np.sqrt(0.21 / len(x))
    noise = x[~at_centre]
    assert noise.min() >= 0.0 and noise.max() <= 1.0
    for j in range(2):
        assert stats.kstest(noise[:, j], "uniform").pvalue > 1e-3
    # a volume of 4 doubles the box's sides about its centre: [-0.5, 1.5]^2
    dt.attrs["noise_volume"] = 4.0
    x = bm.posterior_predictive(dt, random_seed=1)["posterior_predictive"]["X"].values
    noise = x.reshape(-1, 2)[~np.all(np.abs(x.reshape(-1, 2) - 0.5) < 1e-3, axis=1)]
    assert noise.min() >= -0.5 and noise.max() <= 1.5
    assert stats.kstest(noise[:, 0], "uniform", args=(-0.5, 2.0)).pvalue > 1e-3


# ---------------------------------------------------------------------------- limits, errors
def test_memory_limit_names_n_draws(monkeypatch, known):
    dt, _ = known
    # 2 chains x 25 draws x 800 rows x 2 features = 80,000 values
    monkeypatch.setattr(_ppc, "MAX_PPC_VALUES", 20_000)
    with pytest.raises(ValueError, match=r"n_draws <= 6") as err:
        bm.posterior_predictive(dt)
    assert "8e+04" in str(err.value)
    out = bm.posterior_predictive(dt, n_draws=6)
    assert out["posterior_predictive"]["X"].size <= 20_000
    with pytest.raises(ValueError, match="n_draws"):
        bm.posterior_predictive(dt, n_draws=7)


def test_bad_arguments(known):
    dt, _ = known
    with pytest.raises(ValueError, match="n_draws"):
        bm.posterior_predictive(dt, n_draws=0)
    with pytest.raises(TypeError, match="idata"):
        bm.posterior_predictive(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="random_seed"):
        bm.posterior_predictive(dt, random_seed=-1)
    with pytest.raises(ValueError, match="statistics"):
        bm.ppc_statistics(dt, statistics=["kurtosis"])


# ---------------------------------------------------------------------------- real posteriors
def _quiet_sample(model, **kw):
    kw = dict(dict(draws=40, tune=30, chains=2, random_seed=3, progressbar=False), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bm.sample(model, **kw)


@pytest.fixture(scope="module")
def real_posteriors(faithful_df):
    return {
        "gibbs-finite": _quiet_sample(bm.build_gmm(faithful_df, 2), sampler="gibbs"),
        "nuts-finite": _quiet_sample(bm.build_gmm(faithful_df, 2), sampler="nuts"),
        "gibbs-dp": _quiet_sample(bm.build_dpgmm(faithful_df, truncation=8), sampler="gibbs"),
        "gibbs-mfm": _quiet_sample(bm.build_mfm(faithful_df, max_components=8), sampler="gibbs"),
    }


@pytest.mark.parametrize("name", ["gibbs-finite", "nuts-finite", "gibbs-dp", "gibbs-mfm"])
def test_real_posteriors(real_posteriors, faithful, name):
    dt = real_posteriors[name]
    x = bm.posterior_predictive(dt, random_seed=0)["posterior_predictive"]["X"]
    C, S = dt["posterior"]["weights"].shape[:2]
    assert x.dims == ("chain", "draw", "obs", "feature")
    assert x.shape == (C, S, *faithful.shape)
    assert list(x.coords["feature"].values) == ["eruptions", "waiting"]
    assert np.isfinite(x.values).all()
    # each replicate's mean is the data's mean up to sampling error: its spread across
    # draws is about sqrt(2) sd / sqrt(N) (data and replicate each contribute one);
    # the average over 80 replicates is within 4 sd / sqrt(N) of the data's mean
    sd, n = faithful.std(0), faithful.shape[0]
    np.testing.assert_array_less(
        np.abs(x.values.mean((0, 1, 2)) - faithful.mean(0)), 4 * sd / np.sqrt(n)
    )
    # Old Faithful's two clusters are in every replicate: short eruptions (< 3 min) are
    # about 35 % of the rows (97 of 272)
    short = (x.values[..., 0] < 3).mean()
    assert abs(short - (faithful[:, 0] < 3).mean()) < 0.05


# ---------------------------------------------------------------------------- statistics
def test_statistics_match_numpy_on_the_replicate(real_posteriors, faithful):
    dt = bm.posterior_predictive(real_posteriors["gibbs-finite"], n_draws=10, random_seed=2)
    table, per_draw = bm.ppc_statistics(dt, return_draws=True)
    x = dt["posterior_predictive"]["X"].values
    np.testing.assert_allclose(per_draw["mean"], x.mean(2))
    np.testing.assert_allclose(per_draw["sd"], x.std(2, ddof=1))
    np.testing.assert_allclose(per_draw["max"], x.max(2))
    np.testing.assert_allclose(per_draw["q05"], np.quantile(x, 0.05, axis=2))
    r = np.array([[np.corrcoef(x[c, s].T)[0, 1] for s in range(10)] for c in range(2)])
    np.testing.assert_allclose(per_draw["corr"][..., 0], r)
    row = table.set_index(["statistic", "feature"])
    np.testing.assert_allclose(row.loc[("max", "waiting"), "observed"], faithful[:, 1].max())
    np.testing.assert_allclose(
        row.loc[("corr", "eruptions:waiting"), "observed"], np.corrcoef(faithful.T)[0, 1]
    )
    p = (per_draw["sd"][..., 0] > faithful[:, 0].std(ddof=1)).mean()
    np.testing.assert_allclose(row.loc[("sd", "eruptions"), "p_value"], p)
    # the deviance under each draw's mixture, against scipy
    post = dt["posterior"].sel(draw=dt["posterior_predictive"]["draw"])
    w, m, cv = (post[v].values[1, 3] for v in ("weights", "means", "covariances"))
    dens = sum(w[k] * stats.multivariate_normal(m[k], cv[k]).pdf(x[1, 3]) for k in range(2))
    np.testing.assert_allclose(per_draw["deviance"][1, 3, 0], -2 * np.log(dens).sum())
    assert set(table["statistic"]) == set(_ppc.PPC_STATISTICS)
    assert table["p_value"].between(0, 1).all()


def test_p_values_uniform_under_a_point_mass_posterior():
    # the posterior is the truth itself: T(x) and T(x_rep) are i.i.d., so the mid-p value
    # is uniform on (0, 1) up to the 200-draw grid; 150 data sets, KS against uniform
    rng = np.random.default_rng(4)
    w, m, c = np.array([0.6, 0.4]), np.array([[0.0], [3.0]]), np.array([[[1.0]], [[0.5]]])
    ps = []
    for _ in range(150):
        X, _ = bm.simulate(60, w, m, c, random_seed=rng)
        dt = _constant_tree(w, m, c, X, C=1, S=200)
        t = bm.ppc_statistics(dt, statistics=["mean", "max"], random_seed=rng)
        ps.append(t["p_value"].to_numpy())
    ps = np.array(ps)
    for j in range(2):
        assert stats.kstest(ps[:, j], "uniform").pvalue > 1e-3
    # not all in the middle: a uniform p has 10 % outside (0.05, 0.95)
    assert ((ps < 0.05) | (ps > 0.95)).mean() > 0.04


@pytest.fixture(scope="module")
def simulated_fit():
    X, _ = bm.simulate(
        300,
        [0.6, 0.4],
        [[0.0, 0.0], [5.0, 2.0]],
        [[[1.0, 0.4], [0.4, 1.0]], [[0.7, -0.2], [-0.2, 0.5]]],
        random_seed=8,
    )
    return X, _quiet_sample(bm.build_gmm(X, 2), sampler="gibbs", draws=150)


def test_p_values_moderate_for_data_from_the_model(simulated_fit):
    _, dt = simulated_fit
    table = bm.ppc_statistics(dt, random_seed=0)
    # every statistic's p-value in (0.05, 0.95): the model is the one that made the data
    assert table["p_value"].between(0.05, 0.95).all(), table
    assert not table["extreme"].any()


def test_heavy_tails_fail_the_max_statistic():
    # Student t (3 df) data fit by one Gaussian: the data's extremes are far beyond any
    # Gaussian replicate's
    X = stats.t(df=3).rvs(size=(300, 1), random_state=1)
    dt = _quiet_sample(bm.build_gmm(X, 1), sampler="gibbs", draws=150)
    row = bm.ppc_statistics(dt, random_seed=0).set_index(["statistic", "feature"])
    assert row.loc[("max", "x0"), "p_value"] < 0.05
    assert row.loc[("min", "x0"), "p_value"] > 0.95
    assert row.loc[("max", "x0"), "extreme"] and row.loc[("min", "x0"), "extreme"]
    # the spread is fit: the sd statistic does not flag it
    assert 0.05 < row.loc[("sd", "x0"), "p_value"] < 0.95


def test_one_component_fails_the_modes_statistic_on_two_clusters():
    X, _ = bm.simulate(300, [0.5, 0.5], [[-3.0], [3.0]], [[[1.0]], [[1.0]]], random_seed=2)
    dt = _quiet_sample(bm.build_gmm(X, 1), sampler="gibbs", draws=150)
    row = bm.ppc_statistics(dt, random_seed=0).set_index(["statistic", "feature"])
    assert row.loc[("n_modes", "x0"), "observed"] == 2
    assert row.loc[("n_modes", "x0"), "p_value"] < 0.025
    assert row.loc[("n_modes", "x0"), "extreme"]
    # and the two-component fit passes it
    dt2 = _quiet_sample(bm.build_gmm(X, 2), sampler="gibbs", draws=150)
    row2 = bm.ppc_statistics(dt2, random_seed=0).set_index(["statistic", "feature"])
    assert 0.05 < row2.loc[("n_modes", "x0"), "p_value"] < 0.95


def test_count_modes():
    rng = np.random.default_rng(0)
    one = rng.normal(size=(1, 500))
    two = np.r_[rng.normal(-4, 1, 250), rng.normal(4, 1, 250)][None]
    three = np.r_[rng.normal(-8, 1, 200), rng.normal(0, 1, 200), rng.normal(8, 1, 200)][None]
    h = 0.6
    got = [_ppc.count_modes(v, h, -15.0, 15.0)[0] for v in (one, two, three)]
    assert got == [1, 2, 3]
    # NaN entries are ignored
    with_nan = np.where(rng.uniform(size=two.shape) < 0.2, np.nan, two)
    assert _ppc.count_modes(with_nan, h, -15.0, 15.0)[0] == 2


def test_missing_values_are_masked_in_the_replicate(faithful):
    X = faithful.copy()
    X[::7, 1] = np.nan
    dt = _constant_tree(
        np.array([0.36, 0.64]),
        np.array([[2.04, 54.5], [4.29, 80.0]]),
        np.array([[[0.07, 0.4], [0.4, 34.0]], [[0.17, 0.94], [0.94, 36.0]]]),
        X,
        C=1,
        S=50,
    )
    table, per_draw = bm.ppc_statistics(dt, random_seed=0, return_draws=True)
    assert np.isfinite(table[["observed", "replicated_mean", "p_value"]].to_numpy()).all()
    row = table.set_index(["statistic", "feature"])
    np.testing.assert_allclose(row.loc[("mean", "x1"), "observed"], np.nanmean(X[:, 1]))
    # the replicate's statistics use the same observed entries
    x = dt.pipe(bm.posterior_predictive, random_seed=0)["posterior_predictive"]["X"].values
    np.testing.assert_allclose(per_draw["mean"][..., 1], x[..., ~np.isnan(X[:, 1]), 1].mean(-1))
