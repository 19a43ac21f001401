"""mclust's 14 covariance models against R mclust 6.0.0 (issue 24).

References (R is not needed here): ``benchmarks/mclust14_reference.csv`` (ML fits of six
data sets x 14 models x K = 1..5 by ``Mclust``, with loglik, df, BIC and ICL; made by
``benchmarks/mclust14_reference.R``) and ``benchmarks/mclust_hclass.csv`` (mclust's
starting partitions, ``hclass(hc(X, "VVV", use = "SVD"), 2:6)``; bayesmix's
``init="hierarchical"`` reproduces them, ``tests/test_em_init.py``).

How the comparison is made. Every fit starts from mclust's own partition (one-hot
responsibilities; K = 1: all points in one component, which mclust fits in closed form),
without regularisation (``reg_covar=0``, as mclust). mclust stops its EM at the first
iteration whose relative change ``|l_t - l_(t-1)| / (1 + |l_t|)`` is at most 1e-5
(``emControl()$tol[1]``); bayesmix records the log-likelihood after every update
(``EMResult.history``), so the test reads off the value at the iteration where mclust's
rule stops. From the same partition with the same updates, this must equal R's value up
to rounding and to the inner loops of the iterative M-steps (stopped, as mclust's, at a
relative change of sqrt(eps) = 1.5e-8; the log-likelihood is stationary at an M-step's
maximum, so such a stop perturbs it to second order). Measured: at most 1.2e-12 relative
over the 386 comparable rows; the tolerance is 1e-8. VVE is the exception by design:
mclust's MM weights the orientation update by the shapes alone, which can decrease the
likelihood, and bayesmix weights by the whole eigenvalues (a true MM step), so its
trajectory differs; there the test asks for a log-likelihood at convergence at least
mclust's minus 1e-6 relative (the issue's criterion), which holds on 23 of the 24 K >= 2
fits (better on all 23, by 3e-5 to 1e-1 relative), and iris K = 5 reaches another,
lower, local maximum.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.core import _mclust_models as mm
from bayesmix.core._gaussian import SingularCovarianceError

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
REF = pd.read_csv(BENCH / "mclust14_reference.csv")
HCLASS = pd.read_csv(BENCH / "mclust_hclass.csv")
#: mclust's outer tolerance, emControl()$tol[1]
MCLUST_TOL = 1e-5
#: see the module docstring: measured 1.2e-12
RTOL_SAME_PATH = 1e-8
#: the issue's "at least mclust's" margin
RTOL_AT_LEAST = 1e-6
#: VVE fits that end at another, lower, local maximum than mclust's (dataset, K)
VVE_LOWER = {("iris", 5)}


def _data(name):
    return pd.read_csv(BENCH / "data" / f"{name}.csv").to_numpy(float)


def _start(dataset, k, n):
    if k == 1:
        return np.ones((n, 1))
    rows = HCLASS[HCLASS["dataset"] == dataset].sort_values("row")
    return np.eye(k)[rows[f"k{k}"].to_numpy() - 1]


def _mclust_stop(history):
    """The index of the update at which mclust's rule stops EM (None: not reached)."""
    h = np.asarray(history)
    for i in range(1, h.size):
        if abs(h[i] - h[i - 1]) / (1.0 + abs(h[i])) <= MCLUST_TOL:
            return i
    return None


def _fit(X, k, model, resp, r_loglik, max_iter=3000):
    # stop once the change per update is 100x below mclust's threshold: the history
    # then contains mclust's stopping point, and the end is converged further
    tol = 1e-2 * MCLUST_TOL * (1.0 + abs(r_loglik)) / X.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bm.fit_em(
            X, k, covariance=model, init=resp, reg_covar=0.0, tol=tol, max_iter=max_iter
        )


def test_n_var_params_and_df_are_mclusts():
    for _, r in REF.iterrows():
        K, D = int(r["k"]), int(r["n_features"])
        nvp = mm.n_var_params(r["model"], K, D)
        assert nvp == r["n_var_params"], (r["model"], K, D)
        if not np.isnan(r["df"]) and r["fit"] == "ml":
            assert nvp + K * D + K - 1 == r["df"], (r["model"], K, D)


