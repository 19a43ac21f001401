"""Tests for bayesmix.relabel on synthetic traces with injected label permutations.

No MCMC: draws are scattered around known parameters with ``from_arrays`` and the
component axis is permuted at random draws; relabelling must undo it exactly.
"""

from __future__ import annotations

import itertools
import warnings

import arviz_stats as azs
import numpy as np
import pytest

from bayesmix.core._gaussian import responsibilities
from bayesmix.core._validation import BayesmixWarning
from bayesmix.mcmc._relabel import LabelSwitchingWarning, diagnostics, relabel
from bayesmix.mcmc._trace import from_arrays

TRUE_MEANS = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])


class Ref:
    """An EM-result-like reference."""

    def __init__(self, weights, means, covariances):
        self.weights, self.means, self.covariances = weights, means, covariances


def _truth_ref():
    return Ref(np.full(3, 1 / 3), TRUE_MEANS, np.broadcast_to(np.eye(2), (3, 2, 2)).copy())


def _draws(C=2, S=40, seed=0):
    rng = np.random.default_rng(seed)
    K, D = TRUE_MEANS.shape
    X = np.concatenate([rng.normal(size=(15, D)) + mu for mu in TRUE_MEANS])
    w = rng.dirichlet([40, 30, 20], size=(C, S))
    m = TRUE_MEANS + 0.2 * rng.normal(size=(C, S, K, D))
    var = rng.uniform(0.7, 1.3, size=(C, S, K, D))
    cov = np.einsum("...d,de->...de", var, np.eye(D))
    return X, w, m, cov, var


def _permute(arr, perms):
    C, S, _ = perms.shape
    return arr[np.arange(C)[:, None, None], np.arange(S)[None, :, None], perms]


@pytest.fixture(scope="module")
def injected():
    X, w, m, cov, var = _draws()
    C, S, K = w.shape
    rng = np.random.default_rng(1)
    perms = np.tile(np.arange(K), (C, S, 1))
    switched = rng.random((C, S)) < 0.5  # permute about half of the draws
    for ch, s in zip(*np.nonzero(switched), strict=True):
        perms[ch, s] = rng.permutation(K)
    dt = from_arrays(
        _permute(w, perms),
        _permute(m, perms),
        _permute(cov, perms),
        X,
        extra={"variances": _permute(var, perms), "sigma": np.ones((C, S))},
        extra_dims={"variances": ["component", "feature"], "sigma": []},
        attrs={"model": "gmm", "covariance": "diag"},
    )
    return dt, (w, m, cov, var), perms


@pytest.mark.parametrize("method", ["stephens", "means"])
def test_injected_permutations_restored_exactly(injected, method):
    dt, (w, m, cov, var), inj = injected
    out = relabel(dt, _truth_ref(), method=method)
    found = out["relabel"]["permutation"].values
    # the permutation found undoes the injected one: inj[found] is the identity
    np.testing.assert_array_equal(
        np.take_along_axis(inj, found, axis=-1), np.broadcast_to(np.arange(3), inj.shape)
    )
    post = out["posterior"]
    np.testing.assert_array_equal(post["weights"].values, w)
    np.testing.assert_array_equal(post["means"].values, m)
    np.testing.assert_array_equal(post["covariances"].values, cov)
    np.testing.assert_array_equal(post["variances"].values, var)
    np.testing.assert_array_equal(post["sigma"].values, 1.0)
    # label-invariant groups are untouched, the input is not modified
    np.testing.assert_array_equal(
        out["log_likelihood"]["X"].values, dt["log_likelihood"]["X"].values
    )
    assert not dt.attrs.get("relabelled")
    assert out.attrs["relabelled"] == 1 and out.attrs["relabel_method"] == method
    assert out.attrs["covariance"] == "diag"


@pytest.mark.parametrize("method", ["stephens", "means"])
def test_reference_free_restores_up_to_one_global_permutation(injected, method):
    dt, (_, m, cov, _), _ = injected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelSwitchingWarning)
        out = relabel(dt, method=method)
    got = out["posterior"]["means"].values
    # one permutation g maps the original labelling onto the found one for every draw
    g = [p for p in itertools.permutations(range(3)) if np.array_equal(got, m[:, :, list(p)])]
    assert len(g) == 1
    np.testing.assert_array_equal(out["posterior"]["covariances"].values, cov[:, :, list(g[0])])


def test_stephens_cost_matches_brute_force_kl():
    """The assignment equals the permutation minimising the full KL sum over all K!."""
    X, w, m, cov, _ = _draws(C=1, S=10, seed=3)
    rng = np.random.default_rng(4)
    ref = Ref(
        np.array([0.5, 0.3, 0.2]),
        TRUE_MEANS + rng.normal(0, 1.0, (3, 2)),
        np.eye(2) * [[[1.0]], [[2.0]], [[0.5]]],
    )
    q = responsibilities(X, ref.weights, ref.means, ref.covariances)
    dt = from_arrays(w, m, cov, X)
    found = relabel(dt, ref)["relabel"]["permutation"].values[0]
    P = responsibilities(X, w[0], m[0], cov[0])
    for s in range(10):
        costs = {
            perm: np.sum(P[s][:, list(perm)] * (np.log(P[s][:, list(perm)]) - np.log(q)))
            for perm in itertools.permutations(range(3))
        }
        assert tuple(found[s]) == min(costs, key=costs.get)


