"""Checks the command line and the experiment pipeline run before the first fit.

Everything that can be known before fitting is checked here, so that a run never
spends minutes sampling and then fails on its output folder, a K grid larger than
the data, or too few draws for PSIS-LOO. Each check raises a ``ValueError`` of one
line naming the option (or spec key), what was expected, what came in, and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

__all__ = ["K_LIMIT", "LOO_MIN_DRAWS", "check_k_grid", "check_mcmc_draws", "check_out_dir"]

#: Largest number of components a K grid may name (a range such as 1-100000000 is
#: refused before it is expanded).
K_LIMIT = 1000
#: PSIS-LOO (arviz_stats.loo) needs at least this many posterior draws in total.
LOO_MIN_DRAWS = 25


def compact_k(ks):
    """``[1, 2, 3, 6]`` -> ``"1-3,6"`` (for messages).

    Examples
    --------
    >>> compact_k([1, 2, 3, 6, 8, 9])
    '1-3,6,8-9'
    """
    ks = sorted(set(ks))
    parts, start = [], None
    for i, k in enumerate(ks):
        if start is None:
            start = k
        if i + 1 == len(ks) or ks[i + 1] != k + 1:
            parts.append(str(start) if start == k else f"{start}-{k}")
            start = None
    return ",".join(parts)


def check_out_dir(out, name="--out"):
    """The report folder must be a folder (or creatable) and writable.

    Parameters
    ----------
    out : str or pathlib.Path
    name : str
        The option or spec key, for messages.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> check_out_dir(tempfile.mkdtemp()).is_dir()
    True
    """
    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise ValueError(f"{name} must name a folder; got {out!r}.")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"{name} {str(path)!r} is an existing file, not a folder; choose a folder name "
            "(the report is a folder of files)."
        )
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ValueError(
            f"{name} {str(path)!r} cannot be created: {str(probe)!r} is a file, not a folder."
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(
            f"{name} {str(path)!r} is not writable ({str(probe)!r} does not allow writing: a "
            "read-only file system or folder?); choose a folder you can write to."
        )
    return path


def check_k_grid(ks, n_obs, n_distinct=None, *, name="--k"):
    """Every K of a grid must be at most the number of (distinct) observations.

    Parameters
    ----------
    ks : list of int
    n_obs : int
        Rows of the data.
    n_distinct : int, optional
        Distinct rows; K above it leaves components without points of their own.
    name : str

    Examples
    --------
    >>> check_k_grid([1, 2, 3], 272)
    >>> check_k_grid([1, 2, 300], 272)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --k: K=[300] exceed the number of observations n=272; ... Use K <= 272.
    """
    too_big = [k for k in ks if k > n_obs]
    if too_big:
        raise ValueError(
            f"{name}: K={_shown(too_big)} exceed the number of observations n={n_obs}; a "
            f"mixture cannot have more components than points. Use K <= {n_obs}."
        )
    too_many = [k for k in ks if n_distinct is not None and k > n_distinct]
    if too_many:
        raise ValueError(
            f"{name}: K={_shown(too_many)} exceed the {n_distinct} distinct rows of the data; "
            f"a component needs points of its own. Use K <= {n_distinct}."
        )


def _shown(ks, k=8):
    """A short rendering of a list of K (never the whole of a huge range)."""
    if len(ks) <= k:
        return str(list(ks))
    return f"[{ks[0]}, {ks[1]}, ..., {ks[-1]}] ({len(ks)} values)"


def check_mcmc_draws(draws, chains, *, names=("--draws", "--chains")):
    """Posterior draws in total must be enough for PSIS-LOO (at least 25).

    Examples
    --------
    >>> check_mcmc_draws(10, 1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --draws 10 x --chains 1 = 10 posterior draws, but PSIS-LOO ... needs at least 25...
    """
    total = draws * chains
    if total < LOO_MIN_DRAWS:
        need = math.ceil(LOO_MIN_DRAWS / chains)
        raise ValueError(
            f"{names[0]} {draws} x {names[1]} {chains} = {total} posterior draws, but PSIS-LOO "
            f"(used to compare K) needs at least {LOO_MIN_DRAWS}; use {names[0]} {need} or more."
        )


def spec_for_gaps(spec, X, notes, sample_weight=None):
    """The spec to run on data ``X`` (N, D). With NaN entries (missing values, fitted by
    k-means and EM over the observed coordinates) the MCMC stages run the Gibbs sampler,
    which draws the missing entries each sweep (:mod:`bayesmix.mcmc._gibbs_missing`),
    with a note appended to ``notes``; where the models need NUTS (an LKJ prior, a noise
    component or sample weights) the MCMC stages are switched off, with a note: NUTS has
    no missing-value likelihood yet.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> notes = []
    >>> spec_for_gaps(SimpleNamespace(mcmc=False), np.zeros((2, 2)), notes).mcmc, notes
    (False, [])
    """
    if not (spec.mcmc and np.isnan(X).any()):
        return spec
    nuts = [
        why
        for why, needed in (
            ("an LKJ covariance prior", spec.prior.get("covariance_prior") == "lkj"),
            ("a noise component", bool(spec.noise)),
            ("sample weights", sample_weight is not None),
        )
        if needed
    ]
    if not nuts:
        notes.append(
            "data: the MCMC stages use the Gibbs sampler, which draws the missing entries "
            "from their conditional distribution each sweep (data augmentation); "
            "log-likelihoods, LOO and WAIC are those of the observed entries."
        )
        return spec
    notes.append(
        f"data: the MCMC stages were skipped: the models need NUTS ({', '.join(nuts)}), "
        "which does not handle missing values yet (k-means and EM use every row, by the "
        "observed-data likelihood; the Gibbs sampler, which does, needs the conjugate prior, "
        "no noise component and no weights). Pass --dropna (spec: data.dropna = true) for "
        "the complete-case analysis with MCMC."
    )
    return dataclasses.replace(spec, mcmc=False)


def filled_for_checks(X):
    """``X`` (N, D) with NaN replaced by the column means of the observed entries (for
    the degeneracy checks only; nothing is fitted to it); ``X`` itself without NaN.

    Examples
    --------
    >>> filled_for_checks(np.array([[1.0, np.nan], [3.0, 4.0]])).tolist()
    [[1.0, 4.0], [3.0, 4.0]]
    """
    if not np.isnan(X).any():
        return X
    return np.where(np.isnan(X), np.nanmean(X, axis=0), X)
