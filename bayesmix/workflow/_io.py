"""Saving fitted models to disk and loading them back identically.

A saved fit is a folder holding up to three files:

* ``em.json``: the EM result (:meth:`bayesmix.EMResult.to_dict`) with the bayesmix
  version that wrote it;
* ``posterior.zarr``: the posterior :class:`xarray.DataTree` (every group, every
  attribute) in Zarr format;
* ``config.json``: the configuration that produced the fit (any JSON object);
* ``.bayesmix-fit.json``: the marker listing the files :func:`save_fit` wrote (and,
  for ``posterior.zarr``, every file inside the store).

:func:`save_fit` never deletes or overwrites a file it did not write: it writes into a
new or empty folder, and into a folder holding its own marker only with
``overwrite=True`` (then it replaces the files the marker lists and nothing else; a
file that merely looks like bayesmix's, such as an ``em.json`` with its format tag, is
the user's unless the marker lists it). Before it writes anything the marker lists what
the save may leave behind, so that a crash never turns a file of bayesmix's into one a
later save takes for the user's; JSON files are written beside their target and renamed
into place, the posterior into a fresh temporary store moved into place.
:func:`load_fit` turns a file that cannot be read back (corrupt or edited JSON, a
damaged Zarr store) into one ``ValueError`` naming the file.

Zarr is used for the posterior because it is installed with the sampler stack
(nutpie) and needs no HDF5 library; netCDF through ``h5netcdf`` needs ``h5py``, which
is not a dependency of bayesmix. :func:`load_fit` reads the posterior fully into
memory, so the folder can be overwritten or deleted afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bayesmix.core._mclust_models import MCLUST_MODELS
from bayesmix.core._validation import COVARIANCE_TYPES
from bayesmix.workflow._lock import LOCK_FILE, check_not_held, lock_folder

__all__ = ["SavedFit", "check_save_target", "load_fit", "remove_saved_fit", "save_fit"]

EM_FILE = "em.json"
POSTERIOR_FILE = "posterior.zarr"
CONFIG_FILE = "config.json"
MARKER_FILE = ".bayesmix-fit.json"
_FORMAT = "bayesmix-fit"
_PARTS = (EM_FILE, CONFIG_FILE, POSTERIOR_FILE)


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


def save_fit(path, em_result=None, idata=None, config=None, *, overwrite=False):
    """Save an EM result and/or a posterior, with their configuration, to a folder.

    Parameters
    ----------
    path : str or pathlib.Path
        Folder to write: a new folder (created), an empty one, or, with
        ``overwrite=True``, one written by an earlier :func:`save_fit`. A non-empty
        folder that ``save_fit`` did not write is refused: no file of yours is ever
        deleted or overwritten.
    em_result : bayesmix.EMResult, optional
        Saved with its ``to_dict()`` as ``em.json``.
    idata : xarray.DataTree, optional
        The posterior, saved as ``posterior.zarr``: written into a fresh temporary
        folder beside it, then moved into place, so that a crash never leaves half a
        posterior.
    config : dict, optional
        JSON-serialisable configuration (tuples are stored as lists).
    overwrite : bool
        Replace an earlier save in ``path``: the files its marker lists are replaced
        or removed (so that :func:`load_fit` never returns a stale part), other files
        are kept. A file of yours in the way (say your own ``config.json`` beside a
        saved ``em.json``, or a file you put inside ``posterior.zarr``) is refused with
        a ``ValueError`` before anything is written.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    bayesmix.workflow._lock.FolderInUseError
        When another live bayesmix process holds ``path`` (a ``save_fit`` in progress)
        or a folder above it (a ``bayesmix fit`` writing its ``--out``): ``save_fit``
        holds ``path`` with the same lock file, ``.bayesmix-lock``, while it writes.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from bayesmix.mcmc._trace import from_arrays
    >>> dt = from_arrays(np.full((1, 2, 1), 1.0), np.zeros((1, 2, 1, 1)),
    ...                  np.ones((1, 2, 1, 1, 1)), np.zeros((3, 1)))
    >>> folder = save_fit(tempfile.mkdtemp(), idata=dt, config={"K": 1})
    >>> load_fit(folder).config
    {'K': 1}
    >>> folder = save_fit(folder, config={"K": 2}, overwrite=True)
    """
    _check_save_args(em_result, idata, config)
    given = ((EM_FILE, em_result), (CONFIG_FILE, config), (POSTERIOR_FILE, idata))
    parts = [name for name, value in given if value is not None]
    path, _ = _check_target(path, overwrite, parts)
    check_not_held(path)  # inside a folder another run holds (its --out)
    with lock_folder(path, name="path"):  # one save_fit into a folder at a time
        path, old = _check_target(path, overwrite, parts)  # as it is now, locked
        return _save(path, old, parts, em_result, idata, config)


def _save(path, old, parts, em_result, idata, config):
    token = secrets.token_hex(6)
    temporary = [f".{name}.tmp-{token}" for name in parts] + [f".{POSTERIOR_FILE}.old-{token}"]
    files = sorted(set(old.files) | set(parts))
    # the marker lists first everything this save may leave behind, so that after a
    # crash no file of ours is taken for a user's (nor a user's for ours)
    _write_marker(path, files, old.manifest, temporary)
    _remove_owned(path, old, keep=parts)
    texts = {}
    if em_result is not None:
        texts[EM_FILE] = {
            "format": _FORMAT,
            "bayesmix_version": _version(),
            "em": em_result.to_dict(),
        }
    if config is not None:
        texts[CONFIG_FILE] = config
    for name, obj in texts.items():
        staged = path / f".{name}.tmp-{token}"
        staged.write_text(json.dumps(obj, indent=1))
        os.replace(staged, path / name)
    manifest = {}
    if idata is not None:
        manifest[POSTERIOR_FILE] = _write_posterior(path, idata, token, files, old, temporary)
    _write_marker(path, parts, manifest, [])
    return path


def _write_posterior(path, idata, token, files, old, temporary):
    """Write the posterior into ``.posterior.zarr.tmp-TOKEN`` and move it into place;
    returns the files of the store (the marker's manifest)."""
    staged = path / f".{POSTERIOR_FILE}.tmp-{token}"
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not part of the v3 spec
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        idata.to_zarr(staged, mode="w")
    new = _listing(staged)
    both = sorted(set(old.manifest.get(POSTERIOR_FILE, ())) | set(new))
    _write_marker(path, files, {**old.manifest, POSTERIOR_FILE: both}, temporary)
    target, aside = path / POSTERIOR_FILE, path / f".{POSTERIOR_FILE}.old-{token}"
    if target.exists() or target.is_symlink():
        os.rename(target, aside)
    os.rename(staged, target)
    _remove(aside)
    return new


def _check_save_args(em_result, idata, config):
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


@dataclass(frozen=True)
class _Owned:
    """What a folder's marker says save_fit wrote: ``files`` (names among em.json,
    config.json, posterior.zarr), ``manifest`` (posterior.zarr -> the files of the
    store, or absent for a marker older than the manifest) and ``temporary`` (staging
    names of a save that did not finish)."""

    files: tuple = ()
    manifest: dict = field(default_factory=dict)
    temporary: tuple = ()


def _check_target(path, overwrite, parts=_PARTS):
    """The folder to write and what its marker owns, after refusing anything that would
    touch a user's file (``parts``: the names the save will write)."""
    if not isinstance(path, (str, Path)) or isinstance(path, bool):
        raise TypeError(f"path must be a str or pathlib.Path; got {type(path).__name__}.")
    if not str(path).strip():
        raise ValueError(
            "path must name a folder; got an empty string (it would write into the current "
            "directory). Give a folder name, for example 'fits/my_fit'."
        )
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"path must be a folder; {str(path)!r} exists and is a file.")
    if not path.exists() or not any(p.name != LOCK_FILE for p in path.iterdir()):
        return path, _Owned()
    own = _read_marker(path)
    if own is None:
        raise ValueError(
            f"path {str(path)!r} is not empty "
            f"({_shown(p.name for p in path.iterdir() if p.name != LOCK_FILE)}) and "
            "was not written by bayesmix.save_fit (it has no marker file "
            f"{MARKER_FILE}); bayesmix never overwrites or deletes files it did not write. "
            "Choose a new or empty folder."
        )
    if not overwrite:
        raise ValueError(
            f"path {str(path)!r} already holds a fit saved by bayesmix.save_fit; pass "
            "overwrite=True to replace it, or choose a new folder."
        )
    for name in parts:
        target = path / name
        if name not in own.files and (target.exists() or target.is_symlink()):
            raise ValueError(
                f"{str(target)!r} was not written by bayesmix.save_fit (the folder's "
                f"{MARKER_FILE} lists only {list(own.files)}); bayesmix never overwrites a "
                "file it did not write. Move it out of the folder, or save into a new folder."
            )
    for name in own.files:
        foreign = _foreign_files(path / name, own.manifest.get(name))
        if foreign:
            raise ValueError(
                f"{str(path / name)!r} holds files bayesmix.save_fit did not write "
                f"({_shown(foreign)}); bayesmix never deletes a file it did not write. Move "
                f"them out of {name}, or save into a new folder."
            )
    return path, own


