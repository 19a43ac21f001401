"""The Gaussian-density layer (bayesmix.core._gaussian) and its numba backend.

References: np.linalg.inv / cholesky, scipy.stats.multivariate_normal, and the numpy
backend for the numba one. Tolerances: float64 sums of a handful of terms per
observation, so 1e-10 relative is far above rounding and catches any wrong term; the
E-step sums over 3000 rows, in a different order in the two backends (chunked parallel
accumulators against BLAS products), hence 1e-9 there.
"""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import bayesmix
from bayesmix.core import _covariance as cv
from bayesmix.core import _gaussian as gs
from bayesmix.core import _mixture_kernels

TYPES = ["full", "tied", "diag", "spherical"]


def _spd(rng, *shape, D):
    A = rng.normal(size=(*shape, D, D))
    return A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(D)


def test_one_log_2pi_in_the_package():
    """log(2 pi) is written once (the leaf _constants); every other module imports it."""
    pkg = Path(bayesmix.__file__).parent
    found = []
    for path in sorted(pkg.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node).replace(" ", "") in (
                "np.log(2.0*np.pi)",
                "np.log(2*np.pi)",
            ):
                found.append(path.relative_to(pkg).as_posix())
    assert found == ["core/_constants.py"]
    assert _mixture_kernels.LOG_2PI is gs.LOG_2PI
    assert gs.LOG_2PI == pytest.approx(np.log(2 * np.pi), rel=1e-16)


def test_density_layer_imports_no_numba():
    code = "import sys, bayesmix.core._gaussian; assert 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("shape", [(3,), (2, 4), ()])
@pytest.mark.parametrize("D", [1, 2, 4])
def test_tri_inv_matches_inverse_reads_lower_only(shape, D):
    rng = np.random.default_rng(D)
    L = np.linalg.cholesky(_spd(rng, *shape, D=D))
    noisy = L + np.triu(np.full((D, D), 7.0), k=1)  # the upper triangle is never read
    P = gs.tri_inv(noisy)
    np.testing.assert_allclose(P, np.linalg.inv(L), rtol=1e-12, atol=1e-14)
    assert np.all(np.triu(P, k=1) == 0.0)


def test_precision_cholesky_is_sklearn_convention():
    rng = np.random.default_rng(1)
    S = _spd(rng, 2, 3, D=3)
    P = gs.precision_cholesky(S)
    np.testing.assert_allclose(P @ np.swapaxes(P, -1, -2), np.linalg.inv(S), rtol=1e-10)
    assert np.all(np.tril(P, k=-1) == 0.0)  # upper triangular
    lower = gs.kernel_layout(P)
    assert lower.flags.c_contiguous and np.all(np.triu(lower, k=1) == 0.0)
    np.testing.assert_array_equal(lower, gs.tri_inv(np.linalg.cholesky(S)))


def test_one_singular_error_type_with_the_fixes():
    assert issubclass(gs.SingularCovarianceError, ValueError)
    assert cv.SingularCovarianceError is gs.SingularCovarianceError
    bad = np.zeros((2, 2, 2))
    calls = [
        lambda: gs.cholesky_or_raise(bad, name="sigma"),
        lambda: gs.log_component_densities(np.zeros((3, 2)), np.zeros((2, 2)), bad),
        lambda: gs.log_mixture_density(np.zeros((3, 2)), [0.5, 0.5], np.zeros((2, 2)), bad),
        lambda: gs.cholesky_or_raise(np.full((2, 2), np.nan)),
    ] + [(lambda c=c: gs.PRECISION_CHOLESKY[c](cv.FROM_FULL[c](bad), 0.0)) for c in TYPES]
    for call in calls:
        with pytest.raises(gs.SingularCovarianceError) as info:
            call()
        msg = str(info.value)
        for fix in (
            "Decrease the number of components K",
            "increase reg_covar",
            "standardise",
            "prior",
        ):
            assert fix in msg, msg
    with pytest.raises(gs.SingularCovarianceError, match=r"^sigma contains"):
        gs.cholesky_or_raise(bad, name="sigma")


