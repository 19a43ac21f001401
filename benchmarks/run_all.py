"""Run every benchmark script in this folder (``make bench``).

Each ``bench_*.py`` runs in its own process, in name order, with the Python that runs
this script; a failing script does not stop the others, and the exit status is 1 if any
failed. Full runs rewrite their sections of ``benchmarks/RESULTS.md``.

Usage::

    .venv/bin/python benchmarks/run_all.py             # full runs (make bench)
    .venv/bin/python benchmarks/run_all.py --quick     # smoke runs; RESULTS.md unchanged
    .venv/bin/python benchmarks/run_all.py --dry-run   # print the commands only
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"

#: extra flags of a smoke run, per script (every script accepts --quick)
QUICK_FLAGS = {"bench_kmeans.py": ["--quick", "--no-write"]}


def scripts():
    """The benchmark scripts, in name order."""
    return sorted(HERE.glob("bench_*.py"))


def commands(quick=False):
    """One command line per benchmark script."""
    return [
        [sys.executable, str(path), *(QUICK_FLAGS.get(path.name, ["--quick"]) if quick else [])]
        for path in scripts()
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke runs; RESULTS.md is restored")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    cmds = commands(args.quick)
    if args.dry_run:
        for cmd in cmds:
            print(" ".join(cmd))
        return 0
    # a smoke run must not replace measured numbers: keep RESULTS.md as it was
    saved = RESULTS.read_bytes() if args.quick and RESULTS.exists() else None
    failed = []
    try:
        for cmd in cmds:
            name = Path(cmd[1]).name
            print(f"== {name} {' '.join(cmd[2:])}".rstrip(), flush=True)
            t0 = time.perf_counter()
            rc = subprocess.run(cmd, cwd=HERE.parent).returncode
            print(f"== {name}: exit {rc}, {time.perf_counter() - t0:.1f} s", flush=True)
            if rc:
                failed.append(name)
    finally:
        if saved is not None:
            RESULTS.write_bytes(saved)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
