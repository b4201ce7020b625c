"""One export at a time per ``out_dir``: a lock file beside it, holding the owner's pid.

The lock is ``.<name>.cellucid_nb.lock`` in ``out_dir``'s parent. On POSIX it is
an ``fcntl.flock`` lock, which the kernel releases when its process dies (even
by ``kill -9``), so a lock is never stale; two locks taken in one process (two
threads) conflict too, because each opens the file anew. Elsewhere the file is
created exclusively and a lock whose pid is no longer running is taken over.

A second export fails at once (it does not wait): an export can take minutes,
and a caller blocked without a word is worse than a clear error.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from ..format.leftovers import lock_file_name, pid_alive

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ExportLock", "ExportBusyError"]


class ExportBusyError(RuntimeError):
    """Another export is writing to the same ``out_dir``."""


def _busy(out_dir: Path, pid_text: str) -> ExportBusyError:
    who = f"process {pid_text}" if pid_text else "another process"
    return ExportBusyError(
        f"another export is writing to {str(out_dir)!r} ({who}, lock file "
        f"{lock_file_name(out_dir.name)!r}); wait for it to finish or choose another out_dir."
    )


class ExportLock:
    """Hold the lock of ``out_dir`` (a context manager; the lock file is removed on release).

    Parameters
    ----------
    out_dir
        The export folder (absolute); its parent must exist.

    Raises
    ------
    ExportBusyError
        Another export (thread or process) holds the lock.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir.parent / lock_file_name(out_dir.name)
        self._fd: int | None = None

    def acquire(self) -> ExportLock:
        """Take the lock or raise :class:`ExportBusyError`."""
        if fcntl is None:  # pragma: no cover - Windows
            return self._acquire_exclusive()
        for _attempt in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise PermissionError(
                    f"cannot create the lock file {str(self.path)!r} beside out_dir ({exc.strerror}); expected a "
                    "writable parent folder."
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                text = _read(fd)
                os.close(fd)
                raise _busy(self.out_dir, text) from None
            # The previous holder may have removed the file between our open and flock:
            # then we locked an unlinked file and must retry on the new one.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return self
            os.close(fd)
        raise _busy(self.out_dir, "")

    def _acquire_exclusive(self) -> ExportLock:  # pragma: no cover - Windows
        for _attempt in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                text = self.path.read_text(errors="replace").strip() if self.path.exists() else ""
                if text.isdigit() and not pid_alive(int(text)):
                    self.path.unlink(missing_ok=True)  # its owner died
                    continue
                raise _busy(self.out_dir, text) from None
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
            return self
        raise _busy(self.out_dir, "")

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # closing releases the flock

    def __enter__(self) -> ExportLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        return ""
