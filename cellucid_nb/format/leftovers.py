"""Folders an interrupted export leaves beside ``out_dir`` (detection only, nothing is changed).

The exporter stages an export in ``.<name>.staging-<pid>-<random>`` beside
``out_dir`` and, when replacing, renames the previous export to
``.<name>.old-<pid>-<random>`` for the moment of the swap. A process killed in
between leaves these folders behind. :func:`find_leftovers` lists them so that
``validate_export`` can report them and the next export can repair them
(:mod:`cellucid_nb.exporter.recovery`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Leftovers", "find_leftovers", "staging_prefix", "old_prefix", "lock_file_name", "owner_pid", "pid_alive"]


def staging_prefix(name: str) -> str:
    """Prefix of the staging folders of the export folder called ``name``."""
    return f".{name}.staging-"


def old_prefix(name: str) -> str:
    """Prefix of the folder a replaced export is renamed to during the swap."""
    return f".{name}.old-"


def lock_file_name(name: str) -> str:
    """Name of the lock file an export of ``name`` holds beside it while it runs."""
    return f".{name}.cellucid_nb.lock"


_PID = re.compile(r"\.(?:staging|old)-(\d+)-[^.]*$")


def owner_pid(folder_name: str) -> int | None:
    """The process id encoded in a staging / old folder name (``None`` for older names without one)."""
    match = _PID.search(folder_name)
    return int(match.group(1)) if match else None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id is running (``False`` for ``None``)."""
    if pid is None or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


@dataclass
class Leftovers:
    """Leftover folders of one export folder.

    Attributes
    ----------
    staging
        Staging folders (an export that never reached ``out_dir``).
    old
        Previous exports renamed aside by a replace that did not finish.
    """

    staging: list[Path] = field(default_factory=list)
    old: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.staging or self.old)

    def describe(self) -> list[str]:
        """One sentence per leftover folder."""
        out = []
        for path in self.staging:
            pid = owner_pid(path.name)
            if pid is not None and pid_alive(pid):
                out.append(f"staging folder {path.name} of an export in progress (process {pid}, running)")
            else:
                out.append(f"staging folder {path.name} of an export that did not finish (process {pid}, no longer "
                           "running); the next export to this folder removes it")
        for path in self.old:
            out.append(f"{path.name} holds a previous export renamed aside by a replace that did not finish; the "
                       "next export to this folder restores or completes it")
        return out


def find_leftovers(out_dir: str | os.PathLike[str]) -> Leftovers:
    """List staging and renamed-aside folders beside ``out_dir`` (nothing is changed).

    Parameters
    ----------
    out_dir
        An export folder (it need not exist).
    """
    path = Path(os.path.abspath(out_dir))
    found = Leftovers()
    parent = path.parent
    if not path.name or not parent.is_dir():
        return found
    staging, old = staging_prefix(path.name), old_prefix(path.name)
    try:
        entries = sorted(os.scandir(parent), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        if entry.name.startswith(staging):
            found.staging.append(Path(entry.path))
        elif entry.name.startswith(old):
            found.old.append(Path(entry.path))
    return found
