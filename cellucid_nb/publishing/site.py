"""``publish(source, site_dir)``: write a static site of one or several exports.

The site folder holds ``index.html``, ``viewer/`` (the bundled viewer),
``datasets.json`` and one folder per export. It is written in a staging folder
beside ``site_dir`` and moved into place at the end. Payloads are copied by
default: a hard link would make the site and the export one file, so a tool that
edits or truncates a site file in place (a deploy script, an editor) would damage
the export too. ``link=True`` hard-links them instead (no extra disk, for large
exports) where the file system allows. The source is never modified.

Replacing a site keeps what publish did not write (decision, as for exports in
:mod:`cellucid_nb.exporter.swap`): a site folder is often a Git checkout with a
``CNAME``, a ``README`` or ``.git``; deleting those on every re-publish would
lose the user's work. The site's root ``cellucid_nb.json`` lists the files
publish wrote; everything else is kept (and reported), and a file of the
user's where the new site writes one refuses the publish before anything is
written. One publish at a time per ``site_dir`` (the exporter's lock), and the
staging / ``.old-*`` folders a killed publish left are repaired by the next.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cellucid_nb.exporter.locking import ExportLock
from cellucid_nb.exporter.ownership import conflicts, scan_files
from cellucid_nb.exporter.swap import recover, replace_folder
from cellucid_nb.format import spec
from cellucid_nb.format.leftovers import staging_prefix
from cellucid_nb.format.listing import export_files
from cellucid_nb.format.safe_io import check_no_links, parse_json, read_text_no_follow
from cellucid_nb.publishing.archive import write_zip
from cellucid_nb.publishing.page import ASSETS, GENERATOR, STATIC_DIR, index_html
from cellucid_nb.publishing.sources import SiteExport, collect_exports

__all__ = ["publish", "PublishResult", "FILE_LIMIT_BYTES", "SITE_LIMIT_BYTES"]

logger = logging.getLogger(__name__)

#: GitHub refuses files over 100 MB
FILE_LIMIT_BYTES = 100 * 1000 * 1000
#: GitHub Pages sites should stay under 1 GB
SITE_LIMIT_BYTES = 1000 * 1000 * 1000


@dataclass
class PublishResult:
    """What ``publish`` wrote.

    Attributes
    ----------
    path
        The site folder.
    n_files, n_bytes
        Files and bytes of the site.
    datasets
        Dataset ids, in the switcher's order.
    large_files
        Site-relative paths of files over 100 MB (GitHub's per-file limit).
    warnings
        Guardrail messages (large files, a site over 1 GB).
    zip_path
        The archive written with ``zip=True``.
    linked
        Files hard-linked from the source (the rest were copied).
    """

    path: Path
    n_files: int
    n_bytes: int
    datasets: list[str]
    large_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    zip_path: Path | None = None
    linked: int = 0

    def summary(self) -> str:
        """One line: where, how many files, how many bytes."""
        return (f"published {len(self.datasets)} dataset(s) to {self.path}: {self.n_files} files, "
                f"{self.n_bytes / 1e6:.1f} MB" + (f"; archive {self.zip_path}" if self.zip_path else ""))


#: written into exports without a sidecar: nothing but "no stored colours"
_EMPTY_SIDECAR = {"generator": GENERATOR, "category_colors": {}}


def _is_site(folder: Path) -> bool:
    index = folder / "index.html"
    try:
        return index.is_file() and f'content="{GENERATOR}"' in index.read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        return False


def _source_roots(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    return [Path(p).resolve() for p in items]


def _check_target(site: Path, exports: list[SiteExport], roots: list[Path], force: bool) -> None:
    resolved = site.resolve()
    for root in roots:
        if resolved == root or resolved.is_relative_to(root):
            raise ValueError(f"publish: site_dir {site} is inside the source {root.name!r}; choose a folder outside it")
    for e in exports:
        if resolved == e.source or resolved.is_relative_to(e.source):
            raise ValueError(f"publish: site_dir {site} is inside the export {e.source.name!r}; choose a folder "
                             "outside it")
        if e.source.is_relative_to(resolved):
            raise ValueError(f"publish: the export {e.source.name!r} is inside site_dir {site}; publishing would "
                             "replace it")
    if site.is_symlink():
        raise ValueError(f"publish: site_dir {site} is a symbolic link (to {os.readlink(site)!r}); publish to the "
                         "folder it points to")
    if site.exists() and not site.is_dir():
        raise ValueError(f"publish: site_dir {site} exists and is not a folder")
    if site.is_dir() and any(site.iterdir()) and not _is_site(site) and not force:
        raise ValueError(f"publish: site_dir {site} exists and is not a site written by publish; pass force=True "
                         "(--force) to publish into it (its files are kept), or choose another folder")


def _place(src: Path, dst: Path, link: bool) -> bool:
    """Hard-link ``src`` to ``dst`` when ``link`` and the file system allows (True), else copy it (False)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst, follow_symlinks=False)
            return True
        except OSError:
            pass
    shutil.copyfile(src, dst, follow_symlinks=False)
    return False


