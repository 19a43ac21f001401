"""The tutorial notebooks run end to end on tiny settings, and say what they claim.

Each notebook keeps its settings as plain assignments in its first code cell. The test
replaces them with small values, executes the notebook with nbclient in the
``python3`` kernel (ipykernel's own spec, i.e. the interpreter running the tests), then
runs one extra cell of checks in the same kernel against the notebook's variables, so
a notebook that runs but computes the wrong thing fails too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

#: notebook -> settings replaced in its first code cell (name -> Python source)
TINY = {
    "01_quickstart_em_vs_mcmc.ipynb": {
        "DRAWS": "60",
        "TUNE": "60",
        "CHAINS": "1",
        "N_INIT": "2",
        "PROGRESS": "False",
    },
    "02_kmeans_limit_of_em.ipynb": {"N_OBS": "150", "N_EPS": "9", "N_BETA": "8"},
    "03_covariance_types_and_dp.ipynb": {
        "N_OBS": "150",
        "K_GRID": "range(2, 4)",
        "TRUNCATION": "6",
        "DRAWS": "40",
        "TUNE": "40",
        "CHAINS": "1",
        "PROGRESS": "False",
    },
    "04_choosing_k.ipynb": {
        "K_GRID": "range(1, 3)",
        "DRAWS": "60",
        "TUNE": "60",
        "CHAINS": "1",
        "N_INIT": "2",
        "PROGRESS": "False",
    },
    "06_from_sklearn.ipynb": {
        "DRAWS": "40",
        "TUNE": "40",
        "CHAINS": "1",
        "CV": "2",
        "PROGRESS": "False",
    },
    "05_how_many_clusters.ipynb": {
        "K_GRID": "range(2, 4)",
        "DRAWS": "60",
        "TUNE": "40",
        "CHAINS": "1",
        "MCMC_DRAWS": "40",
        "MCMC_TUNE": "40",
        "N_INIT": "2",
        "N_SIM": "150",
        "PROGRESS": "False",
    },
}

#: checks run in the kernel after the notebook, on its own variables. Tolerances: the
#: EM numbers are deterministic fits compared with published references (mclust), to
#: the printed precision; MCMC-based checks only use facts that hold for any draws
#: near the EM mode (label-invariant, or well separated clusters).
CHECKS = {
    "01_quickstart_em_vs_mcmc.ipynb": """
assert abs(em_ml.log_likelihood - (-1130.264)) < 1e-3, em_ml.log_likelihood
assert np.allclose(sorted(em_ml.weights), [0.356, 0.644], atol=1e-3), em_ml.weights
assert em.log_posterior is not None
assert rel["posterior"]["means"].sizes["draw"] == DRAWS
assert rel["posterior"]["means"].sizes["chain"] == CHAINS
# Old Faithful's two clusters are far apart: the posterior partition is EM's
assert cmp.ari > 0.95, cmp.ari
assert memb["probability"].shape == (272, 2)
assert np.isfinite(loo.elpd) and np.isfinite(waic.elpd)
""",
    "02_kmeans_limit_of_em.ipynb": """
assert np.array_equal(lim.kmeans.labels, km.labels)
dev = limit_table["max_abs_deviation"].to_numpy()
assert dev[0] > 0.3, dev  # eps above the data variance: assignments really soft
assert dev[-1] < 1e-8, dev  # the zero-variance end: one-hot to rounding
assert lim.center_error[-1] < 1e-8 * np.sqrt(data_var)
assert limit_table["mean_entropy"].iloc[-1] < 1e-6
# deterministic annealing: one centre at the data mean for small beta, split for large
assert dist[0].max() < 1e-3 * np.sqrt(data_var) and dist[-1].min() > 0.5 * np.sqrt(data_var)
assert abs(entropy[0] - np.log(3)) < 1e-6 and entropy[-1] < 0.5
""",
    "03_covariance_types_and_dp.ipynb": """
for c, f in fits.items():
    assert f.covariance == c and f.covariances.shape == (K, 2, 2)
# elongated true clusters: the full model beats the spherical one at the true K
assert fits["full"].bic(X) < fits["spherical"].bic(X)
assert set(bic.columns) == {"spherical", "diag", "full"}
assert list(bic.index) == list(K_GRID)
assert post["weights"].sizes["component"] == TRUNCATION
assert occupied.min() >= 1 and occupied.max() <= TRUNCATION
assert abs(counts.sum() - 1) < 1e-12
assert psm.shape == (N_OBS, N_OBS) and part.labels.shape == (N_OBS,)
""",
    "04_choosing_k.ipynb": """
# mclust reference BIC for full covariances on Old Faithful (DESIGN.md), K = 1, 2
ref = {1: 2607.62, 2: 2322.19}
for k, b in ref.items():
    got = float(table.loc[table["K"] == k, "bic"].iloc[0])
    assert abs(got - b) < 0.01, (k, got, b)
