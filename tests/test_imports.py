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

from bayesmix import _compat

PACKAGE = Path(__file__).resolve().parents[1] / "bayesmix"

#: the stages, bottom first: a module of a stage imports only from its own stage and
#: the ones before it (bayesmix/__init__.py and docs/ARCHITECTURE.md say the same)
STAGES = ("core", "cluster", "em", "mcmc", "posterior", "workflow")
#: modules at the top of the package: the adapters and public namespaces, which may
#: import every stage and which no stage imports
TOP = (
    "bayesmix",
    "bayesmix._compat",
    "bayesmix.plots",
    "bayesmix.sklearn",
    "bayesmix._sklearn_base",
    "bayesmix._sklearn_bayes",
)

#: modules that must import without PyMC, PyTensor or ArviZ (the numpy layer); the
#: package __init__ files are lazy, so importing a module of a stage loads none of them
NUMPY_LAYER = (
    "bayesmix.core",
    "bayesmix.core._constants",
    "bayesmix.core._covariance",
    "bayesmix.core._mclust_models",
    "bayesmix.core._dask",
    "bayesmix.core._estep_kernels",
    "bayesmix.core._gaussian",
    "bayesmix.core._lazy",
    "bayesmix.core._missing",
    "bayesmix.core._missing_kernels",
    "bayesmix.core._priors",
    "bayesmix.core._validation",
    "bayesmix.cluster",
    "bayesmix.cluster._dask",
    "bayesmix.cluster._engine",
    "bayesmix.cluster._kmeans",
    "bayesmix.cluster._limits",
    "bayesmix.em",
    "bayesmix.em._checks",
    "bayesmix.em._dask",
    "bayesmix.em._fit",
    "bayesmix.em._hierarchical",
    "bayesmix.em._loop",
    "bayesmix.em._missing",
    "bayesmix.em._result",
    "bayesmix.em._starts",
    "bayesmix.em._vi",
    "bayesmix.em._vi_dask",
    "bayesmix.em._vi_loop",
    "bayesmix.em._vi_math",
    "bayesmix.em._vi_result",
    "bayesmix.workflow",
    "bayesmix.workflow._datasets",
)
#: modules of the posterior layout and analysis that must work without PyMC/PyTensor
#: (a saved DataTree is analysed without a model)
NO_PYMC = (
    "bayesmix.mcmc._trace",
    "bayesmix.mcmc._relabel",
    "bayesmix.posterior._membership",
    "bayesmix.posterior._nclusters",
    "bayesmix.posterior._compare",
    "bayesmix.posterior._ppc",
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


def _graph(*, top_only, parents=False):
    """Edges between bayesmix modules (the package ``bayesmix`` itself excluded: its
    ``__init__`` imports submodules lazily, on attribute access). With ``parents``, also
    the edge from a module to its package, whose ``__init__`` runs first on import (for
    what a module reaches; not for cycles: a package importing its own child is none)."""
    graph = {name: set() for name in MODULES}
    for name in MODULES if parents else ():
        parent = name.rsplit(".", 1)[0]
        if parent in MODULES and parent != "bayesmix":
            graph[name].add(parent)
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
    assert {"bayesmix.em._fit", "bayesmix.cluster._kmeans", "bayesmix.mcmc._sample"} <= set(MODULES)
    assert "bayesmix.em._loop" in _graph(top_only=True)["bayesmix.em._fit"]
    assert "bayesmix.cluster._kmeans" in _graph(top_only=True)["bayesmix.em._starts"]
    assert "bayesmix.em" in _graph(top_only=True, parents=True)["bayesmix.em._fit"]
    assert _stage("bayesmix.mcmc._gibbs") == 3 and _stage("bayesmix.sklearn") is None
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("top_only", [True, False], ids=["module-top", "all-imports"])
def test_no_import_cycle(top_only):
    cycle = _find_cycle(_graph(top_only=top_only))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _stage(module):
    """Index of a module's stage in STAGES, or None for the top of the package."""
    parts = module.split(".")
    if module in TOP:
        return None
    assert len(parts) >= 2 and parts[1] in STAGES, f"{module} is in no stage and not in TOP"
    return STAGES.index(parts[1])


def _upward_imports(graph):
    """``(importer, imported)`` pairs that point up the stages or into the top."""
    bad = []
    for name, targets in graph.items():
        if _stage(name) is None:
            continue  # the adapters on top import whatever they wrap
        for target in targets:
            if _stage(target) is None or _stage(target) > _stage(name):
                bad.append((name, target))
    return sorted(bad)


def test_stage_rule_detects_an_upward_import():
    # the check can fail: an EM module importing the sampler, or a stage importing the
    # scikit-learn adapter, is reported
    graph = {"bayesmix.em._fit": {"bayesmix.mcmc._sample", "bayesmix.core._validation"}}
    graph["bayesmix.core._gaussian"] = {"bayesmix.sklearn"}
    assert _upward_imports(graph) == [
        ("bayesmix.core._gaussian", "bayesmix.sklearn"),
        ("bayesmix.em._fit", "bayesmix.mcmc._sample"),
    ]


def test_imports_point_down_the_stages():
    # every import, at module top or in a function: a function-level import is still a
    # dependency of the module on the stage it names
    bad = _upward_imports(_graph(top_only=False))
    assert not bad, "imports up the stages: " + "; ".join(f"{a} -> {b}" for a, b in bad)


def test_no_cycle_between_stages():
    graph = _graph(top_only=False)
    stages = {s: set() for s in STAGES}
    for name, targets in graph.items():
        for target in targets:
            a, b = _stage(name), _stage(target)
            if a is not None and b is not None and a != b:
                stages[STAGES[a]].add(STAGES[b])
    cycle = _find_cycle(stages)
    assert cycle is None, "cycle between stages: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("stage", STAGES)
def test_stage_docstring_names_what_it_may_import(stage):
    doc = (PACKAGE / stage / "__init__.py").read_text()
    allowed = STAGES[: STAGES.index(stage)]
    if not allowed:
        assert "Imports nothing else from bayesmix" in doc
    elif stage == "workflow":
        assert "May import: every stage" in doc
    else:
        assert "May import: " + ", ".join(f"``bayesmix.{s}``" for s in allowed) + "." in doc


def test_layout_sizes():
    # the layout's bounds: a few modules at the top, at least five stages, and no
    # module so long that it needs splitting by concern
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
    assert len([p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()]) >= 5
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 900
    }
    assert not long, f"modules over 900 lines: {long}"


