"""bayesmix: Bayesian Gaussian mixture models, from k-means to MCMC.

Import as ``import bayesmix as bm``. The numpy layer (validation, data, k-means,
EM, priors) imports eagerly and fast; everything that needs PyMC or ArviZ
(model builders, sampling, posterior analysis, plots, reports) is loaded on
first attribute access.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it (loaded lazily on first access)
_LAZY = {
    # numpy layer
    "load_old_faithful": "bayesmix.datasets",
    "simulate": "bayesmix.datasets",
    "GMMPrior": "bayesmix.priors",
    "default_prior": "bayesmix.priors",
    "kmeans": "bayesmix.clustering",
    "KMeansResult": "bayesmix.clustering",
    "fit_em": "bayesmix.em",
    "EMResult": "bayesmix.em",
    "bootstrap_lrt": "bayesmix.lrt",
    "em_kmeans_limit": "bayesmix.limits",
    "soft_kmeans": "bayesmix.limits",
    "ConvergenceWarning": "bayesmix._validation",
    "DegenerateDataWarning": "bayesmix._validation",
    "BayesmixWarning": "bayesmix._validation",
    # PyMC layer
    "build_gmm": "bayesmix.models",
    "build_dpgmm": "bayesmix.models",
    "build_mfm": "bayesmix.models",
    "sample": "bayesmix.sampling",
    "from_arrays": "bayesmix._trace",
    "save_fit": "bayesmix.io",
    "load_fit": "bayesmix.io",
    # ArviZ analysis layer
    "relabel": "bayesmix.labelswitching",
    "diagnostics": "bayesmix.labelswitching",
    "membership": "bayesmix.allocation",
    "coclustering": "bayesmix.allocation",
    "point_partition": "bayesmix.allocation",
    "loo": "bayesmix.selection",
    "waic": "bayesmix.selection",
    "select_k": "bayesmix.selection",
    "compare_fits": "bayesmix.compare",
    "n_clusters": "bayesmix.nclusters",
    "plot_n_clusters": "bayesmix.nclusters",
    "prior_n_clusters": "bayesmix.nclusters",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bayesmix' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
