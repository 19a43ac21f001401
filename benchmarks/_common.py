"""Shared helpers for the benchmark scripts: machine description and RESULTS.md sections.

Each script owns one section of ``benchmarks/RESULTS.md``, delimited by
``<!-- BEGIN name -->`` / ``<!-- END name -->`` markers, and rewrites only that
section, so scripts can be rerun independently.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
_HEADER = (
    "# Benchmark results\n\n"
    "Written by the scripts in `benchmarks/` (`make bench` runs them all). Each section records "
    "the machine, date and package versions it was measured with.\n"
)


def _version(pkg):
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info(
    packages=("numpy", "scipy", "scikit-learn", "numba", "pymc", "pytensor", "nutpie"),
):
    """One markdown paragraph: CPU, cores, memory, OS, Python, package versions, date."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{mem_kb / 2**20:.0f} GiB"
    except (OSError, AttributeError):
        mem = "unknown"
    versions = ", ".join(f"{p} {_version(p)}" for p in packages)
    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Machine: {cpu}, {os.cpu_count()} cores, {mem} RAM, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}; {versions}. Date: {date}."
    )


def write_section(name, markdown):
    """Replace (or append) the section ``name`` of benchmarks/RESULTS.md."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    text = RESULTS.read_text() if RESULTS.exists() else _HEADER
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    RESULTS.write_text(text)


@contextmanager
def timer():
    """``with timer() as t: ...`` then ``t()`` gives elapsed seconds."""
    start = time.perf_counter()
    elapsed = [None]
    yield lambda: elapsed[0] if elapsed[0] is not None else time.perf_counter() - start
    elapsed[0] = time.perf_counter() - start
