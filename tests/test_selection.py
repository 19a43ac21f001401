"""Tests for loo, waic (against hand-computed and independent numpy values) and select_k."""

from __future__ import annotations

import arviz_stats as azs
import numpy as np
import pytest
import xarray as xr

from bayesmix._trace import from_arrays
from bayesmix._validation import BayesmixWarning
from bayesmix.selection import ELPDDataWAIC, loo, waic


def _ll_tree(ll):
    """A DataTree holding only a log_likelihood group of shape (chain, draw, obs)."""
    ll = np.asarray(ll, dtype=float)
    ds = xr.Dataset(
        {"X": (("chain", "draw", "obs"), ll)},
        coords={
            "chain": np.arange(ll.shape[0]),
            "draw": np.arange(ll.shape[1]),
            "obs": np.arange(ll.shape[2]),
        },
    )
    return xr.DataTree.from_dict({"/log_likelihood": ds})


@pytest.fixture(scope="module")
def smooth_trace():
    """One-component posterior for N(mu, 1) data: the normal-normal posterior of mu."""
    rng = np.random.default_rng(0)
    X = rng.normal(1.0, 1.0, size=(40, 1))
    mu = X.mean() + rng.normal(0, 1 / np.sqrt(40), size=(4, 250, 1, 1))
    return from_arrays(np.ones((4, 250, 1)), mu, np.ones((4, 250, 1, 1, 1)), X)


def test_waic_hand_computed():
    # two draws, two observations: ll[s, i]
    #   obs 0: -1, -3 -> lppd = log((e^-1 + e^-3)/2) = -1 + log((1 + e^-2)/2) = -1.5662191695
    #                    p_waic = var([-1, -3], ddof=1) = 2
    #   obs 1: -2, -2 -> lppd = -2, p_waic = 0
    # elpd_i = (-3.5662191695, -2); elpd = -5.5662191695; p = 2
    # se = sqrt(2 * var(elpd_i, ddof=1)) = |elpd_0 - elpd_1| = 1.5662191695
    dt = _ll_tree([[[-1.0, -2.0], [-3.0, -2.0]]])
    with pytest.warns(BayesmixWarning, match=r"1 of 2 observation\(s\).*p_waic_i > 0.4"):
        res = waic(dt)
    assert isinstance(res, ELPDDataWAIC)
    assert res.elpd == pytest.approx(-5.5662191695, abs=1e-9)
    assert res.p == pytest.approx(2.0)
    assert res.se == pytest.approx(1.5662191695, abs=1e-9)
    np.testing.assert_allclose(res.elpd_i.values, [-3.5662191695, -2.0], atol=1e-9)
    np.testing.assert_allclose(res.p_waic_i.values, [2.0, 0.0])
    assert res.warning and res.n_high_variance == 1
    assert res.kind == "waic" and "elpd_waic" in str(res)


def test_waic_matches_direct_numpy(smooth_trace):
    ll = smooth_trace["log_likelihood"]["X"].values.reshape(1000, -1)
    lppd = np.log(np.mean(np.exp(ll), axis=0))  # direct, no log-sum-exp trick
    p = ll.var(axis=0, ddof=1)
    elpd_i = lppd - p
    res = waic(smooth_trace)
    assert res.elpd == pytest.approx(elpd_i.sum(), rel=1e-12)
    assert res.p == pytest.approx(p.sum(), rel=1e-12)
    assert res.se == pytest.approx(np.sqrt(len(elpd_i) * elpd_i.var(ddof=1)), rel=1e-12)
    assert res.n_samples == 1000 and res.n_data_points == 40
    assert not res.warning
    # one well-determined parameter: p_waic close to 1 (normal-normal, 40 points)
    assert 0.5 < res.p < 1.5


def test_loo_delegates_to_arviz_and_agrees_with_waic(smooth_trace):
    res = loo(smooth_trace)
    ref = azs.loo(smooth_trace, pointwise=True)
    assert res.elpd == pytest.approx(ref.elpd)
    assert res.pareto_k.shape == (40,)
    # for a smooth posterior PSIS-LOO and WAIC agree to well within one SE
    assert abs(res.elpd - waic(smooth_trace).elpd) < 0.1 * res.se


def test_loo_warns_on_high_pareto_k():
    rng = np.random.default_rng(1)
    ll = rng.normal(-1.0, 0.1, size=(2, 200, 10))
    ll[:, :, 3] = rng.normal(-5.0, 8.0, size=(2, 200))  # one wildly influential point
    # no posterior group here, so the relative efficiency is given (independent draws)
    with pytest.warns(BayesmixWarning, match=r"Pareto k > 0.7.*obs \[3\]"):
        res = loo(_ll_tree(ll), reff=1.0)
    assert float(res.pareto_k[3]) > 0.7


@pytest.mark.parametrize("fn", [loo, waic])
def test_missing_log_likelihood_is_a_clear_error(smooth_trace, fn):
    dt = smooth_trace.copy()
    del dt["log_likelihood"]
    with pytest.raises(ValueError, match=r"no log_likelihood/X.*from_arrays"):
        fn(dt)
    with pytest.raises(TypeError, match="DataTree"):
        fn(np.zeros((2, 3)))
