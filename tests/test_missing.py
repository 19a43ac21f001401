"""Missing values (NaN) in EM: the observed-data likelihood, exactly.

References: scipy.stats.multivariate_normal on each row's observed coordinates, a direct
scipy maximisation of the observed-data log-likelihood, simulations with known truth,
and the fit of the same data without gaps.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

import bayesmix as bm
from bayesmix.core import _covariance as cv
from bayesmix.core import _missing as ms

COVS = ("full", "diag", "spherical", "tied")


def _gappy(n=400, frac=0.2, seed=0, d=3):
    rng = np.random.default_rng(seed)
    means = [[0.0] * d, [3.0] * d]
    A = rng.normal(size=(d, d)) * 0.3
    cov = [np.eye(d) + A @ A.T, np.eye(d) * 0.5]
    X, _ = bm.simulate(n, [0.4, 0.6], means, cov, random_seed=seed)
    Xm = X.copy()
    Xm[rng.random(X.shape) < frac] = np.nan
    return X, Xm[~np.isnan(Xm).all(axis=1)]


def _loglik_scipy(X, weights, means, covs, noise=None):
    """Per-row observed-data log density by scipy (noise: (weight, sides))."""
    out = []
    for x in X:
        o = ~np.isnan(x)
        dens = sum(
            w * stats.multivariate_normal(m[o], c[np.ix_(o, o)]).pdf(x[o])
            for w, m, c in zip(weights, means, covs, strict=True)
        )
        if noise is not None:
            dens += noise[0] / np.prod(np.asarray(noise[1])[o])
        out.append(np.log(dens))
    return np.array(out)


# --------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("noise", [False, True])
def test_numba_kernel_matches_numpy_reference(noise):
    _, X = _gappy(1500, 0.25, seed=1, d=4)
    rng = np.random.default_rng(2)
    pats = ms.missing_patterns(X)
    K = 3
    weights = np.array([0.2, 0.3, 0.4, 0.1]) if noise else np.array([0.2, 0.3, 0.5])
    means = rng.normal(size=(K, 4))
    A = rng.normal(size=(K, 4, 4))
    cov = A @ A.transpose(0, 2, 1) + np.eye(4)
    sw = rng.random(X.shape[0])
    sides = np.log([2.0, 3.0, 4.0, 5.0]) if noise else None
    la, lb = np.empty(X.shape[0], np.int64), np.empty(X.shape[0], np.int64)
    ref = ms.expected_stats_numpy(X, pats, weights, means, cov, la, sw, sides)
    got = ms.expected_stats(X, pats, weights, means, cov, lb, sw, sides)
    for r, g in zip(ref, got, strict=True):  # rounding only: sums of ~1e4 terms
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-9)
    np.testing.assert_array_equal(la, lb)
    diag = ms.expected_stats(X, pats, weights, means, cov, lb, sw, sides, kind="diag")[3]
    np.testing.assert_allclose(diag, np.diagonal(ref[3], axis1=1, axis2=2), rtol=1e-10)
    # the reported log-likelihood against scipy, row by row
    scipy_ll = _loglik_scipy(
        X, weights[:K], means, cov, (weights[K], np.exp(sides)) if noise else None
    )
    np.testing.assert_allclose(ref[0], sw @ scipy_ll, rtol=1e-12)


def test_second_moment_kinds():
    D = 3
    kinds = {c: ms.second_moment_kind(cv.SECOND_MOMENTS[c], D) for c in COVS}
    assert kinds == {"full": "full", "tied": "total", "diag": "diag", "spherical": "diag"}


# --------------------------------------------------------------------------- fits
def test_no_nan_is_the_complete_data_path():
    X, _ = _gappy(300, 0.0)
    for cov in COVS:
        a = bm.fit_em(X, 2, covariance=cov, random_seed=0)
        b = bm.fit_em(X, 2, covariance=cov, random_seed=0, missing="error")
        assert a.history == b.history and a.n_missing == 0
        np.testing.assert_array_equal(a.covariances, b.covariances)


@pytest.mark.parametrize("covariance", COVS)
@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_loglik_is_observed_data_and_monotone(covariance, engine):
    _, X = _gappy(400, 0.2)
    fit = bm.fit_em(X, 2, covariance=covariance, engine=engine, random_seed=0)
    assert fit.n_missing == int(np.isnan(X).sum())
    ref = _loglik_scipy(X, fit.weights, fit.means, fit.covariances)
    # the result's parameters are those of the last M-step, its log-likelihood that of the
    # E-step before: equal at convergence up to tol * N
    assert abs(fit.log_likelihood - ref.sum()) <= fit.tol * X.shape[0] * 10
    np.testing.assert_allclose(fit.score_samples(X), ref, rtol=1e-10)
    h = np.diff(fit.history)
    assert (h >= -1e-8 * abs(fit.history[-1])).all()  # EM never decreases (rounding)
    assert fit.bic(X) == pytest.approx(
        -2 * ref.sum() + fit.n_parameters * np.log(X.shape[0]), rel=1e-12
    )
    p = fit.predict_proba(X)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert np.isfinite(fit.icl(X)) and fit.icl(X) >= fit.bic(X)


def test_engines_agree_with_gaps():
    _, X = _gappy(600, 0.3)
    a = bm.fit_em(X, 2, engine="numpy", random_seed=0, tol=1e-10)
    b = bm.fit_em(X, 2, engine="numba", random_seed=0, tol=1e-10)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-7)  # rounding, amplified by EM
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-10)


def _unpack(theta, D):
    """(weights, means, covs) of a 2-component full mixture from unconstrained theta."""
    w1 = 1.0 / (1.0 + np.exp(-theta[0]))
    means = theta[1 : 1 + 2 * D].reshape(2, D)
    covs = []
    off = 1 + 2 * D
    npk = D * (D + 1) // 2
    for k in range(2):
        L = np.zeros((D, D))
        L[np.tril_indices(D)] = theta[off + k * npk : off + (k + 1) * npk]
        L[np.diag_indices(D)] = np.exp(np.diag(L))
        covs.append(L @ L.T)
    return np.array([w1, 1.0 - w1]), means, np.array(covs)


def test_em_optimum_equals_direct_maximisation():
    rng = np.random.default_rng(3)
    X, _ = bm.simulate(
        80, [0.5, 0.5], [[0, 0], [4, 1]], [np.eye(2), [[1, 0.6], [0.6, 1]]], random_seed=3
    )
    X[rng.random(X.shape) < 0.25] = np.nan
    X = X[~np.isnan(X).all(1)]
    fit = bm.fit_em(X, 2, reg_covar=0.0, tol=1e-14, max_iter=5000, random_seed=0)
    pats = ms.missing_patterns(X)

    def negll(theta):
        if np.abs(theta).max() > 30:  # far outside the data's range: a wall for BFGS
            return 1e10
        w, m, c = _unpack(theta, 2)
        lj = ms.log_joint_missing(X, pats, w, m, c)
        return -ms._logsumexp(lj).sum()

    best = None
    for seed in range(4):  # several starts: the global optimum of this smooth problem
        r = np.random.default_rng(seed)
        rows = X[r.choice(X.shape[0], 2, replace=False)]
        start_means = np.where(np.isnan(rows), np.nanmean(X, 0), rows).ravel()
        theta0 = np.concatenate([[0.0], start_means, r.normal(0, 0.3, 6)])
        res = optimize.minimize(negll, theta0, method="BFGS", options={"gtol": 1e-9})
        res = optimize.minimize(
            negll,
            res.x,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000},
        )
        if best is None or res.fun < best.fun:
            best = res
    # EM's optimum equals the numerical one: log-likelihood to 1e-6, and no better
    # optimum exists
    assert abs(-best.fun - fit.log_likelihood) < 1e-6
    _w, m, c = _unpack(best.x, 2)
    order = np.argsort(m[:, 0])
    eo = np.argsort(fit.means[:, 0])
    # parameters at a flat optimum agree to ~sqrt(1e-12) of the objective's tolerance
    np.testing.assert_allclose(fit.means[eo], m[order], atol=1e-4)
    np.testing.assert_allclose(fit.covariances[eo], c[order], atol=1e-4)


def _mar_data(n, seed):
    """x1 always observed; x2 missing with probability 0.8 when x1 > 0 (MAR)."""
    rng = np.random.default_rng(seed)
    truth_means = np.array([[-2.0, -1.0], [1.0, 2.0]])
    covs = [np.array([[1.0, 0.8], [0.8, 1.0]])] * 2
    X, _ = bm.simulate(n, [0.5, 0.5], truth_means, covs, random_seed=seed)
    miss = (X[:, 0] > 0) & (rng.random(n) < 0.8)
    Xm = X.copy()
    Xm[miss, 1] = np.nan
    return Xm, truth_means


def _err(fit, truth):
    return np.abs(fit.means[np.argsort(fit.means[:, 0])] - truth).max()


def test_mar_error_shrinks_and_beats_complete_case():
    errs, cc = [], []
    for n in (1000, 16000):
        Xm, truth = _mar_data(n, seed=5)
        errs.append(_err(bm.fit_em(Xm, 2, random_seed=0), truth))
        complete = Xm[~np.isnan(Xm).any(1)]
        cc.append(_err(bm.fit_em(complete, 2, random_seed=0), truth))
    # sampling error ~ 1/sqrt(n): 4x smaller at 16x the data; allow for the noise of one
    # realisation by asking for a halving
    assert errs[1] < errs[0] / 2
    # complete-case keeps few x1 > 0 rows: the second component is biased (a constant
    # error that does not shrink), far beyond the full-data sampling error
    assert errs[1] < cc[1] / 3


def test_mcar_agrees_with_complete_data_fit():
    n = 4000
    X, Xm = _gappy(n, 0.1, seed=7)
    assert Xm.shape[0] >= n - 5  # rows with every entry missing (0.1 % of them) dropped
    full = bm.fit_em(X, 2, random_seed=0)
    gap = bm.fit_em(Xm, 2, random_seed=0)
    o1, o2 = np.argsort(full.means[:, 0]), np.argsort(gap.means[:, 0])
    # the difference is the information lost in 10 % of the entries: its sd is about
    # sqrt(0.1 / n_k) component sd's (n_k >= 1600, sd <= 1.6), ~0.013; 0.1 is ~7 sd
    np.testing.assert_allclose(gap.means[o2], full.means[o1], atol=0.1)
    np.testing.assert_allclose(gap.weights[o2], full.weights[o1], atol=0.03)
    np.testing.assert_allclose(gap.covariances[o2], full.covariances[o1], atol=0.15)


def test_integer_weights_equal_duplicated_rows_with_gaps():
    _, X = _gappy(200, 0.25)
    w = np.arange(X.shape[0]) % 3
    a = bm.fit_em(X, 2, sample_weight=w, init="kmeans", random_seed=0, tol=1e-12)
    rows = np.repeat(np.arange(X.shape[0]), w)
    b = bm.fit_em(X[rows], 2, init="kmeans", random_seed=0, tol=1e-12)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-6)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_map_and_noise_with_gaps(covariance):
    _, X = _gappy(300, 0.2)
    prior = bm.GMMPrior.from_data(np.where(np.isnan(X), np.nanmean(X, 0), X), 2)
    fit = bm.fit_em(X, 2, covariance=covariance, prior=prior, noise=True, random_seed=0)
    assert np.diff(fit.history).min() >= -1e-8 * abs(fit.history[-1])
    sides = np.nanmax(X, 0) - np.nanmin(X, 0)
    np.testing.assert_allclose(fit.noise_sides, sides)
    assert np.prod(sides) == pytest.approx(fit.noise_volume)
    ref = _loglik_scipy(X, fit.weights, fit.means, fit.covariances, (fit.noise_weight, sides))
    np.testing.assert_allclose(fit.score_samples(X), ref, rtol=1e-10)
    again = bm.EMResult.from_dict(fit.to_dict())
    np.testing.assert_allclose(again.score_samples(X), ref, rtol=1e-10)
    assert again.n_missing == fit.n_missing


def test_bad_gaps_clear_errors():
    X = np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, np.nan], [2.0, 1.0]])
    with pytest.raises(ValueError, match=r"no observed entry.*row\(s\) 1"):
        bm.fit_em(X, 1)
    with pytest.raises(ValueError, match="infinite"):
        bm.fit_em(np.array([[1.0, np.inf], [np.nan, 1.0], [2.0, 3.0]]), 1)
    with pytest.raises(ValueError, match="NaN"):
        bm.fit_em(X[[0, 2, 3]], 1, missing="error")
    with pytest.raises(ValueError, match=r"feature\(s\) \['x1'\] have no observed"):
        bm.fit_em(np.array([[1.0, np.nan], [2.0, np.nan]]), 1)


def test_dask_with_gaps_not_implemented():
    da = pytest.importorskip("dask.array")
    _, X = _gappy(200, 0.2)
    with pytest.raises(NotImplementedError, match=r"X.compute\(\)"):
        bm.fit_em(da.from_array(X, chunks=50), 2, random_seed=0)
    with pytest.raises(ValueError, match="NaN"):
        bm.fit_em(da.from_array(X, chunks=50), 2, random_seed=0, missing="error")


# --------------------------------------------------------------------------- k-means
def _observed_inertia(X, centers, labels):
    tot = 0.0
    for x, z in zip(X, labels, strict=True):
        o = ~np.isnan(x)
        tot += ((x[o] - centers[z, o]) ** 2).sum()
    return tot


def test_kmeans_with_gaps_is_kpod():
    X, Xm = _gappy(1500, 0.2, seed=4)
    res = bm.kmeans(Xm, 2, random_seed=0, tol=0.0)
    assert res.inertia == pytest.approx(_observed_inertia(Xm, res.centers, res.labels), rel=1e-10)
    np.testing.assert_array_equal(res.labels, res.predict(Xm))
    # a fixed point of k-POD: every centre is the observed mean of its rows, feature by
    # feature (Lloyd with tol=0 stops when the labels are stable: exact up to rounding)
    for k in range(2):
        np.testing.assert_allclose(res.centers[k], np.nanmean(Xm[res.labels == k], 0), atol=1e-8)
    # better (lower observed inertia) than k-means on mean-filled data, the first round
    filled = np.where(np.isnan(Xm), np.nanmean(Xm, 0), Xm)
    f = bm.kmeans(filled, 2, random_seed=0, tol=0.0)
    lab = np.argmin(((filled[:, None] - f.centers) ** 2).sum(-1), 1)
    assert res.inertia <= _observed_inertia(Xm, f.centers, lab) + 1e-9
    # the complete data are unchanged by the new path
    a = bm.kmeans(X, 2, random_seed=0)
    b = bm.kmeans(X, 2, random_seed=0, missing="error")
    np.testing.assert_array_equal(a.centers, b.centers)
    with pytest.raises(ValueError, match="NaN"):
        bm.kmeans(Xm, 2, missing="error")


# --------------------------------------------------------------------------- impute
def _cond_mean_by_hand(x, weights, means, covs):
    o, m = ~np.isnan(x), np.isnan(x)
    dens = np.array(
        [
            w * stats.multivariate_normal(mu[o], c[np.ix_(o, o)]).pdf(x[o])
            for w, mu, c in zip(weights, means, covs, strict=True)
        ]
    )
    r = dens / dens.sum()
    cm = [
        mu[m] + c[np.ix_(m, o)] @ np.linalg.solve(c[np.ix_(o, o)], x[o] - mu[o])
        for mu, c in zip(means, covs, strict=True)
    ]
    out = x.copy()
    out[m] = r @ np.array(cm)
    return out


def test_impute_em_conditional_mean_and_draws():
    _, X = _gappy(300, 0.25, seed=8)
    fit = bm.fit_em(X, 2, random_seed=0)
    filled = bm.impute(fit, X)
    obs = ~np.isnan(X)
    np.testing.assert_array_equal(filled[obs], X[obs])
    for i in np.flatnonzero(np.isnan(X).any(1))[:20]:
        np.testing.assert_allclose(
            filled[i],
            _cond_mean_by_hand(X[i], fit.weights, fit.means, fit.covariances),
            rtol=1e-10,
        )
    draws = bm.impute(fit, X, n_draws=4000, random_seed=1)
    assert draws.shape == (4000, *X.shape)
    np.testing.assert_array_equal(draws[:, obs], np.broadcast_to(X[obs], (4000, obs.sum())))
    # Monte-Carlo mean of 4000 draws: sd <= ~2.5 / sqrt(4000) = 0.04 (mixture conditional
    # sd below 2.5 here); 0.2 is 5 sd
    np.testing.assert_allclose(draws.mean(0), filled, atol=0.2)
    again = bm.impute(fit, X, n_draws=3, random_seed=1)
    np.testing.assert_array_equal(again, bm.impute(fit, X, n_draws=3, random_seed=1))
    with pytest.raises(TypeError, match="EMResult"):
        bm.impute(np.eye(2), X)


def test_impute_conditional_draws_have_the_conditional_covariance():
    # one component: the draws of the missing block have exactly the conditional law
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]])
    X, _ = bm.simulate(500, [1.0], [[0.0, 0.0, 0.0]], [cov], random_seed=2)
    fit = bm.fit_em(X, 1)
    row = np.array([[0.5, np.nan, np.nan]])
    d = bm.impute(fit, row, n_draws=20000, random_seed=3)[:, 0, 1:]
    S = fit.covariances[0]
    cond = S[1:, 1:] - np.outer(S[1:, 0], S[0, 1:]) / S[0, 0]
    # sample covariance of 20000 draws: relative sd ~ sqrt(2 / 20000) = 1 %; 5 % tolerance
    np.testing.assert_allclose(np.cov(d.T), cond, atol=0.05 * np.abs(cond).max())


def test_impute_from_posterior():
    from bayesmix.mcmc._trace import from_arrays

    _, X = _gappy(200, 0.2, seed=9)
    fit = bm.fit_em(X, 2, random_seed=0)
    C, S = 2, 300
    W = np.broadcast_to(fit.weights, (C, S, 2)).copy()
    M = np.broadcast_to(fit.means, (C, S, *fit.means.shape)).copy()
    V = np.broadcast_to(fit.covariances, (C, S, *fit.covariances.shape)).copy()
    dt = from_arrays(W, M, V, np.where(np.isnan(X), 0.0, X), log_likelihood=False)
    imp = bm.impute(dt, X, random_seed=0)
    assert imp.dims == ("chain", "draw", "obs", "feature") and imp.shape == (C, S, *X.shape)
    obs = ~np.isnan(X)
    assert (imp.values[:, :, obs] == X[obs]).all()
    # every draw the EM parameters: the mean of 600 imputations is the conditional mean
    # (Monte-Carlo sd <= 2.5 / sqrt(600) ~ 0.1; 0.5 is 5 sd)
    np.testing.assert_allclose(imp.mean(("chain", "draw")).values, bm.impute(fit, X), atol=0.5)
    sub = bm.impute(dt, X, n_draws=10, random_seed=0)
    assert sub.sizes["draw"] == 10


def test_prior_from_data_with_gaps_uses_pairwise_moments():
    import pandas as pd

    from bayesmix.core._priors import _pairwise_cov

    _, X = _gappy(300, 0.2, d=3)
    K = 2
    p = bm.GMMPrior.from_data(X, K)
    # independent reference: pandas' pairwise-complete covariance (ddof 1) and nanmean
    ref = pd.DataFrame(X).cov().to_numpy()
    np.testing.assert_allclose(_pairwise_cov(X), ref, rtol=1e-12)
    np.testing.assert_allclose(p.mean, np.nanmean(X, 0), rtol=1e-14)
    np.testing.assert_allclose(p.scale, ref / K ** (2.0 / 3), rtol=1e-12)
    # no gaps: the complete-data path, bit for bit
    full, _ = _gappy(300, 0.0, d=3)
    q = bm.GMMPrior.from_data(full, K)
    np.testing.assert_array_equal(q.scale, np.cov(full, rowvar=False) / K ** (2.0 / 3))
    # a pair without two common rows: the diagonal of the per-column variances
    Y = np.array([[1.0, np.nan], [2.0, np.nan], [np.nan, 3.0], [np.nan, 5.0]])
    np.testing.assert_allclose(_pairwise_cov(Y), np.diag([0.5, 2.0]))


@pytest.mark.parametrize("builder", ["build_gmm", "build_dpgmm", "build_mfm"])
def test_pymc_builders_keep_gaps_for_gibbs_and_refuse_nuts(builder):
    """The builders keep NaN (sampled by Gibbs with data augmentation,
    tests/test_gibbs_missing.py); NUTS is refused naming sampler='gibbs'."""
    from bayesmix.mcmc._choice import resolve_sampler

    _, X = _gappy(60, 0.1)
    args = (X, 2) if builder == "build_gmm" else (X,)
    model = getattr(bm, builder)(*args)
    cfg = model.bayesmix_config
    np.testing.assert_array_equal(np.isnan(cfg.X), np.isnan(X))
    assert resolve_sampler(model, None) == "gibbs"
    if builder != "build_mfm":
        with pytest.raises(NotImplementedError) as e:
            resolve_sampler(model, "nuts")
        msg = str(e.value)
        assert "missing (NaN)" in msg and "sampler='gibbs'" in msg and "bm.fit_em(X, K)" in msg
