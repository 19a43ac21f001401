"""Sample (frequency) weights: integer weights must equal duplicating rows exactly.

Every check compares a weighted fit with the fit of the data with each row repeated
``w_n`` times, from the same initialisation, so the two runs do the same arithmetic up
to the order of floating-point sums: the tolerances (1e-10 relative on log-likelihoods,
1e-8 on parameters) are many orders above that rounding (~1e-14 measured) and far below
any real difference (a single row dropped or counted twice changes the log-likelihood
by ~1e-3 relative here).
"""

from __future__ import annotations

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.core._validation import check_sample_weight

COVS = ["full", "diag", "spherical", "tied"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 2))
    X[:30] += 3.0
    X[30:60] -= [3.0, -3.0]
    w = rng.integers(0, 4, size=90)  # includes zeros: those rows drop out
    R = rng.uniform(size=(90, 3))
    R /= R.sum(1, keepdims=True)
    return X, w, R, np.repeat(X, w, axis=0), np.repeat(R, w, axis=0)


# --------------------------------------------------------------------------- k-means
def test_kmeans_weights_equal_duplicates(data):
    X, w, _, Xd, _ = data
    init = X[[0, 50, 7]]
    a = bm.kmeans(X, 3, init=init, sample_weight=w)
    b = bm.kmeans(Xd, 3, init=init)
    np.testing.assert_allclose(a.centers, b.centers, rtol=0, atol=1e-10)
    assert a.inertia == pytest.approx(b.inertia, rel=1e-10)
    assert a.n_iter == b.n_iter
    # the duplicated rows carry the labels of their originals
    np.testing.assert_array_equal(np.repeat(a.labels, w), b.labels)


def test_kmeans_unit_weights_unchanged(data):
    X = data[0]
    a = bm.kmeans(X, 3, random_seed=1, n_init=2)
    b = bm.kmeans(X, 3, random_seed=1, n_init=2, sample_weight=np.ones(len(X)))
    # equal weights take the same random stream and the same arithmetic (x 1.0 is exact)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.inertia == b.inertia


def test_kmeans_zero_weight_rows_do_not_move_centres(data):
    X, w, *_ = data
    keep = w > 0
    init = X[[0, 50, 7]]
    a = bm.kmeans(X, 3, init=init, sample_weight=w)
    b = bm.kmeans(X[keep], 3, init=init, sample_weight=w[keep])
    np.testing.assert_allclose(a.centers, b.centers, rtol=0, atol=1e-12)
    assert a.inertia == pytest.approx(b.inertia, rel=1e-12)


def test_kmeans_plusplus_never_seeds_zero_weight_rows():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 2))
    w = np.zeros(50)
    w[:5] = 1.0
    from bayesmix.cluster._kmeans import _kmeans_plusplus

    for seed in range(20):
        _, idx, _ = _kmeans_plusplus(X, 3, np.random.default_rng(seed), sample_weight=w)
        assert set(idx.tolist()) <= set(range(5))


# --------------------------------------------------------------------------- EM
@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("covariance", COVS)
def test_fit_em_weights_equal_duplicates(data, covariance, engine):
    X, w, R, Xd, Rd = data
    kw = dict(covariance=covariance, engine=engine, tol=1e-10)
    a = bm.fit_em(X, 3, init=R, sample_weight=w, **kw)
    b = bm.fit_em(Xd, 3, init=Rd, **kw)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-10)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-8)
    assert a.n_iter == b.n_iter
    assert a.total_weight == w.sum() and b.total_weight is None
    # BIC / ICL with n = sum(w) equal the duplicated data's
    assert a.bic(X, sample_weight=w) == pytest.approx(b.bic(Xd), rel=1e-10)
    assert a.icl(X, sample_weight=w) == pytest.approx(b.icl(Xd), rel=1e-10)
    assert a.aic(X, sample_weight=w) == pytest.approx(b.aic(Xd), rel=1e-10)


