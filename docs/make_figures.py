"""Write the figures gallery of the docs (docs/_static/gallery/*.png).

Usage (from the repository root)::

    python docs/make_figures.py            # write only the figures that are missing
    python docs/make_figures.py --force    # rewrite all of them (about a minute on 2 cores)

``make docs`` runs the first form, so a fresh clone (which has the committed PNGs)
builds without fitting anything; ``make figures`` runs the second. The figures are
the ones ``bayesmix fit`` puts in its report, drawn with the public API on Old
Faithful with fixed seeds, plus the k-means-as-limit small multiples and, when the
package has it, the posterior on the number of clusters.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "_static" / "gallery"

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import bayesmix as bm  # noqa: E402
from bayesmix.workflow import _plots as plots  # noqa: E402

SEED = 1
DPI = 110


def kmeans_limit():
    """Small multiples: soft assignments of fixed-variance EM harden as eps shrinks."""
    X, _ = bm.simulate(
        600, [0.4, 0.3, 0.3], [[0.0, 0.0], [3.0, 0.5], [1.0, 3.0]], [np.eye(2)] * 3, random_seed=7
    )
    km = bm.kmeans(X, 3, n_init=10, random_seed=7)
    data_var = float(np.mean(np.var(X, axis=0)))
    factors = np.array([3.0, 1.0, 0.3, 0.1, 1e-3])
    lim = bm.em_kmeans_limit(X, km.init_centers, data_var * factors)
    colors = np.array([[0.12, 0.47, 0.71], [1.0, 0.5, 0.05], [0.17, 0.63, 0.17]])
    fig = Figure(figsize=(3.0 * len(factors), 3.3), layout="constrained")
    axes = fig.subplots(1, len(factors), sharex=True, sharey=True)
    for ax, f, r, c in zip(axes, factors, lim.responsibilities, lim.centers, strict=True):
        ax.scatter(X[:, 0], X[:, 1], c=r @ colors, s=6)
        ax.scatter(*c.T, marker="x", s=80, c="k")
        ax.set_title(f"eps = {f:g} x data variance", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("EM with a fixed common variance eps: soft assignments harden into k-means")
    return {"kmeans_limit.png": fig}


def old_faithful():
    """The report's figures for Old Faithful, K = 2, full covariances (MAP + NUTS)."""
    X = bm.load_old_faithful()
    names = list(X.columns)
    prior = bm.GMMPrior.from_data(X, 2)
    em = bm.fit_em(X, 2, prior=prior, n_init=5, random_seed=SEED)
    idata = bm.sample(
        bm.build_gmm(X, 2, prior=prior),
        init=em,
        draws=500,
        tune=500,
        chains=4,
        random_seed=SEED,
        progressbar=False,
    )
    rel = bm.relabel(idata, reference=em)
    labels, unc = plots.membership_summary(bm.membership(rel))
    return {
        "fit.png": plots.plot_fit(X, em, rel, n_draws=20, feature_names=names, random_seed=SEED),
        "uncertainty.png": plots.plot_uncertainty(X, labels, unc, feature_names=names),
        "rank.png": plots.plot_rank(rel),
    }


def selection():
    """The K-selection panel (K = 1..4, EM and MCMC) and co-clustering at K = 2 and 3."""
    X = bm.load_old_faithful()
    table = bm.select_k(X, range(1, 5), draws=500, tune=500, random_seed=SEED, progress=False)
    chosen = table.attrs["recommended"].get("loo", table.attrs["recommended"]["bic"])
    fig = Figure(figsize=(12.0, 5.2), layout="constrained")
    for ax, k in zip(fig.subplots(1, 2), (2, 3), strict=True):
        psm = bm.coclustering(table.attrs["fits"][k].idata)
        plots.plot_coclustering(psm, bm.point_partition(psm).labels, ax=ax)
        ax.set_title(f"K = {k}: " + ax.get_title())
    return {"selection.png": plots.plot_selection(table, chosen=chosen), "coclustering.png": fig}


def number_of_clusters():
    """Posterior on the number of clusters of a mixture of finite mixtures (MFM), with its
    prior."""
    from scipy import stats

    X = bm.load_old_faithful()
    max_k = 30
    k_prior = stats.betanbinom(n=1, a=4, b=3).pmf(np.arange(max_k))  # on K - 1
    k_prior = k_prior / k_prior.sum()
    model = bm.build_mfm(X, k_prior=k_prior, max_components=max_k)
    idata = bm.sample(model, draws=2000, tune=500, chains=4, random_seed=SEED)
    table = bm.n_clusters(idata)
    prior = bm.prior_n_clusters(len(X), k_prior=k_prior)
    fig = bm.plot_n_clusters(table, prior=prior)
    return {"n_clusters.png": fig}


#: file names each maker writes (so a maker runs only when one of its files is missing)
MAKERS = {
    kmeans_limit: ["kmeans_limit.png"],
    old_faithful: ["fit.png", "uncertainty.png", "rank.png"],
    selection: ["selection.png", "coclustering.png"],
    number_of_clusters: ["n_clusters.png"],
}


def main(argv=None):
    """Write the missing figures (all of them with ``--force``); return 0."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--force", action="store_true", help="rewrite every figure")
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for maker, files in MAKERS.items():
        if not args.force and all((OUT / f).exists() for f in files):
            continue
        t0 = time.perf_counter()
        for name, fig in maker().items():
            fig.savefig(OUT / name, dpi=DPI)
            print(f"wrote {OUT.relative_to(ROOT) / name}")
        print(f"  {maker.__name__}: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
