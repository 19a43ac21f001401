"""bayesmix.sklearn: scikit-learn's own estimator checks, and the estimators against
the functional API (same seed, same numbers), scikit-learn's GaussianMixture / KMeans
(same conventions: attribute shapes, densities, criteria) and scipy.

The BayesianGaussianMixture checks fit the PyMC model some 60 times (each check clones
and refits; a new data dimension compiles a new model): 7 minutes on this machine, so
they are marked slow. The default part fits it three times, on tiny settings.
"""

import pickle
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.cluster import KMeans as SkKMeans
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import bayesmix as bm
from bayesmix.sklearn import (
    BayesianGaussianMixture,
    GaussianMixture,
    KMeans,
    bic_scorer,
    expected_failed_checks,
)

TYPES = ["full", "tied", "diag", "spherical"]
#: tiny MCMC settings for the estimator checks (each check refits several times); VI is
#: the estimator's default, the finite mixture is what these MCMC tests fit
TINY = dict(
    inference="mcmc",
    weight_concentration_prior_type="dirichlet_distribution",
    draws=20,
    tune=20,
    chains=1,
)
MCMC = dict(inference="mcmc", weight_concentration_prior_type="dirichlet_distribution")


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas():
    # tiny data: multithreaded BLAS only adds overhead on a loaded 2-core machine
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def blobs():
    """Three well-separated clusters in 2-D, 150 points."""
    X, z = bm.simulate(
        150,
        [0.3, 0.3, 0.4],
        [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]],
        [[1.0, 0.5], [0.5, 1.0], [1.0, 1.0]],
        random_seed=3,
    )
    return X, z


