"""The scikit-learn estimators against the functions they wrap: no time or memory overhead.

``bayesmix.sklearn.GaussianMixture(...).fit(X)`` against ``bayesmix.fit_em(X, ...)`` and
``bayesmix.sklearn.KMeans(...).fit(X)`` against ``bayesmix.kmeans(X, ...)``, same data,
same settings and seed (so the same k-means start and the same EM iterations: the
results are identical, checked here). A large data set (the EM benchmark's, fixed
number of iterations) and a small one (Old Faithful, where a fixed per-call cost such
as input validation would show). Times: minimum over interleaved repeats (the machine is
shared: other processes only ever add time). Memory: tracemalloc peak of the numpy
allocations during the fit, which would grow by the data size if the estimator copied X.

Usage: ``python benchmarks/bench_sklearn_api.py`` (writes the "sklearn_api" section of
RESULTS.md), or ``--quick`` for a small smoke run that writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
import warnings

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import machine_info, write_section
from bench_em import make_data


def _timed(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0: fixed iterations, ConvergenceWarning
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out


def _peak_mb(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def compare(label, X, est_fit, fn_fit, same, repeats):
    """Interleaved timings and memory of the estimator and the function."""
    t_est, t_fn = [], []
    for _ in range(repeats):
        t, est = _timed(est_fit)
        t_est.append(t)
        t, res = _timed(fn_fit)
        t_fn.append(t)
    assert same(est, res), f"{label}: estimator and function disagree"
    row = dict(
        case=label,
        n=X.shape[0],
        d=X.shape[1],
        est_s=min(t_est),
        fn_s=min(t_fn),
        est_med=float(np.median(t_est)),
        fn_med=float(np.median(t_fn)),
        repeats=repeats,
        est_mb=_peak_mb(est_fit),
        fn_mb=_peak_mb(fn_fit),
        data_mb=X.nbytes / 2**20,
    )
    row["overhead_ms"] = 1e3 * (row["est_s"] - row["fn_s"])
    row["overhead_med_ms"] = 1e3 * (row["est_med"] - row["fn_med"])
    print(
        f"{label:42s} n={row['n']:>7,} estimator {row['est_s'] * 1e3:9.2f} ms  function "
        f"{row['fn_s'] * 1e3:9.2f} ms  overhead {row['overhead_ms']:+7.2f} ms (median "
        f"{row['overhead_med_ms']:+7.2f} ms) | peak "
        f"{row['est_mb']:.1f} vs {row['fn_mb']:.1f} MB (data {row['data_mb']:.1f} MB)",
        flush=True,
    )
    return row


def paired_overhead(est_fit, module, name, repeats):
    """Per fit: the estimator's time minus that of the function call inside it (seconds).

    The wrapped function is timed by a spy inside the same estimator fit, so the
    difference is the estimator's own work (validation, fitted attributes), free of the
    run-to-run noise of comparing separate fits on a shared machine.
    """
    real = getattr(module, name)
    inner = []

    def spy(*args, **kwargs):
        t0 = time.perf_counter()
        out = real(*args, **kwargs)
        inner.append(time.perf_counter() - t0)
        return out

    setattr(module, name, spy)
    try:
        over = []
        for _ in range(repeats):
            total, _ = _timed(est_fit)
            over.append(total - inner[-1])
    finally:
        setattr(module, name, real)
    return float(np.min(over)), float(np.median(over))


def cases(X, K, max_iter):
    import bayesmix as bm
    import bayesmix.cluster._kmeans
    import bayesmix.em
    from bayesmix.sklearn import GaussianMixture, KMeans

    def gm_same(est, res):
        return np.array_equal(est.means_, res.means) and est.n_iter_ == res.n_iter

    def km_same(est, res):
        return np.array_equal(est.cluster_centers_, res.centers)

    em_kw = dict(max_iter=max_iter, tol=0.0, reg_covar=1e-6)
    for cov in ("full", "diag"):
        yield (
            f"GaussianMixture({cov}) vs fit_em",
            lambda c=cov: GaussianMixture(K, covariance_type=c, random_state=0, **em_kw).fit(X),
            lambda c=cov: bm.fit_em(X, K, covariance=c, random_seed=0, **em_kw),
            gm_same,
            (bayesmix.em, "fit_em"),
        )
    yield (
        "KMeans vs kmeans",
        lambda: KMeans(K, n_init=3, random_state=0).fit(X),
        lambda: bm.kmeans(X, K, n_init=3, random_seed=0),
        km_same,
        (bayesmix.cluster._kmeans, "kmeans"),
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run; writes nothing")
    args = ap.parse_args(argv)
    import bayesmix as bm

    n, d, k = (20_000, 5, 4) if args.quick else (200_000, 10, 8)
    max_iter = 10 if args.quick else 20
    # (name, data, K, repeats): many repeats for the millisecond fits, whose times on a
    # shared machine are dominated by preemption (a scheduler time slice is ~4 ms)
    data = [
        ("large", make_data(n, d, k), k, 2 if args.quick else 5),
        (
            "Old Faithful",
            np.ascontiguousarray(bm.load_old_faithful().to_numpy(float)),
            2,
            10 if args.quick else 200,
        ),
    ]
    rows = []
    for name, X, K, repeats in data:
        for label, est_fit, fn_fit, same, (module, fn_name) in cases(X, K, max_iter):
            _timed(est_fit), _timed(fn_fit)  # warm numba kernels and imports
            row = compare(f"{label} ({name})", X, est_fit, fn_fit, same, repeats)
            row["paired_min"], row["paired_med"] = paired_overhead(
                est_fit, module, fn_name, max(repeats, 20)
            )
            print(
                f"    paired overhead: min {1e3 * row['paired_min']:.3f} ms, median "
                f"{1e3 * row['paired_med']:.3f} ms",
                flush=True,
            )
            rows.append(row)
    load = os.getloadavg()[0]
    if args.quick:
        return
    lines = [
        "## scikit-learn estimators vs the functions they wrap (`benchmarks/bench_sklearn_api.py`)",
        "",
        machine_info(),
        "",
        f"Same data, settings and seed for both (identical results, asserted). EM: "
        f"max_iter={max_iter}, tol=0 (a fixed number of iterations), reg_covar=1e-6, "
        "k-means start; k-means: n_init=3. Times: minimum (and median) over the given "
        "number of interleaved runs. Peak: tracemalloc peak of numpy allocations during "
        "one fit (a copy of X by the estimator would add the data size).",
        "",
        "| case | n | d | runs | estimator min | function min | paired overhead median (min) "
        "| estimator peak MB | function peak MB | data MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['n']:,} | {r['d']} | {r['repeats']} | {r['est_s'] * 1e3:.1f} ms "
            f"| {r['fn_s'] * 1e3:.1f} ms | {r['paired_med'] * 1e3:.3f} ms "
            f"({r['paired_min'] * 1e3:.3f} ms) | {r['est_mb']:.1f} "
            f"| {r['fn_mb']:.1f} | {r['data_mb']:.1f} |"
        )
    lines += [
        "",
        "Paired overhead: in each estimator fit, its time minus that of the wrapped "
        "function's call inside it (timed there by a spy; at least 20 fits): the "
        "estimator's own work, scikit-learn's validate_data and the fitted attributes. The "
        "end-to-end minima of separate fits differ by more than this, in either direction: "
        f"that is the shared machine (1-minute load average {load:.1f} on "
        f"{os.cpu_count()} cores at the end of the run).",
    ]
    write_section("sklearn_api", "\n".join(lines))


if __name__ == "__main__":
    main()
