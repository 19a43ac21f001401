"""Post-processing of a large posterior without the (chain, draw, obs) arrays (issue 23).

A synthetic posterior of a finite mixture (D = 10, K = 8, full covariance, 2 chains x
500 draws: the true parameters plus small noise, the components of the second chain
permuted) on n simulated rows, built with ``from_arrays(..., log_likelihood=False)``;
then ``bm.relabel``, ``bm.membership`` and ``bm.loo`` (and ``bm.coclustering``, which
uses a subset above ``COCLUSTERING_MAX_OBS``), each timed, with the process's peak RSS
after each stage (``ru_maxrss``: a later stage reports at least an earlier one's peak).

    python benchmarks/bench_postprocess.py --n 100000
    python benchmarks/bench_postprocess.py --n 1000000
    python benchmarks/bench_postprocess.py --quick      # n = 20,000, 2 x 60; prints

Numbers go to ``benchmarks/RESULTS.md`` ("postprocess") by hand.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np

import bayesmix as bm
from bayesmix.mcmc._trace import from_arrays


def _rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def synthetic(n, D=10, K=8, chains=2, draws=500, seed=0):
    """(DataTree, truth means) of a posterior concentrated near the truth."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(K, D))
    A = rng.normal(size=(K, D, D)) * 0.25
    covs = A @ A.swapaxes(1, 2) + np.eye(D) * 0.7
    w = rng.dirichlet(np.full(K, 10.0))
    X, _ = bm.simulate(n, w, means, covs, random_seed=seed + 1)
    sd = 1.0 / np.sqrt(n)
    W = np.abs(w + rng.normal(scale=sd, size=(chains, draws, K)))
    W /= W.sum(-1, keepdims=True)
    M = means + rng.normal(scale=sd, size=(chains, draws, K, D))
    C = np.broadcast_to(covs, (chains, draws, K, D, D)).copy()
    perm = rng.permutation(K)
    W[1], M[1], C[1] = W[1][:, perm], M[1][:, perm], C[1][:, perm]
    attrs = {"model": "gmm", "n_components": K, "covariance": "full"}
    return from_arrays(W, M, C, X, attrs=attrs, log_likelihood=False), means


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="smoke run: n = 20,000, 2 x 60 draws")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.draws = 20_000, 60
    t0 = time.perf_counter()
    dt, _ = synthetic(args.n, draws=args.draws)
    print(
        f"n={args.n} D=10 K=8 2 x {args.draws}: built in {time.perf_counter() - t0:.1f} s, "
        f"peak RSS {_rss_gib():.2f} GiB",
        flush=True,
    )
    stages = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in [
            ("relabel", lambda d: bm.relabel(d)),
            ("membership", lambda d: bm.membership(d)),
            ("loo", lambda d: bm.loo(d)),
            ("coclustering", lambda d: bm.coclustering(d)),
        ]:
            t = time.perf_counter()
            out = fn(dt)
            stages[name] = time.perf_counter() - t
            if name == "relabel":
                dt = out
            extra = ""
            if name == "loo":
                sub = getattr(out, "subsample_size", None)
                how = f"subsample of {sub}, SE {out.subsampling_se:.2f}" if sub else "exact"
                extra = f" elpd {float(out.elpd):.1f} ({how})"
            print(
                f"  {name:13s} {stages[name]:7.1f} s  peak RSS {_rss_gib():.2f} GiB{extra}",
                flush=True,
            )
    post = stages["relabel"] + stages["membership"] + stages["loo"]
    print(f"relabel + membership + loo: {post:.1f} s; peak RSS {_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
