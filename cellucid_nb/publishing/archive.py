"""``publish(..., zip=True)``: the site as one archive (for data repositories such as Zenodo)."""

from __future__ import annotations

import logging
import os
import re
import secrets
import zipfile
from collections.abc import Iterable
from pathlib import Path

from cellucid_nb.format.leftovers import pid_alive

__all__ = ["write_zip", "remove_stale_archives"]

logger = logging.getLogger(__name__)

_TEXT = (".html", ".js", ".css", ".json")


def _temp_name(target: Path, pid: int, token: str) -> str:
    return f".{target.name}.{pid}-{token}.tmp"


def remove_stale_archives(target: Path) -> list[Path]:
    """Delete the half-written archives of ``target`` that a killed publish left (their pid is dead).

    Only regular files named as :func:`write_zip` names its temporary file are touched;
    one whose process is still running (another publish writing it) is kept.
    """
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)-[0-9a-f]+\.tmp")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False) or pid_alive(int(match.group(1))):
            continue
        Path(entry.path).unlink(missing_ok=True)
        removed.append(Path(entry.path))
        logger.info("removed %s, a half-written archive of a publish that was stopped", entry.path)
    return removed


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
    remove_stale_archives(target)
    tmp = target.with_name(_temp_name(target, os.getpid(), secrets.token_hex(4)))
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
