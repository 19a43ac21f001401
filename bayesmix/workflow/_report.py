"""The report folder of an analysis: ``report.md``, ``report.html`` and PNG figures.

:func:`write_report` renders an :class:`bayesmix.workflow._pipeline.ExperimentResult`, one
function per section. The document is built once as a list of blocks (headings,
paragraphs, tables, figures) and written both as Markdown and as self-contained plain
HTML (no extra dependency). Figures are drawn with :mod:`bayesmix.workflow._plots` on the Agg
canvas.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg

from bayesmix import __version__
from bayesmix.mcmc._trace import get_params
from bayesmix.posterior._loo import subsample_note
from bayesmix.posterior._modelcompare import with_criteria
from bayesmix.posterior._selection import CHOICE_RULE
from bayesmix.workflow import _plots as plots
from bayesmix.workflow._outdir import FIG_DIR, FIGURES, ReportFolder
from bayesmix.workflow._report_ppc import ppc_section
from bayesmix.workflow._spec import gibbs_tune

__all__ = ["df_to_markdown", "write_report"]


# ---------------------------------------------------------------------------- formatting
def _fmt(v, digits=4):
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return ""
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.1f}"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_fmt(x, 3) for x in np.ravel(v)) + "]"
    return str(v)


def _rows(df):
    cols = [str(c) for c in df.columns]
    rows = [[_fmt(v) for v in r] for r in df.itertuples(index=False, name=None)]
    return cols, rows


def df_to_markdown(df):
    """A pandas DataFrame as a GitHub-flavoured Markdown table (no index).

    Examples
    --------
    >>> import pandas as pd
    >>> print(df_to_markdown(pd.DataFrame({"K": [1], "max |error|": [2.5]})))
    | K | max \\|error\\| |
    |---|---|
    | 1 | 2.5 |
    """
    cols, rows = _rows(df)
    out = ["| " + " | ".join(_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _cell(text):
    """A table cell (header or body) with its pipes escaped."""
    return text.replace("|", "\\|")


class _Doc:
    def __init__(self, folder):
        self.blocks = []
        #: the report folder's ownership (each file is listed in its marker before it is
        #: written)
        self.folder = folder

    def h(self, level, text):
        self.blocks.append(("h", level, text))

    def p(self, text):
        self.blocks.append(("p", text))

    def ul(self, items):
        self.blocks.append(("ul", list(items)))

    def table(self, df):
        self.blocks.append(("table", df))

    def fig(self, rel, caption):
        self.blocks.append(("fig", rel, caption))

    def code(self, text):
        self.blocks.append(("code", text))

    def markdown(self):
        parts = []
        for b in self.blocks:
            if b[0] == "h":
                parts.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                parts.append(b[1])
            elif b[0] == "ul":
                parts.append("\n".join(f"- {x}" for x in b[1]))
            elif b[0] == "table":
                parts.append(df_to_markdown(b[1]))
            elif b[0] == "fig":
                parts.append(f"![{b[2]}]({b[1]})\n\n*{b[2]}*")
            elif b[0] == "code":
                parts.append("```\n" + b[1] + "\n```")
        return "\n\n".join(parts) + "\n"

    def html(self, title):
        e = html.escape
        parts = [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8">',
            f"<title>{e(title)}</title>",
            "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em;}"
            "table{border-collapse:collapse;margin:1em 0;font-size:90%;}"
            "td,th{border:1px solid #bbb;padding:2px 8px;text-align:right;}"
            "th{background:#eee;}img{max-width:100%;}figcaption{font-style:italic;}"
            "pre{background:#f4f4f4;padding:.5em;overflow-x:auto;}</style>",
            "</head><body>",
        ]
        for b in self.blocks:
            if b[0] == "h":
                parts.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                parts.append(f"<p>{_inline(b[1])}</p>")
            elif b[0] == "ul":
                parts.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b[1]) + "</ul>")
            elif b[0] == "table":
                cols, rows = _rows(b[1])
                head = "".join(f"<th>{e(c)}</th>" for c in cols)
                body = "".join(
                    "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows
                )
                parts.append(f"<table><tr>{head}</tr>{body}</table>")
            elif b[0] == "fig":
                parts.append(
                    f'<figure><img src="{e(b[1])}" alt="{e(b[2])}">'
                    f"<figcaption>{e(b[2])}</figcaption></figure>"
                )
            elif b[0] == "code":
                parts.append(f"<pre>{e(b[1])}</pre>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _inline(text):
    """Escape, then render `code` and **bold** spans."""
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)


def _save(doc, fig, out_dir, name):
    if name not in FIGURES:  # the folder's check before fitting knows every figure name
        raise ValueError(f"figure {name!r} is not among {FIGURES}; add it to _outdir.FIGURES")
    doc.folder.claim_file(f"{FIG_DIR}/{name}")
    FigureCanvasAgg(fig)
    path = Path(out_dir) / FIG_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"{FIG_DIR}/{name}"


def _comparison_blocks(doc, comparison):
    if comparison is None:
        return
    table = (
        comparison if isinstance(comparison, pd.DataFrame) else getattr(comparison, "table", None)
    )
    items = []
    if hasattr(comparison, "fraction_inside"):
        t = comparison.table
        items.append(
            f"EM value inside the posterior {comparison.prob:.0%} HDI for "
            f"{int(t['inside'].sum())} of {len(t)} parameters"
        )
    if getattr(comparison, "ari", None) is not None:
        items.append(
            f"ARI between the EM partition and the posterior partition "
            f"({getattr(comparison, 'partition', 'point estimate')}): {comparison.ari:.3f}"
        )
    if getattr(comparison, "label_agreement", None) is not None:
        items.append(
            f"EM label = posterior most probable label for {comparison.label_agreement:.1%}"
        )
    lp = getattr(comparison, "log_predictive", None)
    if isinstance(lp, dict) and {"em", "posterior"} <= set(lp):
        items.append(
            f"log predictive density of the data: EM plug-in {lp['em']:.2f}, posterior "
            f"predictive {lp['posterior']:.2f}"
        )
    if items:
        doc.ul(items)
    if isinstance(table, pd.DataFrame):
        doc.table(table)
    elif not items:
        doc.code(str(comparison))


# ---------------------------------------------------------------------------- the report
def write_report(result, out_dir, *, folder=None):
    """Write ``report.md``, ``report.html`` and the figures of an analysis.

    Only files the folder's marker (``.bayesmix-report``) lists are replaced: a report
    file of yours in the way is refused before anything is written, and the report
    files of an earlier report that this one does not write again are removed.

    Parameters
    ----------
    result : bayesmix.workflow._pipeline.ExperimentResult
        From :func:`bayesmix.workflow._pipeline.run_experiment` (with ``report=False`` when
        calling this yourself).
    out_dir : str or Path
        Report folder (created if needed).
    folder : bayesmix.workflow._outdir.ReportFolder, optional
        The folder's ownership as :func:`bayesmix.workflow._pipeline.run_experiment`
        holds it (with the fits it saved); default: read from ``out_dir``.

    Returns
    -------
    pathlib.Path
        Path of ``report.md``.

    Examples
    --------
    >>> from bayesmix.workflow._pipeline import run_experiment
    >>> from bayesmix.workflow._spec import spec_from_dict
    >>> res = run_experiment(spec_from_dict({"sampler": {"mcmc": False}}),
    ...                      quiet=True, report=False)  # doctest: +SKIP
    >>> write_report(res, "bayesmix-report")  # doctest: +SKIP
    PosixPath('bayesmix-report/report.md')
    """
    out_dir = Path(out_dir)
    if folder is None:
        folder = ReportFolder(out_dir)
        folder.check()
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = _Doc(folder)
    title = f"bayesmix report: {result.spec.name}"
    for section in _SECTIONS:
        section(doc, result, out_dir)
    md = out_dir / "report.md"
    folder.claim_file("report.md")
    md.write_text(doc.markdown())
    folder.claim_file("report.html")
    (out_dir / "report.html").write_text(doc.html(title))
    folder.finish()
    return md


def _title(doc, result, out_dir):
    spec = result.spec
    doc.h(1, f"bayesmix report: {spec.name}")
    doc.p(
        f"Written {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by bayesmix "
        f"{__version__}." + (f" {spec.description}" if spec.description else "")
    )


def _summary(doc, result, out_dir):
    doc.h(2, "Summary")
    summary = [f"**Chosen model**: {result.choice_reason}.", f"Rule: {CHOICE_RULE}"]
    if result.dp is not None and result.dp.diagnostics.get("occupied"):
        occ = result.dp.diagnostics["occupied"]
        mode = max(occ, key=occ.get)
        summary.append(
            f"Dirichlet-process mixture: {mode} occupied components in {occ[mode]:.0%} of the "
            "draws (the DP posterior on the number of clusters is not consistent; read it as "
            "a description, not an estimate of K)."
        )
    if result.mfm is not None:
        s = result.mfm.diagnostics["n_clusters"].attrs["summary"]["n_components"]
        summary.append(
            f"Mixture of finite mixtures: posterior mode K = {s['mode']} "
            f"(P = {s['mode_probability']:.2f}, E[K] = {s['mean']:.2f} ± {s['mean_mcse']:.2f} "
            "MCSE); see 'Number of clusters'."
        )
    if result.recovery is not None and "ari" in result.recovery:
        summary.append(
            f"Recovery of the simulated truth: ARI {result.recovery['ari']:.3f} "
            f"(most probable component of the chosen model against the true labels)."
        )
    doc.ul(summary)


def _data_and_settings(doc, result, out_dir):
    spec, info = result.spec, result.data.info
    N, D = result.data.X.shape
    names = result.data.feature_names
    doc.h(2, "Data and settings")
    dropped = (
        f"; dropped {info['n_dropped']} of {info['n_read']} rows with missing values "
        "(--dropna: complete-case analysis)"
        if info["n_dropped"]
        else ""
    )
    gaps = {c: n for c, n in info.get("missing_per_column", {}).items() if n}
    standardized = (
        "yes; all estimates below are on the standardized scale." if info["standardized"] else "no."
    )
    estimate = (
        "MAP under the prior below (the mode of the posterior MCMC samples)"
        if spec.estimate == "map"
        else "maximum likelihood"
    )
    items = [
        f"Data: {info['source']}.",
        f"Used {N:,} observations x {D} features ({', '.join(names)}){dropped}.",
        *(
            [
                "Missing values: "
                + ", ".join(f"`{c}` {n:,}" for c, n in gaps.items())
                + f" missing entries ({sum(gaps.values()):,} in all), kept as missing at "
                "random: k-means uses each row's observed coordinates and EM the "
                "observed-data likelihood (each row's density is the marginal of its "
                "observed features); no value was imputed. "
                + (
                    f"{info['n_excluded_empty']} row(s) with no observed value were excluded."
                    if info.get("n_excluded_empty")
                    else "No row was excluded."
                )
            ]
            if gaps
            else []
        ),
        *(
            [
                f"Frequency weights: column `{info['weights']}` (not a feature; total weight "
                f"{info['total_weight']:g}, the n of BIC/ICL)."
            ]
            if info.get("weights")
            else []
        ),
        *(
            [
                "Noise component: a uniform density over "
                + (
                    "the data's bounding box"
                    if spec.noise is True
                    else f"a region of volume {spec.noise:g}"
                )
                + " with its own weight (finite mixtures; points whose most probable class is "
                "noise are labelled -1 and drawn grey)."
            ]
            if getattr(spec, "noise", False)
            else []
        ),
        "Standardized (each feature centred and divided by its sample SD): " + standardized,
        f"K grid {spec.k}; covariance {spec.covariance}; EM {estimate}, best of "
        f"{spec.em_n_init} starts.",
        "MCMC: " + _mcmc_settings(spec, result),
        f"Seed {spec.seed}. Prior: defaults of `GMMPrior.from_data(X, K)`"
        + (f" with {json.dumps(spec.prior)}" if spec.prior else "")
        + ".",
    ]
    if N > plots.MAX_POINTS:
        items.append(
            f"Large data ({N:,} observations): the plots of the fits show all points as "
            f"hexagon counts (log scale) under the ellipses; the membership plot shows a "
            f"random subsample of {plots.MAX_POINTS:,} (seed {spec.seed}), and the "
            f"co-clustering matrix and the point partition are of a random subset of "
            "observations (see each figure)."
        )
    if D > 2:
        items.append(
            "Plots of the data show "
            + ("all pairs of features." if D <= 4 else f"the first two of the {D} features.")
        )
    doc.ul(items)


def _mcmc_settings(spec, result):
    """What was sampled, how, and for how long (the DP and the MFM as they were run)."""
    if not spec.mcmc:
        if np.isnan(result.data.X).any():
            return (
                "skipped: the models need NUTS, which does not handle missing values yet "
                "(the Gibbs sampler does: conjugate prior, no noise component, no weights); "
                "--dropna gives the complete-case analysis with MCMC."
            )
        return "not run (--no-mcmc)."
    parts = []
    if spec.kind != "dp":
        finite = [r for r in result.records.values() if r.idata is not None]
        how = " or ".join(dict.fromkeys(run_length(r, spec) for r in finite)) or "(not sampled)"
        parts.append(
            f"finite mixtures for K in {spec.mcmc_k if spec.mcmc_k is not None else spec.k} "
            f"{how}, each initialised from its EM fit and relabelled against it"
        )
    if spec.kind != "finite":
        parts.append(
            f"a Dirichlet-process mixture (truncation {spec.truncation}) "
            + run_length(result.dp, spec)
            + ", initialised from the EM fit with the most components of the grid (not "
            "relabelled: its summaries are label-invariant)"
        )
    if result.mfm is not None:
        parts.append("a mixture of finite mixtures " + run_length(result.mfm, spec))
    return "; ".join(parts) + "."


def run_length(rec, spec):
    """'by Gibbs, 4 chains x 2000 draws after 500 burn-in sweeps' (or NUTS's wording)."""
    if rec is None or rec.idata is None:
        return "(not sampled)"
    post = rec.idata["posterior"]
    C, S = post.sizes["chain"], post.sizes["draw"]
    if rec.idata.attrs.get("sampler") == "gibbs":
        return f"by Gibbs, {C} chains x {S} draws after {gibbs_tune(spec)} burn-in sweeps"
    return f"by NUTS, {C} chains x {S} draws after {spec.tune} tuning steps"


#: Columns of the results table shown in "Choosing K", in this order, when present.
_SELECTION_COLUMNS = (
    "covariance",
    "K",
    "n_params",
    "log_likelihood",
    "bic",
    "icl",
    "p_mfm",
    "elpd_loo",
    "elpd_loo_se",
    "p_loo",
    "elpd_waic",
    "elpd_waic_se",
    "max_rhat",
    "min_ess_bulk",
    "divergences",
    "collapsed",
    "error",
)


def _choosing_k(doc, result, out_dir):
    doc.h(2, "Choosing K")
    if result.kmeans_table is not None:
        doc.p("k-means (the zero-variance limit of EM) within-cluster sum of squares:")
        doc.table(result.kmeans_table)
    t = result.table.copy()
    show = [c for c in _SELECTION_COLUMNS if c in t.columns]
    if "error" in t and t["error"].isna().all():
        show.remove("error")
    doc.p("BIC and ICL: lower is better (`-2 log L + p log n`). ELPD: higher is better.")
    doc.table(t[show])
    _compare_table(doc, result)
    fig = plots.plot_selection(t[t["error"].isna()] if "error" in t else t, chosen=result.chosen[1])
    doc.fig(
        _save(doc, fig, out_dir, "selection.png"),
        "BIC/ICL (EM) and ELPD-LOO/WAIC ± SE (MCMC) against K",
    )


def _compare_table(doc, result):
    """arviz_stats.compare's table over the MCMC fits, with BIC/ICL/P(K) beside it."""
    cmp = getattr(result, "model_comparison", None)
    if cmp is None:
        return
    t = with_criteria(cmp, result.table, lambda r: (r["covariance"], int(r["K"])))
    doc.p(
        "Model comparison of the MCMC fits by `arviz_stats.compare` (PSIS-LOO; "
        f"weights: {cmp.attrs.get('weights', 'stacking')}): `elpd` is ELPD-LOO, `p` is "
        "p_loo, `elpd_diff` the difference with the best fit (rank 0) and `dse` its "
        "standard error; `weight` the stacking weight (the sum is 1). In this table the "
        "rule picks, among the fits with `elpd_diff >= -max(dse, 4)` (dse times "
        "sqrt(N/(N-1))), the one with the fewest parameters; the weights are not used."
    )
    doc.table(t.drop(columns="key").reset_index(names="model"))
    for w in cmp.attrs.get("warnings", ()):
        doc.p(f"arviz_stats.compare: {w}")


def _chosen_fit(doc, result, out_dir):
    cov, K = result.chosen
    rec, spec = result.chosen_record, result.spec
    X, names = result.data.X, result.data.feature_names
    D = X.shape[1]
    doc.h(2, f"The chosen fit: {cov} covariance, K={K}")
    doc.table(_components_table(rec, K, names))
    if D > 6:
        doc.p(f"(means of the first 6 of {D} features shown; all are in the saved fits)")
    truth = result.data.truth
    fig = plots.plot_fit(
        X, rec.em, rec.idata, feature_names=names, random_seed=spec.seed, truth=truth
    )
    caption = (
        "Data with EM ellipses (solid 1 sd, dashed 2 sd) and posterior ellipses "
        "(1 sd) from 20 draws"
        if rec.idata is not None
        else "Data with EM ellipses (solid 1 sd, dashed 2 sd)"
    )
    if truth is not None:
        caption += "; the simulated components dotted (1 and 2 sd)"
    doc.fig(_save(doc, fig, out_dir, "fit.png"), caption + _hexbin_words(X))


def _components_table(rec, K, names):
    """EM weights and means (first 6 features), with posterior mean ± SD when sampled."""
    em = rec.em
    post = None
    if rec.idata is not None:
        w, m, _ = get_params(rec.idata)
        post = (w.mean((0, 1)), w.std((0, 1)), m.mean((0, 1)), m.std((0, 1)))
    rows = []
    for k in range(K):
        row = {"component": k, "EM weight": em.weights[k]}
        if post:
            row["posterior weight"] = f"{post[0][k]:.3f} ± {post[1][k]:.3f}"
        for j, f in enumerate(names[:6]):
            row[f"EM mean {f}"] = em.means[k, j]
            if post:
                row[f"posterior mean {f}"] = f"{post[2][k, j]:.3g} ± {post[3][k, j]:.2g}"
        rows.append(row)
    return pd.DataFrame(rows)


def _membership(doc, result, out_dir):
    X, names = result.data.X, result.data.feature_names
    N, K = X.shape[0], result.chosen[1]
    doc.h(2, "Membership uncertainty")
    labels, unc = plots.membership_summary(result.membership, X)
    fig = plots.plot_uncertainty(X, labels, unc, feature_names=names, random_seed=result.spec.seed)
    doc.fig(
        _save(doc, fig, out_dir, "uncertainty.png"),
        f"Most probable component (colour) and uncertainty 1 - max probability (size), "
        f"from the {result.membership_source}" + _shown_of(fig),
    )
    doc.p(
        f"Membership from the {result.membership_source}. Uncertainty = 1 - max_k P(z=k): "
        f"median {np.median(unc):.3f}, {int((unc > 0.1).sum()):,} of {N:,} observations above "
        f"0.1, {int((unc > 0.3).sum()):,} above 0.3. Component sizes (most probable label): "
        f"{np.bincount(labels[labels >= 0], minlength=K).tolist()}"
        + (f"; noise class: {int((labels == -1).sum())}." if (labels == -1).any() else ".")
    )
    if result.partition is not None:
        fig = plots.plot_coclustering(
            result.coclustering, result.partition.labels, random_seed=result.spec.seed
        )
        doc.fig(
            _save(doc, fig, out_dir, "coclustering.png"),
            "Posterior co-clustering probability, ordered by the point-estimate partition"
            + _shown_of(fig),
        )
        doc.p(
            f"Point-estimate partition (minimum posterior expected {result.partition.loss} "
            f"loss){_subset_words(result)}: {result.partition.n_clusters} clusters of sizes "
            f"{np.bincount(result.partition.labels).tolist()}."
        )


def _hexbin_words(X):
    """A fit plot's caption note: the data as a density above plots.MAX_POINTS rows."""
    N = X.shape[0]
    if N <= plots.MAX_POINTS or X.shape[1] == 1:
        return ""
    return f"; the data as hexagon counts of all {N:,} points (log scale, darker = more)"


def _shown_of(fig):
    """'' or '; 2,000 of 100,000 observations shown (random subset)' from a plot's title."""
    lines = fig.axes[0].get_title().split("\n")
    return f"; {lines[-1]}" if len(lines) > 1 else ""


def _subset_words(result):
    sub = getattr(result, "coclustering_subset", None)
    if sub is None:
        return ""
    return (
        f" of a random subset of {len(sub):,} of the {result.data.X.shape[0]:,} observations "
        f"(seed {result.spec.seed}; the full co-clustering matrix would take "
        f"{8 * result.data.X.shape[0] ** 2 / 1e9:,.0f} GB)"
    )


def _diagnostics(doc, result, out_dir):
    rec = result.chosen_record
    if rec.idata is None:
        return
    doc.h(2, "MCMC diagnostics (after relabelling)")
    d = rec.diagnostics
    doc.ul(
        [
            f"max R-hat (weights, means): {_fmt(d.get('max_rhat'))}",
            f"min bulk ESS: {_fmt(d.get('min_ess_bulk'))}",
            f"divergences: {_fmt(d.get('divergences'))}",
            f"Pareto k > 0.7 in LOO: {_n_bad_k(rec.loo)}",
        ]
    )
    fig = plots.plot_rank(rec.idata)
    doc.fig(_save(doc, fig, out_dir, "rank.png"), "Trace and rank plots per chain, relabelled")


def _ppc(doc, result, out_dir):
    ppc_section(doc, result, out_dir, _save)


def _em_vs_mcmc(doc, result, out_dir):
    if result.comparison is not None:
        doc.h(2, "EM against MCMC")
        _comparison_blocks(doc, result.comparison)


def _dp(doc, result, out_dir):
    dp = result.dp
    if dp is None:
        return
    X, names = result.data.X, result.data.feature_names
    doc.h(2, f"Dirichlet-process mixture (truncation {dp.K})")
    occ = dp.diagnostics.get("occupied", {})
    doc.table(
        pd.DataFrame(
            {"occupied components": list(occ), "posterior probability": list(occ.values())}
        )
    )
    doc.ul(
        [
            f"ELPD-LOO {dp.loo.elpd:.1f} ± {dp.loo.se:.1f}{subsample_note(dp.loo)}; "
            f"ELPD-WAIC {dp.waic.elpd:.1f} ± {dp.waic.se:.1f}",
            f"divergences: {_fmt(dp.diagnostics.get('divergences'))}",
        ]
    )
    fig = plots.plot_fit(X, None, dp.idata, feature_names=names, random_seed=result.spec.seed)
    doc.fig(
        _save(doc, fig, out_dir, "dp_fit.png"),
        "Dirichlet-process mixture: 1-sd ellipses of components heavier than 1 % "
        "from 20 draws (colours are stick indices, not matched across draws)" + _hexbin_words(X),
    )
    if result.chosen_record.idata is None:
        fig = plots.plot_coclustering(
            result.coclustering, result.partition.labels, random_seed=result.spec.seed
        )
        doc.fig(_save(doc, fig, out_dir, "coclustering.png"), "DP co-clustering" + _shown_of(fig))


def _cluster_models(result):
    """(title, n_clusters table, prior table) of the DP and MFM fits the experiment ran."""
    from bayesmix.posterior._nclusters import n_clusters, prior_n_clusters

    N = result.data.X.shape[0]
    out = []
    if result.dp is not None and result.dp.idata is not None:
        conc = result.dp.prior.dp_concentration if result.dp.prior is not None else (1.0, 1.0)
        out.append(
            (
                f"Dirichlet process (truncation {result.dp.idata.attrs.get('truncation', '?')})",
                n_clusters(result.dp.idata),
                prior_n_clusters(N, concentration=tuple(conc)),
            )
        )
    if result.mfm is not None:
        attrs = result.mfm.idata.attrs
        prior = prior_n_clusters(
            N,
            k_prior=np.asarray(attrs["k_prior"]),
            weight_concentration=result.mfm.prior.weight_concentration,
            dynamic=bool(attrs.get("dynamic", 0)),
        )
        out.append(("Mixture of finite mixtures", result.mfm.diagnostics["n_clusters"], prior))
    return out


def _n_clusters(doc, result, out_dir):
    from matplotlib.figure import Figure

    from bayesmix.workflow._plots import plot_n_clusters

    models = _cluster_models(result)
    if not models:
        return
    doc.h(2, "Number of clusters")
    doc.p(
        "K+ is the number of components holding at least one observation in a draw, K the "
        "number of components of a mixture of finite mixtures (K >= K+). Probabilities are "
        "fractions of draws; the MCSE uses each indicator's effective sample size "
        "(`bm.n_clusters`). The MFM's posterior on K is consistent when the clusters are "
        "Gaussian; the Dirichlet process's K+ is not (it keeps small extra clusters)."
    )
    fig = Figure(figsize=(6.0 * len(models), 3.8), layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, (title, table, prior) in zip(axes, models, strict=True):
        show = table[table["probability"] >= 1e-3]
        doc.p(f"**{title}**")
        doc.table(show.rename(columns={"variable": "quantity"}))
        plot_n_clusters(table, prior=prior, ax=ax)
        ax.set_title(title)
    doc.fig(
        _save(doc, fig, out_dir, "n_clusters.png"),
        "Posterior P(K+ = k) and P(K = k) (bars, ± 2 MCSE) and the prior (open markers)",
    )


def _recovery(doc, result, out_dir):
    r = result.recovery
    if r is None:
        return
    doc.h(2, "Recovery of the simulated truth")
    items = [f"ARI of the chosen model's most probable labels: {r['ari']:.3f}"]
    if "ari_point_partition" in r:
        items.append(f"ARI of the point-estimate partition: {r['ari_point_partition']:.3f}")
    if "ari_dp_point_partition" in r:
        items.append(f"ARI of the DP point-estimate partition: {r['ari_dp_point_partition']:.3f}")
    doc.ul(items)
    if r["parameter_errors"]:
        doc.p("Parameter errors after matching components to the truth by their means:")
        doc.table(pd.DataFrame(r["parameter_errors"]))
    else:
        doc.p(
            f"The chosen K={result.chosen[1]} differs from the true "
            f"K={len(result.data.truth['weights'])}; parameter errors need equal K."
        )


def _notes(doc, result, out_dir):
    if result.notes:
        doc.h(2, "Warnings and notes")
        doc.ul(sorted(set(result.notes)))


def _saved_fits(doc, result, out_dir):
    doc.h(2, "Saved fits")
    saved = [f"`{Path(r.path).relative_to(out_dir)}`" for r in result.records.values() if r.path]
    for rec in (result.dp, result.mfm):
        if rec is not None and rec.path:
            saved.append(f"`{Path(rec.path).relative_to(out_dir)}`")
    doc.p(
        "Load with `bayesmix.load_fit(folder)` (EM result JSON, posterior Zarr, configuration): "
        + ", ".join(saved)
        + "."
    )
    untouched = getattr(result, "untouched_fits", None)
    if untouched:
        doc.p("Also in `fits/`, not written by this run and left as they are:")
        doc.ul(f"`{u.split(' ', 1)[0]}` {u.split(' ', 1)[1]}" for u in untouched)


def _timings(doc, result, out_dir):
    doc.h(2, "Timings")
    doc.ul([f"{k}: {v:.1f} s" for k, v in result.timings.items()])
    if "total" not in result.timings:
        doc.p(
            "The report itself and the total are timed after this page is written: see "
            "the last progress line of the run."
        )


#: The report, section by section: each is ``section(doc, result, out_dir)``.
_SECTIONS = (
    _title,
    _summary,
    _data_and_settings,
    _choosing_k,
    _chosen_fit,
    _membership,
    _diagnostics,
    _ppc,
    _em_vs_mcmc,
    _dp,
    _n_clusters,
    _recovery,
    _notes,
    _saved_fits,
    _timings,
)


def _n_bad_k(loo_res):
    k = getattr(loo_res, "pareto_k", None)
    if k is None:
        return "n/a"
    return str(int((np.asarray(getattr(k, "values", k)) > 0.7).sum()))
