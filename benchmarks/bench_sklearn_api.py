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
        est_mb=_peak_mb(est_fit),
        fn_mb=_peak_mb(fn_fit),
        data_mb=X.nbytes / 2**20,
    )
    row["overhead_ms"] = 1e3 * (row["est_s"] - row["fn_s"])
    print(
        f"{label:42s} n={row['n']:>7,} estimator {row['est_s'] * 1e3:9.2f} ms  function "
        f"{row['fn_s'] * 1e3:9.2f} ms  overhead {row['overhead_ms']:+7.2f} ms | peak "
        f"{row['est_mb']:.1f} vs {row['fn_mb']:.1f} MB (data {row['data_mb']:.1f} MB)",
        flush=True,
    )
    return row


def extra_work(X, K, repeats=20):
    """Seconds of the estimator's own work: validation of X and the fitted attributes.

    Everything else in ``GaussianMixture.fit`` is the ``fit_em`` call itself, so this is
    the overhead, measured without the fit's run-to-run noise.
    """
    import bayesmix as bm
    from bayesmix.sklearn import GaussianMixture, _validate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = bm.fit_em(X, K, max_iter=2, random_seed=0)
    est = GaussianMixture(K)
    t_val, t_attr = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        Xv = _validate(est, X, reset=True, min_samples=2)
        t1 = time.perf_counter()
        est._set_fitted(em, X.shape[0])
        t2 = time.perf_counter()
        t_val.append(t1 - t0)
        t_attr.append(t2 - t1)
    assert Xv is X  # float64, C order: validated without a copy
    return min(t_val), min(t_attr)


def cases(X, K, max_iter):
    import bayesmix as bm
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
        )
    yield (
        "KMeans vs kmeans",
        lambda: KMeans(K, n_init=3, random_state=0).fit(X),
        lambda: bm.kmeans(X, K, n_init=3, random_seed=0),
        km_same,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run; writes nothing")
    args = ap.parse_args(argv)
    import bayesmix as bm

    n, d, k = (20_000, 5, 4) if args.quick else (200_000, 10, 8)
    repeats = 2 if args.quick else 5
    max_iter = 10 if args.quick else 20
    data = [
        ("large", make_data(n, d, k), k),
        ("Old Faithful", np.ascontiguousarray(bm.load_old_faithful().to_numpy(float)), 2),
    ]
    rows, extra = [], {}
    for name, X, K in data:
        for label, est_fit, fn_fit, same in cases(X, K, max_iter):
            _timed(est_fit), _timed(fn_fit)  # warm numba kernels and imports
            rows.append(compare(f"{label} ({name})", X, est_fit, fn_fit, same, repeats))
        extra[name] = extra_work(X, K)
        print(
            f"{name}: validation {1e3 * extra[name][0]:.3f} ms, fitted attributes "
            f"{1e3 * extra[name][1]:.3f} ms",
            flush=True,
        )
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
        "k-means start; k-means: n_init=3. Times: minimum over "
        f"{repeats} interleaved runs. Peak: tracemalloc peak of numpy allocations during "
        "one fit (a copy of X by the estimator would add the data size).",
        "",
        "| case | n | d | estimator | function | overhead | estimator peak MB "
        "| function peak MB | data MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['n']:,} | {r['d']} | {r['est_s'] * 1e3:.1f} ms "
            f"| {r['fn_s'] * 1e3:.1f} ms | {r['overhead_ms']:+.2f} ms | {r['est_mb']:.1f} "
            f"| {r['fn_mb']:.1f} | {r['data_mb']:.1f} |"
        )
    lines += [
        "",
        "The estimator's own work, timed alone (minimum of 20): "
        + "; ".join(
            f"{name} data: validate_data {1e3 * v:.2f} ms (no copy), fitted attributes "
            f"{1e3 * a:.3f} ms"
            for name, (v, a) in extra.items()
        )
        + f". End-to-end differences larger than these (of either sign) are the shared "
        f"machine's noise (1-minute load average {load:.1f} on {os.cpu_count()} cores at the "
        "end of the run).",
    ]
    write_section("sklearn_api", "\n".join(lines))


if __name__ == "__main__":
    main()
