"""Membership uncertainty, co-clustering and point-estimate partitions.

* :func:`membership`: per observation and component, the posterior distribution of
  the allocation probability ``p_snk = p(z_n = k | x_n, theta_s)`` over draws ``s``:
  its mean, an equal-tailed credible interval, and per observation the entropy and
  the uncertainty (1 - max probability, mclust's figure) of the mean probabilities
  and the most probable label. Needs consistent labels (see :func:`membership`).
* :func:`coclustering`: the posterior similarity matrix
  ``PSM[n, m] = (1/S) sum_s sum_k p_snk p_smk`` for ``n != m`` and 1 on the
  diagonal. This is the posterior expectation, over the parameters, of the
  probability that n and m are allocated to the same component *given the
  parameters* (allocations are independent given theta); it is the PSM of the
  allocations marginalised analytically rather than of sampled allocations. It is
  label-invariant, so it serves Dirichlet-process fits as well.
* :func:`point_partition`: a partition minimising the posterior expected Binder
  loss or the lower bound of the expected variation of information (Wade &
  Ghahramani 2018, Bayesian Analysis 13:559), searched as R's ``mcclust`` /
  ``mcclust.ext`` do: candidates are hierarchical-clustering cuts (average and
  complete linkage on ``1 - PSM``) at every number of clusters up to
  ``max_clusters`` and the per-draw MAP partitions (``argmax_k p_snk``); the best
  candidate is then improved greedily by moving single observations while the loss
  decreases.

  - Binder (equal misclassification costs, as ``mcclust::binder``):
    ``sum_{i<j} |1(c_i = c_j) - PSM_ij|``.
  - VI lower bound (``mcclust.ext::VI.lb``), in bits:
    ``(1/N) sum_i [log2 |C(i)| + log2 sum_j PSM_ij - 2 log2 sum_{j in C(i)} PSM_ij]``
    with ``C(i)`` the cluster of ``i``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr

from bayesmix.core._gaussian import (
    kernel_layout,
    log_mixture_density,
    precision_cholesky,
    responsibilities,
    responsibilities_skn,
)
from bayesmix.core._quantile_kernels import quantiles_axis0
from bayesmix.core._validation import BayesmixWarning, check_int
from bayesmix.mcmc._relabel import check_labels_usable
from bayesmix.mcmc._relabel import relabel as _relabel
from bayesmix.mcmc._trace import flat_params, get_observed, get_params

__all__ = [
    "COCLUSTERING_MAX_OBS",
    "PointPartition",
    "binder_loss",
    "coclustering",
    "membership",
    "point_partition",
    "vi_lower_bound",
]

_CHUNK_BYTES = 64e6
#: :func:`coclustering` (and :func:`point_partition` of a DataTree) above this many
#: observations work on a seeded uniform random subset of this size: the (N, N) matrix
#: takes 8 N^2 bytes (200 MB at 5000, 80 GB at N = 1e5) and the hierarchical
#: clustering of the point partition O(N^2) memory and time.
COCLUSTERING_MAX_OBS = 5000
#: :func:`membership` with ``max_draws="auto"`` uses every draw while draws x
#: observations stay within this many (1000 draws up to N = 20,000), else this many
#: values' worth of evenly spaced draws, at least ``MEMBERSHIP_MIN_DRAWS``. Each draw
#: costs one pass of the densities over the data (about 8 s for 1000 draws at N = 1e5,
#: D = 10, K = 8: the largest part of the post-processing there, benchmarks/RESULTS.md
#: "scale"); at that size the membership probabilities barely move between draws, so
#: 200 evenly spaced draws give the mean to well within its Monte-Carlo error and the
#: 94 % interval from 6 draws in each tail.
MEMBERSHIP_MAX_VALUES = 20_000_000
MEMBERSHIP_MIN_DRAWS = 100
_LOSSES = ("binder", "vi")


def _check_tree(idata):
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"idata must be an xarray.DataTree from bayesmix.sample; got {type(idata).__name__}."
        )


def _log_noise(idata):
    """(S,) ``log w_0 - log V`` of a noise model's draws (``build_gmm(noise=...)``), or None."""
    volume = idata.attrs.get("noise_volume")
    post = idata["posterior"]
    if volume is None or "noise_weight" not in post.data_vars:
        return None
    w0 = post["noise_weight"].transpose("chain", "draw").values.reshape(-1)
    with np.errstate(divide="ignore"):
        return np.log(w0) - np.log(float(volume))


