"""bayesmix: Bayesian Gaussian mixture models, from k-means to MCMC.

Import as ``import bayesmix as bm``. The package is grouped by stage of the analysis,
each stage a subpackage that imports only from the stages before it::

    core  <-  cluster  <-  em  <-  mcmc  <-  posterior  <-  workflow  <-  sklearn, plots

``core`` (validation, Gaussian densities, covariance types, priors), ``cluster``
(k-means and its zero-variance limit of EM), ``em`` (ML and MAP fits), ``mcmc`` (PyMC
models, NUTS and Gibbs samplers, the posterior layout, relabelling), ``posterior``
(membership, number of clusters, LOO/WAIC and the choice of K, EM against MCMC) and
``workflow`` (data, specs, the pipeline, reports, plots, saving, the command line);
``bayesmix.sklearn`` and ``bayesmix.plots`` are the public adapters on top. Every public
name is importable from here and loaded on first attribute access, so ``import
bayesmix`` is fast and PyMC is imported only when a model is built or sampled.
"""

from __future__ import annotations

from bayesmix import _compat
from bayesmix.core._lazy import attach

__version__ = "0.1.0"

__getattr__, __dir__, _public = attach(
    __name__,
    {
        # core: priors and warnings
        "GMMPrior": "bayesmix.core._priors",
        "default_prior": "bayesmix.core._priors",
        "BayesmixWarning": "bayesmix.core._validation",
        "ConvergenceWarning": "bayesmix.core._validation",
        "DegenerateDataWarning": "bayesmix.core._validation",
        # cluster: k-means
        "kmeans": "bayesmix.cluster._kmeans",
        "KMeansResult": "bayesmix.cluster._kmeans",
        "em_kmeans_limit": "bayesmix.cluster._limits",
        "soft_kmeans": "bayesmix.cluster._limits",
        # em
        "fit_em": "bayesmix.em._fit",
        "EMResult": "bayesmix.em._result",
        "bootstrap_lrt": "bayesmix.em._lrt",
        "fit_vi": "bayesmix.em._vi",
        "VIResult": "bayesmix.em._vi_result",
        # mcmc
        "build_gmm": "bayesmix.mcmc._builders",
        "build_dpgmm": "bayesmix.mcmc._builders",
        "build_mfm": "bayesmix.mcmc._builders",
        "sample": "bayesmix.mcmc._sample",
        "from_arrays": "bayesmix.mcmc._trace",
        "relabel": "bayesmix.mcmc._relabel",
        "diagnostics": "bayesmix.mcmc._relabel",
        # posterior
        "membership": "bayesmix.posterior._membership",
        "coclustering": "bayesmix.posterior._membership",
        "point_partition": "bayesmix.posterior._membership",
        "n_clusters": "bayesmix.posterior._nclusters",
        "prior_n_clusters": "bayesmix.posterior._nclusters",
        "loo": "bayesmix.posterior._selection",
        "waic": "bayesmix.posterior._selection",
        "select_k": "bayesmix.posterior._selection",
        "compare_fits": "bayesmix.posterior._compare",
        "impute": "bayesmix.posterior._impute",
        "posterior_predictive": "bayesmix.posterior._ppc",
        "ppc_statistics": "bayesmix.posterior._ppc",
        # workflow
        "load_old_faithful": "bayesmix.workflow._datasets",
        "simulate": "bayesmix.workflow._datasets",
        "save_fit": "bayesmix.workflow._io",
        "load_fit": "bayesmix.workflow._io",
        "plot_n_clusters": "bayesmix.workflow._plots",
    },
)
__all__ = ["__version__", *_public]

_compat.install()  # the flat layout's module paths (bayesmix.models ...), until 0.2
