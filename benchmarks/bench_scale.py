"""The Gibbs sampler at n = 1e6 end to end (issue 23; RESULTS section ``scale``).

(a) Finite mixture, n = 1e6, D = 10, K = 8, full covariance, default sampler (Gibbs),
    2 chains x 500 draws after 200 from the EM fit, then ``bm.relabel``,
    ``bm.membership`` and ``bm.loo``: wall time per stage, peak RSS, max R-hat and min
    bulk ESS of the weights and means (``bm.diagnostics``), and how many of the K x D
    true mean entries lie inside their 99 % marginal intervals (components matched to
    the truth by their posterior means). Target: the whole of it under 10 min on 2 cores.
(b) The same at n = 1e5 (the post-processing's share of the wall time).
(c) MFM (``bm.build_mfm``) and DP (``bm.build_dpgmm``) at n = 1e6, D = 5, five true
    clusters, 2 x 500 after 200 from the default start: P(K+ = 5) from
    ``bm.n_clusters``. Target: <= 15 min each with P(K+ = 5) >= 0.9.

    python benchmarks/bench_scale.py                  # (a), (b), (c); writes RESULTS
    python benchmarks/bench_scale.py --quick          # n = 20,000, 2 x 60 after 20; prints
    python benchmarks/bench_scale.py --only mfm --n 200000

``--device`` samples the finite runs with the JAX Gibbs path instead
(``benchmarks/_jax_device.run_device_fit``: ``bayesmix.mcmc.sample_gibbs_jax`` on JAX's
default backend; the MFM and DP runs stay on numba); it stops with a clear message when
``bayesmix.mcmc._jax_gibbs`` or JAX is missing. The (chain, draw, obs)
log-likelihood is not stored when ``bm.sample`` accepts ``log_likelihood=False``
(checked with ``inspect.signature``; ``bm.loo`` then does what it does without it).
Peak RSS is that of the whole process (``ru_maxrss``), so a later stage reports at
least an earlier one's peak.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import inspect
import os
import resource
import sys
import time
import traceback
import warnings

import numpy as np
from _common import machine_info, write_section

import bayesmix as bm


def _rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _truth(n, D, K, seed):
    rng = np.random.default_rng(seed)
    # separated means (sd 4 per feature), unequal weights, random covariances
    means = rng.normal(scale=4.0, size=(K, D))
    A = rng.normal(size=(K, D, D)) * 0.25
    covs = A @ A.swapaxes(1, 2) + np.eye(D) * 0.7
    w = rng.dirichlet(np.full(K, 10.0))
    X, _ = bm.simulate(n, w, means, covs, random_seed=seed + 1)
    return X, w, means, covs


def _sample_kwargs(device):
    kw = {}
    params = inspect.signature(bm.sample).parameters
    if "log_likelihood" in params:
        kw["log_likelihood"] = False
    if device:
        for mod, what in (("bayesmix.mcmc._jax_gibbs", "the JAX Gibbs path"), ("jax", "JAX")):
            if importlib.util.find_spec(mod) is None:
                raise SystemExit(
                    f"--device: {what} ({mod}) is not available; install bayesmix[jax] (and "
                    "JAX's CUDA wheels for a GPU) or run without --device (numba on the CPU)."
                )
    return kw


class _Stages:
    """Wall time and peak RSS per stage; a failing stage is recorded, not fatal."""

    def __init__(self):
        self.rows = []

    def run(self, name, fn):
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = fn()
            status = "ok"
        except Exception as exc:  # a benchmark reports the failure and goes on
            traceback.print_exc()
            out, status = None, f"failed: {type(exc).__name__}: {str(exc)[:120]}"
        wall = time.perf_counter() - t0
        self.rows.append((name, wall, _rss_gib(), status))
        print(f"  {name}: {wall:.1f} s, peak RSS {_rss_gib():.2f} GiB, {status}", flush=True)
        return out

    def total(self, names=None):
        return sum(w for n, w, _, _ in self.rows if names is None or n in names)


def _means_covered(dt, true_means):
    """(inside, total): the (component, feature) entries of the true means inside the
    99 % marginal interval of the component matched to them (calibrated: about 1 % of
    the K D entries outside by chance)."""
    from scipy.optimize import linear_sum_assignment

    m = dt["posterior"]["means"]
    post = m.mean(("chain", "draw")).values  # (K, D)
    cost = ((post[:, None, :] - true_means[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    lo = m.quantile(0.005, dim=("chain", "draw")).values
    hi = m.quantile(0.995, dim=("chain", "draw")).values
    inside = [
        int(np.sum((lo[r] <= true_means[c]) & (true_means[c] <= hi[r])))
        for r, c in zip(rows, cols, strict=True)
    ]
    return sum(inside), true_means.size


def run_finite(n, D, K, draws, tune, kw, seed=0, device=False):
    print(f"finite: n={n}, D={D}, K={K}, 2 x {draws} after {tune}", flush=True)
    st = _Stages()
    X, _, true_means, _ = st.run("simulate", lambda: _truth(n, D, K, seed))
    model = bm.build_gmm(X, K)
    if device:
        from _jax_device import run_device_fit

        dt = st.run(
            "sample (JAX device, EM start included)",
            lambda: run_device_fit(X, K, draws, tune, 2, seed)[0],
        )
        return _finish_finite(st, dt, true_means, n, D, K, draws, tune)
    em = st.run("EM fit", lambda: bm.fit_em(X, K, random_seed=seed))
    dt = st.run(
        "sample",
        lambda: bm.sample(
            model,
            draws=draws,
            tune=tune,
            chains=2,
            init=em,
            random_seed=seed,
            cores=2,
            progressbar=False,
            **kw,
        ),
    )
    return _finish_finite(st, dt, true_means, n, D, K, draws, tune)


def _finish_finite(st, dt, true_means, n, D, K, draws, tune):
    res = {"stages": st, "n": n, "D": D, "K": K, "draws": draws, "tune": tune}
    if dt is None:
        return res
    res["sampling_time"] = float(dt.attrs.get("sampling_time", np.nan))
    res["device"] = dt.attrs.get("device", "cpu (numba)")
    dt = st.run("relabel", lambda: bm.relabel(dt)) or dt
    st.run("membership", lambda: bm.membership(dt))
    st.run("loo", lambda: bm.loo(dt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the numbers are reported
        diag = bm.diagnostics(dt, var_names=("weights", "means"))
    res["rhat"] = float(diag["rhat"].max())
    res["ess"] = float(diag["ess_bulk"].min())
    res["covered"] = _means_covered(dt, true_means)
    return res


def run_mixture(kind, n, draws, tune, kw, seed=0):
    D, K = 5, 5
    print(f"{kind}: n={n}, D={D}, true K={K}, 2 x {draws} after {tune}", flush=True)
    st = _Stages()
    X, *_ = st.run("simulate", lambda: _truth(n, D, K, seed + 10))
    model = bm.build_mfm(X) if kind == "mfm" else bm.build_dpgmm(X)
    dt = st.run(
        "sample (EM start included)",
        lambda: bm.sample(
            model,
            draws=draws,
            tune=tune,
            chains=2,
            random_seed=seed,
            cores=2,
            progressbar=False,
            **kw,
        ),
    )
    res = {"stages": st, "n": n, "kind": kind, "draws": draws, "tune": tune}
    if dt is None:
        return res
    res["sampling_time"] = float(dt.attrs.get("sampling_time", np.nan))
    nc = bm.n_clusters(dt)
    occ = nc[nc["variable"] == "n_occupied"]
    res["p5"] = float(occ.loc[occ["k"] == 5, "probability"].sum())
    res["k_dist"] = ", ".join(
        f"{int(k)}: {p:.3f}" for k, p in zip(occ["k"], occ["probability"], strict=True) if p > 0
    )
    return res


def _finite_md(r):
    st = r["stages"]
    stages = "; ".join(f"{n} {w:.1f} s ({s})" if s != "ok" else f"{n} {w:.1f} s"
                       for n, w, _, s in st.rows)  # fmt: skip
    post = st.total({"relabel", "membership", "loo"})
    total = st.total()
    out = [
        f"**Finite, n = {r['n']:.0e}, D = {r['D']}, K = {r['K']} full, 2 x {r['draws']} "
        f"after {r['tune']}, {r.get('device', 'cpu (numba)')}.** {stages}. "
        f"Total {total:.1f} s ({total / 60:.1f} min); "
        f"sampling (attrs) {r.get('sampling_time', float('nan')):.1f} s; post-processing "
        f"(relabel + membership + loo) {post:.1f} s = {100 * post / total:.0f} % of the wall. "
        f"Peak RSS {max(x[2] for x in st.rows):.2f} GiB."
    ]
    if "rhat" in r:
        c, k = r["covered"]
        out.append(
            f"Max R-hat {r['rhat']:.3f}, min bulk ESS {r['ess']:.0f} (weights, means); "
            f"true mean entries inside their 99 % marginal intervals: {c} of {k} "
            f"(about 1 % outside by chance)."
        )
    return " ".join(out)


def _mixture_md(r):
    st = r["stages"]
    stages = "; ".join(f"{n} {w:.1f} s ({s})" if s != "ok" else f"{n} {w:.1f} s"
                       for n, w, _, s in st.rows)  # fmt: skip
    total = st.total()
    out = (
        f"**{r['kind'].upper()}, n = {r['n']:.0e}, D = 5, five true clusters, 2 x "
        f"{r['draws']} after {r['tune']}.** {stages}. Total {total:.1f} s "
        f"({total / 60:.1f} min); sampling (attrs) {r.get('sampling_time', float('nan')):.1f} "
        f"s; peak RSS {max(x[2] for x in st.rows):.2f} GiB."
    )
    if "p5" in r:
        out += f" P(K+ = 5) = {r['p5']:.3f} (K+: {r['k_dist']})."
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=float, help="n of the large runs (default 1e6)")
    ap.add_argument("--quick", action="store_true", help="small-n smoke run; prints only")
    ap.add_argument("--only", choices=("finite", "mfm", "dp"))
    ap.add_argument("--device", action="store_true", help="finite runs on the JAX Gibbs path")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=200)
    ap.add_argument(
        "--section",
        default="scale",
        help="RESULTS.md section written (default %(default)s; e.g. scale-1e5 for a --n run)",
    )
    args = ap.parse_args()
    kw = _sample_kwargs(args.device)
    n = int(args.n) if args.n else (20_000 if args.quick else 1_000_000)
    draws, tune = (60, 20) if args.quick else (args.draws, args.tune)
    load0 = os.getloadavg()
    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = []
    if args.only in (None, "finite"):
        parts.append(_finite_md(run_finite(n, 10, 8, draws, tune, kw, device=args.device)))
        if not args.quick and not args.n:
            parts.append(
                _finite_md(run_finite(100_000, 10, 8, draws, tune, kw, device=args.device))
            )
    for kind, flag in (("mfm", "mfm"), ("dpgmm", "dp")):
        if args.only in (None, flag):
            parts.append(_mixture_md(run_mixture(kind, n, draws, tune, kw)))
    load1 = os.getloadavg()
    text = "\n\n".join(
        [
            f"## Gibbs at n = {n:,} end to end (`benchmarks/bench_scale.py`)",
            machine_info() + f" Run started {date}; load average (1, 5, 15 min) at the start "
            f"{load0[0]:.2f}, {load0[1]:.2f}, {load0[2]:.2f}, at the end {load1[0]:.2f}, "
            f"{load1[1]:.2f}, {load1[2]:.2f}. `bm.sample` keywords added: {kw or 'none'}. "
            f"Command: `python benchmarks/bench_scale.py {' '.join(sys.argv[1:])}`.",
            *parts,
        ]
    )
    print(text)
    if not args.quick:
        write_section(args.section, text)


if __name__ == "__main__":
    main()
