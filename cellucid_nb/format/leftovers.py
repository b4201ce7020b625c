"""Folders an interrupted export leaves beside ``out_dir`` (detection only, nothing is changed).

The exporter stages an export in ``.<name>.staging-<pid>-<random>`` beside
``out_dir`` and, when replacing, renames the previous export to
``.<name>.old-<pid>-<random>`` for the moment of the swap. A process killed in
between leaves these folders behind. :func:`find_leftovers` lists them so that
``validate_export`` can report them and the next export can repair them
(:func:`cellucid_nb.exporter.swap.recover`).

The bounded-memory export also spills expression rows to ``<SPILL_PREFIX><pid>-<random>``
beside ``out_dir`` (:class:`cellucid_nb.adata.spill.SpillDir`, which takes
:data:`SPILL_PREFIX` from here); those of processes no longer running are leftovers too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Leftovers", "find_leftovers", "staging_prefix", "old_prefix", "lock_file_name", "owner_pid", "pid_alive",
           "SPILL_PREFIX", "spill_owner_pid", "stale_spill_folders"]

#: Spill folders are named ``<SPILL_PREFIX><pid>-<random>`` in the export's parent folder (any export name).
SPILL_PREFIX = ".cellucid_nb-spill-"


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


_SPILL_PID = re.compile(re.escape(SPILL_PREFIX) + r"(\d+)-")


def spill_owner_pid(folder_name: str) -> int | None:
    """The process id in a spill folder's name (``None`` for a name not made by ``SpillDir``)."""
    match = _SPILL_PID.match(folder_name)
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
    spill
        Spill folders in the same parent folder whose process is no longer running (a
        running export's spill folder is in use, not a leftover).
    """

    staging: list[Path] = field(default_factory=list)
    old: list[Path] = field(default_factory=list)
    spill: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.staging or self.old or self.spill)

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
        for path in self.spill:
            out.append(f"spill folder {path.name} of an export that did not finish (process "
                       f"{spill_owner_pid(path.name)}, no longer running); the next export into "
                       f"{path.parent} removes it")
        return out


def find_leftovers(out_dir: str | os.PathLike[str]) -> Leftovers:
    """List staging, renamed-aside and stale spill folders beside ``out_dir`` (nothing is changed).

    Links are never listed (nor followed).

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
    found.spill = stale_spill_folders(parent, entries)
    return found


def stale_spill_folders(folder: str | os.PathLike[str], entries: list[os.DirEntry] | None = None) -> list[Path]:
    """Spill folders in ``folder`` whose process is no longer running (links never listed).

    Parameters
    ----------
    folder
        Where spill folders are made: beside an export, or the ``spill_dir=`` of ``export()``.
    entries
        ``os.scandir(folder)``, when the caller has it already.
    """
    if entries is None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return []
    out = []
    for entry in entries:
        if entry.name.startswith(SPILL_PREFIX) and entry.is_dir(follow_symlinks=False):
            pid = spill_owner_pid(entry.name)
            if pid is not None and not pid_alive(pid):
                out.append(Path(entry.path))
    return out
