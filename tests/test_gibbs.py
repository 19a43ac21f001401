"""Tests of the conjugate Gibbs samplers (bayesmix.mcmc._gibbs, bayesmix.mcmc._gibbs_kernels).

Conditional updates against closed forms and scipy.stats, prior reproduction with the
likelihood switched off, bit-reproducibility, the DataTree layout against the PyMC
models and NUTS, analysis functions on a Gibbs result, bad input. The exact
enumeration of partitions and the prior-on-K+ checks live in tests/test_nclusters.py.

Monte-Carlo tolerances: a mean of n draws is compared within 4.5 standard errors
(two-sided probability of a false failure < 1e-5 per comparison, a few dozen
comparisons per run); the standard errors use the draws' own standard deviation, or
an effective sample size where draws are autocorrelated.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import gammaln

import bayesmix as bm
from bayesmix.mcmc import _choice, _collapsed_kernels, _conjugate, _gibbs_sweeps
from bayesmix.mcmc import _gibbs as gibbs
from bayesmix.mcmc import _gibbs_kernels as gk
from bayesmix.mcmc._builders import build_dpgmm, build_gmm, build_mfm
from bayesmix.mcmc._common import TruncationWarning

Z = 4.5  # standard errors allowed for a Monte-Carlo mean (module docstring)


@pytest.fixture(scope="module")
def data():
    X, _ = bm.simulate(
        60,
        [0.5, 0.5],
        [[0.0, 0.0], [6.0, 6.0]],
        [np.eye(2), [[1.0, 0.3], [0.3, 1.0]]],
        random_seed=0,
    )
    return X


def _close(draws, expected, se_scale=None):
    """Means of draws (axis 0) equal ``expected`` within Z standard errors."""
    draws = np.asarray(draws)
    se = draws.std(0) / np.sqrt(draws.shape[0]) if se_scale is None else se_scale
    np.testing.assert_array_less(np.abs(draws.mean(0) - expected), Z * se + 1e-12)


# ---------------------------------------------------------------------------- kernels
def test_allocate_probabilities_match_scipy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 2))
    w = np.array([0.2, 0.5, 0.3])
    means = rng.normal(size=(3, 2))
    A = rng.normal(size=(3, 2, 2))
    cov = A @ A.swapaxes(1, 2) + np.eye(2)
    prec = np.linalg.inv(np.linalg.cholesky(cov))
    logp = np.stack(
        [np.log(w[k]) + stats.multivariate_normal(means[k], cov[k]).logpdf(X) for k in range(3)],
        1,
    )
    p = np.exp(logp - logp.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    z = np.empty(5, dtype=np.int64)
    counts = np.empty(3, dtype=np.int64)
    # inverse CDF: u just below / above each cumulative boundary picks that component
    cum = np.cumsum(p, axis=1)
    for k in range(3):
        lo = (cum[:, k - 1] if k else np.zeros(5)) + 1e-9
        ll = gk.allocate(X, np.log(w), means, prec, lo, z, counts)
        np.testing.assert_array_equal(z, k)
        assert counts[k] == 5
    np.testing.assert_allclose(ll, np.log(np.exp(logp).sum(1)).sum(), rtol=1e-12)
    # a component with log weight -inf is never chosen
    z_all = np.empty(5, dtype=np.int64)
    with np.errstate(divide="ignore"):
        log_w = np.log([0.0, 0.5, 0.5])
    gk.allocate(X, log_w, means, prec, np.full(5, 1e-12), z_all, counts)
    assert np.all(z_all >= 1)


def test_suff_stats_match_numpy():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    z = rng.integers(0, 4, size=50)
    z[z == 3] = 2  # component 3 stays empty
    counts = np.bincount(z, minlength=4).astype(np.int64)
    sums = np.empty((4, 3))
    scatter = np.empty((4, 3, 3))
    gk.suff_stats(X, z.astype(np.int64), counts, sums, scatter)
    for k in range(3):
        xk = X[z == k]
        np.testing.assert_allclose(sums[k], xk.sum(0))
        np.testing.assert_allclose(scatter[k], (len(xk) - 1) * np.cov(xk, rowvar=False))
    assert np.all(sums[3] == 0) and np.all(scatter[3] == 0)


# ---------------------------------------------------------------------------- conditionals
def test_inv_wishart_draws_match_scipy():
    rng = np.random.default_rng(2)
    psi = np.array([[2.0, 0.6, 0.1], [0.6, 1.0, -0.2], [0.1, -0.2, 0.5]])
    nu = 9.0
    n = 20000
    cov, chol = _conjugate.inv_wishart_draws(rng, np.full(n, nu), np.broadcast_to(psi, (n, 3, 3)))
    np.testing.assert_allclose(chol @ chol.swapaxes(1, 2), cov, atol=1e-12)
    _close(cov, psi / (nu - 3 - 1))
    ref = stats.invwishart(df=nu, scale=psi).rvs(size=n, random_state=3)
    # the whole distribution of two entries against scipy's sampler (independent code)
    for idx in [(0, 0), (1, 2)]:
        assert stats.ks_2samp(cov[:, idx[0], idx[1]], ref[:, idx[0], idx[1]]).pvalue > 1e-4


def _fixed_stats(rng, X, K):
    z = np.repeat(np.arange(K), len(X) // K)
    counts = np.bincount(z, minlength=K).astype(np.int64)
    sums = np.empty((K, X.shape[1]))
    scatter = np.empty((K, X.shape[1], X.shape[1]))
    gk.suff_stats(X, z.astype(np.int64), counts, sums, scatter)
    return counts, sums, scatter


def _repeat(n, *arrays):
    return [np.repeat(a[None], n, axis=0).reshape(-1, *a.shape[1:]) for a in arrays]


def test_niw_conditional_matches_textbook():
    """Full covariance: draws of (mu, Sigma) | z against Murphy (2007) eqs. 250-254."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(12, 2)) @ np.array([[1.0, 0.4], [0.0, 0.7]]) + [1.0, -2.0]
    prior = bm.GMMPrior(mean=np.zeros(2), scale=np.diag([1.5, 0.8]), dof=5.0, mean_shrinkage=0.5)
    conj = _conjugate._Conj.from_prior(prior, "full")
    counts, sums, scatter = _fixed_stats(rng, X, 2)  # 6 observations per component
    n = 15000
    c, s, sc = _repeat(n, counts, sums, scatter)
    means, cov, _, own = _conjugate.draw_components(rng, conj, c, s, sc)
    for k in range(2):
        xk = X[6 * k : 6 * k + 6]
        xbar = xk.mean(0)
        S = (xk - xbar).T @ (xk - xbar)
        kn, nun = 0.5 + 6, 5.0 + 6
        mn = 6 * xbar / kn
        psin = prior.scale + S + 0.5 * 6 / kn * np.outer(xbar, xbar)
        e_sigma = psin / (nun - 2 - 1)
        _close(cov[k::2], e_sigma)
        _close(means[k::2], mn)
        # Cov(mu) = E[Sigma] / kappa_n; compare the empirical covariance entries
        emp = np.cov(means[k::2], rowvar=False)
        np.testing.assert_allclose(emp, e_sigma / kn, rtol=0.08)  # 15000 draws: ~2% sd
    assert own["covariances"] is cov


