"""Undo label switching in a posterior of a finite Gaussian mixture.

A mixture likelihood is invariant to permuting the component labels, so a sampler
may visit any of the K! labellings, inside one chain or across chains. Per-component
summaries (means, R-hat of ``weights[0]``, ...) are only meaningful once every draw
carries the same labelling. :func:`relabel` finds, draw by draw, the permutation of
the components that best matches a reference, with an optimal assignment
(:func:`scipy.optimize.linear_sum_assignment`) on one of two stated costs:

``method="stephens"`` (default; Stephens 2000, J. R. Stat. Soc. B 62:795)
    With ``P_s`` the (N, K) allocation probabilities ``p(z_n = j | x_n, theta_s)`` of
    draw ``s`` and ``Q`` the reference's (N, K) allocation probabilities, assigning the
    draw's component ``j`` to reference label ``k`` costs

    ``cost[j, k] = sum_n p_nj log(p_nj / q_nk)``

    (a Kullback-Leibler divergence summed over observations). The term
    ``sum_n p_nj log p_nj`` does not depend on ``k``, so the assignment minimises
    ``-sum_n p_nj log q_nk``; ``q`` is floored at ``1e-300`` before the log.

``method="means"`` (cheap)
    ``cost[j, k] = sum_d ((mu_sjd - m_kd) / sd_d)^2``: squared distance between the
    draw's component means and the reference means, each feature scaled by the
    standard deviation of the observed data.

The reference is an EM fit (anything with ``weights``, ``means`` and ``covariances``
attributes, e.g. :class:`bayesmix.EMResult`) or, when ``reference=None``, the
posterior itself: Stephens' algorithm starts from the draw with the highest log
density (``sample_stats/lp`` when present, else the total log-likelihood) and
alternates (i) relabel every draw against ``Q``, (ii) set ``Q`` to the mean of the
relabelled ``P_s``, until no permutation changes. The labels of that starting draw
define the final labelling.

Dirichlet-process fits are refused: their many near-empty components make a
labelling ill-defined; use the label-invariant :func:`bayesmix.coclustering` and
:func:`bayesmix.point_partition` instead.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import linear_sum_assignment

from bayesmix.core._gaussian import responsibilities, responsibilities_skn
from bayesmix.core._validation import BayesmixWarning, check_positive
from bayesmix.mcmc._trace import flatten_draws, get_observed, get_params, mixture_params

# arviz_stats is imported inside diagnostics() only: relabel() needs no ArviZ.

__all__ = ["LabelSwitchingWarning", "check_labels_usable", "diagnostics", "relabel"]

_METHODS = ("stephens", "means")
_PERM_GROUP = "relabel"
_PERM_VAR = "permutation"
# Cap on the bytes of allocation probabilities computed at once (chunks of draws).
_CHUNK_BYTES = 64e6
#: Stephens' cost is a sum over observations; above this many it is summed over a
#: seeded random subset of this size (``max_obs``). The assignment only needs the sign
#: of differences between K! sums of n terms each: at n = 1e5, D = 10, K = 8 (2 x 500
#: draws) the full cost took 33 s of the 1e5-row benchmark; on injected permutations
#: the subset finds the same permutation in every draw (tests/test_labelswitching.py).
#: 5000 (was 20,000): each reference-free iteration is one pass of the densities of
#: every draw over the subset, 0.4 s instead of 1.5 s at D = 10, K = 8, 1000 draws
RELABEL_MAX_OBS = 5000


class LabelSwitchingWarning(BayesmixWarning):
    """Chains or draws sit in different labellings of the mixture components."""


def check_labels_usable(idata, *, what):
    """Raise a clear error if ``idata`` is a Dirichlet-process fit.

    Parameters
    ----------
    idata : xarray.DataTree
    what : str
        Name of the calling function, used in the message.
    """
    model = str(idata.attrs.get("model", "gmm")).lower()
    if model in ("dpgmm", "mfm"):
        kind = "Dirichlet-process" if model == "dpgmm" else "mixture-of-finite-mixtures"
        raise ValueError(
            f"{what} needs consistent component labels, but idata is a {kind} fit "
            f"(attrs['model'] == {model!r}), whose components switch labels and mostly sit "
            "empty by design. Use the label-invariant bayesmix.coclustering(idata) and "
            "bayesmix.point_partition(idata) instead, or fit a finite mixture with "
            "bayesmix.build_gmm."
        )


def _reference_params(reference, K, D):
    return mixture_params(
        reference,
        "reference",
        n_components=K,
        n_features=D,
        hint=(
            f"relabel needs a reference with the same number of components as the posterior "
            f"(K={K}) on the same data: fit it with bayesmix.fit_em(X, {K}, ...) (covariances "
            "as full matrices, as fit_em returns them)."
        ),
    )


def _chunk_size(N, K, D):
    return max(1, int(_CHUNK_BYTES // max(1, N * K * (D + 4) * 8)))


def _assign(cost):
    """Permutation ``perm`` (new label k <- old label perm[k]) minimising ``cost[j, perm^-1]``."""
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty_like(cols)
    perm[cols] = rows
    return perm


def _stephens_perms(X, w, m, c, log_q, chunk):
    """Permutations of every draw against log reference probabilities; also the mean of
    the relabelled allocation probabilities."""
    S, K = w.shape
    perms = np.empty((S, K), dtype=np.int64)
    q_sum = np.zeros((K, X.shape[0]))  # transposed: rows of the kernel's layout
    for start in range(0, S, chunk):
        sl = slice(start, start + chunk)
        P = responsibilities_skn(X, w[sl], m[sl], c[sl])  # (s, K, N)
        # cost[s, j, k] = -sum_n p_nj log q_nk (+ a term constant in k), by BLAS
        cost = -np.matmul(P, log_q)
        for i, s in enumerate(range(sl.start, min(sl.stop, S))):
            perms[s] = _assign(cost[i])
            q_sum += P[i][perms[s]]
    return perms, q_sum.T / S


def _means_perms(m, ref_means, scale):
    S, K, _ = m.shape
    a = m / scale
    b = ref_means / scale
    cost = ((a[:, :, None, :] - b[None, None, :, :]) ** 2).sum(-1)  # (S, j, k)
    perms = np.empty((S, K), dtype=np.int64)
    for s in range(S):
        perms[s] = _assign(cost[s])
    mean_relabelled = np.take_along_axis(m, perms[:, :, None], axis=1).mean(0)
    return perms, mean_relabelled


def _start_draw(idata, C, S):
    """Flat index of the draw with the highest log density."""
    if "sample_stats" in idata.children and "lp" in idata["sample_stats"].data_vars:
        lp = idata["sample_stats"]["lp"].transpose("chain", "draw").values.reshape(C * S)
        if np.all(np.isfinite(lp)):
            return int(np.argmax(lp))
    from bayesmix.mcmc._pointwise import total_log_likelihood

    # sample_stats/loglik, the stored group's sum, or chunked over observations
    tot = total_log_likelihood(idata).transpose("chain", "draw").values.reshape(C * S)
    return int(np.nanargmax(tot)) if np.isfinite(tot).any() else 0


def _permute_dataset(ds, perms):
    """Permute the ``component`` axis of every variable of ``ds`` that has one."""
    C, S, K = perms.shape
    ci = np.arange(C)[:, None, None]
    si = np.arange(S)[None, :, None]
    out = {}
    for name, da in ds.data_vars.items():
        if "component" not in da.dims or not {"chain", "draw"} <= set(da.dims):
            out[name] = da
            continue
        if da.sizes["component"] != K:
            raise ValueError(
                f"posterior variable {name!r} has {da.sizes['component']} components, expected "
                f"{K}; cannot relabel it consistently."
            )
        rest = [d for d in da.dims if d not in ("chain", "draw", "component")]
        order = ["chain", "draw", "component", *rest]
        vals = da.transpose(*order).values
        new = vals[ci, si, perms]
        out[name] = xr.DataArray(new, dims=order, coords=da.coords, attrs=da.attrs).transpose(
            *da.dims
        )
    return xr.Dataset(out, coords=ds.coords, attrs=ds.attrs)


def _majority_perms(perms):
    """Most frequent permutation in each chain and its share of draws."""
    result = []
    for chain_perms in perms:
        uniq, counts = np.unique(chain_perms, axis=0, return_counts=True)
        i = int(np.argmax(counts))
        result.append((tuple(int(v) for v in uniq[i]), counts[i] / chain_perms.shape[0]))
    return result


def relabel(
    idata,
    reference=None,
    *,
    method="stephens",
    max_iter=100,
    chunk_size=None,
    max_obs=RELABEL_MAX_OBS,
    random_seed=0,
):
    """Undo label switching: permute the components of every draw to one labelling.

    Parameters
    ----------
    idata : xarray.DataTree
        A finite-mixture posterior from :func:`bayesmix.sample` (schema in
        :mod:`bayesmix.mcmc._trace`).
    reference : EMResult-like or None
        Anything with ``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D, D),
        e.g. ``bayesmix.fit_em(X, K)``: the relabelled components then line up with
        the reference's. ``None`` iterates Stephens' algorithm from the posterior's
        own highest-density draw (see the module docstring).
    method : {"stephens", "means"}
        The assignment cost (stated in the module docstring).
    max_iter : int
        Maximum iterations of the reference-free algorithm.
    chunk_size : int, optional
        Draws per chunk when computing allocation probabilities (memory bound);
        default keeps temporaries near 64 MB.
    max_obs : int or None
        ``method="stephens"`` with more observations than this sums its cost over a
        random subset of ``max_obs`` of them (seeded by ``random_seed``; recorded in
        the root attr ``relabel_obs_used``). ``None`` uses every observation.
    random_seed : int
        Seed of that subset.

    Returns
    -------
    xarray.DataTree
        A copy whose posterior variables with a ``component`` dim (weights, means,
        covariances, variances ...) are permuted draw by draw. Group ``relabel``
        holds ``permutation`` (chain, draw, component): relabelled component ``k`` of
        a draw is the component ``permutation[k]`` of the input (composed with any
        earlier relabelling). Root attrs gain ``relabelled = 1``, ``relabel_method``,
        ``relabel_reference`` and ``relabel_n_iter``.

    Warns
    -----
    LabelSwitchingWarning
        When chains sat in different labellings (their most frequent permutations
        differ). The returned trace is aligned; recompute diagnostics with
        :func:`diagnostics`.

    Raises
    ------
    ValueError
        For a Dirichlet-process fit, a reference with another number of
        components, or an unknown method.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> w = np.full((1, 2, 2), 0.5)
    >>> mu = np.array([[[[0.0], [5.0]], [[5.0], [0.0]]]])  # draw 1 is switched
    >>> cov = np.ones((1, 2, 2, 1, 1))
    >>> dt = relabel(from_arrays(w, mu, cov, np.array([[0.0], [5.0]])))
    >>> dt["posterior"]["means"].values[0, :, :, 0]
    array([[0., 5.],
           [0., 5.]])
    """
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"idata must be an xarray.DataTree from bayesmix.sample; got {type(idata).__name__}."
        )
    check_labels_usable(idata, what="relabel")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {list(_METHODS)}; got {method!r}.")
    max_iter = int(check_positive(max_iter, "max_iter"))
    w, m, c = get_params(idata)
    X = get_observed(idata)
    n_obs = X.shape[0]
    if max_obs is not None:
        max_obs = int(check_positive(max_obs, "max_obs"))
        if method == "stephens" and n_obs > max_obs:
            rng = np.random.default_rng(random_seed)
            X = X[np.sort(rng.choice(n_obs, size=max_obs, replace=False))]
    C, S, K = w.shape
    D = m.shape[-1]
    if chunk_size is None:
        chunk_size = _chunk_size(X.shape[0], K, D)
    flat = flatten_draws(w, m, c)
    start = _start_draw(idata, C, S) if reference is None else None
    perms, n_iter = _permutations(X, flat, method, reference, start, max_iter, chunk_size)
    perms = perms.reshape(C, S, K)
    _warn_if_chains_disagree(perms)
    attrs = {
        "relabelled": 1,
        "relabel_method": method,
        "relabel_reference": "posterior" if reference is None else type(reference).__name__,
        "relabel_n_iter": int(n_iter),
        "relabel_obs_used": int(X.shape[0]) if method == "stephens" else n_obs,
    }
    return _relabelled_tree(idata, perms, attrs)


def _permutations(X, flat, method, reference, start, max_iter, chunk_size):
    """Per-draw permutations (S, K) and the iterations used.

    Against a ``reference`` one assignment per draw; without one, the reference-free
    fixed point from the flat draw ``start``.
    """
    wf, mf, cf = flat
    K, D = mf.shape[1:]
    if K == 1:
        return np.zeros((wf.shape[0], 1), dtype=np.int64), 0
    if method == "stephens":

        def step(q):
            return _stephens_perms(X, wf, mf, cf, np.log(np.maximum(q, 1e-300)), chunk_size)

        if reference is not None:
            return step(responsibilities(X, *_reference_params(reference, K, D)))[0], 1
        q0 = responsibilities(X, wf[start], mf[start], cf[start])
        return _fixed_point(step, q0, max_iter, "Stephens' algorithm")
    scale = np.nanstd(X, axis=0) if np.isnan(X).any() else X.std(axis=0)  # gaps: observed
    scale[scale == 0] = 1.0

    def step(ref):
        return _means_perms(mf, ref, scale)

    if reference is not None:
        return step(_reference_params(reference, K, D)[1])[0], 1
    return _fixed_point(step, mf[start], max_iter, "the means algorithm")


def _fixed_point(step, state, max_iter, what):
    """Iterate ``perms, state = step(state)`` until the permutations stop changing."""
    perms = None
    for n_iter in range(1, max_iter + 1):
        new, state = step(state)
        if perms is not None and np.array_equal(new, perms):
            return perms, n_iter
        perms = new
    warnings.warn(
        f"relabel: {what} did not settle within max_iter={max_iter} "
        "iterations; the last labelling is returned. Increase max_iter or pass an EM "
        "fit as reference.",
        LabelSwitchingWarning,
        stacklevel=4,
    )
    return perms, max_iter


def _warn_if_chains_disagree(perms):
    """Warn when the chains' most frequent permutations differ (perms: (C, S, K))."""
    majority = _majority_perms(perms)
    if len({p for p, _ in majority}) <= 1:
        return
    lines = "; ".join(
        f"chain {i}: {list(p)} ({share:.0%} of draws)" for i, (p, share) in enumerate(majority)
    )
    switched = 1.0 - float(np.mean([share for _, share in majority]))
    within = (
        f" Labels also switched within chains ({switched:.0%} of draws differ from their "
        "chain's most frequent permutation)."
        if switched > 0.05
        else ""
    )
    # a chain that switches labels in most draws explores the labellings (a Gibbs
    # sampler with split-merge moves on an overfitted K does): not a start problem
    fix = (
        " Such switching is what a sampler that mixes over the labellings does (e.g. "
        "Gibbs with split-merge moves on an overfitted K)."
        if switched > 0.5
        else " Initialising every chain from the EM fit "
        "(bayesmix.sample(model, init=em_result)) avoids this."
    )
    warnings.warn(
        "relabel: chains sat in different labellings of the components (most frequent "
        f"permutation per chain: {lines}).{within} The returned trace is aligned; R-hat/ESS "
        "computed on the raw trace are meaningless, recompute them with "
        f"`bayesmix.diagnostics(relabelled)`.{fix}",
        LabelSwitchingWarning,
        stacklevel=3,
    )


