"""``datasets.json``: the list of exports in an exports root (one folder per dataset).

Compatible with ``cellucid.prepare_data.generate_datasets_manifest`` (same
positional parameters ``exports_dir, output_filename, default_dataset``) but
stricter: duplicate ids and an unknown default are errors instead of silent
fall-backs, and the manifest is returned as a dict.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

from cellucid_nb.format import spec
from cellucid_nb.format.reader import load_json

__all__ = ["generate_datasets_manifest", "collect_datasets"]

logger = logging.getLogger(__name__)


def collect_datasets(exports_dir: str | os.PathLike[str]) -> list[dict]:
    """Return one ``datasets.json`` entry per sub-folder holding ``dataset_identity.json``.

    Folders are visited in sorted name order; hidden folders (such as an
    exporter's staging folder) are skipped.

    Parameters
    ----------
    exports_dir
        The exports root.

    Raises
    ------
    ValueError
        Two folders declare the same dataset id (both folders are named).
    """
    root = Path(exports_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"exports directory {root} does not exist")
    entries: list[dict] = []
    owner: dict[str, str] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.is_symlink():
            # a link may lead out of the exports folder: never list (and so never serve) what it points at
            warnings.warn(f"skipping {sub.name}: it is a symbolic link (to {os.readlink(sub)!r})", stacklevel=3)
            continue
        identity_file = sub / spec.IDENTITY_FILE
        if not identity_file.is_file():
            logger.info("skipping %s: no %s", sub, spec.IDENTITY_FILE)
            continue
        try:
            identity = load_json(identity_file)
        except ValueError as exc:
            warnings.warn(f"skipping {sub.name}: {exc}", stacklevel=3)
            continue
        if not isinstance(identity, dict):
            warnings.warn(f"skipping {sub.name}: {identity_file} does not hold a JSON object", stacklevel=3)
            continue
        dataset_id = str(identity.get("id") or sub.name)
        if dataset_id in owner:
            raise ValueError(
                f"dataset id {dataset_id!r} is declared by both {owner[dataset_id]!r} and {sub.name!r} "
                f"(in their {spec.IDENTITY_FILE}); ids in {spec.DATASETS_FILE} must be unique: re-export one "
                "with another dataset_id"
            )
        owner[dataset_id] = sub.name
        entry: dict[str, str | int] = {"id": dataset_id, "path": f"{sub.name}/", "name": str(identity.get("name") or sub.name)}
        stats = identity.get("stats") or {}
        # Same rule as the reference: only non-zero counts are listed.
        for key in ("n_cells", "n_genes"):
            if stats.get(key):
                entry[key] = int(stats[key])
        entries.append(entry)
    return entries


def generate_datasets_manifest(
    exports_dir: str | os.PathLike[str] | None = None,
    output_filename: str = spec.DATASETS_FILE,
    default_dataset: str | None = None,
    *,
    default: str | None = None,
    write: bool = True,
) -> dict:
    """Build (and write) ``datasets.json`` from the dataset folders of an exports root.

    Parameters
    ----------
    exports_dir
        The exports root (default: ``./exports`` at call time, as the reference).
    output_filename
        File written inside ``exports_dir``.
    default_dataset
        Id of the dataset shown first (default: the first in folder order).
    default
        Alias of ``default_dataset``.
    write
        Write the file (atomically); ``False`` only returns the manifest.

    Returns
    -------
    dict
        ``{"version": 1, "default": id, "datasets": [{id, path, name, n_cells?, n_genes?}, ...]}``.

    Raises
    ------
    FileNotFoundError
        ``exports_dir`` does not exist.
    ValueError
        No dataset folder, duplicate ids, or an unknown default.
    """
    if default is not None and default_dataset is not None and default != default_dataset:
        raise ValueError(f"default={default!r} and default_dataset={default_dataset!r} disagree; pass one")
    chosen = default if default is not None else default_dataset
    root = Path.cwd() / "exports" if exports_dir is None else Path(exports_dir)
    datasets = collect_datasets(root)
    if not datasets:
        raise ValueError(f"no dataset folders (sub-folders with {spec.IDENTITY_FILE}) found in {root}")
    ids = [d["id"] for d in datasets]
    if chosen is None:
        chosen = ids[0]
    elif chosen not in ids:
        raise ValueError(f"default dataset {chosen!r} is not among the datasets found in {root}: {ids}")
    manifest = {"version": spec.DATASETS_VERSION, "default": chosen, "datasets": datasets}
    if write:
        target = root / output_filename
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        logger.info("wrote %s with %d datasets", target, len(datasets))
    return manifest
