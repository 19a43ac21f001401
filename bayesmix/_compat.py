"""Module paths of bayesmix 0.1's flat layout, kept importable for one release.

Until 0.2, ``import bayesmix.models`` (and the other public module paths of the flat
layout: ``bayesmix.clustering``, ``bayesmix.sampling``, ``bayesmix.spec`` ...) still
works: it returns a thin module that forwards every attribute to the module that now
holds the code, and raises a :class:`DeprecationWarning` naming the new place. The
public names themselves never moved: ``import bayesmix as bm; bm.build_gmm``. The finder
is installed by ``bayesmix/__init__.py``; nothing else in the package uses these paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

#: old module path -> module that holds its code now
OLD_PATHS = {
    "bayesmix.allocation": "bayesmix.posterior._membership",
    "bayesmix.cli": "bayesmix.workflow._cli",
    "bayesmix.clustering": "bayesmix.cluster._kmeans",
    "bayesmix.compare": "bayesmix.posterior._compare",
    "bayesmix.datasets": "bayesmix.workflow._datasets",
    "bayesmix.gibbs": "bayesmix.mcmc._gibbs",
    "bayesmix.io": "bayesmix.workflow._io",
    "bayesmix.labelswitching": "bayesmix.mcmc._relabel",
    "bayesmix.limits": "bayesmix.cluster._limits",
    "bayesmix.lrt": "bayesmix.em._lrt",
    "bayesmix.models": "bayesmix.mcmc._builders",
    "bayesmix.nclusters": "bayesmix.posterior._nclusters",
    "bayesmix.pipeline": "bayesmix.workflow._pipeline",
    "bayesmix.priors": "bayesmix.core._priors",
    "bayesmix.report": "bayesmix.workflow._report",
    "bayesmix.sampling": "bayesmix.mcmc._sample",
    "bayesmix.selection": "bayesmix.posterior._selection",
    "bayesmix.spec": "bayesmix.workflow._spec",
}


class _Forwarding(types.ModuleType):
    """A module whose attributes are those of ``target`` (read and written through)."""

    def __init__(self, name, target):
        super().__init__(name, target.__doc__)
        object.__setattr__(self, "_target", target)

    def __getattr__(self, attr):
        return getattr(object.__getattribute__(self, "_target"), attr)

    def __setattr__(self, attr, value):
        if attr.startswith("__") and attr.endswith("__"):  # the import system's own
            object.__setattr__(self, attr, value)
        else:
            setattr(object.__getattribute__(self, "_target"), attr, value)

    def __dir__(self):
        return dir(object.__getattribute__(self, "_target"))


class _OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module paths and loads each as a :class:`_Forwarding` module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in OLD_PATHS:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        new = OLD_PATHS[spec.name]
        warnings.warn(
            f"the module path {spec.name} is deprecated and will be removed in bayesmix "
            f"0.2: its code is now in {new}. Import public names from bayesmix itself "
            f"(import bayesmix as bm) instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return _Forwarding(spec.name, importlib.import_module(new))

    def exec_module(self, module):
        pass


def install():
    """Put the finder on :data:`sys.meta_path` (once)."""
    if not any(isinstance(f, _OldPathFinder) for f in sys.meta_path):
        sys.meta_path.append(_OldPathFinder())
