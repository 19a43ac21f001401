"""The public plotting functions: ``from bayesmix import plots``.

Fitted mixtures drawn as people look at them: ellipses over the data, the fit with its
marginal densities, membership uncertainty, co-clustering, the choice of K, rank plots,
the posterior on the number of clusters and the posterior predictive check. The code is
in ``bayesmix.workflow._plots`` (the report draws its figures with it); this module is
the stable path to it.
"""

from __future__ import annotations

from bayesmix.workflow._plots import (
    membership_summary,
    plot_coclustering,
    plot_ellipses,
    plot_fit,
    plot_n_clusters,
    plot_ppc,
    plot_rank,
    plot_selection,
    plot_uncertainty,
)

__all__ = [
    "membership_summary",
    "plot_coclustering",
    "plot_ellipses",
    "plot_fit",
    "plot_n_clusters",
    "plot_ppc",
    "plot_rank",
    "plot_selection",
    "plot_uncertainty",
]
