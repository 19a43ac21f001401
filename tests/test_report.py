"""The report folder read back: its sections, its figures, and the numbers of its
tables against the fit objects they come from.

Two reports are generated once per module: EM only on Old Faithful (seconds), and the
finite-mixture pipeline on the shipped simulated spec with the fake sampler of
test_pipeline.py (draws scattered around each EM fit: every MCMC section is rendered
without PyMC compilation). A real, tiny MCMC report is in the slow test at the end.
"""

import re
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import fake_build, fake_sample

import bayesmix as bm
from bayesmix.mcmc._trace import get_params
from bayesmix.posterior._selection import CHOICE_RULE, choose_model
from bayesmix.workflow import _pipeline as pipeline
from bayesmix.workflow import _spec as bspec
from bayesmix.workflow._spec import load_spec, spec_from_dict

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def em_report(tmp_path_factory):
    spec = spec_from_dict(
        {
            "seed": 3,
            "model": {"k": [1, 2, 3], "covariance": ["full", "diag"], "em_n_init": 2},
            "sampler": {"mcmc": False},
        }
    )
    out = tmp_path_factory.mktemp("report") / "em"
    return pipeline.run_experiment(spec, out=out, quiet=True), out


@pytest.fixture(scope="module")
def mcmc_report(tmp_path_factory):
    spec = load_spec(MODELS / "simulated_known_truth.toml")
    spec.k, spec.mcmc_k, spec.em_n_init = [1, 2, 3], [2, 3], 2
    # the MFM stage samples for real (Gibbs, no compilation): short chains keep it quick
    spec.draws, spec.tune, spec.chains = 100, 50, 2
    out = tmp_path_factory.mktemp("report") / "mcmc"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "build_gmm", fake_build)
        mp.setattr(pipeline, "_sample", fake_sample)
        res = pipeline.run_experiment(spec, out=out, quiet=True)
    return res, out


# ---------------------------------------------------------------------------- reading back
def sections(text):
    """Level-2 headings of a Markdown report, in order."""
    return re.findall(r"^## (.+)$", text, flags=re.M)


def tables(text):
    """Every Markdown table as a list of dicts (column -> cell text)."""
    out = []
    for block in re.findall(r"((?:^\|.*\|\n)+)", text, flags=re.M):
        lines = block.strip().splitlines()
        cols, *rows = (_cells(ln) for ln in lines[:1] + lines[2:])
        out.append([dict(zip(cols, r, strict=True)) for r in rows])
    return out


