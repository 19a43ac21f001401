"""Analysis of a posterior in the layout of ``bayesmix.mcmc``: membership probabilities,
co-clustering and the point partition, the number of clusters, LOO/WAIC and the choice
of K over a grid of fits, and EM against MCMC. Works on a saved DataTree without PyMC.

May import: ``bayesmix.core``, ``bayesmix.cluster``, ``bayesmix.em``, ``bayesmix.mcmc``.
"""

from __future__ import annotations

from bayesmix.core._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "membership": "._membership",
        "coclustering": "._membership",
        "point_partition": "._membership",
        "n_clusters": "._nclusters",
        "prior_n_clusters": "._nclusters",
        "loo": "._loo",
        "waic": "._loo",
        "select_k": "._selection",
        "compare_fits": "._compare",
        "impute": "._impute",
        "posterior_predictive": "._ppc",
        "ppc_statistics": "._ppc",
    },
)
