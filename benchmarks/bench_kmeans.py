"""Benchmark: bayesmix.kmeans against scikit-learn's KMeans (algorithm="lloyd").

Same simulated data (n=200,000, d=10, K=8 Gaussian mixture) and, for the single-run
comparison, the same initial centres for both. Reports wall time per run (median of
repeats), Lloyd iterations, time per iteration and inertia, plus numba's first-call
cost (compilation into an empty cache, and loading from the on-disk cache), each
measured in a fresh subprocess. Writes the "kmeans" section of benchmarks/RESULTS.md.

Usage::

    .venv/bin/python benchmarks/bench_kmeans.py            # full size
    .venv/bin/python benchmarks/bench_kmeans.py --quick    # smoke run (n=20,000)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, write_section

_FIRST_CALL = """
import time, numpy as np
t0 = time.perf_counter()
from bayesmix.cluster._kmeans import kmeans
t1 = time.perf_counter()
kmeans(np.random.default_rng(0).normal(size=(1000, 3)), 3, n_init=1, random_seed=0)
t2 = time.perf_counter()
kmeans(np.random.default_rng(1).normal(size=(1000, 3)), 3, n_init=1, random_seed=0)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def first_call_times(cache_dir=None):
    """(import s, first call s, second call s) in a fresh interpreter."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=True
    )
    return tuple(float(v) for v in out.stdout.split())


def make_data(n, d, k, seed=0):
    import bayesmix as bm

    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(k, d))
    variances = rng.uniform(0.5, 2.0, size=(k, d))
    weights = rng.dirichlet(np.full(k, 5.0))
    X, _ = bm.simulate(n, weights, means, variances, random_seed=rng)
    init = X[rng.choice(n, k, replace=False)]
    return X, init


def timed(fn, repeats):
    """Median and min wall time of ``fn(r)`` for r = 0..repeats-1, and the last output."""
    times, out = [], None
    for r in range(repeats):
        t = time.perf_counter()
        out = fn(r)
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small n, one repeat (smoke run)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md")
    args = parser.parse_args(argv)

    from sklearn.cluster import KMeans

    from bayesmix.cluster._kmeans import kmeans

    n, d, k = (20_000, 10, 8) if args.quick else (200_000, 10, 8)
    rep1, rep10 = (1, 1) if args.quick else (7, 3)
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as empty_cache:
        imp_c, first_c, _ = first_call_times(empty_cache)
    imp, first, second = first_call_times()
    print(f"first call: compile {first_c:.2f} s (empty cache), cached {first:.2f} s")

    X, init = make_data(n, d, k)
    # warm up both (numba kernels loaded, sklearn's thread pool started)
    kmeans(X[:5000], k, init=init, n_init=1)
    KMeans(k, init=init, n_init=1, algorithm="lloyd").fit(X[:5000])

    rows = []
    # 1) one run from the same initial centres
    t_bm, tmin_bm, r_bm = timed(lambda r: kmeans(X, k, init=init, n_init=1), rep1)
    t_sk, tmin_sk, r_sk = timed(
        lambda r: KMeans(k, init=init, n_init=1, algorithm="lloyd").fit(X), rep1
    )
    same_labels = bool(np.array_equal(r_bm.labels, r_sk.labels_))
    center_diff = float(np.abs(r_bm.centers - r_sk.cluster_centers_).max())
    rows.append(("same init, n_init=1", "bayesmix", t_bm, tmin_bm, r_bm.n_iter, r_bm.inertia))
    rows.append(("same init, n_init=1", "scikit-learn", t_sk, tmin_sk, r_sk.n_iter_, r_sk.inertia_))
    # the same, both restricted to one thread (a fair comparison on a busy machine)
    import numba
    from threadpoolctl import threadpool_limits

    old_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    t_bm1, tmin_bm1, r_bm1 = timed(lambda r: kmeans(X, k, init=init, n_init=1), rep1)
    numba.set_num_threads(old_threads)
    with threadpool_limits(limits=1, user_api="openmp"):
        t_sk1, tmin_sk1, r_sk1 = timed(
            lambda r: KMeans(k, init=init, n_init=1, algorithm="lloyd").fit(X), rep1
        )
    rows.append(
        ("same init, n_init=1, 1 thread", "bayesmix", t_bm1, tmin_bm1, r_bm1.n_iter, r_bm1.inertia)
    )
    rows.append(
        (
            "same init, n_init=1, 1 thread",
            "scikit-learn",
            t_sk1,
            tmin_sk1,
            r_sk1.n_iter_,
            r_sk1.inertia_,
        )
    )
    # 2) ten k-means++ restarts each (different random streams, same algorithm)
    # (the total number of Lloyd iterations over 10 restarts depends on the seeds, so
    # each repeat uses another seed, the same for both: seeds 0, 1, 2, ...)
    ratios = []

    def ours10(r):
        res = kmeans(X, k, n_init=10, random_seed=r)
        ratios.append(res.inertia)
        return res

    def theirs10(r):
        res = KMeans(k, n_init=10, algorithm="lloyd", random_state=r).fit(X)
        ratios[r] = ratios[r] / res.inertia_
        return res

    t_bm10, tmin_bm10, r_bm10 = timed(ours10, rep10)
    t_sk10, tmin_sk10, r_sk10 = timed(theirs10, rep10)
    rows.append(
        ("k-means++, n_init=10", "bayesmix", t_bm10, tmin_bm10, r_bm10.n_iter, r_bm10.inertia)
    )
    rows.append(
        ("k-means++, n_init=10", "scikit-learn", t_sk10, tmin_sk10, r_sk10.n_iter_, r_sk10.inertia_)
    )
    load_after = os.getloadavg()[0]

    lines = [
        "## k-means (`benchmarks/bench_kmeans.py`)",
        "",
        machine_info(),
        "",
        f"Data: simulated 8-component Gaussian mixture, n={n:,}, d={d}, K={k}"
        + (" (**--quick smoke run**)" if args.quick else "")
        + f". Median of {rep1} runs (n_init=1) / {rep10} runs (n_init=10); min in brackets. "
        f"bayesmix threads: {numba.get_num_threads()} (a Python thread pool over GIL-free "
        "serial numba kernels; scikit-learn uses its OpenMP threads). "
        f"Load average (1 min) before/after: {load_before:.1f} / {load_after:.1f} "
        "(other jobs share the 2 cores: timings are noisy).",
        "",
        "| run | implementation | wall s per fit | n_iter | s per iteration | inertia |",
        "|---|---|---|---|---|---|",
    ]
    for name, impl, t, tmin, it, inertia in rows:
        per_iter = f"{t / it:.4f}" if "n_init=10" not in name else "-"
        lines.append(
            f"| {name} | {impl} | {t:.3f} ({tmin:.3f}) | {it} | {per_iter} | {inertia:.6f} |"
        )
    lines += [
        "",
        f"Same init: identical labels: {same_labels}; max |centre difference| = "
        f"{center_diff:.1e}. Speed-up (median wall): n_init=1 {t_sk / t_bm:.2f}x, "
        f"n_init=10 {t_sk10 / t_bm10:.2f}x, one thread each {t_sk1 / t_bm1:.2f}x. "
        "Best-of-10 inertia, bayesmix / scikit-learn, per seed: "
        + ", ".join(f"{q:.12f}" for q in ratios)
        + " (n_init=10 rows: seeds 0, 1, ... for both; n_iter and inertia are those of the "
        "last seed's returned run).",
        "",
        f"numba first call (fresh process, 1,000 x 3 data): compiling into an empty cache "
        f"{first_c:.2f} s (import {imp_c:.2f} s); with the on-disk cache (`cache=True`) "
        f"{first:.2f} s (import {imp:.2f} s); a second call {second * 1e3:.1f} ms.",
    ]
    md = "\n".join(lines)
    print(md)
    if not args.no_write:
        write_section("kmeans", md)


if __name__ == "__main__":
    main()
