"""The experiment pipeline (bayesmix.workflow._pipeline): recovery metrics, the notes context
manager, and the whole pipeline with a fake (fast) sampler."""

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.core._validation import BayesmixWarning
from bayesmix.mcmc._trace import from_arrays
from bayesmix.posterior import _compare as compare
from bayesmix.workflow import _fitchecks, _gibbs_length
from bayesmix.workflow import _pipeline as pipeline
from bayesmix.workflow import _spec as bspec
from bayesmix.workflow._spec import load_spec, spec_from_dict

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_adjusted_rand_index_matches_sklearn():
    # the pipeline's ARI is the package's one (bayesmix.posterior._compare), checked here as before
    assert pipeline.adjusted_rand_index is compare.adjusted_rand_index
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 4, size=60)
        b = np.where(rng.random(60) < 0.6, a, rng.integers(0, 3, size=60))
        assert pipeline.adjusted_rand_index(a, b) == pytest.approx(
            sk.adjusted_rand_score(a, b), abs=1e-12
        )
    assert pipeline.adjusted_rand_index([0, 0, 1, 1], [5, 5, 2, 2]) == 1.0


def test_recovery_zero_error_for_permuted_truth():
    truth = {
        "labels": np.array([0, 1, 1]),
        "weights": np.array([0.3, 0.7]),
        "means": np.array([[0.0, 0.0], [5.0, 1.0]]),
        "covariances": np.stack([np.eye(2), 2 * np.eye(2)]),
    }
    perm = [1, 0]
    em = SimpleNamespace(
        weights=truth["weights"][perm],
        means=truth["means"][perm],
        covariances=truth["covariances"][perm],
    )
    r = pipeline.recovery(truth, em, labels=np.array([1, 0, 0]))
    assert r["ari"] == 1.0
    err = r["parameter_errors"][0]
    assert err["max |weight error|"] == 0 and err["max |mean error|"] == 0
    em.means = em.means + 0.5
    assert pipeline.recovery(truth, em)["parameter_errors"][0]["max |mean error|"] == pytest.approx(
        0.5
    )


# ---------------------------------------------------------------------------- pipeline
def fake_build(X, K, **kw):
    return {"X": X, "K": K}


def fake_sample(model, *, init, spec, seed, quiet, notes=None, what="", draws=None):
    """Draws scattered around the EM fit ``init``, one chain in another labelling."""
    rng = np.random.default_rng(seed)
    C, S = 2, 60
    K = model["K"]
    X = np.asarray(model["X"], dtype=float)
    n = X.shape[0]
    # the components in a canonical order (by mean), so that the draws depend on the
    # EM fit and not on how its initialisation happened to number the components
    o = np.lexsort(np.asarray(init.means).T[::-1])
    weights, means, covs = (np.asarray(a)[o] for a in (init.weights, init.means, init.covariances))
    w = rng.dirichlet(weights * n + 1, size=(C, S))
    m = means + rng.normal(size=(C, S, *means.shape)) * 0.02 * X.std(0)
    c = np.broadcast_to(covs, (C, S, *covs.shape)).copy()
    c *= rng.uniform(0.95, 1.05, size=(C, S, K, 1, 1))
    if K > 1:  # one chain in the other labelling: relabel must undo it
        perm = np.roll(np.arange(K), 1)
        w[1], m[1], c[1] = w[1][:, perm], m[1][:, perm], c[1][:, perm]
    return from_arrays(
        w,
        m,
        c,
        X,
        attrs={"model": "gmm", "covariance": "full"},
        sample_stats={"diverging": np.zeros((C, S), bool)},
    )


@pytest.fixture
def fake_sampler(monkeypatch):
    """Replace the PyMC builder/sampler by draws scattered around the EM fit: the
    pipeline's own logic (relabel, LOO/WAIC, choice, membership, report) stays real.
    (test_report.py uses fake_build and fake_sample too.)"""
    monkeypatch.setattr(pipeline, "build_gmm", fake_build)
    monkeypatch.setattr(pipeline, "_sample", fake_sample)


