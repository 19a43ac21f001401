"""Mean-field variational inference, ``bm.fit_vi``: the ELBO (monotone, and equal to an
independent Monte-Carlo estimate), agreement with scikit-learn's
``BayesianGaussianMixture`` step by step from the same responsibilities, the posterior
predictive density, and input errors.

scikit-learn is a test reference only (the package never imports it).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import digamma, logsumexp

import bayesmix as bm
from bayesmix.core._validation import MissingValueError

sklearn_mixture = pytest.importorskip("sklearn.mixture")

COVS = ("full", "tied", "diag", "spherical")
#: short runs on purpose (max_iter=1, tol=0) warn that they stopped at max_iter
pytestmark = pytest.mark.filterwarnings("ignore::bayesmix.ConvergenceWarning")


def _blobs(seed, n=(60, 50, 40), D=2, spread=3.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(len(n), D))
    X = np.vstack(
        [
            rng.normal(size=(m, D)) * rng.uniform(0.5, 1.5, D) + c
            for m, c in zip(n, centres, strict=True)
        ]
    )
    return X, rng


# =========================================================================== the ELBO
@pytest.mark.parametrize("covariance", COVS)
@pytest.mark.parametrize(
    "kw",
    [
        dict(n_components=3),
        dict(n_components=5, init="random"),
        dict(truncation=8),
        dict(truncation=6, dp_concentration=0.5),
    ],
    ids=["finite", "finite-random", "dp", "dp-fixed-alpha"],
)
def test_elbo_never_decreases(covariance, kw):
    # every CAVI update maximises the ELBO in one block of q, so the history is
    # non-decreasing; 1e-9 relative allows the rounding of sums of ~1e3 (about 1e-13)
    for seed in range(4):
        X, _ = _blobs(seed, D=3)
        fit = bm.fit_vi(X, covariance=covariance, random_seed=seed, tol=1e-10, max_iter=300, **kw)
        h = np.asarray(fit.elbo_history)
        assert h.size == fit.n_iter and fit.elbo == h[-1]
        assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:])), (seed, np.diff(h).min())
        assert h.size > 3  # the check saw several updates


def test_elbo_never_decreases_with_sample_weight():
    X, rng = _blobs(5)
    w = rng.integers(0, 4, size=X.shape[0]).astype(float)
    fit = bm.fit_vi(X, 3, sample_weight=w, random_seed=0, tol=1e-10, max_iter=200)
    h = np.asarray(fit.elbo_history)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))


def _draw_q(fit, S, rng):
    """S draws of (weights, means, covariances) from the variational posterior, with
    log q(theta) from scipy.stats and log p(theta) from GMMPrior.log_prior / scipy."""
    K, D = fit.means.shape
    cov = fit.covariance
    beta, nu, psi, m = fit.mean_precision, fit.degrees_of_freedom, fit.scale, fit.means
    prior = fit.prior
    means = np.empty((S, K, D))
    covs = np.zeros((S, K, D, D))
    logq = np.zeros(S)
    for k in range(K):
        if cov == "tied" and k > 0:
            Sig = covs[:, 0]  # one Sigma for every component; its density counted once
        elif cov == "tied":
            iw = stats.invwishart(df=nu[0], scale=psi)
            Sig = iw.rvs(size=S, random_state=rng).reshape(S, D, D)
            logq += iw.logpdf(np.moveaxis(Sig, 0, -1))
        elif cov == "full":
            iw = stats.invwishart(df=nu[k], scale=psi[k])
            Sig = iw.rvs(size=S, random_state=rng).reshape(S, D, D)
            logq += iw.logpdf(np.moveaxis(Sig, 0, -1))
        else:
            b = psi[k] if cov == "diag" else np.full(1, psi[k])
            var = stats.invgamma(a=nu[k] / 2, scale=b / 2).rvs(size=(S, b.size), random_state=rng)
            logq += stats.invgamma(a=nu[k] / 2, scale=b / 2).logpdf(var).sum(1)
            var = np.broadcast_to(var, (S, D))
            Sig = np.zeros((S, D, D))
            Sig[:, np.arange(D), np.arange(D)] = var
        covs[:, k] = Sig
        L = np.linalg.cholesky(Sig / beta[k])
        z = rng.normal(size=(S, D))
        means[:, k] = m[k] + np.einsum("sij,sj->si", L, z)
        dev = np.linalg.solve(L, (means[:, k] - m[k])[..., None])[..., 0]
        logq += -0.5 * (dev**2).sum(1) - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
        logq -= 0.5 * D * np.log(2 * np.pi)
    # weights
    if fit.truncation is None:
        dr = stats.dirichlet(fit.weight_concentration)
        weights = dr.rvs(size=S, random_state=rng)
        weights = np.clip(weights, 1e-300, None)
        logq += dr.logpdf(weights.T)
        logp = stats.dirichlet(np.full(K, prior.weight_concentration)).logpdf(weights.T)
    else:
        g = fit.weight_concentration
        v = stats.beta(g[:, 0], g[:, 1]).rvs(size=(S, K - 1), random_state=rng)
        logq += stats.beta(g[:, 0], g[:, 1]).logpdf(v).sum(1)
        kind = fit.dp_concentration[0]
        if kind == "fixed":
            alpha = np.full(S, fit.dp_concentration[1])
            logp = np.zeros(S)
        else:
            _, a, b = fit.dp_concentration
            alpha = stats.gamma(a, scale=1 / b).rvs(size=S, random_state=rng)
            logq += stats.gamma(a, scale=1 / b).logpdf(alpha)
            s1, s2 = prior.dp_concentration
            logp = stats.gamma(s1, scale=1 / s2).logpdf(alpha)
        logp = logp + stats.beta(1.0, alpha[:, None]).logpdf(v).sum(1)
        vv = np.concatenate([v, np.ones((S, 1))], 1)
        weights = vv * np.concatenate([np.ones((S, 1)), np.cumprod(1 - v, 1)], 1)
    if cov == "tied":  # one inverse-Wishart, K normals given it (scipy.stats)
        logp += stats.invwishart(df=prior.dof, scale=prior.scale).logpdf(
            np.moveaxis(covs[:, 0], 0, -1)
        )
        for k in range(K):
            L = np.linalg.cholesky(covs[:, 0] / prior.mean_shrinkage)
            z = np.linalg.solve(L, (means[:, k] - prior.mean)[..., None])[..., 0]
            logp += -0.5 * (z**2).sum(1) - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
            logp -= 0.5 * D * np.log(2 * np.pi)
        return weights, means, covs, logq, logp
    for s in range(S):  # the normal-inverse-Wishart/-gamma part, closed form, per component
        logp[s] += sum(
            prior.log_prior(np.ones(1), means[s, k : k + 1], covs[s, k : k + 1], cov)
            for k in range(K)
        )
    return weights, means, covs, logq, logp


@pytest.mark.parametrize(
    "covariance,kw",
    [
        ("full", dict(n_components=2)),
        ("diag", dict(n_components=2)),
        ("spherical", dict(n_components=3)),
        ("tied", dict(n_components=3)),
        ("tied", dict(truncation=3)),
        ("full", dict(truncation=3)),
        ("diag", dict(truncation=3, dp_concentration=0.8)),
    ],
)
def test_elbo_equals_monte_carlo(covariance, kw):
    # ELBO = E_q[log p(X, z, theta) - log q(z) - log q(theta)], here by Monte Carlo over
    # q(theta) (scipy.stats draws and densities, GMMPrior.log_prior for the prior) with
    # the sum over z exact (q(z) = predict_proba on the training data). Tiny data, so the
    # estimate's standard error is ~0.01-0.05; the check is 4 standard errors
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(8, 2)), rng.normal(size=(7, 2)) + 3.0])
    fit = bm.fit_vi(X, covariance=covariance, random_seed=0, max_iter=3, tol=0.0, **kw)
    r = fit.predict_proba(X)
    S = 4000
    weights, means, covs, logq, logp = _draw_q(fit, S, rng)
    K = r.shape[1]
    lj = np.zeros((S, X.shape[0], K))
    for k in range(K):
        L = np.linalg.cholesky(covs[:, k])
        dev = X[None] - means[:, k, None, :]
        z = np.linalg.solve(L[:, None], dev[..., None])[..., 0]
        lj[:, :, k] = (
            -0.5 * (z**2).sum(-1)
            - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)[:, None]
            - np.log(2 * np.pi)
            + np.log(weights[:, k])[:, None]
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy_z = -np.nansum(r * np.log(r))
    vals = (r[None] * lj).sum((1, 2)) + logp - logq + entropy_z
    est, se = vals.mean(), vals.std(ddof=1) / np.sqrt(S)
    assert se < 0.1
    assert abs(est - fit.elbo) < 4 * se, (est, se, fit.elbo)


def test_tied_with_one_component_is_full():
    X, _ = _blobs(12)
    a = bm.fit_vi(X, 1, covariance="tied", tol=1e-12)
    b = bm.fit_vi(X, 1, covariance="full", tol=1e-12)
    np.testing.assert_allclose(a.elbo_history, b.elbo_history, rtol=1e-12)
    np.testing.assert_allclose(a.scale, b.scale[0], rtol=1e-12)


def test_elbo_below_log_evidence_k1():
    # K = 1: the exact log evidence is a normal-inverse-Wishart marginal likelihood in
    # closed form; the mean-field ELBO is below it, and close to it for 400 rows
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)) @ np.array([[1.0, 0.4], [0.0, 0.7]]) + 2.0
    prior = bm.GMMPrior.from_data(X, 1)
    fit = bm.fit_vi(X, 1, prior=prior, random_seed=0, tol=1e-12)
    N, D = X.shape
    k0, nu0, m0, P0 = prior.mean_shrinkage, prior.dof, prior.mean, prior.scale
    xb = X.mean(0)
    S = (X - xb).T @ (X - xb)
    kn, nun = k0 + N, nu0 + N
    Pn = P0 + S + k0 * N / kn * np.outer(xb - m0, xb - m0)
    from scipy.special import multigammaln

    log_ev = (
        -0.5 * N * D * np.log(np.pi)
        + multigammaln(nun / 2, D)
        - multigammaln(nu0 / 2, D)
        + 0.5 * nu0 * np.linalg.slogdet(P0)[1]
        - 0.5 * nun * np.linalg.slogdet(Pn)[1]
        + 0.5 * D * np.log(k0 / kn)
    )
    # mean field splits mu from Sigma; for K = 1 the only gap is that, and it is small
    assert fit.elbo <= log_ev + 1e-9
    assert log_ev - fit.elbo < 0.5
    # with K = 1 the variational posterior is the exact NIW posterior's parameters
    np.testing.assert_allclose(fit.scale[0], Pn, rtol=1e-10)
    np.testing.assert_allclose(fit.means[0], (k0 * m0 + N * xb) / kn, rtol=1e-12)


# =========================================================================== scikit-learn
def _sk_steps(X, resp, prior, kind, n_updates, covariance="full", alpha=None, cls=None, reg=0.0):
    """scikit-learn's VI from a fixed responsibility matrix: its _initialize (an
    M-step) then (E-step, M-step) pairs, so that ``n_updates`` M-steps ran."""
    cls = cls or sklearn_mixture.BayesianGaussianMixture
    g = cls(
        n_components=resp.shape[1],
        covariance_type=covariance,
        weight_concentration_prior_type=kind,
        weight_concentration_prior=prior.weight_concentration if alpha is None else alpha,
        mean_precision_prior=prior.mean_shrinkage,
        mean_prior=prior.mean,
        degrees_of_freedom_prior=prior.dof,
        covariance_prior=prior.scale,
        reg_covar=reg,
    )
    g._check_parameters(X)
    g._initialize(X, resp)
    for _ in range(n_updates - 1):
        _, log_resp = g._e_step(X)
        g._m_step(X, log_resp)
    g._set_parameters(g._get_parameters())  # weights_, precisions_ as fit() leaves them
    return g


class _SticksToOne(sklearn_mixture.BayesianGaussianMixture):
    """scikit-learn's DP with the last stick set to 1 (Blei & Jordan's truncation, as
    bayesmix; scikit-learn gives it a Beta distribution and leaves the rest of the stick
    to no component)."""

    def _estimate_log_weights(self, xp=None):
        a, b = self.weight_concentration_
        s = digamma(a + b)
        ea, eb = digamma(a) - s, digamma(b) - s
        ea[-1] = 0.0
        return ea + np.hstack((0, np.cumsum(eb)[:-1]))


@pytest.fixture(scope="module")
def sk_case():
    X, rng = _blobs(0, n=(100, 80, 60))
    K = 4
    resp = rng.dirichlet(np.ones(K), size=X.shape[0])
    prior = bm.GMMPrior.from_data(X, K, weight_concentration=0.7, mean_shrinkage=0.5)
    return X, resp, prior


def _assert_same_as_sklearn(fit, g, X, finite=True):
    # agreement to rounding: both compute the same arithmetic in float64 (1e-9 relative
    # leaves room for the different order of the sums over 240 rows and 30 iterations)
    np.testing.assert_allclose(fit.means, g.means_, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(fit.mean_precision, g.mean_precision_, rtol=1e-10)
    np.testing.assert_allclose(fit.degrees_of_freedom, g.degrees_of_freedom_, rtol=1e-10)
    np.testing.assert_allclose(
        fit.scale, g.covariances_ * g.degrees_of_freedom_[:, None, None], rtol=1e-9
    )
    np.testing.assert_allclose(fit.precisions, g.precisions_, rtol=1e-8)
    conc = g.weight_concentration_ if finite else np.array(g.weight_concentration_).T[:-1]
    np.testing.assert_allclose(fit.weight_concentration, conc, rtol=1e-9)
    np.testing.assert_allclose(fit.predict_proba(X), g.predict_proba(X), atol=1e-10)
    if finite:
        np.testing.assert_allclose(fit.weights, g.weights_, rtol=1e-9)
    # our covariances are the posterior means; scikit-learn's are E[Lambda]^-1
    D = X.shape[1]
    np.testing.assert_allclose(
        fit.covariances,
        g.covariances_ * (g.degrees_of_freedom_ / (g.degrees_of_freedom_ - D - 1))[:, None, None],
        rtol=1e-9,
    )


@pytest.mark.parametrize("n_updates", [1, 2, 30])
def test_finite_full_matches_sklearn_step_by_step(sk_case, n_updates):
    X, resp, prior = sk_case
    fit = bm.fit_vi(X, resp.shape[1], prior=prior, init=resp, max_iter=n_updates, tol=0.0)
    g = _sk_steps(X, resp, prior, "dirichlet_distribution", n_updates)
    _assert_same_as_sklearn(fit, g, X)


def test_reg_covar_matches_sklearn(sk_case):
    # scikit-learn's default reg_covar=1e-6: N_k * reg_covar on the scatter's diagonal
    X, resp, prior = sk_case
    fit = bm.fit_vi(X, 4, prior=prior, init=resp, max_iter=10, tol=0.0, reg_covar=1e-6)
    g = _sk_steps(X, resp, prior, "dirichlet_distribution", 10, reg=1e-6)
    _assert_same_as_sklearn(fit, g, X)
    exact = bm.fit_vi(X, 4, prior=prior, init=resp, max_iter=10, tol=0.0)
    assert np.abs(exact.scale - fit.scale).max() > 1e-5  # the check sees reg_covar


@pytest.mark.parametrize("n_updates", [1, 2, 30])
def test_dp_full_matches_sklearn_step_by_step(sk_case, n_updates):
    # scikit-learn's DP with the last stick at 1 (the same truncated model) and a fixed
    # concentration: dp_concentration
    X, resp, prior = sk_case
    fit = bm.fit_vi(
        X,
        truncation=resp.shape[1],
        prior=prior,
        init=resp,
        max_iter=n_updates,
        tol=0.0,
        dp_concentration=0.7,
    )
    g = _sk_steps(X, resp, prior, "dirichlet_process", n_updates, alpha=0.7, cls=_SticksToOne)
    _assert_same_as_sklearn(fit, g, X, finite=False)


def test_dp_last_stick_is_where_sklearn_differs(sk_case):
    # the check above can fail: scikit-learn's own DP (last stick Beta) moves away
    X, resp, prior = sk_case
    fit = bm.fit_vi(
        X, truncation=4, prior=prior, init=resp, max_iter=5, tol=0.0, dp_concentration=0.7
    )
    g = _sk_steps(X, resp, prior, "dirichlet_process", 5, alpha=0.7)
    assert np.abs(fit.predict_proba(X) - g.predict_proba(X)).max() > 1e-4


def test_converged_fit_matches_sklearn_fit():
    # well-separated data, both from their own k-means start: the same optimum
    X, _ = _blobs(2, n=(150, 120, 100), spread=6.0)
    K = 3
    prior = bm.GMMPrior.from_data(X, K)
    fit = bm.fit_vi(X, K, prior=prior, random_seed=0, tol=1e-10)
    g = sklearn_mixture.BayesianGaussianMixture(
        n_components=K,
        weight_concentration_prior_type="dirichlet_distribution",
        weight_concentration_prior=1.0,
        mean_precision_prior=prior.mean_shrinkage,
        mean_prior=prior.mean,
        degrees_of_freedom_prior=prior.dof,
        covariance_prior=prior.scale,
        reg_covar=0.0,
        tol=1e-10,
        max_iter=1000,
        random_state=0,
    ).fit(X)
    order = np.argsort(fit.means[:, 0])
    sk_order = np.argsort(g.means_[:, 0])
    # both stop at a tolerance of 1e-10 per row on the ELBO: parameters agree to ~1e-6
    np.testing.assert_allclose(fit.means[order], g.means_[sk_order], atol=1e-6)
    np.testing.assert_allclose(fit.weights[order], g.weights_[sk_order], atol=1e-7)
    np.testing.assert_allclose(fit.precisions[order], g.precisions_[sk_order], rtol=1e-5)
    # scikit-learn's score_samples is our "expected" kind
    np.testing.assert_allclose(fit.score_samples(X, "expected"), g.score_samples(X), atol=1e-6)


def test_one_feature_full_diag_spherical_agree():
    # with D = 1 the three families are the same model (Wishart = Gamma, nu0 + D N_k)
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(size=80), rng.normal(size=60) * 0.5 + 4])[:, None]
    fits = [
        bm.fit_vi(X, 2, covariance=c, random_seed=0, tol=1e-12)
        for c in ("full", "diag", "spherical")
    ]
    for f in fits[1:]:
        np.testing.assert_allclose(f.elbo_history, fits[0].elbo_history, rtol=1e-12)
        np.testing.assert_allclose(f.covariances, fits[0].covariances, rtol=1e-10)
        np.testing.assert_allclose(f.score_samples(X), fits[0].score_samples(X), rtol=1e-10)


# =========================================================================== prediction
@pytest.mark.parametrize("covariance", COVS)
def test_predict_proba_rows_sum_to_one_and_labels(covariance):
    X, _ = _blobs(4)
    fit = bm.fit_vi(X, truncation=6, covariance=covariance, random_seed=0)
    p = fit.predict_proba(X)
    assert p.shape == (X.shape[0], 6)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(fit.predict(X), p.argmax(1))
    np.testing.assert_array_equal(fit.labels, fit.predict(X))
    np.testing.assert_allclose(fit.weights.sum(), 1.0, atol=1e-12)


def test_predictive_density_integrates_to_one_in_1d():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(size=40), rng.normal(size=30) * 0.3 + 3])[:, None]
    fit = bm.fit_vi(X, 3, random_seed=0)
    grid = np.linspace(-60, 60, 400_001)[:, None]
    dens = np.exp(fit.score_samples(grid))
    # trapezoid rule on a fine grid; the t tails beyond +-60 hold < 1e-6 of the mass
    assert abs(np.trapezoid(dens, grid[:, 0]) - 1.0) < 1e-5


@pytest.mark.parametrize("covariance", COVS)
def test_predictive_density_is_the_mean_density_under_q(covariance):
    # posterior predictive = E_q[sum_k pi_k N(x | mu_k, Sigma_k)]: Monte Carlo over q
    # (scipy.stats draws); 20,000 draws give ~1 % relative error, checked at 5 %
    X, rng = _blobs(6, n=(30, 25))
    fit = bm.fit_vi(X, 2, covariance=covariance, random_seed=0)
    weights, means, covs, _, _ = _draw_q(fit, 20_000, rng)
    pts = X[:4] + 0.5
    mc = np.zeros(len(pts))
    for k in range(2):
        for i, x in enumerate(pts):
            L = np.linalg.cholesky(covs[:, k])
            z = np.linalg.solve(L, (x - means[:, k])[..., None])[..., 0]
            ld = np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
            mc[i] += np.mean(weights[:, k] * np.exp(-0.5 * (z**2).sum(1) - ld - np.log(2 * np.pi)))
    np.testing.assert_allclose(np.exp(fit.score_samples(pts)), mc, rtol=0.05)
    assert np.all(fit.score_samples(pts, "expected") < fit.score_samples(pts))


def test_plugin_score_uses_the_attributes():
    X, _ = _blobs(7)
    fit = bm.fit_vi(X, 3, random_seed=0)
    ref = logsumexp(
        [
            np.log(w) + stats.multivariate_normal(m, c).logpdf(X)
            for w, m, c in zip(fit.weights, fit.means, fit.covariances, strict=True)
        ],
        axis=0,
    )
    np.testing.assert_allclose(fit.score_samples(X, "plugin"), ref, rtol=1e-10)


def test_sample_weight_equals_duplicated_rows():
    X, rng = _blobs(8)
    w = rng.integers(1, 4, size=X.shape[0])
    resp = rng.dirichlet(np.ones(3), size=X.shape[0])
    a = bm.fit_vi(X, 3, init=resp, sample_weight=w.astype(float), max_iter=20, tol=0.0)
    b = bm.fit_vi(
        np.repeat(X, w, 0), 3, init=np.repeat(resp, w, 0), max_iter=20, tol=0.0, prior=a.prior
    )
    np.testing.assert_allclose(a.elbo_history, b.elbo_history, rtol=1e-10)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-10)


def test_numba_engine_matches_numpy():
    X, _ = _blobs(9)
    a = bm.fit_vi(X, 3, random_seed=0, engine="numpy", max_iter=25, tol=0.0)
    b = bm.fit_vi(X, 3, random_seed=0, engine="numba", max_iter=25, tol=0.0)
    np.testing.assert_allclose(a.elbo_history, b.elbo_history, rtol=1e-10)
    np.testing.assert_allclose(a.covariances, b.covariances, rtol=1e-8)


def test_dp_finds_two_components_in_old_faithful():
    X = bm.load_old_faithful()
    fit = bm.fit_vi(X, truncation=10, random_seed=0)
    big = np.sort(fit.weights[fit.weights > 0.05])
    # two components carry the mass; the k-means start at K = 10 leaves a few small ones
    # (about 9 % in all: a local optimum of the ELBO, as in scikit-learn), so the two
    # weights are compared with mclust's K = 2 fit (0.356 / 0.644) after renormalising
    assert big.size == 2 and big.sum() > 0.9
    np.testing.assert_allclose(big / big.sum(), [0.356, 0.644], atol=0.01)
    assert fit.dp_concentration[0] == "gamma" and fit.converged


# =========================================================================== errors
def test_input_errors():
    X, _ = _blobs(10)
    with pytest.raises(ValueError, match=r"n_components=K .* or truncation=T"):
        bm.fit_vi(X)
    with pytest.raises(ValueError, match="larger than the number of observations"):
        bm.fit_vi(X[:3], 4)
    with pytest.raises(ValueError, match=r"truncation=.*larger than"):
        bm.fit_vi(X[:3], truncation=5)
    with pytest.raises(ValueError, match="disagree"):
        bm.fit_vi(X, 3, truncation=5)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(MissingValueError, match="fit_vi does not handle missing values"):
        bm.fit_vi(Xn, 2)
    with pytest.raises(ValueError, match="conjugate"):
        bm.fit_vi(X, 2, prior=bm.GMMPrior.from_data(X, 2, covariance_prior="lkj"))
    with pytest.raises(ValueError, match="dp_concentration is for the Dirichlet-process"):
        bm.fit_vi(X, 2, dp_concentration=1.0)
    with pytest.raises(ValueError, match="init='auto'"):
        bm.fit_vi(X, 2, init="auto")
    with pytest.raises(ValueError, match="prior has 3 features but X has 2"):
        bm.fit_vi(X, 2, prior=bm.GMMPrior.from_data(np.c_[X, X[:, 0]], 2))
    fit = bm.fit_vi(X, 2, random_seed=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        fit.score_samples(X, kind="nope")
    with pytest.raises(ValueError, match="X has 3 features"):
        fit.predict(np.c_[X, X[:, 0]])
    with pytest.raises(MissingValueError, match="do not handle missing values"):
        fit.predict_proba(Xn)


def test_max_iter_warns():
    X, _ = _blobs(11)
    with pytest.warns(bm.ConvergenceWarning, match="max_iter=2"):
        fit = bm.fit_vi(X, 3, max_iter=2, random_seed=0)
    assert not fit.converged and fit.n_iter == 2


# =========================================================================== Dask
@pytest.mark.parametrize("covariance", COVS)
@pytest.mark.parametrize("kw", [dict(n_components=3), dict(truncation=4)], ids=["finite", "dp"])
def test_dask_equals_in_memory(covariance, kw):
    # one Dask pass per update with EM's chunk E-step and a tree reduction: the same
    # arithmetic as in memory up to the order of the sums (1e-10 relative on the ELBO)
    da = pytest.importorskip("dask.array")
    import dask

    X, rng = _blobs(13)
    resp = rng.dirichlet(np.ones(kw.get("n_components", kw.get("truncation"))), size=len(X))
    Xd = da.from_array(X, chunks=(40, 2))
    with dask.config.set(scheduler="synchronous"):
        a = bm.fit_vi(X, covariance=covariance, init=resp, max_iter=12, tol=0.0, **kw)
        b = bm.fit_vi(Xd, covariance=covariance, init=resp, max_iter=12, tol=0.0, **kw)
        np.testing.assert_allclose(b.elbo_history, a.elbo_history, rtol=1e-10)
        np.testing.assert_allclose(b.means, a.means, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b.prior.scale, a.prior.scale, rtol=1e-12)  # default prior
        np.testing.assert_array_equal(np.asarray(b.labels.compute()), a.labels)
        np.testing.assert_allclose(b.predict_proba(Xd).compute(), a.predict_proba(X), atol=1e-12)
        np.testing.assert_allclose(b.score_samples(Xd).compute(), a.score_samples(X), rtol=1e-12)


def test_dask_kmeans_start_and_errors():
    da = pytest.importorskip("dask.array")
    import dask

    X, _ = _blobs(14, spread=6.0)
    with dask.config.set(scheduler="synchronous"):
        fit = bm.fit_vi(da.from_array(X, chunks=(50, 2)), 3, random_seed=0)
        ref = bm.fit_vi(X, 3, random_seed=0)
        # k-means|| on chunks and k-means in memory find the same three clusters
        np.testing.assert_allclose(np.sort(fit.weights), np.sort(ref.weights), atol=1e-6)
        Xn = X.copy()
        Xn[5, 0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            bm.fit_vi(da.from_array(Xn, chunks=(50, 2)), 2)


def test_compare_fits_takes_a_vi_result():
    # compare_fits reads weights, means, covariances, predict and score_samples: a
    # VIResult has them (posterior means; the predictive density)
    pytest.importorskip("arviz_stats")
    from bayesmix.mcmc._trace import from_arrays

    X, _ = bm.simulate(100, [0.5, 0.5], [[0, 0], [6, 0]], [np.eye(2)] * 2, random_seed=0)
    vi = bm.fit_vi(X, 2, random_seed=0)
    rng = np.random.default_rng(1)
    w = np.broadcast_to(vi.weights, (2, 50, 2)) + rng.normal(0, 0.02, (2, 50, 1)) * [1, -1]
    mu = vi.means + rng.normal(0, 0.1, (2, 50, 2, 2))
    cov = np.broadcast_to(vi.covariances, (2, 50, 2, 2, 2))
    cmp = bm.compare_fits(vi, from_arrays(w, mu, cov, X))
    assert cmp.ari == 1.0
    assert cmp.log_predictive["em"] == pytest.approx(vi.score_samples(X).sum(), rel=1e-12)
    assert cmp.table["inside"].mean() > 0.9


def test_means_init_is_in_data_coordinates():
    # init=(K, D) means: rows go to the nearest mean, in the data's own coordinates
    X, _ = _blobs(15, spread=8.0)
    X = X + 100.0  # far from the origin: a frame mix-up would put every row in one group
    ref = bm.fit_vi(X, 3, random_seed=0, tol=1e-10)
    fit = bm.fit_vi(X, 3, init=ref.means, tol=1e-10)
    np.testing.assert_allclose(np.sort(fit.weights), np.sort(ref.weights), atol=1e-6)
    # the labels start: the same as one-hot responsibilities of the nearest mean
    d = ((X[:, None, :] - ref.means[None]) ** 2).sum(-1)
    resp = np.eye(3)[d.argmin(1)]
    a = bm.fit_vi(X, 3, init=ref.means, max_iter=1)
    b = bm.fit_vi(X, 3, init=resp, max_iter=1)
    np.testing.assert_allclose(a.elbo, b.elbo, rtol=1e-12)


@pytest.mark.parametrize("kw", [dict(n_components=3), dict(truncation=5)], ids=["finite", "dp"])
def test_warm_start_continues_the_run_exactly(kw):
    # 5 updates, then 5 more from the stored last E-step (and q(pi), q(alpha)): the same
    # ELBOs as 10 updates in one run
    X, _ = _blobs(16)
    a = bm.fit_vi(X, random_seed=0, max_iter=5, tol=0.0, **kw)
    b = bm.fit_vi(X, warm_start=a, max_iter=5, tol=0.0, **kw)
    c = bm.fit_vi(X, random_seed=0, max_iter=10, tol=0.0, **kw)
    np.testing.assert_allclose(a.elbo_history + b.elbo_history, c.elbo_history, rtol=1e-13)
    np.testing.assert_allclose(b.means, c.means, rtol=1e-12)
    assert b.prior is a.prior and b.init == "warm_start"
    # a converged fit warm-started converges in one update (its last ELBO is the reference)
    d = bm.fit_vi(X, random_seed=0, tol=1e-8, **kw)
    e = bm.fit_vi(X, warm_start=d, tol=1e-6, **kw)
    assert e.converged and e.n_iter == 1
    with pytest.raises(ValueError, match="give the same settings"):
        bm.fit_vi(X, 4, warm_start=a)
    with pytest.raises(TypeError, match="VIResult"):
        bm.fit_vi(X, 3, warm_start="a")


@pytest.mark.parametrize("covariance", COVS)
@pytest.mark.parametrize("kw", [dict(n_components=3), dict(truncation=4)], ids=["finite", "dp"])
def test_draws_have_the_posterior_means(covariance, kw):
    # 20,000 draws from q: their means are the posterior means to Monte-Carlo error
    # (checked at 5 standard errors of each entry; fixed seeds; an empty DP component's
    # inverse-Wishart with nu <= D + 3 has no variance, so its check is a loose one)
    X, _ = _blobs(17)
    fit = bm.fit_vi(X, covariance=covariance, random_seed=0, **kw)
    w, m, c = fit.draws(20_000, random_seed=3)
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-12)
    for draws, mean in ((w, fit.weights), (m, fit.means), (c, fit.covariances)):
        se = draws.std(0) / np.sqrt(draws.shape[0])
        assert np.all(np.abs(draws.mean(0) - mean) <= 5 * se + 1e-12)
    if covariance == "tied":
        np.testing.assert_array_equal(c[:, 0], c[:, -1])
