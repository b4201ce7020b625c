"""What ``publish`` copies: the exports of a source, checked before anything is written."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cellucid_nb.format import spec
from cellucid_nb.format.listing import export_files
from cellucid_nb.format.safe_io import SymlinkError, check_no_links, parse_json, read_text_no_follow
from cellucid_nb.format.validator import format_problems, validate_export

__all__ = ["SiteExport", "collect_exports", "RESERVED_NAMES", "TOLERATED_RULES"]

logger = logging.getLogger(__name__)

#: validator rules about strict readers or reproducibility, not about what a viewer can read: reported, not refused
TOLERATED_RULES = frozenset({
    "gzip_header", "gzip_isize", "manifest_missing_key", "manifest_unknown_key", "vector_basis_missing",
    "max_neighbors_mismatch", "leftover_folder", "categorical_dtype_auto", "edges_not_sorted",
})
#: names the site itself uses at its root (compared ignoring case: macOS and Windows file systems do)
RESERVED_NAMES = frozenset({"index.html", "viewer", spec.DATASETS_FILE, spec.SIDECAR_FILE})


@dataclass(frozen=True)
class SiteExport:
    """One export to publish: its folder, id and name, the folder name in the site, its files."""

    source: Path
    id: str
    name: str
    folder: str
    files: tuple[str, ...]
    n_cells: int | None
    n_genes: int | None


def _identity(folder: Path) -> dict:
    data = json.loads((folder / spec.IDENTITY_FILE).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{folder / spec.IDENTITY_FILE} does not hold a JSON object")
    return data


def _folders(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The export folders a source names (an export, an exports root, or a list of exports)."""
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if not root.is_dir():
            raise FileNotFoundError(f"publish: source {root} is not a folder (expected an export or a folder of exports)")
        if (root / spec.IDENTITY_FILE).is_file():
            return [root]
        manifest = root / spec.DATASETS_FILE
        if manifest.is_file():
            try:
                data = parse_json(read_text_no_follow(manifest), spec.DATASETS_FILE)
            except (UnicodeDecodeError, ValueError) as exc:
                raise ValueError(f"publish: {manifest} is not readable JSON ({exc}); expected a datasets.json "
                                 "listing the exports") from None
            entries = data.get("datasets") if isinstance(data, dict) else None
            if not isinstance(entries, list) or not entries:
                raise ValueError(f"publish: {manifest} has no 'datasets' list (received {entries!r}); expected a "
                                 "non-empty list of {\"id\", \"path\"} entries")
            default = data.get("default")
            entries = sorted((e for e in entries if isinstance(e, dict)), key=lambda e: e.get("id") != default)
            out = []
            for e in entries:
                try:
                    out.append(check_no_links(root, str(e.get("path", "")).rstrip("/")))
                except (ValueError, SymlinkError) as exc:
                    raise ValueError(f"publish: {manifest} names {e.get('path')!r}: {exc}") from None
            return out
        subs = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")
                and not p.is_symlink() and (p / spec.IDENTITY_FILE).is_file()]
        if not subs:
            raise ValueError(f"publish: {root} holds no export: expected {spec.IDENTITY_FILE} in it or in its sub-folders")
        return subs
    folders = [Path(p) for p in source]
    if not folders:
        raise ValueError("publish: the list of exports is empty")
    return folders


def _site_folder(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "dataset"
    folder, n = base, 2
    while folder.lower() in taken or folder.lower() in RESERVED_NAMES:
        folder, n = f"{base}_{n}", n + 1
    taken.add(folder.lower())
    return folder


def collect_exports(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[SiteExport]:
    """Validate every export of ``source`` and list what the site will hold.

    Parameters
    ----------
    source
        One export folder, an exports root (its ``datasets.json`` or its export
        sub-folders), or a list of export folders.

    Raises
    ------
    FileNotFoundError
        A folder is missing.
    ValueError
        A folder is not a valid export (the validator's findings are in the
        message), or two exports share a dataset id.
    """
    exports: list[SiteExport] = []
    ids: dict[str, Path] = {}
    taken: set[str] = set()
    for folder in _folders(source):
        if not folder.is_dir():
            raise FileNotFoundError(f"publish: {folder} is not a folder (expected an export)")
        if folder.is_symlink():
            raise ValueError(f"publish: {folder} is a symbolic link; publish the folder it points to")
        if not (folder / spec.IDENTITY_FILE).is_file():
            raise ValueError(f"publish: {folder} is not an export: {spec.IDENTITY_FILE} is missing")
        found = validate_export(folder)
        problems = [p for p in found if p.rule not in TOLERATED_RULES]
        for p in found:
            if p.rule in TOLERATED_RULES:
                logger.info("publish: %s: %s (published anyway: viewers read it)", folder.name, p)
        if problems:
            raise ValueError(f"publish: {folder} is not a valid export ({len(problems)} problem(s)); nothing was "
                             f"written:\n{format_problems(problems)}")
        identity = _identity(folder)
        ds_id = str(identity.get("id") or folder.name)
        if ds_id in ids:
            raise ValueError(f"publish: dataset id {ds_id!r} is used by both {ids[ds_id]} and {folder}; ids must be "
                             "unique (re-export one with another dataset_id)")
        ids[ds_id] = folder
        stats = identity.get("stats") or {}
        exports.append(SiteExport(
            source=folder.resolve(), id=ds_id, name=str(identity.get("name") or ds_id),
            folder=_site_folder(folder.name, taken), files=tuple(export_files(folder)),
            n_cells=int(stats["n_cells"]) if stats.get("n_cells") else None,
            n_genes=int(stats["n_genes"]) if stats.get("n_genes") else None,
        ))
    return exports
