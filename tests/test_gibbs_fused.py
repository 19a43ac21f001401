"""The fused allocation pass of the blocked Gibbs sweep (``_gibbs_kernels.allocate_stats``).

One pass over the data draws the allocations and accumulates the counts, sums and
scatter matrices of the new allocations, in chunks of ``CHUNK_ROWS`` rows (threads over
chunks). Checked here: the statistics against numpy from the same z, the draws against
the plain kernel and against the responsibilities (chi-square), independence from the
number of threads, the statistics the sweeps reuse, and the split-merge cap at large N.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

import bayesmix as bm
from bayesmix.mcmc import _gibbs_kernels as gk
from bayesmix.mcmc import _gibbs_sweeps
from bayesmix.mcmc._builders import build_dpgmm, build_gmm, build_mfm


def _problem(N, D, K, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(K, D))
    X = means[rng.integers(K, size=N)] + rng.normal(size=(N, D))
    A = rng.normal(size=(K, D, D)) * 0.3
    cov = A @ A.swapaxes(1, 2) + np.eye(D)
    prec = np.linalg.inv(np.linalg.cholesky(cov))
    with np.errstate(divide="ignore"):
        log_w = np.log(np.r_[np.full(K - 1, 1.0 / (K - 1)), 0.0])  # last: weight 0
    return X, log_w, means, prec, rng.random(N)


def _fused(X, log_w, means, prec, u, threads=1):
    N, D = X.shape
    K = log_w.size
    z, counts = np.empty(N, np.int64), np.empty(K, np.int64)
    sums, scatter = np.empty((K, D)), np.empty((K, D, D))
    ll = gk.allocate_stats(X, log_w, means, prec, u, z, counts, sums, scatter, threads)
    return z, counts, sums, scatter, ll


@pytest.mark.parametrize("N", [1, 50, 3 * gk.CHUNK_ROWS + 17])
def test_fused_statistics_match_numpy_from_the_same_z(N):
    X, log_w, means, prec, u = _problem(N, 4, 5)
    z, counts, sums, scatter, ll = _fused(X, log_w, means, prec, u)
    # the draws are those of the plain kernel (same log densities, same uniforms)
    z0, c0 = np.empty(N, np.int64), np.empty(5, np.int64)
    ll0 = gk.allocate(X, log_w, means, prec, u, z0, c0)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(counts, c0)
    np.testing.assert_allclose(ll, ll0, rtol=1e-12)  # chunked sum: rounding only
    assert counts[4] == 0  # weight 0: never chosen
    np.testing.assert_array_equal(counts, np.bincount(z, minlength=5))
    for k in range(5):
        xk = X[z == k]
        np.testing.assert_allclose(sums[k], xk.sum(0), rtol=1e-10, atol=1e-10)
        centred = xk - xk.mean(0) if len(xk) else xk
        # the scatter is accumulated about mu_k, then shifted: cancellation costs a few
        # ulps of |x - mu_k|^2 per row, far below 1e-10 at these scales
        np.testing.assert_allclose(scatter[k], centred.T @ centred, rtol=1e-10, atol=1e-10)
        np.testing.assert_array_equal(scatter[k], scatter[k].T)
    assert np.all(sums[4] == 0) and np.all(scatter[4] == 0)


def test_fused_draws_follow_the_responsibilities():
    """Three points, each repeated 4000 times: the allocations of each point's copies are
    multinomial with its responsibilities. Chi-square test per point at level 1e-4 (a
    false failure has probability < 3e-4 for the three; the seed is fixed)."""
    rng = np.random.default_rng(5)
    K, reps = 3, 4000
    means = np.array([[0.0, 0.0], [1.0, 0.5], [-0.5, 1.0]])
    cov = np.array([np.eye(2), [[1.0, 0.4], [0.4, 0.8]], np.eye(2) * 0.5])
    prec = np.linalg.inv(np.linalg.cholesky(cov))
    w = np.array([0.5, 0.3, 0.2])
    pts = np.array([[0.2, 0.1], [0.8, 0.6], [-0.4, 0.7]])
    X = np.repeat(pts, reps, axis=0)
    z, *_ = _fused(X, np.log(w), means, prec, rng.random(X.shape[0]), threads=2)
    for i, x in enumerate(pts):
        dens = np.array(
            [w[k] * stats.multivariate_normal(means[k], cov[k]).pdf(x) for k in range(K)]
        )
        expected = reps * dens / dens.sum()
        observed = np.bincount(z[i * reps : (i + 1) * reps], minlength=K)
        assert stats.chisquare(observed, expected).pvalue > 1e-4


def test_fused_results_do_not_depend_on_threads():
    X, log_w, means, prec, u = _problem(5 * gk.CHUNK_ROWS + 3, 3, 4, seed=2)
    one = _fused(X, log_w, means, prec, u, threads=1)
    again = _fused(X, log_w, means, prec, u, threads=1)
    two = _fused(X, log_w, means, prec, u, threads=2)
    for a, b, c in zip(one, again, two, strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit: same chunks, same order
        np.testing.assert_array_equal(a, c)


def test_chain_threads():
    assert _gibbs_sweeps.chain_threads(1, 4) == 1
    assert _gibbs_sweeps.chain_threads(2, 2) == 1  # two chains in two threads
    assert _gibbs_sweeps.chain_threads(4, 2) in (1, min(2, gk.numba.config.NUMBA_NUM_THREADS))
    assert _gibbs_sweeps.chain_threads(2, 1) == min(2, gk.numba.config.NUMBA_NUM_THREADS)


def test_one_chain_draws_do_not_depend_on_cores():
    """A blocked finite sweep (N above FINITE_COLLAPSED_MAX_N, 3 chunks): one chain with
    cores=2 runs the fused pass in 2 threads; its draws equal those of cores=1."""
    X, _ = bm.simulate(
        2 * gk.CHUNK_ROWS + 100,
        [0.5, 0.5],
        [[0.0, 0.0], [4.0, 4.0]],
        [np.eye(2)] * 2,
        random_seed=1,
    )
    model = build_gmm(X, 2)
    kw = dict(draws=5, tune=2, chains=1, random_seed=7, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        a = bm.sample(model, sampler="gibbs", cores=1, **kw)
        b = bm.sample(model, sampler="gibbs", cores=2, **kw)
    for v in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(a["posterior"][v].values, b["posterior"][v].values)


@pytest.mark.parametrize("kind", ["gmm", "dpgmm", "mfm"])
def test_sweeps_reuse_statistics_of_the_current_allocations(kind, monkeypatch):
    """Every component update that reuses the fused pass's statistics gets those of the
    current z (after label swaps, the MFM's reordering and accepted split-merge moves,
    which must discard them), and some updates do reuse them."""
    X, _ = bm.simulate(
        120,
        [0.4, 0.3, 0.3],
        [[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]],
        [np.eye(2)] * 3,
        random_seed=0,
    )
    model = {
        "gmm": lambda: build_gmm(X, 3),
        "dpgmm": lambda: build_dpgmm(X, truncation=6),
        "mfm": lambda: build_mfm(X, max_components=6),
    }[kind]()
    monkeypatch.setattr(_gibbs_sweeps, "FINITE_COLLAPSED_MAX_N", 0)  # blocked sweeps
    monkeypatch.setattr(_gibbs_sweeps, "COLLAPSED_MAX_N", 0)
    monkeypatch.setattr(_gibbs_sweeps, "FINITE_SPLIT_MERGE", True)  # split-merge too
    orig = _gibbs_sweeps._update_components
    reused = []

    def checked(spec, st, rng):
        if st.stats is not None:
            K, D = spec.n_slots, spec.Xc.shape[1]
            sums, scatter = np.empty((K, D)), np.empty((K, D, D))
            gk.suff_stats(spec.Xc, st.z, st.counts, sums, scatter)
            np.testing.assert_array_equal(st.counts, np.bincount(st.z, minlength=K))
            np.testing.assert_allclose(st.stats[0], sums, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(st.stats[1], scatter, rtol=1e-10, atol=1e-10)
            reused.append(True)
        return orig(spec, st, rng)

    monkeypatch.setattr(_gibbs_sweeps, "_update_components", checked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        bm.sample(
            model, sampler="gibbs", draws=40, tune=10, chains=1, random_seed=2, progressbar=False
        )
    assert len(reused) > 10


def test_split_merge_at_large_n_runs_with_probability_cap_over_n(monkeypatch):
    """Above SPLIT_MERGE_POINTS_PER_DRAW one move per draw with probability cap / N:
    over 3000 draws at N = 100,000 the number of draws with a move is binomial(3000,
    0.2), within 4.5 standard deviations (22) of 600."""
    calls = []
    monkeypatch.setattr(
        _gibbs_sweeps._collapsed_kernels,
        "split_merge_moves",
        lambda *a: calls.append(a[6].shape[0]) or 0,
    )
    N = 100_000
    spec = SimpleNamespace(
        Xc=np.zeros((N, 1)),
        Xs=np.zeros((N, 1)),
        sm_order=np.empty((0, 0), np.int32),
        sm_conj=(0,),
        log_k_prior=None,
        dynamic=False,
    )
    st = SimpleNamespace(z=np.zeros(N, np.int64), counts=np.array([N, 0]), stats=None)
    rng = np.random.default_rng(0)
    for _ in range(3000):
        _gibbs_sweeps._split_merge(spec, st, rng, 2, 0, 1.0)
    q = _gibbs_sweeps.SPLIT_MERGE_POINTS_PER_DRAW / N
    assert abs(len(calls) - 3000 * q) < 4.5 * np.sqrt(3000 * q * (1 - q))
    assert set(calls) == {1}  # one pair per move


def test_dp_and_mfm_above_collapsed_max_n_use_the_blocked_pass():
    small = SimpleNamespace(kind="dpgmm", sm_conj=(0,), log_v=None, Xc=np.zeros((10, 1)))
    big = SimpleNamespace(
        kind="mfm",
        sm_conj=(0,),
        log_v=np.zeros(3),
        Xc=np.zeros((_gibbs_sweeps.COLLAPSED_MAX_N + 1, 1)),
    )
    assert _gibbs_sweeps._use_collapsed(small)
    assert not _gibbs_sweeps._use_collapsed(big)


@pytest.mark.parametrize("kind", ["gmm", "dpgmm", "mfm"])
def test_loglik_from_the_fused_passes_matches_the_parameters(kind, monkeypatch):
    """With blocked sweeps ``sample_stats/loglik`` of each draw is the next fused pass's
    log-likelihood (the last draw's from one extra pass): it equals the total computed
    from the stored parameters (``_pointwise``), to rounding (rtol 1e-10)."""
    from bayesmix.mcmc._pointwise import total_log_likelihood_arrays

    X, _ = bm.simulate(
        150,
        [0.5, 0.5],
        [[0.0, 0.0], [3.0, 3.0]],
        [np.eye(2), [[1.0, 0.3], [0.3, 0.5]]],
        random_seed=3,
    )
    model = {
        "gmm": lambda: build_gmm(X, 2),
        "dpgmm": lambda: build_dpgmm(X, truncation=5),
        "mfm": lambda: build_mfm(X, max_components=5),
    }[kind]()
    monkeypatch.setattr(_gibbs_sweeps, "FINITE_COLLAPSED_MAX_N", 0)  # blocked sweeps
    monkeypatch.setattr(_gibbs_sweeps, "COLLAPSED_MAX_N", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        dt = bm.sample(
            model,
            sampler="gibbs",
            draws=15,
            tune=3,
            chains=2,
            random_seed=4,
            progressbar=False,
            log_likelihood=False,
        )
    post = dt["posterior"]
    expected = total_log_likelihood_arrays(
        X, post["weights"].values, post["means"].values, post["covariances"].values
    )
    np.testing.assert_allclose(dt["sample_stats"]["loglik"].values, expected, rtol=1e-10)
