"""Tests for loo, waic (against hand-computed and independent numpy values) and select_k."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesmix.core._validation import BayesmixWarning
from bayesmix.mcmc._trace import from_arrays
from bayesmix.posterior._selection import ELPDDataWAIC, loo, waic


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
    del dt["log_likelihood"]  # without the group and without the parameters to compute it
    dt["posterior"] = dt["posterior"].to_dataset().drop_vars("means")
    with pytest.raises(ValueError, match=r"no log_likelihood/X.*from_arrays"):
        fn(dt)
    with pytest.raises(TypeError, match="DataTree"):
        fn(np.zeros((2, 3)))


# ---------------------------------------------------------------------------- select_k

import bayesmix as bm  # noqa: E402
from bayesmix.posterior import _selection as selection  # noqa: E402

THREE = dict(
    weights=[0.3, 0.3, 0.4],
    means=[[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]],
    covariances=[np.eye(2)] * 3,
)


@pytest.fixture(scope="module")
def three_clusters():
    X, z = bm.simulate(300, **THREE, random_seed=0)
    return X, z


@pytest.mark.parametrize("covariance", ["diag", "spherical"])
def test_select_k_em_only(three_clusters, covariance, capsys):
    X, _ = three_clusters
    df = bm.select_k(X, range(1, 6), covariance=covariance, mcmc=False, n_init=2, random_seed=0)
    assert df["K"].tolist() == [1, 2, 3, 4, 5]
    assert df.attrs["recommended"] == {"bic": 3, "icl": 3}
    assert "lowest BIC" in df.attrs["rules"]["bic"]
    assert df.loc[df.K == 3, "recommended_by"].item() == "bic,icl"
    assert "elpd_loo" not in df
    # the table's BIC is the EM fit's, computed independently from its log-likelihood
    em3 = df.attrs["fits"][3].em
    n_par = {"diag": 3 * 2 * 2 + 2, "spherical": 3 * 2 + 3 + 2}[covariance]
    assert df.loc[df.K == 3, "n_params"].item() == n_par
    assert df.loc[df.K == 3, "bic"].item() == pytest.approx(
        -2 * em3.log_likelihood + n_par * np.log(300)
    )
    # progress: one line per K and a summary
    err = capsys.readouterr().err
    assert err.count("select_k [") == 5 and "recommended BIC: K=3" in err
    # fits survive pandas copying attrs
    assert df.copy().attrs["fits"][3].em is em3


def _fake_mcmc(X, K, *, em, random_seed, chains, draws, **_):
    """Draws scattered around the EM fit, one chain in another labelling (no MCMC).

    Like build_gmm + sample, a DataFrame's column names become the feature names.
    """
    names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
    X = np.asarray(X, dtype=float)
    rng = np.random.default_rng(random_seed)
    w = em.weights * rng.uniform(0.95, 1.05, (chains, draws, K))
    w /= w.sum(-1, keepdims=True)
    mu = em.means + rng.normal(0, 0.05, (chains, draws, K, X.shape[1]))
    cov = em.covariances * rng.uniform(0.95, 1.05, (chains, draws, K, 1, 1))
    perm = np.roll(np.arange(K), 1)
    w[-1], mu[-1], cov[-1] = w[-1][:, perm], mu[-1][:, perm], cov[-1][:, perm]
    ss = {"diverging": np.zeros((chains, draws), dtype=bool)}
    return from_arrays(w, mu, cov, X, feature_names=names, attrs={"model": "gmm"}, sample_stats=ss)


@pytest.mark.filterwarnings("ignore:select_k.*R-hat")  # independent fake draws: chance
@pytest.mark.parametrize("rule", ["one-se", "best"])
def test_select_k_mcmc_table_and_rule(three_clusters, monkeypatch, rule):
    X, _ = three_clusters
    monkeypatch.setattr(selection, "_run_mcmc", _fake_mcmc)
    df = bm.select_k(
        X, [1, 2, 3, 4], covariance="spherical", n_init=2, chains=2, draws=100,
        random_seed=1, progress=False, rule=rule,
    )  # fmt: skip
    fits = df.attrs["fits"]
    for col in ("elpd_loo", "elpd_loo_se", "p_loo", "pareto_k_max", "elpd_waic", "max_rhat"):
        assert df[col].notna().all(), col
    assert (df["divergences"] == 0).all()
    # chain 1 was in another labelling for K > 1; relabelling against EM fixed it
    assert df["label_switching"].tolist() == [False, True, True, True]
    assert (df["max_rhat"] < 1.05).all()
    np.testing.assert_allclose(df["elpd_loo"], [fits[k].loo.elpd for k in df.K])
    np.testing.assert_allclose(df["elpd_waic"], [fits[k].waic.elpd for k in df.K])
    # the rule, recomputed here from the pointwise ELPDs
    e = {k: fits[k].loo.elpd_i.values for k in df.K}
    best = max(e, key=lambda k: e[k].sum())
    if rule == "best":
        expected = best
    else:
        expected = min(
            k for k in e
            if e[k].sum()
            >= e[best].sum() - max(np.sqrt(300 * np.var(e[k] - e[best], ddof=1)), 4.0)
        )  # fmt: skip
    assert df.attrs["recommended"]["loo"] == expected
    assert df.attrs["recommended"]["bic"] == 3
    # well separated clusters: K=1 and K=2 are far below the best ELPD
    assert df.loc[df.K <= 2, "elpd_loo_diff"].max() < -50


def test_select_k_bad_input(three_clusters):
    X, _ = three_clusters
    with pytest.raises(ValueError, match="rule must be one of"):
        bm.select_k(X, [1, 2], mcmc=False, rule="aic")
    with pytest.raises(ValueError, match="repeated"):
        bm.select_k(X, [2, 2], mcmc=False)
    with pytest.raises(TypeError, match="ks must be an iterable of integers"):
        bm.select_k(X, [1.5], mcmc=False)
    with pytest.raises(ValueError, match="covariance must be one of"):
        bm.select_k(X, [1], covariance="banana", mcmc=False)


@pytest.mark.slow
@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied"])
def test_select_k_recovers_three_components(three_clusters, covariance):
    """Real MCMC: both LOO and BIC choose K=3 on three well separated components."""
    X, _ = three_clusters
    # 2 x 500 draws: the ELPD of an over-fitted K (its superfluous components wander,
    # R-hat 1.3-1.9) is noisy; with 2 x 300 draws, diag at seed 0 had K=5 3.7 nats above
    # K=3, more than one SE of the difference (seeds 1 and 2 chose K=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesmixWarning)
        df = bm.select_k(
            X, range(1, 7), covariance=covariance, draws=500, tune=500, chains=2,
            n_init=3, random_seed=0, progress=False,
        )  # fmt: skip
    assert df.attrs["recommended"]["bic"] == 3
    assert df.attrs["recommended"]["loo"] == 3


def test_select_k_keeps_feature_names(three_clusters, monkeypatch):
    import pandas as pd

    X, _ = three_clusters
    frame = pd.DataFrame(X, columns=["height", "width"])
    monkeypatch.setattr(selection, "_run_mcmc", _fake_mcmc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesmixWarning)
        df = bm.select_k(frame, [2], covariance="spherical", n_init=1, draws=20, progress=False)
    fit = df.attrs["fits"][2]
    assert list(fit.em.feature_names) == ["height", "width"]
    assert fit.idata["posterior"]["feature"].values.tolist() == ["height", "width"]


def test_loo_needs_enough_draws():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="at least 25 posterior draws"):
        loo(_ll_tree(rng.normal(-1, 0.1, size=(2, 10, 5))), reff=1.0)


# ---------------------------------------------------------------------------- the choice rule
def test_choice_rule_prefers_fewer_parameters_within_one_se():
    """(Moved from test_experiment: the pipeline's choice is selection.choose_model.)"""
    rng = np.random.default_rng(0)
    base = rng.normal(-5, 1, size=10)
    loo2 = SimpleNamespace(elpd=base.sum(), se=1.0, elpd_i=base)
    loo3 = SimpleNamespace(
        elpd=base.sum() + 0.2, se=1.0, elpd_i=base + 0.02 + rng.normal(0, 0.3, 10)
    )
    loos = {("full", 2): loo2, ("full", 3): loo3}
    table = pd.DataFrame(
        {
            "covariance": ["full", "full"],
            "K": [2, 3],
            "bic": [1.0, 2.0],
            "elpd_loo": [loo2.elpd, loo3.elpd],
            "error": [None, None],
        }
    )
    key, reason = selection.choose_model(table, loos, 2)
    assert key == ("full", 2) and "within one SE" in reason
    # a clear improvement wins
    loo3.elpd_i = base + 3.0
    table.loc[1, "elpd_loo"] = loo3.elpd = float(loo3.elpd_i.sum())
    assert selection.choose_model(table, loos, 2)[0] == ("full", 3)


def test_choose_elpd_negligible_difference_floor():
    """A difference under 4 nats is negligible even when its SE is tiny; above
    max(SE, 4) the better model wins; a large SE widens the band beyond 4 nats."""
    n = 200
    base = np.full(n, -5.0)
    # K=3 vs K=4: 1.5 nats spread evenly, so the SE of the difference is ~0.002
    e3 = base.copy()
    e4 = base + 1.5 / n + np.linspace(-1e-4, 1e-4, n)
    c = selection.choose_elpd({3: e3.sum(), 4: e4.sum()}, {3: 11, 4: 15}, elpd_i={3: e3, 4: e4})
    assert c.best == 4 and c.diff_se[3] < 0.01
    assert c.chosen == 3  # the floor, not the SE, keeps K=3
    # 6 nats, still with a tiny SE: a real improvement
    e4 = base + 6.0 / n + np.linspace(-1e-4, 1e-4, n)
    c = selection.choose_elpd({3: e3.sum(), 4: e4.sum()}, {3: 11, 4: 15}, elpd_i={3: e3, 4: e4})
    assert c.chosen == 4
    # 6 nats with a large SE of the difference (+-0.6 per point around +0.03): within
    # one SE (sqrt(200 * 0.36) = 8.5), so the smaller K is kept
    e4 = base + 6.0 / n + np.where(np.arange(n) % 2, 0.6, -0.6)
    c = selection.choose_elpd({3: e3.sum(), 4: e4.sum()}, {3: 11, 4: 15}, elpd_i={3: e3, 4: e4})
    assert c.diff_se[3] > 6.0 and c.chosen == 3
    assert selection.ELPD_NEGLIGIBLE_DIFF == 4.0
    assert "4 nats" in selection.CHOICE_RULE


def test_choice_rule_across_covariances_counts_parameters():
    """Within one SE of the best (full K=3, 17 parameters in 2-D), the fits with the
    fewest parameters are full K=2 (6 + 4 + 1 = 11) and spherical K=3 (3 + 6 + 2 = 11);
    the tie goes to the higher ELPD, spherical K=3.

    Pointwise differences are 20 x (0.3, -0.5, 0, 0) etc., so that they exceed the
    4-nat floor of negligible differences. ELPDs: best -182; spherical K=3 -189, SE of
    the difference 13.1; full K=2 -194, SE 13.3 (20 x sqrt(4 Var_i(diff_i)), by hand)."""
    e = 20 * np.array([-2.0, -3.0, -2.5, -2.0])
    elpd_i = {
        ("full", 2): e + 20 * np.array([0.3, -0.5, 0.0, 0.0]),
        ("spherical", 3): e + 20 * np.array([0.4, -0.4, 0.05, 0.0]),
        ("full", 3): e + 20 * 0.1,
    }
    table = pd.DataFrame(
        {
            "covariance": [k[0] for k in elpd_i],
            "K": [k[1] for k in elpd_i],
            "bic": [3.0, 2.0, 1.0],
            "elpd_loo": [v.sum() for v in elpd_i.values()],
            "elpd_loo_se": [20.0, 20.0, 20.0],
        }
    )
    loos = {k: SimpleNamespace(elpd_i=v) for k, v in elpd_i.items()}
    key, reason = selection.choose_model(table, loos, 2)
    assert key == ("spherical", 3), reason
    assert "best ELPD-LOO -182.0 at full K=3" in reason
    # without pointwise values the table's SE (20) is used: the same two are within it
    assert selection.choose_model(table, {}, 2)[0] == ("spherical", 3)
    # with a small SE (0.1) the band is the 4-nat floor: only the best is within it
    assert selection.choose_model(table.assign(elpd_loo_se=0.1), {}, 2)[0] == ("full", 3)
    # without ELPD: the lowest BIC
    key, reason = selection.choose_model(table.assign(elpd_loo=np.nan), {}, 2)
    assert key == ("full", 3) and "lowest BIC" in reason


def test_choose_elpd_is_select_ks_rule():
    """select_k's recommendation and the pipeline's choice are one function: on one
    covariance type, "fewest parameters" is "smallest K"."""
    base = np.full(5, -2.0)
    elpd_i = {
        1: base + np.array([0.1, -0.2, 0.1, -0.1, 0.05]),
        2: base,
        3: base + np.array([0, 0.1, 0, 0, -0.3]),
    }
    elpd = {k: v.sum() for k, v in elpd_i.items()}
    n_params = {1: 5, 2: 11, 3: 17}
    c = selection.choose_elpd(elpd, n_params, elpd_i=elpd_i)
    # K=1 is 0.05 below the best, K=2, with an SE of the difference of 0.30
    assert c.best == 2 and c.chosen == 1
    assert c.diff[1] == pytest.approx(-0.05)
    assert c.diff_se[1] == pytest.approx(np.sqrt(5 * np.var([0.1, -0.2, 0.1, -0.1, 0.05], ddof=1)))
    assert c.diff_se[2] == 0.0
    assert selection.choose_elpd(elpd, n_params, elpd_i=elpd_i, rule="best").chosen == 2
    with pytest.raises(ValueError, match="rule must be one of"):
        selection.choose_elpd(elpd, n_params, rule="aic")


def test_select_k_passes_every_sample_keyword(three_clusters, monkeypatch):
    """Regression: select_k(X, ks, progressbar=False) raised "sample() got multiple values
    for keyword argument 'progressbar'". Keywords of bayesmix.sample / pymc.sample reach
    the sampler, taking precedence over select_k's defaults."""
    import bayesmix.mcmc._builders
    import bayesmix.mcmc._sample

    X, _ = three_clusters
    calls = []

    def fake_sample(model, **kwargs):
        calls.append(kwargs)
        return _fake_mcmc(model, model.K, em=kwargs["init"], **kwargs)

    def fake_build(X, K, **kw):
        frame = __import__("pandas").DataFrame(np.asarray(X))
        frame.K = K
        return frame

    monkeypatch.setattr(bayesmix.mcmc._builders, "build_gmm", fake_build)
    monkeypatch.setattr(bayesmix.mcmc._sample, "sample", fake_sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesmixWarning)
        bm.select_k(
            X, [2], covariance="spherical", n_init=1, draws=30, chains=2, progress=True,
            progressbar=False, target_accept=0.95, nuts_sampler="pymc",
        )  # fmt: skip
    (kw,) = calls
    assert kw["progressbar"] is False and kw["target_accept"] == 0.95
    assert kw["nuts_sampler"] == "pymc" and kw["draws"] == 30 and kw["chains"] == 2
    # without progressbar, select_k's progress decides
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesmixWarning)
        bm.select_k(X, [2], covariance="spherical", n_init=1, draws=30, progress=False)
    assert calls[-1]["progressbar"] is False
    with pytest.raises(TypeError, match="remove the model= argument"):
        bm.select_k(X, [2], n_init=1, model=object())
