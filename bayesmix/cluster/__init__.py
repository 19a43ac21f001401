"""k-means: the numba engine (Lloyd iterations, k-means++ and k-means|| seeding), the
public :func:`~bayesmix.kmeans`, its Dask path, and k-means as the zero-variance limit of
EM (soft k-means), the teaching code of notebook 02.

May import: ``bayesmix.core``.
"""

from __future__ import annotations

from bayesmix.core._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "kmeans": "._kmeans",
        "KMeansResult": "._kmeans",
        "soft_kmeans": "._limits",
        "em_kmeans_limit": "._limits",
    },
)
