"""EM for Gaussian mixtures, maximum likelihood and MAP: the driver :func:`~bayesmix.fit_em`
and its result :class:`~bayesmix.EMResult`, the EM iterations and restarts, the start
portfolio (k-means, mclust's hierarchical agglomeration, random), the Dask path and the
bootstrap likelihood-ratio test, and mean-field variational inference (:func:`~bayesmix.fit_vi`,
:class:`~bayesmix.VIResult`).

May import: ``bayesmix.core``, ``bayesmix.cluster``.
"""

from __future__ import annotations

from bayesmix.core._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "fit_em": "._fit",
        "EMResult": "._result",
        "bootstrap_lrt": "._lrt",
        "fit_vi": "._vi",
        "VIResult": "._vi_result",
    },
)
