"""membership(max_draws=...): every draw below MEMBERSHIP_MAX_VALUES (draws x obs), an
evenly spaced subset above it, named in the result's attrs."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.mcmc._trace import from_arrays
from bayesmix.posterior import _membership


def _posterior(C=2, S=30, N=50, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0, 1, (N // 2, 2)), rng.normal(2.5, 1, (N - N // 2, 2))])
    w = rng.dirichlet([20, 20], size=(C, S))
    m = np.array([[0.0, 0.0], [2.5, 2.5]]) + 0.2 * rng.normal(size=(C, S, 2, 2))
    c = np.broadcast_to(np.eye(2), (C, S, 2, 2, 2)) * rng.uniform(0.8, 1.2, (C, S, 2, 1, 1))
    dt = from_arrays(w, m, np.ascontiguousarray(c), X, log_likelihood=False)
    return dt, (w, m, c, X)


def test_small_posteriors_use_every_draw():
    dt, _ = _posterior()
    out = bm.membership(dt, relabel=False)
    assert out.attrs["n_draws"] == out.attrs["n_draws_total"] == 60
    np.testing.assert_array_equal(
        out["probability"].values, bm.membership(dt, relabel=False, max_draws=None)["probability"]
    )


def test_a_subset_equals_the_membership_of_those_draws_alone():
    dt, (w, m, c, X) = _posterior()
    out = bm.membership(dt, relabel=False, max_draws=7)
    idx = np.unique(np.linspace(0, 59, 7).round().astype(int))
    assert out.attrs["n_draws"] == idx.size == 7 and out.attrs["n_draws_total"] == 60
    flat = [a.reshape(60, *a.shape[2:])[idx][None] for a in (w, m, c)]
    ref = bm.membership(from_arrays(*flat, X, log_likelihood=False), relabel=False)
    for v in ("probability", "probability_lower", "probability_upper", "label"):
        np.testing.assert_allclose(out[v].values, ref[v].values, rtol=1e-12, atol=1e-15)
    # and it is not the all-draws answer (the test can tell them apart)
    full = bm.membership(dt, relabel=False, max_draws=None)
    assert not np.allclose(full["probability_upper"].values, out["probability_upper"].values)


def test_auto_thins_above_the_budget(monkeypatch):
    dt, _ = _posterior(S=200, N=50)
    monkeypatch.setattr(_membership, "MEMBERSHIP_MAX_VALUES", 50 * 120)
    monkeypatch.setattr(_membership, "MEMBERSHIP_MIN_DRAWS", 10)
    assert bm.membership(dt, relabel=False).attrs["n_draws"] == 120
    monkeypatch.setattr(_membership, "MEMBERSHIP_MAX_VALUES", 50)  # floor: MIN_DRAWS
    assert bm.membership(dt, relabel=False).attrs["n_draws"] == 10


@pytest.mark.parametrize("bad", [0, -3, 2.5, "all", True])
def test_bad_max_draws_is_named(bad):
    dt, _ = _posterior()
    with pytest.raises((ValueError, TypeError), match="max_draws"):
        bm.membership(dt, relabel=False, max_draws=bad)
