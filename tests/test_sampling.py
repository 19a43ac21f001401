"""Tests of bayesmix.sample: schema, reproducibility, log-likelihood, DP bookkeeping.

One real (tiny) NUTS run of a full-covariance model is compiled once per module and
sampled twice with the same seed; every other schema test uses
``pymc.testing.mock_sample`` (prior draws in place of MCMC: no NUTS compile).
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest
from pymc.testing import mock_sample
from scipy import stats
from scipy.special import logsumexp

import bayesmix as bm
from bayesmix.mcmc import _sample as sampling
from bayesmix.mcmc._builders import build_dpgmm, build_gmm


@pytest.fixture(scope="module")
def data():
    X, _ = bm.simulate(
        60,
        [0.5, 0.5],
        [[0.0, 0.0], [6.0, 6.0]],
        [np.eye(2), [[1.0, 0.3], [0.3, 1.0]]],
        random_seed=0,
    )
    return X


class _Init:
    def __init__(self, w, m, c):
        self.weights, self.means, self.covariances = w, m, c


@pytest.fixture(scope="module")
def em_init(data):
    # EMResult-like init given explicitly (the MAP from the model's own prior)
    prior = bm.GMMPrior.from_data(data, 2)
    return bm.fit_em(data, 2, prior=prior, random_seed=0)


@pytest.fixture(scope="module")
def sampled(data, em_init):
    model = build_gmm(data, 2)
    kw = dict(init=em_init, draws=30, tune=30, chains=2, cores=1, progressbar=False)
    kw["sampler"] = "nuts"
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        a = bm.sample(model, random_seed=123, **kw)
        b = bm.sample(model, random_seed=123, **kw)
    # only bayesmix's own diagnostics may warn here (30 draws): not PyMC's label on the
    # dense mass-matrix adaptation that mass_matrix="auto" picks for this 11-parameter model
    others = [r for r in rec if not issubclass(r.category, bm.ConvergenceWarning)]
    assert not [r for r in others if "experimental" in str(r.message)], others
    assert a.attrs["mass_matrix"] == "full"
    return a, b


def test_schema(sampled, data):
    dt, _ = sampled
    assert {"posterior", "log_likelihood", "observed_data", "sample_stats"} <= set(dt.children)
    post = dt["posterior"]
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["covariances"].dims == ("chain", "draw", "component", "feature", "feature2")
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 30
    # the chains' traces share one compiled function but not their arrays (_chain_trace)
    m = post["means"].values
    assert np.all(np.isfinite(m)) and not np.allclose(m[0], m[1])
    assert len(np.unique(m[0, :, 0, 0])) > 5 and len(np.unique(m[1, :, 0, 0])) > 5
    # the recorded (constrained) covariances are the transform of the sampled values
    # (the per-draw log-likelihood is checked against scipy in a separate test)
    c = post["covariances"].values
    np.testing.assert_allclose(c, np.swapaxes(c, -1, -2))
    assert np.all(np.linalg.eigvalsh(c) > 0)
    assert dt["log_likelihood"]["X"].dims == ("chain", "draw", "obs")
    assert dt["sample_stats"]["diverging"].dims == ("chain", "draw")
    for key in (
        "model",
        "n_components",
        "covariance",
        "prior",
        "bayesmix_version",
        "nuts_sampler",
        "random_seed",
    ):
        assert key in dt.attrs
    assert dt.attrs["model"] == "gmm" and dt.attrs["n_components"] == 2
    assert dt.attrs["nuts_sampler"] == "pymc" and dt.attrs["random_seed"] == 123
    assert bm.GMMPrior.from_dict(
        __import__("json").loads(dt.attrs["prior"])
    ) == bm.GMMPrior.from_data(data, 2)
    np.testing.assert_array_equal(dt["observed_data"]["X"].values, data)


def test_same_seed_same_draws(sampled):
    a, b = sampled
    for v in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(a["posterior"][v].values, b["posterior"][v].values)


def test_posterior_near_em_map(sampled, em_init):
    dt, _ = sampled
    # tiny run from the EM MAP on well-separated data: posterior means within ~0.5 of it
    # (posterior sd of a mean is ~1/sqrt(30) ~ 0.18; no label switching from this start)
    mu = dt["posterior"]["means"].mean(("chain", "draw")).values
    np.testing.assert_allclose(mu, em_init.means, atol=0.5)


def test_log_likelihood_matches_scipy(sampled, data):
    dt, _ = sampled
    post = dt["posterior"]
    for chain, draw in [(0, 0), (1, 17), (0, 29)]:
        w = post["weights"].values[chain, draw]
        m = post["means"].values[chain, draw]
        c = post["covariances"].values[chain, draw]
        comp = np.stack(
            [stats.multivariate_normal(m[k], c[k]).logpdf(data) for k in range(2)], axis=1
        )
        expected = logsumexp(comp + np.log(w), axis=1)
        np.testing.assert_allclose(
            dt["log_likelihood"]["X"].values[chain, draw], expected, rtol=1e-10
        )


# ---------------------------------------------------------------------------- mocked
@pytest.fixture
def mocked(monkeypatch):
    monkeypatch.setattr(pm, "sample", mock_sample)
    # mock_sample ignores the step: don't compile one (test_nuts_step_* test the real one)
    monkeypatch.setattr(sampling, "_nuts_step", lambda *a, **k: None)


def _init_for(K, D, rng=0):
    rng = np.random.default_rng(rng)
    return _Init(np.full(K, 1.0 / K), rng.normal(size=(K, D)), np.repeat(np.eye(D)[None], K, 0))


@pytest.mark.parametrize(
    "covariance",
    # each mocked run compiles a numba prior-predictive function (~20-90 s on 2 busy
    # cores): one type by default, the others with -m slow
    [
        "diag",
        pytest.param("spherical", marks=pytest.mark.slow),
        pytest.param("tied", marks=pytest.mark.slow),
    ],
)
def test_schema_other_covariances_mocked(mocked, data, covariance):
    model = build_gmm(data, 3, covariance=covariance)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = bm.sample(
            model, init=_init_for(3, 2), draws=5, chains=2, random_seed=1, sampler="nuts"
        )
    post = dt["posterior"]
    c = post["covariances"].values
    assert c.shape == (2, 5, 3, 2, 2)
    if covariance == "diag":
        np.testing.assert_array_equal(c[..., 0, 1], 0.0)
        np.testing.assert_array_equal(np.diagonal(c, axis1=-2, axis2=-1), post["variances"].values)
        assert post["variances"].dims == ("chain", "draw", "component", "feature")
    elif covariance == "spherical":
        np.testing.assert_array_equal(c[..., 0, 0], c[..., 1, 1])
        assert post["variances"].dims == ("chain", "draw", "component")
    else:
        np.testing.assert_array_equal(c[:, :, 0], c[:, :, 2])
        assert post["covariance"].dims == ("chain", "draw", "feature", "feature2")
    assert dt.attrs["covariance"] == covariance


def test_dpgmm_mocked_n_occupied_and_truncation_warning(mocked, data):
    model = build_dpgmm(data, truncation=4)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        dt = bm.sample(
            model, init=_init_for(2, 2), draws=20, chains=1, random_seed=2, sampler="nuts"
        )
    post = dt["posterior"]
    # the warning fires exactly when the last component's mean weight exceeds 1%
    last = float(post["weights"].values[..., -1].mean())
    warned = [r for r in rec if issubclass(r.category, sampling.TruncationWarning)]
    assert bool(warned) == (last > 0.01)
    if warned:
        assert "Increase truncation" in str(warned[0].message)
    assert post["sticks"].dims == ("chain", "draw", "stick")
    assert post["n_occupied"].dims == ("chain", "draw")
    # n_occupied recomputed independently: MAP allocation of every observation per draw
    w, m, c = (post[v].values[0, 3] for v in ("weights", "means", "covariances"))
    logp = np.stack(
        [np.log(w[k]) + stats.multivariate_normal(m[k], c[k]).logpdf(data) for k in range(4)],
        axis=1,
    )
    assert int(post["n_occupied"].values[0, 3]) == np.unique(logp.argmax(1)).size
    assert dt.attrs["model"] == "dpgmm" and dt.attrs["truncation"] == 4


def test_sample_bad_input(data):
    model = build_gmm(data, 2)
    with pytest.raises(TypeError, match=r"built by bayesmix\.build_gmm"):
        bm.sample(pm.Model())
    with pytest.raises(ValueError, match="draws must be an integer"):
        bm.sample(model, draws=0)
    # regression (issue 11): a non-integer count is a TypeError, as for every integer
    # argument of the package (it used to be a ValueError here only)
    with pytest.raises(TypeError, match=r"draws must be an integer >= 1; got float 1\.5"):
        bm.sample(model, draws=1.5)
    with pytest.raises(TypeError, match="chains must be an integer"):
        bm.sample(model, chains="2")
    with pytest.raises(ValueError, match="init must have weights"):
        bm.sample(model, init=_init_for(3, 2))
    with pytest.raises(TypeError, match="EMResult-like"):
        bm.sample(model, init=object())


# ---------------------------------------------------------------------------- K=1, DP init
def test_k1_sample_without_nan_diagnostics(data):
    """K=1: the weight is constant; diagnostics skip it (no All-NaN / divide warnings)."""
    model = build_gmm(data, 1)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        dt = bm.sample(
            model, draws=40, tune=40, chains=2, cores=1, progressbar=False, random_seed=4
        )
    np.testing.assert_array_equal(dt["posterior"]["weights"].values, 1.0)
    # the only warning allowed is the honest low-ESS/R-hat one of such a tiny run, and it
    # must quote finite numbers
    unexpected = [r for r in rec if not issubclass(r.category, bm.ConvergenceWarning)]
    assert not [r for r in unexpected if issubclass(r.category, RuntimeWarning)], [
        str(r.message) for r in unexpected
    ]
    assert not [r for r in unexpected if "arviz" in r.filename], [
        str(r.message) for r in unexpected
    ]
    for r in rec:
        if issubclass(r.category, bm.ConvergenceWarning):
            assert "nan" not in str(r.message).lower()


def test_varying_drops_constant_quantities():
    import xarray as xr

    rng = np.random.default_rng(0)
    C, S = 2, 10
    cov = rng.normal(size=(C, S, 2, 2, 2))
    cov[..., 0, 1] = cov[..., 1, 0] = 0.0  # diagonal covariances: zero off-diagonals
    ds = xr.Dataset(
        {
            "weights": (("chain", "draw", "k1"), np.ones((C, S, 1))),
            "covariances": (("chain", "draw", "component", "feature", "feature2"), cov),
        }
    )
    out = sampling._varying(ds)
    assert "weights" not in out.data_vars  # a constant weight is dropped, not NaN
    kept = out["covariances"].values
    assert kept.shape == (C, S, 4)  # 2 components x 2 diagonal entries
    np.testing.assert_array_equal(kept, np.diagonal(cov, axis1=-2, axis2=-1).reshape(C, S, 4))


def test_dp_default_init_no_spurious_warning():
    """init=None for a DP model: BIC-chosen MAP fit, no collapsed-component warning.

    A 10-component MAP EM fit of these data (the previous default) collapses a
    component (DegenerateDataWarning) for every seed tried; the DP initialisation
    now fits K = 1..6 and keeps the lowest-BIC fit that did not warn.
    """
    X, _ = bm.simulate(
        300,
        [0.3, 0.3, 0.4],
        [[-6.0, 0.0], [0.0, 4.0], [6.0, 0.0]],
        [np.eye(2), [[1.0, 0.6], [0.6, 1.5]], [[1.5, -0.4], [-0.4, 0.8]]],
        random_seed=300,
    )
    cfg = build_dpgmm(X, truncation=15).bayesmix_config
    for seed in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fit = sampling._em_init(cfg, np.random.default_rng(seed))
        assert fit.weights.size == 3  # three well-separated simulated clusters


# ---------------------------------------------------------------------------- slow recovery
_TRUE_W = np.array([0.4, 0.6])
_TRUE_M = np.array([[-4.0, 0.0], [4.0, 1.0]])
_TRUE_C = {
    "full": np.array([[[1.0, 0.5], [0.5, 1.5]], [[0.8, -0.3], [-0.3, 0.6]]]),
    "tied": np.array([[[1.0, 0.4], [0.4, 0.8]]] * 2),
    "diag": np.array([np.diag([1.0, 0.5]), np.diag([0.6, 1.4])]),
    "spherical": np.array([0.7 * np.eye(2), 1.3 * np.eye(2)]),
}


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["gibbs", pytest.param("nuts", marks=pytest.mark.slow)])
@pytest.mark.parametrize("covariance", COV_TYPES_ALL := ["full", "tied", "diag", "spherical"])
def test_recovery_simulated_truth(covariance, sampler):
    """The default sampler of these models (Gibbs) and NUTS recover the truth."""
    X, _ = bm.simulate(400, _TRUE_W, _TRUE_M, _TRUE_C[covariance], random_seed=11)
    model = build_gmm(X, 2, covariance=covariance)
    em = bm.fit_em(X, 2, covariance=covariance, prior=model.bayesmix_config.prior, random_seed=0)
    # 1000 draws per chain: the max R-hat over ~10 quantities estimated from 2 x 500 draws
    # (bulk ESS ~1000) fluctuates by ~0.005 between seeds (1.004-1.013 measured for diag,
    # seeds 5-7), which makes a 1.01 threshold a coin flip; with 2 x 1000 (ESS ~2000) the
    # same seeds give 1.001-1.004 for full and diag
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        dt = bm.sample(
            model,
            init=em,
            draws=1000,
            tune=1000,
            chains=2,
            cores=1,
            progressbar=False,
            random_seed=5,
            sampler=sampler,
        )
    assert dt.attrs["sampler"] == sampler
    rel = bm.relabel(dt, reference=em)
    post = rel["posterior"]
    # line the relabelled components up with the truth by their first mean coordinate
    order = np.argsort(post["means"].mean(("chain", "draw")).values[:, 0])
    for name, truth in (
        ("weights", _TRUE_W),
        ("means", _TRUE_M),
        ("covariances", _TRUE_C[covariance]),
    ):
        draws = post[name].values[:, :, order].reshape(-1, *truth.shape)
        mean, sd = draws.mean(0), draws.std(0)
        free = sd > 0  # structural zeros (diag off-diagonals) are exact
        # 4 posterior sd: with ~20 free scalars per model a |z| > 4 happens with
        # probability < 2e-3 under a correct posterior; a biased sampler or a wrong
        # likelihood (e.g. a mislabelled component) is off by many sd
        z = np.abs(mean[free] - truth[free]) / sd[free]
        assert z.max() < 4.0, (name, z.max())
        np.testing.assert_array_equal(mean[~free], truth[~free])
    import arviz_stats as azs

    varying = sampling._varying(post.to_dataset()[["weights", "means", "covariances"]])
    rhat = azs.rhat(varying)
    assert max(float(rhat[v].max()) for v in rhat.data_vars) < 1.01


@pytest.mark.slow
def test_dp_occupied_mode_is_three():
    X, _ = bm.simulate(
        240,
        [0.3, 0.3, 0.4],
        [[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]],
        [np.eye(2), 0.8 * np.eye(2), [[1.0, 0.3], [0.3, 1.0]]],
        random_seed=21,
    )
    model = build_dpgmm(X, truncation=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        dt = bm.sample(
            model,
            draws=300,
            tune=300,
            chains=2,
            cores=1,
            progressbar=False,
            random_seed=6,
            sampler="nuts",
        )
    occ = dt["posterior"]["n_occupied"].values.ravel()
    counts = np.bincount(occ)
    # clusters 6 sd apart: every draw's MAP allocation separates them, so the mode is 3
    # (extra occupied components are possible -- a DP posterior on the number of
    # clusters is not consistent -- but they hold few points and are rarely occupied)
    assert counts.argmax() == 3, counts


# ---------------------------------------------------------------------------- mass matrix
class _Stop(Exception):
    """Raised by a fake pm.sample once it has seen its arguments."""


def test_mass_matrix_choice_reaches_pymc(monkeypatch, data):
    seen = {}

    def fake_step(model, centre, upoints, mass_matrix, rng, nuts_kwargs, compile_kwargs):
        seen.update(mass_matrix=mass_matrix, nuts_kwargs=nuts_kwargs)
        return "step"

    def fake_sample(*args, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(pm, "sample", fake_sample)
    monkeypatch.setattr(sampling, "_nuts_step", fake_step)
    kw = dict(init=_init_for(2, 2), draws=5, chains=2, random_seed=1)
    small = build_gmm(data, 2)  # 2 x (2 means + 3 log-Cholesky) + 1 weight = 11 parameters
    for choice, expected in {"auto": "full", "diag": "diag", "full": "full"}.items():
        with pytest.raises(_Stop):
            bm.sample(small, mass_matrix=choice, sampler="nuts", **kw)
        assert seen["mass_matrix"] == expected, choice
        assert seen["step"] == "step" and "init" not in seen
    big = build_dpgmm(data, truncation=12)  # 12 x 5 + 11 sticks + 1 concentration = 72 > 60
    with pytest.raises(_Stop):
        bm.sample(big, sampler="nuts", **kw)
    assert seen["mass_matrix"] == "diag"
    # NUTS settings go to the step, the rest to pm.sample
    seen.clear()
    with pytest.raises(_Stop):
        bm.sample(small, target_accept=0.9, nuts={"max_treedepth": 7}, cores=1, **kw)
    assert seen["nuts_kwargs"] == {"target_accept": 0.9, "max_treedepth": 7}
    assert "target_accept" not in seen and "nuts" not in seen and seen["cores"] == 1
    # a user's own step bypasses bayesmix's: PyMC's init follows mass_matrix
    seen.clear()
    with pytest.raises(_Stop):
        bm.sample(small, step="user step", mass_matrix="diag", **kw)
    assert seen["step"] == "user step" and seen["init"] == "adapt_diag"
    assert "mass_matrix" not in seen
    with pytest.raises(ValueError, match=r"mass_matrix must be one of .*'dense'"):
        bm.sample(small, mass_matrix="dense", **kw)


# ---------------------------------------------------------------------------- NUTS set-up
@pytest.mark.parametrize("mass_matrix", ["full", "diag"])
def test_nuts_step_matches_pymc_set_up(data, em_init, mass_matrix):
    """bayesmix's own NUTS step is what pm.sample(init="adapt_full"/"adapt_diag") builds:
    adaptation from the identity (weight 10) around the mean of the starting points,
    the NUTS settings passed through, the model's own log density."""
    from pymc.blocking import DictToArrayBijection
    from pymc.step_methods.hmc import quadpotential as qp

    model = build_gmm(data, 2)
    cfg = model.bayesmix_config
    rng = np.random.default_rng(0)
    w, m, c = em_init.weights, em_init.means, em_init.covariances
    values = sampling._init_values(cfg, w, m, c)
    _, centre, upoints, n = sampling._jittered_points(model, values, 2, rng, w, c)
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        step = sampling._nuts_step(
            model, centre, upoints, mass_matrix, rng, {"target_accept": 0.9}, {}
        )
    assert isinstance(step, pm.NUTS) and step.target_accept == 0.9
    pot = step.potential
    grad_vars = step._logp_dlogp_func._grad_vars
    starts = np.array([np.concatenate([p[v.name].ravel() for v in grad_vars]) for p in upoints])
    assert starts.shape == (2, n)
    np.testing.assert_allclose(pot._initial_mean, starts.mean(0))
    if mass_matrix == "full":
        assert isinstance(pot, qp.QuadPotentialFullAdapt)
        np.testing.assert_array_equal(pot._initial_cov, np.eye(n))
    else:
        assert isinstance(pot, qp.QuadPotentialDiagAdapt)
        np.testing.assert_array_equal(pot._initial_diag, np.ones(n))
    assert pot._initial_weight == 10
    # the step's compiled density is the model's: PyMC's own logp at a starting point
    q = DictToArrayBijection.map({v.name: upoints[0][v.name] for v in grad_vars}).data
    lp, _ = step._logp_dlogp_func([q], extra_vars={})
    expected = model.compile_logp()({v.name: upoints[0][v.name] for v in model.value_vars})
    np.testing.assert_allclose(lp, expected, rtol=1e-12)


def test_gc_paused_restores_the_collector_state():
    import gc

    assert gc.isenabled()
    with sampling._gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), sampling._gc_paused():
        raise RuntimeError("fit failed")
    assert gc.isenabled()  # restored on errors too
    gc.disable()
    try:
        with sampling._gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        gc.enable()
