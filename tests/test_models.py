"""Tests of the PyMC model builders against independent scipy.stats / PyMC computations.

Compilation is the cost here: the log densities are compiled in FAST_COMPILE mode
(python linker, same graph) once per model; only one test compiles the production
(numba) graph.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import jacobian
from scipy import stats
from scipy.special import logsumexp

import bayesmix as bm
from bayesmix.mcmc._builders import build_dpgmm, build_gmm
from bayesmix.mcmc._pt_dists import SPDTransform, packed_to_spd, spd_to_packed

FAST = "FAST_COMPILE"
# Tolerance: both sides are closed-form float64 sums of O(100) terms of size O(100):
# 1e-8 relative is many orders above rounding and far below any modelling error.
RTOL = 1e-8

COV_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def data():
    X, _ = bm.simulate(
        40,
        [0.3, 0.3, 0.4],
        [[0.0, 0.0], [5.0, 5.0], [0.0, 6.0]],
        [np.eye(2), [[1.0, 0.5], [0.5, 1.0]], 0.5 * np.eye(2)],
        random_seed=0,
    )
    return X


def _point_params(K, D, covariance, seed=1):
    """A random parameter point (full matrices) of the right structure for a covariance type."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.full(K, 3.0))
    m = rng.normal(2.0, 2.0, size=(K, D))
    A = rng.normal(size=(K, D, D))
    c = A @ np.swapaxes(A, 1, 2) + np.eye(D)
    if covariance == "tied":
        c = np.repeat(c[:1], K, axis=0)
    elif covariance == "diag":
        c = np.diagonal(c, axis1=1, axis2=2)[..., None] * np.eye(D)
    elif covariance == "spherical":
        c = rng.uniform(0.5, 2.0, size=K)[:, None, None] * np.eye(D)
    return w, m, c


def _values(model, w, m, c, *, dp=False, concentration=1.7):
    from bayesmix.mcmc._sample import _init_values

    cfg = model.bayesmix_config
    vals = _init_values(cfg, w, m, c)
    if dp:
        vals["concentration"] = np.float64(concentration)
    return vals


def _fwd(model, values):
    """Unconstrained point (value-variable names) for constrained values."""
    point = {}
    for rv in model.free_RVs:
        vv = model.rvs_to_values[rv]
        tr = model.rvs_to_transforms.get(rv)
        val = np.asarray(values[rv.name], dtype=float)
        if tr is None:
            point[vv.name] = val
        else:
            out = tr.forward(pt.as_tensor_variable(val), *rv.owner.inputs)
            point[vv.name] = pytensor.function([], out, mode=FAST)()
    return point


def _independent_coords(name, x):
    """The coordinates a density on a constrained set is defined against."""
    if name in ("weights",):
        return x[..., :-1]
    if name in ("covariances", "covariance"):
        D = x.type.shape[-1]
        r, c = np.tril_indices(D)
        return x[..., r, c]
    return x


def _log_jacobian(model, point):
    """sum of log|det d(constrained coords)/d(unconstrained)| by automatic differentiation."""
    total = 0.0
    for rv in model.free_RVs:
        tr = model.rvs_to_transforms.get(rv)
        if tr is None:
            continue
        vv = model.rvs_to_values[rv]
        y0 = np.asarray(point[vv.name], dtype=float)
        y = pt.vector("y")
        x = tr.backward(y.reshape(y0.shape), *rv.owner.inputs)
        g = _independent_coords(rv.name, x).flatten()
        J = pytensor.function([y], jacobian(g, y), mode=FAST)(y0.ravel())
        sign, logdet = np.linalg.slogdet(J)
        assert sign != 0
        total += logdet
    return total


def _compiled(model):
    outs = [model.logp(jacobian=False), model.logp(jacobian=True), model.dlogp(jacobian=True)]
    return pytensor.function(model.value_vars, outs, mode=FAST, on_unused_input="ignore")


def _scipy_loglik(X, w, m, c):
    comp = np.stack(
        [stats.multivariate_normal(m[k], c[k]).logpdf(X) for k in range(len(w))], axis=1
    )
    return float(logsumexp(comp + np.log(w), axis=1).sum())