assert recommended["bic"] == 2 and recommended["icl"] == 2
assert set(recommended) == {"bic", "icl", "loo", "waic"}
assert np.all(np.isfinite(table["elpd_loo"])) and np.all(table["elpd_loo_se"] > 0)
assert psm.shape == (272, 272)
""",
    "06_from_sklearn.ipynb": """
# Old Faithful's two clusters are far apart: both EM fits give the same partition, and
# the same optimum up to the stopping tolerance (tol=1e-3 per sample in both)
assert adjusted_rand_score(sk_labels, bm_labels) == 1.0
assert abs(sk_pipe.score(faithful) - bm_pipe.score(faithful)) < 1e-3
assert gm.covariances_.shape == (2, 2, 2) and gm.em_result_.n_components == 2
assert bic_table.shape == (4, 4) and grid.best_params_["gaussianmixture__n_components"] == 2
assert proba.shape == (272, 2) and np.allclose(proba.sum(1), 1.0)
assert np.all(lower <= upper) and np.all(width >= 0)
# the MCMC partition is EM's (clusters far apart; holds for any draws near the mode)
assert adjusted_rand_score(bm_labels, proba.argmax(1)) > 0.95
assert bgm.idata_["posterior"].sizes["draw"] == DRAWS
""",
    "05_how_many_clusters.ipynb": """
assert set(table_of.attrs["recommended"]) == {"bic", "icl", "loo", "waic"}
# EM criteria are deterministic fits: BIC and ICL pick 2 on Old Faithful (mclust), 3 on
# three well-separated simulated clusters (the short chains' K+ are not checked: 60 sweeps
# stay near their EM start)
assert table_of.attrs["recommended"]["bic"] == 2 and table_of.attrs["recommended"]["icl"] == 2
assert table_3.attrs["recommended"]["bic"] == 3 and table_3.attrs["recommended"]["icl"] == 3
assert nc_mfm_3.attrs["summary"]["n_occupied"]["n_draws"] == DRAWS * CHAINS
for nc in (nc_dp_of, nc_mfm_of, nc_mfm_3):
    assert set(nc["variable"]) <= {"n_occupied", "n_components"}
    for _, sub in nc.groupby("variable"):
        assert abs(sub["probability"].sum() - 1) < 1e-12 and (sub["mcse"] >= 0).all()
assert set(nc_mfm_of["variable"]) == {"n_occupied", "n_components"}
assert abs(dp_prior["probability"].sum() - 1) < 1e-8
col = with_mfm_column(table_of, mfm_of)["P(K=k | MFM)"]
assert col.between(0, 1).all() and col.sum() <= 1 + 1e-12
assert list(growth["N"]) == [N_SIM // 2, N_SIM, 2 * N_SIM]
assert len(sensitivity) == 8 and sensitivity["posterior E[K+]"].between(1, 20).all()
assert np.isclose(sensitivity.loc[0, "prior P(K+=2)"], dp_prior.loc[1, "probability"])
""",
}


def _first_code_cell(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            return cell
    raise AssertionError("notebook has no code cell")


def _with_settings(nb, settings):
    cell = _first_code_cell(nb)
    src = cell.source
    for name, value in settings.items():
        pattern = re.compile(rf"^{name}\s*=.*$", re.MULTILINE)
        assert len(pattern.findall(src)) == 1, (
            f"setting {name} must be assigned exactly once in the first code cell"
        )
        src = pattern.sub(f"{name} = {value}", src)
    cell.source = src
    return nb


@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_is_valid(name):
    """Notebooks are valid nbformat 4 for the ``python3`` kernel. They are stored with
    their outputs at full settings (``make notebooks``; tests/test_docs.py checks that
    every code cell has them); the run below discards those outputs first."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"


def _strip_outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(TINY)


def test_settings_substitution_fails_loudly():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("DRAWS = 1000\nTUNE = 5")])
    assert "DRAWS = 3" in _with_settings(nb, {"DRAWS": "3"}).cells[0].source
    with pytest.raises(AssertionError, match="CHAINS"):
        _with_settings(nb, {"CHAINS": "1"})


@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # the kernel runs in tmp_path: import this checkout's bayesmix, not an installed copy
    monkeypatch.setenv("PYTHONPATH", str(NOTEBOOKS.parent))
    nb = _strip_outputs(nbformat.read(NOTEBOOKS / name, as_version=4))
    nb = _with_settings(nb, TINY[name])
    nb.cells.append(nbformat.v4.new_code_cell("import numpy as np\n" + CHECKS[name]))
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    # every figure-producing cell ended in a displayed object; no error outputs
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert all(o.get("output_type") != "error" for o in cell.outputs)


def test_stripping_discards_stored_outputs():
    """The run above starts from no outputs, whatever the stored notebook holds."""
    cell = nbformat.v4.new_code_cell("x = 1", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("stream", text="stale")]
    nb = _strip_outputs(nbformat.v4.new_notebook(cells=[cell]))
    assert nb.cells[0].outputs == [] and nb.cells[0].execution_count is None
