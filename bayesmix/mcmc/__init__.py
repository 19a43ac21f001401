"""MCMC: the PyMC model builders (finite, Dirichlet process, mixture of finite
mixtures), the mixture likelihood as one PyTensor Op, NUTS set-up, the conjugate Gibbs
samplers and their numba kernels, the one rule that picks the sampler, the posterior
layout every sampler writes, relabelling of the draws (label switching), and the
optional JAX Gibbs sampler of finite full-covariance mixtures (``sample_gibbs_jax``, for
accelerators; needs ``pip install bayesmix[jax]``).

May import: ``bayesmix.core``, ``bayesmix.cluster``, ``bayesmix.em``. Only the builders and
the samplers import PyMC; the posterior layout and relabelling need only xarray.
"""

from __future__ import annotations

from bayesmix.core._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "build_gmm": "._builders",
        "build_dpgmm": "._builders",
        "build_mfm": "._builders",
        "default_cluster_prior": "._builders",
        "sample": "._sample",
        "sample_gibbs_jax": "._jax_gibbs",
        "from_arrays": "._trace",
        "relabel": "._relabel",
        "diagnostics": "._relabel",
    },
)