# ---------------------------------------------------------------------------- transform
def test_spd_transform_roundtrip_and_log_jacobian_numerical():
    D = 3
    rng = np.random.default_rng(3)
    A = rng.normal(size=(D, D))
    S = A @ A.T + np.eye(D)
    y = spd_to_packed(S)
    np.testing.assert_allclose(packed_to_spd(y, D), S, rtol=1e-12)
    tr = SPDTransform(D)
    # the PyTensor transform agrees with the numpy maps both ways
    yy = pt.vector("y")
    back = pytensor.function([yy], tr.backward(yy), mode=FAST)
    np.testing.assert_allclose(back(y), S, rtol=1e-12)
    fwd = pytensor.function([], tr.forward(pt.as_tensor_variable(S)), mode=FAST)
    np.testing.assert_allclose(fwd(), y, rtol=1e-12, atol=1e-14)
    # numerical Jacobian of y -> vech(Sigma), central differences
    r, c = np.tril_indices(D)
    h = 1e-6
    J = np.empty((y.size, y.size))
    for j in range(y.size):
        e = np.zeros(y.size)
        e[j] = h
        J[:, j] = (packed_to_spd(y + e, D)[r, c] - packed_to_spd(y - e, D)[r, c]) / (2 * h)
    numerical = np.linalg.slogdet(J)[1]
    # stated formula: D log 2 + sum_i (D - i + 2) log L_ii, i = 1..D
    diag = y[np.flatnonzero(r == c)]
    formula = D * np.log(2.0) + np.sum((D - np.arange(1, D + 1) + 2) * diag)
    ljd = pytensor.function([yy], tr.log_jac_det(yy), mode=FAST)(y)
    # central differences with h=1e-6 are accurate to ~1e-9 relative here
    assert numerical == pytest.approx(formula, abs=1e-6)
    assert float(ljd) == pytest.approx(formula, rel=1e-12)


# ---------------------------------------------------------------------------- logp
@pytest.mark.parametrize("covariance", COV_TYPES)
def test_gmm_logp_matches_scipy(data, covariance):
    X = data
    K, D = 3, 2
    model = build_gmm(X, K, covariance=covariance)
    prior = model.bayesmix_config.prior
    w, m, c = _point_params(K, D, covariance)
    point = _fwd(model, _values(model, w, m, c))
    lp_nojac, lp_jac, grad = _compiled(model)(**point)
    expected = prior.log_prior(w, m, c, covariance) + _scipy_loglik(X, w, m, c)
    assert float(lp_nojac) == pytest.approx(expected, rel=RTOL)
    assert float(lp_jac) == pytest.approx(expected + _log_jacobian(model, point), rel=RTOL)
    assert np.all(np.isfinite(grad))


def test_gmm_lkj_logp_matches_pymc_and_scipy(data):
    X = data
    K, D = 3, 2
    prior = bm.GMMPrior.from_data(X, K, covariance_prior="lkj")
    model = build_gmm(X, K, prior=prior)
    w, m, c = _point_params(K, D, "full")
    point = _fwd(model, _values(model, w, m, c))
    lp_nojac, lp_jac, grad = _compiled(model)(**point)
    sd = 2.0 * np.sqrt(np.diag(prior.scale) * K ** (2.0 / D))
    r, cc = np.tril_indices(D)
    lkj = 0.0
    for k in range(K):  # PyMC's own (single-vector) LKJCholeskyCov logp as reference
        dist = pm.LKJCholeskyCov.dist(
            eta=prior.lkj_eta, n=D, sd_dist=pm.HalfNormal.dist(sigma=sd), compute_corr=False
        )
        lkj += pm.logp(dist, np.linalg.cholesky(c[k])[r, cc]).eval(mode=FAST)
    expected = (
        stats.dirichlet(np.ones(K)).logpdf(w)
        + lkj
        + stats.norm(prior.mean, np.sqrt(np.diag(prior.scale) / prior.mean_shrinkage))
        .logpdf(m)
        .sum()
        + _scipy_loglik(X, w, m, c)
    )
    assert float(lp_nojac) == pytest.approx(expected, rel=RTOL)
    assert float(lp_jac) == pytest.approx(expected + _log_jacobian(model, point), rel=RTOL)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("covariance", COV_TYPES)
def test_dpgmm_logp_matches_scipy(data, covariance):
    X = data
    T, D = 4, 2
    model = build_dpgmm(X, truncation=T, covariance=covariance)
    prior = model.bayesmix_config.prior
    w, m, c = _point_params(T, D, covariance, seed=2)
    alpha = 1.7
    point = _fwd(model, _values(model, w, m, c, dp=True, concentration=alpha))
    lp_nojac, lp_jac, grad = _compiled(model)(**point)
    rest = 1.0 - np.concatenate([[0.0], np.cumsum(w[:-1])])
    sticks = w[:-1] / rest[:-1]
    shape, rate = prior.dp_concentration
    comp_prior = prior.log_prior(w, m, c, covariance) - stats.dirichlet(
        np.full(T, prior.weight_concentration)
    ).logpdf(w)
    expected = (
        stats.gamma(a=shape, scale=1.0 / rate).logpdf(alpha)
        + stats.beta(1.0, alpha).logpdf(sticks).sum()
        + comp_prior
        + _scipy_loglik(X, w, m, c)
    )
    assert float(lp_nojac) == pytest.approx(expected, rel=RTOL)
    assert float(lp_jac) == pytest.approx(expected + _log_jacobian(model, point), rel=RTOL)
    assert np.all(np.isfinite(grad))