def _shown(names, k=5):
    names = sorted(names)
    return ", ".join(repr(n) for n in names[:k]) + (" ..." if len(names) > k else "")


def _listing(folder):
    """Every file (and symlink) under ``folder``, as sorted relative POSIX paths."""
    out = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        out += [(rel / f).as_posix() for f in files]
        out += [(rel / d).as_posix() for d in dirs if (Path(root) / d).is_symlink()]
    return sorted(out)


#: the leaf names of a Zarr store (metadata, chunk keys such as 0, 0.1 or c/0/1)
_ZARR_LEAF = re.compile(r"zarr\.json|\.zarray|\.zattrs|\.zgroup|\.zmetadata|\d+(\.\d+)*")


def _foreign_files(target, manifest):
    """Files inside an owned folder that save_fit did not write: those its manifest does
    not list (a marker without a manifest: those that are no Zarr store's files)."""
    if not target.is_dir() or target.is_symlink():
        return []
    if manifest is None:
        return [f for f in _listing(target) if not _ZARR_LEAF.fullmatch(f.rsplit("/", 1)[-1])]
    return [f for f in _listing(target) if f not in manifest]


def _remove(target):
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)


def _remove_owned(path, own, keep=()):
    """Remove the staging leftovers and the listed files not in ``keep`` (checked by
    :func:`_check_target`: nothing of the user's is inside them)."""
    for name in own.temporary:
        _remove(path / name)
    for name in own.files:
        if name not in keep:
            _remove(path / name)


