"""Invariances of k-means and ML EM.

* Permuting the rows permutes the labels and changes nothing else. The seeded
  initialisations draw random numbers in row order (k-means++ picks row indices), so a
  row permutation with the same seed is a *different* initialisation. Two ways around
  it, both tested: an explicit initialisation (initial centres / means, which do not
  depend on the row order), giving the same fit up to the rounding of sums taken in
  another order; and seeded restarts on well-separated clusters, where every restart
  reaches the same optimum, compared up to a permutation of the component labels.
* An affine change ``X * a + b`` (scalar ``a > 0``, vector ``b``) maps the fitted means
  to ``means * a + b`` and the covariances to ``a**2 * covariances`` with the same
  partition; the log-likelihood shifts by ``-N * D * log(a)``. ``reg_covar`` is added to
  the covariances, so it is scaled by ``a**2`` as well for the invariance to be exact.
  EM's stopping rule (change of the objective per observation) is invariant too, so
  both fits run the same iterations.
* Permuting the features permutes the parameters (rows/columns of the covariances).

Tolerances: the transformed problems are the same arithmetic up to rounding, so
results agree to ~1e-10 relative after tens of EM iterations (each iteration is a
contraction near the optimum; rounding does not accumulate). rtol=1e-8 leaves two
orders of magnitude of headroom while any real error (a wrong scale, a missed shift) is
O(1).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.core._validation import BayesmixWarning

COVARIANCES = ["full", "diag", "spherical", "tied"]
RTOL = 1e-8


@pytest.fixture(scope="module")
def data():
    """Three overlapping elliptical clusters in 3-D (overlap makes EM non-trivial)."""
    rng = np.random.default_rng(42)
    means = np.array([[0.0, 0.0, 0.0], [3.0, 1.0, -1.0], [0.0, 4.0, 2.0]])
    A = rng.normal(scale=0.6, size=(3, 3, 3))
    covs = A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(3)
    X, _ = bm.simulate(240, [0.4, 0.35, 0.25], means, covs, random_seed=1)
    init = X[[0, 100, 200]] + 0.1  # explicit initial means, independent of row order
    return np.asarray(X), init


def _fit(X, K, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesmixWarning)
        return bm.fit_em(X, K, **kw)


def _align(ref_means, means):
    """Permutation p with means[p] ~ ref_means (matching by nearest mean)."""
    from scipy.optimize import linear_sum_assignment

    cost = ((ref_means[:, None, :] - means[None]) ** 2).sum(-1)
    _, p = linear_sum_assignment(cost)
    return p


# ---------------------------------------------------------------- row permutation
def test_kmeans_row_permutation_explicit_init(data):
    X, init = data
    perm = np.random.default_rng(0).permutation(len(X))
    a = bm.kmeans(X, 3, init=init, n_init=1, tol=0.0)
    b = bm.kmeans(X[perm], 3, init=init, n_init=1, tol=0.0)
    np.testing.assert_array_equal(b.labels, a.labels[perm])
    np.testing.assert_allclose(b.centers, a.centers, rtol=1e-12)
    assert b.inertia == pytest.approx(a.inertia, rel=1e-12)
    assert b.n_iter == a.n_iter


def test_kmeans_row_permutation_seeded_restarts_up_to_label_permutation(data):
    # well-separated clusters: every k-means++ restart finds the same partition, so
    # the permuted data give the same fit up to relabelling of the clusters
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(size=(40, 2)) + c for c in ([0, 0], [20, 0], [0, 20])])
    perm = rng.permutation(len(X))
    a = bm.kmeans(X, 3, random_seed=3)
    b = bm.kmeans(X[perm], 3, random_seed=3)
    p = _align(a.centers, b.centers)
    np.testing.assert_allclose(b.centers[p], a.centers, rtol=1e-12)
    inv = np.argsort(p)
    np.testing.assert_array_equal(inv[b.labels], a.labels[perm])
    assert b.inertia == pytest.approx(a.inertia, rel=1e-12)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_em_row_permutation_explicit_init(data, covariance):
    X, init = data
    perm = np.random.default_rng(1).permutation(len(X))
    a = _fit(X, 3, covariance=covariance, init=init)
    b = _fit(X[perm], 3, covariance=covariance, init=init)
    np.testing.assert_array_equal(b.labels, a.labels[perm])
    np.testing.assert_array_equal(b.predict(X[perm]), a.predict(X)[perm])
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=RTOL, atol=1e-12)
    assert b.log_likelihood == pytest.approx(a.log_likelihood, rel=1e-12)
    assert b.n_iter == a.n_iter
    np.testing.assert_allclose(b.predict_proba(X[perm]), a.predict_proba(X)[perm], atol=1e-10)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_em_row_permutation_seeded_up_to_label_permutation(covariance):
    rng = np.random.default_rng(7)
    X = np.concatenate([rng.normal(size=(50, 2)) + c for c in ([0, 0], [15, 0], [0, 15])])
    perm = rng.permutation(len(X))
    a = _fit(X, 3, covariance=covariance, n_init=3, random_seed=4)
    b = _fit(X[perm], 3, covariance=covariance, n_init=3, random_seed=4)
    p = _align(a.means, b.means)
    # separated clusters: the same optimum from any seeding; EM stops at tol=1e-6 per
    # observation, so two runs agree to about sqrt(tol) in the parameters
    np.testing.assert_allclose(b.weights[p], a.weights, atol=1e-5)
    np.testing.assert_allclose(b.means[p], a.means, atol=1e-4)
    np.testing.assert_allclose(b.covariances[p], a.covariances, atol=1e-4)
    np.testing.assert_array_equal(np.argsort(p)[b.labels], a.labels[perm])


# ---------------------------------------------------------------- affine maps
@pytest.mark.parametrize("covariance", COVARIANCES)
@pytest.mark.parametrize(("a", "b"), [(1e-3, 5.0), (7.5, -100.0), (1e4, 1e6)])
def test_em_affine_equivariance(data, covariance, a, b):
    X, init = data
    shift = b * np.array([1.0, -2.0, 0.5])
    reg = 1e-6
    p = _fit(X, 3, covariance=covariance, init=init, reg_covar=reg)
    q = _fit(X * a + shift, 3, covariance=covariance, init=init * a + shift, reg_covar=reg * a**2)
    np.testing.assert_array_equal(q.labels, p.labels)
    assert q.n_iter == p.n_iter
    np.testing.assert_allclose(q.weights, p.weights, rtol=RTOL)
    # atol: the means are compared on the scale of the data (|b| up to 1e6 * a)
    np.testing.assert_allclose(q.means, p.means * a + shift, rtol=RTOL, atol=RTOL * a)
    np.testing.assert_allclose(
        q.covariances, p.covariances * a**2, rtol=RTOL, atol=RTOL * a**2 * p.covariances.max()
    )
    N, D = X.shape
    assert q.log_likelihood == pytest.approx(p.log_likelihood - N * D * np.log(a), rel=1e-9)
    # BIC shifts by the same constant (same parameter count)
    assert q.bic(X * a + shift) == pytest.approx(p.bic(X) + 2 * N * D * np.log(a), rel=1e-9)


def test_em_affine_unscaled_reg_covar_is_close(data):
    # with the default reg_covar=1e-6 left unscaled the invariance is approximate:
    # for a = 10 the relative effect is ~1e-6 / var(X) ~ 1e-6, far below 1e-4
    X, init = data
    p = _fit(X, 3, init=init)
    q = _fit(X * 10.0 + 3.0, 3, init=init * 10.0 + 3.0)
    np.testing.assert_array_equal(q.labels, p.labels)
    np.testing.assert_allclose(q.means, p.means * 10 + 3, rtol=1e-4)
    np.testing.assert_allclose(q.covariances, p.covariances * 100, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("a", "b"), [(1e-3, 5.0), (1e5, -3e7)])
def test_kmeans_affine_equivariance(data, a, b):
    X, init = data
    p = bm.kmeans(X, 3, init=init, n_init=1)
    q = bm.kmeans(X * a + b, 3, init=init * a + b, n_init=1)
    np.testing.assert_array_equal(q.labels, p.labels)
    assert q.n_iter == p.n_iter
    np.testing.assert_allclose(q.centers, p.centers * a + b, rtol=RTOL, atol=RTOL * a)
    assert q.inertia == pytest.approx(p.inertia * a**2, rel=1e-8)


def test_kmeans_affine_seeded_same_partition(data):
    # k-means++ draws depend on distances only through ratios, so a scaled and shifted
    # copy with the same seed picks the same seeds: same partition, up to rounding in
    # the sampling thresholds (checked exactly here on this data)
    X, _ = data
    p = bm.kmeans(X, 3, random_seed=0)
    q = bm.kmeans(X * 3.0 - 2.0, 3, random_seed=0)
    np.testing.assert_array_equal(q.labels, p.labels)
    np.testing.assert_allclose(q.centers, p.centers * 3.0 - 2.0, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- feature permutation
@pytest.mark.parametrize("covariance", COVARIANCES)
def test_em_feature_permutation(data, covariance):
    X, init = data
    f = np.array([2, 0, 1])
    p = _fit(X, 3, covariance=covariance, init=init)
    q = _fit(X[:, f], 3, covariance=covariance, init=init[:, f])
    np.testing.assert_array_equal(q.labels, p.labels)
    np.testing.assert_allclose(q.weights, p.weights, rtol=RTOL)
    np.testing.assert_allclose(q.means, p.means[:, f], rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(q.covariances, p.covariances[:, f][:, :, f], rtol=RTOL, atol=1e-12)
    assert q.log_likelihood == pytest.approx(p.log_likelihood, rel=1e-12)


def test_em_feature_permutation_dataframe_names_follow(data):
    pd = pytest.importorskip("pandas")
    X, init = data
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    q = _fit(df[["c", "a", "b"]], 3, init=init[:, [2, 0, 1]])
    assert q.feature_names == ["c", "a", "b"]


def test_kmeans_feature_permutation(data):
    X, init = data
    f = np.array([1, 2, 0])
    p = bm.kmeans(X, 3, init=init, n_init=1)
    q = bm.kmeans(X[:, f], 3, init=init[:, f], n_init=1)
    np.testing.assert_array_equal(q.labels, p.labels)
    np.testing.assert_allclose(q.centers, p.centers[:, f], rtol=1e-12)
