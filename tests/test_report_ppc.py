"""The report's posterior predictive check (bayesmix.workflow._report_ppc): the section
and figure with the pipeline's fake sampler, and a deliberately wrong model flagged."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from test_pipeline import fake_build, fake_sample
from test_report import sections, table_with

import bayesmix as bm
from bayesmix.workflow import _pipeline as pipeline
from bayesmix.workflow._report_ppc import PPC_DRAWS, failure_sentence, ppc_check, ppc_draws
from bayesmix.workflow._spec import spec_from_dict


def _run(tmp_path, spec_dict):
    spec = spec_from_dict(spec_dict)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "build_gmm", fake_build)
        mp.setattr(pipeline, "_sample", fake_sample)
        res = pipeline.run_experiment(spec, out=tmp_path / "rep", quiet=True)
    return res, tmp_path / "rep"


def _simulated(means, k, covariance=None):
    return {
        "seed": 5,
        "data": {
            "source": "simulate",
            "simulate": {
                "n_obs": 300,
                "weights": [1.0 / len(means)] * len(means),
                "means": means,
                "covariances": covariance or [[[1.0, 0.0], [0.0, 1.0]]] * len(means),
                "seed": 3,
            },
        },
        "model": {"k": k, "covariance": ["full"], "em_n_init": 2, "mfm": False},
        "sampler": {"mcmc": True, "mcmc_k": k, "chains": 2},
    }


def test_k1_fit_to_two_clusters_fails_the_modes_statistic(tmp_path):
    # two clusters 8 sd apart along x0, fit by one Gaussian (K grid [1]): the data's x0
    # has two modes, every replicate one, so p(n_modes of x0) = 0 and the report says so
    res, out = _run(tmp_path, _simulated([[0.0, 0.0], [8.0, 0.0]], [1]))
    assert res.chosen == ("full", 1)
    t = res.ppc.table.set_index(["statistic", "feature"])
    assert t.loc[("n_modes", "x0"), "observed"] == 2
    assert t.loc[("n_modes", "x0"), "p_value"] < 0.025
    assert bool(t.loc[("n_modes", "x0"), "extreme"])
    text = (out / "report.md").read_text()
    assert "Posterior predictive check" in sections(text)
    m = re.search(r"\*\*(The chosen model does not reproduce: [^*]+)\*\*", text)
    assert m and "the number of modes of x0 (p = 0.00)" in m.group(1)
    assert m.group(1) == failure_sentence(res.ppc.table)
    rows = table_with(text, "p_value")
    assert {"statistic": "n_modes", "feature": "x0"}.items() <= next(
        r for r in rows if r["statistic"] == "n_modes"
    ).items()
    assert (out / "figures" / "ppc.png").stat().st_size > 1000
    assert "figures/ppc.png" in text


def test_a_fitting_model_reproduces_the_modes(tmp_path):
    # the same data with K = 2: the modes statistic is not extreme (the control)
    res, out = _run(tmp_path, _simulated([[0.0, 0.0], [8.0, 0.0]], [2]))
    t = res.ppc.table.set_index(["statistic", "feature"])
    assert not t.loc[("n_modes", "x0"), "extreme"]
    text = (out / "report.md").read_text()
    assert "Posterior predictive check" in sections(text)
    assert "the number of modes of x0" not in text
    assert res.ppc.n_draws == 2 * 60  # the fake sampler's 2 x 60 draws: all of them (< 200)


def test_ppc_check_bounded_and_fast_on_old_faithful(faithful_df):
    # 4 chains x 1000 draws of a K = 3 posterior: the check uses 200 draws and, on Old
    # Faithful, costs well under a second (measured 0.09 s at load 10 on 2 cores, after
    # the deviances' kernels were kept on one thread: 4 s before; the bound is loose)
    X = faithful_df
    em = bm.fit_em(X, 3, random_seed=0)
    rng = np.random.default_rng(0)
    C, S = 4, 1000
    w = np.broadcast_to(em.weights, (C, S, 3))
    mu = em.means + rng.normal(0, 0.05, (C, S, *em.means.shape))
    cov = np.broadcast_to(em.covariances, (C, S, *em.covariances.shape))
    dt = bm.from_arrays(w, mu, cov, X.to_numpy(), feature_names=list(X.columns))
    ppc_check(dt, 0)  # warm-up (numba compilation of the density layer)
    t0 = time.perf_counter()
    check = ppc_check(dt, 0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0
    assert check.n_draws == PPC_DRAWS
    assert check.idata["posterior_predictive"]["X"].shape == (4, 50, 272, 2)
    assert ppc_draws(100_000, 5) == 40 and ppc_draws(10**7, 10) == 20


def test_k1_misfit_loo_pit_is_not_uniform(tmp_path):
    # the K=1 fit to two clusters 8 sd apart: the LOO-PIT of x0 piles up near
    # Phi(-+4 / 4.1) = 0.16 and 0.84 (KS p-value ~1e-10 or smaller); the K=2 fit's is
    # uniform (p > 0.01; the threshold LOO_PIT_ALPHA of the report)
    from scipy import stats

    from bayesmix.workflow._report_ppc import loo_pit_sentence

    bad, out = _run(tmp_path / "k1", _simulated([[0.0, 0.0], [8.0, 0.0]], [1]))
    good, _ = _run(tmp_path / "k2", _simulated([[0.0, 0.0], [8.0, 0.0]], [2]))
    t_bad = bad.ppc.loo_pit_table.set_index("feature")
    t_good = good.ppc.loo_pit_table.set_index("feature")
    assert t_bad.loc["x0", "ks_p_value"] < 1e-6
    assert t_good.loc["x0", "ks_p_value"] > 0.01
    pit = bad.ppc.loo_pit["x0"].values
    assert pit.shape == (300,) and np.all((pit >= 0) & (pit <= 1))
    assert t_bad.loc["x0", "ks_p_value"] == pytest.approx(stats.kstest(pit, "uniform").pvalue)
    # few LOO-PIT values in the middle of (0, 1): between the two clusters
    assert np.mean((pit > 0.4) & (pit < 0.6)) < 0.05
    text = (out / "report.md").read_text()
    assert "LOO-PIT is not uniform for: x0" in text
    assert loo_pit_sentence(bad.ppc.loo_pit_table) in text


def test_ppc_too_large_is_a_note_not_a_failure(monkeypatch):
    # a replicate over the memory bound even at the minimum number of draws: the report
    # skips the check with a note instead of failing the run
    from bayesmix.posterior import _ppc
    from bayesmix.workflow._report_ppc import ppc_for_report

    monkeypatch.setattr(_ppc, "MAX_PPC_VALUES", 10)
    X = np.random.default_rng(0).normal(size=(50, 1))
    dt = bm.from_arrays(np.ones((2, 30, 1)), np.zeros((2, 30, 1, 1)), np.ones((2, 30, 1, 1, 1)), X)
    notes = []
    assert ppc_for_report(dt, 0, notes) is None
    assert len(notes) == 1 and notes[0].startswith("posterior predictive check skipped:")
