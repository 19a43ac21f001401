"""The covariance-type math of bayesmix.core._covariance against independent references.

References: np.cov (weighted), np.linalg.inv / slogdet, scipy.stats.multivariate_normal,
scikit-learn's parameter count. Tolerances are a few hundred ulps of the quantities
involved (1e-10 relative) unless said otherwise: every quantity here is a short
closed-form computation in float64.
"""

import numpy as np
import pytest
from scipy import stats

from bayesmix.core import _covariance as cv

TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    N, D, K = 300, 3, 4
    X = rng.normal(size=(N, D)) @ rng.normal(size=(D, D)) + 2.0
    resp = rng.dirichlet(np.ones(K), size=N)
    return X, resp


def _ml_covariances(X, resp, covariance, reg):
    nk, sx, sxx = resp.sum(0), resp.T @ X, cv.SECOND_MOMENTS[covariance](X, resp)
    return cv.M_STEP[covariance](nk, sx, sxx, X.shape[0], reg, None)


def test_ml_full_matches_weighted_np_cov(data):
    X, resp = data
    cov = _ml_covariances(X, resp, "full", 0.0)
    for k in range(resp.shape[1]):
        ref = np.cov(X, rowvar=False, aweights=resp[:, k], bias=True)
        np.testing.assert_allclose(cov[k], ref, rtol=1e-10, atol=1e-12)


def test_ml_reg_covar_added_to_diagonal(data):
    X, resp = data
    for covariance in TYPES:
        a = cv.TO_FULL[covariance](_ml_covariances(X, resp, covariance, 0.0), 4, 3)
        b = cv.TO_FULL[covariance](_ml_covariances(X, resp, covariance, 0.5), 4, 3)
        np.testing.assert_allclose(b - a, np.broadcast_to(0.5 * np.eye(3), a.shape), atol=1e-12)


def test_ml_diag_spherical_tied_against_full(data):
    X, resp = data
    full = np.stack(
        [np.cov(X, rowvar=False, aweights=resp[:, k], bias=True) for k in range(resp.shape[1])]
    )
    nk = resp.sum(0)
    np.testing.assert_allclose(
        _ml_covariances(X, resp, "diag", 0.0), np.diagonal(full, axis1=1, axis2=2), rtol=1e-10
    )
    np.testing.assert_allclose(
        _ml_covariances(X, resp, "spherical", 0.0),
        np.diagonal(full, axis1=1, axis2=2).mean(1),
        rtol=1e-10,
    )
    tied_ref = np.einsum("k,kij->ij", nk, full) / nk.sum()
    np.testing.assert_allclose(_ml_covariances(X, resp, "tied", 0.0), tied_ref, rtol=1e-10)


@pytest.mark.parametrize("covariance", TYPES)
def test_precision_cholesky_and_logdet(data, covariance):
    X, resp = data
    cov = _ml_covariances(X, resp, covariance, 1e-3)
    full = cv.TO_FULL[covariance](cov, 4, 3)
    P = cv.PRECISION_CHOLESKY[covariance](cov)
    Pf = cv.precision_cholesky_full(full)
    for k in range(4):
        np.testing.assert_allclose(Pf[k] @ Pf[k].T, np.linalg.inv(full[k]), rtol=1e-9)
        assert np.allclose(np.tril(Pf[k], -1), 0.0)  # upper triangular
    logdet = np.broadcast_to(cv.LOG_DET_CHOLESKY[covariance](P, 3), (4,))
    np.testing.assert_allclose(logdet, -0.5 * np.linalg.slogdet(full)[1], rtol=1e-10)


@pytest.mark.parametrize("covariance", TYPES)
def test_log_gaussian_prob_matches_scipy(data, covariance):
    X, resp = data
    cov = _ml_covariances(X, resp, covariance, 1e-3)
    full = cv.TO_FULL[covariance](cov, 4, 3)
    means = np.random.default_rng(1).normal(size=(4, 3))
    got = cv.LOG_GAUSSIAN_PROB[covariance](X, means, cv.PRECISION_CHOLESKY[covariance](cov))
    ref = np.stack(
        [stats.multivariate_normal(means[k], full[k]).logpdf(X) for k in range(4)], axis=1
    )
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_log_prob_far_points_exact():
    # 1e3 standard deviations away: log density ~ -5e5, still exact (no exp underflow here)
    means = np.zeros((1, 2))
    cov = np.eye(2)[None]
    X = np.array([[1e3, 0.0], [0.0, -2e3]])
    got = cv.LOG_GAUSSIAN_PROB["full"](X, means, cv.PRECISION_CHOLESKY["full"](cov))
    ref = stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(X)
    np.testing.assert_allclose(got[:, 0], ref, rtol=1e-12)


@pytest.mark.parametrize("covariance", TYPES)
def test_to_full_from_full_roundtrip(data, covariance):
    X, resp = data
    cov = _ml_covariances(X, resp, covariance, 1e-3)
    full = cv.TO_FULL[covariance](cov, 4, 3)
    assert full.shape == (4, 3, 3)
    np.testing.assert_allclose(cv.FROM_FULL[covariance](full), cov, rtol=1e-14)


@pytest.mark.parametrize("covariance", TYPES)
def test_n_parameters_matches_sklearn(covariance):
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 3))
    gm = GaussianMixture(4, covariance_type=covariance, max_iter=1000, random_state=0).fit(X)
    assert cv.n_parameters(covariance, 4, 3) == gm._n_parameters()


@pytest.mark.parametrize("covariance", TYPES)
def test_singular_covariance_clear_error(covariance):
    D, K = 2, 2
    singular = cv.FROM_FULL[covariance](np.zeros((K, D, D)))
    with pytest.raises(ValueError, match="reg_covar"):
        cv.PRECISION_CHOLESKY[covariance](singular, 0.0)


def test_map_m_step_full_matches_closed_form(data):
    # the normal-inverse-Wishart MAP written out per component, as in bayesmix.core._priors
    X, resp = data
    rng = np.random.default_rng(3)
    D = X.shape[1]
    m0, k0, nu0 = rng.normal(size=D), 0.7, D + 3.5
    A = rng.normal(size=(D, D))
    Psi = A @ A.T + np.eye(D)
    prior = cv.MapPrior(m0, k0, nu0, 2.0, Psi)
    nk, sx, sxx = resp.sum(0), resp.T @ X, cv.SECOND_MOMENTS["full"](X, resp)
    cov = cv.M_STEP["full"](nk, sx, sxx, X.shape[0], 0.0, prior)
    weights, means = cv.m_step_weights_means(nk, sx, X.shape[0], prior)
    K = resp.shape[1]
    for k in range(K):
        r = resp[:, k]
        n = r.sum()
        xbar = r @ X / n
        S = (r[:, None] * (X - xbar)).T @ (X - xbar)
        ref = (Psi + S + k0 * n / (k0 + n) * np.outer(xbar - m0, xbar - m0)) / (nu0 + n + D + 2)
        np.testing.assert_allclose(cov[k], ref, rtol=1e-10)
        np.testing.assert_allclose(means[k], (n * xbar + k0 * m0) / (n + k0), rtol=1e-12)
    np.testing.assert_allclose(weights, (nk + 1.0) / (nk.sum() + K), rtol=1e-12)
