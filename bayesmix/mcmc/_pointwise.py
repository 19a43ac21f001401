"""The pointwise log-likelihood on demand, chunked over observations, and storage limits.

A posterior stores its parameters (``weights``, ``means``, ``covariances``, and a
noise component's ``noise_weight``) and ``observed_data/X``; the pointwise marginal
log-likelihood ``log p(x_n | theta_s)`` (chain, draw, obs) follows from them. It is
stored as the ``log_likelihood/X`` group only when small (``POINTWISE_MAX_ENTRIES``
under ``log_likelihood="auto"``); otherwise LOO, WAIC and the total log-likelihood are
computed from the parameters in chunks of observations, so memory is draws x chunk,
never draws x N.

* :func:`iter_pointwise`: ``(obs indices, (C, S, m) array)`` for consecutive chunks.
* :func:`pointwise_log_likelihood`: the (chain, draw, obs) DataArray of chosen observations.
* :func:`total_log_likelihood`: the (C, S) total over observations, chunked.
* :func:`resolve_storage` and :func:`check_fits_memory`: what ``"auto"`` means, and the
  error raised before sampling when a storage request cannot fit in memory.
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from bayesmix.core._gaussian import log_mixture_density

__all__ = [
    "POINTWISE_CHUNK_BYTES",
    "POINTWISE_MAX_ENTRIES",
    "available_memory",
    "check_fits_memory",
    "iter_pointwise",
    "pointwise_log_likelihood",
    "resolve_storage",
    "total_log_likelihood",
]

#: ``log_likelihood="auto"`` stores the pointwise group when chains * draws * N is at most
#: this (5e6 float64 = 40 MB): Old Faithful at 4 x 2000 draws (2.2e6) keeps the ArviZ
#: layout; a large data set keeps nothing of shape (chain, draw, obs).
POINTWISE_MAX_ENTRIES = 5_000_000
#: Bytes of pointwise log-likelihood computed at once (chunks of observations x all draws).
POINTWISE_CHUNK_BYTES = 32e6
#: Fraction of the available memory a requested store may take before sampling refuses.
MEMORY_FRACTION = 0.8


def available_memory():
    """Bytes of physical memory available now (psutil, else ``os.sysconf``; None if unknown)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is optional
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def check_fits_memory(n_bytes, what, switch):
    """Raise MemoryError before sampling if storing ``n_bytes`` cannot fit in memory.

    Parameters
    ----------
    n_bytes : int
        Size of the requested array.
    what : str
        What it is, e.g. ``"allocations (chain, draw, obs) int32"``.
    switch : str
        The keyword that turns it off, e.g. ``"allocations=False"``.
    """
    avail = available_memory()
    if avail is None or n_bytes <= MEMORY_FRACTION * avail:
        return
    raise MemoryError(
        f"storing {what} needs {n_bytes / 1e9:.2f} GB but only {avail / 1e9:.2f} GB of memory "
        f"is available ({MEMORY_FRACTION:.0%} may be used); nothing was sampled. Pass {switch} "
        "(LOO, WAIC, membership and co-clustering are then computed from the parameters, in "
        "chunks), or use fewer chains / draws."
    )


def resolve_storage(log_likelihood, n_entries, name="log_likelihood", limit=None):
    """``(store, note)`` for a ``True`` / ``False`` / ``"auto"`` storage switch.

    ``"auto"`` stores when ``n_entries`` (chains * draws * N) is at most ``limit``
    (default :data:`POINTWISE_MAX_ENTRIES`).
    """
    limit = POINTWISE_MAX_ENTRIES if limit is None else limit
    if isinstance(log_likelihood, str) and log_likelihood == "auto":
        store = n_entries <= limit
        rel = "<=" if store else ">"
        return store, f"{name}='auto': chains * draws * N = {n_entries:.3g} {rel} {limit:.0e}"
    if isinstance(log_likelihood, (bool, np.bool_)):
        return bool(log_likelihood), f"{name}={bool(log_likelihood)} requested"
    raise ValueError(
        f"{name} must be True, False or 'auto'; got {log_likelihood!r}. 'auto' stores the "
        f"(chain, draw, obs) array only when chains * draws * N <= {limit:.0e}."
    )


def _noise(noise_weight, noise_volume):
    if noise_weight is None or noise_volume is None:
        return None
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(noise_weight, dtype=float)) - np.log(float(noise_volume))


