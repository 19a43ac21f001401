"""Execute the example notebooks at full settings and store their outputs in place.

Usage (from the repository root; ``make notebooks`` runs it)::

    python docs/run_notebooks.py                      # every notebooks/*.ipynb
    python docs/run_notebooks.py notebooks/02_*.ipynb # some of them

Each notebook runs top to bottom in a fresh ``python3`` kernel (the interpreter running
this script, through ipykernel) with the settings of its first code cell, in the
``notebooks/`` folder, importing this checkout's ``bayesmix``, with matplotlib's Agg
backend; its seeds are fixed in that cell,
so a rerun reproduces the stored outputs (up to timings printed by the samplers).
Progress bars are off in the stored versions. The test suite does not read these
outputs: it executes the notebooks itself on small settings (tests/test_notebooks.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run(path, timeout=1800):
    """Execute one notebook in place; return the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=timeout,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    for cell in nb.cells:  # keep the notebook reproducible-looking: no run-specific ids
        cell.get("metadata", {}).pop("execution", None)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return time.perf_counter() - t0


def main(argv=None):
    """Execute the notebooks named on the command line (default: all); return 0."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path)
    args = p.parse_args(argv)
    os.environ["MPLBACKEND"] = "Agg"
    # the kernel runs in notebooks/: put this checkout first, so it imports this
    # checkout's bayesmix whatever is installed in the environment
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    os.environ.setdefault("PYTHONHASHSEED", "0")
    paths = [q.resolve() for q in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        print(f"{path.relative_to(ROOT)}: {run(path):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