def test_pipeline_with_fake_sampler_recovers_simulated_truth(tmp_path, fake_sampler):
    spec = load_spec(MODELS / "simulated_known_truth.toml")
    spec.k = [1, 2, 3, 4]
    spec.mcmc_k = [2, 3, 4]
    spec.em_n_init = 2
    spec.mfm = False  # the real MFM stage is covered by test_report's MCMC report
    res = pipeline.run_experiment(spec, out=tmp_path / "rep", quiet=True)
    t = res.table
    assert t.loc[t["K"] == 1, "elpd_loo"].isna().all()  # K=1 not sampled (mcmc_k)
    assert t.loc[t["K"] > 1, "elpd_loo"].notna().all()
    assert res.chosen == ("full", 3)
    # three well-separated simulated components: labels and parameters are recovered
    assert res.recovery["ari"] > 0.9
    err = {e["estimate"]: e for e in res.recovery["parameter_errors"]}
    assert err["EM"]["max |mean error|"] < 0.5
    assert err["posterior mean"]["max |weight error|"] < 0.1
    out = tmp_path / "rep"
    for f in (
        "report.md",
        "report.html",
        "figures/selection.png",
        "figures/fit.png",
        "figures/uncertainty.png",
        "figures/rank.png",
        "figures/coclustering.png",
    ):
        assert (out / f).stat().st_size > 500, f
    text = (out / "report.md").read_text()
    assert "Recovery of the simulated truth" in text and "EM against MCMC" in text
    loaded = bm.load_fit(out / "fits" / "full_K3")
    assert loaded.idata.attrs.get("relabelled") == 1
    assert loaded.config["K"] == 3
    np.testing.assert_array_equal(loaded.em_result.means, res.records[("full", 3)].em.means)


def test_coclustering_of_a_seeded_subset_above_the_limit(tmp_path, fake_sampler, monkeypatch):
    """Above COCLUSTERING_MAX_OBS observations the co-clustering (8 N^2 bytes) and the
    point partition are of a seeded subset: the report says so, recovery uses the same
    observations. The limit is lowered to 150 here so that n = 400 is 'large'."""
    monkeypatch.setattr(pipeline, "COCLUSTERING_MAX_OBS", 150)
    spec = load_spec(MODELS / "simulated_known_truth.toml")
    spec.k, spec.mcmc_k, spec.em_n_init, spec.mfm = [2, 3], [3], 2, False
    res = pipeline.run_experiment(spec, out=tmp_path / "rep", quiet=True)
    sub = res.coclustering_subset
    assert sub.shape == (150,) and np.all(np.diff(sub) > 0) and sub.max() < 400
    psm = res.coclustering
    assert psm.shape == (150, 150) and psm.attrs["n_obs"] == 400
    np.testing.assert_array_equal(psm["obs"].values, sub)  # the subset's indices into X
    # the subset's co-clustering is the full one restricted to it
    full = bm.coclustering(res.chosen_record.idata)
    np.testing.assert_allclose(psm.values, full.values[np.ix_(sub, sub)], atol=1e-12)
    assert res.partition.labels.shape == (150,)
    # recovery compares the point partition with the true labels of the same observations
    expected = pipeline.adjusted_rand_index(res.data.truth["labels"][sub], res.partition.labels)
    assert res.recovery["ari_point_partition"] == expected
    # the same seed gives the same subset
    again = pipeline.run_experiment(spec, out=tmp_path / "rep2", quiet=True, report=False)
    np.testing.assert_array_equal(again.coclustering_subset, sub)
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "of a random subset of 150 of the 400 observations (seed 7" in text
    assert "150 of 400 observations shown (random subset)" in text


def test_notes_records_warnings_as_report_notes():
    notes = []
    with pipeline._notes(notes, "EM full K=2"):
        warnings.warn("collapsed", BayesmixWarning, stacklevel=1)
        warnings.warn("collapsed", BayesmixWarning, stacklevel=1)  # repeats are kept
    assert notes == ["EM full K=2: collapsed"] * 2
    # a failing block records nothing and lets the error through
    with pytest.raises(ValueError, match="boom"), pipeline._notes(notes, "x"):
        warnings.warn("lost", BayesmixWarning, stacklevel=1)
        raise ValueError("boom")
    assert len(notes) == 2


