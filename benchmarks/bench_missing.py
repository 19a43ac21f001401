"""EM iteration on data with 10 % of entries missing completely at random (issue 25).

One EM iteration (E-step pass + M-step) of a full-covariance mixture (n = 100,000,
D = 10, K = 8) on complete data (the fused numba pass of ``bayesmix.core._estep_kernels``)
and on the same data with 10 % of the entries set to NaN (the pattern-grouped kernel of
``bayesmix.core._missing_kernels``, through ``bayesmix.em._missing``), from the same
parameters; the median of ``--repeat`` timed iterations after a warm-up (compilation).
Target: the iteration with gaps costs <= 3x the complete-data one.

    python benchmarks/bench_missing.py            # n = 100,000
    python benchmarks/bench_missing.py --quick    # n = 20,000 (the run_all smoke)

Numbers go to ``benchmarks/RESULTS.md`` ("missing") by hand.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import bayesmix as bm
from bayesmix.core import _covariance as cv
from bayesmix.core import _gaussian as gs
from bayesmix.core._missing import missing_patterns
from bayesmix.em import _loop
from bayesmix.em._missing import missing_estep


def _data(n, D=10, K=8, frac=0.1, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(K, D))
    A = rng.normal(size=(K, D, D)) * 0.25
    covs = A @ A.swapaxes(1, 2) + np.eye(D) * 0.7
    X, _ = bm.simulate(n, np.full(K, 1.0 / K), means, covs, random_seed=seed)
    Xm = X.copy()
    Xm[rng.random(X.shape) < frac] = np.nan
    return X - X.mean(0), Xm[~np.isnan(Xm).all(1)] - np.nanmean(Xm, 0), means, covs


def _cfg(K, D, pats):
    return _loop._RunSettings(
        covariance="full",
        n_components=K,
        max_iter=1,
        tol=0.0,
        reg_covar=1e-6,
        engine="numba",
        progress=False,
        prior=None,
        shift=np.zeros(D),
        map_prior=None,
        missing=pats,
    )


def _time(fn, repeat):
    fn()  # warm-up: compilation, caches
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main(n, repeat):
    X, Xm, means, covs = _data(n)
    K, D = means.shape
    w = np.full(K, 1.0 / K)
    model = _loop._Model(w, means, covs, cv.PRECISION_CHOLESKY["full"](covs))
    labels = np.empty(X.shape[0], dtype=np.int64)
    estep = gs.backend("numba").estep

    def complete():
        _, nk, sx, sxx = estep(X, "full", model.weights, model.means, model.prec_chol, labels)
        return _loop._m_step(nk, sx, sxx, "full", X.shape[0], 1e-6, None)

    t_build = time.perf_counter()
    pats = missing_patterns(Xm)
    e_gaps = missing_estep(Xm, _cfg(K, D, pats), np.empty(Xm.shape[0], dtype=np.int64))
    e_gaps(model)  # builds the sorted copy and the work items once per fit
    t_build = time.perf_counter() - t_build

    def gaps():
        _, nk, sx, sxx = e_gaps(model)
        return _loop._m_step(nk, sx, sxx, "full", Xm.shape[0], 1e-6, None)

    tc, tg = _time(complete, repeat), _time(gaps, repeat)
    print(f"n={n} D={D} K={K} full, threads={os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    print(
        f"missing entries {pats.n_missing} ({pats.n_missing / Xm.size:.1%}), "
        f"patterns {pats.n_patterns}, one-off set-up {t_build:.3f} s (incl. compile)"
    )
    print(
        f"complete-data iteration {tc * 1e3:.1f} ms; with gaps {tg * 1e3:.1f} ms; "
        f"ratio {tg / tc:.2f}x (target <= 3x)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    main(20_000 if a.quick else a.n, 3 if a.quick else a.repeat)
