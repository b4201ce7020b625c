"""Background work for the export wizard: latest-only jobs, throttling, the export thread.

The wizard never computes in the kernel's main thread: estimates, gene presets
and preview samples run in a :class:`LatestOnlyWorker` (a newer request replaces
an older one that has not started), and the export runs in an :class:`ExportJob`
thread that reports progress at most ``max_rate`` times per second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from cellucid_nb.adata.progress_tracking import ProgressSnapshot, ProgressTracker, cancel_outcome

__all__ = ["LatestOnlyWorker", "Throttle", "ExportJob", "ProgressSnapshot", "ProgressTracker", "cancel_outcome"]

logger = logging.getLogger(__name__)


class LatestOnlyWorker:
    """One daemon thread that runs the most recent job submitted.

    A job submitted while another waits replaces the waiting one (it is never
    run); the job already running finishes, and its ``on_done`` learns through
    ``is_latest`` whether a newer request arrived meanwhile.

    Parameters
    ----------
    name
        Thread name, for debugging.
    """

    def __init__(self, name: str = "cellucid-wizard-worker") -> None:
        self._name = name
        self._cond = threading.Condition()
        self._pending: tuple[int, Callable[[], Any], Callable[[int, Any, BaseException | None], None]] | None = None
        self._running = False
        self._serial = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def latest(self) -> int:
        """Serial number of the newest job submitted."""
        return self._serial

    def is_latest(self, serial: int) -> bool:
        """Whether job ``serial`` is still the newest one submitted."""
        return serial == self._serial

    @property
    def busy(self) -> bool:
        """True while a job is waiting or running."""
        with self._cond:
            return self._running or self._pending is not None

    def submit(
        self,
        job: Callable[[], Any],
        on_done: Callable[[int, Any, BaseException | None], None],
    ) -> int:
        """Queue ``job``; ``on_done(serial, value, error)`` runs in the worker thread afterwards."""
        with self._cond:
            if self._closed:
                raise RuntimeError(f"worker {self._name!r} is closed")
            self._serial += 1
            self._pending = (self._serial, job, on_done)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return self._serial

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job waits or runs; return False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._running or self._pending is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        """Drop the waiting job and let the thread end after the running one."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    # idle threads exit after a while; submit() starts a new one
                    if not self._cond.wait(30.0) and self._pending is None:
                        return
                if self._closed:
                    return
                serial, job, on_done = self._pending  # type: ignore[misc]
                self._pending = None
                self._running = True
            value, error = None, None
            try:
                value = job()
            except BaseException as exc:  # noqa: BLE001 - reported through on_done
                error = exc
            try:
                on_done(serial, value, error)
            except Exception:  # a failing callback must not kill the worker
                logger.exception("wizard worker callback failed")
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()


class Throttle:
    """Let an update through at most ``max_rate`` times per second.

    Parameters
    ----------
    max_rate
        Updates per second.
    clock
        Monotonic clock (injectable for tests).
    """

    def __init__(self, max_rate: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / max_rate
        self._clock = clock
        self._last = -float("inf")

    def ready(self, force: bool = False) -> bool:
        """True if an update may go now (always when ``force``); records it."""
        now = self._clock()
        if force or now - self._last >= self._interval:
            self._last = now
            return True
        return False


class ExportJob:
    """Run ``work(progress, cancel)`` in a daemon thread and keep its outcome.

    Parameters
    ----------
    work
        ``work(progress_callback, cancel_event) -> result``; exceptions are kept.
    on_progress
        Called with each progress event (in the export thread).
    on_finish
        Called once with ``(result, error)`` in the export thread when it ends.
    """

    def __init__(
        self,
        work: Callable[[Callable[[Any], None], threading.Event], Any],
        on_progress: Callable[[Any], None],
        on_finish: Callable[[Any, BaseException | None], None],
    ) -> None:
        self.cancel_event = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self._work = work
        self._on_progress = on_progress
        self._on_finish = on_finish
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cellucid-wizard-export", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._finished.is_set()

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job and its ``on_finish`` ended; False on timeout."""
        return self._finished.wait(timeout)

    def _run(self) -> None:
        try:
            self.result = self._work(self._on_progress, self.cancel_event)
        except BaseException as exc:  # noqa: BLE001 - kept and shown in the widget
            self.error = exc
        try:
            self._on_finish(self.result, self.error)
        except Exception:
            logger.exception("wizard export callback failed")
        finally:
            self._finished.set()