@pytest.mark.parametrize("model", mm.MCLUST_MODELS)
def test_loglik_df_bic_match_mclust(model):
    ref = REF[(REF["fit"] == "ml") & (REF["model"] == model) & REF["loglik"].notna()]
    assert len(ref) >= 28  # six data sets x K = 1..5, at most two NA
    lower = set()
    for _, r in ref.iterrows():
        ds, k = r["dataset"], int(r["k"])
        X = _data(ds)
        fit = _fit(X, k, model, _start(ds, k, X.shape[0]), r["loglik"])
        assert fit.model_name == model
        assert fit.n_parameters == r["df"], (ds, k)
        if fit.log_likelihood < r["loglik"] - RTOL_AT_LEAST * abs(r["loglik"]):
            lower.add((ds, k))
        if model == "VVE" and k > 1:
            continue
        i = _mclust_stop(fit.history)
        assert i is not None, (ds, k)
        at = fit.history[i]
        np.testing.assert_allclose(at, r["loglik"], rtol=RTOL_SAME_PATH, err_msg=f"{ds} K={k}")
        # BIC at mclust's stopping point, in bayesmix's convention (lower is better)
        bic = -2.0 * at + fit.n_parameters * np.log(X.shape[0])
        np.testing.assert_allclose(bic, r["bic"], rtol=RTOL_SAME_PATH, err_msg=f"{ds} K={k}")
    assert lower <= (VVE_LOWER if model == "VVE" else set()), lower


@pytest.mark.parametrize("model", ["EII", "VEI", "EVI", "VVV", "VEE", "EVE", "EEV", "VEV"])
def test_icl_matches_mclust(model):
    # the fit stopped where mclust stops has mclust's parameters, so the same ICL:
    # BIC + 2 sum_n log z_n,MAP(n) on mclust's scale, negated here (lower is better)
    ref = REF[(REF["fit"] == "ml") & (REF["model"] == model) & REF["icl"].notna()]
    for _, r in ref[ref["k"] > 1].iterrows():
        ds, k = r["dataset"], int(r["k"])
        X = _data(ds)
        resp = _start(ds, k, X.shape[0])
        i = _mclust_stop(_fit(X, k, model, resp, r["loglik"]).history)
        fit = _fit(X, k, model, resp, r["loglik"], max_iter=i)
        np.testing.assert_allclose(fit.log_likelihood, r["loglik"], rtol=RTOL_SAME_PATH)
        np.testing.assert_allclose(fit.icl(X), r["icl"], rtol=RTOL_SAME_PATH, err_msg=f"{ds} {k}")
        # the hard classification's entropy term: ICL - BIC = -2 sum log z_MAP >= 0
        assert fit.icl(X) > fit.bic(X)


def _simulated(seed=3):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 4.0, 1.0]])
    covs = []
    for s in (0.5, 1.0, 2.0):
        A = rng.normal(size=(3, 3))
        covs.append(s * (A @ A.T / 3.0 + 0.3 * np.eye(3)))
    X, _ = bm.simulate(600, [0.3, 0.3, 0.4], means, np.array(covs), random_seed=seed)
    return X


@pytest.mark.parametrize("model", mm.MCLUST_MODELS)
@pytest.mark.parametrize("init", ["random", "kmeans"])
def test_log_likelihood_never_decreases(model, init):
    # every M-step maximises (closed forms) or increases (fixed points, MM) the expected
    # complete-data log-likelihood, so EM's log-likelihood is monotone; the iterative
    # M-steps stop at a relative change of sqrt(eps), which can cost up to ~1e-11
    # relative (measured 3e-12 for VEE on the benchmark data): tolerance 1e-10 of |l|
    X = _simulated()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bm.fit_em(X, 3, covariance=model, init=init, reg_covar=0.0, tol=1e-10, random_seed=1)
    h = np.asarray(fit.history)
    assert h.size > 5
    assert np.diff(h).min() >= -1e-10 * abs(h[-1]), (model, np.diff(h).min())