def _cells(line):
    """The cells of a table line; ``\\|`` is a pipe inside a cell."""
    inner = line.strip()[1:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def table_with(text, column):
    (found,) = [t for t in tables(text) if t and column in t[0]]
    return found


def close(cell, value):
    """A table cell equals ``value`` up to the report's formatting (4 significant digits
    below 1e4, one decimal above)."""
    tol = 0.051 if abs(value) >= 1e4 else 5.01e-4 * abs(value) + 1e-12
    return abs(float(cell) - value) <= tol


# ---------------------------------------------------------------------------- EM only
def test_em_report_sections_in_order(em_report):
    res, out = em_report
    text = (out / "report.md").read_text()
    assert text.startswith(f"# bayesmix report: {res.spec.name}\n")
    got = [s for s in sections(text) if s != "Warnings and notes"]
    cov, K = res.chosen
    assert got == [
        "Summary",
        "Data and settings",
        "Choosing K",
        f"The chosen fit: {cov} covariance, K={K}",
        "Membership uncertainty",
        "Saved fits",
        "Timings",
    ]
    assert f"**Chosen model**: {res.choice_reason}." in text and CHOICE_RULE in text
    # the HTML holds the same document
    html = (out / "report.html").read_text()
    assert re.findall(r"<h2>(.+?)</h2>", html) == sections(text)


def test_em_report_figures_exist(em_report):
    _, out = em_report
    text = (out / "report.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(figures) == [f"figures/{f}.png" for f in ("fit", "selection", "uncertainty")]
    for rel in figures:
        assert (out / rel).stat().st_size > 1000, rel
    html = (out / "report.html").read_text()
    assert sorted(re.findall(r'<img src="([^"]+)"', html)) == sorted(figures)


def test_em_report_tables_equal_the_fits(em_report):
    res, out = em_report
    text = (out / "report.md").read_text()
    X = res.data.X
    n = X.shape[0]
    grid = table_with(text, "bic")
    assert [(r["covariance"], int(r["K"])) for r in grid] == list(res.records)
    for row in grid:
        em = res.records[(row["covariance"], int(row["K"]))].em
        p = int(row["n_params"])
        assert p == em.n_parameters
        assert close(row["log_likelihood"], em.log_likelihood)
        assert close(row["bic"], em.bic(X))
        # and BIC is -2 log L + p log n of the fit's own log-likelihood
        assert close(row["bic"], -2 * em.log_likelihood + p * np.log(n))
        assert close(row["icl"], em.icl(X))
    km = table_with(text, "inertia")
    assert [int(r["K"]) for r in km] == res.spec.k
    for row, value in zip(km, res.kmeans_table["inertia"], strict=True):
        assert close(row["inertia"], value)
    # the chosen fit: EM weights and means of each component
    em = res.chosen_record.em
    comp = table_with(text, "EM weight")
    assert len(comp) == res.chosen[1]
    for k, row in enumerate(comp):
        assert close(row["EM weight"], em.weights[k])
        for j, name in enumerate(res.data.feature_names):
            assert close(row[f"EM mean {name}"], em.means[k, j])
    # without MCMC the choice is the lowest BIC of the table
    assert res.chosen == choose_model(res.table, {}, X.shape[1])[0]
    best = min(res.records, key=lambda key: res.records[key].em.bic(X))
    assert res.chosen == best


def test_em_report_saved_fits_are_listed_and_load(em_report):
    res, out = em_report
    text = (out / "report.md").read_text()
    listed = re.findall(r"`(fits/[^`]+)`", text)
    assert sorted(listed) == sorted(f"fits/{c}_K{k}" for c, k in res.records)
    fit = bm.load_fit(out / listed[0])
    cov, K = listed[0].removeprefix("fits/").split("_K")
    np.testing.assert_array_equal(fit.em_result.means, res.records[(cov, int(K))].em.means)


# ---------------------------------------------------------------------------- with MCMC
def test_mcmc_report_sections_and_figures(mcmc_report):
    res, out = mcmc_report
    text = (out / "report.md").read_text()
    got = [s for s in sections(text) if s != "Warnings and notes"]
    cov, K = res.chosen
    assert got == [
        "Summary",
        "Data and settings",
        "Choosing K",
        f"The chosen fit: {cov} covariance, K={K}",
        "Membership uncertainty",
        "MCMC diagnostics (after relabelling)",
        "Posterior predictive check",
        "EM against MCMC",
        "Number of clusters",
        "Recovery of the simulated truth",
        "Saved fits",
        "Timings",
    ]
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(figures) == [
        f"figures/{f}.png"
        for f in ("coclustering", "fit", "n_clusters", "ppc", "rank", "selection", "uncertainty")
    ]
    for rel in figures:
        assert (out / rel).stat().st_size > 1000, rel


def test_mcmc_report_number_of_clusters(mcmc_report):
    # the MFM's table is bm.n_clusters of its posterior, and P(K = k) is the p_mfm column
    res, out = mcmc_report
    text = (out / "report.md").read_text()
    nc = bm.n_clusters(res.mfm.idata).set_index(["variable", "k"])
    rows = table_with(text, "quantity")
    assert rows and {r["quantity"] for r in rows} == {"n_occupied", "n_components"}
    for row in rows:
        ref = nc.loc[(row["quantity"], int(row["k"]))]
        assert close(row["probability"], ref["probability"]) and close(row["mcse"], ref["mcse"])
    for row in table_with(text, "elpd_loo"):
        assert close(row["p_mfm"], nc["probability"].get(("n_components", int(row["K"])), 0.0))
    assert "Mixture of finite mixtures: posterior mode K" in text


def test_mcmc_report_tables_equal_the_fits(mcmc_report):
    res, out = mcmc_report
    text = (out / "report.md").read_text()
    grid = table_with(text, "elpd_loo")
    for row in grid:
        rec = res.records[(row["covariance"], int(row["K"]))]
        assert close(row["bic"], rec.em.bic(res.data.X))
        if rec.loo is None:  # K=1 is not in mcmc_k: empty cells
            assert int(row["K"]) == 1 and row["elpd_loo"] == "" and row["elpd_waic"] == ""
            continue
        assert close(row["elpd_loo"], rec.loo.elpd)
        assert close(row["elpd_loo_se"], rec.loo.se)
        assert close(row["p_loo"], rec.loo.p)
        assert close(row["elpd_waic"], rec.waic.elpd)
        assert close(row["max_rhat"], rec.diagnostics["max_rhat"])
    # the choice is the rule's, on the same table and LOO results
    loos = {key: r.loo for key, r in res.records.items() if r.loo is not None}
    assert res.chosen == choose_model(res.table, loos, res.data.X.shape[1])[0] == ("full", 3)
    # posterior weights of the chosen fit: mean ± sd over all draws
    w = get_params(res.chosen_record.idata)[0]
    comp = table_with(text, "posterior weight")
    for k, row in enumerate(comp):
        mean, sd = (float(v) for v in row["posterior weight"].split(" ± "))
        assert mean == pytest.approx(w[..., k].mean(), abs=5e-4)
        assert sd == pytest.approx(w[..., k].std(), abs=5e-4)
    # recovery: the errors of the table are the recovery dict's
    errors = table_with(text, "max |mean error|")
    by_source = {e["estimate"]: e for e in res.recovery["parameter_errors"]}
    for row in errors:
        assert close(row["max |mean error|"], by_source[row["estimate"]]["max |mean error|"])
    assert f"ARI of the chosen model's most probable labels: {res.recovery['ari']:.3f}" in text


@pytest.mark.slow
def test_real_mcmc_report_tiny(tmp_path):
    """Real PyMC sampling (K=2, 2 x 100 draws; compilation dominates, ~20-40 s)."""
    spec = spec_from_dict(
        {
            "model": {"k": [1, 2], "em_n_init": 2},
            "sampler": {"mcmc_k": [2], "draws": 100, "tune": 100, "chains": 2},
        }
    )
    res = pipeline.run_experiment(spec, out=tmp_path, quiet=True)
    text = (tmp_path / "report.md").read_text()
    assert "MCMC diagnostics (after relabelling)" in sections(text)
    # the settings line says how each model was sampled, with the lengths it ran
    S = res.records[("full", 2)].idata["posterior"].sizes["draw"]
    assert S == bspec.gibbs_draws(spec, 272) == bspec.GIBBS_DRAWS
    S_mfm = res.mfm.idata["posterior"].sizes["draw"]
    assert S_mfm == bspec.gibbs_draws(spec, 272, mfm=True) == bspec.GIBBS_MFM_DRAWS
    # Gibbs (the default sampler of these conjugate models): gibbs_draws draws after
    # gibbs_tune burn-in sweeps, not NUTS's draws/tune
    G = bspec.gibbs_tune(spec)
    assert (
        G == bspec.GIBBS_TUNE == 200 and res.records[("full", 2)].idata.attrs["sampler"] == "gibbs"
    )
    assert (
        f"finite mixtures for K in [2] by Gibbs, 2 chains x {S} draws after {G} burn-in" in text
        and f"a mixture of finite mixtures by Gibbs, 2 chains x {S_mfm} draws after {G}" in text
    )
    for row in table_with(text, "elpd_loo"):
        rec = res.records[(row["covariance"], int(row["K"]))]
        if rec.loo is not None:
            assert close(row["elpd_loo"], rec.loo.elpd)
    for rel in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (tmp_path / rel).exists(), rel