def _guardrails(sizes: dict[str, int]) -> tuple[list[str], list[str]]:
    large = sorted(rel for rel, n in sizes.items() if n > FILE_LIMIT_BYTES)
    notes = [f"{rel} is {sizes[rel] / 1e6:.1f} MB, over the 100 MB per-file limit of GitHub" for rel in large]
    total = sum(sizes.values())
    if total > SITE_LIMIT_BYTES:
        notes.append(f"the site is {total / 1e9:.2f} GB, over the 1 GB GitHub Pages limit; host it elsewhere or "
                     "publish it as an archive (zip=True) to a data repository")
    return large, notes


def _datasets_manifest(exports: list[SiteExport]) -> dict:
    entries = []
    for e in exports:
        entry: dict = {"id": e.id, "path": f"{e.folder}/", "name": e.name}
        if e.n_cells:
            entry["n_cells"] = e.n_cells
        if e.n_genes:
            entry["n_genes"] = e.n_genes
        entries.append(entry)
    return {"version": spec.DATASETS_VERSION, "default": exports[0].id, "datasets": entries}


def _listed(site: Path) -> set[str] | None:
    """The files the site's root sidecar says publish wrote (None: no readable list)."""
    path = site / spec.SIDECAR_FILE
    if path.is_symlink() or not path.is_file():
        return None
    try:
        files = parse_json(read_text_no_follow(path), spec.SIDECAR_FILE).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return set(files) if isinstance(files, dict) and all(isinstance(f, str) for f in files) else None


def _owned(site: Path) -> tuple[set[str], bool]:
    """Files of an existing ``site`` that publish wrote, and whether its root sidecar already lists them."""
    if not site.is_dir() or not _is_site(site):
        return set(), False  # a folder of the user's (force): nothing in it is ours
    listed = _listed(site)
    if listed is not None:
        return listed | {spec.SIDECAR_FILE}, True
    owned = {"index.html", spec.DATASETS_FILE, *ASSETS.values()}  # a site written before the root sidecar
    try:
        entries = parse_json(read_text_no_follow(site / spec.DATASETS_FILE), spec.DATASETS_FILE).get("datasets") or []
    except (OSError, ValueError, AttributeError):
        entries = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            folder = check_no_links(site, str(entry.get("path", "")).rstrip("/"))
            rel = folder.relative_to(site).as_posix()
            if rel != ".":
                owned |= {f"{rel}/{f}" for f in export_files(folder)} | {f"{rel}/{spec.SIDECAR_FILE}"}
        except (ValueError, OSError, AttributeError):
            continue
    return owned, False


def _sidecar(files: list[str]) -> bytes:
    return (json.dumps({"generator": GENERATOR, "files": {rel: {} for rel in sorted(files)}}, indent=1) + "\n").encode()


