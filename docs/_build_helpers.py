"""Pages generated at build time by ``conf.py`` (their outputs are gitignored).

* :func:`write_api_page` writes ``api/index.rst``: one autosummary table per defining
  stage (subpackage) for every name in ``bayesmix.__all__``, then ``bayesmix.plots``
  and, when the module exists, ``bayesmix.sklearn``. A public name added to
  ``__all__`` appears in the next build without editing the docs.
* :func:`write_gallery` copies ``notebooks/*.ipynb`` into ``examples/`` (myst-nb renders
  them from their stored outputs), extracts each notebook's last PNG output as its
  thumbnail, and writes the gallery page ``examples/index.md`` with one card per
  notebook: its title, the question it answers and the thumbnail (the last figure, or
  that of the cell tagged ``thumbnail``).
"""

from __future__ import annotations

import base64
import json
import re
import shutil

#: section titles for the stages (subpackages) that define public names, in the order
#: of the data flow; a name defined elsewhere gets a section titled by its module
STAGE_TITLES = {
    "bayesmix.core": "Priors and warnings (``bayesmix.core``)",
    "bayesmix.cluster": "k-means and its zero-variance limit (``bayesmix.cluster``)",
    "bayesmix.em": "EM: maximum likelihood and MAP (``bayesmix.em``)",
    "bayesmix.mcmc": "PyMC models, sampling and relabelling (``bayesmix.mcmc``)",
    "bayesmix.posterior": "Posterior analysis and the choice of K (``bayesmix.posterior``)",
    "bayesmix.workflow": "Data and saved fits (``bayesmix.workflow``)",
}


def _stage(obj):
    """``bayesmix.<stage>`` of the module defining ``obj``."""
    return ".".join(getattr(obj, "__module__", "bayesmix").split(".")[:2])


#: names in ``__all__`` that are not objects with their own docstring
NOT_DOCUMENTED = {"__version__"}


def public_names(bayesmix):
    """Names of ``bayesmix.__all__`` documented in the API reference (sorted)."""
    return sorted(n for n in bayesmix.__all__ if n not in NOT_DOCUMENTED)


def _table(names, currentmodule):
    lines = [f".. currentmodule:: {currentmodule}", "", ".. autosummary::"]
    lines += ["   :toctree: generated", "   :nosignatures:", ""]
    lines += [f"   {n}" for n in names] + [""]
    return lines


def _section(title, char="-"):
    return [title, char * len(title), ""]


def write_api_page(out_dir, importlib):
    """Write ``out_dir/index.rst`` from the package's public names; return the names."""
    import bayesmix

    groups: dict[str, list[str]] = {}
    for name in public_names(bayesmix):
        groups.setdefault(_stage(getattr(bayesmix, name)), []).append(name)
    order = [m for m in STAGE_TITLES if m in groups] + sorted(set(groups) - set(STAGE_TITLES))
    lines = _section("API reference", "=")
    lines += [
        "Every public name of ``import bayesmix as bm`` (``bayesmix.__all__``), grouped by",
        "the stage of the analysis (the subpackage) that defines it; use them as",
        "``bm.<name>``. This page is generated at build time from ``bayesmix.__all__``.",
        "``bm.__version__`` is the version string.",
        "",
    ]
    documented = []
    for module in order:
        lines += _section(STAGE_TITLES.get(module, f"``{module}``"))
        doc = (importlib.import_module(module).__doc__ or "").split("\n\n")[0]
        lines += [" ".join(doc.split()), ""] if doc else []
        lines += _table(groups[module], "bayesmix")
        documented += groups[module]
    for modname, title, intro in [
        (
            "bayesmix.plots",
            "Plots (``bayesmix.plots``)",
            "Each function returns a :class:`matplotlib.figure.Figure` (no pyplot needed).",
        ),
        (
            "bayesmix.sklearn",
            "scikit-learn estimators (``bayesmix.sklearn``)",
            "Needs the optional extra ``pip install bayesmix[sklearn]``.",
        ),
    ]:
        try:
            module = importlib.import_module(modname)
        except ImportError:  # e.g. bayesmix.sklearn before it exists, or without sklearn
            continue
        names = sorted(getattr(module, "__all__", []))
        if names:
            lines += [*_section(title), intro, ""]
            lines += [f".. automodule:: {modname}", "   :no-members:", ""]
            lines += _table(names, modname)
            documented += [f"{modname}.{n}" for n in names]
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_if_changed(out_dir / "index.rst", "\n".join(lines))
    return documented


