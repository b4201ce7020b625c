"""The row pass as Dask tasks (``export(..., client=...)``; needs ``pip install "cellucid_nb[dask]"``).

Each task takes one range of rows: it opens the h5ad file or zarr store itself, by
path (nothing but the path, the element name and the chosen columns travels from
the client), reads its rows and writes its own spill file ``rows_<start>.bin`` in
the spill folder, which every worker must see at the same path (a shared file
system). A task that runs again (its worker died, Dask retried it) rewrites its
file from scratch, so retries change nothing. A Dask-array source (``read_elem_lazy``,
``read_lazy``) is spilled block by block by the array's own tasks, which open the
file themselves too.

The client gathers only each file's record index (a few integers per gene); the
gene payloads are then built by tasks too (:mod:`.gene_tasks`), which read the
spill and write into the staging folder, so that folder must be shared as well.

Progress comes from finished tasks (rows done); a cancel cancels the futures, and
the caller deletes the spill folder.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cellucid_nb.adata.sources import RowSource, opened_element, read_row_chunk
from cellucid_nb.adata.spill import SpillDir, SpilledMatrix, SpillRecord, write_records
from cellucid_nb.exporter.progress import ExportCancelled
from cellucid_nb.format.codecs import DEFLATE_IMPLEMENTATION

__all__ = ["check_workers", "spill_with_client", "finished_futures", "TASK_RETRIES"]

#: Extra attempts Dask gives a task that failed (a worker that dies is not counted by Dask).
TASK_RETRIES = 2
#: Seconds between two checks of the cancel event while tasks run.
_POLL = 0.2


def _spill_file_task(kind: str, path: str, element: str, start: int, stop: int, columns: np.ndarray,
                     target: str, n_rows: int) -> list[SpillRecord]:
    """On a worker: open the file by path, spill rows ``start:stop``."""
    with opened_element(kind, path, element) as matrix:
        chunk = read_row_chunk(matrix, start, stop, columns)
    return write_records(target, [(start, chunk)], n_rows)


def _spill_block_task(block: Any, start: int, columns: np.ndarray, target: str, n_rows: int) -> list[SpillRecord]:
    """On a worker: spill one computed block of a Dask array (rows ``start:...``)."""
    chunk = read_row_chunk(block, 0, block.shape[0], columns)
    return write_records(target, [(start, chunk)], n_rows)


def _probe_folders(spill: str, output: str | None, deflate: str) -> str | None:
    """On each worker: ``None`` if it can write the spill and output folders and deflates like the client."""
    if not os.path.isdir(spill) or not os.access(spill, os.W_OK):
        return f"cannot write the spill folder {spill!r}"
    if output is not None and not (os.path.isdir(output) and os.access(output, os.W_OK)):
        return f"cannot write the output folder {output!r}"
    from cellucid_nb.format.codecs import DEFLATE_IMPLEMENTATION

    if DEFLATE_IMPLEMENTATION != deflate:
        return f"deflates with {DEFLATE_IMPLEMENTATION}, this process with {deflate} (the bytes would differ)"
    return None


def _probe(kind: str, path: str, element: str, spill: str, output: str | None, deflate: str) -> str | None:
    """On each worker: ``None`` if it can open the source and write the folders, else why not."""
    try:
        with opened_element(kind, path, element) as matrix:
            _ = matrix.shape
    except Exception as err:  # noqa: BLE001 - reported to the client
        return f"cannot open {element!r} of {path!r}: {type(err).__name__}: {err}"
    return _probe_folders(spill, output, deflate)


def check_workers(client: Any, source: RowSource, spill: SpillDir, output: Path | None = None) -> None:
    """Refuse (before anything is written) when a worker cannot take part.

    A worker must open the source, write the spill folder and ``output`` (where the
    export is staged; checked when it exists here) and deflate with the same library
    as this process (the payloads it compresses must be those of a single-process export).
    """
    out = str(output) if output is not None and output.is_dir() else None
    if source.kind == "dask":
        problems = client.run(_probe_folders, str(spill.path), out, DEFLATE_IMPLEMENTATION)
    else:
        if source.path is None:
            raise ValueError("the expression matrix is backed but its file is unknown; Dask workers open the file by "
                             "path: open the AnnData with read_h5ad(path, backed='r') or a lazy reader.")
        problems = client.run(_probe, source.kind, source.path, source.element, str(spill.path), out,
                              DEFLATE_IMPLEMENTATION)
    bad = {worker: why for worker, why in problems.items() if why}
    if bad:
        listed = "; ".join(f"{w}: {why}" for w, why in list(bad.items())[:3])
        raise ValueError(
            f"{len(bad)} of {len(problems)} Dask worker(s) cannot take part ({listed}). Workers open the data file "
            "and write spill files and payloads themselves: put the data, the spill folder (spill_dir=) and the output "
            "on a file system every worker mounts at the same path, with the same packages; nothing was written."
        )


def _submit(client: Any, source: RowSource, columns: np.ndarray, spill: SpillDir, chunk_rows: int) -> dict[Any, int]:
    """Futures of the spill tasks -> rows each covers."""
    n = source.n_rows
    futures: dict[Any, int] = {}
    if source.kind == "dask":
        import dask

        blocks = source.matrix.to_delayed().ravel()
        starts = np.concatenate([[0], np.cumsum(source.matrix.chunks[0])[:-1]]).astype(np.int64)
        tasks = [dask.delayed(_spill_block_task)(block, int(start), columns, str(spill.file(f"rows_{start:012d}.bin")), n)
                 for block, start in zip(blocks, starts, strict=True)]  # one column chunk: one block per row chunk
        for future, rows in zip(client.compute(tasks, retries=TASK_RETRIES), source.matrix.chunks[0], strict=True):
            futures[future] = int(rows)
        return futures
    for start, stop in source.row_chunks(chunk_rows):
        target = str(spill.file(f"rows_{start:012d}.bin"))
        future = client.submit(_spill_file_task, source.kind, source.path, source.element, start, stop, columns,
                               target, n, pure=False, retries=TASK_RETRIES)
        futures[future] = stop - start
    return futures


def finished_futures(futures: Iterable[Any], stop: Callable[[], bool]) -> Iterator[Any]:
    """Yield ``futures`` as they finish; return early once ``stop()`` is true (checked every :data:`_POLL` s).

    Each future reports itself once (a done callback), so hundreds of tasks cost the
    client nothing while they run (``distributed.wait`` on all pending futures after
    each one finished took seconds of its CPU with 250 gene tasks).
    """
    finished: queue.Queue = queue.Queue()
    pending = set(futures)
    for future in pending:
        future.add_done_callback(finished.put)
    while pending and not stop():
        try:
            future = finished.get(timeout=_POLL)
        except queue.Empty:
            continue
        if future in pending:
            pending.discard(future)
            yield future


def spill_with_client(
    client: Any,
    source: RowSource,
    columns: np.ndarray,
    spill: SpillDir,
    chunk_rows: int,
    *,
    on_rows: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> SpilledMatrix:
    """Row pass on the cluster of ``client``: one spill file per task in ``spill``.

    Call :func:`check_workers` first.

    Raises
    ------
    ExportCancelled
        ``cancel`` was set; the futures are cancelled.
    """
    futures = _submit(client, source, columns, spill, chunk_rows)
    records: list[SpillRecord] = []
    done_rows = 0

    def stop() -> bool:
        return cancel is not None and cancel.is_set()

    try:
        for future in finished_futures(futures, stop):
            records.extend(future.result())  # re-raises a task's error here
            done_rows += futures[future]
            if on_rows is not None:
                on_rows(done_rows, source.n_rows)
        if stop():
            raise ExportCancelled("export cancelled while the Dask workers read rows; nothing was written")
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        for future in futures:
            future.release()
    return SpilledMatrix(records, (source.n_rows, int(columns.shape[0])))
