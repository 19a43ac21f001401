"""Experiment specs: parsing, validation errors naming the key, data loading, recovery
metrics, and the whole pipeline with a fake (fast) sampler."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix import experiment as ex
from bayesmix._trace import from_arrays
from bayesmix.experiment import SpecError, load_spec, parse_k, spec_from_dict

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize(
    "value, expected",
    [
        (3, [3]),
        ("1-6", [1, 2, 3, 4, 5, 6]),
        ("1,2,4", [1, 2, 4]),
        ("1-3,6", [1, 2, 3, 6]),
        ([4, 2, 2], [2, 4]),
        (" 2 - 3 ", [2, 3]),
    ],
)
def test_parse_k(value, expected):
    assert parse_k(value) == expected


@pytest.mark.parametrize("value", ["0-3", "a", "3-1", "", [1.5], True, "1-", [0]])
def test_parse_k_errors(value):
    with pytest.raises(SpecError, match="k"):
        parse_k(value)


@pytest.mark.parametrize(
    "d, match",
    [
        ({"bogus": 1}, r"unknown key\(s\) \['bogus'\] in the top level"),
        ({"data": {"source": "web"}}, "data.source must be"),
        ({"data": {"source": "csv"}}, r"data\.path \(a CSV file\) is required"),
        ({"data": {"source": "simulate"}}, "data.simulate"),
        ({"data": {"source": "simulate", "simulate": {"n_obs": 5}}}, "data.simulate.weights"),
        ({"data": {"colums": ["a"]}}, r"unknown key\(s\) \['colums'\] in \[data\]"),
        ({"data": {"standardize": "yes"}}, "data.standardize must be true or false"),
        ({"model": {"k": "0-2"}}, "model.k must be >= 1"),
        ({"model": {"covariance": ["ful"]}}, "model.covariance must be one of"),
        ({"model": {"kind": "infinite"}}, "model.kind"),
        ({"model": {"estimate": "mle"}}, "model.estimate"),
        ({"sampler": {"draws": 0}}, "sampler.draws must be an integer >= 1"),
        ({"sampler": {"chains": 1.5}}, "sampler.chains"),
        ({"sampler": {"mcmc_k": [7]}}, r"sampler\.mcmc_k has K=\[7\] not in model\.k"),
        ({"prior": {"dof": -1}}, "prior.dof must be a positive number"),
        ({"prior": {"kappa": 1}}, r"unknown key\(s\) \['kappa'\] in \[prior\]"),
        ({"prior": {"dp_concentration": [1]}}, "prior.dp_concentration"),
        ({"prior": {"covariance_prior": "lkj"}}, "no closed-form MAP"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"name": "a b"}, "name must be a word"),
    ],
)
def test_spec_errors_name_the_key(d, match):
    with pytest.raises(SpecError, match=match):
        spec_from_dict(d)


def test_shipped_specs_validate():
    names = {p.stem for p in MODELS.glob("*.toml")}
    assert {"old_faithful_finite", "old_faithful_dp", "simulated_known_truth"} <= names
    finite = load_spec(MODELS / "old_faithful_finite.toml")
    assert finite.k == [1, 2, 3, 4, 5] and finite.kind == "finite" and finite.mcmc
    assert load_spec(MODELS / "old_faithful_dp.toml").kind == "dp"
    sim = load_spec(MODELS / "simulated_known_truth.toml")
    assert sim.source == "simulate" and len(sim.simulate["weights"]) == 3


def test_load_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nk = 2")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[sampler]\ndraws = -5\n")
    with pytest.raises(SpecError, match=r"wrong\.toml: sampler\.draws"):
        load_spec(wrong)
    # relative CSV paths resolve against the spec's folder; name defaults to the stem
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n5,7\n")
    good = tmp_path / "mine.toml"
    good.write_text('[data]\nsource = "csv"\npath = "d.csv"\n')
    spec = load_spec(good)
    assert spec.name == "mine" and Path(spec.path) == tmp_path / "d.csv"
    assert ex.load_data(spec).X.shape == (3, 2)


def _csv_spec(tmp_path, text, **data):
    p = tmp_path / "data.csv"
    p.write_text(text)
    return spec_from_dict({"data": {"source": "csv", "path": str(p), **data}})


def test_load_data_csv_checks(tmp_path):
    text = "a,b,c\n1,2,x\n3,,y\n5,6,z\n7,8,w\n,1,v\n"
    with pytest.raises(SpecError, match=r"non-numeric column\(s\) \['c'\]"):
        ex.load_data(_csv_spec(tmp_path, text))
    with pytest.raises(SpecError, match=r"2 row\(s\) have missing.*CSV lines 3, 6.*--dropna"):
        ex.load_data(_csv_spec(tmp_path, text, columns=["a", "b"]))
    d = ex.load_data(_csv_spec(tmp_path, text, columns=["b", "a"], dropna=True))
    np.testing.assert_array_equal(d.X, [[2, 1], [6, 5], [8, 7]])
    assert d.feature_names == ["b", "a"] and d.info["n_dropped"] == 2
    with pytest.raises(SpecError, match=r"column\(s\) \['z'\] not in the data"):
        ex.load_data(_csv_spec(tmp_path, text, columns=["z"]))
    s = ex.load_data(_csv_spec(tmp_path, "a,b\n1,10\n2,20\n3,40\n", standardize=True))
    np.testing.assert_allclose(s.X.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(s.X.std(0, ddof=1), 1)
    with pytest.raises(SpecError, match=r"constant column\(s\) \['b'\]"):
        ex.load_data(_csv_spec(tmp_path, "a,b\n1,1\n2,1\n", standardize=True))
    with pytest.raises(SpecError, match="empty"):
        ex.load_data(_csv_spec(tmp_path, ""))
    with pytest.raises(SpecError, match="no data rows"):
        ex.load_data(_csv_spec(tmp_path, "a,b\n"))


def test_adjusted_rand_index_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 4, size=60)
        b = np.where(rng.random(60) < 0.6, a, rng.integers(0, 3, size=60))
        assert ex.adjusted_rand_index(a, b) == pytest.approx(
            sk.adjusted_rand_score(a, b), abs=1e-12
        )
    assert ex.adjusted_rand_index([0, 0, 1, 1], [5, 5, 2, 2]) == 1.0


def test_recovery_zero_error_for_permuted_truth():
    truth = {
        "labels": np.array([0, 1, 1]),
        "weights": np.array([0.3, 0.7]),
        "means": np.array([[0.0, 0.0], [5.0, 1.0]]),
        "covariances": np.stack([np.eye(2), 2 * np.eye(2)]),
    }
    perm = [1, 0]
    from types import SimpleNamespace

    em = SimpleNamespace(
        weights=truth["weights"][perm],
        means=truth["means"][perm],
        covariances=truth["covariances"][perm],
    )
    r = ex.recovery(truth, em, labels=np.array([1, 0, 0]))
    assert r["ari"] == 1.0
    err = r["parameter_errors"][0]
    assert err["max |weight error|"] == 0 and err["max |mean error|"] == 0
    em.means = em.means + 0.5
    assert ex.recovery(truth, em)["parameter_errors"][0]["max |mean error|"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------- pipeline
@pytest.fixture
def fake_sampler(monkeypatch):
    """Replace the PyMC builder/sampler by draws scattered around the EM fit: the
    pipeline's own logic (relabel, LOO/WAIC, choice, membership, report) stays real."""

    def build(X, K, **kw):
        return {"X": X, "K": K}

    def sample(model, *, init, spec, seed, quiet, notes=None, what=""):
        rng = np.random.default_rng(seed)
        C, S = 2, 60
        K = model["K"]
        X = np.asarray(model["X"], dtype=float)
        n = X.shape[0]
        # the components in a canonical order (by mean), so that the draws depend on the
        # EM fit and not on how its initialisation happened to number the components
        o = np.lexsort(np.asarray(init.means).T[::-1])
        weights, means, covs = (
            np.asarray(a)[o] for a in (init.weights, init.means, init.covariances)
        )
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

    monkeypatch.setattr(bm, "build_gmm", build)
    monkeypatch.setattr(ex, "_sample", sample)


