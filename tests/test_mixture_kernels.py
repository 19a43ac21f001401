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
from bayesmix.core import _gaussian, _mixture_kernels
from bayesmix.mcmc import _op as _mixture_op
from bayesmix.mcmc._op import (
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
    ll_np, r_np = _mixture_op.loglik_numpy(X, logw, m, P)
    np.testing.assert_allclose(ll_nb, ll_np, rtol=RTOL)
    np.testing.assert_allclose(r_nb, r_np, rtol=RTOL, atol=1e-300)
    for a, b in zip(
        _mixture_kernels.grad_params_numba(X, m, P, r_nb, g),
        _mixture_op.grad_params_numpy(X, m, P, r_np, g),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(
        _mixture_kernels.grad_x_numba(X, m, P, r_nb, g),
        _mixture_op.grad_x_numpy(X, m, P, r_np, g),
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
    want = _mixture_op.loglik_numpy(X, np.log(w), m, P)[0].sum()
    import importlib.util

    if importlib.util.find_spec("jax") is not None:
        # with JAX installed its rewrites leave JAX-only ops: run the graph through JAX
        f = pytensor.function(xs, out, mode="JAX")
    else:
        f = pytensor.function(fg.inputs, fg.outputs, mode="FAST_COMPILE")
    val = np.asarray(f(X, np.log(w), m, P)).reshape(())
    np.testing.assert_allclose(val, want)


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


# ---------------------------------------------------------------------------- TriInv
def _lower(B, D, seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(B, D, D))
    cov = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(D)
    return np.linalg.cholesky(cov)


@pytest.mark.parametrize("D", [1, 2, 4])
def test_tri_inv_kernels_match_linalg_inverse(D):
    L = _lower(5, D, seed=D)
    L_noisy = L + np.triu(np.full((D, D), 7.0), k=1)  # the upper triangle is never read
    for fn in (_mixture_kernels.tri_inv_numba, _mixture_op.tri_inv_numpy):
        P = fn(L_noisy)
        np.testing.assert_allclose(P, np.linalg.inv(L), rtol=1e-12, atol=1e-14)
        assert np.all(np.triu(P, k=1) == 0.0)


@pytest.mark.parametrize("mode", ["NUMBA", pt_mode.Mode(linker="py", optimizer="fast_compile")])
def test_tri_inv_op_value_and_gradient_match_pytensor_solve(mode):
    """Value and pullback (general upstream gradient) against PyTensor's own batched
    triangular solve differentiated by PyTensor, on the numba and the Python backend."""
    from pytensor.tensor.linalg import solve_triangular

    from bayesmix.mcmc._op import tri_inv

    B, D = 3, 3
    L0 = _lower(B, D, seed=11)
    W = np.random.default_rng(12).normal(size=(B, D, D))  # upstream gradient weights
    mask = np.tril(np.ones((D, D)))
    y = pt.tensor3("L")
    Lt = y * mask  # gradients w.r.t. the lower triangle only, as both Ops read it
    ours = pt.sum(W * tri_inv(Lt))
    ref = pt.sum(W * solve_triangular(Lt, pt.broadcast_to(pt.eye(D), Lt.shape), lower=True))
    f = pytensor.function([y], [ours, pytensor.grad(ours, y)], mode=mode)
    r = pytensor.function([y], [ref, pytensor.grad(ref, y)], mode="FAST_COMPILE")
    (v, g), (v_ref, g_ref) = f(L0), r(L0)
    np.testing.assert_allclose(v, v_ref, rtol=RTOL)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-12)
    # 2-D input (one matrix)
    m = pt.matrix("M")
    one = pytensor.function([m], tri_inv(m), mode=mode)
    np.testing.assert_allclose(one(L0[0]), np.linalg.inv(L0[0]), rtol=1e-12, atol=1e-14)


def test_jax_rewrite_expands_tri_inv():
    from bayesmix.mcmc._op import TriInv, tri_inv

    L0 = _lower(2, 3, seed=4)
    y = pt.tensor3("L")
    fg = FunctionGraph([y], [tri_inv(y)], clone=True)
    pt_mode.JAX.optimizer.rewrite(fg)
    assert not any(isinstance(n.op, TriInv) for n in fg.apply_nodes)
    f = pytensor.function(fg.inputs, fg.outputs, mode="FAST_COMPILE")
    np.testing.assert_allclose(f(L0)[0], np.linalg.inv(L0), rtol=1e-12, atol=1e-14)


def test_mvnormal_prec_chol_density_and_draws():
    from bayesmix.mcmc._pt_dists import mvnormal_prec_chol_logp, mvnormal_prec_chol_random

    K, D, kappa = 3, 2, 0.3
    L = _lower(K, D, seed=5)
    P = np.linalg.inv(L)
    mu = np.array([1.0, -2.0])
    x = np.random.default_rng(6).normal(size=(K, D))
    lp = mvnormal_prec_chol_logp(
        pt.as_tensor(x), pt.as_tensor(mu), pt.as_tensor(P), pt.as_tensor(kappa)
    ).eval(mode="FAST_COMPILE")
    cov = L @ np.swapaxes(L, 1, 2) / kappa
    expected = [stats.multivariate_normal(mu, cov[k]).logpdf(x[k]) for k in range(K)]
    np.testing.assert_allclose(lp, expected, rtol=RTOL)
    draws = mvnormal_prec_chol_random(mu, P, kappa, rng=7, size=(20000, K))
    assert draws.shape == (20000, K, D)
    # 20000 draws: the sample mean's sd is sqrt(var / 2e4) < 0.03 sd; 5 sd tolerance
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    assert np.all(np.abs(draws.mean(0) - mu) < 5 * sd / np.sqrt(20000))
    # sample covariance: sd of each entry <= sqrt(2 / 2e4) sd_i sd_j = 1%; 5% tolerance
    for k in range(K):
        tol = 0.05 * np.outer(sd[k], sd[k])
        assert np.all(np.abs(np.cov(draws[:, k].T) - cov[k]) < tol)


def test_vectorised_exp_within_two_ulp_of_libm():
    """_exp_nonpos (the likelihood kernel's exponential) against numpy's exp."""
    rng = np.random.default_rng(13)
    d = np.concatenate(
        [
            -rng.exponential(30.0, size=20000),
            -rng.uniform(0, 1e-6, size=1000),
            np.linspace(-707.999, 0.0, 5001),
            [0.0, -0.0, -1e-300, -np.log(2) / 2, -np.log(2) / 2 - 1e-16],
        ]
    )
    out, t_buf = np.empty_like(d), np.empty_like(d)
    _mixture_kernels._exp_nonpos(d, out, t_buf)
    ref = np.exp(d)
    # compiled on its own: within 1 ulp (measured 0.99). numba may also serve a build
    # made under PyTensor's fast-math flags (seen once from the shared on-disk cache),
    # where reassociation folds the two-constant log(2) reduction into the double
    # nearest log 2 (off by 2.32e-17): r then carries |t| x 2.32e-17 of error
    # (t = d / log 2), up to 2.4e-14 relative at d = -708 (measured 104.5 ulp at
    # d = -687.6, t = -992), plus a few ulp of reordered rounding. Bound: 4 ulp +
    # |t| x 3e-17 relative -- far below anything a log density feels
    tol = 4.0 * np.spacing(ref) + ref * np.abs(d) / np.log(2.0) * 3e-17
    assert np.all(np.abs(out - ref) <= tol)
    assert out[d == 0.0].tolist() == [1.0] * int((d == 0.0).sum())  # the best component
    # below -708 (300 nats below the best component) exactly 0; -inf -> 0; NaN -> NaN
    edge = np.array([-708.5, -1e4, -np.inf, np.nan])
    out, t_buf = np.empty(4), np.empty(4)
    _mixture_kernels._exp_nonpos(edge, out, t_buf)
    assert out[:3].tolist() == [0.0, 0.0, 0.0] and np.isnan(out[3])


# ---------------------------------------------------------------------------- LowerLLT
@pytest.mark.parametrize("mode", ["NUMBA", pt_mode.Mode(linker="py", optimizer="fast_compile")])
def test_lower_llt_value_and_gradient_match_matmul(mode):
    from bayesmix.mcmc._op import lower_llt

    B, D = 3, 3
    L0 = _lower(B, D, seed=21)
    W = np.random.default_rng(22).normal(size=(B, D, D))
    mask = np.tril(np.ones((D, D)))
    y = pt.tensor3("L")
    Lt = y * mask
    ours = pt.sum(W * lower_llt(Lt))
    ref = pt.sum(W * pt.matmul(Lt, Lt.mT))
    f = pytensor.function([y], [ours, pytensor.grad(ours, y)], mode=mode)
    r = pytensor.function([y], [ref, pytensor.grad(ref, y)], mode="FAST_COMPILE")
    (v, g), (v_ref, g_ref) = f(L0), r(L0)
    np.testing.assert_allclose(v, v_ref, rtol=RTOL)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-12)
    # any batch rank, upper triangle ignored
    noisy = L0[None] + np.triu(np.full((D, D), 5.0), k=1)
    out = pytensor.function([z := pt.tensor4("Z")], lower_llt(z), mode=mode)(noisy)
    np.testing.assert_allclose(out[0], L0 @ np.swapaxes(L0, 1, 2), rtol=1e-12)


def test_cholesky_of_lower_llt_rewrites_to_the_tagged_factor_only():
    from pytensor.graph.rewriting.utils import rewrite_graph

    from bayesmix.mcmc._op import LowerLLT, lower_llt

    y = pt.tensor3("L")
    L_tagged = y * np.tril(np.ones((2, 2)))
    L_tagged.tag.bayesmix_cholesky_factor = True
    out = rewrite_graph(pt.linalg.cholesky(lower_llt(L_tagged)), include=("canonicalize",))
    ops = {
        type(getattr(n.op, "core_op", n.op)).__name__ for n in FunctionGraph([y], [out]).apply_nodes
    }
    assert "Cholesky" not in ops and "LowerLLT" not in ops
    # untagged (a negative diagonal would make cholesky(L L^T) != L): left alone
    out = rewrite_graph(pt.linalg.cholesky(lower_llt(y)), include=("canonicalize",))
    fg = FunctionGraph([y], [out])
    assert any(isinstance(n.op, LowerLLT) for n in fg.apply_nodes)
    L0 = _lower(2, 2, seed=3) * np.array([1.0, -1.0])[None, :, None]  # row 2 negated
    f = pytensor.function([y], out, mode="FAST_COMPILE")
    np.testing.assert_allclose(f(L0), np.linalg.cholesky(L0 @ np.swapaxes(L0, 1, 2)))


def test_model_graphs_have_no_batched_linear_algebra():
    """The compiled log density + gradient and PyMC's trace function of a full-covariance
    model contain none of the nodes whose numba code looks up BLAS/LAPACK in object
    mode at every process start (see _mixture_op.TriInv / LowerLLT)."""
    X, _ = bm.simulate(40, [0.5, 0.5], [[0, 0], [5, 5]], [np.eye(2), np.eye(2)], random_seed=1)
    model = bm.build_gmm(X, 2)
    fn = model.logp_dlogp_function(ravel_inputs=True)
    trace_fn = model.compile_fn(
        outs=model.unobserved_value_vars, inputs=model.value_vars, on_unused_input="ignore"
    )
    for fgraph in (fn._pytensor_function.maker.fgraph, trace_fn.f.maker.fgraph):
        names = {type(n.op).__name__ for n in fgraph.apply_nodes}
        assert not names & {"Blockwise", "BatchedDot", "Dot", "Cholesky", "SolveTriangular"}, names


def test_zero_diagonal_gives_inf_not_zero_division():
    """A covariance factor whose diagonal underflowed to 0 (a wandering component during
    sampling) must give inf, which NUTS records as a divergence; a ZeroDivisionError
    would end pm.sample (seen in select_k's K=5 fit before error_model="numpy")."""
    from bayesmix.core._mixture_kernels import tri_inv_numba

    L = np.array([[[1.0, 0.0], [0.5, 0.0]]])
    with np.errstate(divide="ignore", invalid="ignore"):
        P = tri_inv_numba(L)
    assert P[0, 0, 0] == 1.0 and np.isinf(P[0, 1, 1])
