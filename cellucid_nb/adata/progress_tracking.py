"""Progress as a person sees it: one bar of 0-100 % that never goes back, a sane time left.

Shared by the export wizard and the CLI, so both show the same bar for the same export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellucid_nb.exporter.progress import EtaEstimator

__all__ = ["ProgressSnapshot", "ProgressTracker", "cancel_outcome"]


@dataclass(frozen=True)
class ProgressSnapshot:
    """What the front-end shows of one progress event (JSON-safe through ``to_dict``)."""

    phase: str
    done: int
    total: int
    bytes: int
    elapsed: float
    eta: float | None
    fraction: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "bytes": self.bytes,
            "elapsed": round(self.elapsed, 3),
            "eta": None if self.eta is None else round(self.eta, 2),
            "fraction": round(self.fraction, 4),
        }


class ProgressTracker:
    """Turn ``ProgressEvent``s into one overall fraction that never goes back.

    The exporter counts ``done``/``total`` work items for the whole export. The
    AnnData export of a backed matrix first reports a ``"load"`` phase (rows
    read of the chosen genes, ``total`` = rows) that takes the first
    ``load_share`` of the bar; the exporter's events that follow count the
    load rows as an offset in both ``done`` and ``total``, which is removed
    here. The fraction stays below 1: only the end of the export thread means
    "done" (the wizard sets 1.0 then).

    The time left follows the one ETA rule (:class:`~cellucid_nb.exporter.progress.EtaEstimator`)
    on the overall fraction, which includes the load phase: none until ``min_fraction`` of the
    work is done *and* ``min_elapsed`` seconds have passed, then
    ``elapsed x (1 - f) / f`` smoothed exponentially (``smoothing`` = weight of
    the newest value), so a 2 s export never shows "about 5 min left".

    Parameters
    ----------
    load_share
        Share of the bar given to the ``"load"`` phase.
    min_fraction, min_elapsed
        No ETA before both are reached.
    smoothing
        Weight of the newest ETA in the running average (0-1].
    """

    def __init__(self, load_share: float = 0.3, min_fraction: float = 0.1, min_elapsed: float = 1.0,
                 smoothing: float = 0.3) -> None:
        self._load_share = load_share
        self._load_total = 0
        self._eta = EtaEstimator(min_fraction, min_elapsed, smoothing)
        self.fraction = 0.0

    def update(self, event: Any) -> ProgressSnapshot:
        phase = str(getattr(event, "phase", ""))
        done = int(getattr(event, "done", 0) or 0)
        total = int(getattr(event, "total", 0) or 0)
        written = int(getattr(event, "bytes_written", 0) or 0)
        elapsed = float(getattr(event, "elapsed", 0.0) or 0.0)
        if phase == "load":
            self._load_total = max(self._load_total, total)
            fraction = self._load_share * (done / total if total > 0 else 0.0)
        elif self._load_total:
            own_done, own_total = done - self._load_total, total - self._load_total
            part = own_done / own_total if own_total > 0 else 0.0
            fraction = self._load_share + (1.0 - self._load_share) * max(part, 0.0)
        else:
            fraction = done / total if total > 0 else 0.0
        self.fraction = min(max(self.fraction, fraction), 0.999)
        return ProgressSnapshot(phase, done, total, written, elapsed, self._time_left(elapsed), self.fraction)

    def _time_left(self, elapsed: float) -> float | None:
        return self._eta.update(self.fraction, elapsed)


def cancel_outcome(out_dir: Path, existed: bool) -> str:
    """What a cancelled export left in ``out_dir``, checked on disk (wizard and CLI word it).

    Returns
    -------
    str
        ``"kept"`` (the folder existed: it holds what it held, an export replaces it only
        when it finishes), ``"nothing"`` (not created) or ``"leftover"`` (created anyway).
    """
    if existed:
        return "kept"
    return "leftover" if Path(out_dir).exists() else "nothing"
