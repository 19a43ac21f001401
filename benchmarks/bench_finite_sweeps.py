"""How a finite mixture is swept by the Gibbs sampler, measured on Old Faithful.

Blocked sweeps (allocations given the parameters) against collapsed allocation sweeps
(weights and parameters integrated out) followed by split-merge moves, for the
overfitted K = 3 and K = 4 of the default ``bayesmix fit`` grid (K = 2 mixes either way):
full covariance, default prior, 4 chains x 2000 draws after 200 burn-in sweeps, started
at the MAP EM fit (5 starts); max R-hat and min bulk ESS of weights and means after
``bm.relabel`` against the EM fit, seeds 1-3; wall = ``bm.sample`` (numba caches warm).
The result sets ``FINITE_COLLAPSED_SWEEPS`` and ``FINITE_COLLAPSED_MAX_N`` in
``bayesmix/mcmc/_gibbs_sweeps.py``.

Usage: ``python benchmarks/bench_finite_sweeps.py [--quick]`` (writes section
"gibbs-finite-sweeps" of RESULTS.md unless ``--quick``).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from _common import machine_info, write_section

import bayesmix as bm
from bayesmix.mcmc import _gibbs_sweeps as gs

#: (label, collapsed sweeps per draw or None for blocked sweeps)
VARIANTS = [
    ("blocked", None),
    ("collapsed x1 + split-merge", 1),
    ("collapsed x2 + split-merge", 2),
    ("collapsed x4 + split-merge", 4),
]


def run(variant, K, seed, X, draws):
    sweeps = dict(VARIANTS)[variant]
    gs.FINITE_COLLAPSED_MAX_N = 0 if sweeps is None else 5000
    gs.FINITE_COLLAPSED_SWEEPS = sweeps or 1
    prior = bm.GMMPrior.from_data(X, K)
    em = bm.fit_em(X, K, prior=prior, n_init=5, random_seed=1)
    model = bm.build_gmm(X, K, prior=prior)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        dt = bm.sample(
            model, init=em, draws=draws, tune=200, chains=4, random_seed=seed, progressbar=False
        )
        wall = time.perf_counter() - t
        d = bm.diagnostics(bm.relabel(dt, reference=em), var_names=("weights", "means"))
    return wall, float(np.nanmax(d["rhat"])), float(np.nanmin(d["ess_bulk"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    X = bm.load_old_faithful().to_numpy()
    seeds = (1,) if args.quick else (1, 2, 3)
    draws = 200 if args.quick else 2000
    load0 = os.getloadavg()[0]
    run("blocked", 2, 0, X, 10)  # numba caches
    run("collapsed x1 + split-merge", 2, 0, X, 10)
    lines = [
        "| sweep | K | wall s (per seed) | max R-hat | min bulk ESS |",
        "|---|---|---|---|---|",
    ]
    for variant, _ in VARIANTS:
        for K in (3, 4):
            res = [run(variant, K, s, X, draws) for s in seeds]
            lines.append(
                f"| {variant} | {K} | {', '.join(f'{r[0]:.1f}' for r in res)} | "
                f"{min(r[1] for r in res):.3f}-{max(r[1] for r in res):.3f} | "
                f"{min(r[2] for r in res):.0f}-{max(r[2] for r in res):.0f} |"
            )
            print(lines[-1], flush=True)
    text = "\n".join(
        [
            "## Finite mixtures: blocked vs collapsed + split-merge sweeps "
            "(`benchmarks/bench_finite_sweeps.py`)",
            "",
            machine_info(),
            "",
            f"Load average (1 min) at start {load0:.1f}, at end {os.getloadavg()[0]:.1f}.",
            "",
            "Old Faithful, full covariance, default prior, 4 chains x 2000 draws after 200 "
            "burn-in sweeps from the MAP EM fit; max R-hat / min bulk ESS of weights and means "
            "after `bm.relabel`, over seeds 1-3 (40 split-merge moves per draw).",
            "",
            *lines,
        ]
    )
    print(text)
    if not args.quick:
        write_section("gibbs-finite-sweeps", text)


if __name__ == "__main__":
    main()