def _with_noise(Xs, w, m, c, P, log_noise):
    """Responsibilities (S, n, K) times ``1 - p(noise)``, and ``p(noise)`` (S, n)."""
    g = log_mixture_density(Xs, w, m, c)  # (S, n): log sum_k w_k N_k (w sums to 1 - w_0)
    pn = np.exp(log_noise[:, None] - np.logaddexp(g, log_noise[:, None]))
    return P * (1.0 - pn)[..., None], pn


def _fused_summary(X, w, m, c, q):
    """Mean and quantiles by one fused numba pass (None: use the chunked numpy path)."""
    try:
        from bayesmix.core._draws_kernels import membership_summary
    except ImportError:  # pragma: no cover - numba is a PyTensor dependency
        return None
    P = kernel_layout(precision_cholesky(c))
    return membership_summary(X, w, m, P, q)


def _checked_and_relabelled(idata, prob, relabel):
    """``membership``'s argument checks; ``idata`` relabelled first (with a warning) when
    ``relabel="auto"`` and it has not been."""
    _check_tree(idata)
    check_labels_usable(idata, what="membership")
    if not (isinstance(prob, float | int) and 0 < prob < 1):
        raise ValueError(f"prob must be a number in (0, 1); got {prob!r}.")
    if relabel not in ("auto", False):
        raise ValueError(f"relabel must be 'auto' or False; got {relabel!r}.")
    K = get_params(idata)[0].shape[-1]
    if relabel == "auto" and K > 1 and not idata.attrs.get("relabelled"):
        warnings.warn(
            "membership: idata has not been relabelled; relabelling it now with "
            "bayesmix.relabel(idata) (Stephens' algorithm, reference-free). Call "
            "bayesmix.relabel(idata, reference=em_result) yourself to line the components up "
            "with the EM fit, or pass relabel=False to use the labels as they are.",
            BayesmixWarning,
            stacklevel=3,
        )
        idata = _relabel(idata)
    return idata


