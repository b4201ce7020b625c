"""``publish(..., zip=True)``: the site as one archive (for data repositories such as Zenodo)."""

from __future__ import annotations

import os
import secrets
import zipfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["write_zip"]

_TEXT = (".html", ".js", ".css", ".json")


def write_zip(site: Path, target: Path, files: Iterable[str] | None = None) -> Path:
    """Pack ``site`` into ``target`` (entries under ``<site name>/``); returns ``target``.

    Payloads are stored as they are (already gzip-compressed); text files are deflated.
    The archive is written beside ``target`` and renamed into place.

    Parameters
    ----------
    site
        The site folder.
    target
        The ``.zip`` file to write.
    files
        Site-relative paths to pack (default: every file). ``publish`` passes the
        files it wrote, so the user's files kept in the site folder (``.git``,
        notes) never go into the archive.
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            rels = sorted(files) if files is not None else sorted(
                p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
            for rel in rels:
                path = site / rel
                method = zipfile.ZIP_DEFLATED if rel.endswith(_TEXT) else zipfile.ZIP_STORED
                zf.write(path, f"{site.name}/{rel}", compress_type=method)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
