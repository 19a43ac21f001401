"""Experiment specs (bayesmix.workflow._spec): parsing, validation errors naming the key, data
loading. The pipeline's tests are in test_pipeline.py."""

from pathlib import Path

import numpy as np
import pytest

from bayesmix.workflow import _spec as bspec
from bayesmix.workflow._spec import SpecError, load_spec, parse_k, spec_from_dict

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
        ({"sampler": {"gibbs_draws": 0}}, "sampler.gibbs_draws must be an integer >= 1"),
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
    assert bspec.load_data(spec).X.shape == (3, 2)


def _csv_spec(tmp_path, text, **data):
    p = tmp_path / "data.csv"
    p.write_text(text)
    return spec_from_dict({"data": {"source": "csv", "path": str(p), **data}})


def test_load_data_csv_checks(tmp_path):
    text = "a,b,c\n1,2,x\n3,,y\n5,6,z\n7,8,w\n,1,v\n"
    with pytest.raises(SpecError, match=r"non-numeric column\(s\) \['c'\]"):
        bspec.load_data(_csv_spec(tmp_path, text))
    # gaps are kept as missing values (no --dropna), counted per column
    g = bspec.load_data(_csv_spec(tmp_path, text, columns=["a", "b"]))
    assert g.X.shape == (5, 2) and np.isnan(g.X).sum() == 2
    assert g.info["missing_per_column"] == {"a": 1, "b": 1} and g.info["n_dropped"] == 0
    e = bspec.load_data(_csv_spec(tmp_path, "a,b\n1,2\n,\n3,5\n4,4\n"))
    assert e.X.shape == (3, 2) and e.info["n_excluded_empty"] == 1
    with pytest.raises(SpecError, match=r"1 row\(s\) have infinite.*CSV lines 3.*--dropna"):
        bspec.load_data(_csv_spec(tmp_path, "a,b\n1,2\ninf,3\n3,5\n4,4\n"))
    d = bspec.load_data(_csv_spec(tmp_path, text, columns=["b", "a"], dropna=True))
    np.testing.assert_array_equal(d.X, [[2, 1], [6, 5], [8, 7]])
    assert d.feature_names == ["b", "a"] and d.info["n_dropped"] == 2
    with pytest.raises(SpecError, match=r"column\(s\) \['z'\] not in the data"):
        bspec.load_data(_csv_spec(tmp_path, text, columns=["z"]))
    s = bspec.load_data(_csv_spec(tmp_path, "a,b\n1,10\n2,20\n3,40\n", standardize=True))
    np.testing.assert_allclose(s.X.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(s.X.std(0, ddof=1), 1)
    with pytest.raises(SpecError, match=r"constant column\(s\) \['b'\]"):
        bspec.load_data(_csv_spec(tmp_path, "a,b\n1,1\n2,1\n", standardize=True))
    with pytest.raises(SpecError, match="empty"):
        bspec.load_data(_csv_spec(tmp_path, ""))
    with pytest.raises(SpecError, match="no data rows"):
        bspec.load_data(_csv_spec(tmp_path, "a,b\n"))


def test_truth_is_expressed_in_the_analysed_data_units():
    """Simulated truth follows column selection and standardisation, so recovery and
    the report's true ellipses compare like with like."""
    spec = load_spec(MODELS / "simulated_known_truth.toml")
    plain = bspec.load_data(spec)
    spec.standardize = True
    spec.columns = ["x1"]
    data = bspec.load_data(spec)
    raw = plain.X[:, 1]
    center, scale = raw.mean(), raw.std(ddof=1)
    np.testing.assert_allclose(data.X[:, 0], (raw - center) / scale)
    t0, t = plain.truth, data.truth
    np.testing.assert_allclose(t["means"], (t0["means"][:, [1]] - center) / scale)
    np.testing.assert_allclose(t["covariances"], t0["covariances"][:, [1]][:, :, [1]] / scale**2)
    np.testing.assert_array_equal(t["weights"], t0["weights"])
    np.testing.assert_array_equal(t["labels"], t0["labels"])


def test_gibbs_draws_default_scales_with_the_data_and_explicit_values_are_kept():
    """sampler.gibbs_draws: unset, GIBBS_DRAWS draws per chain, fewer when chains x draws
    x N would pass GIBBS_LOGLIK_ENTRIES (the log-likelihood array), never fewer than
    NUTS's draws; set, exactly the value given."""
    spec = spec_from_dict({})
    assert spec.gibbs_draws is None
    assert bspec.gibbs_draws(spec, 272) == bspec.GIBBS_DRAWS == 1000
    assert bspec.gibbs_draws(spec, 272, mfm=True) == bspec.GIBBS_MFM_DRAWS == 1500
    # a run that fails its diagnostics is repeated once with twice the draws
    assert bspec.gibbs_retry_draws(spec, 272) == 2000
    assert bspec.gibbs_retry_draws(spec, 272, mfm=True) == 3000
    n_big = 20_000
    cap = bspec.GIBBS_LOGLIK_ENTRIES // (spec.chains * n_big)
    assert spec.draws < cap < bspec.GIBBS_DRAWS
    assert bspec.gibbs_draws(spec, n_big) == cap
    assert bspec.gibbs_draws(spec, 10**8) == spec.draws
    # ... within the cap, and not at all when the cap leaves no room
    assert bspec.gibbs_retry_draws(spec, n_big) is None
    n_mid = bspec.GIBBS_LOGLIK_ENTRIES // (spec.chains * 1500)
    assert bspec.gibbs_draws(spec, n_mid) == 1000
    assert bspec.gibbs_retry_draws(spec, n_mid) == 1500
    given = spec_from_dict({"sampler": {"gibbs_draws": 7000}})
    assert bspec.gibbs_draws(given, 10**8) == 7000
    assert bspec.gibbs_retry_draws(given, 272) is None  # the user's choice is kept


def test_gibbs_tune_default_and_explicit_values_are_kept():
    """sampler.gibbs_tune: unset, GIBBS_TUNE burn-in sweeps whatever NUTS's tune is;
    set (0 included), exactly the value given; negative values are refused."""
    spec = spec_from_dict({"sampler": {"tune": 800}})
    assert spec.gibbs_tune is None and spec.tune == 800
    assert bspec.gibbs_tune(spec) == bspec.GIBBS_TUNE == 200
    assert bspec.gibbs_tune(spec_from_dict({"sampler": {"gibbs_tune": 0}})) == 0
    assert bspec.gibbs_tune(spec_from_dict({"sampler": {"gibbs_tune": 900}})) == 900
    with pytest.raises(SpecError, match=r"sampler\.gibbs_tune must be an integer >= 0"):
        spec_from_dict({"sampler": {"gibbs_tune": -1}})


def test_weight_concentration_below_one_is_refused_only_where_a_map_is_fitted():
    # no MAP exists for K >= 2 below 1; ML EM (MCMC keeps the prior) and K = 1 are fine
    ml = spec_from_dict({"prior": {"weight_concentration": 0.5}, "model": {"estimate": "ml"}})
    one = spec_from_dict({"prior": {"weight_concentration": 0.5}, "model": {"k": [1]}})
    assert ml.prior["weight_concentration"] == 0.5 and one.k == [1]
    with pytest.raises(SpecError, match=r"prior\.weight_concentration = 0\.99"):
        spec_from_dict({"prior": {"weight_concentration": 0.99}, "model": {"k": "1-2"}})
    assert spec_from_dict({"prior": {"weight_concentration": 1.0}}).estimate == "map"


def test_no_mcmc_override_keeps_the_specs_own_mcmc_checked(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text("[sampler]\nmcmc = true\ndraws = 10\nchains = 1\n")
    assert load_spec(spec, mcmc=False).mcmc is False  # draws not checked: nothing sampled
    spec.write_text("[sampler]\nmcmc = 1\n")
    with pytest.raises(SpecError, match=r"sampler\.mcmc must be true or false; got 1"):
        load_spec(spec, mcmc=False)
