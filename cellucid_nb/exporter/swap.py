"""Moving a finished export into place, and repairing a move a crash interrupted.

A replace is two renames and a clean-up::

    out_dir  -> .<name>.old-<pid>-<random>     (1: the previous export steps aside)
    staging  -> out_dir                         (2: the new export takes its place)
    foreign files of the old folder -> out_dir  (3: the user's files come back)
    owned files of the old folder are deleted   (4: sidecar last, then empty folders)

Each step is repeatable, so :func:`recover` (run by the next export under the
lock) can complete any interrupted sequence: a ``.old-*`` folder without
``out_dir`` is renamed back (the replace never happened, "restored"); a
``.old-*`` folder beside an ``out_dir`` gets steps 3 and 4 ("finished");
staging folders of processes that are no longer running are deleted, and so
are the spill folders (``SPILL_PREFIX``) such processes left in the same parent.

Decision (issue 11): a replace keeps the files it does not own and reports
them, rather than refusing. Users keep notebooks and figures next to their
export, and ``export()`` replaces its own exports by default: refusing would
make every re-export fail until they move their files, while keeping them
costs one rename each and loses nothing. A foreign file that sits where the
new export writes a file (or a folder) is the one case that is refused, before
anything in ``out_dir`` changes, naming the files.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

from ..format.leftovers import find_leftovers, old_prefix, owner_pid, pid_alive, spill_owner_pid
from ..format.spec import SIDECAR_FILE
from .locking import ExportLock
from .ownership import owned_files, scan_files

__all__ = ["replace_folder", "finish_replace", "recover", "repair", "folder_bytes", "remove_stale_spills"]

logger = logging.getLogger(__name__)


def _rename(src: Path, dst: Path) -> None:
    """``os.replace`` (one place, so tests can interrupt the sequence between two renames)."""
    os.replace(src, dst)


def folder_bytes(folder: Path) -> int:
    """Total size of the files under ``folder`` (links not followed)."""
    total = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def replace_folder(staging: Path, out_dir: Path, manifests: Iterable[str] = (), dirs: Iterable[str] = ()) -> list[str]:
    """Swap ``staging`` in for the export in ``out_dir``; keep the files the old export did not own.

    Parameters
    ----------
    staging
        The complete new export.
    out_dir
        The folder holding the previous export.
    manifests, dirs
        Manifest and payload folder names (ownership of exports without a sidecar).

    Returns
    -------
    list of str
        Relative paths of the foreign files kept.
    """
    aside = Path(tempfile.mkdtemp(prefix=f"{old_prefix(out_dir.name)}{os.getpid()}-", dir=out_dir.parent))
    aside.rmdir()
    _rename(out_dir, aside)
    try:
        _rename(staging, out_dir)
    except BaseException:
        _rename(aside, out_dir)
        raise
    kept, left = finish_replace(aside, out_dir, manifests, dirs)
    if left:  # a file of the user's appeared during the export where the new export wrote one
        warnings.warn(
            f"{len(left)} file(s) no export wrote could not be moved back into {str(out_dir)!r} because the new "
            f"export uses their paths; they stay in {str(aside)!r}: {left[:10]}",
            UserWarning,
            stacklevel=6,
        )
    return kept


def finish_replace(
    aside: Path, out_dir: Path, manifests: Iterable[str] = (), dirs: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Steps 3 and 4: move the foreign files of ``aside`` into ``out_dir``, delete the owned ones.

    Returns
    -------
    kept, left
        Foreign files moved into ``out_dir``; files that could not be moved (their
        path is taken in ``out_dir``) and stay in ``aside``.
    """
    files = scan_files(aside)
    owned = owned_files(aside, files, manifests, dirs)
    kept: list[str] = []
    left: list[str] = []
    _move_foreign(aside, out_dir, "", files, owned, kept, left)
    for rel in sorted(owned - {SIDECAR_FILE}):
        (aside / rel).unlink(missing_ok=True)
    (aside / SIDECAR_FILE).unlink(missing_ok=True)  # last: until then the old folder says what it owns
    for root, _dirs, _names in sorted(os.walk(aside, topdown=False), key=lambda t: -len(t[0])):
        try:
            os.rmdir(root)
        except OSError:
            pass  # not empty: a file that could not be moved
    return sorted(kept), sorted(left)