@pytest.mark.parametrize("covariance", COVS)
def test_fit_em_map_weights_equal_duplicates(data, covariance):
    X, w, R, Xd, Rd = data
    prior = bm.GMMPrior.from_data(Xd, 3)
    kw = dict(covariance=covariance, tol=1e-10, prior=prior)
    a = bm.fit_em(X, 3, init=R, sample_weight=w, **kw)
    b = bm.fit_em(Xd, 3, init=Rd, **kw)
    assert a.log_posterior == pytest.approx(b.log_posterior, rel=1e-10)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-10)
    np.testing.assert_allclose(a.covariances, b.covariances, rtol=0, atol=1e-8)
    np.testing.assert_allclose(a.means, b.means, rtol=0, atol=1e-8)


def test_fit_em_weighted_kmeans_init_and_labels(data):
    X, w, *_ = data
    res = bm.fit_em(X, 2, sample_weight=w, random_seed=0)
    assert res.labels.shape == (len(X),)  # zero-weight rows still get a label
    np.testing.assert_array_equal(res.labels, res.predict(X))
    # the result is the weighted optimum: reweighting by 2 leaves the parameters alone
    res2 = bm.fit_em(X, 2, sample_weight=2 * w, random_seed=0)
    np.testing.assert_allclose(res.means, res2.means, atol=1e-8)
    assert res2.log_likelihood == pytest.approx(2 * res.log_likelihood, rel=1e-10)
    assert "total_weight" in res.to_dict()
    assert bm.EMResult.from_dict(res.to_dict()).total_weight == w.sum()


def test_fit_em_weights_change_the_fit(data):
    # a test that can fail: tripling one of three equal clusters gives it weight 90/150
    # (it is 1/3 unweighted; the clusters are 4 sd apart, so the fitted weights are
    # within 0.02 of the allocation counts)
    X = data[0]
    w = np.where(np.arange(len(X)) < 30, 3.0, 1.0)
    res = bm.fit_em(X, 3, sample_weight=w, random_seed=0)
    big = np.argmin(np.linalg.norm(res.means - [3.0, 3.0], axis=1))
    assert res.weights[big] == pytest.approx(0.6, abs=0.02)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([1.0, -1.0, 1.0], "non-negative"),
        ([1.0, np.nan, 1.0], "finite"),
        ([1.0, np.inf, 1.0], "finite"),
        ([1.0, 1.0], "shape"),
        ([0.0, 0.0, 0.0], "all zero"),
        (["a", "b", "c"], "numeric"),
        ([[1.0, 1.0, 1.0]], "shape"),
    ],
)
def test_bad_sample_weight(weights, match):
    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    for fn in (bm.kmeans, bm.fit_em):
        with pytest.raises(ValueError, match=f"sample_weight.*{match}|{match}.*sample_weight"):
            fn(X, 1, sample_weight=weights)


def test_sample_weight_counts_positive_rows_for_k():
    X = np.arange(8.0).reshape(4, 2)
    with pytest.raises(ValueError, match="n_components"):
        bm.fit_em(X, 3, sample_weight=[1, 1, 0, 0])


def test_check_sample_weight_accepts_series():
    pd = pytest.importorskip("pandas")
    out = check_sample_weight(pd.Series([1, 2, 3]), 3)
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.0, 3.0]
    assert check_sample_weight(None, 3) is None


# --------------------------------------------------------------------------- PyMC model
def _logp_and_grad(model, point):
    # FAST_COMPILE (Python/numpy perform of the Op): the same density, seconds less compile
    fn = model.compile_fn([model.logp(), model.dlogp()], mode="FAST_COMPILE")
    return fn(point)


@pytest.mark.parametrize(
    "covariance", ["full", *(pytest.param(c, marks=pytest.mark.slow) for c in COVS[1:])]
)
def test_build_gmm_weighted_logp_equals_duplicates(data, covariance):
    X, w, _, Xd, _ = data
    prior = bm.GMMPrior.from_data(Xd, 3)
    ma = bm.build_gmm(X, 3, covariance=covariance, prior=prior, sample_weight=w)
    mb = bm.build_gmm(Xd, 3, covariance=covariance, prior=prior)
    rng = np.random.default_rng(1)
    point = {k: v + 0.1 * rng.normal(size=np.shape(v)) for k, v in ma.initial_point().items()}
    (la, ga), (lb, gb) = _logp_and_grad(ma, point), _logp_and_grad(mb, point)
    assert la == pytest.approx(lb, rel=1e-10)
    np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-10)
    # and it is not the unweighted model's
    mc = bm.build_gmm(X, 3, covariance=covariance, prior=prior)
    assert abs(_logp_and_grad(mc, point)[0] - la) > 1.0


