"""Bootstrap likelihood-ratio test for K (McLachlan 1987; mclust's mclustBootstrapLRT)."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmix as bm


@pytest.fixture(scope="module")
def two_clusters():
    X, _ = bm.simulate(60, [0.5, 0.5], [[0.0], [6.0]], [[1.0], [1.0]], random_seed=0)
    return X


def test_bootstrap_lrt_table(two_clusters):
    tab = bm.bootstrap_lrt(two_clusters, [1, 2], n_boot=19, random_seed=0, progressbar=False)
    assert list(tab.index) == [1, 2]
    assert list(tab.columns[:4]) == ["K_alt", "lrt", "p_value", "n_boot"]
    # two clusters 6 sd apart: K=1 is rejected with the smallest p-value 1/20 (no
    # simulated one-Gaussian sample gets near the observed LRT of ~53) ...
    assert tab.loc[1, "p_value"] == pytest.approx(1 / 20)
    assert tab.loc[1, "lrt"] > 40
    # ... and K=2 is not rejected (the data are two Gaussians)
    assert tab.loc[2, "p_value"] > 0.1
    np.testing.assert_allclose(
        tab["lrt"], 2 * (tab["log_likelihood_K_alt"] - tab["log_likelihood_K"])
    )
    # p-values are (1 + count) / (n_boot + 1)
    assert np.allclose((tab["p_value"] * 20) % 1, 0)


def test_bootstrap_lrt_reproducible(two_clusters):
    a = bm.bootstrap_lrt(two_clusters, 2, n_boot=19, random_seed=3, progressbar=False)
    b = bm.bootstrap_lrt(two_clusters, 2, n_boot=19, random_seed=3, progressbar=False)
    assert a.equals(b)


def test_bootstrap_lrt_progress(two_clusters, capsys):
    bm.bootstrap_lrt(two_clusters, 1, n_boot=19, random_seed=0, covariance="spherical")
    assert "19/19" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(ks=[1], n_boot=10), ValueError, r"smallest p-value.*0\.0909"),
        (dict(ks=[2, 1]), ValueError, "strictly increasing"),
        (dict(ks=[1, 1]), ValueError, "strictly increasing"),
        (dict(ks=[]), ValueError, "empty"),
        (dict(ks=[0]), ValueError, "ks"),
        (dict(ks=[1.5]), TypeError, "ks"),
        (dict(ks=[4]), ValueError, "K \\+ 1 = 5"),
        (dict(ks="ab"), TypeError, "ks"),
    ],
)
def test_bootstrap_lrt_bad_input(kwargs, exc, match):
    X = np.arange(8.0).reshape(4, 2)
    with pytest.raises(exc, match=match):
        bm.bootstrap_lrt(X, **{"n_boot": 19, **kwargs})


@pytest.mark.slow
def test_bootstrap_lrt_size_under_the_null():
    """Rejection rate of the 5% test on one-Gaussian data (the null K=1 holds).

    With B = 19 replicates the p-value is a multiple of 1/20, and a valid test rejects
    (p <= 0.05) with probability exactly 1/20 when the statistic has a continuous null
    distribution (the observed and bootstrap statistics are exchangeable up to the
    estimation of the null parameters). Over R = 200 independent data sets the
    rejection count is Binomial(200, 0.05): sd = sqrt(200 * 0.05 * 0.95) = 3.1, so
    [10 - 3 sd, 10 + 3 sd] = [1, 19] holds with probability > 0.997. The same for the
    25% level (p <= 0.25: Binomial(200, 0.25), mean 50, sd 6.1, [32, 68]).
    """
    rng = np.random.default_rng(2024)
    p = []
    for _ in range(200):
        X = rng.normal(size=(80, 1))
        tab = bm.bootstrap_lrt(
            X, 1, covariance="full", n_boot=19, random_seed=rng, progressbar=False
        )
        p.append(tab.loc[1, "p_value"])
    p = np.array(p)
    assert 1 <= (p <= 0.05 + 1e-12).sum() <= 19
    assert 32 <= (p <= 0.25 + 1e-12).sum() <= 68


def test_select_k_lrt_column(two_clusters):
    tab = bm.select_k(
        two_clusters,
        [1, 2],
        mcmc=False,
        n_init=1,
        random_seed=0,
        progress=False,
        lrt=True,
        lrt_boot=19,
    )
    assert tab.loc[tab["K"] == 1, "lrt_p_value"].item() == pytest.approx(0.05)
    assert tab.loc[tab["K"] == 2, "lrt_p_value"].item() > 0.1
    assert tab.attrs["recommended"]["lrt"] == 2
    with pytest.raises(ValueError, match="lrt"):
        bm.select_k(two_clusters, [1], mcmc=False, lrt=True, sample_weight=np.ones(60))
