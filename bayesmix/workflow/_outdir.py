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

import json
import os
import secrets
from pathlib import Path

from bayesmix.workflow._io import check_save_target, remove_saved_fit
from bayesmix.workflow._lock import LOCK_FILE, FolderInUseError, lock_folder

__all__ = [
    "FIGURES",
    "LOCK_FILE",
    "REPORT_MARKER",
    "FolderInUseError",
    "ReportFolder",
    "lock_folder",
]

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
    "ppc.png",
    "dp_fit.png",
    "n_clusters.png",
)
_FORMAT = "bayesmix-report"


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
