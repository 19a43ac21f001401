"""The shared numpy densities and the DataTree constructor."""

import numpy as np
import pytest
from scipy import stats

import bayesmix as bm
from bayesmix.core._gaussian import (
    log_component_densities,
    log_mixture_density,
    responsibilities,
)
from bayesmix.mcmc._trace import from_arrays, get_observed, get_params


def _random_params(rng, S, K, D):
    w = rng.dirichlet(np.ones(K), size=S)
    mu = rng.normal(scale=3, size=(S, K, D))
    A = rng.normal(size=(S, K, D, D))
    cov = A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(D)
    return w, mu, cov


def test_component_densities_match_scipy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    _, mu, cov = _random_params(rng, 1, 4, 3)
    out = log_component_densities(X, mu[0], cov[0])
    for k in range(4):
        ref = stats.multivariate_normal(mu[0, k], cov[0, k]).logpdf(X)
        np.testing.assert_allclose(out[:, k], ref, rtol=1e-12, atol=1e-12)


def test_mixture_density_batched_match_scipy():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(25, 2))
    w, mu, cov = _random_params(rng, 7, 3, 2)
    ref = np.array(
        [
            np.log(
                sum(
                    w[s, k] * stats.multivariate_normal(mu[s, k], cov[s, k]).pdf(X)
                    for k in range(3)
                )
            )
            for s in range(7)
        ]
    )
    np.testing.assert_allclose(log_mixture_density(X, w, mu, cov), ref, rtol=1e-11)
    r = responsibilities(X, w, mu, cov)
    np.testing.assert_allclose(r.sum(-1), 1.0, rtol=1e-12)
    s, k = 4, 1
    num = w[s, k] * stats.multivariate_normal(mu[s, k], cov[s, k]).pdf(X)
    np.testing.assert_allclose(r[s, :, k], num / np.exp(ref[s]), rtol=1e-10)


def test_far_outliers_stay_finite():
    # a point 1e3 standard deviations from every component: log space keeps it finite
    X = np.array([[1e3, -1e3], [0.0, 0.0]])
    w = np.array([0.5, 0.5])
    mu = np.array([[0.0, 0.0], [1.0, 1.0]])
    cov = np.stack([np.eye(2)] * 2)
    ll = log_mixture_density(X, w, mu, cov)
    r = responsibilities(X, w, mu, cov)
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(r))
    assert ll[0] < -1e5


def test_zero_weight_component_allowed():
    X = np.zeros((3, 1))
    out = log_mixture_density(X, np.array([1.0, 0.0]), np.array([[0.0], [1.0]]), np.ones((2, 1, 1)))
    np.testing.assert_allclose(out, stats.norm.logpdf(0.0))


def test_singular_covariance_error():
    with pytest.raises(ValueError, match="not symmetric positive definite"):
        log_component_densities(np.zeros((2, 2)), np.zeros((1, 2)), np.zeros((1, 2, 2)))


def test_from_arrays_schema_and_loglik():
    rng = np.random.default_rng(2)
    C, S, K, D, N = 2, 5, 3, 2, 11
    w, mu, cov = _random_params(rng, C * S, K, D)
    X = rng.normal(size=(N, D))
    dt = from_arrays(
        w.reshape(C, S, K),
        mu.reshape(C, S, K, D),
        cov.reshape(C, S, K, D, D),
        X,
        feature_names=["a", "b"],
        attrs={"model": "gmm", "covariance": "full"},
        extra={"concentration": np.ones((C, S))},
    )
    assert set(dt.children) == {"posterior", "log_likelihood", "observed_data"}
    post = dt["posterior"]
    assert post["covariances"].dims == ("chain", "draw", "component", "feature", "feature2")
    assert list(post["feature"].values) == ["a", "b"]
    assert dt["log_likelihood"]["X"].shape == (C, S, N)
    assert dt.attrs["model"] == "gmm" and dt.attrs["n_components"] == K
    assert dt.attrs["bayesmix_version"] == bm.__version__
    ref = log_mixture_density(X, w, mu, cov).reshape(C, S, N)
    np.testing.assert_allclose(dt["log_likelihood"]["X"].values, ref)
    w2, mu2, cov2 = get_params(dt)
    np.testing.assert_array_equal(w2, w.reshape(C, S, K))
    np.testing.assert_array_equal(mu2, mu.reshape(C, S, K, D))
    np.testing.assert_array_equal(cov2, cov.reshape(C, S, K, D, D))
    np.testing.assert_array_equal(get_observed(dt), X)


def test_from_arrays_shape_errors():
    with pytest.raises(ValueError, match="means must have shape"):
        from_arrays(
            np.ones((1, 2, 2)) / 2,
            np.zeros((1, 2, 3, 1)),
            np.ones((1, 2, 2, 1, 1)),
            np.zeros((3, 1)),
        )


def test_get_params_errors():
    import xarray as xr

    with pytest.raises(ValueError, match="no 'posterior' group"):
        get_params(xr.DataTree())
