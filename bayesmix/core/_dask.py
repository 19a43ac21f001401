"""Dask arrays for bayesmix: input checks, row-chunk tree reductions, the moments pass.

The layer under :mod:`bayesmix.em._dask` (EM) and :mod:`bayesmix.cluster._dask` (k-means):
it imports neither them nor :mod:`bayesmix.em` / :mod:`bayesmix.cluster._kmeans` (which
import it), and no Dask at import time: :func:`is_dask` looks at the type's module name
only, and every function that needs Dask imports it inside.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from bayesmix.core import _gaussian as gs

#: partial results combined per node of the tree reductions
SPLIT_EVERY = 8
#: data are persisted (loaded once into the workers' memory) when ``X.nbytes`` is below
#: this fraction of the available memory (the workers' memory limits under a distributed
#: client, else the machine's available memory)
PERSIST_FRACTION = 0.5


# =========================================================================== input
def is_dask(X):
    """Whether ``X`` is a Dask collection or an xarray object backed by one (no import).

    Examples
    --------
    >>> import numpy as np
    >>> is_dask(np.zeros((2, 2)))
    False
    """
    mod = type(X).__module__ or ""
    if mod.startswith("dask.") or mod == "dask":
        return True
    if mod.startswith("xarray."):
        return (type(getattr(X, "data", None)).__module__ or "").startswith("dask.")
    return False


def as_dask_array(X, name="X"):
    """A 2-D float64 ``dask.array.Array`` with one chunk along the features, and its names.

    Accepts a Dask array or an ``xarray.DataArray`` backed by one (feature names from
    the coordinate of its second dimension). Chunks along the feature axis are merged
    with a warning (a chunk must hold whole rows for the per-row E-step).
    """
    import dask.array as da

    names = None
    if (type(X).__module__ or "").startswith("xarray."):
        if X.ndim == 2 and X.dims[1] in X.coords:
            names = [str(v) for v in X.coords[X.dims[1]].values]
        X = X.data
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{name} must be a dask.array.Array (or an xarray.DataArray backed by one); got "
            f"{type(X).__name__}. Convert a Dask DataFrame with .to_dask_array(lengths=True)."
        )
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (n_obs, n_features); got a {X.ndim}-D Dask array "
            f"of shape {X.shape}. Reshape it, e.g. X.reshape(-1, 1) for a single feature."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must be numeric; got a Dask array of dtype {X.dtype}. Convert it with "
            "X.astype(float)."
        )
    if any(np.isnan(c) for c in X.chunks[0]):
        X = X.compute_chunk_sizes()
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name} is empty (shape {X.shape}); at least 1 row and 1 feature.")
    if X.numblocks[1] > 1:
        warnings.warn(
            f"{name} is chunked along the feature axis ({X.numblocks[1]} chunks of "
            f"{X.chunks[1]} columns); rechunking to whole rows (one chunk of {X.shape[1]} "
            "columns). Chunk only along the rows, e.g. X.rechunk({1: -1}), to avoid the copy.",
            UserWarning,
            stacklevel=4,
        )
        X = X.rechunk({1: -1})
    X = X.astype(np.float64)
    if names is None:
        names = [f"x{j}" for j in range(X.shape[1])]
    return X, names


def as_dask_weights(sample_weight, X, name="sample_weight"):
    """Frequency weights for the Dask array ``X``: a float64 Dask array chunked as X's rows.

    ``sample_weight``: None, a 1-D Dask array (any chunks; rechunked to ``X.chunks[0]``),
    a Dask Series or an ``xarray.DataArray`` backed by Dask, or an in-memory array_like
    (``da.from_array(w, chunks=(X.chunks[0],))``). The type and the shape are checked here
    with :func:`bayesmix.core._validation.check_sample_weight`'s errors; the values (NaN,
    negative, all zero) in the moments pass (:func:`moments`), after the data's checks,
    as on the numpy path.
    """
    import dask.array as da

    from bayesmix.core._validation import check_sample_weight, check_weight_shape

    if sample_weight is None:
        return None
    w = sample_weight
    if (type(w).__module__ or "").startswith("xarray."):
        w = w.data
    if not isinstance(w, da.Array) and hasattr(w, "to_dask_array"):  # a Dask Series
        w = w.to_dask_array(lengths=True)
    if not isinstance(w, da.Array):  # in memory: the values too are checked in moments()
        w = check_sample_weight(w, X.shape[0], name=name, check_values=False)
        return da.from_array(w, chunks=(X.chunks[0],))
    if w.ndim == 1 and np.isnan(w.shape[0]):
        w = w.compute_chunk_sizes()
    check_weight_shape(w, X.shape[0], name)
    w = w.astype(np.float64)
    return w if w.chunks[0] == X.chunks[0] else w.rechunk((X.chunks[0],))


def available_memory():
    """Bytes available for persisting: the workers' memory limits, else the machine's."""
    if "distributed" in sys.modules:
        from distributed import get_client

        try:
            workers = get_client().scheduler_info()["workers"].values()
            total = sum(w.get("memory_limit", 0) or 0 for w in workers)
            if total:
                return total
        except ValueError:  # no client
            pass
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:  # pragma: no cover
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def maybe_persist(X, persist):
    """``(X or X.persist(), whether persisted)`` by the rule of ``fit_em``'s ``persist``."""
    if persist is None:
        persist = X.nbytes < PERSIST_FRACTION * available_memory()
    return (X.persist(), True) if persist else (X, False)


