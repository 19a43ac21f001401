"""The prior object: defaults, validation, and its densities against independent formulas."""

import numpy as np
import pytest
from scipy import special

from bayesmix.core._priors import GMMPrior


def test_defaults_follow_mclust(faithful):
    K = 3
    p = GMMPrior.from_data(faithful, K)
    np.testing.assert_allclose(p.mean, faithful.mean(0))
    np.testing.assert_allclose(p.scale, np.cov(faithful.T) / K ** (2 / 2))
    assert p.dof == 4.0 and p.mean_shrinkage == 0.01 and p.weight_concentration == 1.0


def test_covariance_scale_per_type(faithful):
    p = GMMPrior.from_data(faithful, 2)
    np.testing.assert_allclose(p.covariance_scale("diagonal"), np.diag(p.scale))
    assert p.covariance_scale("spherical") == pytest.approx(np.trace(p.scale) / 2)
    assert p.covariance_scale("full") is p.scale


def test_constant_feature_gives_spd_scale():
    X = np.column_stack([np.arange(10.0), np.full(10, 3.0)])
    p = GMMPrior.from_data(X, 2)
    assert np.all(np.linalg.eigvalsh(p.scale) > 0)


def _invwishart_logpdf(S, nu, Psi):
    """Textbook inverse-Wishart log density, written out (not scipy)."""
    D = S.shape[0]
    _, logdet_psi = np.linalg.slogdet(Psi)
    _, logdet_s = np.linalg.slogdet(S)
    return (
        0.5 * nu * logdet_psi
        - 0.5 * nu * D * np.log(2)
        - special.multigammaln(nu / 2, D)
        - 0.5 * (nu + D + 1) * logdet_s
        - 0.5 * np.trace(Psi @ np.linalg.inv(S))
    )


def _mvn_logpdf(x, m, S):
    D = x.size
    d = x - m
    return -0.5 * (D * np.log(2 * np.pi) + np.linalg.slogdet(S)[1] + d @ np.linalg.solve(S, d))


def test_log_prior_full_matches_textbook():
    rng = np.random.default_rng(0)
    D, K = 3, 2
    A = rng.normal(size=(D, D))
    p = GMMPrior(
        mean=rng.normal(size=D),
        scale=A @ A.T + D * np.eye(D),
        dof=D + 3.5,
        mean_shrinkage=0.2,
        weight_concentration=2.0,
    )
    w = np.array([0.3, 0.7])
    mu = rng.normal(size=(K, D))
    covs = np.stack([B @ B.T + np.eye(D) for B in rng.normal(size=(K, D, D))])
    expected = special.gammaln(4.0) - 2 * special.gammaln(2.0) + np.log(w).sum()  # Dirichlet(2,2)
    for k in range(K):
        expected += _invwishart_logpdf(covs[k], p.dof, p.scale)
        expected += _mvn_logpdf(mu[k], p.mean, covs[k] / p.mean_shrinkage)
    assert p.log_prior(w, mu, covs, "full") == pytest.approx(expected, rel=1e-10)


def test_log_prior_diag_and_spherical_match_textbook():
    rng = np.random.default_rng(1)
    D, K = 2, 3
    p = GMMPrior(mean=np.zeros(D), scale=np.diag([2.0, 0.5]), dof=4.0, mean_shrinkage=0.5)
    w = np.full(K, 1 / K)
    mu = rng.normal(size=(K, D))
    var = rng.uniform(0.5, 2, size=(K, D))

    def invgamma(x, a, b):
        return a * np.log(b) - special.gammaln(a) - (a + 1) * np.log(x) - b / x

    def norm(x, m, v):
        return -0.5 * np.log(2 * np.pi * v) - (x - m) ** 2 / (2 * v)

    dirichlet_1 = special.gammaln(K)  # log density of the flat Dirichlet is log Gamma(K)
    psi = np.diag(p.scale)
    expected = dirichlet_1 + np.sum(invgamma(var, 2.0, psi / 2) + norm(mu, 0.0, var / 0.5))
    covs = var[:, :, None] * np.eye(D)
    assert p.log_prior(w, mu, covs, "diag") == pytest.approx(expected, rel=1e-10)

    s2 = var[:, 0]
    psi_s = np.trace(p.scale) / D
    expected_s = (
        dirichlet_1
        + np.sum(invgamma(s2, 2.0, psi_s / 2))
        + np.sum(norm(mu, 0.0, s2[:, None] / 0.5))
    )
    covs_s = s2[:, None, None] * np.eye(D)
    assert p.log_prior(w, mu, covs_s, "spherical") == pytest.approx(expected_s, rel=1e-10)