def test_build_gmm_default_prior_is_duplicated_datas(data):
    X, w, _, Xd, _ = data
    pa = bm.build_gmm(X, 2, sample_weight=w).bayesmix_config.prior
    pb = bm.GMMPrior.from_data(Xd, 2)
    np.testing.assert_allclose(pa.mean, pb.mean, atol=1e-12)
    np.testing.assert_allclose(pa.scale, pb.scale, atol=1e-12)


def test_build_dpgmm_weighted_logp_equals_duplicates(data):
    X, w, _, Xd, _ = data
    prior = bm.GMMPrior.from_data(Xd, 1)
    ma = bm.build_dpgmm(X, truncation=3, covariance="diag", prior=prior, sample_weight=w)
    mb = bm.build_dpgmm(Xd, truncation=3, covariance="diag", prior=prior)
    point = ma.initial_point()
    assert _logp_and_grad(ma, point)[0] == pytest.approx(_logp_and_grad(mb, point)[0], rel=1e-10)
    assert ma.bayesmix_config.sample_weight is not None


def test_build_gmm_bad_sample_weight(data):
    X = data[0]
    with pytest.raises(ValueError, match="sample_weight"):
        bm.build_gmm(X, 2, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="sample_weight"):
        bm.build_dpgmm(X, truncation=3, sample_weight=np.ones(3))


def test_select_k_weighted_equals_duplicates(data):
    X, w, _, Xd, _ = data
    kw = dict(mcmc=False, n_init=1, random_seed=0, progress=False)
    a = bm.select_k(X, [1, 2], sample_weight=w, **kw)
    b = bm.select_k(Xd, [1, 2], **kw)
    # K=1 has a unique optimum; K=2 may start elsewhere (k-means++ draws differ), so the
    # BIC is compared where the fits agree (both reach the same optimum here)
    np.testing.assert_allclose(a["bic"], b["bic"], rtol=1e-6)


# --------------------------------------------------------------------------- specs and CLI
@pytest.fixture
def weighted_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(30, 2)), columns=["a", "b"])
    df["count"] = rng.integers(0, 4, size=30)
    path = tmp_path / "w.csv"
    df.to_csv(path, index=False)
    return path, df


def test_spec_weights_column(weighted_csv):
    from bayesmix.workflow._spec import load_data, spec_from_dict

    path, df = weighted_csv
    spec = spec_from_dict({"data": {"source": "csv", "path": str(path), "weights": "count"}})
    data = load_data(spec)
    assert data.feature_names == ["a", "b"]  # the weights column is not a feature
    np.testing.assert_array_equal(data.sample_weight, df["count"].to_numpy(float))
    assert data.info["weights"] == "count"
    assert data.info["total_weight"] == df["count"].sum()


def test_spec_weights_errors(weighted_csv, tmp_path):
    from bayesmix.workflow._spec import SpecError, load_data, spec_from_dict

    path, df = weighted_csv
    src = {"source": "csv", "path": str(path)}
    with pytest.raises(SpecError, match="not in the data"):
        load_data(spec_from_dict({"data": {**src, "weights": "nope"}}))
    with pytest.raises(SpecError, match=r"also listed in data\.columns"):
        spec_from_dict({"data": {**src, "weights": "count", "columns": ["a", "count"]}})
    with pytest.raises(SpecError, match=r"data\.weights"):
        spec_from_dict({"data": {**src, "weights": 3}})
    bad = df.assign(count=-df["count"] - 1)
    bad_path = tmp_path / "bad.csv"
    bad.to_csv(bad_path, index=False)
    with pytest.raises(SpecError, match="non-negative"):
        load_data(
            spec_from_dict({"data": {"source": "csv", "path": str(bad_path), "weights": "count"}})
        )


def test_cli_weights_option(weighted_csv):
    from bayesmix.workflow._cli import _build_parser, _fit_spec

    path, _ = weighted_csv
    args = _build_parser().parse_args(["fit", str(path), "--weights", "count", "--no-mcmc"])
    assert _fit_spec(args).weights == "count"
