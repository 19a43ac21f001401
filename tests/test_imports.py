"""The package's import structure: no cycles, and a numpy layer free of PyMC/ArviZ.

Imports are read from the source with :mod:`ast` (nothing is imported), both at module
top and inside functions: a function-level import still makes one module depend on
another, it only delays the cost.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesmix"

#: modules that must import without PyMC, PyTensor or ArviZ (the numpy layer)
NUMPY_LAYER = (
    "bayesmix._constants",
    "bayesmix._covariance",
    "bayesmix._em_init",
    "bayesmix._dask",
    "bayesmix._dask_base",
    "bayesmix._dask_kmeans",
    "bayesmix._em_kernels",
    "bayesmix._gaussian",
    "bayesmix._hierarchical",
    "bayesmix._kmeans_engine",
    "bayesmix._validation",
    "bayesmix.clustering",
    "bayesmix.datasets",
    "bayesmix.em",
    "bayesmix.limits",
    "bayesmix.priors",
)
HEAVY = ("pymc", "pytensor", "arviz", "arviz_base", "arviz_stats", "arviz_plots")


def _module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(tree, module, in_function=False):
    """``(imported module, at module top)`` for every import statement of a module.

    "At module top" means executed on import: anywhere outside a function body
    (``if``/``try`` blocks and class bodies included).
    """
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, not in_function
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{module}: relative import (use absolute imports)"
            yield node.module, not in_function
            for alias in node.names:  # ``from bayesmix import _covariance``: a submodule
                yield f"{node.module}.{alias.name}", not in_function
        is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _imports(node, module, in_function or is_function)


def _parse_package():
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        modules[name] = list(_imports(ast.parse(path.read_text(), filename=str(path)), name))
    return modules


MODULES = _parse_package()


def _graph(*, top_only):
    """Edges between bayesmix modules (the package ``bayesmix`` itself excluded: its
    ``__init__`` imports submodules lazily, on attribute access)."""
    graph = {name: set() for name in MODULES}
    for name, imports in MODULES.items():
        for target, at_top in imports:
            if target in MODULES and target not in (name, "bayesmix") and (at_top or not top_only):
                graph[name].add(target)
    return graph


def _find_cycle(graph):
    """One cycle as a list of modules, or None (iterative depth-first search)."""
    state = dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    for root in sorted(graph):
        if state[root]:
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state[child] == 1:
                return [*path[path.index(child) :], child]
            elif state[child] == 0:
                state[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def test_parser_sees_the_package():
    # the checks below mean something only if the modules and their imports are found
    assert {"bayesmix.em", "bayesmix.clustering", "bayesmix.sampling"} <= set(MODULES)
    assert "bayesmix._em_init" in _graph(top_only=True)["bayesmix.em"]
    assert "bayesmix.clustering" in _graph(top_only=True)["bayesmix._em_init"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("top_only", [True, False], ids=["module-top", "all-imports"])
def test_no_import_cycle(top_only):
    graph = _graph(top_only=top_only)
    # the one cycle known when this test was written: report.py imports CHOICE_RULE from
    # experiment.py inside a function; it goes with experiment.py, which issue 11 splits
    # into spec.py and pipeline.py. Until then that edge is left out (any other cycle
    # still fails) and the test reports an expected failure; afterwards it is strict.
    known = "bayesmix.experiment" in graph.get("bayesmix.report", set())
    if known:
        graph["bayesmix.report"].discard("bayesmix.experiment")
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
    if known and not top_only:
        pytest.xfail("experiment.py <-> report.py: removed by the experiment pipeline split")


@pytest.mark.parametrize("module", NUMPY_LAYER)
def test_numpy_layer_imports_no_pymc_or_arviz_at_top(module):
    assert module in MODULES, f"{module} is listed in NUMPY_LAYER but does not exist"
    # follow module-top imports through the package: a numpy-layer module may only reach
    # other numpy-layer modules, and none of them may import a heavy package at top
    graph = _graph(top_only=True)
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(graph[name])
    assert seen <= set(NUMPY_LAYER), f"{module} reaches {sorted(seen - set(NUMPY_LAYER))}"
    heavy = sorted(
        {
            target
            for name in seen
            for target, at_top in MODULES[name]
            if at_top and target.split(".")[0] in HEAVY
        }
    )
    assert not heavy, f"{module} imports {heavy} at module top (through {sorted(seen)})"


def test_numpy_layer_imports_without_pymc_at_runtime():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in NUMPY_LAYER)
        + f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
    )
    assert out.stdout.strip() == "[]"
