"""Documentation checks that run without Sphinx (fast; part of the default suite).

* Every public name of ``bayesmix.__all__`` has a numpydoc docstring with the sections
  that apply to it: functions a Parameters section naming every argument, a Returns (or
  Yields) section and an Examples section; classes a Parameters or Attributes section;
  warning classes a summary line. ``make docs`` (Sphinx + numpydoc validation) checks
  the same docstrings parse; this test says which section is missing without building.
* Every notebook in ``notebooks/`` is stored executed: all code cells run once, top to
  bottom, in one kernel (execution counts 1, 2, 3 ...), no error output, every cell that
  displays something (a final expression, ``print``, ``display``) has its output, at
  least one figure; and it opens with the question it answers and ends with what to take
  away. ``make notebooks`` regenerates the outputs; tests/test_notebooks.py executes the
  notebooks itself on small settings and does not read them.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import pytest

import bayesmix

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: names in __all__ that are not objects with their own docstring
NOT_OBJECTS = {"__version__"}
PUBLIC = sorted(set(bayesmix.__all__) - NOT_OBJECTS)


def sections(doc):
    """Section name -> body of a numpydoc docstring (a title line underlined by dashes)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    out, current = {}, None
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"-{3,}", nxt.strip()) and len(nxt.strip()) >= 3:
            current = line.strip()
            out[current] = []
        elif current is not None and not re.fullmatch(r"-{3,}", line.strip()):
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def documented_parameters(body):
    """Names declared in a Parameters section (``a : type``, ``a, b : type``, ``**kw``)."""
    names = set()
    for line in body.splitlines():
        if not line or line[0].isspace():
            continue
        head = line.split(" : ")[0] if " : " in line else line
        names.update(n.strip().lstrip("*") for n in head.split(","))
    return names


def signature_parameters(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # builtins without a signature
        return []
    return [p.name for p in sig.parameters.values() if p.name not in ("self", "cls")]


def test_sections_parser():
    doc = """Summary.

    Parameters
    ----------
    x, y : ndarray, shape (N,)
        The data.
    **kwargs
        More.

    Returns
    -------
    float
    """
    s = sections(doc)
    assert set(s) == {"Parameters", "Returns"}
    assert documented_parameters(s["Parameters"]) == {"x", "y", "kwargs"}
    assert sections("Only a summary.") == {}


def test_public_names_listed():
    assert len(PUBLIC) >= 25
    for name in PUBLIC:
        assert hasattr(bayesmix, name), f"bayesmix.__all__ lists {name!r}, which does not exist"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_docstring(name):
    obj = getattr(bayesmix, name)
    doc = inspect.getdoc(obj)
    assert doc and doc.strip(), f"bayesmix.{name} has no docstring"
    summary = doc.strip().splitlines()[0]
    assert summary.endswith("."), f"bayesmix.{name}: summary line should end with a period"
    if inspect.isclass(obj) and issubclass(obj, Warning):
        return  # a warning class needs its summary only
    s = sections(obj.__doc__)
    if inspect.isclass(obj):
        assert "Parameters" in s or "Attributes" in s, (
            f"bayesmix.{name}: class docstring needs a Parameters or Attributes section"
        )
        return
    assert callable(obj), f"bayesmix.{name} is neither a class nor callable"
    params = signature_parameters(obj)
    if params:
        assert "Parameters" in s, f"bayesmix.{name}: no Parameters section"
        missing = set(params) - documented_parameters(s["Parameters"])
        assert not missing, f"bayesmix.{name}: parameters not documented: {sorted(missing)}"
    assert "Returns" in s or "Yields" in s, f"bayesmix.{name}: no Returns section"
    assert "Examples" in s and ">>>" in s["Examples"], f"bayesmix.{name}: no Examples section"


def _code(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def displays_something(source):
    """Whether a code cell shows output when run: a final expression, print() or display()."""
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return True
    if not tree.body:
        return False
    last = tree.body[-1]
    if isinstance(last, ast.Expr) and not (
        isinstance(last.value, ast.Constant) and last.value.value is None
    ):
        return True
    calls = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    return bool(calls & {"print", "display"})


def test_displays_something():
    assert displays_something("x = 1\nx")
    assert displays_something("print(1)")
    assert displays_something("%matplotlib inline\nfig")
    assert not displays_something("%matplotlib inline\nimport numpy as np")
    assert not displays_something("DRAWS = 100  # comment")


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stored_executed(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: code cells not executed once, in order, in one kernel ({counts}); "
        "run `make notebooks`"
    )
    n_images = 0
    for i, cell in enumerate(code):
        outs = cell.get("outputs", [])
        assert all(o.get("output_type") != "error" for o in outs), f"{path.name}: cell {i} errors"
        if displays_something(_code(cell)):
            assert outs, f"{path.name}: code cell {i} shows something but has no stored output"
        n_images += sum("image/png" in o.get("data", {}) for o in outs)
    assert n_images >= 1, f"{path.name}: no figure among the stored outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_question_and_takeaway(path):
    nb = json.loads(path.read_text())
    md = [_code(c) for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert md and md[0].lstrip().startswith("# "), f"{path.name}: first cell is not a title"
    assert "**Question" in md[0], f"{path.name}: the first cell does not state its question"
    last = nb["cells"][-1]
    assert last["cell_type"] == "markdown" and "take away" in _code(last).lower(), (
        f"{path.name}: the last cell should say what to take away"
    )
