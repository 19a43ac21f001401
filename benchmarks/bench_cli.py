"""Wall time of ``bayesmix fit`` with its default settings on Old Faithful, cold and warm.

The target (issue 5): ``make run`` (``bayesmix fit --out bayesmix-report``, default
settings) finishes in under 3 minutes on a 2-core machine, including the first run on a
fresh install, when PyTensor's compile cache and numba's cache are empty.

Each run is a separate process (``python -m bayesmix.workflow._cli``-equivalent, in a child of this
script, so that imports and cache loading count), in this order:

1. ``cold``: the defaults with PyTensor's ``compiledir`` and ``NUMBA_CACHE_DIR`` pointed at
   empty temporary folders (a first ``make run``);
2. ``warm``: the defaults again with the same, now filled, caches (a second ``make run``);
3. ``--no-mcmc`` with the warm caches.

Per run it records the process wall time and the stages of the pipeline (k-means, EM,
MCMC, choice and posterior analysis, saving, report), per MCMC fit the model build,
``bm.sample`` (compilation included), PyMC's own sampling time (its "Sampling ... took N
seconds" log line) and the post-processing (relabelling, LOO/WAIC), and the 1-minute
load average before the run. Writes section ``cli`` of benchmarks/RESULTS.md.

Usage: ``.venv/bin/python benchmarks/bench_cli.py [--quick]`` (``--quick``: the
``--no-mcmc`` run only).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, write_section

from bayesmix.workflow._spec import DEFAULTS

_STAGES = ("kmeans", "em", "mcmc", "analysis", "save", "report")


def _child(argv, out):
    """Run ``bayesmix fit`` in this process and print its timings as JSON."""
    from bayesmix.workflow._cli import _build_parser, _fit_spec
    from bayesmix.workflow._pipeline import run_experiment

    took = []

    class _Took(logging.Handler):
        def emit(self, record):
            m = re.search(r"Sampling .* took ([\d.]+) seconds", record.getMessage())
            if m:
                took.append(float(m.group(1)))

    logging.getLogger("pymc").addHandler(_Took())
    args = _build_parser().parse_args(["fit", "--quiet", *argv])
    res = run_experiment(_fit_spec(args), out=out, quiet=True)
    fits = []
    mcmc_recs = [(key, rec) for key, rec in res.records.items() if rec.idata is not None]
    for n, ((cov, K), rec) in enumerate(mcmc_recs):
        fits.append(
            {
                "fit": f"{cov} K={K}",
                "total": rec.seconds,
                **rec.stage_seconds,
                "pymc_sampling": took[n] if len(took) == len(mcmc_recs) else None,
                "max_rhat": rec.diagnostics.get("max_rhat"),
                "divergences": rec.diagnostics.get("divergences"),
            }
        )
    print(
        "BENCH "
        + json.dumps(
            {
                "timings": res.timings,
                "fits": fits,
                "chosen": f"{res.chosen[0]} K={res.chosen[1]}",
            }
        )
    )


def _load1():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _run(label, argv, env):
    load = _load1()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(Path(tmp) / "report"), *argv],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{label} run failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH "))
    d = json.loads(line[len("BENCH ") :])
    d.update(label=label, argv=argv, wall=wall, load=load)
    print(f"{label}: {wall:.1f} s wall (load before {load:.2f})", flush=True)
    return d


def main():
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        _child(sys.argv[i + 2 :], sys.argv[i + 1])
        return
    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory() as caches:
        env = dict(os.environ)
        flags = env.get("PYTENSOR_FLAGS", "")
        env["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"compiledir={caches}/pytensor") if f)
        env["NUMBA_CACHE_DIR"] = f"{caches}/numba"
        runs = []
        if not quick:
            runs.append(_run("cold (empty caches)", [], env))
            runs.append(_run("warm", [], env))
        runs.append(_run("warm", ["--no-mcmc"], env))

    lines = [
        "## bayesmix fit (command line, `make run`) on Old Faithful",
        "",
        machine_info(),
        "",
        f"Defaults: EM over K={DEFAULTS['k']}, MCMC for K={DEFAULTS['mcmc_k']}, "
        f"{DEFAULTS['chains']} chains x {DEFAULTS['draws']} draws after {DEFAULTS['tune']} "
        f"tuning steps, full covariance, seed {DEFAULTS['seed']}. Target: < 180 s wall "
        "including a cold start (empty PyTensor and numba caches). Each run is a fresh "
        "process; wall includes Python start-up and imports; start-up is wall minus the "
        "pipeline's own total (interpreter, imports, the first import of PyMC is inside "
        "the MCMC stage).",
        "",
        "| run | caches | load (1 min) | wall (s) | start-up (s) | "
        + " | ".join(f"{s} (s)" for s in _STAGES)
        + " | chosen |",
        "|---|---|---|---|---|" + "---|" * len(_STAGES) + "---|",
    ]
    for r in runs:
        t = r["timings"]
        cmd = f"`bayesmix fit {' '.join(r['argv'])}`".replace(" `", "`")
        lines.append(
            f"| {cmd} | {r['label']} | {r['load']:.1f} | {r['wall']:.1f} | "
            f"{r['wall'] - t['total']:.1f} | "
            + " | ".join(f"{t.get(s, 0.0):.1f}" for s in _STAGES)
            + f" | {r['chosen']} |"
        )
    for r in runs:
        if not r["fits"]:
            continue
        lines += [
            "",
            f"Per MCMC fit, {r['label']} run: model build, `bm.sample` (compilation included), "
            "PyMC's own sampling time (its log line, whole seconds), post-processing "
            "(relabelling, LOO/WAIC, diagnostics):",
            "",
            "| fit | total (s) | build (s) | bm.sample (s) | of which NUTS (s) | post (s) | "
            "max R-hat | divergences |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for f in r["fits"]:
            nuts = "n/a" if f["pymc_sampling"] is None else f"{f['pymc_sampling']:.0f}"
            rhat = f["max_rhat"]
            lines.append(
                f"| {f['fit']} | {f['total']:.1f} | {f.get('build', 0):.1f} | "
                f"{f.get('sample', 0):.1f} | {nuts} | {f.get('post', 0):.1f} | "
                f"{'n/a' if rhat is None else f'{rhat:.3f}'} | {f['divergences']} |"
            )
    lines += [
        "",
        "The machine is shared by several engineers during development; the load average "
        "before each run is recorded, and timings under load above 2 are inflated by "
        "contention.",
    ]
    write_section("cli", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
