"""Per-sweep wall time of the conjugate Gibbs sampler at large N (RESULTS section
``gibbs-throughput``).

Finite mixture, full covariance, blocked sweep (allocations given the parameters, then
parameters given the allocations): *before* allocates with
``_gibbs_kernels.allocate`` and then computes the statistics with ``suff_stats`` (two
passes over the data); *after* runs the fused pass ``allocate_stats`` (one pass, chunks
of rows, in 1 or 2 threads). DP and MFM (D = 5, five true clusters): *before* is the
old sweep at that N (one sequential collapsed sweep and one split-merge move per draw),
*after* the current one (the fused blocked pass above ``COLLAPSED_MAX_N``, a split-merge
move with probability 20,000 / N). Each chain starts at the true parameters; the
times are medians over a few sweeps after one warm-up sweep. GFLOP/s count ``N K D^2``
flops per allocation pass (the Mahalanobis terms; the triangular solves do about 1.1x
that in multiply-adds).

    python benchmarks/bench_throughput.py            # n = 1e5 and 1e6
    python benchmarks/bench_throughput.py --quick    # n = 2e4 (smoke run, no RESULTS)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from _common import machine_info, write_section

import bayesmix as bm
from bayesmix.mcmc import _gibbs, _gibbs_sweeps
from bayesmix.mcmc import _gibbs_kernels as gk
from bayesmix.mcmc._builders import get_config


def _old_allocate(spec, st, rng):
    """The allocation step before the fused pass (statistics computed afterwards)."""
    prec = np.linalg.inv(st.chol)
    u = rng.random(spec.Xc.shape[0])
    st.stats = None
    return gk.allocate(spec.Xc, st.log_w, st.means, prec, u, st.z, st.counts)


def _setup(kind, n, D, K, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(K, D))
    covs = np.repeat(np.eye(D)[None], K, axis=0)
    w = np.full(K, 1.0 / K)
    X, _ = bm.simulate(n, w, means, covs, random_seed=seed + 1)
    model = {"gmm": lambda: bm.build_gmm(X, K), "dpgmm": lambda: bm.build_dpgmm(X),
             "mfm": lambda: bm.build_mfm(X)}[kind]()  # fmt: skip
    cfg = get_config(model)
    spec = _gibbs._spec(cfg)
    st = _gibbs._initial_state(cfg, spec, w, means, covs)
    r = np.random.default_rng(seed + 2)
    _gibbs_sweeps._allocate(spec, st, r)  # allocations at the true parameters
    return spec, st, r


def _median_sweep(spec, st, rng, reps):
    sweep = _gibbs_sweeps._SWEEPS[spec.kind]
    sweep(spec, st, rng)  # warm-up (compilation, caches)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        sweep(spec, st, rng)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), int((st.counts > 0).sum())


def _median_pass(spec, st, rng, reps, fused, threads):
    X, K, D = spec.Xc, spec.n_slots, spec.Xc.shape[1]
    prec = np.linalg.inv(st.chol)
    z, counts = st.z.copy(), st.counts.copy()
    sums, scatter = np.empty((K, D)), np.empty((K, D, D))
    times = []
    for _ in range(reps + 1):
        u = rng.random(X.shape[0])
        t0 = time.perf_counter()
        if fused:
            gk.allocate_stats(X, st.log_w, st.means, prec, u, z, counts, sums, scatter, threads)
        else:
            gk.allocate(X, st.log_w, st.means, prec, u, z, counts)
            gk.suff_stats(X, z, counts, sums, scatter)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def finite_rows(n, D, K, reps):
    spec, st, rng = _setup("gmm", n, D, K)
    flops = n * K * D * D
    rows = []
    old_pass = _median_pass(spec, st, rng, reps, fused=False, threads=1)
    orig = _gibbs_sweeps._allocate
    _gibbs_sweeps._allocate = _old_allocate
    try:
        old_sweep, _ = _median_sweep(spec, st, rng, reps)
    finally:
        _gibbs_sweeps._allocate = orig
    rows.append(("before: allocate + suff_stats", 1, old_pass, old_sweep, flops))
    for threads in (1, 2):
        p = _median_pass(spec, st, rng, reps, fused=True, threads=threads)
        s, _ = _median_sweep(_replace_threads(spec, threads), st, rng, reps)
        rows.append(("after: fused allocate_stats", threads, p, s, flops))
    return rows


def _replace_threads(spec, threads):
    import dataclasses

    return dataclasses.replace(spec, threads=threads)


def mixture_rows(kind, n, reps):
    D, K = 5, 5
    rows = []
    spec, st, rng = _setup(kind, n, D, K)
    saved = _gibbs_sweeps.COLLAPSED_MAX_N, _gibbs_sweeps.SPLIT_MERGE_POINTS_PER_DRAW
    _gibbs_sweeps.COLLAPSED_MAX_N = 10**12  # the old sweep: collapsed at every N ...
    _gibbs_sweeps.SPLIT_MERGE_POINTS_PER_DRAW = max(n, saved[1])  # ... one move per draw
    try:
        t, kp = _median_sweep(spec, st, rng, max(2, reps // 2))
    finally:
        _gibbs_sweeps.COLLAPSED_MAX_N, _gibbs_sweeps.SPLIT_MERGE_POINTS_PER_DRAW = saved
    rows.append((kind, "before: collapsed sweep + split-merge move", 1, t, kp))
    for threads in (1, 2):
        t, kp = _median_sweep(_replace_threads(spec, threads), st, rng, 3 * reps)
        mode = "collapsed" if _gibbs_sweeps._use_collapsed(spec) else "fused blocked"
        rows.append((kind, f"after: {mode} (+ split-merge w.p. 2e4/N)", threads, t, kp))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 20,000 only; no RESULTS")
    ap.add_argument("--sizes", help="comma-separated n (default 100000,1000000)")
    args = ap.parse_args()
    sizes = [20_000] if args.quick else [100_000, 1_000_000]
    if args.sizes:
        sizes = [int(float(s)) for s in args.sizes.split(",")]
    load0 = os.getloadavg()
    lines = [
        "| n | D | K | path | threads | allocation pass (s) | GFLOP/s (nKD²) | sweep (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        reps = 10 if n <= 100_000 else 4
        for path, th, p, s, flops in finite_rows(n, 10, 8, reps):
            lines.append(
                f"| {n:.0e} | 10 | 8 | {path} | {th} | {p:.4f} | {flops / p / 1e9:.2f} | {s:.4f} |"
            )
            print(lines[-1], flush=True)
    lines += [
        "",
        "| model | n | D | true K | path | threads | sweep (s) | K+ at the end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        reps = 6 if n <= 100_000 else 3
        for kind in ("mfm", "dpgmm"):
            for k, path, th, t, kp in mixture_rows(kind, n, reps):
                lines.append(f"| {k} | {n:.0e} | 5 | 5 | {path} | {th} | {t:.4f} | {kp} |")
                print(lines[-1], flush=True)
    load1 = os.getloadavg()
    text = "\n".join(
        [
            "## Gibbs throughput: one fused pass per sweep (`benchmarks/bench_throughput.py`)",
            "",
            machine_info(),
            f"Load average (1, 5, 15 min) before: {load0[0]:.2f}, {load0[1]:.2f}, "
            f"{load0[2]:.2f}; after: {load1[0]:.2f}, {load1[1]:.2f}, {load1[2]:.2f} (the 2 "
            "cores are shared with other work: a load above 1 leaves the second thread "
            "little to run on).",
            "",
            "*Before*: the sweep as it was before the fused pass (allocation, then the "
            "statistics in a second and third pass; DP and MFM at every N: one sequential "
            "collapsed sweep and one split-merge move over up to N members per draw). "
            "*After*: one pass (`_gibbs_kernels.allocate_stats`) in 1 or 2 threads; the "
            "draws are the same in both (chunks of 4096 rows, summed in chunk order). "
            "2 chains x (200 + 500) sweeps on 2 cores run one chain per core (1 thread "
            "each), about 700 x the 1-thread sweep per chain; one chain alone gets both.",
            "",
            *lines,
        ]
    )
    if not args.quick:
        write_section("gibbs-throughput", text)
    print(text)


if __name__ == "__main__":
    main()
