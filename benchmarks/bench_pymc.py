"""bayesmix.build_gmm + bayesmix.sample against the PyMC mixture a user writes by hand.

Hand-written model: ``pm.Mixture`` over a Python list of K ``pm.MvNormal``, each with
its own ``pm.LKJCholeskyCov`` (eta=2, HalfNormal(2 sd) standard deviations) and a
Normal(data mean, 10 sd) mean, Dirichlet(1) weights, PyMC's default initialisation.
bayesmix: ``build_gmm(X, 3)`` (conjugate default prior) sampled with ``bm.sample``
from the EM MAP. Same data, sampler, chains, tune and draws.

Metric: minimum bulk ESS over the weights, means and lower-triangle covariance entries,
taken for BOTH models after the same identification: each draw's components are
sorted by the first coordinate of their mean (the simulated clusters are well
separated along it, so this undoes label switching the same way for both). ESS per
second is reported with wall time including compilation, and excluding it (PyMC's
own ``sampling_time``); "first draw" is wall minus sampling time (compile + init).

Usage: ``python benchmarks/bench_pymc.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import machine_info, write_section

import bayesmix as bm

K, D = 3, 2
WEIGHTS = [0.3, 0.3, 0.4]
MEANS = [[-6.0, 0.0], [0.0, 4.0], [6.0, 0.0]]
COVS = [np.eye(2), [[1.0, 0.6], [0.6, 1.5]], [[1.5, -0.4], [-0.4, 0.8]]]


def _min_ess(w, m, c):
    import arviz_stats as azs
    import xarray as xr

    order = np.argsort(m[..., 0], axis=-1)
    w = np.take_along_axis(w, order, -1)
    m = np.take_along_axis(m, order[..., None], -2)
    c = np.take_along_axis(c, order[..., None, None], -3)
    r, cc = np.tril_indices(D)
    ds = xr.Dataset(
        {
            "w": (("chain", "draw", "k"), w),
            "m": (("chain", "draw", "k", "d"), m),
            "c": (("chain", "draw", "k", "e"), c[..., r, cc]),
        }
    )
    ess = azs.ess(ds, method="bulk")
    return min(float(ess[v].min()) for v in ess.data_vars)


def run_bayesmix(X, sampler, settings, seed):
    t0 = time.perf_counter()
    model = bm.build_gmm(X, K)
    em = bm.fit_em(X, K, prior=model.bayesmix_config.prior, random_seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = bm.sample(
            model, init=em, nuts_sampler=sampler, random_seed=seed, progressbar=False, **settings
        )
    wall = time.perf_counter() - t0
    w, m, c = bm._trace.get_params(dt)
    steps = _n_steps(dt["sample_stats"]) if "sample_stats" in dt.children else np.nan
    return wall, dt.attrs.get("sampling_time", np.nan), _min_ess(w, m, c), steps


def run_hand(X, sampler, settings, seed):
    import pymc as pm

    t0 = time.perf_counter()
    sd = X.std(0)
    with pm.Model():
        w = pm.Dirichlet("w", a=np.ones(K))
        comps = []
        for k in range(K):
            chol, _, _ = pm.LKJCholeskyCov(
                f"chol{k}", n=D, eta=2.0, sd_dist=pm.HalfNormal.dist(2 * sd), compute_corr=True
            )
            mu = pm.Normal(f"mu{k}", X.mean(0), 10 * sd, shape=D)
            comps.append(pm.MvNormal.dist(mu=mu, chol=chol))
        pm.Mixture("x", w=w, comp_dists=comps, observed=X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = pm.sample(
                nuts_sampler=sampler,
                random_seed=seed,
                progressbar=False,
                compute_convergence_checks=False,
                **settings,
            )
    wall = time.perf_counter() - t0
    post = idata["posterior"]
    ww = post["w"].transpose("chain", "draw", ...).values
    m = np.stack([post[f"mu{k}"].transpose("chain", "draw", ...).values for k in range(K)], 2)
    covs = []
    for k in range(K):
        s = post[f"chol{k}_stds"].transpose("chain", "draw", ...).values
        R = post[f"chol{k}_corr"].transpose("chain", "draw", ...).values
        covs.append(s[..., :, None] * R * s[..., None, :])
    c = np.stack(covs, 2)
    steps = _n_steps(idata["sample_stats"]) if "sample_stats" in idata.children else np.nan
    return wall, float(post.attrs.get("sampling_time", np.nan)), _min_ess(ww, m, c), steps


def _n_steps(ss):
    """Total leapfrog steps (= gradient evaluations) over all chains and draws."""
    for name in ("n_steps", "tree_size"):
        if name in ss.data_vars:
            return float(np.asarray(ss[name]).sum())
    return np.nan


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smoke run: n=100, 100+100 draws")
    args = ap.parse_args(argv)
    if args.quick:
        sizes, samplers = [100], ["pymc"]
        settings = dict(draws=100, tune=100, chains=2)
    else:
        sizes, samplers = [300, 3000], ["pymc", "nutpie"]
        settings = dict(draws=1000, tune=1000, chains=2)
    load_start = os.getloadavg()
    rows = []
    for n in sizes:
        X, _ = bm.simulate(n, WEIGHTS, MEANS, COVS, random_seed=n)
        for sampler in samplers:
            res = {}
            for name, fn in (("bayesmix", run_bayesmix), ("hand", run_hand)):
                wall, st, ess, steps = fn(X, sampler, settings, seed=1)
                res[name] = (wall, st, ess, steps)
                print(
                    f"n={n} {sampler:6s} {name:8s} wall {wall:7.1f}s sampling {st:7.1f}s "
                    f"min ESS {ess:7.0f}  ESS/s {ess / wall:7.2f} (excl. compile "
                    f"{ess / st:7.2f}) grad evals {steps:.0f} "
                    f"({1e6 * st / steps:.0f} us each) load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
            b, h = res["bayesmix"], res["hand"]
            ratio = ((b[2] / b[0]) / (h[2] / h[0]), (b[2] / b[1]) / (h[2] / h[1]))
            rows.append((n, sampler, res, ratio))
    lines = [
        machine_info(),
        "",
        f"Settings: K={K}, d={D}, full covariance, {settings['chains']} chains, "
        f"tune={settings['tune']}, draws={settings['draws']}, seed 1. "
        "Min bulk ESS over weights, means, covariance entries after sorting components by "
        "the first mean coordinate (same for both models). Wall includes model build and "
        "compilation (and the EM fit for bayesmix); 'first draw' = wall - sampling time. "
        "Sampling time is PyMC's/nutpie's own `sampling_time`; with nuts_sampler='pymc' "
        "it can include numba JIT work done lazily at the first call, and PyTensor's on-disk "
        "numba cache (warm if the same graph was compiled before on this machine) shortens "
        "compilation for both models alike. 'us/grad' = sampling time / total leapfrog "
        "steps (sampler overhead included). "
        f"1-minute load average at start {load_start[0]:.1f}, at end "
        f"{os.getloadavg()[0]:.1f} (2 cores shared with other engineers: timings are noisy)."
        + (" QUICK smoke run." if args.quick else ""),
        "",
        "| n | sampler | model | wall s | first draw s | sampling s | min ESS | ESS/s wall "
        "| ESS/s sampling | grad evals | us/grad | speed-up ESS/s wall | speed-up ESS/s sampling |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, sampler, res, ratio in rows:
        for name in ("bayesmix", "hand"):
            wall, st, ess, steps = res[name]
            sp = (f"{ratio[0]:.1f}x", f"{ratio[1]:.1f}x") if name == "bayesmix" else ("", "")
            lines.append(
                f"| {n} | {sampler} | {name} | {wall:.1f} | {wall - st:.1f} | {st:.1f} | "
                f"{ess:.0f} | {ess / wall:.2f} | {ess / st:.2f} | {steps:.0f} | "
                f"{1e6 * st / steps:.0f} | {sp[0]} | {sp[1]} |"
            )
    write_section("pymc", "## PyMC: build_gmm vs hand-written pm.Mixture\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
