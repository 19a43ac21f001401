"""Tests of the JAX Gibbs path (bayesmix.mcmc._jax_gibbs), on JAX's CPU backend.

Building blocks against exact computations (the normal-inverse-Wishart posterior
parameters and the chunked sufficient statistics against numpy, the Gumbel-max
allocation frequencies and the Bartlett Wishart draws against their closed forms), and
the whole sampler's posterior means against the numba Gibbs sampler's on simulated data
from the same EM start. Skipped without JAX (``pip install bayesmix[jax]``).

Monte-Carlo tolerances: a mean is compared within Z = 4.5 standard errors (two-sided
probability of a false failure < 1e-5 per comparison; a few dozen comparisons per run),
the standard errors from the draws' standard deviation (independent draws) or from
ArviZ's MCSE (autocorrelated chains). The seeds are fixed, so a run is deterministic;
the tolerance says how unlucky a seed would have to be to fail a correct sampler.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("jax")

import bayesmix as bm
from bayesmix.mcmc import _jax_gibbs as jg
from bayesmix.mcmc._builders import get_config

Z = 4.5  # standard errors allowed for a Monte-Carlo mean (module docstring)


@pytest.fixture(scope="module")
def jax():
    return jg._jax()


@pytest.fixture(scope="module")
def three():
    """n = 2000, D = 2, K = 3 well separated clusters (weights 0.5, 0.3, 0.2)."""
    X, _ = bm.simulate(
        2000,
        [0.5, 0.3, 0.2],
        [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]],
        [np.eye(2), [[1.0, 0.4], [0.4, 0.8]], [[0.6, -0.2], [-0.2, 1.2]]],
        random_seed=3,
    )
    return X


# ---------------------------------------------------------------------------- building blocks
def test_niw_posterior_matches_textbook_formula():
    """Psi_0 + R - s s^T / kappa_n == Psi_0 + S + k0 n / kappa_n xbar xbar^T (exact)."""
    rng = np.random.default_rng(0)
    D, K = 3, 4
    X = rng.normal(size=(50, D)) + 2.0
    z = rng.integers(0, K - 1, size=50)  # component K - 1 stays empty
    k0, nu0 = 0.3, D + 2.0
    A = rng.normal(size=(D, D))
    Psi0 = A @ A.T + np.eye(D)
    counts = np.bincount(z, minlength=K).astype(float)
    sums = np.stack([X[z == k].sum(0) for k in range(K)])
    second = np.stack([X[z == k].T @ X[z == k] for k in range(K)])
    kn, nun, mn, Psin = jg.niw_posterior(counts, sums, second, k0, nu0, Psi0)
    for k in range(K):
        n = counts[k]
        np.testing.assert_allclose([kn[k], nun[k]], [k0 + n, nu0 + n])
        if n == 0:
            np.testing.assert_allclose(mn[k], 0.0)
            np.testing.assert_allclose(Psin[k], Psi0)
            continue
        xbar = X[z == k].mean(0)
        S = (X[z == k] - xbar).T @ (X[z == k] - xbar)
        np.testing.assert_allclose(mn[k], n * xbar / (k0 + n), rtol=1e-12)
        np.testing.assert_allclose(
            Psin[k], Psi0 + S + k0 * n / (k0 + n) * np.outer(xbar, xbar), rtol=1e-10
        )


def test_allocate_statistics_exact_with_padding(jax):
    """counts / sums / second moments of the returned z, padding rows ignored."""
    rng = np.random.default_rng(1)
    n, D, K, chunk = 1003, 3, 4, 128  # 1003 rows: the last chunk is mostly padding
    X = rng.normal(size=(n, D)) * 3
    n_chunks = -(-n // chunk)
    Xp = np.zeros((n_chunks * chunk, D))
    Xp[:n] = X
    Xp[n:] = 100.0  # padding far away: it would dominate the sums if it were counted
    mask = (np.arange(n_chunks * chunk) < n).astype(float)
    means = rng.normal(size=(K, D)) * 2
    chol = np.linalg.cholesky(np.stack([np.eye(D) * (1 + k) for k in range(K)]))
    z, counts, sums, second = jg.allocate(
        jax.random.key(0),
        Xp.reshape(n_chunks, chunk, D),
        mask.reshape(n_chunks, chunk),
        np.log(np.full(K, 1 / K)),
        means,
        chol,
    )
    z = np.asarray(z).reshape(-1)[:n]
    assert len(np.unique(z)) == K  # every component drawn: the check below is not vacuous
    np.testing.assert_array_equal(np.asarray(counts), np.bincount(z, minlength=K))
    for k in range(K):
        np.testing.assert_allclose(np.asarray(sums)[k], X[z == k].sum(0), rtol=1e-10)
        np.testing.assert_allclose(np.asarray(second)[k], X[z == k].T @ X[z == k], rtol=1e-10)


def test_allocate_frequencies_match_responsibilities(jax):
    """Gumbel-max draws of one point, repeated, follow its responsibilities."""
    from scipy import stats

    D, K, reps = 2, 3, 20_000
    x = np.array([0.5, -0.3])
    w = np.array([0.2, 0.5, 0.3])
    means = np.array([[0.0, 0.0], [1.0, -1.0], [0.5, 1.0]])
    cov = np.stack([np.eye(2), [[1.0, 0.5], [0.5, 2.0]], np.eye(2) * 0.5])
    dens = w * np.array([stats.multivariate_normal(means[k], cov[k]).pdf(x) for k in range(K)])
    p = dens / dens.sum()
    Xp = np.broadcast_to(x, (reps, D)).reshape(10, reps // 10, D)
    _, counts, _, _ = jg.allocate(
        jax.random.key(5), Xp, np.ones((10, reps // 10)), np.log(w), means, np.linalg.cholesky(cov)
    )
    freq = np.asarray(counts) / reps
    np.testing.assert_array_less(np.abs(freq - p), Z * np.sqrt(p * (1 - p) / reps))


def test_inv_wishart_bartlett_means(jax):
    """E[Sigma] = Psi / (nu - D - 1) and E[Sigma^-1] = nu Psi^-1 over many draws."""
    rng = np.random.default_rng(2)
    D, draws = 3, 40_000
    A = rng.normal(size=(D, D))
    Psi = A @ A.T + np.eye(D)
    nu = np.array([9.0, 30.0])  # nu > D + 3: finite variance of Sigma
    scale = np.stack([Psi, 2 * Psi])
    keys = jax.random.split(jax.random.key(1), draws)
    cov = np.asarray(jax.vmap(lambda k: jg.inv_wishart_bartlett(k, nu, scale))(keys))
    assert cov.shape == (draws, 2, D, D)
    expected = scale / (nu - D - 1)[:, None, None]
    se = cov.std(0) / np.sqrt(draws)
    np.testing.assert_array_less(np.abs(cov.mean(0) - expected), Z * se)
    prec = np.linalg.inv(cov)
    expected_prec = nu[:, None, None] * np.linalg.inv(scale)
    se = prec.std(0) / np.sqrt(draws)
    np.testing.assert_array_less(np.abs(prec.mean(0) - expected_prec), Z * se)


# ---------------------------------------------------------------------------- the sampler
def _mcse(post, name):
    import arviz_stats as azs

    return azs.mcse(post.to_dataset()[[name]], method="mean")[name].values


def test_posterior_matches_numba_gibbs(three):
    """Posterior means of weights, means, covariances: JAX and numba agree within MC error.

    Both start at the same EM fit and the clusters are well separated, so the labels
    stay those of the EM fit (no relabelling: a label swap would show as a failure).
    The difference of two independent Monte-Carlo means is compared within Z
    combined MCSEs, sqrt(mcse_jax^2 + mcse_numba^2), for each of the 21 scalars.
    """
    model = bm.build_gmm(three, 3)
    init = bm.fit_em(three, 3, prior=get_config(model).prior, random_seed=0)
    kw = dict(init=init, draws=1000, tune=200, chains=2, random_seed=11)
    dt_j = jg.sample_gibbs_jax(model, **kw)
    dt_n = bm.sample(model, sampler="gibbs", progressbar=False, **kw)
    pj, pn = dt_j["posterior"], dt_n["posterior"]
    for name in ("weights", "means", "covariances"):
        mj = pj[name].mean(("chain", "draw")).values
        mn = pn[name].mean(("chain", "draw")).values
        se = np.sqrt(_mcse(pj, name) ** 2 + _mcse(pn, name) ** 2)
        np.testing.assert_array_less(np.abs(mj - mn), Z * se + 1e-12, err_msg=name)
    # and both near the truth (weights within 0.03 = several posterior sds at n = 2000)
    np.testing.assert_allclose(pj["weights"].mean(("chain", "draw")), [0.5, 0.3, 0.2], atol=0.03)
    assert int(pj["n_occupied"].min()) == 3


def test_layout_and_analysis_functions(three):
    """The numba sampler's layout: relabel, membership, loo take the result."""
    model = bm.build_gmm(three[:300], 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        dt = jg.sample_gibbs_jax(
            model, draws=30, tune=10, chains=2, random_seed=4, allocations=True
        )
        again = jg.sample_gibbs_jax(model, draws=30, tune=10, chains=2, random_seed=4)
    post = dt["posterior"]
    assert dt.attrs["sampler"] == "gibbs-jax" and dt.attrs["device"] == "cpu"
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["covariances"].shape == (2, 30, 3, 2, 2)
    assert post["n_occupied"].dims == ("chain", "draw")
    assert post["allocations"].shape == (2, 30, 300)
    assert "allocations" not in again["posterior"]
    np.testing.assert_array_equal(post["means"].values, again["posterior"]["means"].values)
    assert not np.array_equal(post["means"][0].values, post["means"][1].values)  # chains differ
    np.testing.assert_allclose(post["weights"].sum("component"), 1.0)
    np.testing.assert_allclose(
        dt["sample_stats"]["loglik"], dt["log_likelihood"]["X"].sum("obs"), rtol=1e-12
    )
    assert dt.attrs["log_likelihood_stored"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        lean = jg.sample_gibbs_jax(
            model, draws=30, tune=10, chains=2, random_seed=4, log_likelihood=False
        )
    assert "log_likelihood" not in lean.children  # the chunked total instead: same numbers
    np.testing.assert_allclose(
        lean["sample_stats"]["loglik"], dt["sample_stats"]["loglik"], rtol=1e-10
    )
    rel = bm.relabel(dt)
    assert rel.attrs.get("relabelled") == 1
    probs = bm.membership(rel)
    assert probs is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k at 60 draws
        assert np.isfinite(float(bm.loo(dt).elpd))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda X: bm.build_gmm(X, 2, covariance="diag"), "covariance='diag'"),
        (lambda X: bm.build_dpgmm(X, truncation=4), "model='dpgmm'"),
    ],
)
def test_unsupported_models_raise(three, build, match):
    with pytest.raises(NotImplementedError, match=match):
        jg.sample_gibbs_jax(build(three[:100]), draws=5, tune=0, chains=1)


def test_bad_allocations_argument(three):
    with pytest.raises(ValueError, match="allocations must be True or False"):
        jg.sample_gibbs_jax(bm.build_gmm(three[:100], 2), allocations="yes")