# =========================================================================== estimator checks
@parametrize_with_checks(
    [
        KMeans(),
        KMeans(n_clusters=3, n_init=2, max_iter=30, tol=0.0),
        GaussianMixture(),
        *[GaussianMixture(n_components=2, covariance_type=t, max_iter=30) for t in TYPES],
        GaussianMixture(n_components=2, init_params="random_from_data", n_init=2),
        GaussianMixture(n_components=2, init_params="random", max_iter=20),
        BayesianGaussianMixture(),
        *[BayesianGaussianMixture(n_components=3, covariance_type=t) for t in TYPES],
        BayesianGaussianMixture(
            n_components=2,
            weight_concentration_prior_type="dirichlet_distribution",
            init_params="random_from_data",
            n_init=2,
        ),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_checks(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks(
    [BayesianGaussianMixture(**TINY)], expected_failed_checks=expected_failed_checks
)
def test_sklearn_checks_bayesian(estimator, check):
    check(estimator)


def test_expected_failures_only_sample_weight():
    """The only expected failures are KMeans' sample_weight checks, each with a reason."""
    assert expected_failed_checks(GaussianMixture()) == {}
    assert expected_failed_checks(BayesianGaussianMixture()) == {}
    km = expected_failed_checks(KMeans())
    assert km and all("sample_weight" in name for name in km)
    assert all(len(reason) > 40 for reason in km.values())


# =========================================================================== KMeans
def test_kmeans_equals_functional_api(blobs):
    X, _ = blobs
    est = KMeans(3, n_init=4, random_state=7).fit(X)
    res = bm.kmeans(X, 3, n_init=4, random_seed=7)
    np.testing.assert_array_equal(est.cluster_centers_, res.centers)
    np.testing.assert_array_equal(est.labels_, res.labels)
    assert est.inertia_ == res.inertia and est.n_iter_ == res.n_iter
    np.testing.assert_array_equal(est.predict(X), res.labels)


def test_kmeans_transform_score_as_sklearn(blobs):
    X, _ = blobs
    est = KMeans(3, random_state=0).fit(X)
    # transform: Euclidean (not squared) distances, as scikit-learn; reference scipy
    np.testing.assert_allclose(est.transform(X), cdist(X, est.cluster_centers_), rtol=1e-10)
    np.testing.assert_allclose(est.fit_transform(X), cdist(X, est.cluster_centers_), rtol=1e-10)
    assert est.score(X) == pytest.approx(-est.inertia_, rel=1e-10)
    sk = SkKMeans(3, n_init=10, random_state=0).fit(X)
    # same optimum on well-separated clusters (both k-means++ with 10 restarts)
    assert est.inertia_ == pytest.approx(sk.inertia_, rel=1e-8)
    assert sk.score(X) == pytest.approx(est.score(X), rel=1e-8)
    assert list(est.get_feature_names_out()) == ["kmeans0", "kmeans1", "kmeans2"]


def test_kmeans_sample_weight(blobs):
    X, _ = blobs
    est = KMeans(3, random_state=0).fit(X, sample_weight=np.ones(len(X)))
    assert est.cluster_centers_.shape == (3, 2)


# =========================================================================== GaussianMixture
@pytest.mark.parametrize("cov", TYPES)
def test_gaussian_mixture_equals_functional_api(blobs, cov):
    X, _ = blobs
    est = GaussianMixture(3, covariance_type=cov, n_init=2, random_state=5).fit(X)
    # init_params="kmeans" (scikit-learn's default) is fit_em's init="kmeans"
    em = bm.fit_em(
        X,
        3,
        covariance=cov,
        n_init=2,
        init="kmeans",
        tol=1e-3,
        max_iter=100,
        reg_covar=1e-6,
        random_seed=5,
    )
    np.testing.assert_array_equal(est.weights_, em.weights)
    np.testing.assert_array_equal(est.means_, em.means)
    np.testing.assert_array_equal(est.em_result_.covariances, em.covariances)
    assert est.n_iter_ == em.n_iter and est.converged_ == em.converged
    np.testing.assert_array_equal(est.predict(X), em.predict(X))
    np.testing.assert_array_equal(est.fit_predict(X), em.labels)
    # ML: lower_bound_ is the mean log-likelihood of the returned parameters (sklearn)
    assert est.lower_bound_ == pytest.approx(est.score(X), rel=1e-12)
    assert est.bic(X) == em.bic(X) and est.aic(X) == em.aic(X) and est.icl(X) == em.icl(X)


def test_gaussian_mixture_map_equals_functional_api(blobs):
    X, _ = blobs
    prior = bm.GMMPrior.from_data(X, 3)
    est = GaussianMixture(3, prior=prior, reg_covar=0.0, random_state=1).fit(X)
    em = bm.fit_em(X, 3, prior=prior, init="kmeans", tol=1e-3, max_iter=100, random_seed=1)
    assert em.log_posterior is not None
    np.testing.assert_array_equal(est.means_, em.means)
    np.testing.assert_array_equal(est.covariances_, em.covariances)
    assert est.lower_bound_ == pytest.approx(em.log_posterior / X.shape[0], rel=1e-12)


@pytest.mark.parametrize("cov", TYPES)
def test_gaussian_mixture_conventions_match_sklearn(blobs, cov):
    """scikit-learn's GaussianMixture given our fitted parameters computes the same
    densities, memberships and criteria: shapes and conventions are scikit-learn's."""
    X, _ = blobs
    est = GaussianMixture(3, covariance_type=cov, random_state=0).fit(X)
    sk = SkGaussianMixture(3, covariance_type=cov)
    sk.weights_, sk.means_ = est.weights_, est.means_
    sk.covariances_, sk.precisions_cholesky_ = est.covariances_, est.precisions_cholesky_
    sk.precisions_ = est.precisions_
    sk.converged_, sk.n_iter_, sk.lower_bound_ = True, 1, 0.0
    sk.n_features_in_ = 2
    np.testing.assert_allclose(est.score_samples(X), sk.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(est.predict_proba(X), sk.predict_proba(X), atol=1e-12)
    assert est.bic(X) == pytest.approx(sk.bic(X), rel=1e-10)
    assert est.aic(X) == pytest.approx(sk.aic(X), rel=1e-10)
    # precisions_cholesky_ is the factor of precisions_ (P P^T), precisions_ inverts cov
    P = est.precisions_cholesky_
    if cov in ("full", "tied"):
        np.testing.assert_allclose(P @ np.swapaxes(P, -1, -2), est.precisions_, rtol=1e-10)
        np.testing.assert_allclose(
            est.precisions_ @ est.covariances_, np.broadcast_to(np.eye(2), P.shape), atol=1e-10
        )
    else:
        np.testing.assert_allclose(P**2, est.precisions_, rtol=1e-12)
        np.testing.assert_allclose(est.precisions_ * est.covariances_, 1.0, rtol=1e-12)


def test_gaussian_mixture_fit_like_sklearn(blobs):
    """Same optimum as scikit-learn's fit on well-separated data (both from k-means)."""
    X, _ = blobs
    est = GaussianMixture(3, tol=1e-8, max_iter=500, random_state=0).fit(X)
    sk = SkGaussianMixture(3, tol=1e-8, max_iter=500, random_state=0).fit(X)
    order_est, order_sk = (
        np.argsort(est.means_[:, 0] + 2 * est.means_[:, 1]),
        np.argsort(sk.means_[:, 0] + 2 * sk.means_[:, 1]),
    )
    # both converge to the same local optimum; 1e-8 per-sample tolerance leaves
    # parameter differences far below 1e-4
    np.testing.assert_allclose(est.means_[order_est], sk.means_[order_sk], atol=1e-4)
    np.testing.assert_allclose(est.weights_[order_est], sk.weights_[order_sk], atol=1e-4)
    assert est.score(X) == pytest.approx(sk.score(X), abs=1e-7)


def test_gaussian_mixture_sample(blobs):
    X, _ = blobs
    est = GaussianMixture(3, random_state=0).fit(X)
    Xs, ys = est.sample(3000)
    assert Xs.shape == (3000, 2) and ys.shape == (3000,)
    np.testing.assert_array_equal(ys, np.sort(ys))  # grouped by component, as scikit-learn
    Xs2, _ = est.sample(3000)
    np.testing.assert_array_equal(Xs, Xs2)  # an int random_state: reproducible
    # component frequencies: binomial sd <= sqrt(.25 / 3000) = 0.009; 5 sd = 0.046
    np.testing.assert_allclose(np.bincount(ys, minlength=3) / 3000, est.weights_, atol=0.046)
    # mixture mean: per-coordinate sd of the sample mean < sqrt(max var / 3000) ~ 0.07
    # (the mixture variance is below 12 here); 5 sd
    mix_mean = est.weights_ @ est.means_
    np.testing.assert_allclose(Xs.mean(0), mix_mean, atol=0.35)
    with pytest.raises(ValueError, match="n_samples"):
        est.sample(0)


# =========================================================================== API plumbing
def test_clone_params_pickle(blobs):
    X, _ = blobs
    prior = bm.GMMPrior.from_data(X, 2)
    est = GaussianMixture(2, covariance_type="diag", prior=prior, random_state=0)
    params = est.get_params()
    assert params["prior"] is prior and params["covariance_type"] == "diag"
    c = clone(est).set_params(n_components=3)
    assert c.n_components == 3 and est.n_components == 2
    est.fit(X)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    km = KMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(km)).transform(X), km.transform(X))


def test_pipeline_and_grid_search_with_bic(blobs):
    X, _ = blobs
    pipe = make_pipeline(StandardScaler(), GaussianMixture(2, random_state=0))
    labels = pipe.fit(X).predict(X)
    assert labels.shape == (150,)
    Z = pipe[0].transform(X)
    assert bic_scorer(pipe, X) == -pipe[-1].bic(Z)
    grid = GridSearchCV(
        GaussianMixture(random_state=0),
        {"n_components": [1, 2, 3, 4], "covariance_type": ["full", "spherical"]},
        scoring=bic_scorer,
        cv=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 4-component fit on 75 points may warn
        grid.fit(X)
    # three well-separated clusters: BIC picks K = 3
    assert grid.best_params_["n_components"] == 3
    grid_pipe = GridSearchCV(
        pipe, {"gaussianmixture__n_components": [1, 3]}, scoring=bic_scorer, cv=2
    ).fit(X)
    assert grid_pipe.best_params_["gaussianmixture__n_components"] == 3
    with pytest.raises(TypeError, match="bic"):
        bic_scorer(StandardScaler().fit(X), X)


def test_no_copy_beyond_validation(blobs, monkeypatch):
    """A C-contiguous float64 array reaches fit_em / kmeans as the same object."""
    X, _ = blobs
    X = np.ascontiguousarray(X, dtype=np.float64)
    seen = {}
    import bayesmix.cluster._kmeans
    import bayesmix.em._fit

    for mod, name in ((bayesmix.em._fit, "fit_em"), (bayesmix.cluster._kmeans, "kmeans")):
        real = getattr(mod, name)

        def spy(data, *args, _real=real, _name=name, **kwargs):
            seen.setdefault(_name, data)  # the first call (fit_em's k-means start comes later)
            return _real(data, *args, **kwargs)

        monkeypatch.setattr(mod, name, spy)
    GaussianMixture(2, random_state=0).fit(X)
    assert seen["fit_em"] is X
    seen.clear()
    KMeans(2, n_init=1, random_state=0).fit(X)
    assert seen["kmeans"] is X


def test_bad_input_messages(blobs):
    X, _ = blobs
    import scipy.sparse as sp

    gm = GaussianMixture(2, random_state=0)
    Xn = X.copy()
    Xn[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        gm.fit(Xn)
    with pytest.raises(TypeError, match=r"[Ss]parse"):
        gm.fit(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="0 sample"):
        gm.fit(np.empty((0, 2)))
    gm.fit(X)
    with pytest.raises(ValueError, match="X has 1 features, but GaussianMixture is expecting 2"):
        gm.predict(X[:, :1])
    # bayesmix's own argument checks, naming the parameter, at fit time
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        GaussianMixture(2, covariance_type="bogus").fit(X)
    with pytest.raises(ValueError, match=r"n_components must be .*>= 1"):
        GaussianMixture(0).fit(X)
    with pytest.raises(ValueError, match="init_params must be one of"):
        GaussianMixture(2, init_params="bogus").fit(X)
    with pytest.raises(TypeError, match="random_state"):
        GaussianMixture(2, random_state="seed").fit(X)
    with pytest.raises(ValueError, match="n_clusters=200 is larger than the number of obs"):
        KMeans(200).fit(X)
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        BayesianGaussianMixture(2, covariance_type="bogus").fit(X)


def test_missing_values_allowed(blobs):
    """NaN entries are missing values: the estimators fit them as bayesmix does."""
    X, _ = blobs
    Xn = X.copy()
    Xn[::7, 1] = np.nan
    assert GaussianMixture().__sklearn_tags__().input_tags.allow_nan
    assert KMeans().__sklearn_tags__().input_tags.allow_nan
    gm = GaussianMixture(2, random_state=0).fit(Xn)
    assert gm.em_result_.n_missing == int(np.isnan(Xn).sum())
    np.testing.assert_allclose(gm.score_samples(Xn), gm.em_result_.score_samples(Xn))
    assert np.isfinite(gm.score(Xn)) and gm.predict_proba(Xn).shape == (X.shape[0], 2)
    km = KMeans(2, random_state=0).fit(Xn)
    np.testing.assert_array_equal(km.predict(Xn), km.labels_)
    with pytest.raises(ValueError, match="NaN"):
        BayesianGaussianMixture(2).fit(Xn)


def test_feature_names(blobs):
    pd = pytest.importorskip("pandas")
    X, _ = blobs
    df = pd.DataFrame(X, columns=["a", "b"])
    gm = GaussianMixture(2, random_state=0).fit(df)
    np.testing.assert_array_equal(gm.feature_names_in_, ["a", "b"])
    with pytest.warns(UserWarning, match="feature names"):
        gm.predict(X)


# =========================================================================== Bayesian
@pytest.fixture(scope="module")
def bayes_fit(blobs):
    """The estimator and the functional API from one seed; tiny but two chains."""
    X, _ = blobs
    kw = dict(draws=40, tune=40, chains=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2 x 40 draws: ESS/R-hat warnings are expected
        est = BayesianGaussianMixture(3, covariance_type="diag", random_state=11, **kw, **MCMC).fit(
            X
        )
        model = bm.build_gmm(X, 3, covariance="diag")
        em = bm.fit_em(X, 3, covariance="diag", prior=model.bayesmix_config.prior, random_seed=11)
        idata = bm.sample(model, init=em, random_seed=11, progressbar=False, **kw)
        rel = bm.relabel(idata, reference=em)
    return X, est, em, rel


def test_bayesian_equals_functional_api(bayes_fit):
    _, est, em, rel = bayes_fit
    np.testing.assert_array_equal(est.em_result_.means, em.means)
    for var in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(est.idata_["posterior"][var].values, rel["posterior"][var])
    assert est.idata_.attrs["relabelled"] == 1
    np.testing.assert_allclose(est.weights_, rel["posterior"]["weights"].mean(("chain", "draw")))
    assert est.covariances_.shape == (3, 2)  # scikit-learn's diag shape


def test_bayesian_predictions(bayes_fit):
    X, est, _, rel = bayes_fit
    memb = bm.membership(rel)
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba, memb["probability"].values, rtol=1e-12, atol=1e-15)
    lower, upper = est.predict_proba_interval(X, prob=0.9)
    memb90 = bm.membership(rel, prob=0.9)
    np.testing.assert_allclose(lower, memb90["probability_lower"].values, atol=1e-15)
    np.testing.assert_allclose(upper, memb90["probability_upper"].values, atol=1e-15)
    # (the mean of a skewed probability may fall outside its 90% equal-tailed interval)
    assert np.all(0 <= lower) and np.all(lower <= upper) and np.all(upper <= 1)
    np.testing.assert_array_equal(est.predict(X), proba.argmax(1))
    # posterior predictive density of the training points from the stored pointwise
    # log-likelihood (an independent computation: sampling's own log_likelihood group)
    ll = rel["log_likelihood"]["X"].transpose("chain", "draw", "obs").values
    ll = ll.reshape(-1, ll.shape[-1])
    ref = logsumexp(ll, axis=0) - np.log(ll.shape[0])
    np.testing.assert_allclose(est.score_samples(X), ref, rtol=1e-10)
    assert est.score(X) == pytest.approx(ref.mean(), rel=1e-10)
    # new data: row-wise, so a subset gives the same rows
    np.testing.assert_allclose(est.predict_proba(X[:7]), proba[:7], rtol=1e-12)
    with pytest.raises(ValueError, match="prob"):
        est.predict_proba_interval(X, prob=1.5)


def test_bayesian_pickle_clone(bayes_fit):
    X, est, _, _ = bayes_fit
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict_proba(X[:10]), est.predict_proba(X[:10]))
    assert clone(est).get_params() == est.get_params()
    assert not hasattr(clone(est), "idata_")


def test_bayesian_sampler_passthrough(blobs, monkeypatch):
    """``sampler`` reaches bm.sample."""
    X, _ = blobs
    calls = []

    def fake_sample(model, *, sampler=None, **kwargs):  # a sample() with a sampler argument
        calls.append(sampler)
        raise RuntimeError("stop")

    monkeypatch.setattr(bm, "sample", fake_sample)
    with pytest.raises(RuntimeError, match="stop"):
        BayesianGaussianMixture(2, sampler="gibbs", **TINY).fit(X)
    assert calls == ["gibbs"]


@pytest.mark.slow
def test_bayesian_dirichlet_process(blobs):
    X, _ = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = BayesianGaussianMixture(truncation=6, random_state=0, **TINY).fit(X)
    assert est.idata_.attrs["model"] == "dpgmm" and est.em_result_ is None
    proba = est.predict_proba(X)
    assert proba.shape == (150, 6)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    assert np.isfinite(est.score_samples(X)).all()


def test_sklearn_imported_only_with_the_module():
    """``import bayesmix`` and its numpy layer never import scikit-learn."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, warnings, numpy as np, bayesmix as bm\n"
        "warnings.simplefilter('ignore')\n"
        "X = np.random.default_rng(0).normal(size=(40, 2))\n"
        "bm.fit_em(X, 2); bm.kmeans(X, 2)\n"
        "assert 'sklearn' not in sys.modules and 'sklearn' not in dir(bm)\n"
        "import bayesmix.sklearn\n"
        "assert 'sklearn' in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
