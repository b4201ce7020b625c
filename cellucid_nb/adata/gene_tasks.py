"""The gene pass as Dask tasks (``export(..., client=...)``): workers build, compress and stage the payloads.

After the row pass (:mod:`.distributed`), each task takes a run of genes (a few genes
x all cells, :data:`GENE_TASK_BYTES` of float32 at most): it reads their columns from
the spill files (by path, on the shared file system), builds every payload with the
exporter's own helpers (:mod:`cellucid_nb.exporter.gene_payloads`: same ranges,
quantization and gzip as the single-process export) and writes it into the staging
folder (a temporary file, then one rename: a retried task overwrites its files with the
same bytes). It returns, per gene, the path, size, checksum and range; the exporter
adopts the files (``ExportRunner.adopt``) as tasks finish and writes the manifest.

Progress: each finished task's genes. A cancel (or a failed task) writes a stop file
that running tasks check before each gene, cancels the futures and waits until no
worker runs one of them any more; then the caller deletes the staging folder. A task
whose worker dies is run again elsewhere by Dask; temporary files it left are removed
with the parts folder before the export is moved into place.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from cellucid_nb.adata.distributed import TASK_RETRIES, finished_futures
from cellucid_nb.adata.spill import SpilledMatrix, SpillRecord
from cellucid_nb.adata.streaming import BackgroundRowPass
from cellucid_nb.exporter.expression import BlockPlan, read_column_block
from cellucid_nb.exporter.gene_payloads import (
    PARTS_DIR,
    STOP_FILE,
    GeneJob,
    GenePayload,
    PayloadEncoding,
    write_block_payloads,
)

__all__ = ["ClusterGenes", "payloads_with_client", "GENE_TASK_BYTES", "TASKS_PER_THREAD", "KEY_PREFIX"]

logger = logging.getLogger(__name__)

#: float32 bytes of one task's genes (all cells) at most.
GENE_TASK_BYTES = 64 * 2**20
#: Tasks per worker thread at least, when genes allow (evens out the workers).
TASKS_PER_THREAD = 4
#: Keys of the gene tasks start with this.
KEY_PREFIX = "cellucid_nb-genes-"
#: Seconds between two checks whether stopped tasks still run.
_POLL = 0.2
#: Seconds a cancel waits for running tasks to return before giving up (with a warning).
STOP_WAIT = 300.0


#: mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _glibc() -> Any:
    """glibc through ctypes, or ``None`` (another C library or platform: nothing is tuned)."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _heap_for_arrays() -> None:
    """On a worker (glibc only): large temporary arrays come from the heap until :func:`_restore_malloc`.

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_``, which also fixes glibc's mmap threshold at
    128 KiB: every array of a gene (its values, indices, codes, dense payload: ~18 MB a gene
    at 2M cells) is then fresh mmap'd memory, and its page faults took ~40 % of the gene
    tasks' CPU. The client restores the worker's settings (and trims the heap) once the gene
    pass ends.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, 64 * 2**20)
        libc.mallopt(_M_TRIM_THRESHOLD, 512 * 2**20)


def _restore_malloc() -> None:
    """On a worker: the malloc settings it started with (its environment's, else glibc's), heap trimmed."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, int(os.environ.get("MALLOC_MMAP_THRESHOLD_", 128 * 1024)))
        libc.mallopt(_M_TRIM_THRESHOLD, int(os.environ.get("MALLOC_TRIM_THRESHOLD_", 128 * 1024)))
        libc.malloc_trim(0)


def _gene_task(records: list[SpillRecord], n_rows: int, plan: BlockPlan, names: list[str],
               encoding: PayloadEncoding) -> list[GenePayload]:
    """On a worker: stage the payloads of the genes of ``plan`` (columns of the spill ``records``)."""
    stop_file = os.path.join(encoding.staging, PARTS_DIR, STOP_FILE)

    def stop() -> bool:
        return os.path.exists(stop_file)

    if stop():
        return []
    _heap_for_arrays()
    matrix = SpilledMatrix(records, (n_rows, int(plan.columns[-1]) + 1))
    try:
        block = read_column_block(matrix, plan)
    finally:
        matrix.close()
    return write_block_payloads(block, names, encoding, stop) or []


def _running(prefix: str, dask_worker: Any = None) -> int:
    """On a worker: how many tasks whose key starts with ``prefix`` are running."""
    return sum(str(key).startswith(prefix) for key in list(dask_worker.active_threads.values()))


