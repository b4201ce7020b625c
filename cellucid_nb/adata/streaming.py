"""Bounded-memory export of a matrix that does not fit the budget: the path choice and the row pass.

Two passes (see :mod:`.spill` for the file layout and why):

1. rows: the source is read ``chunk_rows`` rows at a time (one chunk in memory),
   the chosen genes of each chunk are appended to a gene-major spill file on
   local disk (progress ``"load"`` by rows, cancel checked between chunks);
2. genes: the exporter runs as usual with a :class:`.spill.SpilledMatrix` as
   its expression, whose column blocks (a few genes x all cells) are read back
   from the spill; everything else (points, obs, graph...) is written as today.
   With a Dask client both passes run on the workers (:mod:`.distributed` for rows,
   :mod:`.gene_tasks` for the gene payloads).

:func:`choose_path` picks between that and today's path (the chosen genes
loaded whole, fast) by comparing the memory today's path would need, computed
from the source's metadata, with the budget.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellucid_nb.adata.budget import check_free_space, format_size
from cellucid_nb.adata.sources import RowSource, row_source, stored_entries
from cellucid_nb.adata.spill import ColumnSliced, SpillDir, SpilledMatrix, write_records
from cellucid_nb.exporter.progress import ExportCancelled

__all__ = ["PathChoice", "choose_path", "choose_export_path", "spill_rows", "streamed_genes", "BackgroundRowPass",
           "per_cell_bytes",
           "output_upper_bound", "MIN_CHUNK_ROWS", "MAX_CHUNK_ROWS"]

logger = logging.getLogger(__name__)

#: Fewest rows a chunk may have (below this the budget is refused as too small).
MIN_CHUNK_ROWS = 1024
#: Most rows a chunk has (keeps progress and cancel responsive).
MAX_CHUNK_ROWS = 65_536
#: Memory of one Dask task's row chunk (the worker's, not the budget of the exporting process).
DASK_TASK_BYTES = 256 * 2**20
#: Copies of a row chunk alive at once while it is read, column-selected and turned into CSC.
_CHUNK_COPIES = 4
#: Bytes of the exporter's own working set per worker thread besides the payloads
#: of the genes it builds (a column block of up to 32 MB of float32 and its quantized copy).
_WORKER_BYTES = 80 * 2**20


@dataclass(frozen=True)
class PathChoice:
    """How an export runs and why.

    Attributes
    ----------
    path
        ``"memory"`` (chosen genes loaded whole, today's path), ``"spill"`` (two passes
        through local disk), ``"columns"`` (column-major source read by column blocks).
    memory_limit
        The budget in bytes.
    load_bytes
        Memory the chosen genes take when loaded whole.
    fixed_bytes
        Memory any path needs besides the genes (per-cell arrays, worker buffers).
    chunk_rows
        Rows per chunk of the row pass.
    spill_bytes
        Disk the spill takes (0 unless ``path == "spill"``).
    """

    path: str
    memory_limit: int
    load_bytes: int
    fixed_bytes: int
    chunk_rows: int
    spill_bytes: int

    def describe(self) -> str:
        """One line for logs and the wizard."""
        return (f"{self.path} path: genes need {format_size(self.load_bytes)} loaded whole, "
                f"budget {format_size(self.memory_limit)}, chunks of {self.chunk_rows:,} rows"
                + (f", spill {format_size(self.spill_bytes)}" if self.spill_bytes else ""))


def _row_index_bytes(n_rows: int) -> int:
    return 4 if n_rows < 2**31 else 8


def choose_path(source: RowSource, n_columns: int, memory_limit: int, *, n_workers: int,
                per_cell_bytes: int, payload_itemsize: int) -> PathChoice:
    """Choose the export path for the chosen columns of ``source`` under ``memory_limit``.

    Parameters
    ----------
    source
        The expression source.
    n_columns
        Chosen genes.
    memory_limit
        Budget in bytes.
    n_workers
        Exporter threads (each builds genes of ``n_cells`` values at once).
    per_cell_bytes
        Bytes per cell of the exporter's other inputs (points, obs codes, graph).
    payload_itemsize
        Bytes per value of a gene payload (1, 2 or 4).

    Raises
    ------
    MemoryError
        When the budget cannot hold even one chunk of :data:`MIN_CHUNK_ROWS` rows
        besides the fixed working set, with the smallest budget that works.
    """
    n_rows, n_all = source.n_rows, max(1, int(source.shape[1]))
    share = n_columns / n_all
    stored = source.stored_values() * share if source.stored_sparse else n_rows * n_columns
    bytes_per_value = 4 + 4  # float32 value + int32 column (CSR) or row (spill) index
    load = int(stored * bytes_per_value * (2 if source.stored_sparse else 0.5)) + 8 * n_rows
    gene_bytes = n_rows * max(4, payload_itemsize)
    fixed = int(n_rows * per_cell_bytes + n_workers * (_WORKER_BYTES + 3 * gene_bytes))
    per_row = max(1.0, stored / max(n_rows, 1)) * bytes_per_value * _CHUNK_COPIES
    if source.kind == "memory":
        return PathChoice("memory", memory_limit, 0, fixed, MAX_CHUNK_ROWS, 0)
    if source.column_major:
        return PathChoice("columns", memory_limit, load, fixed, MAX_CHUNK_ROWS, 0)
    if fixed + load <= memory_limit:
        return PathChoice("memory", memory_limit, load, fixed, MAX_CHUNK_ROWS, 0)
    smallest = fixed + int(per_row * MIN_CHUNK_ROWS)
    if memory_limit < smallest:
        raise MemoryError(
            f"memory_limit={format_size(memory_limit)} is too small for one chunk: exporting {n_rows:,} cells x "
            f"{n_columns:,} genes needs at least {format_size(smallest)} ({format_size(fixed)} for per-cell arrays "
            f"and {n_workers} worker(s) building genes of {n_rows:,} cells, plus one chunk of {MIN_CHUNK_ROWS:,} rows). "
            f"Give memory_limit >= {format_size(smallest)}, or fewer n_workers; nothing was written."
        )
    chunk = int(min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, (memory_limit - fixed) / per_row)))
    spill = int(stored * (4 + _row_index_bytes(n_rows)))
    return PathChoice("spill", memory_limit, load, fixed, chunk, spill)


def spill_rows(
    source: RowSource,
    columns: np.ndarray,
    spill: SpillDir,
    chunk_rows: int,
    *,
    on_rows: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> SpilledMatrix:
    """Row pass: the chosen ``columns`` of ``source``, chunk by chunk, into one spill file.

    Parameters
    ----------
    source
        Where rows come from.
    columns
        Chosen columns in export order (the spill's column ``j`` is ``columns[j]``).
    spill
        The spill folder (its owner deletes it).
    chunk_rows
        Rows per chunk.
    on_rows
        Called with ``(rows_done, n_rows)`` after each chunk.
    cancel
        Checked before each chunk: :class:`ExportCancelled` when set.

    Returns
    -------
    SpilledMatrix
        The chosen genes, read back by column blocks.
    """
    n = source.n_rows
    ranges = source.row_chunks(chunk_rows)

    def chunks() -> Any:
        for start, stop in ranges:
            if cancel is not None and cancel.is_set():
                raise ExportCancelled("export cancelled while reading rows; nothing was written")
            yield start, source.read_rows(start, stop, columns)
            if on_rows is not None:
                on_rows(stop, n)

    records = write_records(spill.file("rows_000000000000.bin"), chunks(), n)
    return SpilledMatrix(records, (n, int(columns.shape[0])))


def per_cell_bytes(adata: Any, plan: Any) -> int:
    """Bytes per cell of the exporter's own arrays besides the genes (an upper bound).

    (What the AnnData itself holds is not counted: it is there before and after the export, and
    the budget is what the export adds to it.) The latent space is read by row blocks
    (:mod:`cellucid_nb.exporter.latent`, constant memory), a symmetric kNN graph by row
    blocks without a transpose (:mod:`cellucid_nb.exporter.graph_blocks`), so what is left per
    cell is: the float32 embeddings and vector fields (kept for centroids and written whole),
    4 bytes per categorical field (outlier distances, all fields at once) plus the per-field
    grouping and result (8), the obs payloads being encoded (about 16), row counters (16).
    A graph whose sampled rows are not mirrored takes the transpose path: half of its
    transpose (4 bytes per stored entry, counting-sort buffers of 24 bytes a cell).
    """
    from cellucid_nb.adata.sources import graph_for_export
    from cellucid_nb.exporter.graph_blocks import looks_symmetric
    from cellucid_nb.format.rules import obs_column_kind

    dims = sum(int(adata.obsm[k].shape[1]) for k in plan.embeddings.values())
    dims += sum(int(adata.obsm[k].shape[1]) for k in (plan.vector_fields or {}).values())
    categorical = sum(1 for k in plan.obs_keys if k in adata.obs and obs_column_kind(adata.obs[k]) != "continuous")
    graph = 0.0
    if plan.connectivities is not None:
        matrix = graph_for_export(adata.obsp[plan.connectivities])
        if not looks_symmetric(matrix):
            graph = 6 * float(stored_entries(matrix)) / max(adata.n_obs, 1) + 24
    return int(4 * dims + 4 * categorical + 8 + 16 + graph + 16)


def output_upper_bound(adata: Any, plan: Any, n_genes: int) -> int:
    """Bytes of the export without compression (gzip never grows a payload by more than ~0.1 %), +2 %."""
    n = int(adata.n_obs)
    itemsize = {None: 4, 8: 1, 16: 2}.get(plan.var_quantization, 4)
    obs_item = {None: 4, 8: 1, 16: 2}.get(plan.obs_continuous_quantization, 4)
    dims = sum(int(adata.obsm[k].shape[1]) for k in plan.embeddings.values())
    dims += sum(int(adata.obsm[k].shape[1]) for k in (plan.vector_fields or {}).values())
    edges = 0
    if plan.connectivities is not None:
        edges = stored_entries(adata.obsp[plan.connectivities])
    per_cell = n_genes * itemsize + 4 * dims + len(plan.obs_keys) * max(2, obs_item)
    files = n_genes + len(plan.obs_keys) + 16
    return int((n * per_cell + edges * 16) * 1.02 + files * 4096 + 2**20)


def choose_export_path(adata: Any, plan: Any, matrix: Any, columns: np.ndarray, memory_limit: int, target: Path,
                       n_workers: int | None, spill_dir: str | Path | None, client: Any) -> PathChoice:
    """:func:`choose_path` for an export, then the disk check (output + spill), before anything is written.

    With a Dask ``client`` a backed or lazy source always takes the spill path (its row
    pass runs on the workers); an in-memory one is exported here, with a warning.

    Raises
    ------
    MemoryError
        Budget too small for one chunk.
    OSError
        Not enough disk for the output and the spill.
    ValueError
        A Dask array chunked along genes.
    """
    source = row_source(matrix)
    workers = n_workers if isinstance(n_workers, int) and n_workers > 0 else max(1, os.cpu_count() or 1)
    itemsize = {None: 4, 8: 1, 16: 2}.get(plan.var_quantization, 4)
    choice = choose_path(source, int(columns.shape[0]), memory_limit, n_workers=workers,
                         per_cell_bytes=per_cell_bytes(adata, plan), payload_itemsize=itemsize)
    if client is not None:
        if source.kind == "memory":
            warnings.warn("client= is ignored: the expression matrix is in memory, so Dask workers cannot open it "
                          "by path; open the file with read_h5ad(path, backed='r') (or a lazy reader) to use the "
                          "cluster.", UserWarning, stacklevel=3)
        elif choice.path != "columns":
            # Chunks are read by the workers, within their own memory: sized per task, not by this budget.
            per_row = max(1.0, source.stored_values() / max(source.n_rows, 1)) * 8 * _CHUNK_COPIES
            chunk = int(min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, DASK_TASK_BYTES / per_row)))
            stored = source.stored_values() * columns.shape[0] / max(1, int(source.shape[1]))
            choice = PathChoice("spill", memory_limit, choice.load_bytes, choice.fixed_bytes, chunk,
                                int(stored * (4 + _row_index_bytes(source.n_rows))))
    spill_parent = Path(spill_dir) if spill_dir is not None else target.absolute().parent
    needs = [("export", target, output_upper_bound(adata, plan, int(columns.shape[0])))]
    if choice.spill_bytes:
        needs.append(("spill files", spill_parent, choice.spill_bytes))
    try:
        check_free_space(needs)
    except OSError:
        # The bound assumed no compression: measure the real size before refusing.
        from cellucid_nb.adata.estimation import estimate

        needs[0] = ("export", target, estimate(adata, plan, out_dir=target).total_bytes)
        check_free_space(needs)
    logger.info("export of %s: %s", target, choice.describe())
    return choice


def streamed_genes(choice: PathChoice, matrix: Any, columns: np.ndarray, spill: SpillDir, client: Any,
                   cancel: threading.Event | None, output: Path | None = None) -> Any:
    """The chosen genes as a matrix the exporter reads by column blocks.

    A column-major source is read directly (:class:`ColumnSliced`); otherwise the row pass
    starts in the background (:class:`BackgroundRowPass`). With a ``client`` both passes run
    on the Dask workers (:class:`.gene_tasks.ClusterGenes`), whose access to the file, the
    spill folder and ``output`` (the folder where the export is staged) is checked first.
    """
    source = row_source(matrix)
    if choice.path == "columns":
        return ColumnSliced(matrix, columns)
    chunk = choice.chunk_rows
    if client is not None and source.kind != "memory":
        from cellucid_nb.adata.distributed import check_workers, spill_with_client
        from cellucid_nb.adata.gene_tasks import ClusterGenes

        check_workers(client, source, spill, output)

        def on_cluster(on_rows: Callable[[int, int], None], stop: Any) -> SpilledMatrix:
            return spill_with_client(client, source, columns, spill, chunk, on_rows=on_rows, cancel=stop)

        return ClusterGenes(on_cluster, (source.n_rows, int(columns.shape[0])), cancel, client)

    def run(on_rows: Callable[[int, int], None], stop: Any) -> SpilledMatrix:
        return spill_rows(source, columns, spill, chunk, on_rows=on_rows, cancel=stop)

    return BackgroundRowPass(run, (source.n_rows, int(columns.shape[0])), cancel)


class _Either:
    """``is_set()`` of either event (the user's cancel or the export's own stop)."""

    def __init__(self, *events: threading.Event | None) -> None:
        self._events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)


class BackgroundRowPass:
    """The row pass in a thread of its own while the exporter writes points, graph and obs.

    Reading rows (h5py, scipy) and writing the graph overlap on two cores, so the spill
    costs little more than the in-memory path. The object is the exporter's gene matrix:
    a column read waits for the row pass to end (or raises its error, or
    :class:`ExportCancelled` once ``cancel`` is set). Progress: :attr:`rows_done`, read
    by the exporting thread (progress callbacks stay on that thread).

    Parameters
    ----------
    run
        ``run(on_rows, stop)`` does the row pass (:func:`spill_rows` or the Dask one) and
        returns the :class:`SpilledMatrix`; ``stop`` has ``is_set()``, checked between chunks.
    shape
        ``(n_rows, n_genes)`` of the result.
    cancel
        The export's cancel event.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, run: Callable[..., SpilledMatrix], shape: tuple[int, int],
                 cancel: threading.Event | None) -> None:
        self.shape = shape
        self.rows_done = 0
        self._cancel = cancel
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._matrix: SpilledMatrix | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(run,), name="cellucid-row-pass", daemon=True)
        self._thread.start()

    def _run(self, run: Callable[..., SpilledMatrix]) -> None:
        try:
            self._matrix = run(self._on_rows, _Either(self._cancel, self._stop))
        except BaseException as err:  # noqa: BLE001 - raised where the genes are read
            self._error = err
        finally:
            self._finished.set()

    def _on_rows(self, done: int, total: int) -> None:
        self.rows_done = done

    def wait_done(self, stop: Callable[[], bool]) -> bool:
        """Wait for the row pass to end; ``False`` as soon as ``stop()`` is true."""
        while not self._finished.wait(0.1):
            if stop():
                return False
        return True

    def result(self) -> SpilledMatrix:
        """The spilled genes, once the row pass has ended."""
        while not self._finished.wait(0.1):
            if self._cancel is not None and self._cancel.is_set():
                raise ExportCancelled("export cancelled while reading rows; nothing was written")
        if self._error is not None:
            raise self._error
        assert self._matrix is not None
        return self._matrix

    def __getitem__(self, key: Any) -> Any:
        return self.result()[key]

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("the spilled genes are never densified whole; read them by column blocks")

    def close(self) -> None:
        """Stop the row pass (within one chunk), wait for it, close the spill files."""
        self._stop.set()
        self._thread.join()
        if self._matrix is not None:
            self._matrix.close()