@pytest.mark.parametrize("covariance", ["diag", "spherical"])
def test_nig_conditional_matches_closed_form(covariance):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(10, 3)) * [1.0, 2.0, 0.5] + 3.0
    prior = bm.GMMPrior(mean=np.zeros(3), scale=np.diag([1.0, 2.0, 0.3]), dof=6.0)
    conj = _conjugate._Conj.from_prior(prior, covariance)
    counts, sums, scatter = _fixed_stats(rng, X, 1)
    n = 20000
    c, s, sc = _repeat(n, counts, sums, scatter)
    means, cov, chol, own = _conjugate.draw_components(rng, conj, c, s, sc)
    k0, xbar = prior.mean_shrinkage, X.mean(0)
    S = (X - xbar).T @ (X - xbar)
    kn = k0 + 10
    shrink = k0 * 10 / kn
    if covariance == "diag":
        a = (6.0 + 10) / 2
        b = (np.diag(prior.scale) + np.diag(S) + shrink * xbar**2) / 2
    else:
        a = (6.0 + 10 * 3) / 2
        b = (np.trace(prior.scale) / 3 + np.trace(S) + shrink * xbar @ xbar) / 2
    _close(own["variances"], b / (a - 1))
    _close(means, 10 * xbar / kn)
    np.testing.assert_allclose(np.diagonal(cov, axis1=1, axis2=2), (chol**2).sum(-1))
    # the variances follow InvGamma(a, b) as a whole (KS against scipy)
    v = own["variances"] if covariance == "spherical" else own["variances"][:, 0]
    b0 = b if covariance == "spherical" else b[0]
    assert stats.kstest(v, stats.invgamma(a, scale=b0).cdf).pvalue > 1e-4


@pytest.mark.parametrize("covariance", ["full", "tied", "diag", "spherical"])
def test_empty_components_reproduce_the_prior(covariance):
    """Likelihood off (no observations): component draws have the prior's moments."""
    rng = np.random.default_rng(6)
    D = 2
    prior = bm.GMMPrior(mean=np.zeros(D), scale=np.array([[1.0, 0.3], [0.3, 2.0]]), dof=8.0)
    conj = _conjugate._Conj.from_prior(prior, covariance)
    K = 3 if covariance == "tied" else 15000
    reps = 5000 if covariance == "tied" else 1
    covs, means = [], []
    for _ in range(reps):
        m, c, _, _ = _conjugate.draw_components(
            rng, conj, np.zeros(K, dtype=np.int64), np.zeros((K, D)), np.zeros((K, D, D))
        )
        means.append(m[:1] if covariance == "tied" else m)
        covs.append(c[:1] if covariance == "tied" else c)
    means, covs = np.concatenate(means), np.concatenate(covs)
    nu = 8.0
    if covariance in ("full", "tied"):
        e_sigma = prior.scale / (nu - D - 1)
    elif covariance == "diag":
        e_sigma = np.diag(np.diag(prior.scale)) / (nu - 2)
    else:
        e_sigma = np.eye(D) * np.trace(prior.scale) / D / (nu - 2)
    _close(covs, e_sigma)
    _close(means, prior.mean)
    # mu | Sigma ~ N(0, Sigma / kappa0): the mean's variance is E[Sigma] / kappa0
    np.testing.assert_allclose(
        means.var(0), np.diag(e_sigma) / prior.mean_shrinkage, rtol=0.1
    )  # heavy-tailed draws (t with nu - D + 1 dof): 10% covers ~4 sd of the variance estimate


def test_log_dirichlet_moments():
    rng = np.random.default_rng(7)
    a = np.array([0.01, 0.5, 3.0])
    lw = np.array([_conjugate.log_dirichlet(rng, a) for _ in range(4000)])
    assert np.all(np.isfinite(lw))
    _close(np.exp(lw), a / a.sum())


# ---------------------------------------------------------------------------- prior runs
def _prior_chain(model, sweeps, seed=0, burn=200):
    """Run sweeps with every component at the same fixed parameters: the likelihood is
    the same for every allocation, so the chain targets the prior of (z, weights, K).
    (The split-merge moves are checked by exact enumeration instead.)"""
    cfg = model.bayesmix_config
    # no split-merge moves: they integrate the parameters out, which are held fixed here
    spec = __import__("dataclasses").replace(gibbs._spec(cfg), sm_conj=None)
    w = np.full(2, 0.5)
    m = np.repeat(cfg.X.mean(0)[None], 2, axis=0)
    c = np.repeat(np.eye(cfg.X.shape[1])[None], 2, axis=0)
    st = gibbs._initial_state(cfg, spec, w, m, c)
    st.means = np.zeros_like(st.means)
    st.chol = np.broadcast_to(np.eye(cfg.X.shape[1]), st.chol.shape).copy()
    rng = np.random.default_rng(seed)
    rec = []
    sweep = _gibbs_sweeps._SWEEPS[spec.kind]
    orig = _gibbs_sweeps._update_components
    try:
        _gibbs_sweeps._update_components = lambda spec, st, rng: None
        for i in range(burn + sweeps):
            sweep(spec, st, rng)
            if i >= burn:
                rec.append((st.alpha, st.K, (st.counts > 0).sum(), np.exp(st.log_w)))
    finally:
        _gibbs_sweeps._update_components = orig
    return rec


def _ess(x):
    import arviz_stats as azs

    return float(azs.ess(np.asarray(x, dtype=float)[None, :], method="mean"))


