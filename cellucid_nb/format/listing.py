"""The files that make up an export: its JSON files and the payloads they name.

``serve`` answers only these, and ``publish`` copies only these, so that
nothing else in an export folder (the user's notes, dotfiles, an exporter's
staging folder, a link leaving the folder) is ever shared.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cellucid_nb.format import spec
from cellucid_nb.format.reader import CODES_EXT, ExportReader
from cellucid_nb.format.safe_io import SymlinkError, check_no_links

__all__ = ["export_files"]


def _obs_payloads(reader: ExportReader) -> list[str]:
    manifest = reader.obs_manifest or {}
    schemas = manifest.get("_obsSchemas") or {}
    layout = reader.layout
    out: list[str] = []
    cont = schemas.get("continuous") or {}
    for indexed in manifest.get("_continuousFields") or []:
        index, entry = layout.split(indexed)
        if cont.get("pathPattern"):
            out.append(layout.fill(cont["pathPattern"], str(entry[0]), index))
    cat = schemas.get("categorical") or {}
    for indexed in manifest.get("_categoricalFields") or []:
        index, entry = layout.split(indexed)
        ext = CODES_EXT.get(str(entry[2]), str(entry[2])) if len(entry) > 2 else None
        for pattern_key in ("codesPathPattern", "outlierPathPattern"):
            if cat.get(pattern_key):
                out.append(layout.fill(cat[pattern_key], str(entry[0]), index, ext))
    return out


def _var_payloads(reader: ExportReader) -> list[str]:
    manifest = reader.var_manifest or {}
    pattern = (manifest.get("_varSchema") or {}).get("pathPattern")
    if not pattern:
        return []
    out = []
    for indexed in manifest.get("fields") or []:
        index, entry = reader.layout.split(indexed)
        out.append(reader.layout.fill(pattern, str(entry[0]), index))
    return out


def _other_payloads(reader: ExportReader) -> list[str]:
    out = [e.file for e in reader.embeddings]
    out += [spec.points_file(d, c) for d in spec.EMBEDDING_DIMS for c in (None, 1)
            if not reader.embeddings and (reader.path / spec.points_file(d, c)).is_file()]
    conn = reader.connectivity_manifest or {}
    out += [conn[k] for k in ("sourcesPath", "destinationsPath", "weightsPath") if isinstance(conn.get(k), str)]
    for entry in (reader.vector_fields or {}).values():
        files: dict[str, Any] = dict(entry.get("files") or {})
        files.update(entry.get("embedding_files") or {})
        out += [str(f) for f in files.values()]
    return out


def export_files(path: str | os.PathLike[str], *, sidecar: bool = True) -> list[str]:
    """List the files of one export, relative POSIX paths, sorted.

    These are ``dataset_identity.json``, the manifests (and the ``cellucid_nb.json``
    sidecar with ``sidecar=True``) and every payload they name, when the file exists
    as a regular file reached without a symbolic link, outside any hidden folder.

    Parameters
    ----------
    path
        The export folder.
    sidecar
        Include cellucid_nb's sidecar (category colours for viewers that read files).

    Returns
    -------
    list of str

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`cellucid_nb.format.reader.read_export` for a folder that is not an export.
    """
    reader = ExportReader(Path(path))
    names = [spec.IDENTITY_FILE, *reader.manifest_files.values()]
    if sidecar:
        names.append(spec.SIDECAR_FILE)
    names += _obs_payloads(reader) + _var_payloads(reader) + _other_payloads(reader)
    found: set[str] = set()
    for rel in names:
        try:
            full = check_no_links(reader.path, rel)
        except (SymlinkError, ValueError):
            continue  # a link or a path leaving the export is never part of it
        rel_posix = full.relative_to(reader.path).as_posix()
        if any(part.startswith(".") for part in rel_posix.split("/")) or not full.is_file():
            continue
        found.add(rel_posix)
    return sorted(found)
