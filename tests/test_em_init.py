"""Initialisation strategies of fit_em: mclust's hierarchical agglomeration and init="auto".

References: a brute-force agglomeration written from the criteria's definitions (every
pair's merge cost recomputed from scratch), mclust 6.0's own partitions and
log-likelihoods (``benchmarks/mclust_hclass.csv``, ``benchmarks/mclust_reference.csv``,
made by ``benchmarks/mclust_reference.R``; R is not needed here), and the change of
variables formula for per-feature rescaling.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.em import _hierarchical
from bayesmix.em import _starts as _em_init

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load_bench(name):
    return pd.read_csv(BENCH / "data" / f"{name}.csv").to_numpy(float)


# --------------------------------------------------------------------- brute force
def _term(model, Z, alpha):
    """Criterion of one cluster, straight from the definitions (mclust hcEII/VII/VVV)."""
    n, p = Z.shape
    R = Z - Z.mean(axis=0)
    W = R.T @ R
    tr = float(np.trace(W))
    if model == "EII":
        return tr
    t = np.log((tr + alpha) / n)
    if model == "VII" or n <= p:
        return n * t
    sign, logdet = np.linalg.slogdet(W / n)
    det = np.exp(logdet) if sign > 0 else 0.0
    return n * np.log(det + (tr + alpha) / n)


def _brute_force_partitions(Z, model):
    """Every partition of the agglomeration, as sets of frozensets, n clusters down to 1."""
    n, p = Z.shape
    alpha = float(np.sum((Z - Z.mean(0)) ** 2)) / (n * p)
    clusters = [frozenset([i]) for i in range(n)]
    out = [set(clusters)]
    while len(clusters) > 1:
        best = None
        for a, b in itertools.combinations(range(len(clusters)), 2):
            u = sorted(clusters[a] | clusters[b])
            cost = (
                _term(model, Z[u], alpha)
                - _term(model, Z[sorted(clusters[a])], alpha)
                - _term(model, Z[sorted(clusters[b])], alpha)
            )
            if best is None or cost < best[0]:
                best = (cost, a, b)
        _, a, b = best
        merged = clusters[a] | clusters[b]
        clusters = [c for i, c in enumerate(clusters) if i not in (a, b)] + [merged]
        out.append(set(clusters))
    return out


def _as_sets(labels):
    return {frozenset(np.flatnonzero(labels == k).tolist()) for k in np.unique(labels)}


@pytest.mark.parametrize("model", ["VVV", "VII", "EII"])
@pytest.mark.parametrize(("n", "p", "seed"), [(8, 2, 0), (12, 2, 1), (11, 3, 2), (10, 1, 3)])
def test_agglomeration_matches_brute_force(model, n, p, seed):
    # continuous random data: no two merge costs tie, so the sequence is unique; with
    # n up to 12 and p <= 3, clusters larger than p occur, so the VVV determinant
    # branch is exercised, not only the trace one
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, p)) * rng.uniform(0.5, 3.0, size=p)
    merges, costs = _hierarchical.agglomerate(Z, model)
    expected = _brute_force_partitions(Z, model)
    for m in range(n, 0, -1):
        got = _as_sets(_hierarchical.partition(merges, n, m))
        assert got == expected[n - m], f"{model}: partitions differ at {m} clusters"
    assert merges.shape == (n - 1, 2) and np.all(merges[:, 0] < merges[:, 1])
    if model == "EII":  # Ward: merge costs sum to the total scatter
        assert np.isclose(costs.sum(), np.sum((Z - Z.mean(0)) ** 2), rtol=1e-12)


@pytest.mark.parametrize(
    "dataset", ["faithful_seconds", "iris", "old_faithful", "quakes", "usarrests", "wine"]
)
def test_hierarchical_partitions_are_mclusts(dataset):
    # mclust's hc(X, "VVV", use = "SVD") + hclass(., 2:6), ties included: the Old
    # Faithful data have 16 duplicated rows (exact ties that mclust's scan order breaks);
    # all six benchmark data sets, quakes' 1000 rows included (about 0.5 s)
    X = load_bench(dataset)
    ref = pd.read_csv(BENCH / "mclust_hclass.csv")
    ref = ref[ref["dataset"] == dataset].sort_values("row")
    for k in range(2, 7):
        ours = _em_init.hierarchical_labels(X, k, np.random.default_rng(0))
        theirs = ref[f"k{k}"].to_numpy()
        assert _as_sets(ours) == _as_sets(theirs), f"{dataset}, {k} clusters"


def test_svd_scale_is_units_invariant():
    X = load_bench("old_faithful")
    Z1 = _hierarchical.svd_scale(X)
    Z2 = _hierarchical.svd_scale(X * np.array([60.0, 0.01]) + 7.0)
    # SVD signs are arbitrary: compare up to the sign of each column
    np.testing.assert_allclose(np.abs(Z1), np.abs(Z2), rtol=0, atol=1e-12)


def test_hierarchical_subsample_assigns_every_row(monkeypatch):
    monkeypatch.setattr(_em_init, "HC_MAX_N", 60)
    means = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    X, z = bm.simulate(200, [0.3, 0.3, 0.4], means, np.ones(3), random_seed=1)
    a = _em_init.hierarchical_labels(X, 3, np.random.default_rng(5))
    b = _em_init.hierarchical_labels(X, 3, np.random.default_rng(5))
    assert a.shape == (200,) and set(np.unique(a)) == {0, 1, 2}
    np.testing.assert_array_equal(a, b)  # seeded: the same subsample
    # three clusters 12 standard deviations apart: the 60-row subsample's
    # partition, extended by the fitted Gaussians, recovers the truth up to labels
    assert _as_sets(a) == _as_sets(z)


# --------------------------------------------------------------------- init="auto"
def _fit(X, k, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bm.fit_em(X, k, random_seed=0, **kw)


def test_auto_beats_kmeans_on_raw_scale_data():
    # waiting time in seconds: every raw k-means start is dominated by that feature
    X = load_bench("faithful_seconds")
    ref = pd.read_csv(BENCH / "mclust_reference.csv").set_index(["dataset", "covariance", "k"])
    mclust = ref.loc[("faithful_seconds", "spherical", 6), "loglik"]
    km = _fit(X, 6, covariance="spherical", init="kmeans")
    auto = _fit(X, 6, covariance="spherical")
    assert km.log_likelihood < mclust - 10.0  # the trap: 18 nats below mclust
    assert auto.log_likelihood >= mclust - 1e-6 * abs(mclust)
    assert auto.init_strategy in ("hierarchical", "kmeans-standardized", "random")


@pytest.mark.parametrize(
    ("dataset", "covariance", "k"),
    [("quakes", "tied", 3), ("wine", "full", 3), ("faithful_seconds", "spherical", 6)],
)
def test_previously_failing_fits_reach_mclust(dataset, covariance, k):
    # before init="auto" these ended 920, 94 and 16.5 nats below mclust with n_init=10
    ref = pd.read_csv(BENCH / "mclust_reference.csv").set_index(["dataset", "covariance", "k"])
    mclust = ref.loc[(dataset, covariance, k), "loglik"]
    fit = _fit(load_bench(dataset), k, covariance=covariance, n_init=10)
    # equal within 1e-6 relative: both stop on a relative/per-observation tolerance
    assert fit.log_likelihood >= mclust - 1e-6 * abs(mclust)


def test_auto_is_units_invariant():
    # log-likelihood of the rescaled data = original - N * sum(log s) (the Jacobian),
    # when both fits reach the same optimum; reg_covar=0 keeps the fit itself
    # equivariant, tol=1e-10 leaves a difference far below the 1e-7 asserted
    X = load_bench("old_faithful")
    s = np.array([0.01, 60.0])
    a = _fit(X, 3, covariance="full", reg_covar=0.0, tol=1e-10)
    b = _fit(X * s, 3, covariance="full", reg_covar=0.0, tol=1e-10)
    jac = X.shape[0] * np.log(s).sum()
    np.testing.assert_allclose(b.log_likelihood, a.log_likelihood - jac, rtol=0, atol=1e-7)


def test_init_strategy_recorded_and_saved():
    X = load_bench("old_faithful")
    auto = _fit(X, 2)
    assert auto.init == "auto"
    assert auto.init_strategy in ("hierarchical", "kmeans-standardized", "kmeans", "random")
    assert f"init_strategy={auto.init_strategy!r}" in repr(auto)
    back = bm.EMResult.from_dict(auto.to_dict())
    assert back.init_strategy == auto.init_strategy
    for init in ("hierarchical", "kmeans-standardized", "kmeans", "k-means++", "random"):
        assert _fit(X, 2, init=init).init_strategy == init
    resp = np.full((X.shape[0], 2), 0.5)
    assert _fit(X, 2, init=resp).init_strategy == "array (resp)"
    old = auto.to_dict()
    del old["init_strategy"]  # a result saved before the field existed
    assert bm.EMResult.from_dict(old).init_strategy is None


def test_kmeans_init_unchanged():
    # the pre-portfolio default (values from the commit before init="auto"). A value
    # stored from another machine is compared to 1e-12 relative, not bit for bit: the
    # last bits of a sum of 272 log densities depend on the CPU's SIMD width and BLAS
    # kernel (-1119.2160217941255 vs ...257 seen across x86-64 machines), while 1e-12
    # still fails on any change of the fit (one EM iteration more moves it by ~1e-9).
    # Same-process, same-seed reproducibility stays bit-exact (test_reproducibility.py).
    X = load_bench("old_faithful")
    fit = _fit(X, 3, covariance="full", init="kmeans", n_init=2)
    assert fit.log_likelihood == pytest.approx(-1119.2160217941257, rel=1e-12, abs=0)
    assert fit.n_iter == 93


def test_hierarchical_is_deterministic():
    X = load_bench("old_faithful")
    a = bm.fit_em(X, 3, init="hierarchical", random_seed=0)
    b = bm.fit_em(X, 3, init="hierarchical", random_seed=123)
    assert a.log_likelihood == b.log_likelihood  # no subsample below HC_MAX_N rows


def test_unknown_init_lists_the_options():
    X = load_bench("old_faithful")
    with pytest.raises(ValueError, match="init must be one of") as err:
        bm.fit_em(X, 2, init="ward")
    for name in _em_init.STRATEGIES:
        assert repr(name) in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("n_init", [10, 1])
def test_full_mclust_grid_none_below(n_init):
    # all 144 fits of benchmarks/bench_mclust.py (6 raw-scale data sets x 4 covariance
    # types x K=1..6): none ends below mclust 6.0's log-likelihood (1e-6 relative; with
    # k-means starts 22 of them did, by up to 922 nats)
    ref = pd.read_csv(BENCH / "mclust_reference.csv")
    below = []
    for r in ref.itertuples():
        fit = _fit(load_bench(r.dataset), r.k, covariance=r.covariance, n_init=n_init)
        if fit.log_likelihood < r.loglik - 1e-6 * abs(r.loglik):
            below.append((r.dataset, r.covariance, r.k, fit.log_likelihood - r.loglik))
    assert not below


@pytest.mark.parametrize("covariance", ["full", "tied", "diag", "spherical"])
def test_portfolio_statistics_equal_the_dense_ones(covariance):
    # the portfolio's cheaper first-M-step statistics (by groups for a partition, one
    # product per component for soft responsibilities) against em's dense reference
    from bayesmix.em import _loop

    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 4)) * [1.0, 10.0, 0.1, 3.0]
    labels = rng.integers(4, size=500)
    labels[labels == 2] = 1  # an empty component
    resp = rng.dirichlet(np.ones(4), size=500)
    for got, ref in (
        (_em_init.stats_from_labels(X, covariance, labels, 4), _em_init.one_hot(labels, 4)),
        (_em_init.stats_from_resp(X, covariance, resp), resp),
    ):
        for a, b in zip(got, _loop._stats_from_resp(X, covariance, ref), strict=True):
            # summation order differs: equal to rounding (sums of 500 terms)
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-10)