def test_production_graph_logp_and_gradient_at_initial_point(data):
    """The default-mode (numba) graph, with its rewrites, gives the same logp."""
    model = build_gmm(data, 3)
    ip = model.initial_point()
    f = model.compile_logp(jacobian=False)
    lp = float(f(ip))
    w, m, c = _point_params(3, 2, "full")
    point = _fwd(model, _values(model, w, m, c))
    prior = model.bayesmix_config.prior
    expected = prior.log_prior(w, m, c, "full") + _scipy_loglik(data, w, m, c)
    assert float(f(point)) == pytest.approx(expected, rel=RTOL)
    assert np.isfinite(lp)
    assert np.all(np.isfinite(model.compile_dlogp()(ip)))


# ---------------------------------------------------------------------------- structure
def test_model_structure_dims_and_config(data):
    model = build_gmm(data, 3)
    assert set(model.coords) >= {"component", "feature", "feature2", "obs"}
    assert model.named_vars_to_dims["covariances"] == ("component", "feature", "feature2")
    assert model.named_vars_to_dims["means"] == ("component", "feature")
    assert model.named_vars_to_dims["X"] == ("obs", "feature")
    assert [v.name for v in model.observed_RVs] == ["X"]
    assert model.deterministics == []
    cfg = model.bayesmix_config
    assert (cfg.model, cfg.n_components, cfg.covariance) == ("gmm", 3, "full")
    # no per-component loop: the likelihood graph has one logsumexp-able node per model,
    # and the number of free variables does not grow with K
    assert len(build_gmm(data, 5).free_RVs) == len(model.free_RVs) == 3


def test_dpgmm_structure(data):
    model = build_dpgmm(data, truncation=6)
    assert model.named_vars_to_dims["sticks"] == ("stick",)
    assert len(model.coords["stick"]) == 5
    assert len(model.coords["component"]) == 6
    cfg = model.bayesmix_config
    assert cfg.truncation == 6
    # default DP prior: mclust's scale cov(X) / K0^(2/D) at K0 = 2 (Richardson & Green's
    # component sd ~ range / 10 in one dimension), data mean, dof D + 2, kappa0 0.01
    D = data.shape[1]
    expected = np.cov(data, rowvar=False) / 2 ** (2 / D)
    np.testing.assert_allclose(cfg.prior.scale, expected, rtol=1e-6)
    np.testing.assert_allclose(cfg.prior.mean, data.mean(0))
    assert cfg.prior.dof == D + 2 and cfg.prior.mean_shrinkage == 0.01


def test_bad_input_messages(data):
    with pytest.raises(ValueError, match="truncation must be an integer >= 2"):
        build_dpgmm(data, truncation=1)
    with pytest.raises(ValueError, match="larger than the number of observations"):
        build_dpgmm(data, truncation=41)
    with pytest.raises(TypeError, match="truncation must be an integer"):
        build_dpgmm(data, truncation=2.5)
    with pytest.raises(ValueError, match="covariance must be one of"):
        build_gmm(data, 2, covariance="banana")
    with pytest.raises(ValueError, match="prior has 3 features but X has 2"):
        build_gmm(data, 2, prior=bm.GMMPrior.from_data(np.ones((5, 3)) + np.eye(5, 3), 2))
    with pytest.raises(ValueError, match="covariance_prior='lkj' is available for"):
        build_gmm(
            data, 2, covariance="diag", prior=bm.GMMPrior.from_data(data, 2, covariance_prior="lkj")
        )
    with pytest.raises(TypeError, match=r"prior must be a bayesmix\.GMMPrior"):
        build_gmm(data, 2, prior={"dof": 3})
    with pytest.raises(ValueError, match="n_components"):
        build_gmm(data, 0)


# ---------------------------------------------------------------------------- MAP = EM
@pytest.mark.parametrize("covariance", COV_TYPES)
def test_em_map_is_model_mode(data, covariance):
    X = data
    K = 3
    model = build_gmm(X, K, covariance=covariance)
    prior = model.bayesmix_config.prior
    em = bm.fit_em(
        X, K, covariance=covariance, prior=prior, tol=1e-14, max_iter=20000, random_seed=0
    )
    vals = _values(model, em.weights, em.means, em.covariances)
    point = _fwd(model, vals)
    lp_nojac, _, _ = _compiled(model)(**point)
    # EM's log posterior and the model's logp(jacobian=False) are the same function
    assert float(lp_nojac) == pytest.approx(em.log_posterior, rel=1e-10)
    res = pm.find_MAP(
        initvals=vals,
        model=model,
        progressbar=False,
        jitter=False,
        return_inferencedata=True,
        compile_kwargs={"mode": FAST},
    )
    post = res["posterior"]
    for name, v in vals.items():
        v = np.asarray(v)
        found = post[name].transpose("chain", "draw", ...).values[0, 0]
        assert found.shape == v.shape
        moved = np.max(np.abs(found - v)) / np.max(np.abs(v))
        assert moved < 1e-4, (name, moved)