def _genes_per_task(n_cells: int, n_genes: int, n_threads: int) -> int:
    by_bytes = max(1, GENE_TASK_BYTES // max(4 * n_cells, 1))
    spread = -(-n_genes // max(1, TASKS_PER_THREAD * n_threads))
    return max(1, min(by_bytes, spread))


def _submit(client: Any, spilled: SpilledMatrix, job: GeneJob, prefix: str) -> dict[Any, int]:
    """Futures of the gene tasks -> genes each stages (runs of genes in column order)."""
    order = np.argsort(job.columns, kind="stable")
    size = _genes_per_task(job.encoding.n_cells, int(order.shape[0]), sum(client.nthreads().values()))
    futures: dict[Any, int] = {}
    for index, a in enumerate(range(0, order.shape[0], size)):
        positions = order[a : a + size]
        cols = job.columns[positions]
        first = int(cols[0])
        records = spilled.gene_records(first, int(cols[-1]) + 1)
        future = client.submit(_gene_task, records, spilled.shape[0], BlockPlan(positions, cols - first),
                               [job.names[p] for p in positions], job.encoding, key=f"{prefix}{index}",
                               pure=False, retries=TASK_RETRIES)
        futures[future] = int(positions.shape[0])
    return futures


def _stop(client: Any, futures: list[Any], parts: str, prefix: str) -> None:
    """Tell running tasks to stop, cancel the futures, wait until no worker runs one."""
    try:
        with open(os.path.join(parts, STOP_FILE), "wb"):
            pass
    except OSError:
        pass  # the parts folder is gone: tasks cannot write anything either
    client.cancel(futures)
    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline:
        counts = client.run(_running, prefix, on_error="return")
        if not any(n for n in counts.values() if isinstance(n, int)):
            return
        time.sleep(_POLL)
    logger.warning("gene tasks %s* still run after %.0f s; the staging folder is deleted anyway", prefix, STOP_WAIT)


def payloads_with_client(
    client: Any,
    spilled: SpilledMatrix,
    job: GeneJob,
    on_done: Callable[[list[GenePayload]], None],
    cancelled: Callable[[], bool],
) -> None:
    """Stage every gene of ``job`` with tasks on the cluster of ``client``.

    ``on_done`` gets each finished task's genes, in this thread. Returns early when
    ``cancelled()`` turns true, once no task writes any more; a task's error is raised
    here after the same stop.
    """
    parts = os.path.join(job.encoding.staging, PARTS_DIR)
    os.mkdir(parts)
    prefix = f"{KEY_PREFIX}{uuid.uuid4().hex[:12]}-"
    futures: dict[Any, int] = {}
    pending: set[Any] = set()
    try:
        futures = _submit(client, spilled, job, prefix)
        pending = set(futures)
        for future in finished_futures(futures, cancelled):
            pending.discard(future)
            on_done(future.result())  # re-raises a task's error here
            future.release()  # a worker dying later must not run it again
    finally:
        if pending:
            _stop(client, list(pending), parts, prefix)
        for future in pending:
            future.release()
        client.run(_restore_malloc, on_error="ignore")
        for _ in range(100):  # temporary files of tasks whose worker died
            shutil.rmtree(parts, ignore_errors=True)
            if not os.path.exists(parts):
                break


class ClusterGenes(BackgroundRowPass):
    """The row pass on the workers, then the gene payloads built and staged there too.

    The exporter's gene writer sees a :class:`cellucid_nb.exporter.gene_payloads.RemoteGenes`
    and calls :meth:`write_payloads` instead of reading columns here.

    Parameters
    ----------
    run, shape, cancel
        As for :class:`.streaming.BackgroundRowPass` (the Dask row pass).
    client
        The ``dask.distributed.Client``.
    """

    def __init__(self, run: Callable[..., SpilledMatrix], shape: tuple[int, int], cancel: Any, client: Any) -> None:
        super().__init__(run, shape, cancel)
        self._client = client

    def write_payloads(
        self, job: GeneJob, on_done: Callable[[list[GenePayload]], None], cancelled: Callable[[], bool]
    ) -> None:
        """Wait for the row pass, then stage every gene of ``job`` on the workers."""
        if self.wait_done(cancelled):
            payloads_with_client(self._client, self.result(), job, on_done, cancelled)
