"""Dask benchmark (issue 14): EM on a zarr store streamed through a LocalCluster.

1. Simulated mixture data (n rows x d=10, K=8 clusters) written chunk by chunk to a zarr
   store (never in memory at once).
2. ``fit_em`` on ``dask.array.from_zarr(store)`` on a ``LocalCluster`` (``--workers``
   single-threaded worker processes with ``--memory-limit`` each), ``persist=False``
   (streamed from disk every iteration), a fixed number of iterations from fixed
   initial means; per-iteration time of the Dask pass (one computation: read every
   chunk, numba E-step, tree reduction of the statistics, M-step on the client); the
   workers' and the client's peak RSS.
3. The same data in memory (numpy) and the same fit with the in-memory numba pass:
   per-iteration time and the log-likelihood (equality to 1e-9 relative).
4. Strong scaling of the EM grid of ``bayesmix fit --no-mcmc --k 1-8 --covariance
   full,diag,spherical,tied``: serial, ``--workers 1`` and ``--workers 2``.

Every timing is reported with the 1-minute load average at that moment (the machine is
shared). Usage: ``python benchmarks/bench_dask.py --n 20000000`` (writes the "dask"
section of RESULTS.md); ``--quick`` for a small smoke run that writes nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, write_section

D, K = 10, 8


def _load():
    return f"{os.getloadavg()[0]:.1f}"


def _block(block_info=None, seed=0):
    """Rows of a K-component mixture for one chunk (seeded by the chunk's index)."""
    loc = block_info[None]["array-location"][0]
    n = loc[1] - loc[0]
    rng = np.random.default_rng([seed, loc[0]])
    centres = np.random.default_rng(seed).normal(0.0, 4.0, (K, D))
    z = rng.integers(K, size=n)
    return centres[z] + rng.standard_normal((n, D)) * (0.5 + z[:, None] / K)


def write_zarr(path, n, chunk):
    import dask
    import dask.array as da

    rows = (chunk,) * (n // chunk) + ((n % chunk,) if n % chunk else ())
    X = da.map_blocks(_block, chunks=(rows, (D,)), dtype=np.float64)
    with dask.config.set(scheduler="threads", num_workers=2):
        X.to_zarr(path, overwrite=True)


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dask_fit(path, init, iters, workers, memory_limit, chunk_note):
    import dask.array as da
    from distributed import Client, LocalCluster

    import bayesmix as bm

    out = {}
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            memory_limit=memory_limit,
            dashboard_address=None,
        ) as lc,
        Client(lc) as client,
    ):
        Xd = da.from_zarr(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bm.fit_em(Xd[:20000], K, init=init, max_iter=1)  # compile numba in the workers
            t0 = time.perf_counter()
            load0 = _load()
            res = bm.fit_em(Xd, K, init=init, max_iter=iters, persist=False)
            out["total_s"] = time.perf_counter() - t0
        out["load"] = f"{load0} -> {_load()}"
        # passes: 1 moments + 1 initial statistics + (iters + 1) E-steps
        out["passes"] = iters + 3
        out["per_pass_s"] = out["total_s"] / out["passes"]
        out["ll"] = res.log_likelihood
        out["worker_peak_mb"] = max(
            client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024).values()
        )
    out["client_peak_mb"] = _rss_mb()
    out["chunks"] = chunk_note
    return out


def memory_fit(path, init, iters):
    import dask.array as da

    import bayesmix as bm

    t0 = time.perf_counter()
    X = np.asarray(da.from_zarr(path))
    read_s = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm.fit_em(X[:20000], K, init=init, max_iter=1, engine="numba")
        t0 = time.perf_counter()
        load0 = _load()
        res = bm.fit_em(X, K, init=init, max_iter=iters, engine="numba")
        total = time.perf_counter() - t0
    # passes: the mean, the nearest-mean init + (iters + 1) numba E-steps
    return {
        "read_s": read_s,
        "total_s": total,
        "per_pass_s": total / (iters + 3),
        "ll": res.log_likelihood,
        "load": f"{load0} -> {_load()}",
    }