def _move_foreign(src_root: Path, dst_root: Path, rel_dir: str, files: set[str], owned: set[str],
                  kept: list[str], left: list[str]) -> None:
    src = src_root / rel_dir if rel_dir else src_root
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        target = dst_root / rel
        if entry.is_dir(follow_symlinks=False):
            prefix = rel + "/"
            holds_owned = any(o.startswith(prefix) for o in owned)
            if not holds_owned and not os.path.lexists(target):
                _rename(Path(entry.path), target)  # one rename for a whole folder of the user's
                kept.extend(sorted(f for f in files if f.startswith(prefix)) or [rel + "/"])
            elif os.path.isdir(target) and not os.path.islink(target) or not os.path.lexists(target):
                _move_foreign(src_root, dst_root, rel, files, owned, kept, left)  # folders made on demand
            else:
                left.extend(f for f in files if f.startswith(prefix) and f not in owned)
        elif rel not in owned:
            if os.path.lexists(target):
                left.append(rel)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                _rename(Path(entry.path), target)
                kept.append(rel)


def remove_stale_spills(spills: list[Path]) -> list[str]:
    """Delete spill folders (from :func:`~cellucid_nb.format.leftovers.stale_spill_folders`) of dead processes.

    The process is checked again right before (never a running one's), and a link is never
    followed; returns one sentence per folder removed.
    """
    messages = []
    for spill in spills:
        pid = spill_owner_pid(spill.name)
        if pid_alive(pid) or spill.is_symlink():
            continue
        size = folder_bytes(spill)
        shutil.rmtree(spill, ignore_errors=True)
        messages.append(f"removed stale spill folder {spill.name} ({size:,} bytes) left by process {pid}, "
                        "no longer running")
    return messages


def recover(out_dir: Path, manifests: Iterable[str] = (), dirs: Iterable[str] = ()) -> list[str]:
    """Repair what interrupted exports left beside ``out_dir``; call it holding the export lock.

    Parameters
    ----------
    out_dir
        The export folder (absolute).
    manifests, dirs
        Manifest and payload folder names (ownership of exports without a sidecar).

    Returns
    -------
    list of str
        One sentence per repair (also logged as warnings).
    """
    found = find_leftovers(out_dir)
    messages: list[str] = []
    for staging in found.staging:
        pid = owner_pid(staging.name)
        if pid is not None and pid != os.getpid() and pid_alive(pid):
            messages.append(f"kept staging folder {staging.name}: its process {pid} is still running")
            continue
        size = folder_bytes(staging)
        shutil.rmtree(staging, ignore_errors=True)
        who = f"process {pid}, no longer running" if pid is not None else "an earlier export"
        messages.append(f"removed stale staging folder {staging.name} ({size:,} bytes) left by {who}")
    messages += remove_stale_spills(found.spill)  # any export's, in out_dir's parent
    olds = sorted(found.old, key=lambda p: p.stat().st_mtime)
    if olds and os.path.isdir(out_dir) and not os.path.islink(out_dir) and not any(os.scandir(out_dir)):
        out_dir.rmdir()  # an empty folder made after the crash: the previous export goes back in its place
    if olds and not os.path.lexists(out_dir):
        newest = olds.pop()
        _rename(newest, out_dir)
        messages.append(
            f"restored the previous export from {newest.name} to {out_dir.name}: a replace was interrupted "
            "between its two renames"
        )
    for old in olds:
        kept, left = finish_replace(old, out_dir, manifests, dirs)
        text = f"finished an interrupted replace: removed the previous export in {old.name}"
        if kept:
            text += f" and moved {len(kept)} file(s) no export wrote back into {out_dir.name} ({kept[:5]})"
        if left:
            text += f"; {len(left)} file(s) stay in {old.name} because their path is taken: {left[:5]}"
        messages.append(text)
    for text in messages:
        logger.warning("%s: %s", out_dir, text)
    return messages


def repair(out_dir: str | os.PathLike[str]) -> list[str]:
    """Repair the leftovers of interrupted exports beside ``out_dir`` now, without exporting.

    Takes the export lock (fails at once if an export is running), then does what
    the next export would do first: see :func:`recover`.

    Parameters
    ----------
    out_dir
        The export folder.

    Returns
    -------
    list of str
        What was done, one sentence per repair (empty: nothing to repair).
    """
    path = Path(os.path.abspath(out_dir))
    if not path.parent.is_dir():
        return []
    with ExportLock(path):
        return recover(path)