def test_relabel_composes_permutations(injected):
    dt, (_, m, _, _), _ = injected
    once = relabel(dt, _truth_ref())
    twice = relabel(once, _truth_ref())
    np.testing.assert_array_equal(
        twice["relabel"]["permutation"].values, once["relabel"]["permutation"].values
    )
    np.testing.assert_array_equal(twice["posterior"]["means"].values, m)


def test_warns_when_chains_sit_in_different_labellings():
    X, w, m, cov, _ = _draws(C=3, S=30, seed=5)
    perms = np.tile(np.arange(3), (3, 30, 1))
    perms[1] = [2, 0, 1]  # the whole of chain 1 in another labelling
    dt = from_arrays(_permute(w, perms), _permute(m, perms), _permute(cov, perms), X)
    with pytest.warns(LabelSwitchingWarning, match=r"chain 1: \[1, 2, 0\]"):
        out = relabel(dt, _truth_ref())
    np.testing.assert_array_equal(out["posterior"]["means"].values, m)
    # a consistent trace gives no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelSwitchingWarning)
        relabel(from_arrays(w, m, cov, X), _truth_ref())


def test_diagnostics_recovers_rhat_after_relabelling():
    X, w, m, cov, _ = _draws(C=2, S=100, seed=6)
    perms = np.tile(np.arange(3), (2, 100, 1))
    perms[1] = [1, 0, 2]
    dt = from_arrays(_permute(w, perms), _permute(m, perms), _permute(cov, perms), X)
    with pytest.warns(LabelSwitchingWarning), pytest.warns(BayesmixWarning, match="R-hat > 1.01"):
        raw = diagnostics(dt)
    # the switched chain makes components 0 and 1 look unmixed (means 5 apart, sd 0.2):
    # rank R-hat of two chains with disjoint ranges is ~1.8, far above 1.01
    assert raw.loc[(raw.variable == "means") & (raw.component == 0), "rhat"].max() > 1.5
    with pytest.warns(LabelSwitchingWarning):
        out = relabel(dt, _truth_ref())
    table = diagnostics(out, rhat_max=1.05)
    # independent draws: R-hat near 1 (200 draws: rank R-hat sd ~0.01, 1.05 is 5 sd)
    assert table["rhat"].max() < 1.05
    # equal to arviz_stats on the relabelled posterior
    ref = azs.rhat(out["posterior"].to_dataset()[["means"]])["means"].values
    got = table[table.variable == "means"].sort_values(["component", "feature"])["rhat"].values
    np.testing.assert_allclose(got, ref.ravel())
    # zero off-diagonals (diagonal covariance) and the upper triangle are left out
    cov_rows = table[table.variable == "covariances"]
    assert len(cov_rows) == 3 * 2 and (cov_rows.feature == cov_rows.feature2).all()


def test_dp_fit_is_refused(injected):
    dt = injected[0].copy()
    dt.attrs["model"] = "dpgmm"
    with pytest.raises(ValueError, match="coclustering"):
        relabel(dt)


def test_reference_with_other_k_is_refused(injected):
    ref = Ref(np.full(2, 0.5), TRUE_MEANS[:2], np.broadcast_to(np.eye(2), (2, 2, 2)))
    with pytest.raises(ValueError, match=r"same number of components.*fit_em\(X, 3"):
        relabel(injected[0], ref)


def test_bad_reference_and_method(injected):
    with pytest.raises(TypeError, match="weights"):
        relabel(injected[0], reference=np.zeros(3))
    with pytest.raises(ValueError, match="method must be one of"):
        relabel(injected[0], _truth_ref(), method="kl")
    with pytest.raises(TypeError, match="DataTree"):
        relabel(injected[0]["posterior"].to_dataset())


def test_missing_posterior_variables(injected):
    dt = injected[0].copy()
    dt["posterior"] = dt["posterior"].to_dataset().drop_vars("means")
    with pytest.raises(ValueError, match=r"lacks \['means'\]"):
        relabel(dt)


def test_public_names_stay_functions_whatever_the_import_order():
    """Importing a submodule must not replace bm.relabel / bm.membership by the module."""
    import subprocess
    import sys

    code = (
        "import bayesmix as bm\n"
        "from bayesmix.mcmc._relabel import diagnostics\n"
        "from bayesmix.posterior._membership import coclustering\n"
        "assert callable(bm.relabel) and bm.relabel.__name__ == 'relabel', bm.relabel\n"
        "assert callable(bm.membership) and bm.membership.__name__ == 'membership'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("reference", ["truth", None])
def test_stephens_on_an_observation_subset_finds_the_same_permutations(injected, reference):
    """Above ``max_obs`` observations Stephens' cost is summed over a seeded random
    subset: on these draws it finds exactly the permutations the full cost finds, and
    says how many observations it used."""
    dt, _, _ = injected
    n = dt["observed_data"]["X"].shape[0]
    ref = _truth_ref() if reference == "truth" else None
    full = relabel(dt, ref, max_obs=None)
    part = relabel(dt, ref, max_obs=n // 4, random_seed=3)
    assert full.attrs["relabel_obs_used"] == n and part.attrs["relabel_obs_used"] == n // 4
    np.testing.assert_array_equal(
        part["relabel"]["permutation"].values, full["relabel"]["permutation"].values
    )
    with pytest.raises(ValueError, match="max_obs"):
        relabel(dt, ref, max_obs=0)
