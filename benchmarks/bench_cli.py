"""Wall time of ``bayesmix fit`` with its default settings on Old Faithful.

The target (issue 5): the default analysis finishes in under 3 minutes on a 2-core
machine. Runs the same spec the console script builds from its defaults (in-process,
so the stage timings are available), once with MCMC and once with ``--no-mcmc``, and
writes section ``cli`` of benchmarks/RESULTS.md. Per MCMC fit it splits the time into
PyMC's own sampling time (``posterior.attrs['sampling_time']`` when the sampler
records it) and the rest (model compilation, EM initialisation, relabelling, LOO/WAIC).

Usage: ``.venv/bin/python benchmarks/bench_cli.py [--quick]`` (``--quick``: --no-mcmc only).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, write_section

from bayesmix.cli import _build_parser, _fit_spec
from bayesmix.experiment import DEFAULTS, run_experiment


def run(argv):
    args = _build_parser().parse_args(["fit", "--quiet", *argv])
    spec = _fit_spec(args)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = run_experiment(spec, out=Path(tmp) / "report", quiet=True)
        wall = time.perf_counter() - t0
    return res, wall


def main():
    quick = "--quick" in sys.argv
    lines = [
        "## bayesmix fit (command line) on Old Faithful",
        "",
        machine_info(),
        "",
        f"Defaults: EM over K={DEFAULTS['k']}, MCMC for K={DEFAULTS['mcmc_k']}, "
        f"{DEFAULTS['chains']} chains x {DEFAULTS['draws']} draws after {DEFAULTS['tune']} "
        f"tuning steps, full covariance, seed {DEFAULTS['seed']}. Target: < 180 s wall.",
        "",
        "| run | wall (s) | k-means (s) | EM (s) | MCMC (s) | report+save (s) | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    runs = [("--no-mcmc", ["--no-mcmc"])] + ([] if quick else [("defaults", [])])
    details = []
    for _label, argv in runs:
        res, wall = run(argv)
        t = res.timings
        report = t.get("total", wall) - t.get("analysis_total", 0.0)
        lines.append(
            f"| `bayesmix fit {' '.join(argv)}`".rstrip() + f" | {wall:.1f} | "
            f"{t['kmeans']:.1f} | {t['em']:.1f} | {t['mcmc']:.1f} | {report:.1f} | "
            f"{res.chosen[0]} K={res.chosen[1]} |"
        )
        print(lines[-1], flush=True)
        for (cov, K), rec in res.records.items():
            if rec.idata is None:
                continue
            st = rec.idata["posterior"].attrs.get("sampling_time")
            details.append(
                f"| {cov} K={K} | {rec.seconds:.1f} | "
                + (f"{float(st):.1f} | {rec.seconds - float(st):.1f} |" if st else "n/a | n/a |")
            )
    if details:
        lines += [
            "",
            "Per MCMC fit (defaults run): total, PyMC sampling time, rest (compilation, "
            "EM initialisation, relabelling, LOO/WAIC):",
            "",
            "| fit | total (s) | sampling (s) | rest (s) |",
            "|---|---|---|---|",
            *details,
        ]
    lines += [
        "",
        "The machine is shared by several engineers during development; timings taken "
        "while others run tests are noisy (load average noted by the person running it).",
    ]
    write_section("cli", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
