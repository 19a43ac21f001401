"""Posterior predictive replicates and checks: :func:`posterior_predictive`, :func:`ppc_statistics`.

A replicate data set is drawn for each (chosen) posterior draw ``theta_s``: every row
``n = 1..N`` draws its component ``z_n ~ Categorical(w_s)`` (a noise component, when the
posterior has ``noise_weight``, with probability ``w_0``) and then
``x_n ~ N(mu_{s, z_n}, Sigma_{s, z_n})`` (noise rows: uniform over the box described in
:func:`posterior_predictive`). Only the posterior's parameters are read (``weights``,
``means``, ``covariances``, always full matrices in the layout of
:mod:`bayesmix.mcmc._trace`), so the same code serves NUTS and Gibbs posteriors, finite,
DP and MFM models (an MFM's zero-weight padding is never drawn), and a saved DataTree.

:func:`ppc_statistics` compares test statistics ``T(x_rep^s)`` of each replicate with
``T(x)`` of the observed data and reports Gelman, Meng & Stern's (1996) posterior
predictive p-values ``P(T(x_rep) >= T(x) | x)``.
"""

from __future__ import annotations

import contextlib

import numpy as np

from bayesmix.core._gaussian import log_mixture_density, numba_available
from bayesmix.core._validation import check_int, check_random_state
from bayesmix.mcmc._pointwise import _noise
from bayesmix.mcmc._trace import get_observed, get_params

__all__ = [
    "MAX_PPC_VALUES",
    "MODE_BANDWIDTH_FACTOR",
    "MODE_MIN_HEIGHT",
    "PPC_STATISTICS",
    "binned_density",
    "count_modes",
    "posterior_predictive",
    "ppc_statistics",
]

#: the largest replicate :func:`posterior_predictive` allocates, in values
#: (chains x draws x N x D float64: 5e7 values = 400 MB); above it, pass ``n_draws``
MAX_PPC_VALUES = 50_000_000
#: elements of the (draws, N, K) / (draws, N, D, D) working blocks drawn at once
_BLOCK_VALUES = 4_000_000

#: the statistics :func:`ppc_statistics` computes by default, in its table's order
PPC_STATISTICS = ("mean", "sd", "min", "max", "q05", "q95", "corr", "n_modes", "deviance")


def _is_tree(obj):
    return hasattr(obj, "children") and "posterior" in getattr(obj, "children", {})


def _draw_positions(n_chain_draws, n_draws):
    """Evenly spaced draw positions within a chain (all of them when ``n_draws`` is None)."""
    want = n_chain_draws if n_draws is None else min(n_draws, n_chain_draws)
    return np.unique(np.linspace(0, n_chain_draws - 1, want).round().astype(int))


def _sqrt_covariances(cov):
    """Lower factors ``L`` with ``L L^T = cov`` (Cholesky; a symmetric square root where a
    draw's matrix is only positive semi-definite), shape (..., D, D)."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        lam, vec = np.linalg.eigh(0.5 * (cov + np.swapaxes(cov, -1, -2)))
        return vec * np.sqrt(np.clip(lam, 0.0, None))[..., None, :]


def _noise_box(X, volume):
    """``(low, high)`` of the noise component's box: the observed data's bounding box,
    scaled about its centre to the posterior's ``noise_volume``."""
    low, high = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    ranges = high - low
    box = float(np.prod(ranges))
    if np.isfinite(box) and box > 0:
        ranges = ranges * (float(volume) / box) ** (1.0 / X.shape[1])
    else:  # a constant feature: a cube of the right volume
        ranges = np.full(X.shape[1], float(volume) ** (1.0 / X.shape[1]))
    centre = 0.5 * (low + high)
    return centre - 0.5 * ranges, centre + 0.5 * ranges