def test_aliases_are_the_mclust_names():
    X = _simulated()
    for alias, name in mm.MODEL_OF_TYPE.items():
        a = bm.fit_em(X, 3, covariance=alias, random_seed=0)
        b = bm.fit_em(X, 3, covariance=name, random_seed=0)
        assert a.covariance == b.covariance == alias and a.model_name == b.model_name == name
        np.testing.assert_array_equal(a.covariances, b.covariances)
        assert a.log_likelihood == b.log_likelihood


def test_structure_of_the_fitted_covariances():
    X = _simulated()
    for model in mm.MCLUST_MODELS:
        fit = bm.fit_em(X, 3, covariance=model, random_seed=0, reg_covar=0.0)
        S = fit.covariances
        vals = np.linalg.eigvalsh(S)
        logdet = np.log(vals).sum(1)
        vol_equal, shape_kind, orient = model
        if vol_equal == "E":  # equal volumes: equal determinants
            np.testing.assert_allclose(logdet, logdet[0], rtol=0, atol=1e-8)
        if orient == "I":  # axis-aligned
            np.testing.assert_allclose(
                S - np.eye(3) * np.diagonal(S, axis1=1, axis2=2)[:, None], 0, atol=1e-12
            )
        if orient == "E":  # one orientation: the matrices commute
            np.testing.assert_allclose(S[0] @ S[1], S[1] @ S[0], atol=1e-8 * np.abs(S).max() ** 2)
        if shape_kind == "E":  # equal shapes: the same sorted normalised eigenvalues
            a = vals / np.exp(logdet / 3)[:, None]
            np.testing.assert_allclose(a, np.broadcast_to(a[0], a.shape), rtol=1e-7)
        if shape_kind == "I":
            np.testing.assert_allclose(vals, np.repeat(vals[:, :1], 3, axis=1), rtol=1e-10)
        assert fit.model_name == model
        assert dict(fit.to_dict())["model_name"] == model
        assert bm.EMResult.from_dict(fit.to_dict()).n_parameters == fit.n_parameters


def test_prior_with_a_model_mclust_has_no_prior_for_is_refused():
    X = _simulated()
    for model in ("VEE", "EVE", "VVE", "EVV"):  # mclust has no prior for them either
        with pytest.raises(NotImplementedError, match=model):
            bm.fit_em(X, 2, covariance=model, prior=bm.GMMPrior.from_data(X, 2))
    with pytest.raises(ValueError, match="covariance must be one of"):
        bm.fit_em(X, 2, covariance="VXV")


def test_select_k_and_the_sklearn_estimator_take_the_names():
    from sklearn.model_selection import GridSearchCV

    from bayesmix.sklearn import GaussianMixture, bic_scorer

    X = _data("old_faithful")
    table = bm.select_k(X, [1, 2, 3], covariance="vev", mcmc=False, n_init=2, random_seed=0)
    assert set(table["covariance"]) == {"VEV"}
    assert table["n_params"].tolist() == [
        mm.n_var_params("VEV", k, 2) + 3 * k - 1 for k in (1, 2, 3)
    ]
    with pytest.raises(ValueError, match="mcmc=False"):
        bm.select_k(X, [1, 2], covariance="VEV", progress=False)
    grid = GridSearchCV(
        GaussianMixture(2, random_state=0),
        {"covariance_type": ["EII", "EVE", "VEV", "full"]},
        scoring=bic_scorer,
        cv=[(np.arange(len(X)), np.arange(len(X)))],
    ).fit(X)
    scores = grid.cv_results_["mean_test_score"]
    for name, score in zip(["EII", "EVE", "VEV", "full"], scores, strict=True):
        gm = GaussianMixture(2, covariance_type=name, random_state=0).fit(X)
        assert gm.em_result_.model_name == mm.MODEL_OF_TYPE.get(name, name)
        assert score == pytest.approx(-gm.bic(X), rel=1e-12)
    assert grid.best_params_["covariance_type"] == ["EII", "EVE", "VEV", "full"][scores.argmax()]