def _write_marker(path, files, manifest, temporary):
    marker = {
        "format": _FORMAT,
        "bayesmix_version": _version(),
        "files": sorted(files),
        "manifest": {k: sorted(v) for k, v in manifest.items() if k in files},
        "temporary": list(temporary),
    }
    staged = path / f"{MARKER_FILE}.tmp-{secrets.token_hex(6)}"
    staged.write_text(json.dumps(marker, indent=1))
    os.replace(staged, path / MARKER_FILE)


#: the staging names :func:`save_fit` may leave after a crash
_TEMPORARY = re.compile(r"\.(em\.json|config\.json|posterior\.zarr)\.(tmp|old)-[0-9a-f]{12}")


def _read_marker(path):
    """What the folder's save_fit marker owns (an :class:`_Owned`), or None without one."""
    marker = path / MARKER_FILE
    if not marker.is_file():
        return None
    try:
        d = json.loads(marker.read_text())
        files, manifest, temporary = (
            d.get("files", []),
            d.get("manifest", {}),
            d.get("temporary", []),
        )
    except (OSError, ValueError, AttributeError):
        files = manifest = temporary = None
    if not _marker_ok(files, manifest, temporary):
        raise ValueError(
            f"{str(marker)!r} is damaged or edited (it must list files among "
            f"{sorted(_PARTS)}); bayesmix will not delete anything on its word. Remove the "
            "folder yourself or choose a new one."
        )
    return _Owned(tuple(files), {k: frozenset(v) for k, v in manifest.items()}, tuple(temporary))


def _marker_ok(files, manifest, temporary):
    def names(x):
        return isinstance(x, list) and all(isinstance(v, str) for v in x)

    def relative(p):
        return p and not p.startswith("/") and ".." not in p.split("/")

    return (
        names(files)
        and set(files) <= set(_PARTS)
        and isinstance(manifest, dict)
        and set(manifest) <= {POSTERIOR_FILE} & set(files)
        and all(names(v) and all(relative(p) for p in v) for v in manifest.values())
        and names(temporary)
        and all(_TEMPORARY.fullmatch(t) for t in temporary)
    )


def remove_saved_fit(path):
    """Remove what :func:`save_fit` wrote in ``path`` (the files its marker lists, and
    the marker), never anything else; the folder too when that leaves it empty.

    Returns
    -------
    list of str
        What is left in the folder (files of yours, or a part holding files of yours);
        empty when the folder is gone.

    Examples
    --------
    >>> import tempfile
    >>> remove_saved_fit(save_fit(tempfile.mkdtemp(), config={"K": 1}))
    []
    """
    path = Path(path)
    try:
        own = _read_marker(path) if path.is_dir() else None
    except ValueError:
        own = None
    if own is None:
        return _listing(path) if path.is_dir() else []
    kept = [name for name in own.files if _foreign_files(path / name, own.manifest.get(name))]
    _remove_owned(path, own, keep=kept)
    if kept:
        _write_marker(path, kept, own.manifest, [])
    else:
        (path / MARKER_FILE).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.rmdir()
    return _listing(path) if path.is_dir() else []


