"""Sphinx configuration for the bayesmix documentation.

Why this stack: Sphinx + numpydoc + myst-nb + pydata-sphinx-theme is what PyMC, ArviZ,
bambi, xarray, NumPy and SciPy use, so bayesmix's docs read like the documentation its
users already know: numpydoc parses the same docstring format the package is written in
(and, with ``numpydoc_validation_checks``, turns a docstring that does not parse into a
build error), myst-nb renders the example notebooks from their stored outputs next to
Markdown pages, and autosummary generates one page per public name.

The API reference is generated at build time from ``bayesmix.__all__`` (plus the public
functions of ``bayesmix.plots`` and, when it exists, ``bayesmix.sklearn``), and the
notebook gallery from whatever is in ``notebooks/``, so new public names and notebooks
appear without editing this file. See docs/README.md for the commands.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # document the checkout, not an installed copy
sys.path.insert(0, str(HERE))

os.environ.setdefault("MPLBACKEND", "Agg")

from _build_helpers import write_api_page, write_gallery  # noqa: E402

import bayesmix  # noqa: E402

project = "bayesmix"
author = "bayesmix developers"
copyright = "2026, bayesmix developers"
release = bayesmix.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
    "sphinx_design",
    "sphinx_copybutton",
    # MathJax served from the site itself (_static/mathjax), not from a CDN: the pages'
    # formulas render offline, and the headless-browser check (check_site.py) can run
    # without network and still see every request succeed
    "sphinx-mathjax-offline",
]

# --- sources -------------------------------------------------------------------------
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "README.md", "**.ipynb_checkpoints", "jupyter_execute"]
templates_path = ["_templates"]
root_doc = "index"

# generated at build time (gitignored): api/index.rst and examples/ (notebooks + gallery)
GENERATED_API = write_api_page(HERE / "api", importlib)
write_gallery(ROOT / "notebooks", HERE / "examples", HERE / "_static")

# --- warnings: every one is an error under `make docs` (-W --keep-going -n) -----------
nitpicky = True
# No intersphinx (the build must work offline, e.g. in CI without network): references
# to other projects' objects are written as plain text, and these are not errors.
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(numpy|np|scipy|pandas|pd|xarray|xr|pymc|pm|pytensor|arviz\w*|az\w*"
        r"|matplotlib|numba|sklearn|zarr|dask|distributed|pathlib|os|collections|typing"
        r"|concurrent|json|dataclasses)(\..*)?",
    ),
    (
        r"py:.*",
        r"(ndarray|array_like|array-like|DataFrame|Series|DataTree|Figure|Axes"
        r"|Path|PathLike|Generator|RandomState|Mapping|Sequence|Iterable|callable|optional"
        r"|None|int|float|bool|str|dict|list|tuple|object|type|ValueError|TypeError"
        r"|Warning|UserWarning|RuntimeWarning)",
    ),
]
# References to bayesmix internals without a page: see _resolve_public_alias below.
suppress_warnings: list[str] = []

# --- autodoc / autosummary / numpydoc --------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # the numpydoc sections carry the types and shapes
autodoc_default_options = {"member-order": "bysource"}
numpydoc_show_class_members = False  # members are listed by the class template
numpydoc_xref_param_type = False
numpydoc_class_members_toctree = False
# A docstring that numpydoc cannot parse, or that lacks its sections, is a build error.
# GL08: the object has a docstring; PR01/PR02: every parameter documented, and only those;
# RT01: a Returns section where something is returned; SS01: a summary line.
numpydoc_validation_checks = {"GL08", "PR01", "PR02", "SS01"}
numpydoc_validation_exclude = {r"\.__\w+__$", r"\._\w+$"}
# Result dataclasses (EMResult, KMeansResult ...) are built by bayesmix, not by users:
# their fields are documented as Attributes, which PR01 would want as Parameters.
numpydoc_validation_overrides = {"PR01": [r"\nAttributes\n-{3,}\n"]}

# --- notebooks (myst-nb) ----------------------------------------------------------------
# Rendered from the outputs stored in notebooks/*.ipynb; `make notebooks` re-executes them.
nb_execution_mode = "off"
nb_output_stderr = "show"  # the samplers' warnings (R-hat, divergences) are part of the story
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# --- HTML ---------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"bayesmix {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    # no version switcher / external icon fetches: the site works offline
}
html_favicon = "_static/favicon.svg"
html_extra_path = ["_extra"]  # favicon.ico at the site root (browsers ask for it)
# pydata-sphinx-theme logs a console error on a first visit without a stored mode
html_context = {"default_mode": "auto"}
html_show_sourcelink = False
html_last_updated_fmt = None


def _internal_object_exists(target, modname):
    """Whether ``target`` names an existing object of bayesmix that has no page.

    ``target`` may be dotted (``bayesmix.mcmc._gibbs.FINITE_DEFAULT``, ``bayesmix.mcmc._trace``)
    or bare (``MFMConfig``, looked up in the module whose docstring mentions it, then in
    every loaded bayesmix module).
    """
    parts = target.split(".")
    for i in range(len(parts), 0, -1):  # longest importable module prefix, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if hasattr(obj, attr):
                obj = getattr(obj, attr)
            elif attr in getattr(obj, "__dataclass_fields__", {}) or attr in getattr(
                obj, "__annotations__", {}
            ):
                return True  # a field of a result dataclass (no class attribute)
            else:
                return False
        return obj.__name__.startswith("bayesmix") if i == len(parts) else True
    modules = [sys.modules.get(modname or "")] + [
        m for name, m in sys.modules.items() if name.startswith("bayesmix")
    ]
    head = parts[0]
    for m in modules:
        if m is not None and hasattr(m, head):
            obj = m
            try:
                for attr in parts:
                    obj = getattr(obj, attr)
            except AttributeError:
                continue
            return True
    return False


def _resolve_public_alias(app, env, node, contnode):
    """Resolve references that Sphinx's Python domain does not find by itself.

    1. ``bayesmix.em.EMResult`` or ``GMMPrior.log_prior`` -> the documented
       ``bayesmix.EMResult`` / ``bayesmix.GMMPrior.log_prior``: public objects are
       documented under the name users type (``bm.<name>``), while docstrings written
       inside a module may name the defining module or the bare class; every
       ``bayesmix.<tail>`` of the target is tried.
    2. A reference to an existing object without a page (a private module, an internal
       class or constant) is rendered as plain code, not a link.

    A target that names nothing at all (a typo, a renamed function) is left unresolved,
    so it still fails the build under ``-n -W``.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    parts = target.split(".")
    domain = env.get_domain("py")
    for i in range(len(parts)):
        cand = ".".join(["bayesmix", *parts[i:]])
        if cand == target:
            continue
        if cand in domain.objects:
            return domain.resolve_xref(
                env, node.get("refdoc"), app.builder, node["reftype"], cand, node, contnode
            )
    if _internal_object_exists(target, node.get("py:module")):
        return contnode
    return None


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Skip class members bayesmix does not define (scikit-learn's generated
    ``set_*_request`` methods of the estimators, documented by scikit-learn)."""
    module = getattr(obj, "__module__", None) or ""
    if what == "class" and module and not module.startswith("bayesmix"):
        return True
    return None


def setup(app):
    """Register the alias resolver, the feature blocks and the member filter."""
    app.connect("missing-reference", _resolve_public_alias)
    app.connect("autodoc-skip-member", _skip_foreign_members)