def grid_scaling(out_dir):
    base = [sys.executable, "-m", "bayesmix.workflow._cli", "fit", "--no-mcmc", "--k", "1-8",
            "--covariance", "full,diag,spherical,tied", "--quiet"]  # fmt: skip
    rows = []
    runs = (("serial", []), ("1 worker", ["--workers", "1"]), ("2 workers", ["--workers", "2"]))
    for label, extra in runs:
        load0 = _load()
        t0 = time.perf_counter()
        subprocess.run([*base, *extra, "--out", str(Path(out_dir) / label.replace(" ", "_"))],
                       check=True, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
        rows.append((label, time.perf_counter() - t0, f"{load0} -> {_load()}"))
    return rows


def grid_em_stage(n, out_dir):
    """The EM stage alone (the pipeline's timing) of the 1-8 x 4-type grid, n simulated rows."""
    from bayesmix.workflow._pipeline import run_experiment
    from bayesmix.workflow._spec import spec_from_dict

    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 3.0, (4, 3))
    X = centres[rng.integers(4, size=n)] + rng.standard_normal((n, 3))
    path = Path(out_dir) / f"grid_{n}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="")
    rows, tables = [], []
    runs = (("serial", {}), ("1 worker", {"workers": 1}), ("2 workers", {"workers": 2}))
    for label, cluster in runs:
        d = {"data": {"source": "csv", "path": str(path)}, "sampler": {"mcmc": False},
             "model": {"k": "1-8", "covariance": "full,diag,spherical,tied"}}  # fmt: skip
        if cluster:
            d["cluster"] = cluster
        load0 = _load()
        res = run_experiment(spec_from_dict(d), out=Path(out_dir) / "g", quiet=True, report=False)
        rows.append((label, res.timings["em"], f"{load0} -> {_load()}"))
        tables.append(res.table)
    same = all(t.equals(tables[0]) for t in tables[1:])
    return rows, same


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000_000)
    ap.add_argument("--chunk", type=int, default=1_000_000)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="1GB")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--no-grid", action="store_true")
    ap.add_argument(
        "--no-memory",
        action="store_true",
        help="skip the in-memory comparison (data larger than the memory budget); writes "
        'the "dask-large" section',
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--grid-n", type=int, default=0, help="only the in-process EM-stage grid")
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.chunk, a.iters, a.no_grid = 200_000, 30_000, 2, True
    if a.grid_n:
        rows, same = grid_em_stage(a.grid_n, Path(a.dir) / "bench_dask_grid")
        md = _grid_markdown(a.grid_n, rows, same)
        print(md)
        write_section("dask-grid", md)
        return
    path = str(Path(a.dir) / f"bench_dask_{a.n}.zarr")
    t0 = time.perf_counter()
    write_zarr(path, a.n, a.chunk)
    write_s = time.perf_counter() - t0
    import dask.array as da

    init = np.asarray(da.from_zarr(path)[:K])  # the same start for both fits
    dk = dask_fit(path, init, a.iters, a.workers, a.memory_limit, f"{a.chunk:,} rows")
    mem = None if a.no_memory else memory_fit(path, init, a.iters)
    rel = None if mem is None else abs(dk["ll"] - mem["ll"]) / abs(mem["ll"])
    grid = [] if a.no_grid else grid_scaling(Path(a.dir) / "bench_dask_grid")
    md = _markdown(a, write_s, dk, mem, rel, grid)
    print(md)
    if not a.quick:
        write_section("dask-large" if a.no_memory else "dask", md)


def _markdown(a, write_s, dk, mem, rel, grid):
    gb = a.n * D * 8 / 1e9
    lines = [
        "## EM on Dask arrays (bench_dask.py)",
        "",
        machine_info(packages=("numpy", "numba", "dask", "distributed", "zarr")),
        "",
        f"n = {a.n:,} x d = {D} ({gb:.2f} GB float64), K = {K}, full covariance, zarr store "
        f"written in {write_s:.0f} s; chunks of {dk['chunks']}; {a.iters} EM iterations from "
        "the same initial means (the first K rows).",
        "",
        "| run | total (s) | per pass (s) | log-likelihood | peak RSS | load avg (1 min) |",
        "|---|---|---|---|---|---|",
        f"| Dask, LocalCluster {a.workers} workers x 1 thread, memory_limit {a.memory_limit}, "
        f"streamed from zarr each pass | {dk['total_s']:.1f} | {dk['per_pass_s']:.2f} | "
        f"{dk['ll']:.10g} | worker {dk['worker_peak_mb']:.0f} MB, client "
        f"{dk['client_peak_mb']:.0f} MB | {dk['load']} |",
    ]
    if mem is None:
        total = dk["worker_peak_mb"] * a.workers + dk["client_peak_mb"]
        lines += [
            "",
            f"No in-memory comparison (`--no-memory`: {gb:.1f} GB of data). Peak resident "
            f"memory of the whole fit: {a.workers} workers x {dk['worker_peak_mb']:.0f} MB + "
            f"client {dk['client_peak_mb']:.0f} MB = {total / 1e3:.2f} GB.",
        ]
    else:
        lines += [
            f"| in memory, numba pass (data read in {mem['read_s']:.0f} s) | "
            f"{mem['total_s']:.1f} | {mem['per_pass_s']:.2f} | {mem['ll']:.10g} | "
            f"{gb * 1e3:.0f} MB of data | {mem['load']} |",
            "",
            f"Relative log-likelihood difference: {rel:.2e}. Dask / in-memory time per pass: "
            f"{dk['per_pass_s'] / mem['per_pass_s']:.2f}x.",
        ]
    if grid:
        t1 = grid[1][1]
        lines += [
            "",
            "Strong scaling of `bayesmix fit --no-mcmc --k 1-8 --covariance "
            "full,diag,spherical,tied` (Old Faithful, wall time of the whole command):",
            "",
            "| run | wall (s) | efficiency vs 1 worker | load avg (1 min) |",
            "|---|---|---|---|",
        ]
        for label, s, load in grid:
            n_w = 2 if label.startswith("2") else 1
            eff = f"{t1 / (n_w * s):.2f}" if "worker" in label else "-"
            lines.append(f"| {label} | {s:.1f} | {eff} | {load} |")
    return "\n".join(lines)


def _grid_markdown(n, rows, same):
    t1 = rows[1][1]
    lines = [
        "## The EM grid on a LocalCluster (bench_dask.py --grid-n)",
        "",
        machine_info(packages=("numpy", "numba", "dask", "distributed")),
        "",
        f"EM stage of `run_experiment` (the `bayesmix fit --no-mcmc --k 1-8 --covariance "
        f"full,diag,spherical,tied` grid: 32 fits, 5 restarts each) on n = {n:,} simulated "
        "rows x 3 features; LocalCluster workers are single-threaded processes (started before "
        f"the timer). Tables identical to the serial run: {same}.",
        "",
        "| run | EM stage (s) | efficiency vs 1 worker | load avg (1 min) |",
        "|---|---|---|---|",
    ]
    for label, sec, load in rows:
        n_w = 2 if label.startswith("2") else 1
        eff = f"{t1 / (n_w * sec):.2f}" if "worker" in label else "-"
        lines.append(f"| {label} | {sec:.1f} | {eff} | {load} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