def test_backend_selection():
    assert gs.backend("numpy").name == "numpy"
    nb = gs.backend("numba")
    assert nb.name == "numba" and isinstance(nb, gs.GaussianDensity)
    with pytest.raises(ValueError, match="engine must be"):
        gs.backend("jax")


@pytest.mark.parametrize("covariance", TYPES)
def test_numba_estep_matches_numpy_estep(covariance):
    rng = np.random.default_rng(2)
    N, D, K = 3000, 3, 4
    X = np.ascontiguousarray(rng.normal(size=(N, D)) + rng.integers(0, 3, size=(N, 1)))
    resp = rng.dirichlet(np.ones(K), size=N)
    nk, sx, sxx = resp.sum(0), resp.T @ X, cv.SECOND_MOMENTS[covariance](X, resp)
    w, m = cv.m_step_weights_means(nk, sx, N, None)
    cov = cv.M_STEP[covariance](nk, sx, sxx, N, 1e-6, None)
    P = cv.PRECISION_CHOLESKY[covariance](cov)
    lab_np, lab_nb = np.empty(N, np.int64), np.empty(N, np.int64)
    a = gs.backend("numpy").estep(X, covariance, w, m, P, lab_np)
    b = gs.backend("numba").estep(X, covariance, w, m, P, lab_nb)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9)
    np.testing.assert_array_equal(lab_np, lab_nb)
    # and the log-likelihood is scipy's
    full = cv.TO_FULL[covariance](cov, K, D)
    ref = np.log(sum(w[k] * stats.multivariate_normal(m[k], full[k]).pdf(X) for k in range(K)))
    np.testing.assert_allclose(a[0], ref.sum(), rtol=1e-10)


@pytest.mark.parametrize("want_resp", [False, True])
def test_numba_mixture_draws_match_numpy(want_resp):
    rng = np.random.default_rng(3)
    S, N, K, D = 4, 40, 3, 2
    X = rng.normal(size=(N, D))
    w = rng.dirichlet(np.ones(K), size=S)
    w[0, 1] = 0.0  # an empty component (DP stick): weight 0 is allowed
    w[0] /= w[0].sum()
    m = rng.normal(size=(S, K, D))
    P = gs.precision_cholesky(_spd(rng, S, K, D=D))
    a = gs.backend("numpy").mixture_draws(X, w, m, P, want_resp)
    b = gs.backend("numba").mixture_draws(X, w, m, P, want_resp)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-300)


def test_batched_log_component_densities_match_scipy():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(20, 2))
    m = rng.normal(size=(2, 3, 3, 2))
    c = _spd(rng, 2, 3, 3, D=2)
    out = gs.log_component_densities(X, m, c)
    assert out.shape == (2, 3, 20, 3)
    for idx in np.ndindex(2, 3, 3):
        ref = stats.multivariate_normal(m[idx], c[idx]).logpdf(X)
        np.testing.assert_allclose(out[idx[:2]][:, idx[2]], ref, rtol=1e-12)


def test_op_numpy_reference_is_the_layer():
    """The Op's numpy reference (lower factors, upper triangle ignored) equals the layer."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 3))
    w = rng.dirichlet(np.ones(2))
    m = rng.normal(size=(2, 3))
    c = _spd(rng, 2, D=3)
    lower = gs.kernel_layout(gs.precision_cholesky(c)) + np.triu(np.ones((3, 3)), k=1)
    from bayesmix.mcmc._op import loglik_numpy

    ll, resp = loglik_numpy(X, np.log(w), m, lower)
    np.testing.assert_allclose(ll, gs.log_mixture_density(X, w, m, c), rtol=1e-12)
    np.testing.assert_allclose(resp.T, gs.responsibilities(X, w, m, c), rtol=1e-12)
