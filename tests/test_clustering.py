"""Tests for bayesmix.cluster._kmeans and bayesmix.cluster._limits.

k-means against scikit-learn, and the zero-variance EM limit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

import bayesmix as bm
from bayesmix.cluster._kmeans import KMeansResult, _kmeans_plusplus, kmeans
from bayesmix.cluster._limits import em_kmeans_limit, soft_kmeans
from bayesmix.core._validation import ConvergenceWarning, DegenerateDataWarning


@pytest.fixture(scope="module", autouse=True)
def _sklearn_single_thread():
    # scikit-learn's OpenMP team is very slow on a loaded 2-core machine for these
    # small problems; one thread keeps the reference fits fast (results are unchanged)
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def simulated():
    # five overlapping 3-D Gaussian clusters: several local optima for k-means
    rng = np.random.default_rng(123)
    means = rng.normal(scale=2.5, size=(5, 3))
    X, _ = bm.simulate(3000, [0.3, 0.2, 0.2, 0.15, 0.15], means, np.ones((5, 3)), random_seed=rng)
    return X


def _sklearn_same_init(X, init, tol):
    return KMeans(
        n_clusters=init.shape[0], init=init, n_init=1, algorithm="lloyd", tol=tol, max_iter=300
    ).fit(X)


# --------------------------------------------------------------------------------------
# against scikit-learn from the same initial centres
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("tol", [1e-4, 0.0])
@pytest.mark.parametrize(("data", "k", "seed"), [("faithful", 3, 0), ("simulated", 5, 1)])
def test_same_init_matches_sklearn(request, data, k, seed, tol):
    X = request.getfixturevalue(data)
    init = X[np.random.default_rng(seed).choice(X.shape[0], k, replace=False)]
    ours = kmeans(X, k, init=init, n_init=1, tol=tol)
    ref = _sklearn_same_init(X, init, tol)
    # identical arithmetic up to summation order: labels equal, centres to ~1e-10
    np.testing.assert_array_equal(ours.labels, ref.labels_)
    np.testing.assert_allclose(ours.centers, ref.cluster_centers_, rtol=0, atol=1e-10)
    assert ours.n_iter == ref.n_iter_
    assert ours.inertia == pytest.approx(ref.inertia_, rel=1e-10)
    assert ours.converged
    np.testing.assert_array_equal(ours.init_centers, init)


def test_empty_cluster_reseeded_like_sklearn():
    # two tight clusters and a third initial centre far from all data: after the first
    # assignment its cluster is empty and must be re-seeded from the farthest point.
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (50, 2)), rng.normal(8, 1, (50, 2))])
    init = np.array([[0.0, 0.0], [8.0, 8.0], [1000.0, 1000.0]])
    ours = kmeans(X, 3, init=init, n_init=1)
    assert np.isfinite(ours.centers).all()
    # the far centre moved onto the data and every cluster is occupied
    assert np.abs(ours.centers).max() < 20
    assert np.bincount(ours.labels, minlength=3).min() >= 1
    ref = _sklearn_same_init(X, init, 1e-4)
    np.testing.assert_array_equal(ours.labels, ref.labels_)
    np.testing.assert_allclose(ours.centers, ref.cluster_centers_, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------------------
# restarts and seeding
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "k"), [("faithful", 2), ("faithful", 4), ("simulated", 5)])
def test_best_of_10_at_least_as_good_as_sklearn(request, data, k):
    X = request.getfixturevalue(data)
    ours = kmeans(X, k, n_init=10, random_seed=0)
    ref = KMeans(n_clusters=k, n_init=10, algorithm="lloyd", random_state=0).fit(X)
    # different random streams, same algorithm: best-of-10 reaches the same optimum;
    # 1e-9 relative covers summation-order rounding only
    assert ours.inertia <= ref.inertia_ * (1 + 1e-9)
    assert ours.n_init == 10


def test_kmeanspp_centers_are_distinct_data_points(simulated):
    rng = np.random.default_rng(5)
    centers, idx, degenerate = _kmeans_plusplus(simulated, 8, rng)
    assert not degenerate
    np.testing.assert_array_equal(centers, simulated[idx])
    assert len(np.unique(idx)) == 8
    assert len(np.unique(centers, axis=0)) == 8


def test_kmeanspp_spreads_over_separated_blobs():
    # 5 blobs 100 sd apart: D^2 sampling with greedy trials puts one seed per blob
    # (missing a blob needs a draw inside an already-seeded blob, probability ~1e-4 each)
    rng = np.random.default_rng(0)
    means = np.arange(5)[:, None] * np.array([[100.0, 0.0]])
    X, z = bm.simulate(500, np.full(5, 0.2), means, np.ones((5, 2)), random_seed=rng)
    for seed in range(10):
        _, idx, _ = _kmeans_plusplus(X, 5, np.random.default_rng(seed))
        assert sorted(z[idx].tolist()) == [0, 1, 2, 3, 4]


def test_reproducible_from_seed(simulated):
    a = kmeans(simulated, 8, n_init=3, random_seed=42)
    b = kmeans(simulated, 8, n_init=3, random_seed=42)
    np.testing.assert_array_equal(a.centers, b.centers)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.inertia == b.inertia
    # a Generator works too, and a different seed gives a different local optimum on
    # this multi-modal problem (8 centres for 5 overlapping clusters)
    c = kmeans(simulated, 8, n_init=1, random_seed=np.random.default_rng(7))
    d = kmeans(simulated, 8, n_init=1, random_seed=np.random.default_rng(8))
    assert not np.array_equal(np.sort(c.centers, axis=0), np.sort(d.centers, axis=0))


def test_result_api(faithful):
    import pandas as pd

    df = pd.DataFrame(faithful, columns=["eruptions", "waiting"])
    res = kmeans(df, 2, random_seed=0)
    assert isinstance(res, KMeansResult)
    assert res.centers.shape == (2, 2)
    assert res.labels.shape == (272,)
    np.testing.assert_array_equal(res.predict(faithful), res.labels)
    d2 = res.transform(faithful)
    assert d2.shape == (272, 2)
    assert res.inertia == pytest.approx(d2.min(axis=1).sum(), rel=1e-12)
    # inertia is what it claims: sum of squared distances to the assigned centres
    direct = ((faithful - res.centers[res.labels]) ** 2).sum()
    assert res.inertia == pytest.approx(direct, rel=1e-12)
    with pytest.raises(ValueError, match="features"):
        res.predict(faithful[:, :1])


def test_progress_prints(faithful, capsys):
    kmeans(faithful, 2, n_init=2, random_seed=0, progress=True)
    err = capsys.readouterr().err
    assert "run 1/2" in err and "run 2/2" in err


# --------------------------------------------------------------------------------------
# bad and degenerate input
# --------------------------------------------------------------------------------------


def test_bad_input_errors(faithful):
    bad = faithful.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kmeans(bad, 2, missing="error")
    with pytest.raises(ValueError, match="reshape"):
        kmeans(faithful[:, 0], 2)
    with pytest.raises(ValueError, match="n_components=300 is larger"):
        kmeans(faithful, 300)
    with pytest.raises(ValueError, match="n_components must be an integer >= 1"):
        kmeans(faithful, 0)
    with pytest.raises(ValueError, match=r"shape \(n_components, n_features\) = \(2, 2\)"):
        kmeans(faithful, 2, init=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="init must be 'k-means\\+\\+'"):
        kmeans(faithful, 2, init="random")
    with pytest.raises(ValueError, match="n_init must be an integer >= 1"):
        kmeans(faithful, 2, n_init=0)
    with pytest.raises(ValueError, match="tol must be >= 0"):
        kmeans(faithful, 2, tol=-1.0)


def test_all_points_identical_finite_with_warning():
    X = np.ones((10, 2))
    with pytest.warns(DegenerateDataWarning, match="fewer distinct points"):
        res = kmeans(X, 3, random_seed=0)
    assert np.isfinite(res.centers).all()
    np.testing.assert_array_equal(res.centers, np.ones((3, 2)))
    assert res.inertia == 0.0


def test_duplicated_points_finite_with_warning():
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0]]), 20, axis=0)
    with pytest.warns(DegenerateDataWarning):
        res = kmeans(X, 3, random_seed=1)
    assert np.isfinite(res.centers).all()
    assert res.inertia == 0.0
    # both distinct points are centres
    assert {tuple(c) for c in res.centers} == {(0.0, 0.0), (5.0, 1.0)}
    # an explicit init with coinciding centres on such data warns as well
    with pytest.warns(DegenerateDataWarning):
        kmeans(X, 3, init=np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 1.0]]))


def test_no_warning_on_ordinary_data(faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kmeans(faithful, 3, random_seed=0)


def test_convergence_warning_at_max_iter(simulated):
    init = simulated[:5]  # poor start: Lloyd needs many iterations
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        res = kmeans(simulated, 5, init=init, max_iter=1)
    assert not res.converged
    assert res.n_iter == 1
    # labels match the returned centres even without convergence
    np.testing.assert_array_equal(res.predict(simulated), res.labels)


# --------------------------------------------------------------------------------------
# the zero-variance limit of EM
# --------------------------------------------------------------------------------------


def test_soft_kmeans_e_step_matches_scipy(faithful):
    # responsibilities of equal-weight Gaussians N(c_k, eps I), from scipy densities
    X = faithful
    centers = X[[0, 100, 200]]
    eps = 30.0
    res = soft_kmeans(X, centers, beta=1 / eps, max_iter=2000, tol=1e-14)
    logp = np.column_stack(
        [stats.multivariate_normal(c, eps * np.eye(2)).logpdf(X) for c in res.centers]
    )
    ref = np.exp(logp - np.logaddexp.reduce(logp, axis=1, keepdims=True))
    np.testing.assert_allclose(res.responsibilities, ref, rtol=1e-10, atol=1e-14)
    # and the returned centres are a fixed point of the M-step
    m = (res.responsibilities.T @ X) / res.responsibilities.sum(axis=0)[:, None]
    np.testing.assert_allclose(res.centers, m, rtol=0, atol=1e-6)
    assert res.converged and res.beta == 1 / eps


def test_soft_kmeans_stable_for_huge_beta(faithful):
    res = soft_kmeans(faithful, faithful[[0, 1]], beta=1e300)
    assert np.isfinite(res.responsibilities).all() and np.isfinite(res.centers).all()
    np.testing.assert_array_equal(res.responsibilities.sum(axis=1), 1.0)


def test_em_limit_gives_kmeans(simulated):
    X = simulated
    init = X[np.random.default_rng(3).choice(X.shape[0], 5, replace=False)]
    s2 = float(np.mean(np.var(X, axis=0)))
    eps = s2 * np.array([0.5, 1e-1, 1e-2, 1e-4, 1e-6, 1e-8])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every soft EM run converges
        lim = em_kmeans_limit(X, init, eps)
    assert lim.responsibilities.shape == (6, X.shape[0], 5)
    assert lim.centers.shape == (6, 5, 3)
    # soft at large eps, hard (one-hot, the k-means partition) as eps -> 0
    assert lim.max_abs_deviation[0] > 0.4
    assert lim.max_abs_deviation[-1] == 0.0
    np.testing.assert_allclose(lim.centers[-1], lim.kmeans.centers, rtol=0, atol=1e-10)
    # the deviation shrinks along the sequence (allowing a partition change in between)
    assert lim.max_abs_deviation[-2] <= lim.max_abs_deviation[1]
    # and Lloyd from the same centres is scikit-learn's Lloyd
    ref = _sklearn_same_init(X, init, 0.0)
    np.testing.assert_allclose(lim.centers[-1], ref.cluster_centers_, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(np.argmax(lim.responsibilities[-1], axis=1), ref.labels_)
    df = lim.to_dataframe()
    assert list(df["eps"]) == list(eps)
    assert df["mean_entropy"].iloc[0] > df["mean_entropy"].iloc[-1] == 0.0


def test_em_limit_bad_input(faithful):
    with pytest.raises(ValueError, match="epsilons"):
        em_kmeans_limit(faithful, faithful[:2], [1.0, -1.0])
    with pytest.raises(ValueError, match="centers must have shape"):
        soft_kmeans(faithful, faithful[:2, :1], beta=1.0)
    with pytest.raises(ValueError, match="beta must be > 0"):
        soft_kmeans(faithful, faithful[:2], beta=0.0)


# --------------------------------------------------------------------------------------
# engine internals: Hamerly's bounds and threads change nothing
# --------------------------------------------------------------------------------------


def test_hamerly_bounds_give_plain_lloyd(simulated, monkeypatch):
    import bayesmix.cluster._kmeans as km

    X = simulated - simulated.mean(axis=0)
    init = X[np.random.default_rng(11).choice(X.shape[0], 8, replace=False)]
    with_bounds = km._lloyd(X, init, 300, 0.0)
    monkeypatch.setattr(km, "_HAMERLY_SWITCH", 0.0)  # never switch: BLAS pass only
    plain = km._lloyd(X, init, 300, 0.0)
    np.testing.assert_array_equal(with_bounds[0], plain[0])
    np.testing.assert_array_equal(with_bounds[2], plain[2])
    assert with_bounds[3] == plain[3] > 5  # enough iterations for the switch to happen


def test_result_independent_of_threads(simulated):
    from concurrent.futures import ThreadPoolExecutor

    import bayesmix.cluster._kmeans as km

    X = simulated - simulated.mean(axis=0)  # 3000 rows: two blocks of rows
    init = X[:6]
    one = km._lloyd(X, init, 300, 0.0, 1, None)
    with ThreadPoolExecutor(2) as ex:
        two = km._lloyd(X, init, 300, 0.0, 2, ex)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[2], two[2])  # bit-identical: fixed block reduction
    assert one[1] == two[1] and one[3] == two[3]


def test_predict_matches_dataframe_columns_by_name():
    """A DataFrame fitted with columns (a, b) and predicted with (b, a) gives the same
    labels; a missing column is a clear error; arrays are matched by position."""
    import pandas as pd

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (30, 2)), rng.normal([8, -8], 1, (30, 2))])
    df = pd.DataFrame(X, columns=["a", "b"])
    res = kmeans(df, 2, random_seed=0)
    assert res.feature_names == ["a", "b"]
    np.testing.assert_array_equal(res.predict(df[["b", "a"]]), res.labels)
    np.testing.assert_array_equal(res.predict(X), res.labels)
    np.testing.assert_allclose(res.transform(df[["b", "a"]]), res.transform(X))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['b'\]"):
        res.predict(df.rename(columns={"b": "c"}))
    assert kmeans(X, 2, random_seed=0).feature_names == ["x0", "x1"]
