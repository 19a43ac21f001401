"""Model comparison through arviz_stats.compare: select_k's and the report's compare
table against arviz_stats.compare called directly on the same LOO results."""

from __future__ import annotations

import warnings

import arviz_stats as azs
import numpy as np
import pytest
import xarray as xr
from test_selection import THREE, _fake_mcmc

import bayesmix as bm
from bayesmix.posterior import _selection as selection
from bayesmix.posterior._modelcompare import compare_models, model_label

#: compare's numeric columns, checked to 1e-10 against a direct call
NUMERIC = ("rank", "elpd", "se", "p", "elpd_diff", "dse", "weight")


@pytest.fixture(scope="module")
def select_k_table():
    X, _ = bm.simulate(300, **THREE, random_seed=0)
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # independent fake draws: R-hat by chance
        mp.setattr(selection, "_run_mcmc", _fake_mcmc)
        df = bm.select_k(
            X, [1, 2, 3, 4], covariance="spherical", n_init=2, chains=2, draws=100,
            random_seed=1, progress=False,
        )  # fmt: skip
    return df


def test_select_k_compare_equals_arviz_compare(select_k_table):
    df = select_k_table
    fits = df.attrs["fits"]
    direct = azs.compare(
        {f"K={k}": fits[k].loo for k in df["K"]}, method="stacking", round_to="none"
    )
    cmp = df.attrs["compare"]
    assert cmp.index.tolist() == direct.index.tolist()  # best first
    for col in NUMERIC:
        np.testing.assert_allclose(cmp[col].astype(float), direct[col].astype(float), atol=1e-10)
    # the select_k columns are the same numbers, row by row (by K)
    for _, row in df.iterrows():
        ref = direct.loc[f"K={int(row['K'])}"]
        for col in ("rank", "elpd_diff", "dse", "weight"):
            assert row[col] == pytest.approx(float(ref[col]), abs=1e-10), col
        assert row["elpd_loo"] == pytest.approx(float(ref["elpd"]), abs=1e-10)
        assert row["p_loo"] == pytest.approx(float(ref["p"]), abs=1e-10)
    # stacking weights are a distribution over the K
    assert df["weight"].sum() == pytest.approx(1.0, abs=1e-6)
    assert (df["weight"] >= -1e-12).all()
    # BIC/ICL beside compare's table
    for _, row in cmp.iterrows():
        assert row["bic"] == df.loc[df["K"] == row["key"], "bic"].item()
    # three separated clusters: K=1, 2 are far worse (rank 2, 3) and get little weight
    # (stacking may keep a broad model for a few tail points: K=1 gets 0.004 here)
    assert set(df.loc[df["K"] <= 2, "rank"]) == {2, 3}
    assert df.loc[df["K"] <= 2, "weight"].max() < 0.02


def test_choice_rule_reads_off_the_compare_table(select_k_table):
    # the documented rule, applied to compare's table: smallest K with
    # elpd_diff >= -max(dse * sqrt(N / (N - 1)), 4)
    df, N = select_k_table, 300
    cmp = df.attrs["compare"]
    tol = np.maximum(cmp["dse"] * np.sqrt(N / (N - 1)), 4.0)
    within = cmp[cmp["elpd_diff"] >= -tol - 1e-9]
    assert df.attrs["recommended"]["loo"] == int(within["key"].min())
    np.testing.assert_allclose(
        df.set_index("K")["elpd_loo_diff_se"].loc[cmp["key"]],
        cmp["dse"] * np.sqrt(N / (N - 1)),
        rtol=1e-9,
    )
    assert "elpd_diff >=" in selection.select_k.__doc__
    assert "elpd_diff >=" in bm.posterior._modelcompare.__doc__


def _res(values):
    e = xr.DataArray(np.asarray(values, float), dims="obs")
    n = e.size
    return azs.ELPDDataLOO(
        elpd=float(np.nansum(e)), se=1.0, p=1.0, n_samples=100, n_data_points=n,
        scale="log", warning=False, good_k=0.7, elpd_i=e,
    )  # fmt: skip


