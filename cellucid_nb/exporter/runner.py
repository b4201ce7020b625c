"""The runner: staging folder, worker threads, cancel, atomic move and sidecar.

Every payload goes through :meth:`ExportRunner.write_array`, which compresses,
checksums and writes it in a worker thread (zlib and os.write release the
GIL). The number of queued payloads is bounded so memory stays flat. Nothing
is written into ``out_dir`` until :meth:`ExportRunner.finalize`, and the
sidecar's checksums are always those of the bytes this call produced:

- ``fresh``: ``out_dir`` is absent or empty; the staging folder is renamed into place.
- ``replace`` (``force=True``) and ``merge`` (``force=False``, an export with the
  same settings exists): the staging folder is swapped in for the old export
  (:func:`.swap.replace_folder`); files the old export did not write are kept.
  In ``merge`` mode a payload whose bytes are proven equal to the existing
  file is hard-linked from it instead of written again (``skipped``); any
  other payload is written anew, so the folder never mixes two exports.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..format import codecs
from ..format.checksums import CHECKSUM_KEY, payload_checksum
from ..format.leftovers import staging_prefix
from ..format.spec import IDENTITY_FILE, SIDECAR_FILE
from .gene_payloads import payload_bytes
from .inputs import check_out_dir
from .ownership import conflicts, owned_files, scan_files
from .payload_stream import PayloadStream
from .progress import ExportCancelled, ExportResult, ProgressReporter
from .swap import replace_folder

__all__ = ["ExportRunner", "settings_fingerprint", "inspect_existing", "ExistingExport"]

logger = logging.getLogger(__name__)

# Staging files are always new: O_EXCL without O_TRUNC measured ~2x cheaper to create.
_O_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
#: Threads that create and write files (see ExportRunner.__init__).
_WRITER_THREADS = 2
#: Payloads waiting for the writer threads (bounds memory).
_WRITE_QUEUE = 32


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """Return a stable hash of the export settings (what makes two exports compatible)."""
    text = json.dumps(dict(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _same_bytes(path: Path, payload: bytes | memoryview, n: int) -> bool:
    """Whether ``path`` is a regular file holding exactly ``payload``."""
    try:
        if os.path.islink(path) or os.path.getsize(path) != n:
            return False
        with open(path, "rb") as handle:
            return handle.read(n + 1) == payload
    except OSError:
        return False


def _same_file(a: Path, b: str) -> bool:
    """Whether two files hold the same bytes (compared 1 MiB at a time)."""
    try:
        with open(a, "rb") as x, open(b, "rb") as y:
            while True:
                chunk = x.read(1 << 20)
                if chunk != y.read(1 << 20):
                    return False
                if not chunk:
                    return True
    except OSError:
        return False


def _link_or_copy(source: Path, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # file system without hard links
        shutil.copyfile(source, target)


def _write_file(path: str, payload: bytes | memoryview) -> None:
    fd = os.open(path, _O_FLAGS, 0o644)
    try:
        view = memoryview(payload)
        while view.nbytes:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


class ExistingExport:
    """What is already in ``out_dir`` before an export.

    Attributes
    ----------
    mode
        ``"fresh"`` (absent or empty), ``"export"`` (looks like an export) or
        ``"other"`` (non-empty, but no export files).
    files
        Relative paths (POSIX) of the files present.
    owned
        The files an export wrote (:mod:`.ownership`); the rest are the user's.
    """

    def __init__(self, mode: str, files: set[str], owned: set[str] | None = None) -> None:
        self.mode = mode
        self.files = files
        self.owned = owned if owned is not None else set()

    @property
    def foreign(self) -> set[str]:
        """Files no export wrote (kept by a replace)."""
        return self.files - self.owned


_EXPORT_MARKERS = (IDENTITY_FILE, SIDECAR_FILE)


def inspect_existing(out_dir: Path, manifest_names: tuple[str, ...], dir_names: tuple[str, ...] = ()) -> ExistingExport:
    """Look at ``out_dir`` without changing it.

    Parameters
    ----------
    out_dir
        Target folder.
    manifest_names
        Manifest file names of this export (they mark a folder as an export).
    dir_names
        Payload folder names of this export (ownership of exports without a sidecar).
    """
    check_out_dir(out_dir)  # again, under the lock: a link or file may have appeared since validation
    if not out_dir.exists():
        return ExistingExport("fresh", set())
    files = scan_files(out_dir)
    if not files:
        return ExistingExport("fresh", files)
    markers = set(_EXPORT_MARKERS) | set(manifest_names)
    if not files & markers:
        return ExistingExport("other", files)
    return ExistingExport("export", files, owned_files(out_dir, files, manifest_names, dir_names))


class ExportRunner:
    """Write one export: staging, bounded worker pool, cancel, progress, finalize.

    Parameters
    ----------
    out_dir
        Final folder.
    compression
        Normalised gzip level or ``None``.
    n_workers
        Worker threads for compression and writing.
    reporter
        Progress reporter.
    cancel
        Event that aborts the export when set.
    existing
        What ``out_dir`` holds; decides the finalize mode.
    force
        Replace an existing export.
    layout
        ``(manifest names, payload folder names)`` of this export (ownership without a sidecar).
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        compression: int | None,
        n_workers: int,
        reporter: ProgressReporter,
        cancel: threading.Event | None,
        existing: ExistingExport,
        force: bool,
        layout: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
    ) -> None:
        self.out_dir = out_dir
        self.compression = compression
        self.suffix = codecs.payload_suffix(compression)
        self.reporter = reporter
        self._cancel = cancel
        self._existing = existing
        if existing.mode == "fresh":
            self.mode = "fresh"
        elif force:
            self.mode = "replace"
        else:
            self.mode = "merge"
        self._layout = layout
        # Payloads the old export wrote: reused when their bytes are proven equal (merge mode only).
        self._keep = existing.owned - {SIDECAR_FILE, IDENTITY_FILE} if self.mode == "merge" else set()
        self.files: dict[str, tuple[int, str]] = {}
        self.skipped: list[str] = []
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._slots = threading.BoundedSemaphore(max(4, 4 * n_workers))
        self._pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="cellucid-export")
        self._futures: list[Future] = []
        self._dirs: set[str] = set()
        self._cleanups: list[Callable[[], None]] = []
        #: Compress the exporting thread's payloads in that thread (see write_array).
        self.inline = False
        # Progress callbacks run on the exporting thread only.
        self._owner = threading.get_ident()
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f"{staging_prefix(out_dir.name)}{os.getpid()}-", dir=out_dir.parent))
        # Files are created and written by their own threads, apart from compression
        # (the system calls release the GIL; two writers measured faster than one).
        self._write_queue: queue.Queue = queue.Queue(maxsize=_WRITE_QUEUE)
        self._writers = [
            threading.Thread(target=self._write_loop, args=(i,), name=f"cellucid-export-writer-{i}", daemon=True)
            for i in range(_WRITER_THREADS)
        ]
        for writer in self._writers:
            writer.start()

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> ExportRunner:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()

    def abort(self) -> None:
        """Stop the workers and delete the staging folder (``out_dir`` is untouched)."""
        self._error = self._error or ExportCancelled("export aborted")
        for cleanup in self._cleanups:
            cleanup()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._stop_writer()
        for _ in range(100):  # again while another process may still be creating a file in it
            shutil.rmtree(self.staging, ignore_errors=True)
            if not self.staging.exists():
                break

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Have :meth:`abort` call ``fn()`` before the staging folder is deleted.

        For helpers that write into the staging folder from elsewhere (Dask tasks):
        ``fn`` stops them and returns once they no longer write.
        """
        self._cleanups.append(fn)

    def _write_loop(self, index: int) -> None:
        root = str(self.staging)
        while True:
            item = self._write_queue.get()
            if item is None:
                return
            rel, payload, on_written = item
            try:
                if self._error is None:
                    if isinstance(payload, Path):
                        _link_or_copy(payload, os.path.join(root, rel))
                    else:
                        _write_file(os.path.join(root, rel), payload)
            except BaseException as err:  # noqa: BLE001 - handed to the exporting thread
                self.fail(err)
            finally:
                if on_written is not None:
                    on_written()

    def _stop_writer(self) -> None:
        for writer in self._writers:
            if not writer.is_alive():
                continue
            while True:
                try:
                    self._write_queue.put(None, timeout=0.05)
                    break
                except queue.Full:
                    if self._error is not None:
                        # Drop queued payloads: the export is being abandoned.
                        try:
                            while True:
                                item = self._write_queue.get_nowait()
                                if item is not None and item[2] is not None:
                                    item[2]()
                        except queue.Empty:
                            pass
        for writer in self._writers:
            writer.join()

    def cancelled(self) -> bool:
        """Whether the cancel event is set or a worker failed."""
        return self._error is not None or (self._cancel is not None and self._cancel.is_set())

    def check(self) -> None:
        """Raise :class:`ExportCancelled` or a worker's error; deliver throttled progress."""
        if self._error is not None and not isinstance(self._error, ExportCancelled):
            raise self._error
        if self._cancel is not None and self._cancel.is_set():
            raise ExportCancelled("export cancelled; the staging folder was removed and out_dir is unchanged")
        if threading.get_ident() == self._owner:
            self.reporter.poll()

    # -- writing ---------------------------------------------------------------------------
    def mkdir(self, rel: str) -> None:
        """Create a folder in the staging area once."""
        if rel not in self._dirs:
            (self.staging / rel).mkdir(parents=True, exist_ok=True)
            self._dirs.add(rel)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` in a worker; blocks while too many items are queued."""
        while not self._slots.acquire(timeout=0.05):
            self.check()
        self.check()
        try:
            future = self._pool.submit(self._guarded, fn, args, True)
        except BaseException:
            self._slots.release()
            raise
        self._track(future)
        return future

    def spawn(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue ``fn(*args)`` for a worker without waiting for a free slot.

        For tasks that hold no memory until they run (a gene block reads its
        columns when it starts), so that all of them can be queued at once while
        the exporting thread goes on with other parts.
        """
        if self.cancelled():  # may run in a helper thread: no progress callback here
            raise self._error if self._error is not None else ExportCancelled("export cancelled")
        future = self._pool.submit(self._guarded, fn, args, False)
        self._track(future)
        return future

    def _track(self, future: Future) -> None:
        with self._lock:  # the gene feeder thread spawns too
            self._futures.append(future)
            if len(self._futures) > 4096:
                self._futures = [f for f in self._futures if not f.done()]

    def fail(self, err: BaseException) -> None:
        """Record a helper thread's error; the exporting thread raises it at its next check."""
        with self._lock:
            if self._error is None:
                self._error = err

    def _guarded(self, fn: Callable[..., Any], args: tuple, holds_slot: bool) -> Any:
        try:
            if not self.cancelled():
                return fn(*args)
        except BaseException as err:  # noqa: BLE001 - handed to the exporting thread
            self.fail(err)
        finally:
            if holds_slot:
                self._slots.release()

    def wait(self, futures: list[Future]) -> None:
        """Wait for ``futures``; raise a worker's error or a cancel (polls progress meanwhile)."""
        for future in futures:
            while True:
                try:
                    future.result(timeout=0.05)
                    break
                except TimeoutError:
                    self.check()
        self.check()

    def payload_name(self, rel: str) -> str:
        """Return the relative path of a payload with the gzip suffix when compressing."""
        return rel + self.suffix

    def store(
        self, rel: str, data: np.ndarray | bytes, rle: bool = False, items: int = 0,
        on_written: Callable[[], None] | None = None,
    ) -> None:
        """Compress, checksum and write one payload (call from a worker or the exporting thread).

        Parameters
        ----------
        rel
            Final relative path (gzip suffix included).
        data
            Little-endian array or bytes.
        rle
            Use zlib's run-length strategy (sparse payloads).
        items
            Work items this payload completes, for progress.
        on_written
            Called once the payload is on disk (or dropped): ``data`` may then be reused.
        """
        self._store_compressed(rel, payload_bytes(data, self.compression, rle), items, on_written)

    def write_array(self, rel: str, data: np.ndarray, *, rle: bool = False, items: int = 1) -> str:
        """Queue one payload; returns its relative path (with gzip suffix).

        Small payloads go to one worker each; a large one (points, edges of a
        big dataset) is deflated here in chunks spread over all workers. With
        :attr:`inline` set (the workers are writing genes meanwhile), everything
        is compressed in the calling thread, which keeps both cores busy.
        """
        name = self.payload_name(rel)
        self.check()
        # Worker tasks (obs fields) store their payloads themselves: waiting for a
        # queue slot or for chunks from the same pool could deadlock.
        inline = self.inline or threading.get_ident() != self._owner
        if not self.compression or data.nbytes <= codecs.CHUNK_BYTES:
            if inline:
                self.store(name, data, rle, items)
            else:
                self.submit(self.store, name, data, rle, items)
            return name
        raw = np.ascontiguousarray(data).data.cast("B")
        strategy = codecs.dense_strategy(raw, self.compression) if not rle else None
        # Inline: the workers are busy with genes, this thread deflates alone.
        map_fn = None if inline else self._pool.map
        payload = codecs.gzip_bytes(raw, self.compression, rle=rle, strategy=strategy, map_fn=map_fn)
        if inline:
            self._store_compressed(name, payload, items)
        else:
            self.submit(self._store_compressed, name, payload, items)
        return name

    def open_stream(self, rel: str) -> PayloadStream:
        """Start a payload written piece by piece (``append`` arrays, then :meth:`close_stream`).

        Its bytes are those of :meth:`write_array` on the concatenated pieces, at the
        memory of one piece (:mod:`.payload_stream`).
        """
        self.check()
        return PayloadStream(self.staging, self.payload_name(rel), self.compression)

    def close_stream(self, stream: PayloadStream, *, items: int = 1) -> str:
        """Write a streamed payload into place (here, chunks deflated by the workers); returns its path."""
        self.check()
        inline = self.inline or threading.get_ident() != self._owner
        n, digest = stream.finish(None if inline else self._pool.map)
        self._record_staged(stream.name, n, digest, items)
        return stream.name

    def adopt(self, rel: str, n_bytes: int, checksum: str, *, items: int = 1) -> None:
        """Count a payload that another process already wrote at ``staging/rel`` (any thread).

        The file must be complete (written elsewhere and renamed into place). In merge
        mode, a file equal to the old export's is replaced by a link to it after the fact
        (as :meth:`close_stream` does): the bytes were written by a task that could not
        see the old export's files.

        Raises
        ------
        OSError
            The file is missing or its size is not ``n_bytes`` (the tasks do not write
            the staging folder this process sees: no shared file system).
        """
        staged = os.path.join(self.staging, rel)
        size = os.path.getsize(staged) if os.path.isfile(staged) else None
        if size != n_bytes:
            raise OSError(f"payload {rel!r} in the staging folder {str(self.staging)!r} holds {size} bytes, expected "
                          f"{n_bytes} (written by a remote task: is the staging folder on a file system every worker "
                          "and this process share?)")
        self._record_staged(rel, n_bytes, checksum, items)

    def _record_staged(self, rel: str, n: int, digest: str, items: int) -> None:
        """Count a payload already in the staging folder; merge mode links the old export's equal file instead."""
        old = self.out_dir / rel
        if rel in self._keep and not os.path.islink(old) and os.path.isfile(old) and os.path.getsize(old) == n:
            staged = os.path.join(self.staging, rel)
            if _same_file(old, staged):  # merge mode: reuse the old export's equal file, as _store_compressed does
                os.unlink(staged)
                _link_or_copy(old, staged)
                with self._lock:
                    self.skipped.append(rel)
        with self._lock:
            self.files[rel] = (n, digest)
        self.reporter.advance(items, n)

    def _store_compressed(
        self, rel: str, payload: bytes | memoryview, items: int, on_written: Callable[[], None] | None = None
    ) -> None:
        """Checksum a final payload, queue it for the writer threads and count it.

        A payload equal, byte for byte, to the file the old export wrote at ``rel``
        (merge mode) is hard-linked from it instead.
        """
        digest = payload_checksum(payload)
        n = memoryview(payload).nbytes
        if rel in self._keep and _same_bytes(self.out_dir / rel, payload, n):
            with self._lock:
                self.skipped.append(rel)
            self._write_queue.put((rel, self.out_dir / rel, on_written))
        else:
            self._write_queue.put((rel, payload, on_written))
        with self._lock:
            self.files[rel] = (n, digest)
        self.reporter.advance(items, n)

    def write_json(self, rel: str, obj: Any, *, indent: int | None = None, items: int = 1) -> None:
        """Write a JSON document now (manifests are never skipped: they describe this export)."""
        text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)
        payload = text.encode("utf-8")
        _write_file(os.path.join(self.staging, rel), payload)
        with self._lock:
            self.files[rel] = (len(payload), payload_checksum(payload))
        self.reporter.advance(items, len(payload))

    def drain(self) -> None:
        """Wait for every queued task; raise a worker's error or a cancel."""
        self.wait(self._futures)
        self._futures.clear()

    # -- finishing -------------------------------------------------------------------------
    def finalize(self, sidecar: dict[str, Any], started: float, warning_messages: list[str]) -> ExportResult:
        """Write the sidecar, move the export into place and return the result.

        Parameters
        ----------
        sidecar
            Sidecar content without ``files`` (added here).
        started
            ``time.perf_counter()`` at the start of the export.
        warning_messages
            Warnings issued during the export.
        """
        self.drain()
        self._pool.shutdown(wait=True)
        self._stop_writer()
        self.check()
        all_files = dict(self.files)
        sidecar = dict(sidecar)
        sidecar["files"] = {rel: {"bytes": n, CHECKSUM_KEY: h} for rel, (n, h) in sorted(all_files.items())}
        text = json.dumps(sidecar, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False).encode("utf-8")
        _write_file(os.path.join(self.staging, SIDECAR_FILE), text)
        self.reporter.advance(0, len(text))
        self.check()  # last chance to cancel before anything in out_dir changes
        kept: list[str] = []
        if self.mode == "fresh":
            if self.out_dir.exists():
                self.out_dir.rmdir()  # empty (checked before the export)
            os.replace(self.staging, self.out_dir)
        else:
            blocked = conflicts(self._existing.foreign, [*all_files, SIDECAR_FILE])
            if blocked:
                raise FileExistsError(
                    f"out_dir {str(self.out_dir)!r} holds {len(blocked)} file(s) no export wrote where this export "
                    f"writes its own: {blocked[:10]}; move or rename them and export again (nothing was changed)."
                )
            kept = replace_folder(self.staging, self.out_dir, *self._layout)
        if self.skipped:
            logger.info("%d payload(s) equal to the existing files were linked, not rewritten", len(self.skipped))
        if kept:
            message = (
                f"kept {len(kept)} file(s) in {str(self.out_dir)!r} that no export wrote "
                f"(an export replaces only its own files): {kept[:10]}"
            )
            warnings.warn(message, UserWarning, stacklevel=5)
            warning_messages.append(message)
        n_bytes = sum(n for n, _ in all_files.values()) + len(text)
        self.reporter.finish()
        return ExportResult(
            path=self.out_dir,
            n_bytes=n_bytes,
            n_files=len(all_files) + 1,
            seconds=time.perf_counter() - started,
            warnings=list(warning_messages),
            skipped=sorted(self.skipped),
        )


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shaped the bytes (for the sidecar)."""
    import pandas
    import scipy

    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "deflate": codecs.DEFLATE_IMPLEMENTATION,
    }
