"""Lazy public names for a package: one ``__getattr__`` / ``__dir__`` pair.

Every package ``__init__`` of bayesmix (the root and each stage) names its public
objects and the module that defines each, and imports that module on first attribute
access (the pattern of scientific-python's ``lazy_loader``). So ``import bayesmix``, or a
stage module importing ``bayesmix.mcmc._trace``, loads nothing it does not use: PyMC is
imported only when a model is built or sampled.
"""

from __future__ import annotations

import importlib


def attach(package, names):
    """``(__getattr__, __dir__, __all__)`` for ``package`` with lazily imported names.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : dict of str to str
        Public name -> module defining it (absolute, or relative to ``package`` when it
        starts with ``.``).

    Returns
    -------
    getattr : callable
        The module-level ``__getattr__``: imports the defining module, caches the object
        in the package's namespace and returns it.
    dir : callable
        The module-level ``__dir__``.
    all : list of str
        Sorted public names, for ``__all__``.

    Examples
    --------
    >>> from bayesmix.core._lazy import attach
    >>> get, _, names = attach("bayesmix", {"fit_em": "bayesmix.em._fit"})
    >>> names
    ['fit_em']
    >>> get("fit_em").__name__
    'fit_em'
    """
    modules = {
        name: (package + module if module.startswith(".") else module)
        for name, module in names.items()
    }

    def __getattr__(name):
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(modules))

    return __getattr__, __dir__, sorted(modules)