def test_subsampled_loo_weights_from_the_common_subsample():
    # subsampled LOO: arviz's stacking would see NaN outside the subsample (its weights
    # stay at the 1/3 starting point); compare_models restacks on the common subsample
    rng = np.random.default_rng(0)
    X, _ = bm.simulate(200, [0.5, 0.5], [[0, 0], [5, 0]], [np.eye(2)] * 2, random_seed=0)
    loos = {}
    for K in (1, 2, 3):
        em = bm.fit_em(X, K, random_seed=0)
        w = np.broadcast_to(em.weights, (2, 100, K))
        mu = em.means + rng.normal(0, 0.05, (2, 100, K, 2))
        cov = np.broadcast_to(em.covariances, (2, 100, K, 2, 2))
        tree = bm.from_arrays(w, mu, cov, X, log_likelihood=False)
        loos[K] = bm.loo(tree, method="subsample", observations=60)
    cmp = compare_models(loos)
    assert "subsampling_dse" in cmp.columns and "60 observations" in cmp.attrs["weights"]
    assert cmp["weight"].sum() == pytest.approx(1.0, abs=1e-6)
    assert cmp.loc["K=1", "weight"] < 1e-3  # one Gaussian for two clusters: no weight
    # elpd, elpd_diff and dse are compare's own (difference estimator), unchanged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = azs.compare({model_label(k): r for k, r in loos.items()}, round_to="none")
    for col in ("elpd", "elpd_diff", "dse"):
        np.testing.assert_allclose(cmp[col], direct.loc[cmp.index, col], atol=1e-10)
    # the restacked weights are compare's on the pointwise values of the subsample
    common = np.isfinite(np.asarray(loos[1].elpd_i)).ravel()
    sub = azs.compare(
        {model_label(k): _res(np.asarray(r.elpd_i).ravel()[common]) for k, r in loos.items()},
        round_to="none",
    )
    np.testing.assert_allclose(cmp["weight"], sub.loc[cmp.index, "weight"], atol=1e-10)


def test_compare_models_errors():
    with pytest.raises(ValueError, match="at least one"):
        compare_models({})
    bad = _res([-1.0, -2.0])
    bad.elpd_i = None
    with pytest.raises(ValueError, match="K=2 has no pointwise"):
        compare_models({2: bad})
    assert model_label(("full", 3)) == "full K=3"


# ---------------------------------------------------------------------------- the report
@pytest.fixture(scope="module")
def fake_report(tmp_path_factory):
    """The pipeline on the shipped simulated spec with test_pipeline's fake sampler."""
    from test_pipeline import fake_build, fake_sample
    from test_report import MODELS

    from bayesmix.workflow import _pipeline as pipeline
    from bayesmix.workflow._spec import load_spec

    spec = load_spec(MODELS / "simulated_known_truth.toml")
    spec.k, spec.mcmc_k, spec.em_n_init, spec.mfm = [1, 2, 3], [1, 2, 3], 2, False
    out = tmp_path_factory.mktemp("cmp") / "rep"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "build_gmm", fake_build)
        mp.setattr(pipeline, "_sample", fake_sample)
        res = pipeline.run_experiment(spec, out=out, quiet=True)
    return res, out


def test_report_compare_table_equals_arviz_compare(fake_report):
    from test_report import close, table_with

    res, out = fake_report
    loos = {key: r.loo for key, r in res.records.items() if r.loo is not None}
    assert len(loos) == 3
    direct = azs.compare(
        {model_label(k): v for k, v in loos.items()}, method="stacking", round_to="none"
    )
    cmp = res.model_comparison
    assert cmp.index.tolist() == direct.index.tolist()
    for col in NUMERIC:
        np.testing.assert_allclose(cmp[col].astype(float), direct[col].astype(float), atol=1e-10)
    assert cmp["weight"].sum() == pytest.approx(1.0, abs=1e-6)
    text = (out / "report.md").read_text()
    rows = table_with(text, "dse")
    assert [r["model"] for r in rows] == direct.index.tolist()
    for row in rows:
        ref = direct.loc[row["model"]]
        for col in ("elpd", "se", "p", "elpd_diff", "dse", "weight"):
            assert close(row[col], float(ref[col])) or abs(float(ref[col])) < 1e-12, col
        assert int(row["rank"]) == int(ref["rank"])
        rec = res.records[loos_key(row["model"])]
        assert close(row["bic"], rec.em.bic(res.data.X))
    # the chosen model is the rule's, read off the compare table
    N = res.data.X.shape[0]
    tol = np.maximum(cmp["dse"] * np.sqrt(N / (N - 1)), 4.0)
    within = cmp[cmp["elpd_diff"] >= -tol - 1e-9]
    assert res.chosen == min(within["key"], key=lambda k: k[1])
    assert "`arviz_stats.compare`" in text and "stacking" in text


def loos_key(label):
    cov, k = label.split(" K=")
    return cov, int(k)
