"""Collection settings for the whole repository (``pytest`` runs the doctests of ``bayesmix``).

The JAX Gibbs path is optional (``pip install bayesmix[jax]``) and not in the ``dev``
extra: without JAX its module's doctests are not collected (its tests skip themselves
with ``pytest.importorskip("jax")``).
"""

from __future__ import annotations

import importlib.util

collect_ignore = [] if importlib.util.find_spec("jax") else ["bayesmix/mcmc/_jax_gibbs.py"]
