"""bayesmix.sklearn.BayesianGaussianMixture fitted by variational inference (its default)
against scikit-learn's own BayesianGaussianMixture: parameters, defaults of the prior,
attributes' shapes, scores; and the settings that select MCMC or a bayesmix prior."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesmix as bm

sk_mixture = pytest.importorskip("sklearn.mixture")
from bayesmix.sklearn import BayesianGaussianMixture  # noqa: E402

COVS = ("full", "tied", "diag", "spherical")
ATTRS = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "mean_precision_",
    "degrees_of_freedom_",
    "mean_prior_",
    "covariance_prior_",
)


@pytest.fixture(scope="module")
def blobs():
    X, _ = bm.simulate(
        300,
        [0.3, 0.3, 0.4],
        [[0.0, 0.0], [7.0, 0.0], [0.0, 7.0]],
        [[1.0, 0.3], [0.3, 0.8], [0.6, 0.6]],
        random_seed=4,
    )
    return X


def _pair(X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = BayesianGaussianMixture(random_state=0, **kw).fit(X)
        ref = sk_mixture.BayesianGaussianMixture(random_state=0, **kw).fit(X)
    return ours, ref


PER_COMPONENT = ATTRS[:7]


def _value(est, name):
    """An attribute, per-component ones in the order of the first coordinate of the means."""
    v = np.asarray(getattr(est, name))
    return v[np.argsort(est.means_[:, 0])] if name in PER_COMPONENT else v


def test_finite_full_equals_sklearn(blobs):
    # the same model and updates; both from a k-means start on well-separated clusters,
    # stopped at tol=1e-8 on the total bound: the same optimum to ~1e-6
    ours, ref = _pair(
        blobs,
        n_components=3,
        weight_concentration_prior_type="dirichlet_distribution",
        tol=1e-8,
        max_iter=1000,
    )
    for name in ATTRS:
        np.testing.assert_allclose(
            _value(ours, name), _value(ref, name), rtol=1e-6, atol=1e-8, err_msg=name
        )
    # scikit-learn's score_samples (the expected log joint) and predict
    np.testing.assert_allclose(ours.score_samples(blobs), ref.score_samples(blobs), atol=1e-6)
    assert ours.converged_ and ref.converged_


def test_dp_full_close_to_sklearn(blobs):
    # scikit-learn's DP leaves the last stick a Beta distribution (ours is 1), and the two
    # k-means starts order the sticks differently (stick order changes E[pi] by ~1/N per
    # stick): the occupied components agree to ~0.006 in the weights, checked at 0.01.
    # The exact comparison from one start is tests/test_vi.py's step-by-step test
    ours, ref = _pair(blobs, n_components=6, tol=1e-8, max_iter=1000)
    big_o, big_r = ours.weights_ > 0.05, ref.weights_ > 0.05
    assert big_o.sum() == big_r.sum() == 3
    np.testing.assert_allclose(
        np.sort(ours.weights_[big_o]), np.sort(ref.weights_[big_r]), atol=0.01
    )
    o = ours.means_[big_o][np.argsort(ours.means_[big_o][:, 0])]
    r = ref.means_[big_r][np.argsort(ref.means_[big_r][:, 0])]
    np.testing.assert_allclose(o, r, atol=1e-2)


@pytest.mark.parametrize("covariance", COVS)
@pytest.mark.parametrize("kind", ["dirichlet_process", "dirichlet_distribution"])
def test_attributes_and_prior_defaults_as_sklearn(blobs, covariance, kind):
    ours, ref = _pair(
        blobs, n_components=4, covariance_type=covariance, weight_concentration_prior_type=kind
    )
    for name in (*ATTRS, "weight_concentration_prior_", "degrees_of_freedom_prior_"):
        assert np.shape(getattr(ours, name)) == np.shape(getattr(ref, name)), name
    # scikit-learn's default prior, parameter by parameter
    for name in (
        "weight_concentration_prior_",
        "mean_precision_prior_",
        "mean_prior_",
        "degrees_of_freedom_prior_",
        "covariance_prior_",
    ):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-12)
    P = ours.precisions_cholesky_
    if covariance in ("full", "tied"):
        np.testing.assert_allclose(P @ np.swapaxes(P, -1, -2), ours.precisions_, rtol=1e-10)
        np.testing.assert_allclose(np.linalg.inv(ours.precisions_), ours.covariances_, rtol=1e-8)
        assert np.allclose(np.tril(P, -1), 0)  # upper triangular, as scikit-learn's
        if covariance == "tied":
            assert np.isscalar(ours.degrees_of_freedom_)
    else:
        np.testing.assert_allclose(P**2 * ours.covariances_, 1.0, rtol=1e-12)
    assert ours.vi_result_.covariance == covariance
    assert isinstance(ours.lower_bound_, float) and ours.n_iter_ == len(ours.lower_bounds_)


def test_lower_bounds_never_decrease_without_reg_covar(blobs):
    est = BayesianGaussianMixture(n_components=5, reg_covar=0.0, tol=1e-8, max_iter=500)
    h = np.asarray(est.fit(blobs).lower_bounds_)
    assert h.size > 3 and np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))


def test_warm_start_continues(blobs):
    # the second fit starts from the first one's responsibilities: its first ELBO is at
    # least the first fit's last one (exact CAVI with reg_covar=0), and a cold random
    # start is far below it
    kw = dict(n_components=3, init_params="random", reg_covar=0.0, random_state=1)
    est = BayesianGaussianMixture(warm_start=True, max_iter=3, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=3: not converged, on purpose
        last = est.fit(blobs).lower_bound_
        est.fit(blobs)
        cold = BayesianGaussianMixture(max_iter=3, **kw).fit(blobs)
    assert est.lower_bounds_[0] >= last - 1e-9 * abs(last)
    assert cold.lower_bounds_[0] < last - 1.0


def test_bayesmix_prior_and_fixed_dp_concentration(blobs):
    prior = bm.GMMPrior.from_data(blobs, 4)
    est = BayesianGaussianMixture(n_components=4, prior=prior, random_state=0).fit(blobs)
    assert est.vi_result_.prior is prior
    assert est.vi_result_.dp_concentration[0] == "gamma"  # q(alpha) under the Gamma prior
    fixed = BayesianGaussianMixture(
        n_components=4, weight_concentration_prior=0.3, random_state=0
    ).fit(blobs)
    assert fixed.vi_result_.dp_concentration == ("fixed", 0.3)
    assert fixed.weight_concentration_prior_ == 0.3
    a, b = fixed.weight_concentration_
    assert a.shape == b.shape == (4,) and b[-1] == 0.0  # the last stick is 1
    # scikit-learn's formula for weights_ from the sticks gives ours
    ev = a / (a + b)
    np.testing.assert_allclose(
        ev * np.hstack((1, np.cumprod(1 - ev[:-1]))), fixed.weights_, rtol=1e-12
    )


def test_sample_and_fit_predict(blobs):
    est = BayesianGaussianMixture(n_components=3, random_state=0)
    labels = est.fit_predict(blobs)
    np.testing.assert_array_equal(labels, est.predict(blobs))
    np.testing.assert_allclose(est.predict_proba(blobs).sum(1), 1.0)
    Xs, ys = est.sample(500)
    assert Xs.shape == (500, 2) and ys.shape == (500,) and set(ys) <= {0, 1, 2}


def test_errors(blobs):
    with pytest.raises(ValueError, match="inference must be one of"):
        BayesianGaussianMixture(inference="nuts").fit(blobs)
    with pytest.raises(ValueError, match="weight_concentration_prior_type must be one of"):
        BayesianGaussianMixture(weight_concentration_prior_type="dp").fit(blobs)
    with pytest.raises(ValueError, match="not both"):
        BayesianGaussianMixture(
            prior=bm.GMMPrior.from_data(blobs, 2), mean_precision_prior=1.0
        ).fit(blobs)
    with pytest.raises(ValueError, match="init_params must be one of"):
        BayesianGaussianMixture(init_params="bogus").fit(blobs)
    est = BayesianGaussianMixture(n_components=2).fit(blobs)
    with pytest.raises(AttributeError, match="inference='mcmc'"):
        est.predict_proba_interval(blobs)
