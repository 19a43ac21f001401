"""EM on chunked data: :func:`bayesmix.fit_em` on a ``dask.array.Array``.

This module never imports Dask at import time (the numpy path must not load it):
:func:`is_dask` looks at the type's module name only, and every function that needs
Dask imports it inside.

The fit is a sequence of Dask computations over the row chunks of ``X``:

1. one *moments pass* (rows, mean, centred scatter, NaN/inf count and first bad row of
   every chunk, combined with Chan's pairwise formula): the fitting frame's centre, the
   data covariance (for the collapse check), the constant-feature check and the NaN
   error, all from the same pass; with ``sample_weight`` (a Dask array chunked as the
   rows of ``X``, :func:`bayesmix.core._dask.as_dask_weights`) the weighted moments
   and the checks of the weights (NaN, negative, all zero) too;
2. the initialisation (k-means|| and Lloyd passes of :mod:`bayesmix.cluster._dask` for
   ``init="kmeans"``; k-means|| seeding alone for the other strategy names, ``"auto"``
   included: mclust's hierarchical agglomeration needs all rows in memory, so it is not
   part of the portfolio on chunked data), then one pass giving the initial sufficient
   statistics;
3. one pass per EM iteration: every chunk runs the in-memory E-step
   (``bayesmix.core._gaussian.backend(engine).estep``, the fused numba pass by default) and
   returns ``(log-likelihood, nk, sx, sxx)``; a tree reduction (``SPLIT_EVERY``
   partial sums per node) adds them; the M-step (``bayesmix.em._loop._m_step``) runs on the
   client. A worker holds one chunk at a time, and the network carries only the
   statistics (``K * (1 + D + D * (D + 1) / 2)`` floats per chunk for ``full``).
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from bayesmix.cluster import _dask as _dask_kmeans
from bayesmix.core._dask import (  # noqa: F401  (re-exported: clustering uses them)
    PERSIST_FRACTION,
    SPLIT_EVERY,
    Moments,
    _Context,
    add_tuples,
    as_dask_array,
    as_dask_weights,
    is_dask,
    lazy_predict,
    maybe_persist,
    moments,
    tree_reduce,
)
from bayesmix.em import _checks, _loop, _starts


def _initial_stats(ctx, cfg, init, rng):
    """Initial sufficient statistics (from responsibilities) and a means override."""
    import dask.array as da

    K = cfg.n_components
    nblocks = ctx.X.numblocks[0]
    if isinstance(init, str):
        if init == "random":
            seeds = list(rng.integers(0, 2**63 - 1, size=nblocks))
            return ctx.init_stats(cfg, "random", None, seeds), None
        centers = (
            _dask_kmeans.centres_for_em(ctx, K, rng)
            if init == "kmeans"
            else _dask_kmeans.kmeans_parallel(ctx, K, rng)
        )
        return ctx.init_stats(cfg, "centers", centers), None
    kind, arr = init
    if kind == "means":
        return ctx.init_stats(cfg, "centers", arr), arr
    resp = da.from_array(arr, chunks=(ctx.X.chunks[0], (K,))).to_delayed().ravel()
    return ctx.init_stats(cfg, "resp", None, list(resp)), None


def _run_em_dask(ctx, stats0, means_init, cfg, label=""):
    """One EM run, as ``bayesmix.em._loop._run_em`` with the E-step as a Dask reduction."""
    N = cfg.n_obs(ctx.X)  # the sum of the weights with sample_weight
    model = _loop._m_step(*stats0, cfg.m_key, N, cfg.reg_covar, cfg.map_prior)
    if means_init is not None:
        model.means = np.array(means_init, dtype=float)
    return _loop._iterate(lambda m: ctx.estep(cfg, m), model, cfg, N, [], cfg.max_iter, label)


_FIT_EM_KEYWORDS = frozenset(
    {
        "covariance",
        "prior",
        "n_init",
        "init",
        "max_iter",
        "tol",
        "reg_covar",
        "random_seed",
        "progress",
        "engine",
        "persist",
        "sample_weight",
    }
)


def _checked_settings(kw, X, K):
    """fit_em's settings checked as on the numpy path (``_checks._check_arguments``).

    Returns the fields of ``_loop._RunSettings`` that do not depend on the data (a dict)
    and ``(n_init, parsed init, init name, rng)``.
    """
    unsupported = sorted(
        k for k, v in kw.items() if k not in _FIT_EM_KEYWORDS and v is not None and v is not False
    )
    if unsupported:  # keywords fit_em gained after the Dask path was written
        raise ValueError(
            f"fit_em on a Dask array does not support {unsupported} yet; pass a numpy array "
            "(X.compute()) to use them, or leave them at their defaults."
        )
    covariance, n_init, max_iter, tol, reg_covar, init_parsed, init_name, rng = (
        _checks._check_arguments(X, K, **kw)
    )
    settings = dict(
        **_checks._model_settings(covariance),
        n_components=K,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        engine="numpy" if kw["engine"] == "numpy" or not _loop._numba_available() else "numba",
        progress=kw["progress"],
        prior=kw["prior"],
    )
    return settings, (n_init, init_parsed, init_name, rng)


def fit_em_dask(X, n_components, **kw):
    """:func:`bayesmix.fit_em` on a Dask array (called by it on Dask input).

    The in-memory path's settings checks and warnings (``bayesmix.em._checks``), M-step
    and iteration loop (``bayesmix.em._loop``) and result construction are reused.
    ``sample_weight`` (a Dask array or an in-memory array, shape (N,)) is checked by
    :func:`bayesmix.core._dask.as_dask_weights` and in the moments pass, and travels
    chunk by chunk with the rows of ``X`` into every pass.
    """
    from bayesmix.core._validation import check_n_components

    X_in, names = as_dask_array(X)
    N, D = X_in.shape
    w = as_dask_weights(kw.get("sample_weight"), X_in)
    K = check_n_components(n_components, N)
    settings, (n_init, init_parsed, init_name, rng) = _checked_settings(kw, X_in, K)

    Xw, persisted = maybe_persist(X_in, kw.get("persist"))
    w = w.persist() if persisted and w is not None else w
    mom = moments(Xw, w=w, feature_names=names)
    if w is not None:  # as the numpy path: K at most the number of positive weights
        check_n_components(n_components, mom.n_pos)
    _checks._check_constant_features(None, names, settings["prior"], settings["reg_covar"], mom.var)
    cfg = _loop._RunSettings(
        **settings,
        shift=mom.mean,
        map_prior=_checks._map_prior(settings["prior"], mom.mean, settings["covariance"]),
        n_eff=None if w is None else mom.wsum,
    )
    if isinstance(init_parsed, tuple) and init_parsed[0] == "means":
        init_parsed = ("means", init_parsed[1] - mom.mean)
    em_fns = (_starts.one_hot, _starts.nearest, _loop._stats_from_resp)
    ctx = _Context(Xw, mom.mean, cfg.engine, mom.var, em_fns, w)
    best = None
    for run in range(n_init):
        if cfg.progress:
            print(f"[fit_em] run {run + 1}/{n_init}", file=sys.stderr)
        stats0, means0 = _initial_stats(ctx, cfg, init_parsed, rng)
        out = _run_em_dask(ctx, stats0, means0, cfg, f" run {run + 1}" if n_init > 1 else "")
        if best is None or out.objective > best.objective:
            best = out
    data_cov = mom.cov if N > 1 else np.eye(D)
    collapsed = _checks._warn_fit_problems(best, X_in, cfg, data_cov=data_cov)
    res = _checks._em_result(
        best,
        cfg,
        N,
        names,
        collapsed=collapsed,
        n_init=n_init,
        init=init_name,
        random_seed=kw["random_seed"],
    )
    return replace(res, labels=lazy_predict(res, X_in, "predict"))


# =========================================================================== the model grid
#: seconds to wait for a scheduler given by address
CONNECT_TIMEOUT = 3


class Cluster:
    """A ``dask.distributed`` client for the model grid, or ``None`` without one.

    ``workers``: a ``LocalCluster`` with that many single-threaded worker processes;
    ``scheduler``: the address of a running scheduler (``tcp://host:8786``), reached
    within ``CONNECT_TIMEOUT`` seconds or a ValueError.
    """

    def __init__(self, workers=None, scheduler=None, memory_limit="auto"):
        self.workers, self.scheduler, self.memory_limit = workers, scheduler, memory_limit
        self.client = self._cluster = None

    def __enter__(self):
        if self.workers is None and self.scheduler is None:
            return None
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            self.client = connect(self.scheduler)
            return self.client
        import dask

        # non-daemonic workers: PyMC may start one process per chain inside a task
        with dask.config.set({"distributed.worker.daemon": False}):
            self._cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                memory_limit=self.memory_limit,
                dashboard_address=":0",
                env={"NUMBA_NUM_THREADS": "1"},  # one core per worker: no oversubscription
            )
        self.client = Client(self._cluster)
        return self.client

    def __exit__(self, *exc):
        for obj in (self.client, self._cluster):
            if obj is not None:
                obj.close()
        return False


def connect(address):
    """A ``distributed.Client`` of the scheduler at ``address``, or a one-line ValueError."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(
            f"cannot reach the Dask scheduler at {address!r} within {CONNECT_TIMEOUT} s "
            f"({type(exc).__name__}); check the address (e.g. tcp://host:8786) and that "
            "`dask scheduler` runs there, or use --workers N."
        ) from None


def run_tasks(client, fn, arg_tuples, names, say=None):
    """``[fn(*args) for args in arg_tuples]`` on ``client``, reporting fits as they finish.

    Every call is a task (``client.submit``, not pure: each has its own explicit seed in
    its arguments, so the results equal the serial loop's). ``say(line)`` gets one
    line per finished task, in completion order; results come back in input order.
    """
    from distributed import as_completed

    futures = [client.submit(fn, *args, pure=False) for args in arg_tuples]
    index = {f.key: i for i, f in enumerate(futures)}
    out = [None] * len(futures)
    for done, fut in enumerate(as_completed(futures), 1):
        i = index[fut.key]
        out[i] = fut.result()
        if say is not None:
            say(f"[{done}/{len(futures)}] {names[i]} done")
    return out