# =========================================================================== reductions
def tree_reduce(X, block_fn, args, combine, *, extra=None, weights=None, split_every=SPLIT_EVERY):
    """``combine`` over ``block_fn(block, offset, *args)`` of every row chunk: one computation.

    ``extra``: an optional list of per-chunk arguments (e.g. the chunks of an aligned
    array, or per-chunk seeds) passed after ``offset``. ``weights``: an optional 1-D
    Dask array chunked as ``X``'s rows; its chunk goes to ``block_fn`` as ``w=``.
    """
    import dask

    blocks = X.to_delayed().ravel()
    wblocks = [None] * len(blocks) if weights is None else weights.to_delayed().ravel()
    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(int)
    fn = dask.delayed(block_fn, pure=True)
    parts = [
        fn(b, int(o), *(() if extra is None else (extra[i],)), *args, **_w_kw(wb))
        for i, (b, o, wb) in enumerate(zip(blocks, offsets, wblocks, strict=True))
    ]
    node = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [node(*parts[i : i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0].compute()


def _w_kw(w_block):
    return {} if w_block is None else {"w": w_block}


def as_weights(w):
    """A chunk of weights as a contiguous float64 array (None stays None)."""
    return None if w is None else np.ascontiguousarray(np.asarray(w, dtype=np.float64))


def add_tuples(*parts):
    """Element-wise sum of tuples of floats/arrays (the E-step statistics)."""
    return tuple(sum(vals[1:], vals[0]) for vals in zip(*parts, strict=True))


@dataclass(frozen=True)
class Moments:
    """The moments pass: rows, (weighted) mean and centred scatter, the non-finite
    counts of the data, the scale check's statistics and, with weights, what their
    checks need."""

    n: int
    mean: np.ndarray
    m2: np.ndarray
    n_nan: int = 0
    n_inf: int = 0
    n_bad_rows: int = 0
    first_bad: int = -1
    #: the sum of the weights (``n`` unweighted) and the number of positive weights
    wsum: float = 0.0
    n_pos: int = 0
    #: NaN/infinite and negative weights, and the smallest finite weight
    w_nonfinite: int = 0
    w_neg: int = 0
    w_min: float = np.inf
    #: :func:`scale_stats` of the data (None for a chunk with NaN/inf values)
    scale: tuple | None = None

    @property
    def cov(self):
        """The data covariance (weighted, ``bias=True``), shape (D, D)."""
        return self.m2 / self.wsum

    @property
    def var(self):
        return np.diag(self.cov).copy()


def scale_stats(x, offset, limit):
    """What :func:`bayesmix.core._validation.scale_error` needs of a finite chunk: per
    feature the largest ``|x|``, the minimum, the maximum and the first 6 rows (numbered
    in the whole array, from ``offset``) beyond ``limit``."""
    big = np.abs(x).max(axis=0)
    rows = tuple(
        offset + np.flatnonzero(np.abs(x[:, j]) > limit)[:6] if big[j] > limit else _NO_ROWS
        for j in range(x.shape[1])
    )
    return big, x.min(axis=0), x.max(axis=0), rows


_NO_ROWS = np.zeros(0, dtype=np.int64)


def _combine_scale(a, b):
    if a is None or b is None:
        return a if b is None else b
    rows = tuple(np.concatenate([ra, rb])[:6] for ra, rb in zip(a[3], b[3], strict=True))
    return np.maximum(a[0], b[0]), np.minimum(a[1], b[1]), np.maximum(a[2], b[2]), rows


def _scale_error(name, names, limit, stats):
    from bayesmix.core._validation import scale_error

    big, lo, hi, rows = stats
    first = [rows[j] for j in np.flatnonzero(big > limit)[:1]]
    with np.errstate(over="ignore"):  # +-1e308: hi - lo overflows; big > limit wins then
        spread = hi - lo
    return scale_error(name, names, limit, big, first, spread)


def check_chunk(x, offset, shape, names, *, name="X", check_scale=True, missing="error"):
    """A chunk of rows of a Dask array of ``shape``, checked as
    :func:`bayesmix.core._validation.check_data` checks the whole array: NaN/inf values
    (``missing="mar"``: inf and rows with no observed entry only) and (``check_scale``)
    the scale check, with its errors, rows numbered from ``offset``.

    The limit is that of the whole array; the counts, the largest value, the rows and the
    spread are the chunk's, so the text is the in-memory one when the offending rows lie
    in one chunk (a lazy check cannot see the other chunks without a second pass).
    """
    from bayesmix.core._missing import check_gaps
    from bayesmix.core._validation import nonfinite_error, scale_limit

    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    if missing == "mar":
        check_gaps(x, name, names, empty_features=False, offset=offset)
    elif not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        raise nonfinite_error(name, n_nan, n_inf, bad.size, offset + int(bad[0]))
    if check_scale:
        limit = scale_limit(*shape)
        err = _scale_error(name, names, limit, scale_stats(x, offset, limit))
        if err is not None:
            raise err
    return x


def _block_moments(x, offset, limit, w=None):
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    zero = (np.zeros(d), np.zeros((d, d)))
    finite = np.isfinite(x)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        return Moments(n, *zero, n_nan, n_inf, bad.size, offset + bad[0])
    scale = scale_stats(x, offset, limit)
    if (scale[0] > limit).any():  # an error: no scatter that would overflow
        return Moments(n, *zero, scale=scale)
    if w is None:
        mean = x.mean(axis=0)
        xc = x - mean
        return Moments(n, mean, xc.T @ xc, wsum=float(n), n_pos=n, scale=scale)
    w = as_weights(w)
    ok = np.isfinite(w)
    checks = dict(
        n_pos=int((w > 0).sum()),
        w_nonfinite=int((~ok).sum()),
        w_neg=int((w < 0).sum()),
        w_min=float(w[ok].min(initial=np.inf)),
        scale=scale,
    )
    wsum = float(w.sum())
    if checks["w_nonfinite"] or checks["w_neg"] or wsum == 0:
        return Moments(n, *zero, **checks)  # bad weights (an error) or no weight here
    mean = (w @ x) / wsum
    xc = x - mean
    return Moments(n, mean, (xc * w[:, None]).T @ xc, wsum=wsum, **checks)


def _combine_moments(*parts):
    out = parts[0]
    for p in parts[1:]:
        wsum = out.wsum + p.wsum
        frac, scale = (p.wsum / wsum, out.wsum * p.wsum / wsum) if wsum > 0 else (0.0, 0.0)
        delta = p.mean - out.mean
        firsts = [f for f in (out.first_bad, p.first_bad) if f >= 0]
        out = Moments(
            out.n + p.n,
            out.mean + delta * frac,
            out.m2 + p.m2 + np.outer(delta, delta) * scale,
            out.n_nan + p.n_nan,
            out.n_inf + p.n_inf,
            out.n_bad_rows + p.n_bad_rows,
            min(firsts) if firsts else -1,
            wsum,
            out.n_pos + p.n_pos,
            out.w_nonfinite + p.w_nonfinite,
            out.w_neg + p.w_neg,
            min(out.w_min, p.w_min),
            _combine_scale(out.scale, p.scale),
        )
    return out


def moments(X, name="X", w=None, w_name="sample_weight", feature_names=None):
    """The moments pass over a Dask array (and its weights ``w``, a Dask array chunked as
    its rows); raises the numpy path's errors, in its order: NaN/inf data, the scale
    check (naming ``feature_names``, default ``x0, x1, ...``), bad weights."""
    from bayesmix.core._validation import nonfinite_error, scale_limit, weight_value_error

    limit = scale_limit(*X.shape)
    m = tree_reduce(X, _block_moments, (limit,), _combine_moments, weights=w)
    if m.n_bad_rows:
        raise nonfinite_error(name, m.n_nan, m.n_inf, m.n_bad_rows, int(m.first_bad))
    names = feature_names or [f"x{j}" for j in range(X.shape[1])]
    err = _scale_error(name, names, limit, m.scale)
    if err is not None:
        raise err
    if w is not None:
        err = weight_value_error(w_name, m.w_nonfinite, m.w_neg, m.w_min, m.n_pos)
        if err is not None:
            raise err
    return m


# =========================================================================== EM passes
def _centred(x, shift):
    return np.ascontiguousarray(np.asarray(x, dtype=np.float64) - shift)


def _block_estep(x, offset, shift, engine, covariance, weights, means, prec_chol, w=None):
    xc = _centred(x, shift)
    labels = np.empty(xc.shape[0], dtype=np.int64)
    sw = as_weights(w)
    return gs.backend(engine).estep(xc, covariance, weights, means, prec_chol, labels, sw)


def _block_init_stats(x, offset, extra, shift, covariance, kind, payload, K, fns, w=None):
    one_hot, nearest, stats_from_resp = fns  # bayesmix.em's, passed in (em imports us)
    xc = _centred(x, shift)
    if kind == "centers":
        resp = one_hot(nearest(xc, payload), K)
    elif kind == "random":
        resp = np.random.default_rng(extra).uniform(size=(xc.shape[0], K))
        resp /= resp.sum(1, keepdims=True)
    else:  # "resp": extra is this chunk's block of responsibilities
        resp = np.asarray(extra, dtype=np.float64)
    return stats_from_resp(xc, covariance, resp, None, as_weights(w))


@dataclass(frozen=True, eq=False)
class _Context:
    """A Dask array in the fitting frame (``shift`` = its mean), the E-step engine and
    the frequency weights ``w`` (a Dask array chunked as ``X``'s rows, or None)."""

    X: object
    shift: np.ndarray
    engine: str
    var: np.ndarray | None = None
    #: ``(one_hot, nearest, stats_from_resp)`` of :mod:`bayesmix.em` (EM fits only)
    em_fns: tuple | None = None
    w: object = None

    @property
    def n(self):
        return self.X.shape[0]

    def reduce(self, block_fn, args, combine, extra=None):
        """:func:`tree_reduce` over ``X``, with the weights when there are any."""
        return tree_reduce(self.X, block_fn, args, combine, extra=extra, weights=self.w)

    def estep(self, cfg, model):
        args = (self.shift, self.engine, cfg.covariance, model.weights, model.means)
        return self.reduce(_block_estep, (*args, model.prec_chol), add_tuples)

    def init_stats(self, cfg, kind, payload, extra=None):
        args = (self.shift, cfg.covariance, kind, payload, cfg.n_components, self.em_fns)
        if extra is None:
            extra = [None] * self.X.numblocks[0]
        return self.reduce(_block_init_stats, args, add_tuples, extra=extra)


# =========================================================================== prediction
def chunk_offset(block_info):
    """The first row of a ``map_blocks`` chunk in the whole array (0 without ``block_info``)."""
    return 0 if not block_info else int(block_info[0]["array-location"][0][0])


def _block_predict(x, result, what, shape, block_info=None):
    # the in-memory methods accept gaps (NaN: marginalised over) and refuse inf
    x = check_chunk(x, chunk_offset(block_info), shape, None, check_scale=False, missing="mar")
    return getattr(result, what)(x)  # the in-memory prediction of this chunk


def lazy_predict(result, X, what):
    """``result.predict`` / ``predict_proba`` / ``score_samples`` of a Dask array, lazily.

    Every chunk is checked as the in-memory methods check their input (NaN/inf rows:
    their error, raised on compute) and then predicted by the in-memory method itself,
    so the values are those of the whole array in memory.
    """
    from dataclasses import is_dataclass, replace

    X, _ = as_dask_array(X)
    if X.shape[1] != result.n_features:
        raise ValueError(
            f"X has {X.shape[1]} features but the mixture was fitted on {result.n_features} "
            f"({result.feature_names}); pass data with the same columns."
        )
    if is_dataclass(result) and getattr(result, "labels", None) is not None:
        result = replace(result, labels=None)  # (lazy) training labels stay out of the graph
    args = (result, what, X.shape)
    if what == "predict_proba":
        n_cols = result.n_components + (getattr(result, "noise_weight", None) is not None)
        chunks = (X.chunks[0], (n_cols,))
        meta = np.empty((0, 0), dtype=np.float64)
        return X.map_blocks(_block_predict, *args, chunks=chunks, meta=meta)
    meta = np.empty(0, dtype=np.int64 if what == "predict" else np.float64)
    return X.map_blocks(_block_predict, *args, drop_axis=1, meta=meta)