def test_dp_concentration_and_sticks_reproduce_the_prior(data):
    model = build_dpgmm(
        data, truncation=10, prior=bm.GMMPrior.from_data(data, 1).with_(dp_concentration=(2.0, 1.5))
    )
    rec = _prior_chain(model, 3000)
    alpha = np.array([r[0] for r in rec])
    # marginal of the concentration: Gamma(shape 2, rate 1.5), mean 4/3, sd sqrt(2)/1.5
    _close(alpha, 2.0 / 1.5, se_scale=np.sqrt(2.0) / 1.5 / np.sqrt(_ess(alpha)))
    assert stats.kstest(alpha[::10], stats.gamma(2.0, scale=1 / 1.5).cdf).pvalue > 1e-4
    # first stick-breaking weight: E[v1] = E[1 / (1 + a)] under the Gamma prior
    w1 = np.array([r[3][0] for r in rec])
    grid = stats.gamma(2.0, scale=1 / 1.5)
    e_v1 = grid.expect(lambda a: 1.0 / (1.0 + a))
    _close(w1, e_v1, se_scale=w1.std() / np.sqrt(_ess(w1)))


def test_mfm_k_reproduces_k_prior(data):
    kp = np.array([0.1, 0.3, 0.2, 0.25, 0.15])
    model = build_mfm(data, k_prior=kp, max_components=5)
    rec = _prior_chain(model, 3000)
    K = np.array([r[1] for r in rec])
    freq = np.bincount(K, minlength=6)[1:] / K.size
    se = np.sqrt(kp * (1 - kp) / _ess(K))
    np.testing.assert_array_less(np.abs(freq - kp), Z * se)
    kplus = np.array([r[2] for r in rec])
    assert np.all(kplus <= K)


