"""Spill folders of a killed export (format/leftovers.py, exporter/swap.py's recover): reported, then removed.

``SpillDir`` (adata/spill.py) names its folder ``<SPILL_PREFIX><pid>-<random>`` beside the
export; a process killed with SIGKILL cannot remove it. The validator lists the folders of
processes no longer running, and the next export into the same parent removes them; a
running process's folder, a link, or anything not named so is never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from export_helpers import make_kwargs, snapshot

from cellucid_nb.adata import spill
from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.format import leftovers
from cellucid_nb.format.leftovers import SPILL_PREFIX, find_leftovers, pid_alive
from cellucid_nb.format.validator import validate_export

ROOT = Path(__file__).resolve().parents[2]
N = 200


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    return child.pid


def _folder(path: Path, n_bytes: int) -> Path:
    path.mkdir()
    (path / "records-0.bin").write_bytes(b"x" * n_bytes)
    return path


def test_spill_prefix_has_one_home():
    assert spill.SPILL_PREFIX is leftovers.SPILL_PREFIX == ".cellucid_nb-spill-"
    source = (ROOT / "cellucid_nb" / "adata" / "spill.py").read_text()
    assert "from ..format.leftovers import SPILL_PREFIX" in source and '"' + SPILL_PREFIX + '"' not in source


def test_stale_spill_folders_are_reported_then_removed_and_nothing_else(tmp_path):
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    dead = _dead_pid()
    stale = _folder(tmp_path / f"{SPILL_PREFIX}{dead}-1a2b3c-q9", 1000)
    running = _folder(tmp_path / f"{SPILL_PREFIX}{os.getpid()}-4d5e6f-w1", 10)  # this process: alive
    no_dot = _folder(tmp_path / f"cellucid_nb-spill-{dead}-1a2b3c-q9", 10)
    no_pid = _folder(tmp_path / f"{SPILL_PREFIX}x{dead}-1a2b3c", 10)
    target = _folder(tmp_path / "elsewhere", 10)
    link = tmp_path / f"{SPILL_PREFIX}{dead}-aaaaaa-link"
    link.symlink_to(target, target_is_directory=True)
    a_file = tmp_path / f"{SPILL_PREFIX}{dead}-bbbbbb-file"
    a_file.write_bytes(b"not a folder")
    kept = [running, no_dot, no_pid, target, target / "records-0.bin", link, a_file]

    found = find_leftovers(out)
    assert found.spill == [stale] and found.staging == [] and found.old == [] and bool(found)
    problems = validate_export(out)
    assert [p.rule for p in problems] == ["leftover_folder"]
    assert f"spill folder {stale.name} of an export that did not finish (process {dead}, no longer running)" in \
        problems[0].detail
    assert stale.is_dir()  # reporting removes nothing

    kw = make_kwargs(n=N, seed=4)
    with pytest.warns(UserWarning, match=rf"removed stale spill folder {stale.name} \(1,000 bytes\) left by "
                                         rf"process {dead}, no longer running"):
        result = prepare(out_dir=out, force=True, **kw)
    assert sum("removed stale spill folder" in w for w in result.warnings) == 1
    assert not stale.exists() and all(os.path.lexists(p) for p in kept)
    assert link.is_symlink() and (target / "records-0.bin").read_bytes() == b"x" * 10
    assert not find_leftovers(out)


def test_a_running_exports_spill_folder_is_not_a_leftover(tmp_path):
    with spill.SpillDir(tmp_path) as folder:
        assert folder.path.name.startswith(f"{SPILL_PREFIX}{os.getpid()}-")
        assert find_leftovers(tmp_path / "export").spill == []
        prepare(out_dir=tmp_path / "export", **make_kwargs(n=N))
        assert folder.path.is_dir()


_CHILD = """
import sys
sys.path[:0] = [{root!r}]
import anndata
from cellucid_nb.adata import streaming
from cellucid_nb.adata.exporting import export
from cellucid_nb.adata.plan import ExportPlan
from cellucid_nb.adata.sources import row_source

streaming.MIN_CHUNK_ROWS = 128
backed = anndata.read_h5ad(sys.argv[1], backed="r")
plan = ExportPlan.from_anndata(backed).replace(genes=None)
probe = streaming.choose_path(row_source(backed.X), backed.n_vars, 2**50, n_workers=2,
                              per_cell_bytes=streaming.per_cell_bytes(backed, plan), payload_itemsize=1)

def progress(event):
    if event.phase == "genes":
        print("ready", flush=True)
        sys.stdin.readline()  # killed here, the spill on disk

export(backed, plan, sys.argv[2], memory_limit=probe.fixed_bytes + probe.load_bytes // 3, progress=progress)
"""


def test_kill_during_a_spilled_export_leaves_a_folder_the_next_export_removes(tmp_path):
    from benchmarks import synthetic

    h5ad = tmp_path / "data.h5ad"
    synthetic.make_anndata(2000, 60, seed=1).write_h5ad(h5ad)
    out = tmp_path / "exports" / "export"
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(root=str(ROOT)), str(h5ad), str(out)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"  # the event, not a sleep
    (spilled,) = [p for p in out.parent.iterdir() if p.name.startswith(f"{SPILL_PREFIX}{child.pid}-")]
    assert any(p.stat().st_size for p in spilled.iterdir())
    assert find_leftovers(out).spill == []  # still running: in use
    child.send_signal(signal.SIGKILL)
    child.wait()  # reaped: its pid is no longer alive
    child.stdin.close()
    child.stdout.close()
    left = find_leftovers(out)
    assert left.spill == [spilled] and len(left.staging) == 1
    with pytest.raises(FileNotFoundError, match=rf"spill folder {spilled.name} of an export that did not finish"):
        validate_export(out)  # never finished: no export, the leftovers named
    kw = make_kwargs(n=N, seed=5)
    with pytest.warns(UserWarning) as caught:
        prepare(out_dir=out, **kw)
    messages = sorted(str(w.message).split(": ", 1)[1] for w in caught)
    assert len(messages) == 2
    assert messages[0].startswith(f"removed stale spill folder {spilled.name} (")
    assert messages[0].endswith(f"bytes) left by process {child.pid}, no longer running")
    assert messages[1].startswith(f"removed stale staging folder .export.staging-{child.pid}-")
    assert sorted(p.name for p in out.parent.iterdir()) == ["export"]
    assert snapshot(out) == snapshot(prepare(out_dir=tmp_path / "fresh" / "export", **kw).path)


def test_a_spill_dir_of_its_own_is_cleaned_when_the_next_spill_starts_there(tmp_path):
    # export(..., spill_dir=...) may put the spill away from the export: its leftovers are removed there too.
    custom = tmp_path / "scratch"
    custom.mkdir()
    dead = _dead_pid()
    stale = _folder(custom / f"{SPILL_PREFIX}{dead}-1a2b3c-q9", 100)
    running = _folder(custom / f"{SPILL_PREFIX}{os.getpid()}-4d5e6f-w1", 10)
    mine = _folder(custom / "notes", 10)
    with pytest.warns(UserWarning, match=rf"removed stale spill folder {SPILL_PREFIX}{dead}-1a2b3c-q9 \(100 bytes\)"):
        folder = spill.SpillDir(custom)
    try:
        assert not stale.exists() and running.is_dir() and mine.is_dir()
        assert folder.path.parent == custom and folder.path.name.startswith(f"{SPILL_PREFIX}{os.getpid()}-")
    finally:
        folder.close()
    assert not folder.path.exists() and running.is_dir()
