"""The mixture log-likelihood Op, its numba kernels and the batched post-sampling path.

References: scipy.stats densities, the same expression written in plain PyTensor
(``mixture_loglik_graph``, differentiated by PyTensor), finite differences, and the
numpy reference kernels. All comparisons are float64 sums of a handful of terms per
observation: 1e-10 relative is many orders above rounding and catches any wrong term.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile import mode as pt_mode
from pytensor.graph.fg import FunctionGraph
from scipy import stats

import bayesmix as bm
from bayesmix import _gaussian, _mixture_kernels
from bayesmix._mixture_op import (
    MixtureLogLik,
    mixture_loglik_graph,
    mixture_loglik_op,
)

RTOL = 1e-10


def _params(K, D, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 2.0, size=(37, D))
    w = rng.dirichlet(np.full(K, 2.0))
    m = rng.normal(0.0, 2.0, size=(K, D))
    A = rng.normal(size=(K, D, D))
    cov = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(D)
    P = np.linalg.inv(np.linalg.cholesky(cov))
    return X, w, m, cov, P


def _weighted_densities(X, w, m, cov):
    """(K, N) array of w_k N(x_n | m_k, cov_k) from scipy.stats."""
    rows = [
        wk * stats.multivariate_normal(mk, ck).pdf(X) for wk, mk, ck in zip(w, m, cov, strict=True)
    ]
    return np.stack(rows).reshape(len(w), -1)


def _scipy_loglik(X, w, m, cov):
    return np.log(_weighted_densities(X, w, m, cov).sum(0))


@pytest.mark.parametrize(("K", "D"), [(1, 1), (3, 2), (4, 3)])
def test_kernel_matches_scipy(K, D):
    X, w, m, cov, P = _params(K, D, seed=K * 10 + D)
    ll, resp = _mixture_kernels.loglik_numba(X, np.log(w), m, P)
    np.testing.assert_allclose(ll, _scipy_loglik(X, w, m, cov), rtol=RTOL)
    # responsibilities: columns sum to one and equal w_k N_k / sum
    np.testing.assert_allclose(resp.sum(0), 1.0, rtol=RTOL)
    ref = _weighted_densities(X, w, m, cov)
    np.testing.assert_allclose(resp, ref / ref.sum(0), rtol=1e-9)


@pytest.mark.parametrize(("K", "D"), [(1, 1), (3, 2), (4, 3)])
def test_numba_kernels_match_numpy_reference(K, D):
    X, w, m, _, P = _params(K, D, seed=7 + K + D)
    logw = np.log(w)
    g = np.random.default_rng(3).normal(size=X.shape[0])
    ll_nb, r_nb = _mixture_kernels.loglik_numba(X, logw, m, P)
    ll_np, r_np = _mixture_kernels.loglik_numpy(X, logw, m, P)
    np.testing.assert_allclose(ll_nb, ll_np, rtol=RTOL)
    np.testing.assert_allclose(r_nb, r_np, rtol=RTOL, atol=1e-300)
    for a, b in zip(
        _mixture_kernels.grad_params_numba(X, m, P, r_nb, g),
        _mixture_kernels.grad_params_numpy(X, m, P, r_np, g),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(
        _mixture_kernels.grad_x_numba(X, m, P, r_nb, g),
        _mixture_kernels.grad_x_numpy(X, m, P, r_np, g),
        rtol=RTOL,
        atol=1e-12,
    )


def test_zero_weight_and_far_outlier_stay_finite():
    X, _, m, cov, P = _params(3, 2, seed=5)
    X[0] = [1e4, -1e4]  # thousands of sd away from every component
    with np.errstate(divide="ignore"):
        logw = np.log(np.array([0.0, 0.4, 0.6]))  # an empty (DP-style) component
    ll, resp = _mixture_kernels.loglik_numba(X, logw, m, P)
    assert np.all(np.isfinite(ll))
    assert np.all(resp[0] == 0.0)
    np.testing.assert_allclose(resp.sum(0), 1.0, rtol=RTOL)
    ref = _scipy_loglik(X[1:], np.array([0.0, 0.4, 0.6]), m, cov)
    np.testing.assert_allclose(ll[1:], ref, rtol=RTOL)
    grads = _mixture_kernels.grad_params_numba(X, m, P, resp, np.ones(len(X)))
    assert all(np.all(np.isfinite(gr)) for gr in grads)


def _compiled(fn, mode):
    xs = [pt.matrix("X"), pt.vector("lw"), pt.matrix("m"), pt.tensor3("P")]
    g = pt.vector("g")
    ll = fn(*xs)
    grads = pytensor.grad(pt.sum(ll * g), xs)
    return pytensor.function([*xs, g], [ll, *grads], mode=mode)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_op_value_and_gradient_match_pytensor_autodiff(mode):
    """Numba backend (kernels) and Python backend (numpy perform) against autodiff."""
    X, w, m, _, P = _params(3, 3, seed=11)
    g = np.random.default_rng(0).normal(size=X.shape[0])  # a general upstream gradient
    args = (X, np.log(w), m, P, g)
    got = _compiled(mixture_loglik_op, mode)(*args)
    ref = _compiled(mixture_loglik_graph, "FAST_COMPILE")(*args)
    names = ["loglik", "dX", "dlogw", "dmeans", "dP"]
    for name, a, b in zip(names, got, ref, strict=True):
        if name == "dP":  # only the lower triangle is an input of the density
            a, b = np.tril(a), np.tril(b)
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12, err_msg=name)


def test_op_gradient_matches_finite_differences():
    X, w, m, _, P = _params(2, 2, seed=2)
    rng = np.random.default_rng(4)
    pytensor.gradient.verify_grad(
        lambda lw, mm, pp: mixture_loglik_op(X, lw, mm, pp),
        [np.log(w), m, np.tril(P)],
        rng=rng,
        mode="FAST_COMPILE",
    )


def test_model_gradient_uses_the_kernels_not_autodiff():
    """The compiled model graph holds the Op and its gradient Op, and no (K, N, D) graph."""
    X = bm.load_old_faithful()
    model = bm.build_gmm(X, 2)
    fn = model.logp_dlogp_function(ravel_inputs=True)
    ops = {type(node.op).__name__ for node in fn._pytensor_function.maker.fgraph.apply_nodes}
    assert {"MixtureLogLik", "MixtureLogLikGradParams"} <= ops
    assert "MixtureLogLikGradX" not in ops  # the data gradient is pruned


def test_jax_rewrite_expands_the_op_to_plain_pytensor():
    """JAX samplers (numpyro, blackjax) get the plain-PyTensor expression."""
    X, w, m, _, P = _params(3, 2, seed=9)
    xs = [pt.matrix("X"), pt.vector("lw"), pt.matrix("m"), pt.tensor3("P")]
    out = pt.sum(mixture_loglik_op(*xs))
    fg = FunctionGraph(xs, [out], clone=True)
    pt_mode.JAX.optimizer.rewrite(fg)
    assert not any(isinstance(n.op, MixtureLogLik) for n in fg.apply_nodes)
    f = pytensor.function(fg.inputs, fg.outputs, mode="FAST_COMPILE")
    (val,) = f(X, np.log(w), m, P)
    np.testing.assert_allclose(val, _mixture_kernels.loglik_numpy(X, np.log(w), m, P)[0].sum())


def test_batched_post_sampling_path_matches_single_draw_numpy():
    """_gaussian's numba path over draws equals its numpy path draw by draw."""
    rng = np.random.default_rng(8)
    S, K, D = 5, 3, 2
    X = rng.normal(size=(50, D))
    w = rng.dirichlet(np.ones(K), size=S)
    m = rng.normal(size=(S, K, D))
    A = rng.normal(size=(S, K, D, D))
    c = A @ np.swapaxes(A, -1, -2) + np.eye(D)
    ll = _gaussian.log_mixture_density(X, w, m, c)
    resp = _gaussian.responsibilities(X, w, m, c)
    assert ll.shape == (S, 50) and resp.shape == (S, 50, K)
    for s in range(S):
        np.testing.assert_allclose(ll[s], _gaussian.log_mixture_density(X, w[s], m[s], c[s]))
        np.testing.assert_allclose(resp[s], _gaussian.responsibilities(X, w[s], m[s], c[s]))
        np.testing.assert_allclose(ll[s], _scipy_loglik(X, w[s], m[s], c[s]), rtol=RTOL)


def test_compiled_graph_does_not_depend_on_the_data():
    """Two data sets of different sizes give the same numba cache key: one compile serves
    both (the data and the data-derived prior numbers are shared variables)."""
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

    X1, _ = bm.simulate(60, [0.5, 0.5], [[0, 0], [4, 4]], [np.eye(2)] * 2, random_seed=1)
    X2, _ = bm.simulate(85, [0.5, 0.5], [[1, 0], [9, 4]], [2 * np.eye(2)] * 2, random_seed=2)
    keys = []
    for X in (X1, X2):
        fn = bm.build_gmm(X, 2).logp_dlogp_function(ravel_inputs=True)
        fgraph = fn._pytensor_function.maker.fgraph
        big = [c for c in fgraph.variables if isinstance(c, pt.TensorConstant) and c.data.size > 4]
        assert not big, [c.data.shape for c in big]
        keys.append(numba_funcify_and_cache_key(fgraph)[1])
    assert keys[0] is not None
    assert keys[0] == keys[1]
