"""Gibbs sampler (bayesmix.mcmc._gibbs) against NUTS: DP and MFM on Old Faithful, finite mixtures.

1. DP on Old Faithful (truncation 20, full covariance, 4 chains x 2000 draws after 500
   burn-in sweeps, ``cores=2``; the default sampler with collapsed allocation sweeps,
   and the same with ``_gibbs_sweeps.COLLAPSED = False``, allocations drawn given the
   parameters): R-hat and bulk ESS of label-invariant quantities
   (total log-likelihood, ``n_occupied``, the sorted weights with posterior mean >
   0.01, the concentration), wall time of ``bm.sample`` (EM start, sampling,
   log-likelihood, diagnostics; numba caches warm). The same for the MFM (K, K+,
   total log-likelihood).
2. Today's NUTS on the same DP (shorter run, same quantities): ESS per second.
3. Finite mixtures, Gibbs vs NUTS (``bm.sample(sampler=...)``, 2 chains x 1000 draws;
   NUTS 1000 tuning steps, Gibbs 200 burn-in sweeps, both from the EM fit): min bulk
   ESS over weights, means and covariance entries after sorting each draw's components
   by their first mean coordinate (the simulated clusters are separated along it), per
   second of wall time.

4. ``--rule``: the default sampler of a finite mixture (``mcmc/_choice.py``). Gibbs vs
   NUTS on conjugate finite models (full covariance, default prior, EM start as the
   pipeline does) across K (overfitted K included: 2 or 3 true clusters fitted with K up
   to 5), n (Old Faithful's 272, 3000, 30000) and D (2, 5); ``bm.sample``'s defaults
   (1000 draws after 1000 tuning / burn-in), 2 chains, ``cores=1``; wall time of the
   *first* fit of each model in the process (PyTensor compilation included, what a user
   pays on a first fit of that K; modules imported and numba caches warm by one tiny fit
   of an unrelated model); min bulk ESS and max R-hat over weights and means after
   ``bm.relabel`` against the EM fit (``bm.diagnostics``).

Usage: ``python benchmarks/bench_gibbs.py [--quick] [--no-nuts-dp] [--big] [--rule]``
(``--big`` adds n = 100,000; ``--rule`` runs only section 4).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_info, write_section

import bayesmix as bm


def _diag(arrays):
    """Max R-hat and min bulk ESS per named (chain, draw[, k]) array."""
    import arviz_stats as azs

    out = {}
    for name, a in arrays.items():
        a = np.asarray(a, dtype=float)
        a = a.reshape(a.shape[0], a.shape[1], -1)
        ds = xr.Dataset({"v": (("chain", "draw", "k"), a)})
        r = azs.rhat(ds)["v"].values
        e = azs.ess(ds, method="bulk")["v"].values
        out[name] = (float(np.nanmax(r)), float(np.nanmin(e)))
    return out


def _invariant(dt, mfm=False):
    post = dt["posterior"]
    w = -np.sort(-post["weights"].values, axis=-1)
    keep = w.mean((0, 1)) > 0.01
    arrays = {
        "log-likelihood": dt["log_likelihood"]["X"].sum("obs").values,
        "n_occupied (K+)": post["n_occupied"].values,
        f"sorted weights (top {int(keep.sum())})": w[..., keep],
    }
    if "concentration" in post:
        arrays["concentration"] = post["concentration"].values
    if mfm:
        arrays["n_components (K)"] = post["n_components"].values
    return arrays


def _sample(model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        dt = bm.sample(model, progressbar=False, **kw)
        return dt, time.perf_counter() - t


def _rows(label, dt, wall, mfm=False):
    rows = []
    for name, (rhat, ess) in _diag(_invariant(dt, mfm)).items():
        rows.append(f"| {label} | {name} | {rhat:.4f} | {ess:.0f} | {ess / wall:.0f} |")
    return rows


def bench_dp_mfm(quick, nuts_dp):
    X = bm.load_old_faithful()
    draws = 500 if quick else 2000
    dp = bm.build_dpgmm(X, truncation=20)
    mfm = bm.build_mfm(X)
    _sample(dp, draws=5, tune=5, chains=2, random_seed=0)  # numba caches warm
    _sample(mfm, draws=5, tune=5, chains=2, random_seed=0)
    load0 = os.getloadavg()[0]
    out = {}
    kw = dict(draws=draws, tune=500, chains=4, cores=2, random_seed=1)
    out["dp"] = _sample(dp, sampler="gibbs", **kw)
    out["mfm"] = _sample(mfm, **kw)
    from bayesmix.mcmc import _gibbs_sweeps

    _gibbs_sweeps.COLLAPSED = False  # the sampler before collapsed sweeps: z | parameters
    try:
        out["dp_blocked"] = _sample(dp, sampler="gibbs", **kw)
        out["mfm_blocked"] = _sample(mfm, **kw)
    finally:
        _gibbs_sweeps.COLLAPSED = True
    if nuts_dp:
        out["nuts"] = _sample(
            dp, sampler="nuts", draws=500, tune=500, chains=2, cores=1, random_seed=1
        )
    load1 = os.getloadavg()[0]
    lines = [
        "| sampler / model | quantity | R-hat | bulk ESS | ESS/s (wall) |",
        "|---|---|---|---|---|",
    ]
    times = []
    for key, label in [
        ("dp", "Gibbs DP"),
        ("mfm", "Gibbs MFM"),
        ("dp_blocked", "Gibbs DP, z given parameters"),
        ("mfm_blocked", "Gibbs MFM, z given parameters"),
        ("nuts", "NUTS DP"),
    ]:
        if key in out:
            dt, wall = out[key]
            lines += _rows(label, dt, wall, mfm=key.startswith("mfm"))
            st = dt.attrs.get("sampling_time", float("nan"))
            C, S = dt["posterior"].sizes["chain"], dt["posterior"].sizes["draw"]
            times.append(f"{label}: {C} x {S} draws, wall {wall:.1f} s (sampling {st:.1f} s)")
    post = out["dp"][0]["posterior"]
    occ = np.bincount(post["n_occupied"].values.ravel()) / post["n_occupied"].size
    mpost = out["mfm"][0]["posterior"]
    kplus = np.bincount(mpost["n_occupied"].values.ravel()) / mpost["n_occupied"].size
    kk = np.bincount(mpost["n_components"].values.ravel()) / mpost["n_components"].size
    notes = [
        "; ".join(times) + ".",
        f"Load average (1 min) before/after: {load0:.1f} / {load1:.1f}.",
        "Posterior P(K+ = k), DP: "
        + ", ".join(f"{k}: {p:.3f}" for k, p in enumerate(occ) if p > 0.001)
        + "; MFM: "
        + ", ".join(f"{k}: {p:.3f}" for k, p in enumerate(kplus) if p > 0.001)
        + "; MFM P(K = k): "
        + ", ".join(f"{k}: {p:.3f}" for k, p in enumerate(kk) if p > 0.001)
        + ".",
    ]
    if "nuts" in out:
        ess = {}
        for key in ("dp", "nuts"):
            dt, wall = out[key]
            d = _diag(_invariant(dt))
            ess[key] = (
                min(d["log-likelihood"][1], d["n_occupied (K+)"][1], d["concentration"][1]) / wall
            )
        notes.append(
            f"ESS/s (wall), min over log-likelihood, K+ and concentration: Gibbs "
            f"{ess['dp']:.0f}, NUTS {ess['nuts']:.2f}: **{ess['dp'] / ess['nuts']:.0f}x**."
        )
    return lines, notes


def _simulate(n, D, K, seed):
    rng = np.random.default_rng(seed)
    means = np.zeros((K, D))
    means[:, 0] = 6.0 * np.arange(K)
    means[:, 1:] = rng.normal(size=(K, D - 1))
    A = rng.normal(size=(K, D, D)) * 0.3
    covs = np.eye(D) + A @ A.swapaxes(1, 2)
    w = rng.dirichlet(np.full(K, 5.0))
    X, _ = bm.simulate(n, w, means, covs, random_seed=seed)
    return X


def _sorted_min_ess(dt):
    post = dt["posterior"]
    w, m, c = (post[v].values for v in ("weights", "means", "covariances"))
    order = np.argsort(m[..., 0], axis=-1)
    w = np.take_along_axis(w, order, -1)
    m = np.take_along_axis(m, order[..., None], -2)
    c = np.take_along_axis(c, order[..., None, None], -3)
    r, cc = np.tril_indices(m.shape[-1])
    d = _diag({"w": w, "m": m, "c": c[..., r, cc]})
    return min(v[1] for v in d.values())


def bench_finite(sizes):
    lines = [
        "| n | D | K | sampler | wall s | sampling s | min ESS | ESS/s (wall) | Gibbs / NUTS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, D, K in sizes:
        X = _simulate(n, D, K, seed=n + D + K)
        model = bm.build_gmm(X, K)
        res = {}
        for sampler, tune in (("gibbs", 200), ("nuts", 1000)):
            _sample(model, sampler=sampler, draws=10, tune=10, chains=1, random_seed=0)
            dt, wall = _sample(
                model, sampler=sampler, draws=1000, tune=tune, chains=2, cores=1, random_seed=1
            )
            ess = _sorted_min_ess(dt)
            res[sampler] = (wall, dt.attrs.get("sampling_time", float("nan")), ess)
        ratio = (res["gibbs"][2] / res["gibbs"][0]) / (res["nuts"][2] / res["nuts"][0])
        for s, (wall, st, ess) in res.items():
            tail = f"**{ratio:.1f}x**" if s == "gibbs" else ""
            lines.append(
                f"| {n} | {D} | {K} | {s} | {wall:.1f} | {st:.1f} | {ess:.0f} | "
                f"{ess / wall:.0f} | {tail} |"
            )
    return lines


RULE_GRID = [  # (data, n, D, true clusters, K)
    ("old faithful", 272, 2, 2, 2),
    ("old faithful", 272, 2, 2, 3),
    ("old faithful", 272, 2, 2, 4),
    ("old faithful", 272, 2, 2, 5),
    ("simulated", 3000, 2, 3, 3),
    ("simulated", 3000, 2, 3, 5),
    ("simulated", 3000, 5, 3, 3),
    ("simulated", 3000, 5, 3, 5),
    ("simulated", 30000, 2, 3, 3),
    ("simulated", 30000, 2, 3, 5),
]


def _rule_fit(X, K, sampler, seed):
    em = bm.fit_em(X, K, prior=bm.GMMPrior.from_data(X, K), n_init=3, random_seed=seed)
    model = bm.build_gmm(X, K)
    dt, wall = _sample(model, sampler=sampler, init=em, chains=2, cores=1, random_seed=seed)
    if K > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dt = bm.relabel(dt, reference=em)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = bm.diagnostics(dt, var_names=("weights", "means"))
    ss = dt.children.get("sample_stats")
    div = int(ss["diverging"].values.sum()) if ss is not None and "diverging" in ss else 0
    return wall, float(np.nanmax(d["rhat"])), float(np.nanmin(d["ess_bulk"])), div


def bench_rule(grid):
    from bayesmix.mcmc._choice import _n_params

    warm = _simulate(200, 3, 2, seed=99)  # imports, numba caches; not a model of the grid
    for s in ("gibbs", "nuts"):
        _sample(bm.build_gmm(warm, 1), sampler=s, draws=10, tune=10, chains=1, random_seed=0)
    lines = [
        "| data | n | D | true | K | params | sampler | wall s | max R-hat | min ESS "
        "| div | ESS/s | Gibbs / NUTS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for data, n, D, true, K in grid:
        if data == "old faithful":
            X = bm.load_old_faithful().to_numpy()
        else:
            X = _simulate(n, D, true, seed=n + D + true)
        res = {s: _rule_fit(X, K, s, seed=K) for s in ("gibbs", "nuts")}
        ratio = (res["gibbs"][2] / res["gibbs"][0]) / (res["nuts"][2] / res["nuts"][0])
        for s, (wall, rhat, ess, div) in res.items():
            tail = f"**{ratio:.1f}x**" if s == "gibbs" else ""
            lines.append(
                f"| {data} | {n} | {D} | {true} | {K} | {_n_params('full', K, D)} | {s} | "
                f"{wall:.1f} | {rhat:.3f} | {ess:.0f} | {div} | {ess / wall:.0f} | {tail} |"
            )
            print(lines[-1], flush=True)
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-nuts-dp", action="store_true")
    ap.add_argument("--big", action="store_true", help="add n = 100,000 to the finite runs")
    ap.add_argument("--skip-dp", action="store_true")
    ap.add_argument("--skip-finite", action="store_true")
    ap.add_argument("--sizes", help="finite runs as n x D x K, e.g. 3000x2x3,100000x2x3")
    ap.add_argument("--rule", action="store_true", help="only the default-sampler grid")
    args = ap.parse_args()
    if args.rule:
        load0 = os.getloadavg()[0]
        grid = RULE_GRID[:2] if args.quick else RULE_GRID
        rule = bench_rule(grid)
        md = [
            "## Default sampler of a finite mixture (`benchmarks/bench_gibbs.py --rule`)",
            "",
            machine_info(),
            "",
            f"Load average (1 min) at start {load0:.1f}, at end {os.getloadavg()[0]:.1f} "
            "(2 cores shared with another developer).",
            "",
            "`bm.sample(build_gmm(X, K), sampler=..., init=em)`, full covariance, default "
            "conjugate prior, `bm.sample`'s defaults (1000 draws after 1000 tuning steps / "
            "burn-in sweeps), 2 chains, `cores=1`; wall = the first `bm.sample` call of "
            "that model in the process (NUTS's PyTensor compilation included); max R-hat "
            "and min bulk ESS over weights and means after `bm.relabel` against the EM "
            "fit; simulated clusters 6 sd apart along the first feature.",
            "",
            *rule,
        ]
        text = "\n".join(md)
        print(text)
        if not args.quick:
            write_section("gibbs-rule", text)
        return
    if not args.skip_dp:
        load0 = os.getloadavg()[0]
        dp_lines, notes = bench_dp_mfm(args.quick, not args.no_nuts_dp)
        md = [
            "## Gibbs sampler: DP and MFM (`benchmarks/bench_gibbs.py`)",
            "",
            machine_info(),
            "",
            f"Load average (1 min) at start {load0:.1f}, at end {os.getloadavg()[0]:.1f} "
            "(2 cores shared with other jobs: timings are noisy).",
            "",
            "Old Faithful, full covariance, default priors; DP truncation 20. Gibbs: 4 chains "
            "x 2000 draws after 500 burn-in sweeps, `cores=2` (threads), from the EM fit; "
            "wall = the whole `bm.sample` call (numba caches warm). NUTS (today's sampler "
            "for the DP): 2 chains x 500 draws after 500 tuning steps. Targets: R-hat < "
            "1.01, bulk ESS >= 1000, wall < 15 s.",
            "",
            *dp_lines,
            "",
            *notes,
        ]
        text = "\n".join(md)
        print(text)
        write_section("gibbs", text)
    if not args.skip_finite:
        load0 = os.getloadavg()[0]
        sizes = [(3000, 2, 3)] if args.quick else [(3000, 2, 3), (3000, 5, 5), (3000, 10, 8)]
        if args.big:
            sizes.append((100_000, 2, 3))
        if args.sizes:
            sizes = [tuple(int(v) for v in t.split("x")) for t in args.sizes.split(",")]
        fin = bench_finite(sizes)
        md = [
            "## Gibbs vs NUTS on finite mixtures (`benchmarks/bench_gibbs.py`)",
            "",
            machine_info(),
            "",
            f"Load average (1 min) at start {load0:.1f}, at end {os.getloadavg()[0]:.1f}.",
            "",
            "`bm.sample(build_gmm(X, K), sampler=...)`, full covariance, simulated clusters "
            "6 sd apart along the first feature; 2 chains x 1000 draws (NUTS: 1000 tuning "
            "steps; Gibbs: 200 burn-in sweeps), both from the EM fit, warm caches, "
            "`cores=1`; min bulk ESS over weights, means and covariance entries after "
            "sorting components by their first mean coordinate; wall = the whole "
            "`bm.sample` call (EM start, log-likelihood, diagnostics included).",
            "",
            *fin,
        ]
        text = "\n".join(md)
        print(text)
        write_section("gibbs-finite", text)


if __name__ == "__main__":
    main()