@pytest.mark.parametrize("model", mm.NEW_MODELS)
def test_new_models_with_weights_noise_gaps_and_dask(model):
    X = _data("old_faithful")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = bm.fit_em(X, 2, covariance=model, init="kmeans", random_seed=0, reg_covar=0.0)
        resp = a.predict_proba(X)
        kw = dict(covariance=model, reg_covar=0.0, tol=1e-10)
        # frequency weights 2 are the data with every row twice (same start)
        dup = bm.fit_em(np.vstack([X, X]), 2, init=np.vstack([resp, resp]), **kw)
        w = bm.fit_em(X, 2, init=resp, sample_weight=np.full(len(X), 2.0), **kw)
        np.testing.assert_allclose(w.log_likelihood, dup.log_likelihood, rtol=1e-10)
        np.testing.assert_allclose(w.covariances, dup.covariances, rtol=1e-7, atol=1e-9)
        # a noise component adds one parameter (its weight), as mclust
        nz = bm.fit_em(X, 2, covariance=model, noise=True, random_seed=0)
        assert nz.model_name == model and nz.n_parameters == a.n_parameters + 1
        # gaps: the observed-data EM with the same M-step, monotone
        Xm = X.copy()
        Xm[::7, 0] = np.nan
        gaps = bm.fit_em(Xm, 2, covariance=model, random_seed=0, reg_covar=0.0)
        h = np.asarray(gaps.history)
        assert np.diff(h).min() >= -1e-10 * abs(h[-1])
    da = pytest.importorskip("dask.array")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = bm.fit_em(da.from_array(X, chunks=(100, 2)), 2, init=resp, **kw)
        m = bm.fit_em(X, 2, init=resp, **kw)
    assert d.model_name == model
    np.testing.assert_allclose(d.log_likelihood, m.log_likelihood, rtol=1e-10)


