"""Memory budgets and disk space: parse ``memory_limit``, pick its default, check free space.

A budget is bytes as an integer, or a string such as ``"2GB"``, ``"1.5 GiB"``,
``"800M"`` (decimal units for ``kB/MB/GB/TB``, binary for ``KiB/MiB/GiB/TiB``; a
bare ``K/M/G/T`` is binary, as in ``ulimit`` and Dask). ``None`` or ``"auto"``
mean :data:`DEFAULT_FRACTION` of the machine's physical memory.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_FRACTION",
    "parse_memory_limit",
    "machine_memory",
    "default_memory_limit",
    "format_size",
    "check_free_space",
]

#: Share of the machine's physical memory an export may use by default.
DEFAULT_FRACTION = 0.5

_UNITS = {
    "": 1, "b": 1,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def machine_memory() -> int:
    """Physical memory of this machine in bytes (``os.sysconf``; 8 GiB when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def default_memory_limit() -> int:
    """The default budget: :data:`DEFAULT_FRACTION` of :func:`machine_memory`."""
    return int(machine_memory() * DEFAULT_FRACTION)


def parse_memory_limit(value: Any, name: str = "memory_limit") -> int:
    """Bytes of a budget given as an integer or a size string; ``None``/``"auto"`` give the default.

    Raises
    ------
    ValueError
        If ``value`` is not a positive size (e.g. ``"lots"``, ``-1``, ``"2 parsecs"``).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return default_memory_limit()
    expected = "expected bytes as an integer or a size such as '2GB', '1.5 GiB' or '800M' (or None/'auto')"
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not a size: {expected}.")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not value > 0 or value != value or value == float("inf"):
            raise ValueError(f"{name}={value!r} is not a size: {expected}, greater than 0.")
        return int(value)
    if isinstance(value, str):
        match = _SIZE.match(value)
        unit = match.group(2).lower() if match else None
        if match and unit in _UNITS:
            size = int(float(match.group(1)) * _UNITS[unit])
            if size > 0:
                return size
        raise ValueError(f"{name}={value!r} is not a size: {expected}.")
    raise ValueError(f"{name}={value!r} ({type(value).__name__}) is not a size: {expected}.")


def format_size(n: float) -> str:
    """``1.5 GB``-style text (decimal units)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_free_space(needs: Iterable[tuple[str, Path, int]]) -> None:
    """Refuse when the bytes to write do not fit the free space of their file systems.

    Parameters
    ----------
    needs
        ``(what, path, bytes)``: e.g. ``("export", out_dir, 700e6)``, ``("spill", spill_dir, 2.6e9)``;
        needs on the same file system add up.

    Raises
    ------
    OSError
        Naming each part, its size, the file system's free space and what to change.
    """
    by_device: dict[int, list[tuple[str, Path, int]]] = {}
    for what, path, size in needs:
        where = _existing(path)
        by_device.setdefault(os.stat(where).st_dev, []).append((what, where, int(size)))
    for parts in by_device.values():
        total = sum(p[2] for p in parts)
        free = shutil.disk_usage(parts[0][1]).free
        if total > free:
            detail = " + ".join(f"{what} {format_size(size)}" for what, _, size in parts)
            raise OSError(
                f"not enough disk space on the file system of {str(parts[0][1])!r}: the export needs about "
                f"{format_size(total)} ({detail}) but {format_size(free)} is free. Free some space, choose another "
                "out_dir, or put the spill files elsewhere with spill_dir=; nothing was written."
            )
