"""File names from keys: the one place that knows how a key becomes a path.

Readers substitute ``safe(key)`` for ``{key}`` in manifest path patterns, so
writer, reader and validator must all use this exact function.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["safe_name", "find_name_collisions", "check_no_collisions", "NameCollisionError", "windows_reserved"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Device names Windows reserves, with any extension ("CON.values.f32" too), in any letter case.
_WINDOWS_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                               *(f"lpt{i}" for i in range(1, 10))})


class NameCollisionError(ValueError):
    """Two keys of one manifest map to the same file name."""


def safe_name(name: object) -> str:
    """Return the file-system-safe name used for ``{key}`` in path patterns.

    Parameters
    ----------
    name
        Any key; converted with ``str()``.

    Returns
    -------
    str
        ``re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "field"``.
    """
    return _UNSAFE.sub("_", str(name)).strip("._") or "field"


def windows_reserved(file_name: str) -> bool:
    """Whether Windows refuses ``file_name`` as a device name (``CON``, ``nul.values.u8``...).

    Such a file can be written here but not copied to, unzipped on or served from
    Windows, so an export that should open anywhere must not contain one.
    """
    return file_name.split(".", 1)[0].casefold() in _WINDOWS_RESERVED


def find_name_collisions(keys: Iterable[object]) -> list[tuple[object, object, str]]:
    """Find pairs of keys whose safe names collide (also case-insensitively).

    Parameters
    ----------
    keys
        The keys of one manifest, in order.

    Returns
    -------
    list of (first_key, second_key, safe_name)
        One entry for every key that collides with an earlier one.
    """
    seen: dict[str, object] = {}
    collisions: list[tuple[object, object, str]] = []
    for key in keys:
        name = safe_name(key)
        # Case-insensitive file systems (macOS, Windows) would merge these.
        folded = name.casefold()
        if folded in seen:
            collisions.append((seen[folded], key, name))
        else:
            seen[folded] = key
    return collisions


def check_no_collisions(keys: Iterable[object], what: str, *, named_files: bool = True) -> None:
    """Raise :class:`NameCollisionError` if two keys share a file name, or one is a Windows device name.

    Parameters
    ----------
    keys
        The keys of one manifest.
    what
        What the keys are, for the message (e.g. ``"obs"``, ``"gene"``).
    named_files
        Whether the files are named after the keys (the key layout). With ``False``
        (the index layout names files by number) nothing is checked: keys only
        appear inside the manifests, where case and punctuation are kept.
    """
    if not named_files:
        return
    keys = list(keys)
    reserved = [k for k in keys if windows_reserved(safe_name(k))]
    if reserved:
        raise NameCollisionError(
            f"{what} key {reserved[0]!r} would name a file {safe_name(reserved[0])!r}.*, a device name Windows "
            "reserves (CON, PRN, AUX, NUL, COM1-COM9, LPT1-LPT9, in any case): the export could not be copied to "
            "or opened on Windows. Rename the key, or export with layout='index' (files named by number)."
        )
    collisions = find_name_collisions(keys)
    if collisions:
        details = "; ".join(
            f"{a!r} and {b!r} both become file name {n!r}" for a, b, n in collisions[:5]
        )
        more = f" (and {len(collisions) - 5} more)" if len(collisions) > 5 else ""
        raise NameCollisionError(
            f"{what} keys collide after sanitising to file names: {details}{more}. "
            "File names keep only A-Z a-z 0-9 . _ - and ignore letter case on many "
            f"file systems; rename one of each pair before exporting, or export with layout='index' "
            "(files named by number)."
        )
