"""publish(): the site's files, links, staging, guardrails, --zip, bad input refused before writing, the CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cellucid_nb.format.listing import export_files
from cellucid_nb.format.validator import validate_export
from cellucid_nb.publishing import publish
from cellucid_nb.publishing import site as site_module
from cellucid_nb.publishing.page import STATIC_DIR

FIXTURES = Path(__file__).resolve().parent / "fixtures"
KEY = FIXTURES / "cellucid_0_0_9" / "gzip_q8"
INDEX = FIXTURES / "cellucid_0_9_2" / "gzip_q8_u8_2d3d"
V2 = FIXTURES / "cellucid_0_9_4" / "gzip_q8_u8_multi"


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def export(tmp_path):
    return shutil.copytree(KEY, tmp_path / "src" / "gzip_q8")


def test_one_export_becomes_a_site(export, tmp_path):
    before = snapshot(export)
    result = publish(export, tmp_path / "site", title="My <data>")
    site = tmp_path / "site"
    files = tree(site)
    assert set(files) == {"index.html", "datasets.json", "viewer/site.js", "viewer/viewer.css", "cellucid_nb.json"} | {
        f"gzip_q8/{rel}" for rel in export_files(export)} | {"gzip_q8/cellucid_nb.json"}
    for rel in export_files(export):
        assert files[f"gzip_q8/{rel}"] == (export / rel).read_bytes()
    assert files["viewer/site.js"] == (STATIC_DIR / "site.js").read_bytes()
    manifest = json.loads(files["datasets.json"])
    stats = json.loads((export / "dataset_identity.json").read_text())["stats"]
    assert manifest == {"version": 1, "default": "ref_gzip_q8",
                        "datasets": [{"id": "ref_gzip_q8", "path": "gzip_q8/", "name": "ref_gzip_q8",
                                      "n_cells": stats["n_cells"], "n_genes": stats["n_genes"]}]}
    page = files["index.html"].decode()
    assert "<title>My &lt;data&gt;</title>" in page and "<data>" not in page
    # every URL in the page is relative
    urls = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert urls and all(not u.startswith(("/", "http:", "https:", "//")) for u in urls if not u.startswith("data:")), urls
    assert result.n_files == len(files) and result.n_bytes == sum(len(b) for b in files.values())
    assert result.datasets == ["ref_gzip_q8"] and result.large_files == [] and result.warnings == []
    assert snapshot(export) == before, "the source was modified"
    # the site is itself a valid exports root
    assert validate_export(site) == [] or all(p.rule in {"gzip_header", "manifest_missing_key", "vector_basis_missing"}
                                              for p in validate_export(site))
    assert not list(tmp_path.glob(".site.*")), "staging folder left behind"


def test_payloads_are_copies_unless_link_is_asked(export, tmp_path, monkeypatch):
    payload = "obs/cell_type.codes.u8.gz"
    original = (export / payload).read_bytes()
    result = publish(export, tmp_path / "site")
    published = tmp_path / "site" / "gzip_q8" / payload
    assert result.linked == 0 and not os.path.samefile(export / payload, published)
    # a tool that rewrites a site file in place must not reach the export
    with open(published, "r+b") as handle:
        handle.write(b"\0" * 4)
    assert (export / payload).read_bytes() == original

    result = publish(export, tmp_path / "linked", link=True)
    assert os.path.samefile(export / payload, tmp_path / "linked" / "gzip_q8" / payload)
    assert result.linked == len(export_files(export))

    def no_links(*_a, **_k):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(site_module.os, "link", no_links)
    result = publish(export, tmp_path / "copied", link=True)
    copied = tmp_path / "copied" / "gzip_q8" / payload
    assert result.linked == 0 and not os.path.samefile(export / payload, copied)
    assert copied.read_bytes() == original


def test_every_layout_and_several_exports(tmp_path):
    src = tmp_path / "src"
    folders = [shutil.copytree(f, src / name) for f, name in ((KEY, "key"), (INDEX, "index"), (V2, "v2"))]
    result = publish(folders, tmp_path / "site")
    manifest = json.loads((tmp_path / "site" / "datasets.json").read_text())
    assert [d["path"] for d in manifest["datasets"]] == ["key/", "index/", "v2/"]
    assert manifest["default"] == result.datasets[0] == manifest["datasets"][0]["id"]
    for f, name in zip(folders, ("key", "index", "v2"), strict=True):
        for rel in export_files(f):
            assert (tmp_path / "site" / name / rel).read_bytes() == (f / rel).read_bytes()
    # an exports root: its datasets.json order (default first)
    (src / "datasets.json").write_text(json.dumps({"version": 1, "default": json.loads((folders[2] / "dataset_identity.json").read_text())["id"],
                                                    "datasets": [{"id": json.loads((f / "dataset_identity.json").read_text())["id"],
                                                                  "path": f"{f.name}/", "name": f.name} for f in folders]}))
    result = publish(src, tmp_path / "site2")
    assert [d["path"] for d in json.loads((tmp_path / "site2" / "datasets.json").read_text())["datasets"]] == ["v2/", "key/", "index/"]
    # an exports root without datasets.json: every export sub-folder, in name order
    (src / "datasets.json").unlink()
    result = publish(src, tmp_path / "site3")
    assert len(result.datasets) == 3


def test_only_the_exports_files_are_published(export, tmp_path):
    (export / "notes.txt").write_text("private")
    (export / ".env").write_text("SECRET")
    (export / "obs" / "extra.bin").write_bytes(b"x")
    publish(export, tmp_path / "site")
    names = set(tree(tmp_path / "site"))
    assert not {n for n in names if n.endswith(("notes.txt", ".env", "extra.bin"))}
    # a symbolic link in an export is refused with the validator's finding (never followed)
    outside = tmp_path / "outside.txt"
    outside.write_text("SECRET")
    os.symlink(outside, export / "link.txt")
    with pytest.raises(ValueError, match=r"link.txt: \[symlink\]"):
        publish(export, tmp_path / "site2")
    assert not (tmp_path / "site2").exists()


def test_bad_sources_are_refused_before_anything_is_written(tmp_path):
    broken = shutil.copytree(KEY, tmp_path / "broken")
    (broken / "obs" / "cell_type.codes.u8.gz").unlink()
    with pytest.raises(ValueError, match=r"(?s)not a valid export.*cell_type.codes.u8.gz: \[file_missing\]") as info:
        publish(broken, tmp_path / "site")
    assert "nothing was written" in str(info.value)
    (broken / "obs_manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="invalid_json"):
        publish(broken, tmp_path / "site")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no export"):
        publish(empty, tmp_path / "site")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        publish(tmp_path / "missing", tmp_path / "site")
    assert not (tmp_path / "site").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]


def test_site_inside_the_source_is_refused(export, tmp_path):
    for target in (export / "site", export.parent / "site", export):
        with pytest.raises(ValueError, match="inside"):
            publish(export.parent if target == export.parent / "site" else export, target)
    assert not (export / "site").exists() and not (export.parent / "site").exists()


def test_an_existing_folder_needs_force_unless_it_is_a_site(export, tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(ValueError, match="not a site written by publish.*force"):
        publish(export, other)
    assert (other / "thesis.tex").read_text() == "keep me"
    publish(export, other, force=True)  # force publishes into it, keeping the user's files (as exports do)
    assert (other / "thesis.tex").read_text() == "keep me" and (other / "index.html").is_file()
    # a site written before is replaced without force; files publish did not write stay
    (other / "gzip_q8" / "stale.bin").write_bytes(b"old")
    publish(export, other)
    assert (other / "gzip_q8" / "stale.bin").read_bytes() == b"old"
    assert (other / "thesis.tex").read_text() == "keep me"
    file_target = tmp_path / "file"
    file_target.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        publish(export, file_target, force=True)


def test_a_failure_leaves_the_previous_site(export, tmp_path, monkeypatch):
    publish(export, tmp_path / "site")
    before = tree(tmp_path / "site")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(site_module, "_place", boom)
    with pytest.raises(OSError, match="disk full"):
        publish(export, tmp_path / "site")
    assert tree(tmp_path / "site") == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_guardrails_name_large_files_and_warn_over_a_gigabyte(export, tmp_path, monkeypatch):
    monkeypatch.setattr(site_module, "FILE_LIMIT_BYTES", 1000)
    monkeypatch.setattr(site_module, "SITE_LIMIT_BYTES", 10_000)
    with pytest.warns(UserWarning) as caught:
        result = publish(export, tmp_path / "site")
    big = sorted(rel for rel, data in tree(tmp_path / "site").items() if len(data) > 1000)
    assert result.large_files == big and "viewer/site.js" in big
    messages = [str(w.message) for w in caught]
    assert all(any(rel in m and "100 MB" in m for m in messages) for rel in big)
    assert any("1 GB GitHub Pages limit" in m for m in messages)
    assert (tmp_path / "site" / "index.html").is_file(), "a site over the guardrails is still written"


def test_zip_packs_the_site(export, tmp_path):
    result = publish(export, tmp_path / "site", zip=True)
    assert result.zip_path == tmp_path / "site.zip"
    with zipfile.ZipFile(result.zip_path) as zf:
        names = set(zf.namelist())
        assert names == {f"site/{rel}" for rel in tree(tmp_path / "site")}
        assert zf.read("site/gzip_q8/points_2d.bin.gz") == (export / "points_2d.bin.gz").read_bytes()
        assert zf.getinfo("site/gzip_q8/points_2d.bin.gz").compress_type == zipfile.ZIP_STORED
        assert zf.getinfo("site/index.html").compress_type == zipfile.ZIP_DEFLATED


def test_zip_of_a_killed_publish_is_removed_by_the_next(export, tmp_path):
    # a finished child's pid is a dead publisher's; our own pid is a running one
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    dead = tmp_path / f".site.zip.{int(child.stdout)}-0a1b2c3d.tmp"
    dead.write_bytes(b"PK half an archive")
    alive = tmp_path / f".site.zip.{os.getpid()}-deadbeef.tmp"
    alive.write_bytes(b"PK being written")
    other = tmp_path / f".other.zip.{int(child.stdout)}-0a1b2c3d.tmp"  # another archive's: not ours to remove
    other.write_bytes(b"x")
    target = tmp_path / "outside.txt"
    target.write_text("keep")
    linked = tmp_path / f".site.zip.{int(child.stdout)}-feedface.tmp"
    linked.symlink_to(target)
    result = publish(export, tmp_path / "site", zip=True)
    assert result.zip_path is not None and zipfile.is_zipfile(result.zip_path)
    assert not dead.exists()
    assert alive.read_bytes() == b"PK being written" and other.exists()
    assert linked.is_symlink() and target.read_text() == "keep"


def test_duplicate_dataset_ids_are_refused(tmp_path):
    a = shutil.copytree(KEY, tmp_path / "a")
    b = shutil.copytree(KEY, tmp_path / "b")
    with pytest.raises(ValueError, match="dataset id 'ref_gzip_q8' is used by both"):
        publish([a, b], tmp_path / "site")


def test_cli_publish(export, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cellucid_nb", "publish", str(export), str(tmp_path / "site"), "--zip",
                           "--title", "CLI site"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    n = len(tree(tmp_path / "site"))
    assert f"{n} files" in proc.stdout and "MB" in proc.stdout and "site.zip" in proc.stdout
    assert "<title>CLI site</title>" in (tmp_path / "site" / "index.html").read_text()
    proc = subprocess.run([sys.executable, "-m", "cellucid_nb", "publish", str(export), str(export / "inner")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "inside" in proc.stderr


def test_cli_publish_links_on_request_and_reports_a_refused_write_without_traceback(export, tmp_path, monkeypatch,
                                                                                    capsys):
    from cellucid_nb.cli import main

    assert main(["publish", str(export), str(tmp_path / "linked"), "--link"]) == 0
    assert os.path.samefile(export / "points_2d.bin.gz", tmp_path / "linked" / "gzip_q8" / "points_2d.bin.gz")

    def disk_full(src, dst, **_kw):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(site_module.shutil, "copyfile", disk_full)
    capsys.readouterr()
    assert main(["publish", str(export), str(tmp_path / "full")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("cellucid-nb publish: [Errno 28] No space left on device") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "full").exists() and not list(tmp_path.glob(".full.*")), "a failed publish left files"


def test_republish_keeps_the_users_files_of_a_site_folder(export, tmp_path):
    site = tmp_path / "site"
    publish(export, site)
    (site / "CNAME").write_text("cells.example.org")
    (site / ".git").mkdir()
    (site / ".git" / "HEAD").write_text("ref: refs/heads/main")
    (site / "gzip_q8" / "obs_manifest.json").write_bytes(b"damaged by hand")  # ours (a copy): replaced
    result = publish(export, site)
    assert (site / "CNAME").read_text() == "cells.example.org"
    assert (site / ".git" / "HEAD").read_text() == "ref: refs/heads/main"
    assert (site / "gzip_q8" / "obs_manifest.json").read_bytes() == (export / "obs_manifest.json").read_bytes()
    assert b"damaged" not in (export / "obs_manifest.json").read_bytes()
    assert any("kept 2 file(s)" in w and "CNAME" in w for w in result.warnings)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_users_file_where_the_site_writes_one_is_refused(export, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("my homepage")
    with pytest.raises(ValueError, match=r"holds 1 file\(s\) publish did not write.*'index.html'.*Nothing was written"):
        publish(export, mine, force=True)
    assert tree(mine) == {"index.html": b"my homepage"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "src"]


def test_a_symlinked_site_dir_is_refused(export, tmp_path):
    real = tmp_path / "real"
    publish(export, real)
    before = tree(real)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(ValueError, match="site_dir .*link is a symbolic link"):
        publish(export, tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and tree(real) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(("text", "message"), [
    (b"{bad", "is not readable JSON"),
    (b"\xff\xfe{}", "is not readable JSON"),
    (b'{"datasets": []}', r"has no 'datasets' list \(received \[\]\)"),
    (b"[" * 100_000, "nested"),
])
def test_a_hostile_datasets_json_is_refused(tmp_path, text, message):
    root = tmp_path / "root"
    shutil.copytree(KEY, root / "a")
    (root / "datasets.json").write_bytes(text)
    with pytest.raises(ValueError, match=message):
        publish(root, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_datasets_json_naming_a_folder_outside_the_root_is_refused(export, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(KEY, root / "a")
    for path in (str(export) + "/", "../src/gzip_q8/", "a/../../src/gzip_q8"):
        (root / "datasets.json").write_text(json.dumps({"version": 1, "datasets": [{"id": "x", "path": path}]}))
        with pytest.raises(ValueError, match="points outside"):
            publish(root, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_a_killed_publish_is_repaired_and_two_at_once_are_refused(export, tmp_path):
    from cellucid_nb.exporter.locking import ExportBusyError, ExportLock

    site = tmp_path / "site"
    publish(export, site)
    stale = tmp_path / ".site.staging-999999999-dead"  # a pid that is not running
    (stale / "gzip_q8").mkdir(parents=True)
    (stale / "gzip_q8" / "points_2d.bin.gz").write_bytes(b"x" * 1000)
    with pytest.warns(UserWarning, match="removed stale staging folder .site.staging-999999999-dead"):
        publish(export, site)
    assert not stale.exists()
    before = tree(site)
    with ExportLock(Path(os.path.abspath(site))), pytest.raises(ExportBusyError, match="is writing to"):
        publish(export, site)
    assert tree(site) == before


def test_tilde_paths_are_the_home_folders(export, tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    shutil.copytree(export, home / "exports" / "gzip_q8")
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    publish("~/exports/gzip_q8", "~/site")
    assert (home / "site" / "index.html").is_file() and (home / "site" / "gzip_q8" / "obs_manifest.json").is_file()
    publish(["~/exports/gzip_q8"], "~/site2")
    assert (home / "site2" / "datasets.json").is_file()
    assert list(work.iterdir()) == []


def test_zip_holds_only_what_publish_wrote(export, tmp_path):
    site = tmp_path / "site"
    publish(export, site)
    (site / ".git").mkdir()
    (site / ".git" / "config").write_text("[remote] url = private")
    (site / "notes.txt").write_text("mine")
    result = publish(export, site, zip=True)
    with zipfile.ZipFile(result.zip_path) as zf:
        names = set(zf.namelist())
    assert "site/.git/config" not in names and "site/notes.txt" not in names
    assert names == {f"site/{rel}" for rel in tree(site) if not rel.startswith(".git/") and rel != "notes.txt"}
    assert (site / "notes.txt").read_text() == "mine"


def test_a_publish_killed_between_its_two_renames_is_finished(export, tmp_path):
    site = tmp_path / "site"
    publish(export, site)
    (site / "CNAME").write_text("cells.example.org")
    site.rename(tmp_path / ".site.old-999999999-dead")  # the previous site stepped aside, then the process died
    with pytest.warns(UserWarning, match="restored the previous export from .site.old-999999999-dead"):
        publish(export, site)
    assert (site / "CNAME").read_text() == "cells.example.org" and (site / "index.html").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_folders_named_like_the_sites_own_files_are_renamed(tmp_path):
    names = ["cellucid_nb.json", "Viewer", "INDEX.HTML", "Datasets.json"]
    exports = []
    for i, name in enumerate(names):
        folder = shutil.copytree(KEY, tmp_path / "src" / name)
        identity = json.loads((folder / "dataset_identity.json").read_text())
        identity["id"] = f"ds{i}"
        (folder / "dataset_identity.json").write_text(json.dumps(identity))
        exports.append(folder)
    publish(exports, tmp_path / "site")
    manifest = json.loads((tmp_path / "site" / "datasets.json").read_text())
    paths = [d["path"] for d in manifest["datasets"]]
    assert paths == ["cellucid_nb.json_2/", "Viewer_2/", "INDEX.HTML_2/", "Datasets.json_2/"]
    assert (tmp_path / "site" / "cellucid_nb.json").is_file() and (tmp_path / "site" / "viewer" / "site.js").is_file()
