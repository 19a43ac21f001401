"""The output folder of ``bayesmix fit`` and ``bayesmix run``: one run at a time, and
exact ownership of the files in it.

**One run at a time.** :func:`lock_folder` creates ``.bayesmix-lock`` in the folder
atomically (``os.open`` with ``O_CREAT | O_EXCL``) before the first fit and removes it
when the run ends, also on an error or Ctrl-C. A second run into a folder a live run
holds is refused at once, naming the other run (pid, host, start time, command). A lock
whose process is gone (a dead pid on this host, or a pid since reused by another
process) is stale: it is removed with a note, and the run goes on. A lock from another
host cannot be checked and is never removed.

**Exact ownership.** The folder's marker ``.bayesmix-report`` lists the report files
(``report.md``, ``report.html``, ``figures/*.png``) and the saved fits (``fits/NAME``)
bayesmix wrote there (:class:`ReportFolder`). A run replaces only listed files, refuses
before fitting a run whose report would overwrite a file it does not list, removes the
listed files and fits of an earlier run that it does not write again, and leaves (and
names in the report) every other fit folder. A file that merely looks like bayesmix's
(a ``report.md`` starting with ``# bayesmix report``) is the user's unless the marker
lists it. Each file is added to the marker before it is written, so that after a crash
no file of bayesmix's is taken for the user's.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

from bayesmix.workflow._io import check_save_target, remove_saved_fit

__all__ = [
    "FIGURES",
    "LOCK_FILE",
    "REPORT_MARKER",
    "FolderInUseError",
    "ReportFolder",
    "lock_folder",
]

LOCK_FILE = ".bayesmix-lock"
REPORT_MARKER = ".bayesmix-report"
REPORT_FILES = ("report.md", "report.html")
FIG_DIR = "figures"
FITS_DIR = "fits"
#: every figure the report may write (``figures/NAME``)
FIGURES = (
    "selection.png",
    "fit.png",
    "uncertainty.png",
    "coclustering.png",
    "rank.png",
    "dp_fit.png",
    "n_clusters.png",
)
_FORMAT = "bayesmix-report"


class FolderInUseError(ValueError):
    """The output folder is held by another bayesmix run (its lock file is live)."""


# ---------------------------------------------------------------------------- the lock
def _process_start(pid):
    """The start time of a process in clock ticks since boot (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid, start):
    """Whether process ``pid`` of this host still runs (and is the one that locked)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    now = _process_start(pid)
    return start is None or now is None or now == start


def _read_lock(lock):
    try:
        d = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(d, dict) and isinstance(d.get("pid"), int) and isinstance(d.get("host"), str)
    return d if ok else None


def _holder(d):
    return (
        f"pid {d['pid']} on host {d['host']}, started {d.get('started', '?')}, command: "
        f"{d.get('command') or '?'}"
    )


def _take_stale(lock, holder):
    """Remove a stale lock unless another run replaced it meanwhile; True when removed."""
    aside = lock.with_name(f"{LOCK_FILE}.stale-{secrets.token_hex(6)}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return False  # another run removed it first
    if _read_lock(aside) != holder:  # a live lock created meanwhile: put it back
        with contextlib.suppress(OSError):
            os.link(aside, lock)
        aside.unlink(missing_ok=True)
        return False
    aside.unlink(missing_ok=True)
    return True


def _acquire(lock, info, name):
    """Create the lock file atomically; returns a note when a stale lock was removed."""
    folder, note, unreadable = lock.parent, None, 0
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(lock)
            if holder is None:  # being written this instant, or damaged
                unreadable += 1
                if unreadable > 40:
                    raise FolderInUseError(
                        f"{name} {str(folder)!r} is locked by {str(lock)!r}, which cannot be "
                        "read; if no bayesmix run is writing into the folder, remove that "
                        f"file, or choose another {name}."
                    ) from None
                time.sleep(0.05)
                continue
            here = holder["host"] == info["host"]
            if here and not _alive(holder["pid"], holder.get("process_start")):
                if _take_stale(lock, holder):
                    note = (
                        f"removed the stale lock of {name} {str(folder)!r} (left by "
                        f"{_holder(holder)}; that process is no longer running)"
                    )
                continue
            raise FolderInUseError(
                f"{name} {str(folder)!r} is in use by another bayesmix run ({_holder(holder)}); "
                "two runs into one folder would overwrite each other's results. Wait for it "
                f"to finish, or choose another {name}. If that run is gone"
                + ("" if here else " (bayesmix cannot check a process on another host)")
                + f", remove {str(lock)!r}."
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        return note


@contextlib.contextmanager
def lock_folder(path, name="--out"):
    """Hold the output folder for this run: refuse it when another live run holds it.

    Parameters
    ----------
    path : str or pathlib.Path
        The output folder (created if needed; removed again at the end when this call
        created it and nothing was written into it).
    name : str
        The option or spec key, for messages.

    Yields
    ------
    str or None
        A note when a stale lock (of a process no longer running) was removed.

    Raises
    ------
    FolderInUseError
        When a live run holds the folder: the message names its pid, host, start time
        and command.

    Examples
    --------
    >>> import tempfile
    >>> with lock_folder(tempfile.mkdtemp()) as note:
    ...     print(note)
    None
    """
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK_FILE
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:300],
        "process_start": _process_start(os.getpid()),
        "token": secrets.token_hex(8),
    }
    try:
        note = _acquire(lock, info, name)
    except BaseException:
        _remove_created(created)
        raise
    try:
        yield note
    finally:
        if _read_lock(lock) == info:
            lock.unlink(missing_ok=True)
        _remove_created(created)


def _remove_created(created):
    for p in created:  # deepest first; stops at the first folder that holds something
        try:
            p.rmdir()
        except OSError:
            break


# ---------------------------------------------------------------------------- ownership
def _relative(p, top):
    parts = p.split("/") if isinstance(p, str) else []
    return len(parts) == 2 and parts[0] == top and parts[1] not in ("", ".", "..")


class ReportFolder:
    """The files of a report folder that bayesmix wrote, as its marker lists them.

    Parameters
    ----------
    path : str or pathlib.Path
    name : str
        The option or spec key, for messages.

    Raises
    ------
    ValueError
        When the marker is damaged or edited (it is never trusted then).
    """

    def __init__(self, path, name="--out"):
        self.path, self.name = Path(path), name
        self.found, self.files, self.fits = self._read()
        self.claimed_files, self.claimed_fits = set(), set()
        #: fit folders this run did not write and left as they are (named in the report)
        self.untouched = []

    def _read(self):
        marker = self.path / REPORT_MARKER
        if not marker.is_file():
            return False, set(), set()
        try:
            d = json.loads(marker.read_text())
            files, fits = d.get("files"), d.get("fits")
        except (OSError, ValueError, AttributeError):
            files = fits = None
        ok = (
            isinstance(files, list)
            and isinstance(fits, list)
            and all(f in REPORT_FILES or _relative(f, FIG_DIR) for f in files)
            and all(_relative(f, FITS_DIR) for f in fits)
        )
        if not ok:
            raise ValueError(
                f"{self.name} {str(self.path)!r}: its {REPORT_MARKER} is damaged, edited or "
                "from an earlier development version (it must list the report files and "
                "fits bayesmix wrote); bayesmix will not overwrite or delete anything on its "
                "word. Remove the folder yourself or choose a new one."
            )
        return True, set(files), set(fits)

    def check(self, planned_fits=()):
        """Refuse (``ValueError``) a run whose report or fits would overwrite a file
        bayesmix did not write; ``planned_fits``: the ``fits/NAME`` the run may save."""
        p = self.path
        if not p.is_dir():
            return
        if not self.found:
            clash = [n for n in (*REPORT_FILES, FIG_DIR, FITS_DIR) if _exists(p / n)]
        else:
            ours = [*REPORT_FILES, *(f"{FIG_DIR}/{f}" for f in FIGURES)]
            clash = [n for n in ours if _exists(p / n) and n not in self.files]
            clash += [
                n
                for n in planned_fits
                if _exists(p / n) and n not in self.fits and not _empty_dir(p / n)
            ]
            clash += [n for n in (FIG_DIR, FITS_DIR) if _exists(p / n) and not (p / n).is_dir()]
        if clash:
            raise ValueError(
                f"{self.name} {str(p)!r} holds {clash} that bayesmix did not write (its "
                f"{REPORT_MARKER} does not list them); the report would overwrite them, and "
                "bayesmix never overwrites files it did not write. Move them away or choose "
                "a new or empty folder."
            )
        for n in planned_fits:
            if (p / n).is_dir():
                check_save_target(p / n, overwrite=True)

    def claim_file(self, rel):
        """List a report file in the marker before it is written."""
        self.claimed_files.add(rel)
        if rel not in self.files:
            self.files.add(rel)
            self._write()

    def claim_fit(self, rel):
        """List a fit folder in the marker before it is saved."""
        self.claimed_fits.add(rel)
        if rel not in self.fits:
            self.fits.add(rel)
            self._write()

    def remove_stale_fits(self):
        """Remove the fits of an earlier run (those the marker lists) that this run did
        not save again; every other folder in ``fits/`` is left and returned.

        Returns
        -------
        list of str
            The fit folders left as they are, with what kept them.
        """
        for rel in sorted(self.fits - self.claimed_fits):
            left = remove_saved_fit(self.path / rel)
            if left:
                shown = ", ".join(left[:3]) + (" ..." if len(left) > 3 else "")
                self.untouched.append(f"{rel} (of an earlier run; holds files of yours: {shown})")
            self.fits.discard(rel)
        fits = self.path / FITS_DIR
        named = {u.split(" ", 1)[0] for u in self.untouched}
        if fits.is_dir():
            for sub in sorted(fits.iterdir()):
                rel = f"{FITS_DIR}/{sub.name}"
                if rel not in self.claimed_fits and rel not in named:
                    self.untouched.append(f"{rel} (not written by bayesmix)")
        self._write()
        return self.untouched

    def finish(self):
        """After the report: remove the report files of an earlier run that this one did
        not write again, and leave the marker listing exactly what bayesmix owns."""
        for rel in sorted(self.files - self.claimed_files):
            target = self.path / rel
            if target.is_file() or target.is_symlink():
                target.unlink()
        self.files = set(self.claimed_files)
        self._write()

    def _write(self):
        self.path.mkdir(parents=True, exist_ok=True)
        marker = {
            "format": _FORMAT,
            "files": sorted(self.files),
            "fits": sorted(self.fits),
        }
        staged = self.path / f"{REPORT_MARKER}.tmp-{secrets.token_hex(6)}"
        staged.write_text(json.dumps(marker, indent=1) + "\n")
        os.replace(staged, self.path / REPORT_MARKER)
        self.found = True


def _exists(p):
    return p.exists() or p.is_symlink()


def _empty_dir(p):
    return p.is_dir() and not p.is_symlink() and not any(p.iterdir())
