"""Degenerate data and numerical robustness of k-means and EM.

Every degenerate case must end in finite output plus a warning of the package's own
category that says what happened and what to change -- or, where no finite answer
exists (``reg_covar=0`` with a singular covariance), a ValueError that says the same.
Never a crash deep in linear algebra, never a silent NaN.

The far-outlier checks compare ``score_samples`` / ``predict_proba`` with an
independent log-space reference (scipy.stats.multivariate_normal.logpdf and
scipy.special.logsumexp); a density evaluated as ``exp`` and then ``log`` would
underflow to ``log(0) = -inf`` there.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import bayesmix as bm
from bayesmix.core._validation import BayesmixWarning, ConvergenceWarning, DegenerateDataWarning

COVARIANCES = ["full", "diag", "spherical", "tied"]


def _fit(*args, **kwargs):
    """Run ``fn(*args, **kwargs)`` recording bayesmix warnings; return (result, warnings)."""
    fn, *rest = args
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn(*rest, **kwargs)
    ours = [w for w in rec if issubclass(w.category, BayesmixWarning)]
    return out, ours


def _finite_em(res):
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        assert np.isfinite(getattr(res, name)).all(), name
    assert np.isfinite(res.log_likelihood)
    assert np.all(res.weights >= 0) and np.isclose(res.weights.sum(), 1.0)
    # covariances stay positive definite
    assert np.all(np.linalg.eigvalsh(res.covariances) > 0)


def _messages(ws, category=DegenerateDataWarning):
    return " | ".join(str(w.message) for w in ws if issubclass(w.category, category))


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    return np.concatenate(
        [rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + np.array([8.0, 0.0])]
    )


# ---------------------------------------------------------------- one point per component
@pytest.mark.parametrize("covariance", COVARIANCES)
def test_single_point_per_component_warns_collapse(covariance):
    X = np.array([[0.0, 0.0], [10.0, 10.0], [20.0, -5.0]])
    res, ws = _fit(bm.fit_em, X, 3, covariance=covariance, random_seed=0)
    _finite_em(res)
    # each component sits on its own point: every one is flagged and named
    assert sorted(res.collapsed) == [0, 1, 2]
    msg = _messages(ws)
    assert "collapsed" in msg
    # the advice: what to change
    assert "fewer components" in msg and "reg_covar" in msg and "prior" in msg
    # the means are the points themselves (a component per point)
    np.testing.assert_allclose(np.sort(res.means[:, 0]), [0.0, 10.0, 20.0], atol=1e-9)


# ---------------------------------------------------------------- all points identical
@pytest.mark.parametrize("covariance", COVARIANCES)
@pytest.mark.parametrize("K", [1, 3])
def test_all_points_identical(covariance, K):
    X = np.full((20, 2), 3.5)
    res, ws = _fit(bm.fit_em, X, K, covariance=covariance, random_seed=0)
    _finite_em(res)
    np.testing.assert_allclose(res.means, 3.5, atol=1e-9)
    msg = _messages(ws)
    # both features are constant: said so, with the fix
    assert "['x0', 'x1'] are constant" in msg and "Drop them" in msg
    if K > 1:
        # and K > number of distinct points is named
        assert "fewer distinct points than n_components=3" in msg
    # predictions on the training data are finite too
    assert np.isfinite(res.score_samples(X)).all()
    assert np.isfinite(res.predict_proba(X)).all()


def test_kmeans_all_points_identical():
    X = np.full((15, 3), -2.0)
    res, ws = _fit(bm.kmeans, X, 4, random_seed=0)
    assert np.isfinite(res.centers).all()
    np.testing.assert_allclose(res.centers, -2.0)
    assert res.inertia == 0.0
    msg = _messages(ws)
    assert "fewer distinct points than n_components=4" in msg
    assert "Use fewer components" in msg


# ---------------------------------------------------------------- constant feature
@pytest.mark.parametrize("covariance", COVARIANCES)
def test_constant_feature_warns_and_stays_finite(blobs, covariance):
    X = np.column_stack([blobs, np.full(len(blobs), 7.0)])
    res, ws = _fit(bm.fit_em, X, 2, covariance=covariance, random_seed=0)
    _finite_em(res)
    msg = _messages(ws)
    assert "['x2'] are constant" in msg and "Drop them before fitting" in msg
    # the constant feature's mean is reproduced exactly, and the other features still
    # separate the two blobs (each blob is one component)
    np.testing.assert_allclose(res.means[:, 2], 7.0, atol=1e-9)
    labels = res.predict(X)
    assert len(set(labels[:30])) == 1 and len(set(labels[30:])) == 1
    assert labels[0] != labels[-1]


def test_constant_feature_named_from_dataframe(blobs):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": blobs[:, 0], "b": blobs[:, 1], "flat": 1.0})
    _, ws = _fit(bm.fit_em, df, 2, random_seed=0)
    assert "['flat'] are constant" in _messages(ws)


def test_constant_feature_without_regularisation_is_a_clear_error(blobs):
    X = np.column_stack([blobs, np.zeros(len(blobs))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        with pytest.raises(ValueError, match=r"constant and reg_covar=0.*reg_covar > 0"):
            bm.fit_em(X, 2, reg_covar=0.0, random_seed=0)


def test_constant_feature_map_fit_is_finite(blobs):
    X = np.column_stack([blobs, np.full(len(blobs), 2.0)])
    prior = bm.GMMPrior.from_data(X, 2)
    res, ws = _fit(bm.fit_em, X, 2, prior=prior, random_seed=0)
    _finite_em(res)
    assert np.isfinite(res.log_posterior)
    assert "are constant" in _messages(ws) and "the prior" in _messages(ws)


# ---------------------------------------------------------------- K equal to n
@pytest.mark.parametrize("covariance", COVARIANCES)
def test_k_equal_n_warns_collapse(blobs, covariance):
    X = blobs[:6]
    res, ws = _fit(bm.fit_em, X, 6, covariance=covariance, random_seed=0)
    _finite_em(res)
    assert len(res.collapsed) == 6
    assert "6 component(s) collapsed" in _messages(ws)


def test_kmeans_k_equal_n_is_exact(blobs):
    X = blobs[:7]
    res, ws = _fit(bm.kmeans, X, 7, random_seed=0)
    # every point is its own centre: zero inertia, a permutation of the rows
    assert res.inertia == 0.0
    assert sorted(res.labels.tolist()) == list(range(7))
    np.testing.assert_allclose(res.centers[res.labels], X, atol=1e-12)
    assert not ws  # nothing degenerate about distinct points


def test_singular_covariance_without_regularisation_is_a_clear_error(blobs):
    # full covariance, K = n, reg_covar=0: every component covariance is exactly
    # singular; there is no finite ML estimate, so this must be an error with advice
    with pytest.raises(ValueError, match=r"ill-defined empirical covariance.*increase reg_covar"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BayesmixWarning)
            bm.fit_em(blobs[:6], 6, covariance="full", reg_covar=0.0, random_seed=0)


# ---------------------------------------------------------------- duplicated points
@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_duplicated_points_collapse_is_reported(covariance):
    # 5 distinct points repeated 10 times: a component sitting on one of them has zero
    # spread, so its variance is set by reg_covar; the likelihood is then meaningless
    rng = np.random.default_rng(1)
    X = np.repeat(rng.normal(size=(5, 2)), 10, axis=0)
    res, ws = _fit(bm.fit_em, X, 3, covariance=covariance, random_seed=0)
    _finite_em(res)
    assert res.collapsed
    msg = _messages(ws)
    assert "collapsed" in msg and "duplicated" in msg


# ---------------------------------------------------------------- far outliers
@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_far_outlier_gets_own_component_with_warning(blobs, covariance):
    # one point 1e3 standard deviations away and K=3: ML EM gives it a component of its
    # own with zero spread; this must be finite and flagged, not silently trusted
    X = np.vstack([blobs, [[1e3, 1e3]]])
    res, ws = _fit(bm.fit_em, X, 3, covariance=covariance, random_seed=0)
    _finite_em(res)
    far = int(np.argmin(np.abs(res.means[:, 0] - 1e3)))
    np.testing.assert_allclose(res.means[far], [1e3, 1e3], rtol=1e-9)
    assert far in res.collapsed
    assert "collapsed" in _messages(ws)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_far_outlier_in_training_data_is_finite(blobs, covariance):
    # K=2 on two blobs plus one far point: whatever the fit does with it, finite
    X = np.vstack([blobs, [[-1e3 * 8.0, 1e3]]])
    res, _ = _fit(bm.fit_em, X, 2, covariance=covariance, random_seed=0)
    _finite_em(res)
    assert np.isfinite(res.score_samples(X)).all()


@pytest.fixture(scope="module")
def fitted(blobs):
    return bm.fit_em(blobs, 2, covariance="full", random_seed=0)


def _reference_log_joint(res, X):
    """(N, K) log w_k + log N(x | mu_k, Sigma_k) from scipy, in log space."""
    return np.column_stack(
        [
            np.log(res.weights[k]) + multivariate_normal(res.means[k], res.covariances[k]).logpdf(X)
            for k in range(res.n_components)
        ]
    )


@pytest.mark.parametrize("sds", [1e1, 1e2, 1e3, 1e4])
def test_score_samples_far_from_every_component(fitted, sds):
    # points `sds` standard deviations (of the widest component) from every mean, in
    # several directions; exp(-sds^2 / 2) underflows to 0 from sds ~ 39 on, so a
    # density computed outside log space gives -inf / NaN there
    res = fitted
    sd = np.sqrt(np.linalg.eigvalsh(res.covariances).max())
    centre = res.means.mean(0)
    dirs = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, -0.8]])
    X = centre + sds * sd * dirs
    lj = _reference_log_joint(res, X)
    ref_ll = logsumexp(lj, axis=1)
    ref_p = np.exp(lj - ref_ll[:, None])
    got_ll = res.score_samples(X)
    got_p = res.predict_proba(X)
    assert np.isfinite(got_ll).all() and np.isfinite(got_p).all()
    # both are log-space computations of the same quantity in float64; relative
    # agreement 1e-9 leaves room for the different order of operations (the values
    # are as large as ~1e8 at 1e4 sd)
    np.testing.assert_allclose(got_ll, ref_ll, rtol=1e-9)
    # probabilities: absolute 1e-9 (they can be exactly 0/1 in both)
    np.testing.assert_allclose(got_p, ref_p, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got_p.sum(1), 1.0, rtol=0, atol=1e-12)
    # a point between the components is assigned to the closer one (here: by
    # Mahalanobis distance, as in the reference)
    np.testing.assert_array_equal(res.predict(X), np.argmax(lj, axis=1))


def test_fit_with_outlier_cluster_far_away_log_likelihood_matches_reference(blobs):
    # a second, legitimate cluster 1e3 sd away: the fitted total log-likelihood equals
    # the log-space reference at the fitted parameters (no underflow in the E-step)
    rng = np.random.default_rng(3)
    X = np.vstack([blobs[:30], rng.normal(size=(30, 2)) + 1e3])
    res = bm.fit_em(X, 2, covariance="full", random_seed=0)
    ref = logsumexp(_reference_log_joint(res, X), axis=1).sum()
    np.testing.assert_allclose(res.log_likelihood, ref, rtol=1e-10)
    assert res.converged


def test_convergence_warning_says_what_to_change(blobs):
    _, ws = _fit(bm.fit_em, blobs, 3, max_iter=1, tol=0.0, init="random", random_seed=0)
    msg = _messages(ws, ConvergenceWarning)
    assert "max_iter=1" in msg and "Increase max_iter" in msg


# ---------------------------------------------------------------- rank-deficient data
@pytest.mark.parametrize("covariance", COVARIANCES)
@pytest.mark.parametrize("K", [1, 2])
def test_fewer_distinct_points_than_features(covariance, K):
    # 3 distinct points repeated, in 5-D: the data covariance has rank 2. This used to
    # crash the collapse check with numpy's bare LinAlgError ("Matrix is not positive
    # definite"); it must give a finite fit and a collapse warning instead
    rng = np.random.default_rng(4)
    X = np.repeat(rng.normal(size=(3, 5)), 4, axis=0)
    res, ws = _fit(bm.fit_em, X, K, covariance=covariance, random_seed=0)
    _finite_em(res)
    if covariance in ("full", "tied") or K > 1:
        # a full/tied covariance is singular along the 3 directions the data do not
        # span (only reg_covar keeps it positive definite); with K=2 one component
        # holds a single distinct point. A one-component diag/spherical fit has
        # positive variances in every feature and is a legitimate fit.
        assert res.collapsed
        assert "collapsed" in _messages(ws)


def test_collinear_features_are_finite():
    # an exact linear combination of two features: a singular data covariance
    rng = np.random.default_rng(5)
    Z = np.concatenate([rng.normal(size=(40, 2)), rng.normal(size=(40, 2)) + 6.0])
    X = np.column_stack([Z, Z[:, 0] - 2.0 * Z[:, 1]])
    res, _ = _fit(bm.fit_em, X, 2, covariance="full", random_seed=0)
    _finite_em(res)
    assert np.isfinite(res.score_samples(X)).all()