def test_one_dimensional_full_prior_is_inverse_gamma():
    p = GMMPrior(mean=[0.0], scale=[[2.0]], dof=3.0)
    covs = np.array([[[1.5]]])
    lp_full = p.log_prior([1.0], [[0.3]], covs, "full")
    lp_diag = p.log_prior([1.0], [[0.3]], covs, "diag")
    assert lp_full == pytest.approx(lp_diag, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(dof=1.0), "dof must be > D - 1"),
        (dict(scale=np.array([[1.0, 2.0], [2.0, 1.0]])), "positive definite"),
        (dict(scale=np.eye(3)), "shape"),
        (dict(mean_shrinkage=0.0), "mean_shrinkage must be > 0"),
        (dict(covariance_prior="wishart"), "covariance_prior"),
        (dict(mean=[np.nan, 0.0]), "finite"),
    ],
)
def test_bad_prior_fields(kwargs, match):
    args = dict(mean=np.zeros(2), scale=np.eye(2), dof=4.0)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        GMMPrior(**args)


def test_json_round_trip():
    p = GMMPrior(
        mean=[1.0, 2.0],
        scale=np.eye(2),
        dof=5.0,
        lkj_eta=3.0,
        covariance_prior="lkj",
        dp_concentration=(2.0, 0.5),
    )
    q = GMMPrior.from_dict(__import__("json").loads(p.to_json()))
    assert q == p
    assert q.with_(dof=6.0) != p


@pytest.mark.parametrize("covariance", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("D", [1, 3])
def test_log_prior_matches_scipy_stats(covariance, D):
    """The closed form against scipy.stats' frozen densities (the previous
    implementation), every covariance family, D = 1 (inverse-gamma) and D = 3."""
    from scipy import stats

    rng = np.random.default_rng(D)
    K = 3
    A = rng.normal(size=(D, D))
    p = GMMPrior(
        mean=rng.normal(size=D),
        scale=A @ A.T + D * np.eye(D),
        dof=D + 2.5,
        mean_shrinkage=0.3,
        weight_concentration=1.7,
    )
    w = rng.dirichlet(np.ones(K))
    mu = rng.normal(size=(K, D))
    B = rng.normal(size=(K, D, D))
    covs = B @ B.swapaxes(1, 2) + np.eye(D)
    if covariance == "diag":
        covs = np.diagonal(covs, axis1=1, axis2=2)[:, :, None] * np.eye(D)
    elif covariance == "spherical":
        covs = covs[:, :1, :1] * np.eye(D)
    elif covariance == "tied":
        covs = np.broadcast_to(covs[:1], covs.shape)
    expected = stats.dirichlet(np.full(K, 1.7)).logpdf(w)
    m0, k0, nu = p.mean, p.mean_shrinkage, p.dof
    if covariance in ("full", "tied"):
        iw = stats.invwishart(df=nu, scale=p.scale) if D > 1 else None
        mats = covs[:1] if covariance == "tied" else covs
        for S in mats:
            expected += (
                iw.logpdf(S)
                if D > 1
                else stats.invgamma(nu / 2, scale=p.scale[0, 0] / 2).logpdf(S[0, 0])
            )
        for k in range(K):
            expected += stats.multivariate_normal(m0, covs[k] / k0).logpdf(mu[k])
    else:
        psi = p.covariance_scale(covariance)
        var = np.diagonal(covs, axis1=1, axis2=2)
        ig_var = var if covariance == "diag" else var[:, 0]
        expected += stats.invgamma(a=nu / 2, scale=np.asarray(psi) / 2).logpdf(ig_var).sum()
        expected += stats.norm(m0, np.sqrt(var / k0)).logpdf(mu).sum()
    assert p.log_prior(w, mu, covs, covariance) == pytest.approx(expected, rel=1e-10)
