"""The Gibbs sampler on data with missing (NaN) entries (bayesmix.mcmc._gibbs_missing)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import bayesmix as bm
from bayesmix.mcmc import _gibbs_missing


def _quiet_sample(model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: the ESS warning is expected
        return bm.sample(model, progressbar=False, cores=1, **kw)


def _two_clusters(n=120, frac=0.15, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(-2, 1, (n // 2, 2)), rng.normal(3, 1, (n - n // 2, 2))])
    mask = rng.random(X.shape) < frac
    mask[mask.all(1), 0] = False  # no empty rows
    Xm = X.copy()
    Xm[mask] = np.nan
    return X, Xm


def test_nuts_refused_with_gaps_and_gibbs_default():
    _, Xm = _two_clusters()
    model = bm.build_gmm(Xm, 2)
    with pytest.raises(NotImplementedError, match="sampler='gibbs'"):
        bm.sample(model, sampler="nuts", draws=5, tune=5, chains=1, progressbar=False)
    from bayesmix.mcmc._choice import resolve_sampler

    assert resolve_sampler(model, None) == "gibbs"
    with pytest.raises(ValueError, match="infinite"):
        bm.build_gmm(np.where(np.isnan(Xm), np.inf, Xm), 2)


def test_observed_data_loglik_equals_scipy_per_row():
    """(c) the stored pointwise log-likelihood is each row's marginal density of its
    observed coordinates: an independent per-row scipy computation, to rounding."""
    _, Xm = _two_clusters(n=60)
    dt = _quiet_sample(bm.build_gmm(Xm, 2), draws=5, tune=5, chains=2, random_seed=3)
    assert int(np.isnan(dt["observed_data"]["X"].values).sum()) == int(np.isnan(Xm).sum())
    post = dt["posterior"]
    W = post["weights"].values
    M = post["means"].values
    C = post["covariances"].values
    ll = dt["log_likelihood"]["X"].values
    for c in range(2):
        for s in (0, 4):
            ref = np.empty(Xm.shape[0])
            for n, x in enumerate(Xm):
                o = ~np.isnan(x)
                dens = [
                    W[c, s, k]
                    * stats.multivariate_normal(M[c, s, k, o], C[c, s, k][np.ix_(o, o)]).pdf(x[o])
                    for k in range(2)
                ]
                ref[n] = np.log(np.sum(dens))
            np.testing.assert_allclose(ll[c, s], ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dt["sample_stats"]["loglik"].values, ll.sum(-1), rtol=1e-12)


def test_complete_data_never_imputes(monkeypatch):
    """(d) without NaN the augmentation step never runs, so the draws are those of the
    complete-data sampler (also checked against the previous main: identical)."""
    X, _ = _two_clusters(n=60)

    def boom(*a, **k):  # pragma: no cover - must not run
        raise AssertionError("imputed complete data")

    monkeypatch.setattr(_gibbs_missing, "impute_missing", boom)
    import bayesmix.mcmc._gibbs as g

    monkeypatch.setattr(g, "impute_missing", boom)
    a = _quiet_sample(bm.build_gmm(X, 2), draws=10, tune=10, chains=2, random_seed=5)
    b = _quiet_sample(bm.build_gmm(X, 2), draws=10, tune=10, chains=2, random_seed=5)
    np.testing.assert_array_equal(a["posterior"]["means"].values, b["posterior"]["means"].values)


def test_k1_posterior_mean_matches_importance_sampling():
    """(b) K = 1, D = 2, conjugate NIW prior, x2 missing on some rows (monotone). The
    exact posterior mean of mu by self-normalised importance sampling: proposals are
    exact draws from the complete-case NIW posterior, weighted by the incomplete rows'
    marginal likelihood prod_i N(x_i1 | mu_1, Sigma_11)."""
    rng = np.random.default_rng(11)
    n, n_miss = 40, 10
    X = rng.multivariate_normal([1.0, -1.0], [[1.0, 0.7], [0.7, 1.5]], size=n)
    Xm = X.copy()
    Xm[:n_miss, 1] = np.nan
    prior = bm.GMMPrior(mean=np.zeros(2), scale=np.eye(2), dof=4.0, mean_shrinkage=0.5)
    # importance sampling reference
    Xc = Xm[n_miss:]
    nc = Xc.shape[0]
    xbar = Xc.mean(0)
    k0, nu0, m0, Psi0 = 0.5, 4.0, np.zeros(2), np.eye(2)
    kn, nun = k0 + nc, nu0 + nc
    mn = (k0 * m0 + nc * xbar) / kn
    Sc = (Xc - xbar).T @ (Xc - xbar)
    Psin = Psi0 + Sc + k0 * nc / kn * np.outer(xbar - m0, xbar - m0)
    S = 200_000
    ir = np.random.default_rng(0)
    Sig = stats.invwishart(df=nun, scale=Psin).rvs(size=S, random_state=ir)
    L = np.linalg.cholesky(Sig / kn)
    mu = mn + np.einsum("sij,sj->si", L, ir.standard_normal((S, 2)))
    x1 = Xm[:n_miss, 0]
    logw = stats.norm.logpdf(x1[None], mu[:, :1], np.sqrt(Sig[:, :1, 0])).sum(1)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    ref = w @ mu
    ess_is = 1.0 / (w**2).sum()
    assert ess_is > 20_000  # the reference's own error is below 1 % of a posterior sd
    post_sd = np.sqrt(w @ (mu - ref) ** 2)
    dt = _quiet_sample(
        bm.build_gmm(Xm, 1, prior=prior), draws=2000, tune=300, chains=4, random_seed=2
    )
    m = dt["posterior"]["means"].values[:, :, 0, :].reshape(-1, 2)
    import arviz_stats as azs

    ess = float(np.min(azs.ess(dt["posterior"]["means"].isel(component=0)).values))
    mcse = post_sd / np.sqrt(ess)
    # 4 Monte-Carlo standard errors (Gibbs and IS together): fails with probability < 1e-3
    assert np.all(np.abs(m.mean(0) - ref) < 4 * np.hypot(mcse, post_sd / np.sqrt(ess_is)))
    # the second coordinate's mean differs from the complete-case posterior's (the gaps carry
    # information through x1): the check above can tell the two apart
    assert abs(ref[1] - mn[1]) > 8 * mcse[1]


@pytest.mark.parametrize(
    ("builder", "cov"),
    [
        ("gmm", "full"),
        ("gmm", "diag"),
        ("gmm", "spherical"),
        ("gmm", "tied"),
        ("dpgmm", "full"),
        ("mfm", "diag"),
    ],
)
def test_gibbs_with_gaps_near_em_map(builder, cov):
    """(a) n = 400, 15 % MCAR gaps: the posterior means of the two well-separated clusters
    are within 0.5 posterior sd (+ MC error) of the EM MAP with gaps (for large n the posterior is
    near Gaussian about its mode: mean - mode = O(1/n), sd = O(1/sqrt(n))). Filling the gaps by
    column means instead would pull the means towards the centre by about 0.15 * 2.5 = 0.4,
    several sd."""
    _, Xm = _two_clusters(n=400, seed=7)
    if builder == "gmm":
        model = bm.build_gmm(Xm, 2, covariance=cov)
    elif builder == "dpgmm":
        model = bm.build_dpgmm(Xm, truncation=6, covariance=cov)
    else:
        model = bm.build_mfm(Xm, max_components=6, covariance=cov)
    cfg = model.bayesmix_config
    dt = _quiet_sample(model, draws=300, tune=200, chains=2, random_seed=4)
    assert dt.attrs["sampler"] == "gibbs"
    w = dt["posterior"]["weights"].values.reshape(-1, cfg.n_components)
    m = dt["posterior"]["means"].values.reshape(-1, cfg.n_components, 2)
    # the two big clusters of every draw, ordered by their first coordinate
    big = np.argsort(-w, axis=1)[:, :2]
    mm = np.take_along_axis(m, big[..., None], axis=1)
    mm = np.take_along_axis(mm, np.argsort(mm[..., 0], axis=1)[..., None], axis=1)
    from bayesmix.mcmc._common import _em_compatible

    fit = bm.fit_em(Xm, 2, covariance=cov, prior=_em_compatible(cfg.prior), random_seed=0)
    em = fit.means[np.argsort(fit.means[:, 0])]
    sd = mm.std(0)
    assert np.all(np.abs(mm.mean(0) - em) < 0.5 * sd + 0.05), (mm.mean(0), em, sd)
    assert np.isfinite(dt["sample_stats"]["loglik"].values).all()


def test_membership_and_relabel_on_gaps_use_observed_coordinates():
    """membership (relabelled by Stephens' algorithm) on a posterior with gaps equals the
    mean over draws of each row's responsibilities on its observed coordinates (scipy)."""
    _, Xm = _two_clusters(n=40, seed=2)
    dt = _quiet_sample(bm.build_gmm(Xm, 2), draws=6, tune=6, chains=2, random_seed=1)
    dt = bm.relabel(dt)
    mem = bm.membership(dt)
    post = dt["posterior"]
    W = post["weights"].values.reshape(-1, 2)
    M = post["means"].values.reshape(-1, 2, 2)
    C = post["covariances"].values.reshape(-1, 2, 2, 2)
    ref = np.zeros((Xm.shape[0], 2))
    for s in range(W.shape[0]):
        for n, x in enumerate(Xm):
            o = ~np.isnan(x)
            d = np.array(
                [
                    W[s, k] * stats.multivariate_normal(M[s, k, o], C[s, k][np.ix_(o, o)]).pdf(x[o])
                    for k in range(2)
                ]
            )
            ref[n] += d / d.sum()
    np.testing.assert_allclose(mem["probability"].values, ref / W.shape[0], rtol=1e-9, atol=1e-12)
    assert np.isnan(Xm).any(axis=1).sum() > 5  # the check covers rows with gaps
