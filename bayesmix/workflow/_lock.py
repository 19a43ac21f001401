"""One bayesmix process at a time in a folder: the lock of :func:`lock_folder`.

:func:`lock_folder` creates ``.bayesmix-lock`` in the folder atomically (``os.open``
with ``O_CREAT | O_EXCL``) and removes it when the block ends, also on an error or
Ctrl-C. A second process asking for a folder that a live process holds is refused at
once, naming the other process (pid, host, start time, command). A lock whose process
is gone (a dead pid on this host, or a pid since reused by another process) is stale:
it is removed with a note. A lock from another host cannot be checked and is never
removed. :func:`check_not_held` refuses a folder inside one that another process
holds (``bm.save_fit`` into a running report's ``fits/``). The pipeline holds its
``--out`` folder, and :func:`bayesmix.save_fit` the folder it writes.
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

__all__ = ["LOCK_FILE", "FolderInUseError", "check_not_held", "lock_folder"]

LOCK_FILE = ".bayesmix-lock"


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


def check_not_held(path, name="path"):
    """Refuse ``path`` when it or a folder above it is held by another live process.

    A lock held by this process (a pipeline saving into its own ``--out``) is fine.

    Raises
    ------
    FolderInUseError

    Examples
    --------
    >>> import tempfile
    >>> check_not_held(tempfile.mkdtemp())
    """
    here = socket.gethostname()
    for folder in (Path(path), *Path(path).parents):
        lock = folder / LOCK_FILE
        if not lock.is_file():
            continue
        holder = _read_lock(lock)
        if holder is None:
            continue
        if holder["host"] == here and holder["pid"] == os.getpid():
            continue
        if holder["host"] == here and not _alive(holder["pid"], holder.get("process_start")):
            continue
        raise FolderInUseError(
            f"{name} {str(path)!r} is inside {str(folder)!r}, which another bayesmix run "
            f"holds ({_holder(holder)}); writing into it would mix with that run's results. "
            f"Wait for it to finish, or choose a folder outside it."
        )
