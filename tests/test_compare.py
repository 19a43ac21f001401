"""Tests for compare_fits and adjusted_rand_index (against scikit-learn and scipy)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.metrics import adjusted_rand_score

import bayesmix as bm
from bayesmix.mcmc._relabel import LabelSwitchingWarning
from bayesmix.mcmc._trace import from_arrays
from bayesmix.posterior._compare import FitComparison, adjusted_rand_index, compare_fits


@pytest.mark.parametrize("seed", range(5))
def test_ari_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, size=50)
    b = np.where(rng.random(50) < 0.7, a, rng.integers(0, 3, size=50)) + 10
    assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)


def test_ari_hand_cases():
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 2, 2]) == 1.0
    # n=4, a = {0,1}{2,3}, b = {0,2}{1,3}: sum_ij = 0, sum_a = sum_b = 2, E = 4/6
    # ARI = (0 - 2/3) / (2 - 2/3) = -0.5
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="same observations"):
        adjusted_rand_index([0, 1], [0, 1, 2])


@pytest.fixture(scope="module")
def setting():
    X, z = bm.simulate(
        120, [0.5, 0.5], [[0.0, 0.0], [6.0, 0.0]], [np.eye(2), np.eye(2)], random_seed=0
    )
    em = bm.fit_em(X, 2, random_seed=0)
    rng = np.random.default_rng(1)
    C, S = 2, 60
    dw = rng.normal(0, 0.02, (C, S, 1)) * [1, -1]
    w = em.weights + dw
    mu = em.means + rng.normal(0, 0.1, (C, S, 2, 2))
    mu[..., 1, 1] += 1.0  # posterior of means[1, x1] shifted well away from EM
    cov = em.covariances * rng.uniform(0.9, 1.1, (C, S, 2, 1, 1))
    # chain 1 in the other labelling: compare_fits must relabel it to the EM fit
    perm = np.array([1, 0])
    w[1], mu[1], cov[1] = w[1][:, perm], mu[1][:, perm], cov[1][:, perm]
    dt = from_arrays(w, mu, cov, X, attrs={"model": "gmm"})
    with pytest.warns(LabelSwitchingWarning):
        cmp = compare_fits(em, dt)
    return X, z, em, dt, cmp


def test_compare_fits_table(setting):
    _, _, em, _, cmp = setting
    assert isinstance(cmp, FitComparison)
    t = cmp.table
    assert list(t.columns) == [
        "parameter", "component", "feature", "feature2",
        "em", "posterior_mean", "hdi_low", "hdi_high", "inside",
    ]  # fmt: skip
    # 2 weights + 4 means + 2 x 3 lower-triangle covariance entries
    assert len(t) == 12
    row = t[(t.parameter == "means") & (t.component == 1) & (t.feature == "x1")].iloc[0]
    assert row["em"] == pytest.approx(em.means[1, 1])
    assert not row["inside"] and row["hdi_low"] > row["em"]
    # everything else was drawn around the EM values
    assert t["inside"].sum() == 11
    # posterior means equal the relabelled draw averages
    rel = cmp.relabelled["posterior"]["weights"].values
    np.testing.assert_allclose(t[t.parameter == "weights"]["posterior_mean"], rel.mean((0, 1)))
    assert (t.hdi_low <= t.posterior_mean).all() and (t.posterior_mean <= t.hdi_high).all()
    assert "outside: means[1, x1]" in repr(cmp)


def test_compare_fits_partitions_and_predictive(setting):
    X, z, em, dt, cmp = setting
    assert cmp.ari == pytest.approx(1.0)
    assert cmp.label_agreement == pytest.approx(1.0)
    assert adjusted_rand_score(z, em.predict(X)) == pytest.approx(1.0)
    # independent plug-in and posterior predictive from scipy
    dens = sum(
        em.weights[k] * multivariate_normal(em.means[k], em.covariances[k]).pdf(X) for k in range(2)
    )
    assert cmp.log_predictive["em"] == pytest.approx(np.log(dens).sum(), rel=1e-10)
    w, m, c = (dt["posterior"][v].values.reshape(-1, *dt["posterior"][v].shape[2:])
               for v in ("weights", "means", "covariances"))  # fmt: skip
    ll = np.array(
        [
            np.log(sum(w[s, k] * multivariate_normal(m[s, k], c[s, k]).pdf(X) for k in range(2)))
            for s in range(len(w))
        ]
    )
    expected = (logsumexp(ll, axis=0) - np.log(len(w))).sum()
    assert cmp.log_predictive["posterior"] == pytest.approx(expected, rel=1e-10)


def test_compare_fits_bad_input(setting):
    _, _, em, dt, _ = setting
    em3 = SimpleNamespace(
        weights=np.full(3, 1 / 3),
        means=np.zeros((3, 2)),
        covariances=np.broadcast_to(np.eye(2), (3, 2, 2)),
        predict=em.predict,
        score_samples=em.score_samples,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="same number of components"):
            compare_fits(em3, dt)
    with pytest.raises(TypeError, match="fit_em"):
        compare_fits(object(), dt)
    dp = dt.copy()
    dp.attrs["model"] = "dpgmm"
    with pytest.raises(ValueError, match="coclustering"):
        compare_fits(em, dp)


@pytest.mark.slow
def test_end_to_end_old_faithful_em_against_mcmc():
    """Real MCMC on Old Faithful, K=2, full covariance, MAP prior shared with EM.

    The posterior (272 points, 11 parameters) is concentrated, so the MAP lies inside
    the 94% HDI for nearly every parameter and partitions agree almost everywhere.
    """
    X = bm.load_old_faithful()
    prior = bm.GMMPrior.from_data(X.to_numpy(), 2)
    em = bm.fit_em(X, 2, prior=prior, n_init=5, random_seed=0)
    model = bm.build_gmm(X, 2, prior=prior)
    idata = bm.sample(model, init=em, draws=400, tune=400, chains=2, random_seed=1)
    rel = bm.relabel(idata, reference=em)
    from bayesmix.mcmc._relabel import diagnostics

    assert diagnostics(rel, rhat_max=1.05)["rhat"].max() < 1.05
    cmp = compare_fits(em, idata)
    # 2 of 12 outside by chance is the most a 94% interval allows here comfortably
    assert cmp.fraction_inside >= 10 / 12
    assert cmp.ari > 0.95
    # plug-in at the mode vs posterior predictive: differ by about p/2 nats at most
    assert abs(cmp.log_predictive["em"] - cmp.log_predictive["posterior"]) < 11
    lo, wa = bm.loo(idata), bm.waic(idata)
    assert abs(lo.elpd - wa.elpd) < 0.5 * lo.se
    assert 8 < lo.p < 14  # 11 free parameters, weakly informative prior