def posterior_predictive(idata, *, n_draws=None, random_seed=None):
    """Draw replicate data sets from the posterior: the ``posterior_predictive`` group.

    For each kept posterior draw ``s`` and each row ``n`` of the observed data, a
    component ``z ~ Categorical(w_s)`` and then ``x ~ N(mu_{s,z}, Sigma_{s,z})``.

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior (:func:`bayesmix.sample`, :func:`bayesmix.load_fit`,
        :func:`bayesmix.from_arrays`) with ``posterior`` variables ``weights`` (chain,
        draw, component), ``means`` and ``covariances``, and ``observed_data/X``
        (obs, feature), which gives N and the feature names. Finite, DP and MFM
        posteriors from NUTS or Gibbs all have this layout. A noise component
        (``posterior/noise_weight`` with root attr ``noise_volume``) draws its rows
        uniformly from the observed data's bounding box (NaN ignored), scaled about
        its centre to the volume ``noise_volume`` (the box itself under
        ``noise=True``). Rows with missing entries are replicated in full
        (:func:`ppc_statistics` masks the same entries in the replicate).
    n_draws : int, optional
        Posterior draws to keep per chain, evenly spaced (first and last included).
        ``None`` (default) keeps every draw.
    random_seed : int or numpy.random.Generator, optional
        Seed of the replicate draws: the same seed and posterior give the same replicate.

    Returns
    -------
    xarray.DataTree
        A new tree: ``idata``'s groups (shared, not copied) plus ``posterior_predictive``
        with ``X`` (chain, draw, obs, feature), float64; its ``draw`` coordinate holds
        the kept draws' labels. An existing ``posterior_predictive`` group is replaced;
        ``idata`` itself is unchanged.

    Raises
    ------
    ValueError
        Before allocating, when chains x kept draws x N x D exceeds
        :data:`MAX_PPC_VALUES` (5e7 values, 400 MB of float64): pass a smaller
        ``n_draws``.

    Notes
    -----
    Memory: the replicate is ``8 * chains * draws * N * D`` bytes (4 chains x 1000
    draws of Old Faithful, N = 272, D = 2: 17 MB; 4 x 1000 draws of N = 1e5, D = 5:
    16 GB, refused: ``n_draws=20`` makes it 80 MB). The working blocks are bounded
    separately (about :data:`_BLOCK_VALUES` values).

    Examples
    --------
    >>> import numpy as np
    >>> import bayesmix as bm
    >>> w = np.full((2, 5, 2), 0.5)
    >>> mu = np.zeros((2, 5, 2, 1)); mu[..., 1, 0] = 3.0
    >>> cov = np.ones((2, 5, 2, 1, 1))
    >>> dt = bm.from_arrays(w, mu, cov, np.array([[0.0], [1.0], [3.0]]))
    >>> pp = bm.posterior_predictive(dt, n_draws=3, random_seed=0)
    >>> pp["posterior_predictive"]["X"].dims, pp["posterior_predictive"]["X"].shape
    (('chain', 'draw', 'obs', 'feature'), (2, 3, 3, 1))
    """
    import xarray as xr

    if not _is_tree(idata):
        raise TypeError(
            "idata must be a bayesmix posterior DataTree with a 'posterior' group (the result "
            f"of bayesmix.sample or bayesmix.load_fit); got {type(idata).__name__}."
        )
    if n_draws is not None:
        n_draws = check_int(n_draws, "n_draws", minimum=1)
    rng = check_random_state(random_seed)
    W, M, Cov = get_params(idata)
    X = get_observed(idata)
    C, S, K, D = M.shape
    N = X.shape[0]
    if X.shape[1] != D:
        raise ValueError(
            f"observed_data/X has {X.shape[1]} features but the posterior's means have {D}; "
            "pass the tree bayesmix.sample returned."
        )
    keep = _draw_positions(S, n_draws)
    n_values = C * keep.size * N * D
    if n_values > MAX_PPC_VALUES:
        fit = max(1, MAX_PPC_VALUES // max(C * N * D, 1))
        raise ValueError(
            f"the posterior predictive replicate would hold chains x draws x N x D = {C} x "
            f"{keep.size} x {N} x {D} = {n_values:.3g} float64 values "
            f"({8 * n_values / 1e9:.2f} GB), above MAX_PPC_VALUES = {MAX_PPC_VALUES:.0e} "
            f"({8 * MAX_PPC_VALUES / 1e9:.1f} GB); nothing was allocated. Pass n_draws <= "
            f"{fit} (posterior draws kept per chain, evenly spaced)."
        )
    post = idata["posterior"]
    w0 = None
    volume = idata.attrs.get("noise_volume")
    if "noise_weight" in post.data_vars and volume is not None:
        w0 = post["noise_weight"].transpose("chain", "draw").values[:, keep].reshape(-1)
        low, high = _noise_box(X, volume)
    w = W[:, keep].reshape(-1, K)
    m = M[:, keep].reshape(-1, K, D)
    L = _sqrt_covariances(Cov[:, keep].reshape(-1, K, D, D))
    probs = w if w0 is None else np.concatenate([w, w0[:, None]], axis=1)
    probs = np.clip(probs, 0.0, None)
    total = probs.sum(1, keepdims=True)
    if not np.all(np.isfinite(total) & (total > 0)):
        raise ValueError(
            "the posterior's weights must be finite and non-negative with a positive sum in "
            "every draw; some draw has none (was the tree edited by hand?)."
        )
    cum = np.cumsum(probs / total, axis=1)[:, :-1]  # (s, K_total - 1) inner boundaries
    out = np.empty((C * keep.size, N, D))
    step = max(1, _BLOCK_VALUES // max(N * max(K, D * D), 1))
    for start in range(0, out.shape[0], step):
        sl = slice(start, min(start + step, out.shape[0]))
        u = rng.random((sl.stop - sl.start, N))
        z = (u[..., None] >= cum[sl, None, :]).sum(-1)  # (s, N) component index
        eps = rng.standard_normal((sl.stop - sl.start, N, D))
        idx = np.arange(sl.start, sl.stop)[:, None]
        zg = np.minimum(z, K - 1)  # noise rows (z == K) are overwritten below
        out[sl] = m[idx, zg] + np.einsum("snij,snj->sni", L[idx, zg], eps)
        if w0 is not None:
            noisy = z == K
            if noisy.any():
                out[sl][noisy] = rng.uniform(low, high, size=(int(noisy.sum()), D))
    features = post["means"].coords["feature"].values
    obs = idata["observed_data"]["X"].coords["obs"].values
    ds = xr.Dataset(
        {"X": (("chain", "draw", "obs", "feature"), out.reshape(C, keep.size, N, D))},
        coords={
            "chain": post["chain"].values,
            "draw": post["draw"].values[keep],
            "obs": obs,
            "feature": features,
        },
        attrs={
            "n_draws_per_chain": int(keep.size),
            "note": "one replicate of the observed rows per kept posterior draw "
            "(bayesmix.posterior_predictive)",
        },
    )
    tree = idata.copy(deep=False)
    tree["posterior_predictive"] = xr.DataTree(ds)
    return tree


# ---------------------------------------------------------------------------- statistics
#: a local maximum of a kernel density counts as a mode when its height is at least
#: this fraction of the highest one (drops the ripples a lone tail point makes)
MODE_MIN_HEIGHT = 0.05
#: the mode count's bandwidth is this multiple of Silverman's rule on the observed data:
#: Silverman's rule alone finds a spurious second mode in 7-21 % of standard normal
#: samples (N = 2000 to 100), 1.5 times it in under 1 %, and still separates two unit
#: Gaussians 3 sd apart (measured, 2000 samples per N)
MODE_BANDWIDTH_FACTOR = 1.5
_MAX_GRID = 4096


def _per_feature(stat, A):
    """A per-feature statistic over the ``obs`` axis (-2) of A (..., N, D), NaN ignored."""
    nan = np.isnan(A).any()
    if stat == "mean":
        return np.nanmean(A, axis=-2) if nan else A.mean(-2)
    if stat == "sd":
        return np.nanstd(A, axis=-2, ddof=1) if nan else A.std(-2, ddof=1)
    if stat == "min":
        return np.nanmin(A, axis=-2) if nan else A.min(-2)
    if stat == "max":
        return np.nanmax(A, axis=-2) if nan else A.max(-2)
    q = {"q05": 0.05, "q95": 0.95}[stat]
    return np.nanquantile(A, q, axis=-2) if nan else np.quantile(A, q, axis=-2)


def _pairs(D):
    return [(i, j) for i in range(D) for j in range(i + 1, D)]


def _corr(A, i, j):
    """Pearson correlation of features i and j over the obs axis, rows with both observed."""
    a, b = A[..., i], A[..., j]
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.all():
        da = a - a.mean(-1, keepdims=True)
        db = b - b.mean(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (da * db).sum(-1) / np.sqrt((da**2).sum(-1) * (db**2).sum(-1))
    a = np.where(ok, a, 0.0)
    b = np.where(ok, b, 0.0)
    n = ok.sum(-1)
    ma, mb = a.sum(-1) / n, b.sum(-1) / n
    da = np.where(ok, a - ma[..., None], 0.0)
    db = np.where(ok, b - mb[..., None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (da * db).sum(-1) / np.sqrt((da**2).sum(-1) * (db**2).sum(-1))


def _bandwidth(x):
    """Silverman's rule-of-thumb bandwidth of the observed values x (NaN dropped)."""
    x = x[~np.isnan(x)]
    sd = x.std(ddof=1) if x.size > 1 else 0.0
    iqr = np.subtract(*np.quantile(x, [0.75, 0.25])) if x.size else 0.0
    spread = min(sd, iqr / 1.34) if iqr > 0 else sd
    h = 0.9 * spread * max(x.size, 1) ** -0.2
    return h if np.isfinite(h) and h > 0 else 1.0


def count_modes(values, bandwidth, low, high, *, min_height=MODE_MIN_HEIGHT):
    """Modes of the Gaussian kernel density of each row of ``values`` (R, N), NaN ignored.

    The density is binned on a grid over ``[low, high]`` (bin width about a quarter of
    the bandwidth, at most 4096 bins) and smoothed with a Gaussian of the given bandwidth;
    a mode is a local maximum at least ``min_height`` times the highest one.

    Returns
    -------
    ndarray of int, shape (R,)

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.linspace(-1, 1, 50), np.linspace(9, 11, 50)]
    >>> count_modes(x[None], 0.5, -5.0, 15.0).tolist()
    [2]
    """
    values = np.atleast_2d(np.asarray(values, dtype=float))
    R = values.shape[0]
    width = max(high - low, bandwidth)
    G = int(min(_MAX_GRID, max(64, np.ceil(4 * width / bandwidth))))
    out = np.empty(R, dtype=np.int64)
    step = max(1, _BLOCK_VALUES // G)  # (rows, G) blocks of densities
    for start in range(0, R, step):
        dens = binned_density(values[start : start + step], bandwidth, low, low + width, G)
        dens = np.pad(dens, ((0, 0), (1, 1)))
        mid = dens[:, 1:-1]
        peak = (mid > dens[:, :-2]) & (mid >= dens[:, 2:])
        peak &= mid >= min_height * mid.max(axis=1, keepdims=True)
        out[start : start + step] = peak.sum(1)
    return out


def binned_density(values, bandwidth, low, high, n_grid, *, clip=True):
    """Gaussian kernel density of each row of ``values`` (R, N) on a grid, binned.

    The values are counted in ``n_grid`` equal bins over ``[low, high]`` and the counts
    smoothed with a Gaussian of sd ``bandwidth`` (truncated at 4 sd): O(N + n_grid) per
    row whatever N. NaN entries are ignored; values outside the grid go to the edge
    bins with ``clip`` and are dropped (still counted in the normalisation) without.

    Returns
    -------
    ndarray, shape (R, n_grid)
        Densities at the bin centres ``low + (i + 1/2) (high - low) / n_grid``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1, 5000))
    >>> d = binned_density(x, 0.2, -5.0, 5.0, 200)
    >>> round(float(d.sum() * 10 / 200), 3), round(float(d.max()), 1)
    (1.0, 0.4)
    """
    from scipy.ndimage import gaussian_filter1d

    values = np.atleast_2d(np.asarray(values, dtype=float))
    R = values.shape[0]
    delta = (high - low) / n_grid
    ok = ~np.isnan(values)
    pos = np.floor((np.where(ok, values, low) - low) / delta)
    if clip:
        pos = np.clip(pos, 0, n_grid - 1)
    else:
        ok &= (pos >= 0) & (pos < n_grid)
        pos = np.clip(pos, 0, n_grid - 1)
    flat = (np.arange(R)[:, None] * n_grid + pos.astype(np.int64))[ok]
    hist = np.bincount(flat, minlength=R * n_grid).reshape(R, n_grid).astype(float)
    n = np.maximum((~np.isnan(values)).sum(1), 1)[:, None]
    dens = gaussian_filter1d(hist, bandwidth / delta, axis=1, mode="constant", truncate=4.0)
    return dens / (n * delta)


def _mid_p(rep, obs):
    """``P(T_rep > T_obs) + P(T_rep = T_obs) / 2`` over the draws (axis 0)."""
    return (rep > obs).mean(0) + 0.5 * (rep == obs).mean(0)


def ppc_statistics(
    idata,
    *,
    statistics=None,
    n_draws=None,
    random_seed=None,
    alpha=0.05,
    return_draws=False,
):
    """Posterior predictive test statistics and p-values, replicate against observed data.

    For every kept posterior draw ``s``, each statistic ``T`` of the replicate
    ``x_rep^s`` (the ``posterior_predictive`` group) is compared with ``T`` of the
    observed data; the posterior predictive p-value is
    ``P(T(x_rep) > T(x)) + P(T(x_rep) = T(x)) / 2`` over the draws (the mid-p value,
    so that discrete statistics such as the number of modes are not biased by ties).
    A p-value near 0 says the model's replicates fall short of the data in that
    statistic (e.g. ``max`` for heavy-tailed data fit by Gaussians), near 1 that they
    exceed it.

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior with ``observed_data/X``. Its ``posterior_predictive``
        group is used when present; otherwise one is drawn by
        :func:`posterior_predictive` with ``n_draws`` and ``random_seed``.
    statistics : sequence of str, optional
        Any of :data:`PPC_STATISTICS` (default: all):

        * ``mean``, ``sd``, ``min``, ``max``, ``q05``, ``q95``: per feature;
        * ``corr``: Pearson correlation of each pair of features (feature ``"a:b"``);
        * ``n_modes``: modes of each feature's kernel density, with the bandwidth fixed
          by the observed data (:data:`MODE_BANDWIDTH_FACTOR` times Silverman's rule)
          and the same grid for every replicate (:func:`count_modes`); a one-component
          fit to two separated clusters gives replicates with one mode where the data
          have two;
        * ``deviance``: the discrepancy ``-2 sum_n log p(x_n | theta_s)`` under the same
          draw's mixture for the replicate and for the data (feature ``"all"``; rows
          with a missing value left out): large observed deviance, p-value near 0,
          says the data are less likely under the model than its own replicates.
    n_draws : int, optional
        Draws per chain when the replicate has to be drawn (see
        :func:`posterior_predictive`; also its memory limit).
    random_seed : int or numpy.random.Generator, optional
        Seed of the replicate, when it has to be drawn.
    alpha : float
        The ``extreme`` column flags p-values outside ``[alpha / 2, 1 - alpha / 2]``.
    return_draws : bool
        Also return the per-draw replicate statistics.

    Returns
    -------
    pandas.DataFrame
        One row per (statistic, feature): ``statistic``, ``feature``, ``observed``
        (for ``deviance`` its posterior mean), ``replicated_mean``, ``replicated_sd``,
        ``p_value``, ``extreme``.
    dict of str -> ndarray, shape (chain, draw, ...), only with ``return_draws``
        The replicate statistics per draw (per-feature statistics (chain, draw, D),
        ``corr`` (chain, draw, n_pairs), ``deviance`` (chain, draw, 2): replicate, observed).

    Notes
    -----
    Missing values in the observed data are masked in every replicate too, so that both
    sides of each comparison are computed over the same entries. Posterior predictive
    p-values use the data twice and are conservative (concentrated near 0.5 when the
    model fits), so read an extreme one as a failure and a moderate one as no evidence
    either way.

    Examples
    --------
    >>> import numpy as np
    >>> import bayesmix as bm
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 1))
    >>> w = np.ones((2, 50, 1)); mu = np.zeros((2, 50, 1, 1)); cov = np.ones((2, 50, 1, 1, 1))
    >>> dt = bm.from_arrays(w, mu, cov, X)
    >>> table = bm.ppc_statistics(dt, statistics=["mean", "max"], random_seed=1)
    >>> table[["statistic", "feature"]].values.tolist()
    [['mean', 'x0'], ['max', 'x0']]
    >>> bool(table["p_value"].between(0, 1).all())
    True
    """
    import pandas as pd

    if not _is_tree(idata):
        raise TypeError(
            "idata must be a bayesmix posterior DataTree with a 'posterior' group (the result "
            f"of bayesmix.sample or bayesmix.load_fit); got {type(idata).__name__}."
        )
    stats = PPC_STATISTICS if statistics is None else tuple(statistics)
    unknown = [s for s in stats if s not in PPC_STATISTICS]
    if unknown or not stats:
        raise ValueError(
            f"statistics must be a non-empty subset of {list(PPC_STATISTICS)}; got "
            f"{list(stats)} (unknown: {unknown})."
        )
    if not (0 < float(alpha) < 1):
        raise ValueError(f"alpha must be in (0, 1); got {alpha!r}.")
    if "posterior_predictive" not in idata.children:
        idata = posterior_predictive(idata, n_draws=n_draws, random_seed=random_seed)
    pp = idata["posterior_predictive"]["X"].transpose("chain", "draw", "obs", "feature")
    Xobs = get_observed(idata)
    C, S, N, D = pp.shape
    if (N, D) != Xobs.shape:
        raise ValueError(
            f"posterior_predictive/X has (obs, feature) = {(N, D)} but observed_data/X has "
            f"{Xobs.shape}; draw it again with bayesmix.posterior_predictive(idata)."
        )
    rep = pp.values.reshape(C * S, N, D)
    mask = np.isnan(Xobs)
    if mask.any():
        rep = np.where(mask, np.nan, rep)
    names = [str(f) for f in pp.coords["feature"].values]
    rows, draws = [], {}

    def add(stat, feats, t_rep, t_obs):
        draws[stat] = t_rep.reshape(C, S, *t_rep.shape[1:])
        t_obs_b = np.broadcast_to(t_obs, t_rep.shape)
        p = _mid_p(t_rep, t_obs_b)
        for f, name in enumerate(feats):
            rows.append(
                {
                    "statistic": stat,
                    "feature": name,
                    "observed": float(np.mean(t_obs_b[:, f])),
                    "replicated_mean": float(np.nanmean(t_rep[:, f])),
                    "replicated_sd": float(np.nanstd(t_rep[:, f], ddof=1))
                    if t_rep.shape[0] > 1
                    else np.nan,
                    "p_value": float(p[f]),
                }
            )

    for stat in stats:
        if stat in ("mean", "sd", "min", "max", "q05", "q95"):
            add(stat, names, _per_feature(stat, rep), _per_feature(stat, Xobs))
        elif stat == "corr":
            pairs = _pairs(D)
            if not pairs:
                continue
            t_rep = np.stack([_corr(rep, i, j) for i, j in pairs], axis=-1)
            t_obs = np.array([_corr(Xobs, i, j) for i, j in pairs])
            add(stat, [f"{names[i]}:{names[j]}" for i, j in pairs], t_rep, t_obs)
        elif stat == "n_modes":
            t_rep = np.empty((C * S, D), dtype=np.int64)
            t_obs = np.empty(D, dtype=np.int64)
            for f in range(D):
                h = MODE_BANDWIDTH_FACTOR * _bandwidth(Xobs[:, f])
                low = min(np.nanmin(Xobs[:, f]), np.nanmin(rep[..., f])) - 3 * h
                high = max(np.nanmax(Xobs[:, f]), np.nanmax(rep[..., f])) + 3 * h
                t_obs[f] = count_modes(Xobs[None, :, f], h, low, high)[0]
                t_rep[:, f] = count_modes(rep[..., f], h, low, high)
            add(stat, names, t_rep, t_obs)
        elif stat == "deviance":
            dev_rep, dev_obs = _deviances(idata, pp, rep, Xobs)
            add(stat, ["all"], dev_rep[:, None], dev_obs[:, None])
            draws[stat] = np.stack([dev_rep, dev_obs], axis=-1).reshape(C, S, 2)
    table = pd.DataFrame(rows)
    lo = float(alpha) / 2
    table["extreme"] = (table["p_value"] < lo) | (table["p_value"] > 1 - lo)
    return (table, draws) if return_draws else table


#: below this much work per draw (2 N K D^2) the deviances run the density kernels on
#: one thread: a threaded call per draw of Old Faithful costs more in thread start-up
#: than it computes, and on a loaded machine (load 8 on 2 cores) 200 such calls took 4 s
#: against 0.1 s on one thread
_THREADED_MIN_WORK = 2_000_000


@contextlib.contextmanager
def _few_threads(work):
    """One numba thread while the per-call ``work`` is below :data:`_THREADED_MIN_WORK`."""
    if work >= _THREADED_MIN_WORK or not numba_available():
        yield
        return
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _deviances(idata, pp, rep, Xobs):
    """``-2 sum_n log p(x_n | theta_s)`` of each replicate and of the data, per draw."""
    post = idata["posterior"].sel(chain=pp.coords["chain"], draw=pp.coords["draw"])
    W = post["weights"].transpose("chain", "draw", "component").values
    M = post["means"].transpose("chain", "draw", "component", "feature").values
    Cv = post["covariances"].transpose("chain", "draw", "component", "feature", "feature2")
    Cv = Cv.values
    K, D = M.shape[-2:]
    w, m, c = W.reshape(-1, K), M.reshape(-1, K, D), Cv.reshape(-1, K, D, D)
    log_w0 = None
    if "noise_weight" in post.data_vars and idata.attrs.get("noise_volume") is not None:
        log_w0 = _noise(
            post["noise_weight"].transpose("chain", "draw").values.reshape(-1),
            idata.attrs["noise_volume"],
        )
    rows = ~np.isnan(Xobs).any(axis=1)
    dev_rep = np.empty(w.shape[0])
    dev_obs = np.empty(w.shape[0])
    with np.errstate(divide="ignore"), _few_threads(2 * int(rows.sum()) * K * D * D):
        for s in range(w.shape[0]):
            live = w[s] > 0  # an MFM's zero-weight padding
            both = np.concatenate([rep[s][rows], Xobs[rows]])
            # a batch of one draw: the threaded numba backend of the density layer
            ll = log_mixture_density(both, w[s][None, live], m[s][None, live], c[s][None, live])[0]
            if log_w0 is not None:
                ll = np.logaddexp(ll, log_w0[s])
            n = int(rows.sum())
            dev_rep[s] = -2.0 * ll[:n].sum()
            dev_obs[s] = -2.0 * ll[n:].sum()
    return dev_rep, dev_obs
