"""Which files of an export folder an export wrote (and may therefore replace or delete).

The sidecar ``cellucid_nb.json`` lists every file an export wrote (``files``);
those and the sidecar itself are *owned*. Everything else in the folder (a
notebook, figures, notes the user saved there) is *foreign*: a replace keeps it.
An export without a readable sidecar (written by ``cellucid`` 0.0.9, or a
damaged sidecar) owns what the format's layout names: the identity, the
manifests, ``points_*d.bin[.gz]`` and the payload files (``.bin``, ``.u8``,
``.f32``... optionally ``.gz``) in the payload folders; a ``notes.txt`` the
user put in ``obs/`` stays theirs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..format.safe_io import parse_json, read_text_no_follow
from ..format.spec import IDENTITY_FILE, SIDECAR_FILE

__all__ = ["scan_files", "owned_files", "layout_owned", "conflicts"]

_POINTS = re.compile(r"^points_[123]d\.bin(\.gz)?$")
#: Payload file endings of every layout (``.values.u8``, ``.codes.u16.gz``, ``edges.src.bin``...).
_PAYLOAD = re.compile(r"\.(bin|u8|u16|u32|f32|f64)(\.gz)?$")
#: Folders and manifests of the reference layout (used when there is no sidecar).
DEFAULT_DIRS = ("obs", "var", "connectivity", "vectors")
DEFAULT_MANIFESTS = ("obs_manifest.json", "var_manifest.json", "connectivity_manifest.json")


def scan_files(folder: Path) -> set[str]:
    """Relative POSIX paths of every file (and symlink) under ``folder``; links are not followed."""
    found: set[str] = set()
    for root, dirs, names in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        # os.walk lists a symlink to a folder among dirs without entering it: it is an entry too.
        for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            found.add(rel.replace(os.sep, "/"))
    return found


def _safe_rel(rel: object) -> str | None:
    if not isinstance(rel, str) or not rel or "\\" in rel or rel.startswith("/"):
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return rel


def _sidecar_files(folder: Path) -> set[str] | None:
    path = folder / SIDECAR_FILE
    if path.is_symlink() or not path.is_file():
        return None
    try:
        files = parse_json(read_text_no_follow(path), SIDECAR_FILE).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(files, dict):
        return None
    return {rel for rel in map(_safe_rel, files) if rel is not None} | {SIDECAR_FILE}


def layout_owned(files: Iterable[str], manifests: Iterable[str] = (), dirs: Iterable[str] = ()) -> set[str]:
    """Files that the format's layout names (for exports without a sidecar).

    Parameters
    ----------
    files
        Relative paths present in the folder.
    manifests, dirs
        Manifest file names and payload folder names of this export (besides the defaults).
    """
    names = {IDENTITY_FILE, SIDECAR_FILE, *DEFAULT_MANIFESTS, *manifests}
    folders = {*DEFAULT_DIRS, *dirs}
    out = set()
    for rel in files:
        head = rel.split("/", 1)[0]
        if rel in names or _POINTS.match(rel) or ("/" in rel and head in folders and _PAYLOAD.search(rel)):
            out.add(rel)
    return out


def owned_files(folder: Path, files: set[str], manifests: Iterable[str] = (), dirs: Iterable[str] = ()) -> set[str]:
    """The files of ``folder`` an export wrote: the sidecar's list, else the layout's names.

    Parameters
    ----------
    folder
        An export folder.
    files
        Its files (:func:`scan_files`).
    manifests, dirs
        Manifest and payload folder names (used without a sidecar).
    """
    listed = _sidecar_files(folder)
    if listed is None:
        return layout_owned(files, manifests, dirs)
    return files & listed


def conflicts(foreign: Iterable[str], new_files: Iterable[str]) -> list[str]:
    """Foreign paths that a new export's files would overwrite or that block one of its folders.

    Parameters
    ----------
    foreign
        Files the export does not own.
    new_files
        Relative paths the new export writes.
    """
    new = set(new_files)
    new_dirs = {d for rel in new for d in _parents(rel)}
    return [rel for rel in sorted(foreign) if rel in new or rel in new_dirs or not new.isdisjoint(_parents(rel))]


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:k]) for k in range(1, len(parts))]