def test_cli_takes_the_names_and_all(tmp_path, capsys):
    from bayesmix.workflow._cli import main
    from bayesmix.workflow._pipeline import _planned_fits
    from bayesmix.workflow._spec import SpecError, spec_from_dict

    out = tmp_path / "all"
    argv = ["fit", "--no-mcmc", "--k", "2", "--covariance", "all", "--estimate", "ml"]
    rc = main([*argv, "--quiet", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    for model in mm.MCLUST_MODELS:
        name = {v: k for k, v in mm.MODEL_OF_TYPE.items()}.get(model, model)
        fit = bm.load_fit(out / "fits" / f"{name}_K2").em_result
        assert fit.model_name == model
    assert "| VEV | 2 |" in (out / "report.md").read_text()
    # MAP (the default estimate) for a model mclust has no prior for: a one-line error
    # naming the fix; for one with a prior, the MAP fit
    argv = ["fit", "--no-mcmc", "--k", "2", "--quiet", "--covariance"]
    rc = main([*argv, "EVE,full", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc != 0 and "--estimate ml" in err and "EVE" in err and "Traceback" not in err
    rc = main([*argv, "VEV", "--out", str(tmp_path / "c")])
    assert rc == 0, capsys.readouterr().err
    fit = bm.load_fit(tmp_path / "c" / "fits" / "VEV_K2").em_result
    assert fit.model_name == "VEV" and fit.log_posterior is not None
    # with MCMC, only the native types are sampled (and saved as DP/MFM fits)
    spec = spec_from_dict({"model": {"covariance": ["VEV", "diag"], "estimate": "ml", "k": [1, 2]}})
    assert spec.covariance == ["VEV", "diag"]
    assert "fits/mfm_diag" in _planned_fits(spec) and "fits/mfm_VEV" not in _planned_fits(spec)
    with pytest.raises(SpecError, match="must be one of"):
        spec_from_dict({"model": {"covariance": ["VXV"], "estimate": "ml"}})


@pytest.mark.parametrize("model", mm.NEW_MODELS)
def test_collapsing_components_warn_or_raise_clearly(model):
    # iris with K = 15: components on a few (duplicated) points; with the default
    # reg_covar the fit ends with collapsed components flagged, never with a numpy
    # RuntimeWarning or a LinAlgError; with reg_covar=0 a singular component is the
    # usual SingularCovarianceError (mclust returns NA for such fits)
    X = _data("iris")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", bm.DegenerateDataWarning)
        fit = bm.fit_em(X, 15, covariance=model, random_seed=0)
        assert np.isfinite(fit.log_likelihood) and np.all(np.isfinite(fit.covariances))
        try:
            bm.fit_em(X, 15, covariance=model, init="kmeans", random_seed=0, reg_covar=0.0)
        except SingularCovarianceError as err:
            assert "reg_covar" in str(err)


# ----------------------------------------------------------------------------- MAP
def _mclust_default_prior(X, k, model):
    """mclust's defaultPrior(X, G = k, modelName) (priorControl()): shrinkage 0.01, the
    column means, dof D + 2, and scale (1/G)^(2/D) times var(X) (ellipsoidal models) or
    times the mean variance (spherical and diagonal ones), R's var (n - 1)."""
    d = X.shape[1]
    fac = (1.0 / k) ** (2.0 / d)
    if mm.BASE_TYPE[model] in ("spherical", "diag"):
        scale = fac * X.var(0, ddof=1).sum() / d * np.eye(d)
    else:
        scale = fac * np.cov(X, rowvar=False)
    return bm.GMMPrior(mean=X.mean(0), scale=scale, dof=d + 2, mean_shrinkage=0.01)


def _map_loglik_at_mclust_stop(X, k, model, resp, prior):
    """EM with fit_em's own M-step and E-step (bayesmix.em._loop), recording the
    log-likelihood of every iteration (fit_em's history is the log posterior), up to
    mclust's stopping rule on the log-likelihood (which its MAP EM uses)."""
    from bayesmix.core import _gaussian as gs
    from bayesmix.em import _checks, _loop

    name = {v: t for t, v in mm.MODEL_OF_TYPE.items()}.get(model, model)
    settings = _checks._model_settings(name)
    shift = X.mean(0)
    Xc = X - shift
    map_prior = _checks._map_prior(prior, shift, name)
    key = _loop._RunSettings(
        **settings,
        n_components=k,
        max_iter=0,
        tol=0,
        reg_covar=0,
        engine="numpy",
        progress=False,
        prior=prior,
        shift=shift,
        map_prior=map_prior,
    ).m_key
    nk, sx, sxx = _loop._stats_from_resp(Xc, settings["covariance"], resp)
    fit = _loop._m_step(nk, sx, sxx, key, X.shape[0], 0.0, map_prior)
    labels = np.empty(X.shape[0], dtype=np.int64)
    estep = gs.backend("numpy").estep
    history = []
    for _ in range(5000):
        ll, nk, sx, sxx = estep(
            Xc, settings["covariance"], fit.weights, fit.means, fit.prec_chol, labels
        )
        history.append(ll)
        if _mclust_stop(history) is not None:
            return ll
        fit = _loop._m_step(nk, sx, sxx, key, X.shape[0], 0.0, map_prior, fit.state)
    return np.nan


MAP_MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV")


@pytest.mark.parametrize("model", MAP_MODELS)
def test_map_loglik_matches_mclust(model):
    # R's MAP fits under priorControl() (benchmarks/mclust14_reference.csv, fit "map"),
    # from mclust's partitions: the same updates give the same log-likelihood at
    # mclust's stopping iteration (measured <= 1.4e-13 relative; tolerance as for ML).
    # It checks the MAP M-steps of mclust's Fortran as reproduced here, quirks included:
    # EII's variance has no prior-scale term (meeiip), EEI keeps unshrunk means (meeeip),
    # VEV's volumes ignore the prior's degrees of freedom (mevevp).
    ref = REF[(REF["fit"] == "map") & (REF["model"] == model) & REF["loglik"].notna()]
    ref = ref[ref["k"] > 1]
    assert len(ref) >= 15  # six data sets x K = 2..5, less the fits mclust left NA
    for _, r in ref.iterrows():
        ds, k = r["dataset"], int(r["k"])
        X = _data(ds)
        prior = _mclust_default_prior(X, k, model)
        ll = _map_loglik_at_mclust_stop(X, k, model, _start(ds, k, X.shape[0]), prior)
        np.testing.assert_allclose(ll, r["loglik"], rtol=RTOL_SAME_PATH, err_msg=f"{ds} K={k}")


@pytest.mark.parametrize("model", [m for m in MAP_MODELS if m in mm.NEW_MODELS])
def test_map_fit_em_runs_and_is_near_mclust(model):
    # fit_em itself (tolerance on the log posterior, run further than mclust): within
    # 1e-2 relative of R's log-likelihood on old_faithful K = 2 (measured 4e-7 to 2e-5)
    X = _data("old_faithful")
    r = REF[(REF["fit"] == "map") & (REF["model"] == model) & (REF["k"] == 2)]
    r = r[r["dataset"] == "old_faithful"].iloc[0]
    prior = _mclust_default_prior(X, 2, model)
    fit = bm.fit_em(X, 2, covariance=model, prior=prior, init=_start("old_faithful", 2, len(X)))
    assert fit.model_name == model and fit.log_posterior is not None
    assert fit.n_parameters == r["df"]
    np.testing.assert_allclose(fit.log_likelihood, r["loglik"], rtol=1e-2)


# ------------------------------------------------------------- GMMPrior.mclust_default
DEFAULT_PRIOR_REF = pd.read_csv(BENCH / "mclust_default_prior.csv")


@pytest.mark.parametrize("row", range(len(DEFAULT_PRIOR_REF)))
def test_mclust_default_prior_equals_r(row):
    # R mclust 6.0.0's defaultPrior(X, G, modelName) for six data sets and VII / VVI /
    # VVV (spherical, diagonal, ellipsoidal scales); R printed 15 significant digits
    r = DEFAULT_PRIOR_REF.iloc[row]
    X = _data(r["dataset"])
    prior = bm.GMMPrior.mclust_default(X, int(r["G"]), covariance=r["model"])
    D = X.shape[1]
    assert prior.dof == r["dof"] and prior.mean_shrinkage == r["shrinkage"]
    np.testing.assert_allclose(prior.mean, np.array(r["mean"].split(";"), float), rtol=1e-13)
    scale = np.array(r["scale"].split(";"), float)
    expect = scale[0] * np.eye(D) if r["scale_nrow"] == 1 else scale.reshape(D, D)
    np.testing.assert_allclose(prior.scale, expect, rtol=1e-13)


def test_mclust_default_prior_aliases_and_errors():
    X = _data("old_faithful")
    for alias, name in (("full", "VVV"), ("spherical", "VII"), ("diag", "VVI"), ("tied", "EEE")):
        a, b = bm.GMMPrior.mclust_default(X, 3, alias), bm.GMMPrior.mclust_default(X, 3, name)
        np.testing.assert_array_equal(a.scale, b.scale)
    # EEI is diagonal, EVE ellipsoidal: the scale types follow the model's family
    assert np.count_nonzero(bm.GMMPrior.mclust_default(X, 3, "EEI").scale) == 2
    assert np.count_nonzero(bm.GMMPrior.mclust_default(X, 3, "EVE").scale) == 4
    with pytest.raises(ValueError, match="covariance"):
        bm.GMMPrior.mclust_default(X, 3, "XYZ")
    with pytest.raises(ValueError, match="at least 2 rows"):
        bm.GMMPrior.mclust_default(X[:1], 1)