def test_pipeline_with_fake_sampler_recovers_simulated_truth(tmp_path, fake_sampler):
    spec = load_spec(MODELS / "simulated_known_truth.toml")
    spec.k = [1, 2, 3, 4]
    spec.mcmc_k = [2, 3, 4]
    spec.em_n_init = 2
    res = ex.run_experiment(spec, out=tmp_path / "rep", quiet=True)
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


def test_choice_rule_prefers_fewer_parameters_within_one_se():
    spec = spec_from_dict({"model": {"k": [2, 3]}})
    data = ex.Data(np.zeros((10, 2)), ["a", "b"], {})
    res = ex.ExperimentResult(spec=spec, data=data)
    rng = np.random.default_rng(0)
    base = rng.normal(-5, 1, size=10)
    from types import SimpleNamespace

    loo2 = SimpleNamespace(elpd=base.sum(), se=1.0, elpd_i=base)
    loo3 = SimpleNamespace(
        elpd=base.sum() + 0.2, se=1.0, elpd_i=base + 0.02 + rng.normal(0, 0.3, 10)
    )
    res.records = {
        ("full", 2): ex.FitRecord("full", 2, loo=loo2),
        ("full", 3): ex.FitRecord("full", 3, loo=loo3),
    }
    res.table = pd.DataFrame(
        {
            "covariance": ["full", "full"],
            "K": [2, 3],
            "bic": [1.0, 2.0],
            "elpd_loo": [loo2.elpd, loo3.elpd],
            "error": [None, None],
        }
    )
    key, reason = ex._choose(res)
    assert key == ("full", 2) and "within one SE" in reason
    # a clear improvement wins
    loo3.elpd_i = base + 3.0
    res.table.loc[1, "elpd_loo"] = loo3.elpd = float(loo3.elpd_i.sum())
    assert ex._choose(res)[0] == ("full", 3)


def test_truth_is_expressed_in_the_analysed_data_units():
    """Simulated truth follows column selection and standardisation, so recovery and
    the report's true ellipses compare like with like."""
    spec = load_spec(MODELS / "simulated_known_truth.toml")
    plain = ex.load_data(spec)
    spec.standardize = True
    spec.columns = ["x1"]
    data = ex.load_data(spec)
    raw = plain.X[:, 1]
    center, scale = raw.mean(), raw.std(ddof=1)
    np.testing.assert_allclose(data.X[:, 0], (raw - center) / scale)
    t0, t = plain.truth, data.truth
    np.testing.assert_allclose(t["means"], (t0["means"][:, [1]] - center) / scale)
    np.testing.assert_allclose(t["covariances"], t0["covariances"][:, [1]][:, :, [1]] / scale**2)
    np.testing.assert_array_equal(t["weights"], t0["weights"])
    np.testing.assert_array_equal(t["labels"], t0["labels"])
