"""Saving fitted models to disk and loading them back identically.

A saved fit is a folder holding up to three files:

* ``em.json``: the EM result (:meth:`bayesmix.EMResult.to_dict`) with the bayesmix
  version that wrote it;
* ``posterior.zarr``: the posterior :class:`xarray.DataTree` (every group, every
  attribute) in Zarr format;
* ``config.json``: the configuration that produced the fit (any JSON object).

Zarr is used for the posterior because it is installed with the sampler stack
(nutpie) and needs no HDF5 library; netCDF through ``h5netcdf`` needs ``h5py``, which
is not a dependency of bayesmix. :func:`load_fit` reads the posterior fully into
memory, so the folder can be overwritten or deleted afterwards.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SavedFit", "load_fit", "save_fit"]

EM_FILE = "em.json"
POSTERIOR_FILE = "posterior.zarr"
CONFIG_FILE = "config.json"
_FORMAT = "bayesmix-fit"


@dataclass
class SavedFit:
    """What :func:`load_fit` returns.

    Attributes
    ----------
    em_result : bayesmix.EMResult or None
    idata : xarray.DataTree or None
    config : dict or None
    path : pathlib.Path
    """

    em_result: object = None
    idata: object = None
    config: dict | None = None
    path: Path | None = None


def _version():
    from bayesmix import __version__

    return __version__


def _check_json(obj, where):
    """Raise a TypeError naming the first value JSON cannot store exactly."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_json(v, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(
                    f"config keys must be strings; got {type(k).__name__} {k!r} at {where}."
                )
            _check_json(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"config must hold JSON values only (dict, list, str, int, float, bool, None); "
        f"got {type(obj).__name__} at {where}. Convert it first (for example array.tolist())."
    )


def save_fit(path, em_result=None, idata=None, config=None):
    """Save an EM result and/or a posterior, with their configuration, to a folder.

    Parameters
    ----------
    path : str or pathlib.Path
        Folder to write (created if needed). Files of a previous save in that folder
        are replaced; a part not given now (say ``idata``) is removed so that
        :func:`load_fit` never returns a stale part.
    em_result : bayesmix.EMResult, optional
        Saved with its ``to_dict()`` as ``em.json``.
    idata : xarray.DataTree, optional
        The posterior, saved as ``posterior.zarr``.
    config : dict, optional
        JSON-serialisable configuration (tuples are stored as lists).

    Returns
    -------
    pathlib.Path
        The folder.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from bayesmix._trace import from_arrays
    >>> dt = from_arrays(np.full((1, 2, 1), 1.0), np.zeros((1, 2, 1, 1)),
    ...                  np.ones((1, 2, 1, 1, 1)), np.zeros((3, 1)))
    >>> folder = save_fit(tempfile.mkdtemp(), idata=dt, config={"K": 1})
    >>> load_fit(folder).config
    {'K': 1}
    """
    if em_result is None and idata is None and config is None:
        raise ValueError("save_fit needs at least one of em_result, idata or config; got none.")
    if idata is not None and not hasattr(idata, "to_zarr"):
        raise TypeError(
            f"idata must be an xarray.DataTree (the result of bayesmix.sample); got "
            f"{type(idata).__name__}."
        )
    if em_result is not None and not hasattr(em_result, "to_dict"):
        raise TypeError(
            f"em_result must be a bayesmix.EMResult (with to_dict()); got "
            f"{type(em_result).__name__}."
        )
    if config is not None:
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict; got {type(config).__name__}.")
        _check_json(config, "config")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"path must be a folder; {str(path)!r} exists and is a file.")
    path.mkdir(parents=True, exist_ok=True)
    for name in (EM_FILE, CONFIG_FILE):
        (path / name).unlink(missing_ok=True)
    if (path / POSTERIOR_FILE).exists():
        shutil.rmtree(path / POSTERIOR_FILE)
    if em_result is not None:
        payload = {"format": _FORMAT, "bayesmix_version": _version(), "em": em_result.to_dict()}
        (path / EM_FILE).write_text(json.dumps(payload, indent=1))
    if config is not None:
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    if idata is not None:
        with warnings.catch_warnings():
            # zarr warns that consolidated metadata is not part of the v3 spec
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            idata.to_zarr(path / POSTERIOR_FILE, mode="w")
    return path


def load_fit(path):
    """Load a folder written by :func:`save_fit`.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    SavedFit
        ``em_result`` (an :class:`bayesmix.EMResult`), ``idata`` (an
        :class:`xarray.DataTree`, loaded into memory) and ``config`` (dict); a part
        that was not saved is ``None``.

    Examples
    --------
    >>> fit = load_fit("bayesmix-report/fits/full_K2")  # doctest: +SKIP
    >>> fit.em_result.weights  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(
            f"path must be a folder written by bayesmix.save_fit; {str(path)!r} "
            + ("is a file." if path.exists() else "does not exist.")
        )
    parts = [p for p in (EM_FILE, POSTERIOR_FILE, CONFIG_FILE) if (path / p).exists()]
    if not parts:
        raise ValueError(
            f"{str(path)!r} holds none of {EM_FILE}, {POSTERIOR_FILE}, {CONFIG_FILE}; it was "
            "not written by bayesmix.save_fit."
        )
    out = SavedFit(path=path)
    if (path / EM_FILE).exists():
        payload = json.loads((path / EM_FILE).read_text())
        if payload.get("format") != _FORMAT or "em" not in payload:
            raise ValueError(f"{str(path / EM_FILE)!r} is not a bayesmix EM result file.")
        from bayesmix.em import EMResult

        out.em_result = EMResult.from_dict(payload["em"])
    if (path / CONFIG_FILE).exists():
        out.config = json.loads((path / CONFIG_FILE).read_text())
    if (path / POSTERIOR_FILE).exists():
        import xarray as xr

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            with xr.open_datatree(path / POSTERIOR_FILE, engine="zarr") as dt:
                out.idata = dt.load().copy()
    return out