# ---------------------------------------------------------------------------- sampling
def _gibbs(model, **kw):
    kw = dict(dict(draws=30, tune=20, chains=2, random_seed=3, progressbar=False), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        return bm.sample(model, sampler="gibbs", **kw)


@pytest.fixture(scope="module")
def em2(data):
    return bm.fit_em(data, 2, prior=bm.GMMPrior.from_data(data, 2), random_seed=0)


def test_bit_reproducible_and_cores_independent(data, em2):
    model = build_dpgmm(data, truncation=6)
    a = _gibbs(model, init=em2)  # cores=None: as PyMC, min(4, CPUs) threads
    b = _gibbs(model, init=em2)
    c = _gibbs(model, init=em2, cores=2)
    d1 = _gibbs(model, init=em2, cores=1)
    for v in a["posterior"].data_vars:
        np.testing.assert_array_equal(a["posterior"][v].values, b["posterior"][v].values)
        np.testing.assert_array_equal(a["posterior"][v].values, c["posterior"][v].values)
        np.testing.assert_array_equal(a["posterior"][v].values, d1["posterior"][v].values)
    # the default start (EM fits with K = 1 .. 6) is reproducible too
    e = _gibbs(model, draws=3, tune=0)
    f = _gibbs(model, draws=3, tune=0)
    np.testing.assert_array_equal(e["posterior"]["means"].values, f["posterior"]["means"].values)
    d = _gibbs(model, init=em2, random_seed=4)
    assert not np.array_equal(a["posterior"]["means"].values, d["posterior"]["means"].values)


def _layout(dt):
    return {v: dt["posterior"][v].dims for v in dt["posterior"].data_vars}


@pytest.mark.parametrize("covariance", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("kind", ["gmm", "dpgmm"])
def test_layout_matches_the_pymc_model(data, covariance, kind, em2):
    if kind == "gmm":
        model = build_gmm(data, 2, covariance=covariance)
    else:
        model = build_dpgmm(data, truncation=4, covariance=covariance)
    dt = _gibbs(model, draws=4, tune=2, init=em2, allocations=True)
    post = dt["posterior"]
    for rv in [*model.free_RVs, *model.deterministics]:
        dims = model.named_vars_to_dims.get(rv.name, ())
        assert post[rv.name].dims == ("chain", "draw", *dims), rv.name
        assert post[rv.name].shape[2:] == tuple(model.coords[d].__len__() for d in dims)
    assert post["covariances"].dims[2:] == ("component", "feature", "feature2")
    assert post["n_occupied"].dims == ("chain", "draw")
    assert post["allocations"].dims == ("chain", "draw", "obs")
    assert np.issubdtype(post["allocations"].dtype, np.integer)
    assert dt["log_likelihood"]["X"].dims == ("chain", "draw", "obs")
    assert dt.attrs["sampler"] == "gibbs" and dt.attrs["model"] == kind
    assert dt.attrs["covariance"] == covariance
    assert bm.GMMPrior.from_dict(__import__("json").loads(dt.attrs["prior"])) == (
        model.bayesmix_config.prior
    )
    # allocations agree with n_occupied; weights are a distribution
    occ = np.array([[np.unique(z).size for z in ch] for ch in post["allocations"].values])
    np.testing.assert_array_equal(occ, post["n_occupied"].values)
    np.testing.assert_allclose(post["weights"].sum("component"), 1.0, rtol=1e-12)


def test_layout_matches_nuts(data):
    model = build_gmm(data, 2)
    g = _gibbs(model, draws=5, tune=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = bm.sample(
            model, sampler="nuts", draws=5, tune=5, chains=2, random_seed=1, progressbar=False
        )
    assert n.attrs["sampler"] == "nuts"
    assert set(n.children) <= set(g.children) | {"sample_stats"}
    for v, dims in _layout(n).items():
        assert _layout(g)[v] == dims, v
    assert set(_layout(g)) - set(_layout(n)) <= {"n_occupied", "allocations"}
    for key in ("model", "n_components", "covariance", "prior", "covariance_prior"):
        assert g.attrs[key] == n.attrs[key], key


def test_allocations_stored_only_when_asked(data):
    dt = _gibbs(build_gmm(data, 2), draws=5, tune=0)
    assert "allocations" not in dt["posterior"].data_vars
    assert dt.attrs["allocations_stored"] == 0 and "not stored" in dt.attrs["allocations_note"]
    assert "n_occupied" in dt["posterior"].data_vars
    dt = _gibbs(build_gmm(data, 2), draws=5, tune=0, allocations=True)
    z = dt["posterior"]["allocations"]
    assert z.dims == ("chain", "draw", "obs") and z.dtype == np.int32
    assert dt.attrs["allocations_stored"] == 1


def test_mfm_output(data):
    model = build_mfm(data, max_components=8, covariance="diag")
    dt = _gibbs(model, draws=40)
    post = dt["posterior"]
    K = post["n_components"].values
    assert post["weights"].sizes["component"] == 8
    assert np.all(post["n_occupied"].values <= K) and np.all(K >= 1) and np.all(K <= 8)
    w = post["weights"].values
    absent = np.arange(8)[None, None] >= K[..., None]
    assert np.all(w[absent] == 0) and np.all(w[~absent] > 0)
    for v in ("means", "covariances", "variances"):
        assert np.all(np.isfinite(post[v].values)), v
    # absent components sit at the prior mode
    prior = model.bayesmix_config.prior
    np.testing.assert_allclose(
        post["means"].values[absent], np.broadcast_to(prior.mean, (absent.sum(), 2))
    )
    assert dt.attrs["model"] == "mfm" and dt.attrs["max_components"] == 8
    # two clusters 6 sd apart: the posterior keeps both
    assert np.mean(post["n_occupied"].values >= 2) > 0.9
    # labels of an MFM are not comparable across draws: label-based analysis refuses,
    # the label-invariant ones work
    with pytest.raises(ValueError, match="mixture-of-finite-mixtures"):
        bm.membership(dt)
    cc = bm.coclustering(dt)
    assert cc.shape == (len(data), len(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isfinite(float(bm.loo(dt).elpd))


def test_analysis_functions_on_a_gibbs_result(data):
    model = build_gmm(data, 2)
    dt = _gibbs(model, draws=100, tune=50)
    mem = bm.membership(dt, relabel=False)
    assert mem["probability"].shape == (len(data), 2)
    # clusters 6 sd apart: every observation belongs to its cluster with probability ~1
    far = np.linalg.norm(data - [6.0, 6.0], axis=1) < np.linalg.norm(data, axis=1)
    lab = mem["label"].values
    assert len(set(lab[far])) == 1 and len(set(lab[~far])) == 1 and lab[far][0] != lab[~far][0]
    assert float(mem["max_probability"].min()) > 0.99
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = bm.loo(dt)
    # the two clusters are 6 sd apart: elpd close to the EM fit's log-likelihood
    em = bm.fit_em(data, 2, prior=model.bayesmix_config.prior, random_seed=0)
    ll_em = float(np.sum(em.score_samples(data)))
    elpd = float(getattr(loo, "elpd", getattr(loo, "elpd_loo", np.nan)))
    assert np.isfinite(elpd)
    assert ll_em - 20 < elpd < ll_em  # loo costs ~ p_loo (about 11 parameters)
    cc = bm.coclustering(dt)
    assert np.asarray(cc).shape == (len(data), len(data))
    rel = bm.relabel(dt)
    assert rel["posterior"]["means"].dims == dt["posterior"]["means"].dims
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = bm.compare_fits(em, dt)
        waic = bm.waic(dt)
    assert cmp.ari > 0.95  # the EM MAP and the posterior allocate the two clusters alike
    assert abs(float(waic.elpd) - elpd) < 2.0  # LOO and WAIC agree on this easy posterior


# ---------------------------------------------------------------------------- defaults, errors
def test_default_sampler_choice(data, monkeypatch):
    assert _choice.resolve_sampler(build_dpgmm(data, truncation=4), None) == "gibbs"
    assert _choice.resolve_sampler(build_mfm(data), None) == "gibbs"
    # finite with the conjugate prior: Gibbs at every size (benchmarks/RESULTS.md,
    # "gibbs-rule"), K = 1 and small models included; NUTS one keyword away
    for K in (1, 2, 12):
        for cov in ("full", "diag", "spherical", "tied"):
            assert _choice.resolve_sampler(build_gmm(data, K, covariance=cov), None) == "gibbs"
    assert _choice.resolve_sampler(build_gmm(data, 2), "nuts") == "nuts"
    assert _choice._n_params("full", 2, 2) == 11 and _choice._n_params("full", 5, 5) == 104
    assert _choice._n_params("tied", 3, 2) == 11 and _choice._n_params("spherical", 3, 2) == 11
    # the earlier rule is still selectable: NUTS up to 60 free parameters, Gibbs above
    monkeypatch.setattr(_choice, "FINITE_DEFAULT", "auto")
    assert _choice.resolve_sampler(build_gmm(data, 2), None) == "nuts"  # 11 parameters
    assert _choice.resolve_sampler(build_gmm(data, 12), None) == "gibbs"  # 71 parameters
    monkeypatch.setattr(_choice, "FINITE_DEFAULT", "nuts")
    assert _choice.resolve_sampler(build_gmm(data, 12), None) == "nuts"
    monkeypatch.undo()
    assert _choice.resolve_sampler(build_gmm(data, 2), None, nuts_options=True) == "nuts"
    assert _choice.resolve_sampler(build_dpgmm(data, truncation=4), None, nuts_options=True) == (
        "nuts"
    )
    lkj = bm.GMMPrior.from_data(data, 2).with_(covariance_prior="lkj")
    assert _choice.resolve_sampler(build_gmm(data, 2, prior=lkj), None) == "nuts"


def test_bad_input(data):
    lkj = bm.GMMPrior.from_data(data, 2).with_(covariance_prior="lkj")
    with pytest.raises(ValueError, match="sampler='nuts'"):
        bm.sample(build_gmm(data, 2, prior=lkj), sampler="gibbs")
    with pytest.raises(ValueError, match="sampler='gibbs'"):
        bm.sample(build_mfm(data), sampler="nuts")
    weighted = build_gmm(data, 2, sample_weight=np.ones(len(data)))
    assert _choice.resolve_sampler(weighted, None) == "nuts"
    with pytest.raises(ValueError, match=r"sample_weight.*sampler='nuts'"):
        bm.sample(weighted, sampler="gibbs")
    with pytest.raises(ValueError, match="sampler must be one of"):
        bm.sample(build_gmm(data, 2), sampler="hmc")
    with pytest.raises(TypeError, match="unexpected keyword"):
        bm.sample(build_gmm(data, 2), sampler="gibbs", step=object())
    with pytest.raises(ValueError, match="draws must be"):
        bm.sample(build_gmm(data, 2), sampler="gibbs", draws=0)
    for bad, msg in [
        ([0.5, -0.1, 0.6], "non-negative"),
        ([0.5, 0.4], "summing to 1"),
        (np.r_[np.zeros(5), 1.0], "all its mass above max_components"),
        ([[0.5, 0.5]], "1-D array"),
    ]:
        with pytest.raises(ValueError, match=msg) as info:
            build_mfm(data, k_prior=bad, max_components=5)
        assert "k_prior" in str(info.value)
    with pytest.raises(ValueError, match="all its mass above"):
        build_mfm(data, k_prior=stats.randint(10, 12), max_components=5)
    with pytest.raises(ValueError, match="max_components must be an integer >= 2"):
        build_mfm(data, max_components=1)
    with pytest.raises(TypeError, match="max_components"):
        build_mfm(data, max_components=2.5)


def test_k_prior_forms(data):
    bnb = stats.betanbinom(n=1, a=4, b=3)
    p = build_mfm(data, max_components=30).bayesmix_config.k_prior
    np.testing.assert_allclose(p, bnb.pmf(np.arange(30)) / bnb.cdf(29), rtol=1e-12)
    p = build_mfm(data, k_prior=[0.2, 0.3, 0.5], max_components=5).bayesmix_config.k_prior
    np.testing.assert_allclose(p, [0.2, 0.3, 0.5, 0, 0])
    p = build_mfm(data, k_prior=[0.2, 0.3, 0.5], max_components=2).bayesmix_config.k_prior
    np.testing.assert_allclose(p, [0.4, 0.6])


def test_truncation_warning():
    X, _ = bm.simulate(90, [1 / 3] * 3, [[0, 0], [8, 0], [0, 8]], [np.eye(2)] * 3, random_seed=1)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        dt = bm.sample(
            build_dpgmm(X, truncation=2),
            draws=30,
            tune=10,
            chains=1,
            random_seed=0,
            progressbar=False,
        )
    # three clusters 8 sd apart, two components: the last one keeps about 2/3 of the mass
    assert float(dt["posterior"]["weights"].values[..., -1].mean()) > 0.3
    warned = [r for r in rec if issubclass(r.category, TruncationWarning)]
    assert len(warned) == 1 and "Increase truncation" in str(warned[0].message)


# ---------------------------------------------------------------------------- split-merge
def _log_marginal_chain_rule(X, prior, covariance):
    """Marginal likelihood as a product of scipy Student-t predictives (independent of
    the closed form): p(x_1..n) = prod_i p(x_i | x_1..i-1) under the conjugate prior."""
    k0, nu0 = prior.mean_shrinkage, prior.dof
    D = X.shape[1]
    out = 0.0
    for i in range(len(X)):
        prev = X[:i]
        n = len(prev)
        kn = k0 + n
        xbar = prev.mean(0) if n else np.zeros(D)
        S = (prev - xbar).T @ (prev - xbar) if n else np.zeros((D, D))
        mn = n * xbar / kn  # prior mean 0
        if covariance == "full":
            psin = prior.scale + S + k0 * n / kn * np.outer(xbar, xbar)
            dof = nu0 + n - D + 1
            out += stats.multivariate_t(mn, psin * (kn + 1) / (kn * dof), df=dof).logpdf(X[i])
        else:  # diag: independent univariate t per feature
            psi = np.diag(prior.scale)
            bn = (psi + np.diag(S) + k0 * n / kn * xbar**2) / 2
            an = (nu0 + n) / 2
            scale = np.sqrt(bn * (kn + 1) / (an * kn))
            out += stats.t(2 * an, loc=mn, scale=scale).logpdf(X[i]).sum()
    return out


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_log_marginal_matches_predictive_chain_rule(covariance):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(7, 3)) + np.array([0.5, -1.0, 2.0])
    prior = bm.GMMPrior(mean=np.zeros(3), scale=np.diag([1.0, 2.0, 0.5]) + 0.1, dof=5.0)
    if covariance == "diag":
        prior = prior.with_(scale=np.diag(np.diag(prior.scale)))
    ct = {"full": 0, "diag": 2}[covariance]
    got = gk.log_marginal(
        len(X),
        X.sum(0),
        X.T @ X,
        ct,
        prior.mean_shrinkage,
        prior.dof,
        prior.scale,
        np.diag(prior.scale).copy(),
        np.empty((2, 3, 3)),
    )
    np.testing.assert_allclose(got, _log_marginal_chain_rule(X, prior, covariance), rtol=1e-10)


@pytest.mark.parametrize("ct", [0, 2, 3])
@pytest.mark.parametrize("n", [0, 1, 6])
def test_cached_predictive_is_the_ratio_of_marginals(ct, n):
    """The collapsed sweep's Student-t predictive (_set_pred / _log_pred) equals
    log_marginal(cluster + x) - log_marginal(cluster), for full (0), diag (2) and
    spherical (3) covariance, an empty cluster (the prior predictive) included."""
    rng = np.random.default_rng(ct + n)
    D = 3
    C = rng.normal(size=(n, D)) * [1.0, 2.0, 0.5] + 0.3
    x = rng.normal(size=D)
    Psi0 = np.array([[1.0, 0.2, 0.0], [0.2, 2.0, 0.1], [0.0, 0.1, 0.5]])
    psi = np.diag(Psi0).copy() if ct != 3 else np.array([1.1])
    k0, nu0 = 0.4, 5.5
    work = np.empty((2, D, D))

    def lm(Y):
        return gk.log_marginal(len(Y), Y.sum(0), Y.T @ Y, ct, k0, nu0, Psi0, psi, work)

    expected = lm(np.vstack([C, x])) - lm(C)
    mu, L, inv = np.zeros(D), np.zeros((D, D)), np.zeros(D)
    g = _collapsed_kernels._pred_lgamma(ct, n, nu0, D)
    const, h = _collapsed_kernels._set_pred(
        ct, n, C.sum(0), C.T @ C, k0, nu0, Psi0, psi, mu, L, inv, np.empty((D, D)), g
    )
    got = _collapsed_kernels._log_pred(ct, x, mu, L, inv, const, h, np.empty(D))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-10)


def test_spherical_log_marginal_matches_diag_in_one_dimension():
    X = np.array([[0.3], [1.2], [-0.7], [2.0]])
    args = (4, X.sum(0), X.T @ X)
    rest = (0.2, 4.0, np.eye(1) * 1.5, np.array([1.5]), np.empty((2, 1, 1)))
    np.testing.assert_allclose(
        gk.log_marginal(*args, 3, *rest), gk.log_marginal(*args, 2, *rest), rtol=1e-12
    )
    prior = bm.GMMPrior(mean=np.zeros(1), scale=np.eye(1) * 1.5, dof=4.0, mean_shrinkage=0.2)
    np.testing.assert_allclose(
        gk.log_marginal(*args, 0, *rest), _log_marginal_chain_rule(X, prior, "full"), rtol=1e-10
    )


@pytest.mark.parametrize(
    "sweep",
    ["collapsed", "blocked", pytest.param("blocked+split-merge", marks=pytest.mark.slow)],
)
def test_finite_gibbs_matches_exact_enumeration(sweep, monkeypatch):
    """K = 2 components, n = 6 one-dimensional points: the 64 labelled allocations
    enumerated with Dirichlet-multinomial prior and closed-form marginal likelihoods;
    the sampler's co-clustering frequencies match within Monte-Carlo error, with the
    default sweep at this N (collapsed sweeps + split-merge moves) and with the blocked
    sweep used above ``FINITE_COLLAPSED_MAX_N`` (with and without split-merge moves)."""
    import itertools

    X = np.array([[-1.2], [-0.9], [-0.2], [0.4], [1.1], [1.5]])
    prior = bm.GMMPrior(mean=np.zeros(1), scale=np.eye(1) * 0.5, dof=3.0, mean_shrinkage=0.3)
    alpha = prior.weight_concentration
    work = np.empty((2, 1, 1))
    logp, co = [], []
    for z in itertools.product([0, 1], repeat=6):
        z = np.array(z)
        lp = 0.0
        for k in (0, 1):
            xk = X[z == k]
            lp += gammaln(len(xk) + alpha)
            if len(xk):
                lp += gk.log_marginal(
                    len(xk), xk.sum(0), xk.T @ xk, 0, 0.3, 3.0, prior.scale, np.array([0.5]), work
                )
        logp.append(lp)
        co.append(z[:, None] == z[None, :])
    p = np.exp(np.array(logp) - max(logp))
    p /= p.sum()
    exact = np.tensordot(p, np.array(co, dtype=float), axes=1)
    model = build_gmm(X, 2, prior=prior)
    if sweep != "collapsed":
        monkeypatch.setattr(_gibbs_sweeps, "FINITE_COLLAPSED_MAX_N", 0)
    monkeypatch.setattr(_gibbs_sweeps, "FINITE_SPLIT_MERGE", sweep == "blocked+split-merge")
    dt = _gibbs(model, draws=4000, tune=200, chains=2, allocations=True)
    zs = dt["posterior"]["allocations"].values.reshape(-1, 6)
    freq = (zs[:, :, None] == zs[:, None, :]).mean(0)
    # draws are autocorrelated: standard errors from an effective size of 1/4 the draws
    # (conservative; the Gibbs chain on 6 points mixes within a few sweeps)
    se = np.sqrt(exact * (1 - exact) / (zs.shape[0] / 4)) + 1e-3
    np.testing.assert_array_less(np.abs(freq - exact), Z * se)


def _set_partitions(n):
    """All set partitions of range(n) as label arrays (restricted growth strings)."""
    out = [[0]]
    for _ in range(n - 1):
        out = [[*p, k] for p in out for k in range(max(p) + 2)]
    return [np.array(p) for p in out]


#: the exact small posterior of the split-merge and collapsed-sweep tests: 6 points in 1-D
_X6 = np.array([[-1.2], [-0.9], [-0.2], [0.4], [1.1], [1.5]])
_K_PRIOR4 = np.array([0.3, 0.3, 0.2, 0.2])


def _exact_small_posterior(kind):
    """Kernel constants and the exact posterior of z on ``_X6`` by enumeration: finite
    K = 3 labelled (kind 0), truncated DP T = 4 labelled (1), MFM partition with
    K <= 4 (2). Returns (T, conj, prior tuple, allocations, their probabilities)."""
    import itertools

    prior = bm.GMMPrior(mean=np.zeros(1), scale=np.eye(1) * 0.5, dof=3.0, mean_shrinkage=0.3)
    conj = _conjugate._Conj.from_prior(prior, "full")
    c0 = gk.prior_constant(0, 3.0, conj.Psi0, conj.psi)
    cj = (0, 0.3, 3.0, conj.Psi0, conj.psi, c0)
    T = 3 if kind == 0 else 4
    pr = (kind, 0.7, np.log(_K_PRIOR4) if kind == 2 else np.zeros(1), False)
    work = np.empty((2, 1, 1))

    def logpost(z):
        counts = np.bincount(z, minlength=T).astype(np.int64)
        lp = gk._log_prior_counts(counts, pr)
        for k in range(T):
            xk = _X6[z == k]
            if len(xk):
                lp += gk.log_marginal(
                    len(xk), xk.sum(0), xk.T @ xk, 0, 0.3, 3.0, conj.Psi0, conj.psi, work
                )
        return lp

    zs = (
        _set_partitions(6)
        if kind == 2
        else [np.array(z) for z in itertools.product(range(T), repeat=6)]
    )
    lp = np.array([logpost(z) for z in zs])
    p = np.exp(lp - lp.max())
    return T, cj, pr, zs, p / p.sum()


def _assert_close_to_exact(freq, exact, n_eff):
    """Sampled co-clustering frequencies within Z binomial standard errors (effective
    sample size ``n_eff``, plus 1e-3 for exact 0/1 entries) of the enumeration."""
    exact = np.clip(exact, 0.0, 1.0)
    se = np.sqrt(exact * (1 - exact) / n_eff) + 1e-3
    np.testing.assert_array_less(np.abs(freq - exact), Z * se)


def _coclustering(zs, p):
    return np.tensordot(p, np.array([z[:, None] == z[None, :] for z in zs], float), axes=1)


@pytest.mark.parametrize("order", ["random", "nearest"])
@pytest.mark.parametrize("kind", [0, 1, 2])
def test_split_merge_alone_targets_the_exact_posterior(kind, order):
    """Only split-merge moves on z (finite K = 3 labelled, truncated DP T = 4 labelled,
    MFM partition), members allocated in a random order or nearest to i first:
    co-clustering frequencies match exact enumeration over the 4^6 labelled allocations
    (kinds 0, 1) or the 203 set partitions (kind 2)."""
    X = _X6
    T, cj, pr, zs, p = _exact_small_posterior(kind)
    exact = _coclustering(zs, p)
    rng = np.random.default_rng(11)
    z = np.zeros(6, dtype=np.int64)
    counts = np.bincount(z, minlength=T).astype(np.int64)
    n_iter = 20000
    freq = np.zeros((6, 6))
    for _ in range(n_iter):
        i, j = rng.choice(6, 2, replace=False)
        u = rng.random(6)
        # the sampler's order: nearest to i first (a function of i and the data only)
        keys = rng.random(6) if order == "random" else np.abs(X[:, 0] - X[i, 0])
        _collapsed_kernels.split_merge(
            X, z, counts, T, i, j, keys, u, rng.random(), np.log(rng.random()), cj, pr
        )
        freq += z[:, None] == z[None, :]
    freq /= n_iter
    np.testing.assert_array_equal(counts, np.bincount(z, minlength=T))
    # autocorrelated moves: standard errors from an effective size of 1/10 the iterations
    _assert_close_to_exact(freq, exact, n_iter / 10)


@pytest.mark.parametrize("table", [True, False])
@pytest.mark.parametrize("kind", [0, 1, 2])
def test_split_merge_moves_target_the_exact_posterior(kind, table, monkeypatch):
    """The sampler's batch of moves (split_merge_moves) with its pair distribution
    (_sm_pairs): with the order table, i favouring sparse points and j mostly one of
    its 2 nearest neighbours (a distribution that depends on the data, not on z),
    members nearest-first from the table; without it, uniform pairs and members sorted
    per move. Co-clustering frequencies match exact enumeration."""
    from types import SimpleNamespace

    monkeypatch.setattr(_gibbs_sweeps, "SM_MIN_NEIGHBOURS", 2)
    X = _X6
    T, cj, pr, zs, p = _exact_small_posterior(kind)
    exact = _coclustering(zs, p)
    order = _collapsed_kernels.nearest_order(X) if table else np.empty((0, 0), np.int32)
    sm_self = np.argmax(order == np.arange(6)[:, None], axis=1) if table else None
    launch = _gibbs_sweeps._sm_launch(X, order) if table else None
    spec = SimpleNamespace(Xc=X, sm_order=order, sm_self=sm_self, sm_launch=launch)
    rng = np.random.default_rng(13)
    z = np.zeros(6, dtype=np.int64)
    counts = np.bincount(z, minlength=T).astype(np.int64)
    n_iter, M = 4000, 5
    freq = np.zeros((6, 6))
    for _ in range(n_iter):
        pairs = _gibbs_sweeps._sm_pairs(spec, rng, M)
        u, us, lu = rng.random((M, 6)), rng.random(M), np.log(rng.random(M))
        _collapsed_kernels.split_merge_moves(X, X, order, z, counts, T, pairs, u, us, lu, cj, pr)
        freq += z[:, None] == z[None, :]
    freq /= n_iter
    np.testing.assert_array_equal(counts, np.bincount(z, minlength=T))
    # 5 moves per recorded state: standard errors from an effective size of n_iter / 4
    _assert_close_to_exact(freq, exact, n_iter / 4)


def test_split_merge_pairs_are_mostly_neighbours():
    """_sm_pairs: i != j; a fraction SM_NEIGHBOUR_PAIRS of the pairs (plus the uniform
    ones that land there) are among i's k nearest others, uniformly over them, also
    where i has duplicates (i is not first in its own row)."""
    from types import SimpleNamespace

    N = 200
    X = np.random.default_rng(0).normal(size=(N, 2))
    X[[50, 51]] = X[10]
    order = _collapsed_kernels.nearest_order(X)
    sm_self = np.argmax(order == np.arange(N)[:, None], axis=1)
    assert sm_self.max() > 0
    launch = _gibbs_sweeps._sm_launch(X, order)
    spec = SimpleNamespace(Xc=X, sm_order=order, sm_self=sm_self, sm_launch=launch)
    M = 20_000
    i, j = _gibbs_sweeps._sm_pairs(spec, np.random.default_rng(1), M).T
    assert np.all(i != j)
    # i follows the launch probabilities (a chi-square-free check: the 20 sparsest
    # points' share, binomial standard error)
    p = np.diff(launch, prepend=0.0)
    sparse = np.argsort(p)[-20:]
    share, expected_share = np.isin(i, sparse).mean(), p[sparse].sum()
    assert abs(share - expected_share) < 4.5 * np.sqrt(expected_share * (1 - expected_share) / M)
    k = max(_gibbs_sweeps.SM_MIN_NEIGHBOURS, int(_gibbs_sweeps.SM_NEIGHBOURS * N))
    rank = np.argmax(order[i] == j[:, None], axis=1)  # j's position in i's row
    rank -= rank > sm_self[i]  # ... among the others
    near = np.mean(rank < k)
    expected = _gibbs_sweeps.SM_NEIGHBOUR_PAIRS + (1 - _gibbs_sweeps.SM_NEIGHBOUR_PAIRS) * k / (
        N - 1
    )
    # binomial standard error of a proportion from 20,000 pairs: about 0.002
    assert abs(near - expected) < 4.5 * np.sqrt(expected * (1 - expected) / M)
    counts = np.bincount(rank[rank < k], minlength=k)
    assert counts.min() > 0.8 * counts.mean()  # uniform over the k neighbours


def test_split_merge_launch_favours_sparse_points():
    """_sm_launch: half the mass uniform, half in proportion to the k-NN ball's volume:
    an isolated point gets far more than a point in a dense cloud, every point keeps at
    least (1 - SM_SPARSE_LAUNCH) / N, and all-duplicate data fall back to uniform."""
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(0, 0.1, size=(99, 2)), [[5.0, 5.0]]])
    p = np.diff(_gibbs_sweeps._sm_launch(X, _collapsed_kernels.nearest_order(X)), prepend=0.0)
    np.testing.assert_allclose(p.sum(), 1.0)
    assert p[99] > 20 * np.median(p[:99])
    assert p.min() >= (1 - _gibbs_sweeps.SM_SPARSE_LAUNCH) / 100 - 1e-12
    same = np.zeros((10, 2))
    p = np.diff(_gibbs_sweeps._sm_launch(same, _collapsed_kernels.nearest_order(same)), prepend=0.0)
    np.testing.assert_allclose(p, 0.1)


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_collapsed_allocation_targets_the_exact_posterior(kind):
    """Only collapsed Gibbs sweeps on z (finite K = 3 labelled, truncated DP T = 4
    labelled, MFM partition with a static gamma): co-clustering frequencies and, for the
    labelled kinds, the slot occupancy match exact enumeration, as for split-merge."""
    X = _X6
    T, cj, _, zs, p = _exact_small_posterior(kind)
    log_v = _gibbs_sweeps.log_v_mfm(np.log(_K_PRIOR4), 0.7, 6) if kind == 2 else np.zeros(1)
    exact = _coclustering(zs, p)
    if kind != 2:  # labelled: P(slot k occupied)
        occ = np.tensordot(p, np.array([np.bincount(z, minlength=T) > 0 for z in zs], float), 1)
    rng = np.random.default_rng(12)
    z = np.zeros(6, dtype=np.int64)
    counts = np.bincount(z, minlength=T).astype(np.int64)
    n_iter = 20000
    freq = np.zeros((6, 6))
    slot = np.zeros(T)
    for _ in range(n_iter):
        _collapsed_kernels.collapsed_allocate(X, z, counts, T, rng.random(6), cj, kind, 0.7, log_v)
        freq += z[:, None] == z[None, :]
        slot += counts > 0
    freq /= n_iter
    slot /= n_iter
    np.testing.assert_array_equal(counts, np.bincount(z, minlength=T))
    # a sweep moves every point, so draws are nearly independent here; standard errors
    # from an effective size of 1/10 the sweeps anyway (as for split-merge)
    _assert_close_to_exact(freq, exact, n_iter / 10)
    if kind != 2:  # labelled: which slots are occupied is part of the target
        se = np.sqrt(occ * (1 - occ) / (n_iter / 10)) + 1e-3
        np.testing.assert_array_less(np.abs(slot - occ), Z * se)


def test_log_v_mfm_matches_the_partition_prior():
    """gamma V(t + 1) / V(t) is the MFM's new-cluster weight: the partition prior of
    _log_mfm_partition, summed out K, gives the same ratios."""
    log_k = np.log(np.array([0.1, 0.4, 0.3, 0.2]))
    lv = _gibbs_sweeps.log_v_mfm(log_k, 0.7, 5)
    # p(C) = V(t) prod_c Gamma(n_c + g) / Gamma(g): compare two partitions of 5 points
    for counts in ([5, 0, 0, 0], [2, 3, 0, 0], [1, 1, 3, 0], [2, 1, 1, 1]):
        c = np.array(counts, dtype=np.int64)
        t = int((c > 0).sum())
        direct = gk._log_mfm_partition(c, 0.7, log_k, False)
        from scipy.special import gammaln

        via_v = lv[t] + (gammaln(c[c > 0] + 0.7) - gammaln(0.7)).sum()
        assert direct == pytest.approx(via_v, rel=1e-12)
    assert lv[5] == -np.inf and lv[4] > -np.inf


# ---------------------------------------------------------------------------- Gibbs vs NUTS
def _summaries(dt, X, grid, pairs):
    """Per-draw label-invariant quantities (chain, draw, q): total log-likelihood, mixture
    density at grid points, co-clustering probabilities of observation pairs."""
    from bayesmix.core._gaussian import log_mixture_density, responsibilities

    post = dt["posterior"]
    w, m, c = (post[v].values for v in ("weights", "means", "covariances"))
    C, S, K = w.shape
    flat = (w.reshape(C * S, K), m.reshape(C * S, K, -1), c.reshape(C * S, K, *c.shape[-2:]))
    ll = dt["log_likelihood"]["X"].sum("obs").values.reshape(C * S, 1)
    dens = np.exp(log_mixture_density(grid, *flat))
    r = responsibilities(X, *flat)
    co = np.stack([(r[:, i] * r[:, j]).sum(-1) for i, j in pairs], axis=1)
    return np.concatenate([ll, dens, co], axis=1).reshape(C, S, -1)


@pytest.mark.slow
def test_gibbs_and_nuts_agree_on_a_finite_mixture():
    import arviz_stats as azs
    import xarray as xr

    # three overlapping clusters, K = 3: an uncertain allocation for many points
    X, _ = bm.simulate(
        120,
        [0.4, 0.35, 0.25],
        [[0.0, 0.0], [2.5, 0.5], [1.0, 3.0]],
        [np.eye(2), [[1.0, 0.4], [0.4, 0.8]], 0.6 * np.eye(2)],
        random_seed=5,
    )
    model = build_gmm(X, 3)
    kw = dict(draws=1500, tune=1000, chains=2, random_seed=2, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = bm.sample(model, sampler="gibbs", **kw)
        n = bm.sample(model, sampler="nuts", **kw)
    grid = np.array([[0.0, 0.0], [2.5, 0.5], [1.0, 3.0], [1.2, 1.0], [4.0, -1.0]])
    pairs = [(0, 1), (0, 50), (10, 90), (30, 100), (60, 119)]
    means, ses = [], []
    for dt in (g, n):
        q = _summaries(dt, X, grid, pairs)
        ess = azs.ess(xr.Dataset({"q": (("chain", "draw", "k"), q)}), method="mean")["q"].values
        means.append(q.mean((0, 1)))
        ses.append(q.std((0, 1)) / np.sqrt(ess))
    # 11 quantities, each within 4.5 combined Monte-Carlo standard errors (ESS-based)
    diff = np.abs(means[0] - means[1])
    np.testing.assert_array_less(diff, Z * np.hypot(ses[0], ses[1]))


@pytest.mark.parametrize("dynamic", [False, True])
def test_k_given_partition_matches_brute_force(dynamic):
    """p(K | partition) of the telescoping sampler against a sum over labelled
    allocations of the Dirichlet-multinomial p(z | K) (N = 5, K <= 5)."""
    import itertools

    part = np.array([0, 0, 1, 0, 2])  # a partition with K+ = 3, block sizes 3, 1, 1
    kp = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
    gamma = 0.8
    spec = _gibbs_sweeps._Spec(
        kind="mfm",
        Xc=np.zeros((5, 1)),
        conj=None,
        n_slots=5,
        weight_concentration=gamma,
        log_k_prior=np.log(kp),
        dynamic=dynamic,
    )
    Ks, g, lp = _gibbs_sweeps._log_p_k(spec, np.array([3, 1, 1]), 5)
    got = np.exp(lp - lp.max())
    got /= got.sum()
    brute = []
    for K in Ks:
        gk_ = gamma / K if dynamic else gamma
        tot = 0.0
        for z in itertools.product(range(K), repeat=5):
            z = np.array(z)
            same = (z[:, None] == z[None, :]) == (part[:, None] == part[None, :])
            if same.all():
                n = np.bincount(z, minlength=K)
                tot += np.exp(
                    gammaln(K * gk_)
                    - gammaln(5 + K * gk_)
                    + (gammaln(n + gk_) - gammaln(gk_)).sum()
                )
        brute.append(kp[K - 1] * tot)
    brute = np.array(brute) / np.sum(brute)
    np.testing.assert_allclose(got, brute, rtol=1e-10)
    np.testing.assert_allclose(g, gamma / Ks if dynamic else gamma)


def test_collapsed_sweeps_per_draw_shrink_with_n():
    """Collapsed sweeps are sequential: at most COLLAPSED_POINTS_PER_DRAW observation
    updates per draw, and never fewer than one sweep."""
    from types import SimpleNamespace

    def n_sweeps(n):
        return _gibbs_sweeps._n_sweeps(SimpleNamespace(Xc=np.zeros((n, 2))))

    assert n_sweeps(272) == _gibbs_sweeps.COLLAPSED_SWEEPS == 8
    assert n_sweeps(5000) == 4
    assert n_sweeps(10_000) == 2
    assert n_sweeps(1_000_000) == 1