def _draw_subset(S, N, max_draws):
    """Indices of the flat draws ``membership`` uses (all, or evenly spaced)."""
    if max_draws is None:
        return np.arange(S)
    if isinstance(max_draws, str):
        if max_draws != "auto":
            raise ValueError(f"max_draws must be 'auto', None or an int >= 1; got {max_draws!r}.")
        max_draws = max(MEMBERSHIP_MIN_DRAWS, MEMBERSHIP_MAX_VALUES // max(N, 1))
    else:
        max_draws = check_int(max_draws, "max_draws", minimum=1)
    if max_draws >= S:
        return np.arange(S)
    return np.unique(np.linspace(0, S - 1, max_draws).round().astype(np.int64))


def membership(idata, *, prob=0.94, relabel="auto", chunk_size=None, max_draws="auto"):
    """Posterior membership probabilities and their uncertainty.

    Parameters
    ----------
    idata : xarray.DataTree
        A finite-mixture posterior (``bayesmix.sample``), preferably already passed
        through :func:`bayesmix.relabel` against the EM fit.
    prob : float
        Mass of the equal-tailed credible interval (quantiles ``(1-prob)/2`` and
        ``(1+prob)/2`` over draws).
    relabel : {"auto", False}
        ``"auto"``: if ``idata.attrs["relabelled"]`` is not set and K > 1, relabel
        first with :func:`bayesmix.relabel` (reference-free Stephens algorithm) and
        warn, because per-component summaries of a label-switched trace mix
        components. ``False``: use the labels as they are.
    chunk_size : int, optional
        Observations per chunk; default keeps the (draws, chunk, K) block near 64 MB.
    max_draws : "auto", int or None, default "auto"
        Posterior draws used, evenly spaced over the chains' draws: ``None`` all of
        them; ``"auto"`` all while draws x observations <= ``MEMBERSHIP_MAX_VALUES``
        (2e7: 1000 draws up to N = 20,000), else that many values' worth, at least
        ``MEMBERSHIP_MIN_DRAWS`` (100): 200 draws at N = 1e5. attrs ``n_draws`` (used)
        and ``n_draws_total`` say which.

    Returns
    -------
    xarray.Dataset
        Over ``obs`` and ``component``:

        - ``probability`` (obs, component): posterior mean of ``p(z_n = k | x_n, theta)``
        - ``probability_lower``, ``probability_upper`` (obs, component): equal-tailed
          ``prob`` interval over draws
        - ``label`` (obs): most probable component of the mean probabilities
        - ``max_probability`` (obs)
        - ``uncertainty`` (obs): ``1 - max_probability`` (mclust)
        - ``entropy`` (obs): ``-sum_k p_k log p_k`` of the mean probabilities (nats)

        attrs: ``prob``, ``interval = "equal-tailed"``, ``n_draws`` (draws used),
        ``n_draws_total``.

    Raises
    ------
    ValueError
        For a Dirichlet-process fit (use :func:`coclustering`).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> w = np.full((1, 4, 2), 0.5)
    >>> mu = np.zeros((1, 4, 2, 1)); mu[..., 1, 0] = 6.0
    >>> dt = from_arrays(w, mu, np.ones((1, 4, 2, 1, 1)), np.array([[0.0], [6.0]]))
    >>> membership(dt, relabel=False)["label"].values
    array([0, 1])
    """
    idata = _checked_and_relabelled(idata, prob, relabel)
    w, m, c = flat_params(idata)
    X = get_observed(idata)
    S_total, N = w.shape[0], X.shape[0]
    use = _draw_subset(S_total, N, max_draws)
    if use.size < S_total:
        w, m, c = w[use], m[use], c[use]
    S, K = w.shape
    if chunk_size is None:
        chunk_size = max(1, int(_CHUNK_BYTES // max(1, S * K * 8 * 3)))
    q = [(1 - prob) / 2, (1 + prob) / 2]
    mean = np.empty((N, K))
    lower = np.empty((N, K))
    upper = np.empty((N, K))
    log_noise = _log_noise(idata)
    if log_noise is not None and use.size < S_total:
        log_noise = log_noise[use]
    noise = np.zeros((3, N))  # mean, lower, upper of p(noise) (a noise model only)
    # the fused kernel needs complete rows; rows with gaps go through responsibilities_skn,
    # on each row's observed coordinates
    gaps = bool(np.isnan(X).any())
    fused = None if log_noise is not None or gaps else _fused_summary(X, w, m, c, q)
    if fused is not None:
        mean, (lower, upper) = fused
    for start in range(0, 0 if fused is not None else N, chunk_size):
        sl = slice(start, start + chunk_size)
        if log_noise is not None:
            P = responsibilities(X[sl], w, m, c)  # (S, n, K)
            P, pn = _with_noise(X[sl], w, m, c, P, log_noise)
            noise[0, sl], (noise[1, sl], noise[2, sl]) = pn.mean(0), quantiles_axis0(pn, q)
            mean[sl] = P.mean(0)
            lower[sl], upper[sl] = quantiles_axis0(P, q)
            continue
        P = responsibilities_skn(X[sl], w, m, c)  # (S, K, n): the kernel's layout
        mean[sl] = P.mean(0).T
        lo, hi = quantiles_axis0(P, q)  # = np.quantile(P, q, axis=0), streaming tails
        lower[sl], upper[sl] = lo.T, hi.T
    pmax = np.maximum(mean.max(axis=1), noise[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(mean > 0, mean * np.log(mean), 0.0).sum(axis=1)
    comp = idata["posterior"]["component"].values
    obs = np.arange(N)
    if "observed_data" in idata.children and "obs" in idata["observed_data"].coords:
        obs = idata["observed_data"]["obs"].values
    label = comp[mean.argmax(axis=1)]
    extra = {}
    if log_noise is not None:
        label = np.where(noise[0] > mean.max(axis=1), -1, label)
        ent = ent - np.where(noise[0] > 0, noise[0] * np.log(np.clip(noise[0], 1e-300, 1)), 0.0)
        extra = {
            "noise_probability": ("obs", noise[0]),
            "noise_probability_lower": ("obs", noise[1]),
            "noise_probability_upper": ("obs", noise[2]),
        }
    return xr.Dataset(
        {
            "probability": (("obs", "component"), mean),
            "probability_lower": (("obs", "component"), lower),
            "probability_upper": (("obs", "component"), upper),
            **extra,
            "label": ("obs", label),
            "max_probability": ("obs", pmax),
            "uncertainty": ("obs", 1.0 - pmax),
            "entropy": ("obs", ent),
        },
        coords={"obs": obs, "component": comp},
        attrs={
            "prob": float(prob),
            "interval": "equal-tailed",
            "n_draws": int(S),
            "n_draws_total": int(S_total),
        },
    )


def _allocations(idata):
    """Sampled allocations (S, N) when the posterior stores them (Gibbs), else None."""
    post = idata["posterior"]
    if "allocations" not in post.data_vars:
        return None
    z = post["allocations"].transpose("chain", "draw", "obs").values
    return z.reshape(-1, z.shape[-1]).astype(np.int64)


def _psm_from_allocations(z, chunk_size=None):
    """(1/S) sum_s 1(z_sn = z_sm) by one-hot products, chunked over draws."""
    S, N = z.shape
    K = int(z.max()) + 1
    if chunk_size is None:
        chunk_size = max(1, int(_CHUNK_BYTES // max(1, N * K * 8)))
    psm = np.zeros((N, N))
    for start in range(0, S, chunk_size):
        zs = z[start : start + chunk_size]
        A = np.zeros((N, zs.shape[0], K))
        A[np.arange(N)[None, :], np.arange(zs.shape[0])[:, None], zs] = 1.0
        A = A.reshape(N, -1)
        psm += A @ A.T
    return psm / S


def _psm_from_parameters(idata, chunk_size=None):
    w, m, c = flat_params(idata)
    X = get_observed(idata)
    S, K = w.shape
    N, D = X.shape
    if chunk_size is None:
        chunk_size = max(1, int(_CHUNK_BYTES // max(1, N * K * (D + 4) * 8)))
    psm = np.zeros((N, N))
    for start in range(0, S, chunk_size):
        sl = slice(start, start + chunk_size)
        P = responsibilities(X, w[sl], m[sl], c[sl])  # (s, N, K)
        A = np.moveaxis(P, 1, 0).reshape(N, -1)  # (N, s*K)
        psm += A @ A.T
    return psm / S, S


def _obs_subset(idata, max_obs, random_seed):
    """``(tree, positions)``: ``idata`` itself and None up to ``max_obs`` observations
    (or ``max_obs=None``), else the tree restricted to a seeded uniform random subset
    of ``max_obs`` observations (sorted positions) in every group with an ``obs`` dim."""
    N = get_observed(idata).shape[0]
    if max_obs is None:
        return idata, None
    max_obs = check_int(max_obs, "max_obs", minimum=2)
    if N <= max_obs:
        return idata, None
    rng = np.random.default_rng(random_seed)
    idx = np.sort(rng.choice(N, size=max_obs, replace=False))
    sub = idata.map_over_datasets(lambda ds: ds.isel(obs=idx) if "obs" in ds.dims else ds)
    return sub, idx


def coclustering(
    idata,
    *,
    chunk_size=None,
    source="auto",
    max_obs=COCLUSTERING_MAX_OBS,
    random_seed=0,
):
    """Posterior probability that two observations share a component.

    Two estimators of the same ``P(z_n = z_m | x)``:

    * ``source="allocations"``: the fraction of draws whose sampled allocations put n
      and m together, ``(1/S) sum_s 1(z_sn = z_sm)`` (the usual estimator from MCMC
      partitions, as R's ``mcclust::comp.psm``); needs the ``allocations`` (chain,
      draw, obs) that ``bm.sample(..., sampler="gibbs")`` stores.
    * ``source="parameters"``: ``PSM[n, m] = (1/S) sum_s sum_k p_snk p_smk`` with
      ``p_snk = p(z_n = k | x_n, theta_s)`` (the allocations summed out given each
      draw's parameters, see the module docstring); works for any sampler.

    Both are label-invariant, so valid for Dirichlet-process and MFM fits.

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior (finite, Dirichlet-process or MFM).
    chunk_size : int, optional
        Draws per chunk; default keeps the temporaries near 64 MB.
    source : {"auto", "allocations", "parameters"}
        ``"auto"``: the sampled allocations when the posterior has them, else the
        parameters.
    max_obs : int or None
        Above this many observations (default :data:`COCLUSTERING_MAX_OBS`, 5000) the
        matrix is that of a seeded uniform random subset of ``max_obs`` of them (the
        matrix takes ``8 m^2`` bytes); ``None``: every observation, whatever N.
    random_seed : int
        Seed of that subset (``numpy.random.default_rng(random_seed).choice``).

    Returns
    -------
    xarray.DataArray
        Dims (obs, obs2), each of length m = min(N, max_obs), symmetric, values in
        [0, 1], ones on the diagonal; the ``obs`` coordinate holds the labels of the
        observations used (the subset's, in data order). attrs ``n_draws``,
        ``source``, ``n_obs`` (N) and ``subset`` (``"all observations"`` or how the
        subset was drawn). The result takes ``8 m^2`` bytes (200 MB for m = 5,000).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> w = np.full((1, 4, 2), 0.5)
    >>> mu = np.zeros((1, 4, 2, 1)); mu[..., 1, 0] = 20.0
    >>> X = np.array([[0.0], [0.1], [20.0]])
    >>> coclustering(from_arrays(w, mu, np.ones((1, 4, 2, 1, 1)), X)).values.round(3)
    array([[1., 1., 0.],
           [1., 1., 0.],
           [0., 0., 1.]])
    >>> z = np.array([[[0, 0, 1], [0, 1, 1], [2, 2, 2], [0, 0, 1]]])  # (chain, draw, obs)
    >>> dt = from_arrays(w, mu, np.ones((1, 4, 2, 1, 1)), X, extra={"allocations": z},
    ...                  extra_dims={"allocations": ["obs"]})
    >>> coclustering(dt).values
    array([[1.  , 0.75, 0.25],
           [0.75, 1.  , 0.5 ],
           [0.25, 0.5 , 1.  ]])
    """
    _check_tree(idata)
    if source not in ("auto", "allocations", "parameters"):
        raise ValueError(f"source must be 'auto', 'allocations' or 'parameters'; got {source!r}.")
    n_total = get_observed(idata).shape[0]
    idata, idx = _obs_subset(idata, max_obs, random_seed)
    z = _allocations(idata) if source != "parameters" else None
    if source == "allocations" and z is None:
        raise ValueError(
            "source='allocations' needs posterior 'allocations' (chain, draw, obs), which "
            "bm.sample(model, sampler='gibbs') stores; use source='parameters' for this fit."
        )
    if z is not None:
        psm, S, used = _psm_from_allocations(z, chunk_size), z.shape[0], "allocations"
    else:
        (psm, S), used = _psm_from_parameters(idata, chunk_size), "parameters"
    np.clip(psm, 0.0, 1.0, out=psm)
    np.fill_diagonal(psm, 1.0)
    N = psm.shape[0]
    obs = np.arange(N)
    if "observed_data" in idata.children and "obs" in idata["observed_data"].coords:
        obs = idata["observed_data"]["obs"].values
    definition = (
        "fraction of draws with z_n = z_m (sampled allocations); diagonal 1"
        if used == "allocations"
        else "mean over draws of P(z_n = z_m | x, theta_s); diagonal 1"
    )
    subset = (
        "all observations"
        if idx is None
        else f"seeded uniform random subset of {N} of {n_total} observations "
        f"(numpy default_rng({random_seed}); max_obs={max_obs})"
    )
    return xr.DataArray(
        psm,
        dims=("obs", "obs2"),
        coords={"obs": obs, "obs2": obs},
        name="coclustering",
        attrs={
            "n_draws": int(S),
            "source": used,
            "definition": definition,
            "n_obs": int(n_total),
            "subset": subset,
        },
    )


# --------------------------------------------------------------------------- losses


def _check_psm(psm):
    psm = np.asarray(psm, dtype=float)
    if psm.ndim != 2 or psm.shape[0] != psm.shape[1]:
        raise ValueError(
            f"the posterior similarity matrix must be square (N, N); got shape {psm.shape}."
        )
    if not np.all(np.isfinite(psm)) or psm.min() < -1e-12 or psm.max() > 1 + 1e-12:
        raise ValueError("the posterior similarity matrix must hold probabilities in [0, 1].")
    if not np.allclose(psm, psm.T, atol=1e-10):
        raise ValueError("the posterior similarity matrix must be symmetric.")
    return psm


def _canonical(labels):
    """Relabel clusters 0..G-1 in order of first appearance."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inv].astype(np.int64)


def binder_loss(labels, psm):
    """Expected Binder loss ``sum_{i<j} |1(c_i = c_j) - PSM_ij|`` (mcclust::binder).

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    psm : array_like, shape (N, N)

    Returns
    -------
    float

    Examples
    --------
    >>> binder_loss([0, 0, 1], [[1, 0.8, 0.1], [0.8, 1, 0.3], [0.1, 0.3, 1]])
    0.6
    """
    psm = np.asarray(psm, dtype=float)
    c = np.asarray(labels)
    same = c[:, None] == c[None, :]
    iu = np.triu_indices(len(c), 1)
    return float(np.round(np.abs(same - psm)[iu].sum(), 12))


def vi_lower_bound(labels, psm):
    """Lower bound of the expected variation of information (mcclust.ext::VI.lb), bits.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    psm : array_like, shape (N, N)
        Posterior similarity matrix with ones on the diagonal.

    Returns
    -------
    float

    Examples
    --------
    >>> round(vi_lower_bound([0, 1], [[1.0, 0.0], [0.0, 1.0]]), 12)
    0.0
    """
    psm = np.asarray(psm, dtype=float)
    c = _canonical(np.asarray(labels))
    N = len(c)
    Z = np.zeros((N, c.max() + 1))
    Z[np.arange(N), c] = 1.0
    size = Z.sum(0)[c]
    within = (psm @ Z)[np.arange(N), c]
    return float((np.log2(size).sum() + np.log2(psm.sum(1)).sum() - 2 * np.log2(within).sum()) / N)


_LOSS_FN = {"binder": binder_loss, "vi": vi_lower_bound}


def _xlog2x(n):
    n = np.asarray(n, dtype=float)
    return np.where(n > 0, n * np.log2(np.maximum(n, 1.0)), 0.0)


def _greedy(labels, psm, loss, max_sweeps=50):
    """Move single observations to the cluster (or a new one) that lowers the loss most.

    Costs are updated incrementally from ``W = A Z`` (``Z`` the one-hot partition,
    ``A = 1 - 2 PSM`` for Binder, ``A = PSM`` for VI), so a sweep is O(N^2).
    """
    c = _canonical(labels).copy()
    N = len(c)
    A = 1.0 - 2.0 * psm if loss == "binder" else psm
    G = c.max() + 1
    W = np.zeros((N, N))
    Zg = np.zeros((N, G))
    Zg[np.arange(N), c] = 1.0
    W[:, :G] = A @ Zg
    sizes = np.bincount(c, minlength=N).astype(float)
    rows = np.arange(N)
    for _ in range(max_sweeps):
        moved = False
        for i in range(N):
            a = c[i]
            occupied = sizes > 0
            occupied[a] = False
            cand = np.flatnonzero(occupied)
            if loss == "binder":
                rem = W[i, a] - A[i, i]
                deltas = W[i, cand] - rem
                new_delta = -rem
            else:
                cur = np.log2(W[rows, c])
                with_i = np.log2(W[rows, c] + psm[:, i])
                sum_cur = np.bincount(c, cur, minlength=N)
                sum_with = np.bincount(c, with_i, minlength=N)
                mem_a = np.flatnonzero(c == a)
                mem_a = mem_a[mem_a != i]
                without_a = _xlog2x(sizes[a] - 1) - 2.0 * np.log2(W[mem_a, a] - psm[mem_a, i]).sum()
                d_a = without_a - (_xlog2x(sizes[a]) - 2.0 * sum_cur[a])
                now_b = _xlog2x(sizes[cand]) - 2.0 * sum_cur[cand]
                with_b = _xlog2x(sizes[cand] + 1) - 2.0 * (
                    sum_with[cand] + np.log2(W[i, cand] + psm[i, i])
                )
                deltas = d_a + with_b - now_b
                new_delta = d_a - 2.0 * np.log2(psm[i, i])
            best_delta, best_b = 0.0, a
            if cand.size:
                j = int(np.argmin(deltas))
                best_delta, best_b = float(deltas[j]), int(cand[j])
            if sizes[a] > 1 and new_delta < best_delta:
                best_delta, best_b = float(new_delta), int(np.flatnonzero(sizes == 0)[0])
            if best_delta < -1e-10 and best_b != a:
                W[:, a] -= A[:, i]
                W[:, best_b] += A[:, i]
                sizes[a] -= 1
                sizes[best_b] += 1
                c[i] = best_b
                moved = True
        if not moved:
            break
    return _canonical(c)


@dataclass
class PointPartition:
    """A point-estimate partition and its expected loss.

    Attributes
    ----------
    labels : ndarray of int, shape (N,)
        Cluster labels 0..G-1, in order of first appearance.
    loss : str
        ``"binder"`` or ``"vi"`` (lower bound).
    expected_loss : float
        The minimised posterior expected loss.
    n_clusters : int
    source : str
        Which candidate won before the greedy step (``"average-linkage"``,
        ``"complete-linkage"``, ``"draws"``), and ``"+greedy"`` when it improved it.
    obs : ndarray of int or None
        Positions of the observations ``labels`` refers to when a DataTree with more
        than ``max_obs`` observations was partitioned on a subset (see
        :func:`coclustering`); None: every observation, in order.
    """

    labels: np.ndarray
    loss: str
    expected_loss: float
    n_clusters: int
    source: str
    obs: np.ndarray | None = None

    def __repr__(self):
        return (
            f"PointPartition(loss={self.loss!r}, expected_loss={self.expected_loss:.4g}, "
            f"n_clusters={self.n_clusters}, source={self.source!r}, sizes="
            f"{np.bincount(self.labels).tolist()})"
        )


def _draw_partitions(idata, max_draws):
    """Candidate partitions from evenly spaced draws: the sampled allocations when the
    posterior stores them, else each draw's MAP allocation."""
    z = _allocations(idata)
    w, m, c = flat_params(idata) if z is None else (None, None, None)
    S = z.shape[0] if z is not None else w.shape[0]
    idx = np.unique(np.linspace(0, S - 1, min(S, max_draws)).round().astype(int))
    if z is not None:
        return z[idx]
    P = responsibilities(get_observed(idata), w[idx], m[idx], c[idx])
    return P.argmax(-1)  # (n_draws, N)


def point_partition(
    data,
    *,
    loss="binder",
    max_clusters=None,
    max_draws=200,
    greedy=True,
    max_obs=COCLUSTERING_MAX_OBS,
    random_seed=0,
):
    """A partition minimising the posterior expected Binder or VI (lower bound) loss.

    Parameters
    ----------
    data : xarray.DataTree or array_like / xarray.DataArray (N, N)
        A bayesmix posterior (finite or DP mixture), or a posterior similarity
        matrix such as :func:`coclustering` returns. With a DataTree, the PSM is
        ``coclustering(data)`` (from the sampled allocations when stored) and the
        partitions of ``max_draws`` draws are candidates too: the sampled allocations
        when the posterior has them (Gibbs), else each draw's MAP allocation.
    loss : {"binder", "vi"}
        The loss (formulas in the module docstring).
    max_clusters : int, optional
        Largest number of clusters tried among the hierarchical cuts; default
        ``min(N, 30)``.
    max_draws : int
        Number of evenly spaced draws whose MAP partitions are candidates.
    greedy : bool
        Improve the best candidate by single-observation moves.
    max_obs : int or None
        With a DataTree of more than ``max_obs`` observations (default
        :data:`COCLUSTERING_MAX_OBS`), partition the seeded random subset that
        :func:`coclustering` uses (``PointPartition.obs`` holds its positions);
        ``None``: every observation.
    random_seed : int
        Seed of that subset.

    Returns
    -------
    PointPartition

    Examples
    --------
    >>> psm = [[1, 0.9, 0.1], [0.9, 1, 0.2], [0.1, 0.2, 1]]
    >>> point_partition(psm).labels
    array([0, 0, 1])
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {list(_LOSSES)}; got {loss!r}.")
    draws = subset = None
    if isinstance(data, xr.DataTree):
        data, subset = _obs_subset(data, max_obs, random_seed)
        psm = coclustering(data, max_obs=None).values
        draws = _draw_partitions(data, max_draws)
    else:
        psm = _check_psm(data.values if isinstance(data, xr.DataArray) else data)
    N = psm.shape[0]
    fn = _LOSS_FN[loss]
    best = (np.inf, None, "")
    max_clusters = (
        min(N, 30)
        if max_clusters is None
        else min(N, check_int(max_clusters, "max_clusters", minimum=1))
    )
    if N == 1:
        best = (fn(np.zeros(1, int), psm), np.zeros(1, int), "trivial")
    else:
        dist = squareform(1.0 - psm, checks=False)
        dist = np.clip(dist, 0.0, None)
        for method in ("average", "complete"):
            Z = linkage(dist, method=method)
            for k in range(1, max_clusters + 1):
                lab = fcluster(Z, k, criterion="maxclust") - 1
                val = fn(lab, psm)
                if val < best[0] - 1e-12:
                    best = (val, lab, f"{method}-linkage")
    if draws is not None:
        for lab in np.unique(draws, axis=0):
            val = fn(lab, psm)
            if val < best[0] - 1e-12:
                best = (val, lab, "draws")
    val, lab, source = best
    lab = _canonical(lab)
    if greedy and N > 1:
        improved = _greedy(lab, psm, loss)
        new_val = fn(improved, psm)
        if new_val < val - 1e-12:
            val, lab, source = new_val, improved, source + "+greedy"
    return PointPartition(
        labels=lab,
        loss=loss,
        expected_loss=float(val),
        n_clusters=int(lab.max() + 1),
        source=source,
        obs=subset,
    )
