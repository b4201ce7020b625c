"""Opening files of an export that may be hostile: no symlinks, bounded JSON nesting.

An export folder can come from anywhere (a download, a shared drive). Its
reader, validator and the viewer API never follow a symbolic link inside it
(a link can point anywhere on the machine), and never let a JSON file nested
100,000 levels deep turn into a ``RecursionError``. The export folder itself
may be reached through a link (the user chose that path); links are looked
for only below it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SymlinkError", "JSON_MAX_DEPTH", "check_no_links", "find_symlinks", "parse_json", "read_text_no_follow",
           "open_no_follow"]

#: Deepest JSON nesting accepted (the format needs 6; Python's parser fails near 1,000).
JSON_MAX_DEPTH = 64


class SymlinkError(ValueError):
    """A path inside an export is (or passes through) a symbolic link."""


def check_no_links(root: Path, rel: str) -> Path:
    """Return ``root / rel``; raise if ``rel`` leaves ``root`` or any of its parts is a symbolic link.

    Parameters
    ----------
    root
        The export folder.
    rel
        A path relative to it (as manifests write it).

    Raises
    ------
    ValueError
        ``rel`` is absolute or climbs out with ``..``.
    SymlinkError
        A component of ``rel`` is a symbolic link.
    """
    text = str(rel).replace("\\", "/")
    norm = os.path.normpath(text)
    if os.path.isabs(text) or norm == ".." or norm.startswith(".." + os.sep):
        raise ValueError(f"{rel!r} points outside the export folder {root}")
    path = root
    for part in Path(norm).parts:
        path = path / part
        if os.path.islink(path):
            raise SymlinkError(
                f"{root / norm} is reached through the symbolic link {path} (to {os.readlink(path)!r}); "
                "exports are read without following links"
            )
    return root / norm


def open_no_follow(path: Path) -> int:
    """``os.open`` for reading that fails on a symbolic link (``O_NOFOLLOW`` where available)."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            raise SymlinkError(f"{path} is a symbolic link; exports are read without following links") from None
        raise exc


def read_text_no_follow(path: Path) -> str:
    """Read a UTF-8 text file, refusing a symbolic link."""
    fd = open_no_follow(path)
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); the "
                         "format's JSON files are UTF-8") from None


def find_symlinks(root: Path) -> list[str]:
    """Relative POSIX paths of every symbolic link below ``root`` (links are listed, never entered)."""
    found: list[str] = []
    pending = [("", str(root))]
    while pending:
        rel_folder, folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:  # d_type from the directory listing: no stat per file
            rel = f"{rel_folder}{entry.name}"
            if entry.is_symlink():
                found.append(rel)
            elif entry.is_dir(follow_symlinks=False):
                pending.append((rel + "/", entry.path))
    return sorted(found)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _depth_exceeds(text: str, limit: int) -> int | None:
    """Nesting depth reached by ``text`` if it goes beyond ``limit`` (brackets inside strings ignored), else None."""
    if text.count("[") + text.count("{") <= limit:
        return None  # cannot be deeper than the number of brackets
    codes = np.frombuffer(_STRING.sub("", text).encode("utf-8"), dtype=np.uint8)
    step = ((codes == 91) | (codes == 123)).astype(np.int32) - ((codes == 93) | (codes == 125))  # [{ and ]}
    depth = int(np.cumsum(step).max()) if step.size else 0
    return depth if depth > limit else None


def parse_json(text: str, label: str, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` with a ``ValueError`` naming ``label``.

    Parameters
    ----------
    text
        The document.
    label
        File name for messages.
    max_depth
        Deepest nesting accepted.
    """
    try:
        return _checked(json.loads(text, object_pairs_hook=_unique_keys(label)), text, label, max_depth)
    except RecursionError:
        raise ValueError(f"{label} is nested too deeply to parse (more than {max_depth} levels of [ or {{)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{label} is not valid JSON: {exc}") from None


def _unique_keys(label: str) -> Any:
    """``object_pairs_hook`` refusing a key written twice in one object (readers disagree on which one counts)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
            raise ValueError(f"{label} holds the key {twice!r} more than once in one object; JSON readers disagree "
                             "on which value counts, expected each key once")
        return out

    return hook


def _checked(value: Any, text: str, label: str, max_depth: int) -> Any:
    if isinstance(value, (dict, list)) and _depth_exceeds(text, max_depth) is not None:
        raise ValueError(f"{label} is nested more than {max_depth} levels deep (of [ or {{); the format needs at most 6")
    return value
