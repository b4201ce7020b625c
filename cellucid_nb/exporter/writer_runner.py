"""What the part writers (points, obs, vectors, genes, graph) need from a runner.

Two runners fit: :class:`.runner.ExportRunner` (writes the export) and the size
estimator's recording runner (:mod:`cellucid_nb.adata.estimation_sampling`),
which only measures what would be written.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

import numpy as np

__all__ = ["WriterRunner"]


class WriterRunner(Protocol):
    """The runner methods the part writers call."""

    @property
    def suffix(self) -> str:
        """Suffix of every payload name (``".gz"`` when compressed, else ``""``)."""
        ...

    def mkdir(self, rel: str) -> None:
        """Create the folder ``rel`` of the export."""
        ...

    def check(self) -> None:
        """Raise the first error of a worker task, if any."""
        ...

    def cancelled(self) -> bool:
        """Whether the export was cancelled or failed."""
        ...

    def spawn(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` as a worker task."""
        ...

    def wait(self, futures: list[Future]) -> None:
        """Wait for ``futures``, raising the first error."""
        ...

    def fail(self, err: BaseException) -> None:
        """Record an error raised outside the worker pool (e.g. in a feeder thread)."""
        ...

    def payload_name(self, rel: str) -> str:
        """Relative path of a payload as stored (suffix included)."""
        ...

    def store(
        self, rel: str, data: np.ndarray | bytes, rle: bool = False, items: int = 0,
        on_written: Callable[[], None] | None = None,
    ) -> None:
        """Compress and store one payload under its final name ``rel``."""
        ...

    def write_array(self, rel: str, data: np.ndarray, *, rle: bool = False, items: int = 1) -> str:
        """Queue one payload; returns its relative path (suffix included)."""
        ...

    def write_json(self, rel: str, obj: Any, *, indent: int | None = None, items: int = 1) -> None:
        """Write one JSON document."""
        ...