@pytest.mark.parametrize("module", NUMPY_LAYER)
def test_numpy_layer_imports_no_pymc_or_arviz_at_top(module):
    assert module in MODULES, f"{module} is listed in NUMPY_LAYER but does not exist"
    # follow module-top imports through the package: a numpy-layer module may only reach
    # other numpy-layer modules, and none of them may import a heavy package at top
    graph = _graph(top_only=True, parents=True)
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


@pytest.mark.parametrize(
    ("modules", "heavy"),
    [(NUMPY_LAYER, HEAVY), (NO_PYMC, ("pymc", "pytensor"))],
    ids=["numpy", "analysis"],
)
def test_stage_modules_import_without_heavy_packages_at_runtime(modules, heavy):
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("old", sorted(_compat.OLD_PATHS))
def test_old_module_path_warns_and_forwards(old):
    # the flat layout's module paths work for one release: a DeprecationWarning naming
    # the new module, then every attribute of that module (read and written through)
    import importlib

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=_compat.OLD_PATHS[old].replace(".", r"\.")):
        mod = importlib.import_module(old)
    new = importlib.import_module(_compat.OLD_PATHS[old])
    try:
        public = [n for n in getattr(new, "__all__", dir(new)) if not n.startswith("__")]
        assert public and all(getattr(mod, n) is getattr(new, n) for n in public)
        assert set(public) <= set(dir(mod))
    finally:
        sys.modules.pop(old, None)


def test_old_module_path_setattr_reaches_the_new_module():
    # an old script that patches bayesmix.models.build_gmm patches the function in use
    import bayesmix.mcmc._builders as builders

    sys.modules.pop("bayesmix.models", None)
    with pytest.warns(DeprecationWarning):
        import bayesmix.models as old
    original = builders.build_gmm
    try:
        old.build_gmm = "patched"
        assert builders.build_gmm == "patched"
    finally:
        builders.build_gmm = original
        sys.modules.pop("bayesmix.models", None)
