"""Replacing an export: only its own files, never a mix of two exports, one export at a time, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from export_helpers import make_kwargs, siblings, snapshot

from cellucid_nb.exporter.locking import ExportBusyError, ExportLock
from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.format.leftovers import find_leftovers
from cellucid_nb.format.reader import read_export
from cellucid_nb.format.spec import SIDECAR_FILE
from cellucid_nb.format.validator import validate_export

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
N = 200


def _user_files(out: Path) -> dict[str, bytes]:
    files = {"my_analysis.ipynb": b'{"cells": []}', "figures/fig1.png": b"\x89PNG...", "obs/notes.txt": b"mine"}
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return files


def _fresh(tmp_path: Path, **kw) -> dict[str, bytes]:
    """The bytes a fresh export of ``kw`` gives (same folder name, so the same dataset id)."""
    elsewhere = Path(tempfile.mkdtemp(prefix="fresh-", dir=tmp_path.parent))  # not beside out_dir
    return snapshot(prepare(out_dir=elsewhere / "export", **kw).path)


# -- ownership -------------------------------------------------------------------------------------
@pytest.mark.parametrize("force", [True, False])
def test_replace_keeps_the_users_files_and_reports_them(force: bool, tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    mine = _user_files(out)
    kw = make_kwargs(n=N, seed=9)
    with pytest.warns(UserWarning, match=r"kept 3 file\(s\) .* that no export wrote .*figures/fig1.png.*my_analysis.ipynb.*obs/notes.txt"):
        result = prepare(out_dir=out, force=force, **kw)
    files = snapshot(out)
    for rel, data in mine.items():
        assert files.pop(rel) == data
    assert files == _fresh(tmp_path, **kw)  # exactly the new export besides the user's files
    assert any("no export wrote" in w for w in result.warnings)
    assert siblings(out) == ["export"]


def test_replace_deletes_the_old_exports_files_it_no_longer_writes(tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    kw = make_kwargs(n=N)
    kw.update(gene_expression=None, var=None, connectivities=None)
    prepare(out_dir=out, force=True, **kw)
    assert not (out / "var").exists() and not (out / "connectivity").exists()
    assert snapshot(out) == _fresh(tmp_path, **kw)


def test_export_without_sidecar_owns_its_layout_only(tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    (out / SIDECAR_FILE).unlink()  # like an export of cellucid 0.0.9
    (out / "README.md").write_text("keep me")
    (out / "obs" / "notes.txt").write_text("mine too")
    kw = make_kwargs(n=N, seed=4)
    with pytest.warns(UserWarning, match=r"kept 2 file\(s\).*README.md.*obs/notes.txt"):
        prepare(out_dir=out, force=True, **kw)
    files = snapshot(out)
    assert files.pop("README.md") == b"keep me" and files.pop("obs/notes.txt") == b"mine too"
    assert files == _fresh(tmp_path, **kw)


def test_user_file_where_the_new_export_writes_is_refused_before_changes(tmp_path: Path) -> None:
    out = tmp_path / "export"
    kw = make_kwargs(n=N)
    kw.update(gene_expression=None, var=None)
    prepare(out_dir=out, **kw)
    (out / "var").write_text("a file of the user's named like the genes folder")
    before = snapshot(out)
    with pytest.raises(FileExistsError, match=r"holds 1 file\(s\) no export wrote where this export writes its own: \['var'\]"):
        prepare(out_dir=out, force=True, **make_kwargs(n=N))
    assert snapshot(out) == before and siblings(out) == ["export"]


@pytest.mark.parametrize("force", [True, False])
def test_non_empty_folder_without_an_export_is_refused(force: bool, tmp_path: Path) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match=r"is not empty and holds no Cellucid export \(e.g. \['thesis.tex'\]\); expected a new or empty folder"):
        prepare(out_dir=out, force=force, **make_kwargs(n=N))
    assert snapshot(out) == {"thesis.tex": b"precious"} and siblings(out) == ["project"]


# -- never a mix of two exports ------------------------------------------------------------------------
@pytest.mark.parametrize("force", [False, True])
def test_same_settings_other_data_gives_exactly_the_second_export(force: bool, tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N, seed=1))
    second = make_kwargs(n=N, seed=2)
    result = prepare(out_dir=out, force=force, **second)
    assert snapshot(out) == _fresh(tmp_path, **second)
    reader = read_export(out)
    x = second["gene_expression"].toarray()
    for j, gene in enumerate(reader.genes):
        lo, hi, _bits = reader.gene_info(gene)
        np.testing.assert_allclose(reader.gene(gene), x[:, j], atol=(hi - lo) / 254 + 1e-6)
    assert validate_export(out, checksums=True) == []
    if not force:
        assert result.skipped == sorted(result.skipped) and all(not s.endswith(".json") for s in result.skipped)


def test_only_byte_equal_files_are_reused(tmp_path: Path) -> None:
    out = tmp_path / "export"
    first = make_kwargs(n=N, seed=1)
    prepare(out_dir=out, **first)
    second = make_kwargs(n=N, seed=1)
    x = second["gene_expression"].tocsc()
    second["gene_expression"] = x[:, [0, 1, 2, 5, 4, 3, 6, 7, 8, 9, 10, 11]].tocsr()  # G3 and G5 swap their values
    result = prepare(out_dir=out, **second)
    changed = {"var/G3.values.u8.gz", "var/G5.values.u8.gz"}
    assert not changed & set(result.skipped) and "var/G4.values.u8.gz" in result.skipped
    assert snapshot(out) == _fresh(tmp_path, **second)


def test_checksums_detect_a_payload_of_another_export(tmp_path: Path) -> None:
    a = prepare(out_dir=tmp_path / "a" / "export", **make_kwargs(n=N, seed=1)).path
    b = prepare(out_dir=tmp_path / "b" / "export", **make_kwargs(n=N, seed=2)).path
    (b / "var" / "G0.values.u8.gz").write_bytes((a / "var" / "G0.values.u8.gz").read_bytes())
    problems = validate_export(b, checksums=True)
    assert [(p.rule, "var/G0.values.u8.gz" in p.detail) for p in problems] == [("sidecar_mismatch", True)]


def test_manifest_naming_a_file_the_sidecar_does_not_list_is_reported(tmp_path: Path) -> None:
    out = prepare(out_dir=tmp_path / "export", **make_kwargs(n=N)).path
    side = json.loads((out / SIDECAR_FILE).read_text())
    del side["files"]["var/G1.values.u8.gz"]
    (out / SIDECAR_FILE).write_text(json.dumps(side))
    problems = validate_export(out)
    assert [p.rule for p in problems] == ["sidecar_mismatch"] and "var/G1.values.u8.gz" in problems[0].detail


# -- one export at a time ------------------------------------------------------------------------------
def test_second_export_in_another_thread_fails_at_once(tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    before = snapshot(out)
    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def progress(event) -> None:
        if event.phase == "obs":
            inside.set()
            release.wait()

    def first() -> None:
        try:
            prepare(out_dir=out, force=True, progress=progress, **make_kwargs(n=N, seed=3))
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(60)
    try:
        with pytest.raises(ExportBusyError, match=rf"another export is writing to '{out}' \(process {os.getpid()}"):
            prepare(out_dir=out, force=True, **make_kwargs(n=N, seed=4))
        assert snapshot(out) == before  # the second call changed nothing
    finally:
        release.set()
        thread.join()
    assert errors == []
    assert snapshot(out) == _fresh(tmp_path, **make_kwargs(n=N, seed=3))
    assert siblings(out) == ["export"]  # lock file removed


def test_lock_is_free_again_after_a_failed_export(tmp_path: Path) -> None:
    out = tmp_path / "export"
    kw = make_kwargs(n=N)
    kw["obs"] = kw["obs"].copy()
    (tmp_path / "export").mkdir()
    (out / "x").write_text("y")
    with pytest.raises(ValueError):
        prepare(out_dir=out, **kw)
    with ExportLock(out):
        pass
    assert siblings(out) == ["export"]


_CHILD = """
import sys
sys.path[:0] = [{root!r}, {here!r}]
from cellucid_nb.exporter import swap
from cellucid_nb.exporter.prepare import prepare
from export_helpers import make_kwargs

