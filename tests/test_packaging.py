"""Regression tests for the build and benchmark plumbing (issue 11's bugs).

* ``make bench`` ran ``benchmarks/run_all.py``, which did not exist;
* ``pip install`` printed setuptools' deprecation warning for the ``project.license``
  table (now an SPDX string, PEP 639).
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_bench_runs_an_existing_script():
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^bench:.*\n((?:\t.*\n)+)", text, flags=re.MULTILINE)
    assert recipe, "Makefile has no bench target"
    scripts = re.findall(r"benchmarks/\S+\.py", recipe.group(1))
    assert scripts, recipe.group(1)
    for script in scripts:
        assert (ROOT / script).is_file(), f"make bench runs {script}, which does not exist"


def test_run_all_covers_every_benchmark_with_a_quick_flag():
    run_all = _load_run_all()
    benches = sorted(p.name for p in (ROOT / "benchmarks").glob("bench_*.py"))
    assert len(benches) >= 4
    full = run_all.commands(quick=False)
    quick = run_all.commands(quick=True)
    assert [Path(c[1]).name for c in full] == benches
    assert all(len(c) == 2 and c[0] == sys.executable for c in full)
    for cmd in quick:
        assert "--quick" in cmd[2:]
        source = Path(cmd[1]).read_text()
        for flag in cmd[2:]:
            assert flag in source, f"{Path(cmd[1]).name} does not know {flag}"


def test_run_all_reports_failures_and_quick_keeps_results(tmp_path, monkeypatch, capsys):
    run_all = _load_run_all()
    results = tmp_path / "RESULTS.md"
    results.write_text("measured numbers\n")
    # one benchmark that overwrites RESULTS.md, one that fails
    (tmp_path / "bench_a.py").write_text(
        f"from pathlib import Path\nPath({str(results)!r}).write_text('smoke')\n"
    )
    (tmp_path / "bench_b.py").write_text("raise SystemExit(3)\n")
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    monkeypatch.setattr(run_all, "RESULTS", results)
    assert run_all.main(["--quick"]) == 1
    assert results.read_text() == "measured numbers\n"  # a smoke run restores it
    out = capsys.readouterr()
    assert "bench_b.py: exit 3" in out.out and "failed: bench_b.py" in out.err
    assert run_all.main(["--dry-run"]) == 0
    assert "bench_a.py --quick" not in capsys.readouterr().out  # no flags in a full run


def test_license_is_an_spdx_string_without_setuptools_warning():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "BSD-3-Clause"
    # PEP 639 license strings need setuptools >= 77
    assert "setuptools>=77" in meta["build-system"]["requires"]
    setuptools = pytest.importorskip("setuptools")
    from setuptools.config.pyprojecttoml import apply_configuration

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(setuptools.Distribution(), ROOT / "pyproject.toml")
    assert not [w for w in caught if "license" in str(w.message).lower()]
    assert dist.metadata.license_expression == "BSD-3-Clause"