def test_run_refused_when_every_k_above_one_failed(tmp_path, monkeypatch):
    # a grid whose every K >= 2 fit failed used to report K = 1 and exit 0 (issue 27's
    # battery: weight_concentration = 0.5 under MAP); now the run stops and names the cause
    real = pipeline._em_fit

    def failing(Xdf, cov, K, *args, **kwargs):
        if K >= 2:
            return None, ValueError("no MAP for this prior"), []
        return real(Xdf, cov, K, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_em_fit", failing)
    spec = load_spec(MODELS / "old_faithful_finite.toml", mcmc=False)
    spec.k = [1, 2, 3]
    with pytest.raises(ValueError, match=r"every EM fit with K >= 2 failed \(2 of them.*no MAP"):
        pipeline.run_experiment(spec, out=tmp_path / "rep", quiet=True)
    # one K >= 2 fit that works is a real competitor: no error
    table = pd.DataFrame(
        {"covariance": "full", "K": [1, 2, 3], "error": [None, "ValueError: x", None]}
    )
    pipeline._check_some_k_above_one(table)
    pipeline._check_some_k_above_one(table[table["K"] == 1])  # K = 1 alone was asked for


# ------------------------------------------------------------------ diagnostics-driven repeat
def test_failed_checks_name_what_was_missed():
    ok = {"max_rhat": 1.004, "min_ess_bulk": 612.0}
    assert _fitchecks.failed_checks(ok, 4) == ""
    assert _fitchecks.failed_checks({"max_rhat": 1.01, "min_ess_bulk": 612.0}, 4) == (
        "max R-hat 1.010 >= 1.01"
    )
    both = _fitchecks.failed_checks({"max_rhat": 1.02, "min_ess_bulk": 399.0, "divergences": 3}, 4)
    assert both == "max R-hat 1.020 >= 1.01, min bulk ESS 399 < 400, 3 divergences"
    # one chain: no R-hat, and the ESS threshold is not applied
    assert _fitchecks.failed_checks({"max_rhat": np.nan, "min_ess_bulk": 50.0}, 1) == ""


def test_mfm_check_reads_the_probabilities_the_report_shows():
    table = pd.DataFrame(
        {
            "variable": ["n_components"] * 3,
            "k": [2, 3, 4],
            "probability": [0.45, 0.52, 0.03],
            "mcse": [0.02, 0.02, 0.01],
            "ess": [420.0, 380.0, 40.0],  # k = 4 (P < 0.05) is not read
        }
    )
    assert _fitchecks.mfm_failed_checks(table, 4) == "min ESS of P(K = k) 380 < 400"
    table.loc[1, "ess"] = 401.0
    assert _fitchecks.mfm_failed_checks(table, 4) == ""


def test_gibbs_fit_failing_its_diagnostics_is_sampled_again_with_more_draws(tmp_path, monkeypatch):
    """Real Gibbs runs (Old Faithful, K = 2 and the MFM): with thresholds no run can meet,
    each fit is sampled exactly once more, with gibbs_retry_draws draws and a derived
    seed, and the report's notes say so; the repeat is what the result holds."""
    monkeypatch.setattr(_gibbs_length, "GIBBS_DRAWS", 40)
    monkeypatch.setattr(_gibbs_length, "GIBBS_MFM_DRAWS", 60)
    monkeypatch.setattr(_fitchecks, "ESS_PER_CHAIN", 10**9)
    spec = spec_from_dict(
        {
            "model": {"k": [1, 2], "em_n_init": 1},
            "sampler": {"mcmc_k": [2], "draws": 30, "tune": 30, "chains": 2, "gibbs_tune": 20},
        }
    )
    res = pipeline.run_experiment(spec, out=tmp_path / "r", quiet=True)
    fit = res.records[("full", 2)].idata
    assert fit.attrs["sampler"] == "gibbs"
    assert fit["posterior"].sizes["draw"] == bspec.gibbs_retry_draws(spec, 272) == 80
    assert res.mfm.idata["posterior"].sizes["draw"] == 120
    notes = [n for n in res.notes if "sampled again" in n]
    assert len(notes) == 2, res.notes
    assert notes[0].startswith("MCMC full K=2: ") and "min bulk ESS" in notes[0]
    assert "with 40 draws per chain" in notes[0]
    assert notes[1].startswith("MFM: min ESS of P(K = k)") and "with 80" not in notes[1]
    text = (tmp_path / "r" / "report.md").read_text()
    assert "sampled again with 80" in text and "sampled again with 120" in text
