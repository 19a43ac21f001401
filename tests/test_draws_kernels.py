"""The fused membership pass equals the per-draw reference computation."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesmix.core._draws_kernels import BLOCK, membership_summary
from bayesmix.core._gaussian import kernel_layout, precision_cholesky
from bayesmix.mcmc._trace import from_arrays
from bayesmix.posterior._membership import membership


def _posterior(S=120, K=3, D=2, N=2 * BLOCK + 7, seed=0, zero_last=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=2.0, size=(N, D))
    w = rng.dirichlet(np.ones(K), size=S)
    if zero_last:  # an MFM's padded component: weight exactly zero
        w[:, -1] = 0.0
        w /= w.sum(1, keepdims=True)
    mu = rng.normal(scale=2.0, size=(S, K, D))
    A = rng.normal(size=(S, K, D, D)) * 0.5
    cov = A @ A.swapaxes(-1, -2) + np.eye(D)
    return X, w, mu, cov


def _reference(X, w, mu, cov, q):
    """scipy densities per draw, normalised; numpy's mean and quantile over draws."""
    S, K = w.shape
    R = np.empty((S, X.shape[0], K))
    for s in range(S):
        with np.errstate(divide="ignore"):
            lj = np.stack(
                [
                    np.log(w[s, k]) + multivariate_normal(mu[s, k], cov[s, k]).logpdf(X)
                    for k in range(K)
                ],
                axis=1,
            )
        lj -= lj.max(1, keepdims=True)
        R[s] = np.exp(lj) / np.exp(lj).sum(1, keepdims=True)
    return R.mean(0), np.quantile(R, q, axis=0)


@pytest.mark.parametrize("zero_last", [False, True])
def test_fused_summary_equals_scipy_reference(zero_last):
    X, w, mu, cov = _posterior(zero_last=zero_last)
    q = [0.03, 0.97]
    mean, qs = membership_summary(X, w, mu, kernel_layout(precision_cholesky(cov)), q)
    ref_mean, ref_q = _reference(X, w, mu, cov, q)
    # different but exact algorithms (Cholesky solve vs scipy's eigendecomposition):
    # agreement to a few ulps of probabilities in [0, 1]
    np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(qs, ref_q, rtol=0, atol=1e-12)
    if zero_last:
        assert np.all(mean[:, -1] == 0.0)


def test_fused_summary_declines_central_quantiles():
    X, w, mu, cov = _posterior(S=50)
    # the median needs 25 order statistics of 50 from one side: 2m > S, numpy's job
    assert membership_summary(X, w, mu, kernel_layout(precision_cholesky(cov)), [0.5]) is None


@pytest.mark.parametrize("prob", [0.94, 0.2])  # 0.2: 81 order statistics, numpy path
def test_membership_fused_and_fallback_paths_agree_with_reference(prob):
    X, w, mu, cov = _posterior(S=200, N=90)
    dt = from_arrays(w[None], mu[None], cov[None], X, log_likelihood=False)
    res = membership(dt, prob=prob, relabel=False)
    q = [(1 - prob) / 2, (1 + prob) / 2]
    ref_mean, ref_q = _reference(X, w, mu, cov, q)
    np.testing.assert_allclose(res["probability"].values, ref_mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["probability_lower"].values, ref_q[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["probability_upper"].values, ref_q[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("layout", ["ll", "skn", "snk"])
def test_draws_eval_equals_scipy_per_draw(layout):
    from bayesmix.core._draws_kernels import draws_eval

    X, w, mu, cov = _posterior(S=7, K=4, D=5, zero_last=True)
    ll, resp = draws_eval(X, w, mu, kernel_layout(precision_cholesky(cov)), layout)
    for s in range(w.shape[0]):
        with np.errstate(divide="ignore"):
            lj = np.stack(
                [
                    np.log(w[s, k]) + multivariate_normal(mu[s, k], cov[s, k]).logpdf(X)
                    for k in range(w.shape[1])
                ],
                axis=1,
            )
        ref = np.logaddexp.reduce(lj, axis=1)
        # log densities of order -10..-30: agreement to 1e-12 relative
        np.testing.assert_allclose(ll[s], ref, rtol=1e-12)
        if layout != "ll":
            r = resp[s].T if layout == "skn" else resp[s]
            np.testing.assert_allclose(r, np.exp(lj - ref[:, None]), rtol=0, atol=1e-12)
    assert (resp is None) == (layout == "ll")
