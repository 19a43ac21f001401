r"""The blocked conjugate Gibbs sampler of finite, full-covariance mixtures in JAX.

An optional path for accelerators (``pip install bayesmix[jax]``): the posterior of
``bm.sample(bm.build_gmm(X, K), sampler="gibbs")`` (:mod:`bayesmix.mcmc._gibbs`, numba,
CPU) for a finite mixture with the full covariance and the conjugate prior, by the
numba sampler's *blocked* sweep (the one it runs for N > ``FINITE_COLLAPSED_MAX_N`` =
5000; below that it runs collapsed sweeps and split-merge moves, which mix better on
small data but are sequential over observations), written as array programs that run
on JAX's default backend (CPU, GPU or TPU). JAX is imported when
:func:`sample_gibbs_jax` is called, never when bayesmix is imported.

One sweep (per chain; the chains are ``jax.vmap``-ed, the sweeps a ``jax.lax.scan``):

1. **Allocations** :math:`z_n \mid \pi, \mu, \Sigma`: the (n, K) log joint densities
   :math:`\log\pi_k + \log N(x_n \mid \mu_k, \Sigma_k)` from the Cholesky factors
   (triangular inverses :math:`L_k^{-1}`, one matmul per row chunk), then
   :math:`z_n = \arg\max_k (\ell_{nk} + g_{nk})` with Gumbel noise :math:`g_{nk}`
   (the Gumbel-max trick: an exact categorical draw).
2. **Sufficient statistics** counts :math:`N_k`, sums :math:`s_k` and raw second
   moments :math:`R_k = \sum_{z_n = k} x_n x_n^T` as one-hot matmuls, accumulated
   over chunks of rows by a ``lax.scan``, so the working memory is
   (chunk, K, D), never (n, K, D, D).
3. **Weights** :math:`\log\pi \sim \log\mathrm{Dirichlet}(\alpha + N_k)` from
   ``jax.random.loggamma`` (exact for tiny concentrations, as the numba sampler's).
4. **Components** from the normal-inverse-Wishart conditional (prior mean 0 in the
   centred coordinates :math:`x - m_0`): :math:`\kappa_n = \kappa_0 + N_k`,
   :math:`\nu_n = \nu_0 + N_k`, :math:`\Psi_n = \Psi_0 + R_k - s_k s_k^T/\kappa_n`
   (the same as :math:`\Psi_0 + S_k + \frac{\kappa_0 N_k}{\kappa_n}\bar x_k \bar
   x_k^T` with the within-component scatter :math:`S_k`, and :math:`\Psi_0` when the
   component is empty); :math:`\Sigma_k^{-1} \sim \mathrm{Wishart}(\nu_n,
   \Psi_n^{-1})` by Bartlett's decomposition, :math:`\mu_k \sim N(s_k/\kappa_n,
   \Sigma_k/\kappa_n)`.

The chains start at the EM fit, as the numba sampler's do. The arithmetic is float64:
:func:`sample_gibbs_jax` sets ``jax.config.update("jax_enable_x64", True)``, a
process-wide JAX setting that stays on after the call. The random numbers come from
JAX's counter-based generator (``jax.random``), so the draws differ from the numba
sampler's for the same seed; the posterior is the same (``tests/test_jax_gibbs.py``).

Only the finite mixture with ``covariance="full"`` and the conjugate prior is
implemented; anything else raises :class:`NotImplementedError`.
"""

from __future__ import annotations

import math
import numbers
import time

import numpy as np
import xarray as xr

__all__ = ["sample_gibbs_jax"]

#: rows per chunk are chosen so that one chunk's (chunk, K, D) block has about this many
#: float64 entries (32 MiB per chain)
CHUNK_ENTRIES = 2**22
_LOG2PI = math.log(2.0 * math.pi)


