"""Tests for membership, coclustering and point_partition on synthetic traces.

References are computed independently with scipy.stats.multivariate_normal draw by
draw; loss values against hand-computed cases and brute force over all partitions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesmix.core._validation import BayesmixWarning
from bayesmix.mcmc._relabel import relabel
from bayesmix.mcmc._trace import from_arrays
from bayesmix.posterior._membership import (
    binder_loss,
    coclustering,
    membership,
    point_partition,
    vi_lower_bound,
)

MEANS = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 6.0]])


@pytest.fixture(scope="module")
def trace():
    rng = np.random.default_rng(0)
    C, S, K, D = 2, 25, 3, 2
    X = np.concatenate([rng.normal(size=(8, D)) + mu for mu in MEANS])
    w = rng.dirichlet([30, 30, 30], size=(C, S))
    m = MEANS + 0.3 * rng.normal(size=(C, S, K, D))
    A = rng.normal(0, 0.3, size=(C, S, K, D, D))
    cov = np.eye(D) + A @ np.swapaxes(A, -1, -2)
    dt = from_arrays(w, m, cov, X, attrs={"model": "gmm"})
    return dt, X, w, m, cov


def _scipy_resp(X, w, m, cov):
    """(C*S, N, K) membership probabilities from scipy.stats, draw by draw."""
    C, S, K = w.shape
    out = []
    for c in range(C):
        for s in range(S):
            dens = np.column_stack(
                [
                    w[c, s, k] * multivariate_normal(m[c, s, k], cov[c, s, k]).pdf(X)
                    for k in range(K)
                ]
            )
            out.append(dens / dens.sum(1, keepdims=True))
    return np.array(out)


def _ari(a, b):
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b)


def test_membership_matches_scipy(trace):
    dt, X, w, m, cov = trace
    P = _scipy_resp(X, w, m, cov)
    res = membership(dt, prob=0.9, relabel=False)
    mean = P.mean(0)
    np.testing.assert_allclose(res["probability"].values, mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        res["probability_lower"].values, np.quantile(P, 0.05, axis=0), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        res["probability_upper"].values, np.quantile(P, 0.95, axis=0), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_array_equal(res["label"].values, mean.argmax(1))
    np.testing.assert_allclose(res["uncertainty"].values, 1 - mean.max(1))
    # atol: an entropy near 0 (p ~ 1) carries the 1e-16 rounding of p in absolute terms
    np.testing.assert_allclose(
        res["entropy"].values, -(mean * np.log(mean)).sum(1), rtol=1e-9, atol=1e-12
    )
    assert res["probability"].dims == ("obs", "component")
    assert res.attrs["interval"] == "equal-tailed" and res.attrs["prob"] == 0.9
    # chunking over observations does not change anything
    small = membership(dt, prob=0.9, relabel=False, chunk_size=1)
    np.testing.assert_array_equal(small["probability"].values, res["probability"].values)
    np.testing.assert_array_equal(
        small["probability_lower"].values, res["probability_lower"].values
    )
    # the well separated groups are recovered
    assert _ari(res["label"].values, np.repeat([0, 1, 2], 8)) > 0.9


def test_membership_relabels_when_needed(trace):
    dt = trace[0]
    with pytest.warns(BayesmixWarning, match="has not been relabelled"):
        auto = membership(dt)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BayesmixWarning)
        explicit = membership(relabel(dt), relabel=False)
    np.testing.assert_array_equal(auto["probability"].values, explicit["probability"].values)


def test_membership_refuses_dp_and_bad_prob(trace):
    dt = trace[0].copy()
    with pytest.raises(ValueError, match="prob must be"):
        membership(dt, prob=94)
    dt.attrs["model"] = "dpgmm"
    with pytest.raises(ValueError, match="coclustering"):
        membership(dt)


def test_coclustering_matches_scipy_and_is_label_invariant(trace):
    dt, X, w, m, cov = trace
    P = _scipy_resp(X, w, m, cov)
    expected = np.einsum("snk,smk->nm", P, P) / P.shape[0]
    np.fill_diagonal(expected, 1.0)
    psm = coclustering(dt)
    assert psm.dims == ("obs", "obs2")
    np.testing.assert_allclose(psm.values, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(
        coclustering(dt, chunk_size=1).values.round(12), psm.values.round(12)
    )
    # permuting the labels of every draw at random leaves it unchanged; DP fits accepted
    rng = np.random.default_rng(1)
    perm = np.array([[rng.permutation(3) for _ in range(w.shape[1])] for _ in range(w.shape[0])])
    ci, si = np.arange(2)[:, None, None], np.arange(w.shape[1])[None, :, None]
    switched = from_arrays(
        w[ci, si, perm], m[ci, si, perm], cov[ci, si, perm], X, attrs={"model": "dpgmm"}
    )
    np.testing.assert_allclose(coclustering(switched).values, psm.values, rtol=1e-9, atol=1e-12)


def test_coclustering_of_a_seeded_subset_above_max_obs(trace):
    """Above max_obs: the matrix of a seeded random subset, named by its obs coordinate,
    equal to the full matrix restricted to those observations; max_obs=None keeps all."""
    dt, X = trace[:2]
    N = X.shape[0]
    full = coclustering(dt, max_obs=None)
    assert full.attrs["subset"] == "all observations" and full.attrs["n_obs"] == N
    sub = coclustering(dt, max_obs=10, random_seed=3)
    idx = sub["obs"].values
    assert sub.shape == (10, 10) and np.all(np.diff(idx) > 0)
    assert sub.attrs["n_obs"] == N and "subset of 10 of 24" in sub.attrs["subset"]
    np.testing.assert_allclose(sub.values, full.values[np.ix_(idx, idx)], rtol=0, atol=1e-12)
    # the same seed draws the same subset; another seed another one
    np.testing.assert_array_equal(coclustering(dt, max_obs=10, random_seed=3)["obs"], idx)
    assert not np.array_equal(coclustering(dt, max_obs=10, random_seed=4)["obs"].values, idx)
    # the point partition of a large tree partitions that subset and says so
    part = point_partition(dt, max_obs=10, random_seed=3)
    np.testing.assert_array_equal(part.obs, idx)
    assert part.labels.shape == (10,)
    assert point_partition(dt, max_obs=None).obs is None
    with pytest.raises(ValueError, match="max_obs"):
        coclustering(dt, max_obs=0)


def test_losses_on_hand_computed_cases():
    psm = np.array([[1, 0.8, 0.1], [0.8, 1, 0.3], [0.1, 0.3, 1]])
    # Binder: pairs (0,1) same -> 1-0.8; (0,2) apart -> 0.1; (1,2) apart -> 0.3
    assert binder_loss([0, 0, 1], psm) == pytest.approx(0.2 + 0.1 + 0.3)
    assert binder_loss([0, 1, 2], psm) == pytest.approx(0.8 + 0.1 + 0.3)
    # VI lower bound, N=2 with PSM off-diagonal p (bits):
    # singletons: log2(1+p); together: 1 - log2(1+p)
    p = 0.5
    two = [[1, p], [p, 1]]
    assert vi_lower_bound([0, 1], two) == pytest.approx(np.log2(1 + p))
    assert vi_lower_bound([0, 0], two) == pytest.approx(1 - np.log2(1 + p))
    # a PSM that is itself a partition has zero loss at that partition
    block = np.kron(np.eye(2), np.ones((2, 2)))
    assert binder_loss([0, 0, 1, 1], block) == 0
    assert vi_lower_bound([5, 5, 2, 2], block) == pytest.approx(0.0)
    assert point_partition(two, loss="vi").labels.tolist() == [0, 0]


def _set_partitions(n):
    """All partitions of range(n) as label vectors (restricted growth strings)."""
    if n == 1:
        yield [0]
        return
    for part in _set_partitions(n - 1):
        for g in range(max(part) + 2):
            yield [*part, g]


@pytest.mark.parametrize("loss", ["binder", "vi"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_partition_finds_brute_force_minimum(loss, seed):
    """On 7 observations (877 partitions) the search reaches the exact minimum."""
    rng = np.random.default_rng(seed)
    # a PSM from a random mixture of partitions, so it is a genuine similarity matrix
    parts = [rng.integers(0, 3, size=7) for _ in range(6)]
    wts = rng.dirichlet(np.ones(6))
    psm = sum(wt * (p[:, None] == p[None, :]) for wt, p in zip(wts, parts, strict=True))
    fn = binder_loss if loss == "binder" else vi_lower_bound
    best = min(fn(np.array(p), psm) for p in _set_partitions(7))
    res = point_partition(psm, loss=loss)
    assert res.expected_loss == pytest.approx(best, abs=1e-9)
    assert fn(res.labels, psm) == pytest.approx(res.expected_loss)


@pytest.mark.parametrize("loss", ["binder", "vi"])
def test_point_partition_from_trace(trace, loss):
    dt = trace[0]
    res = point_partition(dt, loss=loss)
    truth = np.repeat([0, 1, 2], 8)
    assert res.n_clusters == 3
    assert _ari(res.labels, truth) > 0.9
    assert res.labels.shape == (24,)
    assert "PointPartition" in repr(res)


def test_point_partition_bad_input():
    with pytest.raises(ValueError, match="loss must be one of"):
        point_partition(np.eye(2), loss="l2")
    with pytest.raises(ValueError, match="square"):
        point_partition(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        point_partition(np.array([[1, 0.2], [0.4, 1]]))


@pytest.mark.parametrize("loss", ["binder", "vi"])
def test_point_partition_is_a_local_optimum(loss):
    """No single-observation move lowers the loss (checks the incremental greedy deltas)."""
    rng = np.random.default_rng(9)
    N = 30
    base = rng.integers(0, 4, size=N)
    parts = [np.where(rng.random(N) < 0.2, rng.integers(0, 4, size=N), base) for _ in range(10)]
    wts = rng.dirichlet(np.ones(10))
    psm = sum(wt * (p[:, None] == p[None, :]) for wt, p in zip(wts, parts, strict=True))
    fn = binder_loss if loss == "binder" else vi_lower_bound
    res = point_partition(psm, loss=loss)
    assert res.source.endswith("+greedy")  # this case needs the greedy step
    assert fn(res.labels, psm) == pytest.approx(res.expected_loss, abs=1e-9)
    assert res.expected_loss < fn(point_partition(psm, loss=loss, greedy=False).labels, psm)
    lab = res.labels
    for i in range(N):
        for g in range(lab.max() + 2):
            if g == lab[i]:
                continue
            moved = lab.copy()
            moved[i] = g
            assert fn(moved, psm) >= res.expected_loss - 1e-9