def publish(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], site_dir: str | os.PathLike[str], *,
            title: str | None = None, zip: bool = False, force: bool = False, link: bool = False) -> PublishResult:  # noqa: A002 - the issue's name
    """Write a self-contained static site of one or several exports.

    Parameters
    ----------
    source
        One export folder, an exports root (its ``datasets.json``, or every export
        sub-folder), or a list of export folders.
    site_dir
        Folder to write; a site written by ``publish`` before is replaced. Files
        publish did not write there (``CNAME``, ``.git``, notes) are kept and
        reported in ``PublishResult.warnings``.
    title
        Page title (default: the first dataset's name).
    zip
        Also pack the site into ``<site_dir>.zip`` (for data repositories).
    force
        Publish into an existing folder that is not a site (its files are kept;
        one where the site writes a file of its own refuses the publish).
    link
        Hard-link the payloads from the source instead of copying them (no extra
        disk; copies where the file system cannot link). The site and the export
        then share those files: editing one in place edits the other.

    Returns
    -------
    PublishResult
        Path, file count and size, guardrail warnings (also issued as ``UserWarning``).

    Raises
    ------
    ValueError
        The source is not a valid export (the validator's findings are listed),
        ``site_dir`` is inside the source or a symbolic link, ``site_dir`` is
        another folder and ``force`` is False, or a file of the user's lies where
        the site writes one. Nothing is written in these cases.
    ExportBusyError
        Another publish (or export) is writing to ``site_dir``.
    """
    site = Path(site_dir).expanduser()  # "~/site" is the home folder's, not a folder "~"
    if isinstance(source, (str, os.PathLike)):
        source = Path(source).expanduser()
    else:
        source = [Path(p).expanduser() for p in source]
    exports = collect_exports(source)
    _check_target(site, exports, _source_roots(source), force)
    missing = [name for name in ASSETS if not (STATIC_DIR / name).is_file()]
    if missing:
        raise FileNotFoundError(f"publish: the built viewer {missing} is missing from {STATIC_DIR.name}/: run "
                                "`node js/build.mjs`")
    page = index_html(title or exports[0].name).encode()
    manifest = (json.dumps(_datasets_manifest(exports), indent=2) + "\n").encode()
    empty_sidecar = (json.dumps(_EMPTY_SIDECAR) + "\n").encode()
    sizes = {"index.html": len(page), spec.DATASETS_FILE: len(manifest)}
    sizes.update({dst: (STATIC_DIR / src).stat().st_size for src, dst in ASSETS.items()})
    for e in exports:
        sizes.update({f"{e.folder}/{rel}": (e.source / rel).stat().st_size for rel in e.files})
        if spec.SIDECAR_FILE not in e.files:
            sizes[f"{e.folder}/{spec.SIDECAR_FILE}"] = len(empty_sidecar)
    root_sidecar = _sidecar(sorted(sizes))  # what publish owns in the site (kept: everything else)
    sizes[spec.SIDECAR_FILE] = len(root_sidecar)
    large, notes = _guardrails(sizes)
    for note in notes:
        warnings.warn(f"publish: {note}", stacklevel=2)

    site.parent.mkdir(parents=True, exist_ok=True)
    site = Path(os.path.abspath(site))
    with ExportLock(site):
        for message in recover(site):
            warnings.warn(f"publish: {site}: {message}", stacklevel=2)
        linked, kept = _write(site, exports, page, manifest, empty_sidecar, root_sidecar, set(sizes), link)
    if kept:
        notes.append(f"kept {len(kept)} file(s) publish did not write: {kept[:10]}")
        logger.info("publish: %s: kept %d file(s) publish did not write: %s", site, len(kept), kept[:10])
    result = PublishResult(site, len(sizes), sum(sizes.values()), [e.id for e in exports], large, notes, None, linked)
    if zip:
        result.zip_path = write_zip(site, site.with_name(site.name + ".zip"), sorted(sizes))
    logger.info(result.summary())
    return result


def _write(site: Path, exports: list[SiteExport], page: bytes, manifest: bytes, empty_sidecar: bytes,
           root_sidecar: bytes, new_files: set[str], link: bool) -> tuple[int, list[str]]:
    """Stage the site and swap it in (holding the lock); returns (files hard-linked, foreign files kept)."""
    owned, listed = _owned(site)
    if site.is_dir():
        blocked = conflicts(scan_files(site) - owned, new_files)
        if blocked:
            raise ValueError(f"publish: site_dir {site} holds {len(blocked)} file(s) publish did not write where the "
                             f"site writes its own: {blocked[:10]}; move them or choose another folder. Nothing was "
                             "written.")
    staging = Path(tempfile.mkdtemp(prefix=f"{staging_prefix(site.name)}{os.getpid()}-", dir=site.parent))
    linked = 0
    kept: list[str] = []
    try:
        (staging / "index.html").write_bytes(page)
        (staging / spec.DATASETS_FILE).write_bytes(manifest)
        for src, dst in ASSETS.items():
            (staging / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(STATIC_DIR / src, staging / dst)
        for e in exports:
            for rel in e.files:
                linked += _place(e.source / rel, staging / e.folder / rel, link)
            if spec.SIDECAR_FILE not in e.files:  # the viewer asks for it (colours): answer instead of a 404
                (staging / e.folder / spec.SIDECAR_FILE).write_bytes(empty_sidecar)
        (staging / spec.SIDECAR_FILE).write_bytes(root_sidecar)
        if site.exists():
            if not listed:  # replace_folder reads what the old folder owns from its root sidecar
                (site / spec.SIDECAR_FILE).write_bytes(_sidecar(sorted(owned)))
            kept = replace_folder(staging, site)
        else:
            os.replace(staging, site)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return linked, kept
