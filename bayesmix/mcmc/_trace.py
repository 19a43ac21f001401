"""The DataTree layout every posterior in bayesmix follows, and its one constructor.

Schema (the contract between sampling and the analysis functions):

* ``posterior`` (dims ``chain``, ``draw`` first):

  - ``weights``      (chain, draw, component)
  - ``means``        (chain, draw, component, feature)
  - ``covariances``  (chain, draw, component, feature, feature2), always full
    matrices whatever the covariance type
  - any model-specific variables (``variances``, ``concentration``, ``sticks`` ...)

* ``log_likelihood`` (only when stored, see below): ``X`` (chain, draw, obs), the
  pointwise *marginal* mixture log density (labels summed out, a noise component's
  ``w_0 / V`` added), ready for LOO/WAIC. :func:`bayesmix.sample` stores it under
  ``log_likelihood="auto"`` only when chains * draws * N <=
  :data:`bayesmix.mcmc._pointwise.POINTWISE_MAX_ENTRIES`; otherwise every consumer
  (LOO, WAIC, relabelling, diagnostics) computes it from the parameters in chunks of
  observations (:func:`bayesmix.mcmc._pointwise.iter_pointwise`). Root attrs
  ``log_likelihood_stored`` (0/1) and ``log_likelihood_note`` say which.
* ``observed_data``: ``X`` (obs, feature).
* ``sample_stats`` when the sampler provided it.
* root ``attrs``: ``bayesmix_version``, ``model`` (``"gmm"`` or ``"dpgmm"``),
  ``n_components``, ``covariance``, ``prior`` (JSON string, see
  :meth:`bayesmix.GMMPrior.to_json`), and after :func:`bayesmix.relabel`
  ``relabelled`` = 1; ``log_likelihood_stored``, ``log_likelihood_note``; Gibbs:
  ``allocations_stored``.

Coordinates: ``component`` = 0..K-1, ``feature`` and ``feature2`` = feature names,
``obs`` = 0..N-1.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayesmix import __version__
from bayesmix.core._gaussian import log_component_densities
from bayesmix.mcmc._pointwise import (
    check_fits_memory,
    chunk_size,
    pointwise_arrays,
    resolve_storage,
)

__all__ = ["SAMPLE_DIMS", "from_arrays", "get_observed", "get_params", "mixture_params"]

SAMPLE_DIMS = ("chain", "draw")


def from_arrays(
    weights,
    means,
    covariances,
    X,
    *,
    feature_names=None,
    attrs=None,
    extra=None,
    extra_dims=None,
    sample_stats=None,
    log_likelihood=True,
):
    """Build a bayesmix posterior DataTree from arrays of draws.

    Parameters
    ----------
    weights : ndarray, shape (C, S, K)
    means : ndarray, shape (C, S, K, D)
    covariances : ndarray, shape (C, S, K, D, D)
    X : ndarray, shape (N, D)
        The observed data.
    feature_names : list of str, optional
    attrs : dict, optional
        Root attributes (``model``, ``n_components``, ``covariance``, ``prior`` ...).
    extra : dict of name -> ndarray (C, S, ...), optional
        More posterior variables; ``extra_dims`` gives their non-sample dims.
    extra_dims : dict of name -> list of str, optional
    sample_stats : dict of name -> ndarray (C, S), optional
    log_likelihood : bool or "auto"
        Store the pointwise marginal log-likelihood group (chain, draw, obs); ``"auto"``
        stores it when chains * draws * N <= ``POINTWISE_MAX_ENTRIES`` (5e6). Without
        it, LOO and WAIC compute it from the parameters in chunks. A noise component
        (``extra["noise_weight"]`` and ``attrs["noise_volume"]``) is included.

    Returns
    -------
    xarray.DataTree

    Examples
    --------
    >>> import numpy as np
    >>> w = np.full((1, 3, 2), 0.5)
    >>> mu = np.zeros((1, 3, 2, 1)); mu[..., 1, 0] = 3.0
    >>> cov = np.ones((1, 3, 2, 1, 1))
    >>> dt = from_arrays(w, mu, cov, np.array([[0.0], [3.0]]))
    >>> dt["log_likelihood"]["X"].dims
    ('chain', 'draw', 'obs')
    """
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    X = np.asarray(X, dtype=float)
    C, S, K = weights.shape
    N, D = X.shape
    if means.shape != (C, S, K, D):
        raise ValueError(f"means must have shape {(C, S, K, D)}; got {means.shape}.")
    if covariances.shape != (C, S, K, D, D):
        raise ValueError(f"covariances must have shape {(C, S, K, D, D)}; got {covariances.shape}.")
    if feature_names is None:
        feature_names = [f"x{j}" for j in range(D)]
    coords = {
        "chain": np.arange(C),
        "draw": np.arange(S),
        "component": np.arange(K),
        "feature": list(feature_names),
        "feature2": list(feature_names),
        "obs": np.arange(N),
    }
    post = {
        "weights": (("chain", "draw", "component"), weights),
        "means": (("chain", "draw", "component", "feature"), means),
        "covariances": (("chain", "draw", "component", "feature", "feature2"), covariances),
    }
    extra_dims = extra_dims or {}
    for name, arr in (extra or {}).items():
        arr = np.asarray(arr)
        dims = (
            "chain",
            "draw",
            *extra_dims.get(name, [f"{name}_dim_{i}" for i in range(arr.ndim - 2)]),
        )
        post[name] = (dims, arr)
    groups = {}
    groups["posterior"] = xr.Dataset(post, coords={k: v for k, v in coords.items() if k != "obs"})
    store, note = resolve_storage(log_likelihood, C * S * N)
    if store:
        check_fits_memory(
            8 * C * S * N, "log_likelihood (chain, draw, obs)", "log_likelihood=False"
        )
        log_w0 = None
        if extra and "noise_weight" in extra and (attrs or {}).get("noise_volume") is not None:
            with np.errstate(divide="ignore"):
                log_w0 = np.log(np.asarray(extra["noise_weight"], dtype=float)) - np.log(
                    float(attrs["noise_volume"])
                )
        groups["log_likelihood"] = _log_likelihood_group(
            X, weights, means, covariances, coords, log_w0
        )
    groups["observed_data"] = xr.Dataset(
        {"X": (("obs", "feature"), X)}, coords={"obs": coords["obs"], "feature": coords["feature"]}
    )
    if sample_stats:
        groups["sample_stats"] = _sample_stats_group(sample_stats, coords)
    root_attrs = {"bayesmix_version": __version__}
    root_attrs.update(attrs or {})
    root_attrs.setdefault("n_components", K)
    root_attrs["log_likelihood_stored"] = int(store)
    root_attrs["log_likelihood_note"] = note + (
        "" if store else "; LOO/WAIC compute it from the parameters in chunks of observations"
    )
    dt = xr.DataTree.from_dict({f"/{k}": v for k, v in groups.items()})
    dt.attrs.update(root_attrs)
    return dt


def _log_likelihood_group(X, weights, means, covariances, coords, log_w0=None):
    """The pointwise marginal log-likelihood (chain, draw, obs), from the density layer."""
    ll = np.empty((*weights.shape[:2], X.shape[0]))
    step = chunk_size(weights.shape[0] * weights.shape[1])
    for start in range(0, X.shape[0], step):
        sl = slice(start, start + step)
        ll[..., sl] = pointwise_arrays(X[sl], weights, means, covariances, log_w0)
    return xr.Dataset(
        {"X": (("chain", "draw", "obs"), ll)},
        coords={"chain": coords["chain"], "draw": coords["draw"], "obs": coords["obs"]},
    )


def _sample_stats_group(sample_stats, coords):
    data = {
        k: (("chain", "draw", *[f"{k}_dim_{i}" for i in range(np.ndim(v) - 2)]), np.asarray(v))
        for k, v in sample_stats.items()
    }
    return xr.Dataset(data, coords={"chain": coords["chain"], "draw": coords["draw"]})


def get_params(idata):
    """Return ``(weights, means, covariances)`` as numpy arrays of shape (C, S, ...).

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior (see the module docstring).
    """
    if "posterior" not in idata.children:
        raise ValueError("idata has no 'posterior' group; pass the result of bayesmix.sample.")
    post = idata["posterior"]
    missing = [v for v in ("weights", "means", "covariances") if v not in post.data_vars]
    if missing:
        raise ValueError(
            f"idata's posterior lacks {missing}; bayesmix analysis functions need 'weights', "
            "'means' and 'covariances' as written by bayesmix.sample."
        )
    w = post["weights"].transpose("chain", "draw", "component").values
    m = post["means"].transpose("chain", "draw", "component", "feature").values
    c = post["covariances"].transpose("chain", "draw", "component", "feature", "feature2").values
    return w, m, c


def flatten_draws(weights, means, covariances):
    """Chains and draws merged into one axis of ``C * S`` draws (reshaped views).

    Parameters
    ----------
    weights, means, covariances : ndarray, shapes (C, S, K), (C, S, K, D), (C, S, K, D, D)

    Returns
    -------
    tuple of ndarray, shapes (C * S, K), (C * S, K, D), (C * S, K, D, D)
    """
    C, S, K, D = means.shape
    return (
        weights.reshape(C * S, K),
        means.reshape(C * S, K, D),
        covariances.reshape(C * S, K, D, D),
    )


def flat_params(idata):
    """:func:`get_params` with chains and draws merged (:func:`flatten_draws`)."""
    return flatten_draws(*get_params(idata))


def map_occupied(X, weights, means, covariances, chunk=200):
    """``n_occupied``: components holding >= 1 observation under each draw's MAP allocation.

    The definition of the posterior's ``n_occupied`` for samplers that do not draw
    allocations (NUTS), and of :func:`bayesmix.n_clusters` for posteriors without it.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    weights, means, covariances : ndarray, shapes (C, S, K), (C, S, K, D), (C, S, K, D, D)
    chunk : int
        Draws per block of the (draws, N, K) log densities.

    Returns
    -------
    ndarray of int, shape (C, S)
    """
    C, S, K = weights.shape
    w, m, c = flatten_draws(weights, means, covariances)
    out = np.empty(C * S, dtype=np.int64)
    for start in range(0, C * S, chunk):
        sl = slice(start, start + chunk)
        with np.errstate(divide="ignore"):
            lj = log_component_densities(X, m[sl], c[sl]) + np.log(w[sl])[:, None]
        z = lj.argmax(-1)  # (s, N)
        occ = np.zeros((z.shape[0], K), dtype=bool)
        np.put_along_axis(occ, z, True, axis=1)
        out[sl] = occ.sum(1)
    return out.reshape(C, S)


def get_observed(idata):
    """Return the observed data, shape (N, D), from ``observed_data/X``."""
    if "observed_data" not in idata.children or "X" not in idata["observed_data"].data_vars:
        raise ValueError(
            "idata has no observed_data/X; bayesmix analysis needs the data the model was fit to."
        )
    return idata["observed_data"]["X"].transpose("obs", "feature").values


def mixture_params(obj, name, *, n_components=None, n_features=None, hint=""):
    """``(weights, means, covariances)`` of an EMResult-like object, shape-checked.

    Parameters
    ----------
    obj : object
        Anything with ``weights`` (K,), ``means`` (K, D) and ``covariances`` (K, D, D),
        such as :class:`bayesmix.EMResult`.
    name : str
        The caller's parameter name, used in error messages.
    n_components, n_features : int, optional
        Required K and D.
    hint : str
        The fix, appended to a shape error.

    Returns
    -------
    tuple of ndarray
        float64 weights (K,), means (K, D), covariances (K, D, D).

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> fit = SimpleNamespace(weights=[1.0], means=[[0.0, 0.0]], covariances=[np.eye(2)])
    >>> [a.shape for a in mixture_params(fit, "em_result")]
    [(1,), (1, 2), (1, 2, 2)]
    """
    missing = [a for a in ("weights", "means", "covariances") if not hasattr(obj, a)]
    if missing:
        raise TypeError(
            f"{name} must be an EMResult-like object with weights (K,), means (K, D) and "
            f"covariances (K, D, D), e.g. bayesmix.fit_em(X, K); got {type(obj).__name__} "
            f"lacking {missing}."
        )
    w = np.asarray(obj.weights, dtype=float)
    m = np.asarray(obj.means, dtype=float)
    c = np.asarray(obj.covariances, dtype=float)
    K = w.shape[0] if w.ndim == 1 else None
    D = m.shape[-1] if m.ndim == 2 else None
    ok = (
        K is not None
        and D is not None
        and m.shape == (K, D)
        and c.shape == (K, D, D)
        and (n_components is None or K == n_components)
        and (n_features is None or D == n_features)
    )
    if not ok:
        Ke = n_components if n_components is not None else "K"
        De = n_features if n_features is not None else "D"
        raise ValueError(
            f"{name} must have weights ({Ke},), means ({Ke}, {De}) and covariances "
            f"({Ke}, {De}, {De}); got {w.shape}, {m.shape} and {c.shape}."
            + (f" {hint}" if hint else "")
        )
    return w, m, c