def chunk_size(n_draws, budget=POINTWISE_CHUNK_BYTES):
    """Observations per chunk so that a (draws, chunk) float64 block fits ``budget`` bytes."""
    return max(1, int(budget // (8 * max(n_draws, 1))))


def pointwise_arrays(X, weights, means, covariances, log_w0=None):
    """The pointwise marginal log-likelihood (C, S, N) of the rows ``X`` (N, D).

    Parameters
    ----------
    X : ndarray, shape (N, D)
    weights, means, covariances : ndarray, shapes (C, S, K), (C, S, K, D), (C, S, K, D, D)
    log_w0 : ndarray, shape (C, S), optional
        A noise component's ``log w_0 - log V`` (added to every density).

    Returns
    -------
    ndarray, shape (C, S, N)
    """
    C, S, K, D = means.shape
    ll = log_mixture_density(
        X,
        weights.reshape(C * S, K),
        means.reshape(C * S, K, D),
        covariances.reshape(C * S, K, D, D),
    ).reshape(C, S, X.shape[0])
    if log_w0 is not None:
        ll = np.logaddexp(ll, np.asarray(log_w0)[..., None])
    return ll


def _inputs(idata):
    # the layout of bayesmix.mcmc._trace (not imported: _trace imports this module)
    post = idata["posterior"]
    w = post["weights"].transpose("chain", "draw", "component").values
    m = post["means"].transpose("chain", "draw", "component", "feature").values
    c = post["covariances"].transpose("chain", "draw", "component", "feature", "feature2").values
    X = idata["observed_data"]["X"].transpose("obs", "feature").values
    nw = post["noise_weight"].transpose("chain", "draw").values if "noise_weight" in post else None
    return X, w, m, c, _noise(nw, idata.attrs.get("noise_volume"))


def iter_pointwise(idata, chunk=None, obs=None):
    """Yield ``(indices, ll)`` over chunks of observations, ``ll`` of shape (C, S, m).

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior (parameters and ``observed_data/X``).
    chunk : int, optional
        Observations per chunk; default: a (draws, chunk) block of
        :data:`POINTWISE_CHUNK_BYTES`.
    obs : array_like of int, optional
        Positions of the observations (default all, in order).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> dt = from_arrays(np.ones((1, 2, 1)), np.zeros((1, 2, 1, 1)), np.ones((1, 2, 1, 1, 1)),
    ...                  np.zeros((5, 1)), log_likelihood=False)
    >>> [(idx.tolist(), ll.shape) for idx, ll in iter_pointwise(dt, chunk=3)]
    [([0, 1, 2], (1, 2, 3)), ([3, 4], (1, 2, 2))]
    """
    X, w, m, c, log_w0 = _inputs(idata)
    idx_all = np.arange(X.shape[0]) if obs is None else np.asarray(obs, dtype=np.int64).ravel()
    chunk = chunk_size(w.shape[0] * w.shape[1]) if chunk is None else int(chunk)
    for start in range(0, idx_all.size, chunk):
        idx = idx_all[start : start + chunk]
        yield idx, pointwise_arrays(X[idx], w, m, c, log_w0)


def pointwise_log_likelihood(idata, obs=None, chunk=None):
    """The pointwise marginal log-likelihood of chosen observations, from the parameters.

    Equal (to rounding) to the stored ``log_likelihood/X`` of :func:`bayesmix.sample`
    with ``log_likelihood=True``, noise component included; computed in chunks of
    observations so that memory is draws x chunk (plus the result).

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior.
    obs : array_like of int, optional
        Positions of the observations (default all: mind the (C, S, N) size).
    chunk : int, optional
        Observations per chunk.

    Returns
    -------
    xarray.DataArray, dims (chain, draw, obs)
        ``obs`` coordinates are the observed data's coordinates of the chosen rows.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> dt = from_arrays(np.ones((1, 2, 1)), np.zeros((1, 2, 1, 1)), np.ones((1, 2, 1, 1, 1)),
    ...                  np.zeros((5, 1)))
    >>> ll = pointwise_log_likelihood(dt, obs=[1, 3])
    >>> ll.shape, bool(np.allclose(ll, dt["log_likelihood"]["X"].isel(obs=[1, 3])))
    ((1, 2, 2), True)
    """
    parts, idxs = [], []
    for idx, ll in iter_pointwise(idata, chunk=chunk, obs=obs):
        parts.append(ll)
        idxs.append(idx)
    post = idata["posterior"]
    C, S = post.sizes["chain"], post.sizes["draw"]
    vals = np.concatenate(parts, axis=2) if parts else np.empty((C, S, 0))
    idx = np.concatenate(idxs) if idxs else np.empty(0, dtype=np.int64)
    obs_coord = idata["observed_data"]["obs"].values[idx]
    return xr.DataArray(
        vals,
        dims=("chain", "draw", "obs"),
        coords={"chain": post["chain"].values, "draw": post["draw"].values, "obs": obs_coord},
        name="X",
    )


def total_log_likelihood_arrays(X, weights, means, covariances, log_w0=None, chunk=None):
    """Sum over observations of :func:`pointwise_arrays`, chunked: shape (C, S).

    NaN in any observation's density propagates to the draw's total.
    """
    C, S = weights.shape[:2]
    chunk = chunk_size(C * S) if chunk is None else int(chunk)
    total = np.zeros((C, S))
    for start in range(0, X.shape[0], chunk):
        total += pointwise_arrays(
            X[start : start + chunk], weights, means, covariances, log_w0
        ).sum(-1)
    return total


def total_log_likelihood(idata, chunk=None):
    """The total log-likelihood per draw (chain, draw), from the parameters, chunked.

    Uses ``sample_stats/loglik`` when the sampler stored it.

    Returns
    -------
    xarray.DataArray, dims (chain, draw)
    """
    if "sample_stats" in idata.children and "loglik" in idata["sample_stats"].data_vars:
        return idata["sample_stats"]["loglik"]
    if "log_likelihood" in idata.children and "X" in idata["log_likelihood"].data_vars:
        return idata["log_likelihood"]["X"].sum("obs", skipna=False)
    X, w, m, c, log_w0 = _inputs(idata)
    post = idata["posterior"]
    return xr.DataArray(
        total_log_likelihood_arrays(X, w, m, c, log_w0, chunk),
        dims=("chain", "draw"),
        coords={"chain": post["chain"].values, "draw": post["draw"].values},
        name="loglik",
    )