def _jax():
    try:
        import jax
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "sample_gibbs_jax needs JAX, which is not installed; install it with "
            "`pip install bayesmix[jax]` (or `pip install jax`; see JAX's documentation "
            "for the GPU wheels)."
        ) from err
    jax.config.update("jax_enable_x64", True)
    return jax


def chunk_rows(n, K, D):
    """Rows per chunk of the allocation step: (chunk, K, D) about ``CHUNK_ENTRIES``."""
    return int(min(n, max(256, CHUNK_ENTRIES // (K * D))))


# ---------------------------------------------------------------------------- building blocks
def niw_posterior(counts, sums, second, k0, nu0, Psi0):
    r"""Normal-inverse-Wishart posterior parameters from the raw statistics (prior mean 0).

    Parameters
    ----------
    counts : array, shape (K,)
    sums : array, shape (K, D)
        :math:`s_k = \sum_{z_n = k} x_n` of the centred data.
    second : array, shape (K, D, D)
        :math:`R_k = \sum_{z_n = k} x_n x_n^T`.
    k0, nu0 : float
    Psi0 : array, shape (D, D)

    Returns
    -------
    kappa, nu : array, shape (K,)
    mean : array, shape (K, D)
        :math:`s_k / \kappa_k`.
    Psi : array, shape (K, D, D)
        :math:`\Psi_0 + R_k - s_k s_k^T / \kappa_k`.

    Examples
    --------
    >>> import numpy as np
    >>> kn, nun, mn, Psin = niw_posterior(np.array([0.0]), np.zeros((1, 2)),
    ...                                   np.zeros((1, 2, 2)), 0.1, 5.0, np.eye(2))
    >>> float(kn[0]), float(nun[0]), bool(np.allclose(Psin[0], np.eye(2)))
    (0.1, 5.0, True)
    """
    xp = _namespace(sums)
    kn = k0 + counts
    nun = nu0 + counts
    mn = sums / kn[:, None]
    Psin = Psi0 + second - sums[:, :, None] * mn[:, None, :]
    Psin = 0.5 * (Psin + xp.swapaxes(Psin, -1, -2))
    return kn, nun, mn, Psin


def _namespace(a):
    if isinstance(a, np.ndarray):
        return np
    import jax.numpy as jnp

    return jnp


def inv_wishart_bartlett(key, dof, scale):
    r"""Inverse-Wishart draws (batched) by Bartlett's decomposition, in JAX.

    :math:`\Sigma^{-1} = U^{-T} A A^T U^{-1} \sim \mathrm{Wishart}(\nu, \Psi^{-1})`
    with :math:`\Psi = U U^T` and :math:`A` lower triangular, :math:`A_{ii} =
    \sqrt{\chi^2_{\nu - i}}`, :math:`A_{ij} \sim N(0, 1)` below the diagonal; so
    :math:`\Sigma = T T^T`, :math:`T = U A^{-T}`.

    Parameters
    ----------
    key : jax.random key
    dof : array, shape (K,)
        Each > D - 1.
    scale : array, shape (K, D, D)
        SPD scale matrices :math:`\Psi_k`.

    Returns
    -------
    cov : array, shape (K, D, D)
        :math:`\Sigma_k \sim \mathrm{InvWishart}(\nu_k, \Psi_k)`, mean
        :math:`\Psi_k / (\nu_k - D - 1)`.

    Examples
    --------
    >>> import numpy as np
    >>> jax = _jax()
    >>> cov = inv_wishart_bartlett(jax.random.key(0), np.array([5.0]), np.eye(2)[None])
    >>> cov.shape, bool(np.allclose(cov, np.swapaxes(cov, -1, -2)))
    ((1, 2, 2), True)
    """
    jax = _jax()
    jnp = jax.numpy
    K, D = scale.shape[0], scale.shape[-1]
    k_norm, k_chi = jax.random.split(key)
    U = jnp.linalg.cholesky(scale)
    below = jnp.tril(jax.random.normal(k_norm, (K, D, D)), -1)
    # chi2(nu - i) = 2 Gamma((nu - i) / 2)
    chi2 = 2.0 * jax.random.gamma(k_chi, (dof[:, None] - jnp.arange(D)[None, :]) / 2.0)
    A = below + jnp.sqrt(chi2)[:, :, None] * jnp.eye(D)
    eye = jnp.broadcast_to(jnp.eye(D), (K, D, D))
    Ainv = jax.scipy.linalg.solve_triangular(A, eye, lower=True)
    T = U @ jnp.swapaxes(Ainv, -1, -2)
    cov = T @ jnp.swapaxes(T, -1, -2)
    return 0.5 * (cov + jnp.swapaxes(cov, -1, -2))


def allocate(key, Xp, mask, log_w, means, chol):
    """Allocations and their statistics, a ``lax.scan`` over chunks of rows.

    Parameters
    ----------
    key : jax.random key
    Xp : array, shape (n_chunks, chunk, D)
        The centred data, padded with rows of zeros to whole chunks.
    mask : array, shape (n_chunks, chunk)
        1 for a data row, 0 for padding (padding counts in no statistic).
    log_w : array, shape (K,)
    means : array, shape (K, D)
    chol : array, shape (K, D, D)
        Lower Cholesky factors of the covariances.

    Returns
    -------
    z : array of int32, shape (n_chunks, chunk)
        :math:`z_n \\sim` Categorical(responsibilities), by the Gumbel-max trick.
    counts : array, shape (K,)
    sums : array, shape (K, D)
    second : array, shape (K, D, D)
        :math:`\\sum_{z_n = k} x_n x_n^T`.

    Examples
    --------
    >>> import numpy as np
    >>> jax = _jax()
    >>> Xp = np.array([[[-3.0], [3.0]]]); mask = np.ones((1, 2))
    >>> z, counts, sums, second = allocate(jax.random.key(0), Xp, mask, np.log([0.5, 0.5]),
    ...                                    np.array([[-3.0], [3.0]]), np.ones((2, 1, 1)))
    >>> z.tolist(), counts.tolist()
    ([[0, 1]], [1.0, 1.0])
    """
    jax = _jax()
    jnp = jax.numpy
    n_chunks, chunk, D = Xp.shape
    K = log_w.shape[0]
    eye = jnp.broadcast_to(jnp.eye(D), (K, D, D))
    prec = jax.scipy.linalg.solve_triangular(chol, eye, lower=True)  # L_k^{-1}
    shift = jnp.einsum("kde,ke->kd", prec, means)
    const = log_w - jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)).sum(1) - 0.5 * D * _LOG2PI

    def body(carry, inp):
        xc, mk, kk = inp
        # y_nkd = (L_k^{-1} (x_n - mu_k))_d, one (chunk, D) @ (D, K D) matmul
        y = (xc @ prec.reshape(K * D, D).T).reshape(chunk, K, D) - shift[None]
        lj = const - 0.5 * (y * y).sum(-1)  # (chunk, K)
        z = jnp.argmax(lj + jax.random.gumbel(kk, lj.shape, dtype=lj.dtype), axis=1)
        oh = jax.nn.one_hot(z, K, dtype=xc.dtype) * mk[:, None]  # padding rows: 0
        counts, sums, second = carry
        # R_k = sum_n oh_nk x_n x_n^T as one (K D, chunk) @ (chunk, D) matmul
        ohx = (oh[:, :, None] * xc[:, None, :]).reshape(chunk, K * D)
        carry = (counts + oh.sum(0), sums + oh.T @ xc, second + (ohx.T @ xc).reshape(K, D, D))
        return carry, z.astype(jnp.int32)

    zero = (jnp.zeros(K), jnp.zeros((K, D)), jnp.zeros((K, D, D)))
    keys = jax.random.split(key, n_chunks)
    (counts, sums, second), z = jax.lax.scan(body, zero, (Xp, mask, keys))
    return z, counts, sums, second


# ---------------------------------------------------------------------------- the sampler
def _build_run(n, D, K, draws, tune, store_z, k0, nu0, alpha):
    """The jitted function (key, state, Xp, mask, Psi0) -> draws of every chain."""
    jax = _jax()
    jnp = jax.numpy
    lax = jax.lax

    def sweep(state, key, Xp, mask, Psi0):
        log_w, means, chol = state
        k_z, k_w, k_cov, k_mu = jax.random.split(key, 4)
        z, counts, sums, second = allocate(k_z, Xp, mask, log_w, means, chol)
        lg = jax.random.loggamma(k_w, alpha + counts)
        log_w = lg - jax.scipy.special.logsumexp(lg)
        kn, nun, mn, Psin = niw_posterior(counts, sums, second, k0, nu0, Psi0)
        cov = inv_wishart_bartlett(k_cov, nun, Psin)
        chol = jnp.linalg.cholesky(cov)
        eps = jax.random.normal(k_mu, (K, D))
        means = mn + jnp.einsum("kde,ke->kd", chol, eps) / jnp.sqrt(kn)[:, None]
        out = {
            "log_w": log_w,
            "means": means,
            "cov": cov,
            "n_occupied": (counts > 0).sum().astype(jnp.int32),
        }
        if store_z:
            out["z"] = z.reshape(-1)[:n]
        return (log_w, means, chol), out

    def chain(key, state, Xp, mask, Psi0):
        k_tune, k_draw = jax.random.split(key)

        def tune_step(st, k):
            return sweep(st, k, Xp, mask, Psi0)[0], None

        def draw_step(st, k):
            return sweep(st, k, Xp, mask, Psi0)

        state, _ = lax.scan(tune_step, state, jax.random.split(k_tune, tune))
        _, out = lax.scan(draw_step, state, jax.random.split(k_draw, draws))
        return out

    return jax.jit(jax.vmap(chain, in_axes=(0, None, None, None, None)))


def _check_model(cfg):
    problems = []
    if cfg.model != "gmm":
        problems.append(f"model={cfg.model!r} (built by build_{cfg.model})")
    if cfg.covariance != "full":
        problems.append(f"covariance={cfg.covariance!r}")
    if cfg.covariance_prior != "conjugate":
        problems.append(f"covariance_prior={cfg.covariance_prior!r}")
    if getattr(cfg, "sample_weight", None) is not None:
        problems.append("sample_weight")
    if getattr(cfg, "noise_volume", None):
        problems.append("a noise component")
    if problems:
        raise NotImplementedError(
            "sample_gibbs_jax supports only finite mixtures with the full covariance and the "
            "conjugate prior, bm.build_gmm(X, K, covariance='full') without sample weights or "
            f"a noise component; got a model with {', '.join(problems)}. Sample it with "
            "bm.sample(model) (numba Gibbs or NUTS)."
        )


def sample_gibbs_jax(
    model,
    *,
    init=None,
    draws=1000,
    tune=1000,
    chains=4,
    random_seed=None,
    allocations=False,
    log_likelihood="auto",
):
    """Sample a finite full-covariance mixture with the JAX blocked Gibbs sampler.

    The blocked Gibbs sweep of ``bm.sample(model, sampler="gibbs")`` (module
    docstring) on JAX's default backend; the result has the same layout, so
    :func:`bayesmix.relabel`, :func:`bayesmix.membership` and :func:`bayesmix.loo` take
    it. Turns on JAX's
    float64 mode (``jax_enable_x64``, process-wide).

    Parameters
    ----------
    model : pymc.Model
        Built by ``bm.build_gmm(X, K)`` with ``covariance="full"`` and the conjugate
        prior (the default); anything else raises NotImplementedError.
    init : EMResult-like, optional
        Starting point of every chain, with weights (K,), means (K, D) and covariances
        (K, D, D); default ``bm.fit_em(X, K, prior=model's prior)``.
    draws, tune, chains : int
        Kept sweeps, burn-in sweeps and chains (vectorised with ``jax.vmap``).
    random_seed : int or numpy.random.Generator, optional
        Seeds the EM start and the JAX key: same seed, same draws on one backend.
    allocations : bool, default False
        Also store the allocations (chain, draw, obs) as int32 (memory ``chains *
        draws * N * 4`` bytes, on the device too; MemoryError before sampling when they
        cannot fit). Without them :func:`bayesmix.membership` uses the parameters.
    log_likelihood : bool or "auto", default "auto"
        Store ``log_likelihood/X`` (chain, draw, obs), as :func:`bayesmix.sample`:
        ``"auto"`` only when chains * draws * N <= 5e6; otherwise LOO and WAIC
        compute it from the parameters in chunks.

    Returns
    -------
    xarray.DataTree
        As :func:`bayesmix.sample`: posterior ``weights`` (chain, draw, component),
        ``means`` (chain, draw, component, feature), ``covariances`` (chain, draw,
        component, feature, feature2), ``n_occupied`` (chain, draw) and with
        ``allocations=True`` ``allocations`` (chain, draw, obs); ``log_likelihood``
        (when stored), ``observed_data``, ``sample_stats`` ``loglik`` (chain, draw); root attrs
        ``sampler="gibbs-jax"``, ``device`` (JAX's default backend, e.g. ``"gpu"``),
        ``sampling_time`` (seconds, compilation excluded), ``compile_time`` (seconds of
        tracing and XLA compilation) and ``allocations_stored``.

    Raises
    ------
    NotImplementedError
        For DP, MFM, non-full covariance, LKJ prior, weighted or noise models.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np, bayesmix as bm
    >>> X = np.random.default_rng(0).normal(size=(40, 2))
    >>> with warnings.catch_warnings():  # 20 draws: the ESS warning is expected
    ...     warnings.simplefilter("ignore", bm.ConvergenceWarning)
    ...     dt = sample_gibbs_jax(bm.build_gmm(X, 2), draws=20, tune=20, chains=2,
    ...                           random_seed=1)
    >>> dt["posterior"]["weights"].shape, dt.attrs["sampler"]
    ((2, 20, 2), 'gibbs-jax')
    """
    from bayesmix.core._validation import check_int, check_random_state
    from bayesmix.mcmc._builders import get_config
    from bayesmix.mcmc._common import _check_init, _diagnose, _em_init
    from bayesmix.mcmc._pointwise import (
        check_fits_memory,
        resolve_storage,
    )

    cfg = get_config(model)
    _check_model(cfg)
    if np.isnan(cfg.X).any():
        raise NotImplementedError(
            f"sample_gibbs_jax does not handle missing values: the model's data have "
            f"{int(np.isnan(cfg.X).sum())} NaN entries. Use bm.sample(model, "
            "sampler='gibbs') (the numba Gibbs sampler draws the missing entries each sweep)."
        )
    draws = check_int(draws, "draws", minimum=1)
    tune = check_int(tune, "tune", minimum=0)
    chains = check_int(chains, "chains", minimum=1)
    if not isinstance(allocations, bool | np.bool_):
        raise ValueError(
            f"allocations must be True or False; got {allocations!r}. True stores the sampled "
            "allocations (chain, draw, obs) int32; False (the default) keeps n_occupied only."
        )
    allocations = bool(allocations)
    n_entries = chains * draws * cfg.X.shape[0]
    if allocations:  # before any sampling
        check_fits_memory(
            4 * n_entries, "allocations (chain, draw, obs) int32", "allocations=False"
        )
    if resolve_storage(log_likelihood, n_entries)[0]:
        check_fits_memory(
            8 * n_entries, "log_likelihood (chain, draw, obs)", "log_likelihood=False"
        )
    jax = _jax()
    jnp = jax.numpy
    rng = check_random_state(random_seed)
    if init is None:
        init = _em_init(cfg, rng)
    K = cfg.n_components
    (n, D), prior = cfg.X.shape, cfg.prior
    w, m, c = _check_init(init, K, D)
    chunk = chunk_rows(n, K, D)
    n_chunks = -(-n // chunk)
    Xc = cfg.X - prior.mean
    Xp = np.zeros((n_chunks * chunk, D))
    Xp[:n] = Xc
    mask = np.zeros(n_chunks * chunk)
    mask[:n] = 1.0
    with np.errstate(divide="ignore"):
        log_w0 = np.log(w / w.sum())
    state = (jnp.asarray(log_w0), jnp.asarray(m - prior.mean), jnp.asarray(np.linalg.cholesky(c)))
    run = _build_run(
        n,
        D,
        K,
        draws,
        tune,
        allocations,
        float(prior.mean_shrinkage),
        float(prior.dof),
        float(prior.weight_concentration),
    )
    keys = jax.random.split(jax.random.key(int(rng.integers(2**63))), chains)
    args = (
        keys,
        state,
        jnp.asarray(Xp.reshape(n_chunks, chunk, D)),
        jnp.asarray(mask.reshape(n_chunks, chunk)),
        jnp.asarray(prior.scale),
    )
    t0 = time.perf_counter()
    compiled = run.lower(*args).compile()
    t1 = time.perf_counter()
    out = jax.device_get(compiled(*args))
    elapsed = time.perf_counter() - t1
    meta = {
        "device": jax.default_backend(),
        "random_seed": int(random_seed) if isinstance(random_seed, numbers.Integral) else -1,
        "sampling_time": elapsed,
        "compile_time": t1 - t0,
    }
    dt = _to_datatree(cfg, out, meta, allocations, log_likelihood, chains, draws)
    _diagnose(dt, cfg, init)
    return dt


def _to_datatree(cfg, out, meta, allocations, log_likelihood, chains, draws):
    """The numba Gibbs sampler's DataTree layout from the JAX run's draws ``out``."""
    from bayesmix.mcmc._pointwise import total_log_likelihood_arrays
    from bayesmix.mcmc._trace import from_arrays

    K, n, prior = cfg.n_components, cfg.X.shape[0], cfg.prior
    extra = {"n_occupied": np.asarray(out["n_occupied"], dtype=np.int64)}
    dims = {"n_occupied": []}
    if allocations:
        extra["allocations"] = np.asarray(out["z"])
        dims["allocations"] = ["obs"]
    attrs = {
        "model": cfg.model,
        "n_components": K,
        "covariance": cfg.covariance,
        "covariance_prior": cfg.covariance_prior,
        "prior": prior.to_json(),
        "sampler": "gibbs-jax",
        **meta,
        "allocations_stored": int(allocations),
    }
    if not allocations:
        attrs["allocations_note"] = (
            "allocations not stored (allocations=False); membership and co-clustering use "
            "the parameters"
        )
    weights, means = np.exp(out["log_w"]), out["means"] + prior.mean
    dt = from_arrays(
        weights,
        means,
        out["cov"],
        cfg.X,
        feature_names=cfg.feature_names,
        attrs=attrs,
        extra=extra,
        extra_dims=dims,
        log_likelihood=log_likelihood,
    )
    if allocations:
        dt["posterior"] = dt["posterior"].to_dataset().assign_coords(obs=np.arange(n))
    if "log_likelihood" in dt.children:
        loglik = dt["log_likelihood"]["X"].sum("obs", skipna=False).values
    else:  # chunks of observations: never the (chain, draw, obs) array
        loglik = total_log_likelihood_arrays(cfg.X, weights, means, out["cov"])
    dt["sample_stats"] = xr.Dataset(
        {"loglik": (("chain", "draw"), loglik)},
        coords={"chain": np.arange(chains), "draw": np.arange(draws)},
    )
    return dt
