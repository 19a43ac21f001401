"""The on-demand pointwise log-likelihood, storage switches, and LOO/WAIC without the group."""

import warnings

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.mcmc import _gibbs, _pointwise
from bayesmix.mcmc._pointwise import pointwise_log_likelihood, total_log_likelihood
from bayesmix.mcmc._trace import from_arrays

COVS = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(-2, 0.7, (30, 2)), rng.normal(2, 0.7, (30, 2))])


def _quiet_sample(model, **kw):
    kw = dict(dict(draws=30, tune=20, chains=2, random_seed=1, progressbar=False), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bm.sample(model, **kw)


@pytest.mark.parametrize("covariance", COVS)
@pytest.mark.parametrize("sampler", ["gibbs", "nuts"])
def test_on_demand_equals_stored(data, covariance, sampler):
    dt = _quiet_sample(
        bm.build_gmm(data, 2, covariance=covariance), sampler=sampler, log_likelihood=True
    )
    assert dt.attrs["log_likelihood_stored"] == 1
    stored = dt["log_likelihood"]["X"].transpose("chain", "draw", "obs").values
    got = pointwise_log_likelihood(dt, chunk=7)  # several chunks, one ragged
    np.testing.assert_allclose(got.values, stored, rtol=0, atol=1e-10)
    got = pointwise_log_likelihood(dt, obs=[3, 40])
    np.testing.assert_allclose(got.values, stored[..., [3, 40]], rtol=0, atol=1e-10)
    if sampler == "gibbs":  # the chunked total equals the stored group's sum
        del dt["log_likelihood"]
        tot = _pointwise.total_log_likelihood_arrays(data, *bm.mcmc._trace.get_params(dt), chunk=7)
        np.testing.assert_allclose(tot, stored.sum(-1), rtol=1e-12)


def test_gibbs_without_group_keeps_loglik(data):
    dt = _quiet_sample(bm.build_gmm(data, 2), log_likelihood=False)
    assert "log_likelihood" not in dt.children and dt.attrs["log_likelihood_stored"] == 0
    ref = _quiet_sample(bm.build_gmm(data, 2), log_likelihood=True)
    np.testing.assert_allclose(
        dt["sample_stats"]["loglik"].values, ref["sample_stats"]["loglik"].values, rtol=1e-12
    )
    np.testing.assert_allclose(total_log_likelihood(dt).values, dt["sample_stats"]["loglik"])


def test_auto_threshold(monkeypatch, data):
    w, m, c = (
        np.full((1, 4, 1), 1.0),
        np.zeros((1, 4, 1, 2)),
        np.broadcast_to(np.eye(2), (1, 4, 1, 2, 2)),
    )
    assert "log_likelihood" in from_arrays(w, m, c, data, log_likelihood="auto").children
    monkeypatch.setattr(_pointwise, "POINTWISE_MAX_ENTRIES", 4 * 60 - 1)
    dt = from_arrays(w, m, c, data, log_likelihood="auto")
    assert "log_likelihood" not in dt.children
    assert dt.attrs["log_likelihood_stored"] == 0 and "auto" in dt.attrs["log_likelihood_note"]
    with pytest.raises(ValueError, match="log_likelihood must be True, False or 'auto'"):
        from_arrays(w, m, c, data, log_likelihood="yes")


def test_memory_error_before_sampling(monkeypatch, data):
    monkeypatch.setattr(_pointwise, "available_memory", lambda: 1000)

    def boom(*a, **k):
        raise AssertionError("sampled")

    monkeypatch.setattr(_gibbs, "_run_chains", boom)
    model = bm.build_gmm(data, 2)
    with pytest.raises(MemoryError, match=r"GB.*allocations=False"):
        bm.sample(model, draws=30, chains=2, allocations=True, progressbar=False)
    with pytest.raises(MemoryError, match=r"GB.*log_likelihood=False"):
        bm.sample(model, draws=30, chains=2, log_likelihood=True, progressbar=False)
    with pytest.raises(MemoryError, match=r"GB.*log_likelihood=False"):
        bm.sample(model, sampler="nuts", draws=30, chains=2, log_likelihood=True)


def test_nuts_refuses_allocations(data):
    with pytest.raises(ValueError, match="allocations=True needs the Gibbs sampler"):
        bm.sample(bm.build_gmm(data, 2), sampler="nuts", allocations=True)


def _synthetic(N, S, seed=0):
    """Two well-separated clusters and a jittered posterior around the truth (C=2)."""
    rng = np.random.default_rng(seed)
    K, D = 2, 2
    X = np.concatenate([rng.normal(-2, 1, (N // 2, D)), rng.normal(2, 1, (N - N // 2, D))])
    w = np.full((2, S, K), 0.5) + rng.normal(0, 0.005, (2, S, 1)) * [1, -1]
    m = np.array([[-2.0, -2.0], [2.0, 2.0]])[None, None] + rng.normal(0, 0.02, (2, S, K, D))
    c = np.eye(D) * (1 + rng.normal(0, 0.02, (2, S, K, 1, 1)))
    return w, m, c, X


def test_chunked_loo_waic_equal_in_memory():
    w, m, c, X = _synthetic(300, 50)
    a = from_arrays(w, m, c, X)
    b = from_arrays(w, m, c, X, log_likelihood=False)
    la, lb = bm.loo(a), bm.loo(b, method="exact", chunk=37)
    for attr in ("elpd", "se", "p"):
        assert getattr(lb, attr) == pytest.approx(getattr(la, attr), abs=1e-10), attr
    np.testing.assert_allclose(lb.elpd_i.values, la.elpd_i.values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(lb.pareto_k.values, la.pareto_k.values, rtol=0, atol=1e-10)
    wa, wb = bm.waic(a), bm.waic(b, chunk=37)
    assert (wb.elpd, wb.se, wb.p) == pytest.approx((wa.elpd, wa.se, wa.p), abs=1e-10)
    np.testing.assert_allclose(wb.p_waic_i.values, wa.p_waic_i.values, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="method must be one of"):
        bm.loo(b, method="fast")


def test_loo_subsample_within_its_se_of_exact():
    # 2e4 rows, 2 x 100 draws, fixed seeds: the difference estimator's error is about
    # N(0, subsampling_se^2); 3 SE gives a false-failure rate of 0.3% for a fresh seed
    w, m, c, X = _synthetic(20_000, 100, seed=1)
    dt = from_arrays(w, m, c, X, log_likelihood=False)
    exact = bm.loo(dt, method="exact", pointwise=False)
    sub = bm.loo(dt, method="subsample", observations=1000, seed=3)
    assert sub.subsample_size == 1000 and sub.subsampling_se > 0
    assert abs(sub.elpd - exact.elpd) < 3 * sub.subsampling_se
    assert abs(sub.elpd - exact.elpd) > 0  # it is an estimate, not the exact value


def test_on_demand_includes_noise_component(data):
    dt = _quiet_sample(bm.build_gmm(data, 2, noise=True), log_likelihood=True)
    assert "noise_weight" in dt["posterior"] and dt.attrs["noise_volume"] > 0
    stored = dt["log_likelihood"]["X"].transpose("chain", "draw", "obs").values
    got = pointwise_log_likelihood(dt, chunk=11).values
    np.testing.assert_allclose(got, stored, rtol=0, atol=1e-10)
    # and the noise term matters: without it the densities differ
    del dt.attrs["noise_volume"]
    assert np.abs(pointwise_log_likelihood(dt).values - stored).max() > 1e-6