def _write_if_changed(path, text):
    """Write ``text`` unless the file already holds it (keeps incremental builds cheap)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _markdown_cells(nb):
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def notebook_title(nb, fallback):
    """The first ``# heading`` of a notebook, or ``fallback``."""
    for text in _markdown_cells(nb):
        m = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
        if m:
            return m.group(1).strip()
    return fallback


def notebook_question(nb):
    """The notebook's question: the paragraph starting ``**Question`` in its first cell."""
    cells = _markdown_cells(nb)
    if not cells:
        return ""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", cells[0])]
    for p in paragraphs:
        if p.startswith("**Question"):
            q = re.sub(r"^\*\*Question[^*]*\*\*\s*", "", p).replace("\n", " ")
            return q[:1].upper() + q[1:]
    rest = [p for p in paragraphs if p and not p.startswith("#")]
    return rest[0].replace("\n", " ") if rest else ""


def last_png(nb):
    """Bytes of the notebook's thumbnail: the last PNG output of the cell tagged
    ``thumbnail`` if there is one, else the last PNG among all stored outputs (or None)."""
    found = None
    tagged = [c for c in nb["cells"] if "thumbnail" in c.get("metadata", {}).get("tags", [])]
    for cell in tagged or nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                found = data["image/png"]
    if found is None:
        return None
    if isinstance(found, list):
        found = "".join(found)
    return base64.b64decode(found)


def write_gallery(notebooks_dir, examples_dir, static_dir):
    """Copy the notebooks, extract thumbnails, write ``examples/index.md``; return the stems."""
    examples_dir.mkdir(parents=True, exist_ok=True)
    thumbs = static_dir / "thumbnails"
    thumbs.mkdir(parents=True, exist_ok=True)
    paths = sorted(notebooks_dir.glob("*.ipynb"))
    for stale in examples_dir.glob("*.ipynb"):  # a notebook removed from notebooks/
        if not (notebooks_dir / stale.name).exists():
            stale.unlink()
    cards = []
    for path in paths:
        target = examples_dir / path.name
        if not target.exists() or target.read_bytes() != path.read_bytes():
            shutil.copy2(path, target)
        nb = json.loads(path.read_text())
        png = last_png(nb)
        card = [f":::{{grid-item-card}} {notebook_title(nb, path.stem)}"]
        card += [f":link: {path.stem}", ":link-type: doc"]
        if png is not None:
            thumb = thumbs / f"{path.stem}.png"
            if not thumb.exists() or thumb.read_bytes() != png:
                thumb.write_bytes(png)
            card += [f":img-top: ../_static/thumbnails/{path.stem}.png", ":img-alt: thumbnail"]
        card += ["", notebook_question(nb), ":::", ""]
        cards += card
    toctree = ["```{toctree}", ":hidden:", ""] + [p.stem for p in paths] + ["```", ""]
    page = [
        "# Example gallery",
        "",
        "Worked examples as Jupyter notebooks, shown with the outputs stored in the",
        "repository's `notebooks/` folder (executed at full settings by `make notebooks`).",
        "Each opens with the question it answers and ends with what to take away. Download",
        "a notebook from the `notebooks/` folder to run it yourself; the test suite runs",
        "every one of them on small settings.",
        "",
        "::::{grid} 1 2 2 2",
        ":gutter: 3",
        "",
        *cards,
        "::::",
        "",
        *toctree,
    ]
    _write_if_changed(examples_dir / "index.md", "\n".join(page))
    return [p.stem for p in paths]