def check_save_target(path, *, overwrite=False):
    """Raise the ``ValueError`` :func:`save_fit` would raise for ``path``, writing nothing.

    Examples
    --------
    >>> import tempfile
    >>> check_save_target(tempfile.mkdtemp())
    """
    _check_target(path, overwrite)


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

    Raises
    ------
    ValueError
        When the folder is missing or holds no saved fit, or when a file in it cannot
        be read back (corrupt or edited JSON, missing keys, wrong types or shapes, a
        Zarr store that fails to open): the message names the file.

    Examples
    --------
    >>> fit = load_fit("bayesmix-report/fits/full_K2")  # doctest: +SKIP
    >>> fit.em_result.weights  # doctest: +SKIP
    """
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ValueError(f"path must name a folder written by bayesmix.save_fit; got {path!r}.")
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
        out.em_result = _load_em(path / EM_FILE)
    if (path / CONFIG_FILE).exists():
        out.config = _read_json(path / CONFIG_FILE)
        if not isinstance(out.config, dict):
            raise _unreadable(
                path / CONFIG_FILE, f"holds a {type(out.config).__name__}, not a dict"
            )
    if (path / POSTERIOR_FILE).exists():
        out.idata = _load_posterior(path / POSTERIOR_FILE)
    return out


def _unreadable(file, why):
    return ValueError(
        f"{str(file)!r} cannot be read back: {why}. The file was edited or damaged after "
        "bayesmix.save_fit wrote it; save the fit again."
    )


def _read_json(file):
    try:
        return json.loads(file.read_text())
    except UnicodeDecodeError as exc:
        raise _unreadable(file, "it is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise _unreadable(file, f"invalid JSON ({exc.msg} at line {exc.lineno})") from exc
    except OSError as exc:
        raise _unreadable(file, exc.strerror or type(exc).__name__) from exc


#: Keys of EMResult.to_dict() and the JSON types they must hold.
_EM_KEYS = {
    "weights": list,
    "means": list,
    "covariances": list,
    "covariance": str,
    "log_likelihood": (int, float),
    "n_iter": int,
    "converged": bool,
    "history": list,
    "n_obs": int,
    "feature_names": list,
}


def _load_em(file):
    payload = _read_json(file)
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT or "em" not in payload:
        raise _unreadable(file, "it is not a bayesmix EM result file (no 'format'/'em' keys)")
    d = payload["em"]
    if not isinstance(d, dict):
        raise _unreadable(file, f"'em' holds a {type(d).__name__}, not a dict")
    for key, typ in _EM_KEYS.items():
        if key not in d:
            raise _unreadable(file, f"the key 'em.{key}' is missing")
        if not isinstance(d[key], typ) or (typ is int and isinstance(d[key], bool)):
            raise _unreadable(file, f"'em.{key}' holds {type(d[key]).__name__} {d[key]!r:.40}")
    try:
        w = np.asarray(d["weights"], dtype=float)
        m = np.asarray(d["means"], dtype=float)
        c = np.asarray(d["covariances"], dtype=float)
    except (TypeError, ValueError) as exc:
        raise _unreadable(
            file, f"weights/means/covariances are not numeric arrays ({exc})"
        ) from exc
    K = w.shape[0] if w.ndim == 1 else -1
    D = m.shape[1] if m.ndim == 2 else -1
    if K < 1 or m.shape != (K, D) or c.shape != (K, D, D) or len(d["feature_names"]) != D:
        raise _unreadable(
            file,
            f"shapes do not agree: weights {w.shape}, means {m.shape}, covariances {c.shape}, "
            f"{len(d['feature_names'])} feature names",
        )
    if not (np.isfinite(w).all() and np.isfinite(m).all() and np.isfinite(c).all()):
        raise _unreadable(file, "weights, means or covariances hold non-finite values")
    if d["covariance"] not in COVARIANCE_TYPES:
        raise _unreadable(
            file, f"'em.covariance' is {d['covariance']!r}, not one of {COVARIANCE_TYPES}"
        )
    if d.get("model_name") is not None and d["model_name"] not in MCLUST_MODELS:
        raise _unreadable(
            file, f"'em.model_name' is {d['model_name']!r:.40}, not one of {MCLUST_MODELS}"
        )
    if np.any(w < 0) or abs(w.sum() - 1.0) > 1e-6:
        raise _unreadable(file, f"the weights {w.tolist()} are not a probability vector")
    from bayesmix.em import EMResult

    try:
        return EMResult.from_dict(d)
    except (KeyError, TypeError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        raise _unreadable(file, f"{type(exc).__name__}: {exc}") from exc


def _load_posterior(store):
    import xarray as xr

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            with xr.open_datatree(store, engine="zarr") as dt:
                return dt.load().copy()
    except Exception as exc:  # zarr and xarray raise many kinds; all mean "damaged"
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise _unreadable(
            store, f"the Zarr store does not open ({type(exc).__name__}: {msg})"
        ) from exc
