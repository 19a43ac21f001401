"""Output folders are safe: one run at a time (a lock file, refused before any fit,
stale locks recovered), and bayesmix replaces only the files its markers list (the
fit folder's ``.bayesmix-fit.json``, the report folder's ``.bayesmix-report``), never a
file of the user's, nor one inside a folder it does not own."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import bayesmix as bm
from bayesmix.workflow import _pipeline as pipeline
from bayesmix.workflow._cli import main
from bayesmix.workflow._io import MARKER_FILE, load_fit, save_fit
from bayesmix.workflow._outdir import LOCK_FILE, REPORT_MARKER

ROOT = Path(__file__).resolve().parents[1]
FIT = ["fit", "--no-mcmc", "--estimate", "ml", "--seed", "3", "--quiet"]


def cli(capsys, *argv):
    rc = main(list(argv))
    _, err = capsys.readouterr()
    return rc, " ".join(err.split())


@pytest.fixture(scope="module")
def em_fit():
    return bm.fit_em(bm.load_old_faithful(), 2, random_seed=0)


@pytest.fixture(scope="module")
def tree():
    from bayesmix.mcmc._trace import from_arrays

    return from_arrays(
        np.full((1, 3, 1), 1.0), np.zeros((1, 3, 1, 1)), np.ones((1, 3, 1, 1, 1)), np.zeros((4, 1))
    )


def _no_fit(monkeypatch):
    """Make any fitting work fail the test: the refusal must come before it."""

    def boom(run):
        raise AssertionError("a fitting stage ran")

    monkeypatch.setattr(pipeline, "_kmeans_stage", boom)


# ---------------------------------------------------------------------------- the lock
@pytest.fixture
def holder(tmp_path):
    """A second, live process holding the lock of tmp_path/'o' until it is told to go."""
    out = tmp_path / "o"
    code = (
        "import sys\n"
        "from bayesmix.workflow._outdir import lock_folder\n"
        f"with lock_folder({str(out)!r}):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--holder-tag"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        yield out, proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_a_second_run_into_a_held_folder_is_refused_before_any_fit(holder, capsys, monkeypatch):
    out, proc = holder
    with monkeypatch.context() as mp:
        _no_fit(mp)
        rc, err = cli(capsys, *FIT, "--k", "1", "--out", str(out))
    assert rc == 2, err
    for frag in (
        "in use by another bayesmix run",
        f"pid {proc.pid} on host {socket.gethostname()}",
        "started ",
        "--holder-tag",  # the other run's command line
        "choose another --out",
        LOCK_FILE,
    ):
        assert frag in err, (frag, err)
    assert not (out / "report.md").exists()
    # once the other run has ended (its lock released), the folder is free
    proc.stdin.close()
    proc.wait(timeout=60)
    assert not (out / LOCK_FILE).exists()
    rc, err = cli(capsys, *FIT, "--k", "1", "--out", str(out))
    assert rc == 0, err
    assert (out / "report.md").exists()


@pytest.mark.parametrize("inside", [False, True])
def test_save_fit_refuses_a_folder_another_process_holds(holder, inside):
    from bayesmix.workflow._lock import FolderInUseError

    out, proc = holder
    target = out / "fits" / "mine" if inside else out
    with pytest.raises(FolderInUseError, match=f"pid {proc.pid}"):
        bm.save_fit(target, config={"K": 1})
    assert not (target / "config.json").exists()
    proc.stdin.close()
    proc.wait(timeout=60)
    bm.save_fit(target, config={"K": 1})  # free once the holder has gone
    assert bm.load_fit(target).config == {"K": 1}
    assert not (target / LOCK_FILE).exists()  # released, and never listed as ours


def test_save_fit_holds_its_folder_while_writing(tmp_path, monkeypatch):
    from bayesmix.workflow import _io

    seen = []
    real = _io._save

    def spy(path, *args):
        seen.append((path / LOCK_FILE).is_file())
        return real(path, *args)

    monkeypatch.setattr(_io, "_save", spy)
    bm.save_fit(tmp_path / "f", config={"K": 1})
    bm.save_fit(tmp_path / "f", config={"K": 2}, overwrite=True)  # the lock is not "a file"
    assert seen == [True, True]
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert names == [".bayesmix-fit.json", "config.json"]


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


def test_a_stale_lock_is_recovered_with_a_note(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    pid = _dead_pid()
    stale = {"pid": pid, "host": socket.gethostname(), "started": "2001-01-01T00:00:00+00:00"}
    (out / LOCK_FILE).write_text(json.dumps(stale))
    rc, err = cli(capsys, "fit", "--no-mcmc", "--k", "1", "--seed", "3", "--out", str(out))
    assert rc == 0, err
    assert "removed the stale lock" in err and f"pid {pid}" in err
    assert "removed the stale lock" in (out / "report.md").read_text()
    assert not (out / LOCK_FILE).exists()


def test_a_lock_of_another_host_is_refused(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    other = {"pid": 1, "host": "not-" + socket.gethostname(), "started": "x", "command": "c"}
    (out / LOCK_FILE).write_text(json.dumps(other))
    _no_fit(monkeypatch)
    rc, err = cli(capsys, *FIT, "--k", "1", "--out", str(out))
    assert rc == 2 and "cannot check a process on another host" in err, err
    assert json.loads((out / LOCK_FILE).read_text()) == other


def test_the_lock_is_held_during_the_run_and_released_on_an_error(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    seen = []

    def fail(run):
        seen.append(json.loads((out / LOCK_FILE).read_text())["pid"])
        raise ValueError("stage failed")

    monkeypatch.setattr(pipeline, "_kmeans_stage", fail)
    rc, err = cli(capsys, *FIT, "--k", "1", "--out", str(out))
    assert rc == 2 and "stage failed" in err
    assert seen == [os.getpid()]
    assert not out.exists()  # created for the lock, removed with it (nothing written)


# ---------------------------------------------------------------------------- save_fit
def test_overwrite_refuses_a_users_config_beside_a_saved_em(tmp_path, em_fit):
    path = save_fit(tmp_path / "f", em_result=em_fit)
    (path / "config.json").write_text('{"mine": true}')
    em_before = (path / "em.json").read_text()
    with pytest.raises(ValueError, match=r"config\.json.*was not written by bayesmix\.save_fit"):
        save_fit(path, em_result=em_fit, config={"K": 2}, overwrite=True)
    assert (path / "config.json").read_text() == '{"mine": true}'
    assert (path / "em.json").read_text() == em_before


@pytest.mark.parametrize("again", ["posterior", "config only"])
def test_overwrite_never_deletes_a_users_file_inside_posterior_zarr(tmp_path, tree, again):
    path = save_fit(tmp_path / "f", idata=tree, config={"K": 1})
    mine = path / "posterior.zarr" / "my_notes.txt"
    mine.write_text("keep me")
    kwargs = {"idata": tree} if again == "posterior" else {}
    with pytest.raises(ValueError, match=r"my_notes\.txt.*did not write"):
        save_fit(path, config={"K": 2}, overwrite=True, **kwargs)
    assert mine.read_text() == "keep me"
    assert load_fit(path).config == {"K": 1}


def test_a_hand_written_tagged_em_json_does_not_make_a_folder_ours(tmp_path, em_fit):
    path = tmp_path / "f"
    path.mkdir()
    (path / "em.json").write_text(json.dumps({"format": "bayesmix-fit", "em": {}}))
    (path / "config.json").write_text('{"mine": true}')
    with pytest.raises(ValueError, match=r"was not written by bayesmix\.save_fit"):
        save_fit(path, em_result=em_fit, overwrite=True)
    assert (path / "config.json").read_text() == '{"mine": true}'


def test_a_crash_while_writing_the_posterior_leaves_the_old_one_whole(tmp_path, tree, monkeypatch):
    path = save_fit(tmp_path / "f", idata=tree, config={"K": 1})
    real = xr.DataTree.to_zarr

    def crash(self, store, *args, **kwargs):  # mode="w" clears the store, then dies
        shutil.rmtree(store, ignore_errors=True)
        Path(store).mkdir()
        (Path(store) / "zarr.json").write_text("{")
        raise OSError("disk full")

    monkeypatch.setattr(xr.DataTree, "to_zarr", crash)
    with pytest.raises(OSError, match="disk full"):
        save_fit(path, idata=tree.copy(), config={"K": 2}, overwrite=True)
    back = load_fit(path)  # the earlier posterior, whole
    xr.testing.assert_identical(
        back.idata["posterior"].to_dataset(), tree["posterior"].to_dataset()
    )
    monkeypatch.setattr(xr.DataTree, "to_zarr", real)
    save_fit(path, idata=tree, config={"K": 3}, overwrite=True)  # the leftovers are ours
    assert sorted(p.name for p in path.iterdir()) == [MARKER_FILE, "config.json", "posterior.zarr"]
    assert load_fit(path).config == {"K": 3}


# ---------------------------------------------------------------------------- report folder
def test_a_users_report_md_that_looks_like_ours_is_not_overwritten(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    (out / "report.md").write_text("# bayesmix report: my own notes\n")
    _no_fit(monkeypatch)
    rc, err = cli(capsys, *FIT, "--k", "1", "--out", str(out))
    assert rc == 2 and "report.md" in err and "bayesmix did not write" in err, err
    assert (out / "report.md").read_text() == "# bayesmix report: my own notes\n"


def test_a_rerun_with_a_smaller_grid_removes_its_old_fits_and_names_the_users(tmp_path, capsys):
    out = tmp_path / "o"
    rc, err = cli(capsys, *FIT, "--k", "1-3", "--out", str(out))
    assert rc == 0, err
    assert (out / "fits" / "full_K3").is_dir()
    mine = out / "fits" / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    rc, err = cli(capsys, *FIT, "--k", "1-2", "--out", str(out))
    assert rc == 0, err
    assert sorted(p.name for p in (out / "fits").iterdir()) == ["full_K1", "full_K2", "mine"]
    assert (mine / "notes.txt").read_text() == "keep me"
    marker = json.loads((out / REPORT_MARKER).read_text())
    assert marker["fits"] == ["fits/full_K1", "fits/full_K2"]
    text = (out / "report.md").read_text()
    assert "`fits/mine` (not written by bayesmix)" in text and "full_K3" not in text


def test_report_files_of_an_earlier_run_go_a_users_figure_stays(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    rc, err = cli(capsys, *FIT, "--k", "1-2", "--out", str(out))
    assert rc == 0, err
    # as if the earlier run had sampled: its trace plot, listed in the marker
    marker = json.loads((out / REPORT_MARKER).read_text())
    marker["files"].append("figures/rank.png")
    (out / REPORT_MARKER).write_text(json.dumps(marker))
    (out / "figures" / "rank.png").write_bytes(b"old")
    (out / "figures" / "mine.png").write_bytes(b"mine")
    rc, err = cli(capsys, *FIT, "--k", "1-2", "--out", str(out))
    assert rc == 0, err
    assert not (out / "figures" / "rank.png").exists()
    assert (out / "figures" / "mine.png").read_bytes() == b"mine"
    # a figure of the user's where the report would write one is refused before fitting
    (out / "figures" / "rank.png").write_bytes(b"mine too")
    _no_fit(monkeypatch)
    rc, err = cli(capsys, *FIT, "--k", "1-2", "--out", str(out))
    assert rc == 2 and "figures/rank.png" in err and "bayesmix did not write" in err, err
    assert (out / "figures" / "rank.png").read_bytes() == b"mine too"
