"""Progress events, the export result and the cancel exception.

The runner counts work items (one per file or per gene) and reports them
through :class:`ProgressReporter`, which throttles the user's callback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ProgressEvent", "ExportResult", "ExportCancelled", "ProgressReporter", "EtaEstimator", "PHASES"]

#: Phases in the order an export reports them. Obs fields and genes are written by
#: the worker threads from the start; "obs" and "genes" are the waits for the last of them.
PHASES = ("validate", "points", "graph", "vectors", "obs", "genes", "identity", "finalize")


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report; also unpacks as ``(phase, done, total, bytes_written, elapsed, eta)``.

    Attributes
    ----------
    phase
        One of :data:`PHASES`.
    done, total
        Work items finished and planned for the whole export (``done`` never decreases).
    bytes_written
        Bytes written so far, whole export.
    elapsed
        Seconds since the export started.
    eta
        Estimated seconds left (:class:`EtaEstimator`), ``None`` until 10 % is done and 1 s has passed.
    """

    phase: str
    done: int
    total: int
    bytes_written: int
    elapsed: float
    eta: float | None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.phase, self.done, self.total, self.bytes_written, self.elapsed, self.eta))


class ExportCancelled(Exception):
    """Raised by ``prepare()`` / ``export()`` after a cancelled export was cleaned up."""


@dataclass
class ExportResult:
    """What an export produced.

    Attributes
    ----------
    path
        The export folder.
    n_bytes, n_files
        Size and number of files of the finished export (sidecar included).
    seconds
        Wall-clock duration.
    warnings
        Warning messages issued during the export.
    skipped
        Relative paths of existing payloads reused because their bytes equal the new ones (``force=False``).
    """

    path: Path
    n_bytes: int
    n_files: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        d = asdict(self)
        d["path"] = str(self.path)
        return d



class EtaEstimator:
    """Time left from the overall fraction done: the one ETA rule of every progress display.

    None until ``min_fraction`` of the work is done *and* ``min_elapsed`` seconds have
    passed, then ``elapsed x (1 - f) / f`` smoothed exponentially. The first work items
    (validation, small files) are not typical of the rest, so an earlier guess would
    be wild: a 2 s export once showed "about 5 min left".

    Parameters
    ----------
    min_fraction, min_elapsed
        No ETA before both are reached.
    smoothing
        Weight of the newest value in the running average (0-1].
    """

    def __init__(self, min_fraction: float = 0.1, min_elapsed: float = 1.0, smoothing: float = 0.3) -> None:
        self._min_fraction = min_fraction
        self._min_elapsed = min_elapsed
        self._smoothing = smoothing
        self._eta: float | None = None

    def update(self, fraction: float, elapsed: float) -> float | None:
        """Return the seconds left after ``fraction`` (0-1) of the work took ``elapsed`` seconds."""
        if fraction >= 1.0:
            return 0.0
        if fraction < self._min_fraction or elapsed < self._min_elapsed:
            return None
        raw = elapsed * (1.0 - fraction) / fraction
        a = self._smoothing
        self._eta = raw if self._eta is None else a * raw + (1.0 - a) * self._eta
        return self._eta

class ProgressReporter:
    """Count finished work items and call the user's callback at most ~10 times a second.

    Worker threads only increment counters (:meth:`advance`); the exporting
    thread calls :meth:`poll` so that the callback always runs on that thread.
    The first and the last event are always delivered.

    Parameters
    ----------
    callback
        The user's callback, or ``None``.
    total
        Planned number of work items.
    min_interval
        Minimum seconds between two events.
    """

    def __init__(
        self,
        callback: Callable[[ProgressEvent], None] | None,
        total: int,
        min_interval: float = 0.1,
    ) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._start = time.perf_counter()
        self._last_emit: float | None = None
        self._min_interval = min_interval
        self.total = max(int(total), 1)
        self.done = 0
        self.bytes_written = 0
        self.phase = PHASES[0]
        self._eta = EtaEstimator()

    def advance(self, items: int = 0, n_bytes: int = 0) -> None:
        """Record finished items and written bytes (thread-safe, never calls back)."""
        with self._lock:
            self.done = min(self.done + items, self.total)
            self.bytes_written += n_bytes

    def set_phase(self, phase: str) -> None:
        """Enter a phase and report it."""
        self.phase = phase
        self.poll(force=True)

    def event(self) -> ProgressEvent:
        """Return the current state as an event."""
        with self._lock:
            done, n_bytes = self.done, self.bytes_written
        elapsed = time.perf_counter() - self._start
        eta = self._eta.update(done / self.total, elapsed)
        return ProgressEvent(self.phase, done, self.total, n_bytes, elapsed, eta)

    def poll(self, force: bool = False) -> None:
        """Deliver an event if the throttle allows it (or ``force``)."""
        if self._callback is None:
            return
        now = time.perf_counter()
        if not force and self._last_emit is not None and now - self._last_emit < self._min_interval:
            return
        self._last_emit = now
        self._callback(self.event())

    def finish(self) -> None:
        """Mark everything done and deliver the last event."""
        with self._lock:
            self.done = self.total
        self.phase = PHASES[-1]
        self.poll(force=True)