def _relabelled_tree(idata, perms, attrs):
    """A copy of ``idata`` with permuted posterior components and the permutation group."""
    # compose with an earlier relabelling so the stored permutation refers to the raw draws
    total = perms
    if _PERM_GROUP in idata.children and _PERM_VAR in idata[_PERM_GROUP].data_vars:
        prev = idata[_PERM_GROUP][_PERM_VAR].transpose("chain", "draw", "component").values
        total = np.take_along_axis(prev, perms, axis=-1)
    out = idata.copy()
    post = idata["posterior"].to_dataset()
    out["posterior"] = _permute_dataset(post, perms)
    out[_PERM_GROUP] = xr.Dataset(
        {_PERM_VAR: (("chain", "draw", "component"), total)},
        coords={
            "chain": post["chain"].values,
            "draw": post["draw"].values,
            "component": post["component"].values,
        },
    )
    out.attrs.update(attrs)
    return out


def diagnostics(idata, *, var_names=("weights", "means", "covariances"), rhat_max=1.01):
    """R-hat and effective sample sizes per parameter, for a relabelled posterior.

    Parameters
    ----------
    idata : xarray.DataTree
        Preferably the output of :func:`relabel`; raw traces give meaningless
        per-component diagnostics when labels switched (a warning says so).
    var_names : sequence of str
        Posterior variables to diagnose.
    rhat_max : float
        Threshold above which a warning is emitted.

    Returns
    -------
    pandas.DataFrame
        One row per scalar parameter: ``variable``, ``component``, ``feature``,
        ``feature2`` (empty where not applicable), ``rhat`` (rank-normalised split
        R-hat), ``ess_bulk``, ``ess_tail`` (arviz_stats). Entries constant over all
        draws (e.g. the zero off-diagonals of a diagonal covariance) and the upper
        triangle of symmetric ``covariances`` are left out.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> w = rng.dirichlet([50, 50], size=(2, 50))
    >>> mu = rng.normal(size=(2, 50, 2, 1))
    >>> cov = np.ones((2, 50, 2, 1, 1)) + rng.uniform(0, 0.1, size=(2, 50, 2, 1, 1))
    >>> table = diagnostics(relabel(from_arrays(w, mu, cov, np.zeros((3, 1)))))
    >>> list(table.columns)
    ['variable', 'component', 'feature', 'feature2', 'rhat', 'ess_bulk', 'ess_tail']
    """
    import arviz_stats as azs

    if "posterior" not in idata.children:
        raise ValueError("idata has no 'posterior' group; pass the result of bayesmix.sample.")
    post = idata["posterior"].to_dataset()
    missing = [v for v in var_names if v not in post.data_vars]
    if missing:
        raise ValueError(f"posterior lacks {missing}; available variables: {list(post.data_vars)}.")
    if not idata.attrs.get("relabelled") and int(idata.attrs.get("n_components", 2)) > 1:
        warnings.warn(
            "diagnostics: idata has not been relabelled, so per-component R-hat/ESS may reflect "
            "label switching rather than poor mixing. Call bayesmix.relabel(idata, reference=em) "
            "first.",
            LabelSwitchingWarning,
            stacklevel=2,
        )
    ds = post[list(var_names)]
    if ds.sizes.get("chain", 1) < 2:
        warnings.warn(
            "diagnostics: R-hat needs at least two chains; with one chain the rhat column is "
            "NaN (ESS is still computed). Sample with chains >= 2 to check convergence.",
            BayesmixWarning,
            stacklevel=2,
        )
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = azs.rhat(ds)
        ess_b = azs.ess(ds, method="bulk")
        ess_t = azs.ess(ds, method="tail")
    rows = [row for name in var_names for row in _diagnostic_rows(ds[name], rhat, ess_b, ess_t)]
    table = pd.DataFrame(
        rows,
        columns=["variable", "component", "feature", "feature2", "rhat", "ess_bulk", "ess_tail"],
    )
    bad = table[table["rhat"] > rhat_max]
    if len(bad):
        worst = bad.loc[bad["rhat"].idxmax()]
        warnings.warn(
            f"diagnostics: {len(bad)} parameter(s) have R-hat > {rhat_max} (worst: "
            f"{worst['variable']} component {worst['component']}, R-hat {worst['rhat']:.3f}). "
            "Try more tune/draws, initialising chains from the EM fit, relabelling against an EM "
            "reference, or a smaller number of components (an empty or redundant component mixes "
            "poorly).",
            BayesmixWarning,
            stacklevel=2,
        )
    return table


def _diagnostic_rows(da, rhat, ess_b, ess_t):
    """Table rows of one posterior variable (constant entries and upper triangles left out)."""
    name = da.name
    other = [d for d in da.dims if d not in ("chain", "draw")]
    const = (da.max(("chain", "draw")) == da.min(("chain", "draw"))).transpose(*other).values
    r = rhat[name].transpose(*other).values
    eb = ess_b[name].transpose(*other).values
    et = ess_t[name].transpose(*other).values
    rows = []
    for idx in np.ndindex(*r.shape):
        if const[idx]:
            continue
        labels = {d: da[d].values[i] for d, i in zip(other, idx, strict=True)}
        if (
            name == "covariances"
            and "feature" in labels
            and idx[other.index("feature2")] > idx[other.index("feature")]
        ):
            continue
        rows.append(
            {
                "variable": name,
                "component": labels.get("component", ""),
                "feature": labels.get("feature", ""),
                "feature2": labels.get("feature2", ""),
                "rhat": float(r[idx]),
                "ess_bulk": float(eb[idx]),
                "ess_tail": float(et[idx]),
            }
        )
    return rows