stop_at = sys.argv[2]

def block():
    print("ready", flush=True)
    sys.stdin.readline()  # killed here

def progress(event):
    if stop_at == "obs" and event.phase == "obs":
        block()

rename = swap._rename
def patched_rename(src, dst):
    rename(src, dst)
    if stop_at == "between" and ".old-" in dst.name:
        block()
swap._rename = patched_rename

finish = swap.finish_replace
def patched_finish(*args):
    if stop_at == "finish":
        block()
    return finish(*args)
swap.finish_replace = patched_finish

prepare(out_dir=sys.argv[1], force=True, progress=progress, **make_kwargs(n={n}, seed=int(sys.argv[3])))
print("done", flush=True)
"""


def _start_child(out: Path, stop_at: str, seed: int = 7) -> subprocess.Popen:
    code = _CHILD.format(root=str(ROOT), here=str(HERE), n=N)
    child = subprocess.Popen([sys.executable, "-c", code, str(out), stop_at, str(seed)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"  # the event, not a sleep
    return child


def _kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()  # reaped: its pid is no longer alive


def test_export_in_another_process_fails_at_once_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "export"
    child = _start_child(out, "obs")
    try:
        with pytest.raises(ExportBusyError, match=rf"another export is writing to .*process {child.pid}"):
            prepare(out_dir=out, **make_kwargs(n=N))
    finally:
        _kill(child)


def test_kill_during_staging_leaves_a_folder_the_next_export_removes(tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    before = snapshot(out)
    child = _start_child(out, "obs")
    _kill(child)
    left = find_leftovers(out)
    assert len(left.staging) == 1 and str(child.pid) in left.staging[0].name
    assert snapshot(out) == before  # the killed export never touched out_dir
    problems = validate_export(out)
    assert [p.rule for p in problems] == ["leftover_folder"] and "no longer running" in problems[0].detail
    kw = make_kwargs(n=N, seed=8)
    with pytest.warns(UserWarning, match=rf"removed stale staging folder .*staging-{child.pid}-.* left by process {child.pid}, no longer running"):
        result = prepare(out_dir=out, force=True, **kw)
    assert any("removed stale staging folder" in w for w in result.warnings)
    assert siblings(out) == ["export"] and snapshot(out) == _fresh(tmp_path, **kw)


def test_kill_between_the_two_renames_restores_the_previous_export(tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    mine = _user_files(out)
    before = snapshot(out)
    child = _start_child(out, "between")
    _kill(child)
    assert not out.exists() and len(find_leftovers(out).old) == 1
    with pytest.raises(FileNotFoundError, match=r"is not a folder; .*\.export\.old-.* holds a previous export renamed aside"):
        validate_export(out)
    kw = make_kwargs(n=N, seed=8)
    with pytest.warns(UserWarning, match=r"restored the previous export from \.export\.old-.* to export: a replace was interrupted"):
        prepare(out_dir=out, force=True, **kw)
    files = snapshot(out)
    assert {rel: files.pop(rel) for rel in mine} == mine  # the user's files survived both
    assert files == _fresh(tmp_path, **kw) and siblings(out) == ["export"]
    assert before.keys() - files.keys() == set(mine)


def test_interrupted_replace_is_restored_into_an_empty_folder_made_meanwhile(tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    before = snapshot(out)
    _kill(_start_child(out, "between"))
    out.mkdir()  # e.g. the user recreated the folder after the crash
    with pytest.warns(UserWarning, match=r"restored the previous export"):
        prepare(out_dir=out, **make_kwargs(n=N))  # same inputs, force=False: reuses every payload
    assert snapshot(out) == before and siblings(out) == ["export"]


def test_kill_after_the_swap_finishes_the_replace(tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    mine = _user_files(out)
    child = _start_child(out, "finish", seed=7)
    _kill(child)
    new = make_kwargs(n=N, seed=7)
    assert snapshot(out) == _fresh(tmp_path, **new)  # the new export is in place, the user's files aside
    problems = validate_export(out)
    assert [p.rule for p in problems] == ["leftover_folder"] and ".export.old-" in problems[0].detail
    with pytest.warns(UserWarning, match=r"finished an interrupted replace: removed the previous export in \.export\.old-.* and moved 3 file\(s\)"):
        prepare(out_dir=out, **new)  # force=False, same settings: everything reused
    files = snapshot(out)
    assert {rel: files.pop(rel) for rel in mine} == mine
    assert files == _fresh(tmp_path, **new) and siblings(out) == ["export"]


def test_staging_folder_of_a_running_process_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "export"
    holder = subprocess.Popen([sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.readline()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        staging = tmp_path / f".export.staging-{holder.pid}-abcdefgh"
        staging.mkdir()
        with pytest.warns(UserWarning, match=rf"kept staging folder .*: its process {holder.pid} is still running"):
            prepare(out_dir=out, **make_kwargs(n=N))
        assert staging.is_dir()
        (problem,) = validate_export(out)
        assert problem.rule == "leftover_folder" and f"export in progress (process {holder.pid}, running)" in problem.detail
    finally:
        _kill(holder)


def test_export_of_an_anndata_replaces_its_own_export_and_keeps_the_users_files(tmp_path: Path) -> None:
    import anndata

    from cellucid_nb.adata.exporting import export

    def adata(seed: int) -> anndata.AnnData:
        kw = make_kwargs(n=N, seed=seed)
        obs = kw["obs"].set_axis([f"c{i}" for i in range(N)])
        return anndata.AnnData(X=kw["gene_expression"], obs=obs, var=kw["var"],
                               obsm={"X_umap": kw["X_umap_2d"], "X_pca": kw["latent_space"]})

    out = tmp_path / "export"
    export(adata(1), out_dir=out, created_at="2024-01-01T00:00:00Z")
    mine = _user_files(out)
    with pytest.warns(UserWarning, match=r"kept 3 file\(s\)"):
        export(adata(2), out_dir=out, created_at="2024-01-01T00:00:00Z")  # force defaults to replacing our export
    files = snapshot(out)
    assert {rel: files.pop(rel) for rel in mine} == mine
    assert validate_export(out, checksums=True) == [] and siblings(out) == ["export"]
    x = adata(2).X.toarray()
    reader = read_export(out)
    lo, hi, _bits = reader.gene_info("G3")
    np.testing.assert_allclose(reader.gene("G3"), x[:, 3], atol=(hi - lo) / 254 + 1e-6)


def test_a_users_file_that_cannot_go_back_stays_aside_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cellucid_nb.exporter.runner as runner

    out = tmp_path / "export"
    kw = make_kwargs(n=N)
    kw.update(gene_expression=None, var=None)
    prepare(out_dir=out, **kw)
    (out / "var").mkdir()
    (out / "var" / "G0.values.u8.gz").write_bytes(b"user bytes")  # appears where the next export writes
    monkeypatch.setattr(runner, "conflicts", lambda foreign, new: [])  # as if it appeared during the export
    with pytest.warns(UserWarning, match=r"1 file\(s\) no export wrote could not be moved back .*var/G0.values.u8.gz"):
        prepare(out_dir=out, force=True, **make_kwargs(n=N))
    (aside,) = find_leftovers(out).old
    assert (aside / "var" / "G0.values.u8.gz").read_bytes() == b"user bytes"  # never deleted
    assert sorted(p.name for p in aside.rglob("*")) == ["G0.values.u8.gz", "var"]


def test_repair_without_exporting(tmp_path: Path) -> None:
    from cellucid_nb.exporter.swap import repair

    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    before = snapshot(out)
    _kill(_start_child(out, "between"))
    assert not out.exists()
    (message,) = [m for m in repair(out) if m.startswith("restored")]
    assert "a replace was interrupted between its two renames" in message
    assert snapshot(out) == before and siblings(out) == ["export"] and validate_export(out) == []
    assert repair(out) == []  # nothing left to do
