"""Writer of gene expression: one dense vector per gene under ``var/`` and ``var_manifest.json``.

Two ways in, the same bytes out (tested):

- a canonical CSR matrix: a feeder thread takes every gene's range from one
  pass over the matrix, then fills dense blocks with the C sweeps of
  :mod:`.csr_kernels`; workers compress, checksum and queue the payloads;
- any other matrix: per block of columns (see :mod:`.expression`), in a worker
  thread, the range of every gene is computed at once (``np.minimum.reduceat``
  over the CSC data, non-finite values masked, the implicit zero included when a
  column has fewer stored values than cells), then each gene's dense vector is
  built (the zero code + one scatter of the stored values) and stored;
- a :class:`.gene_payloads.RemoteGenes` matrix (genes on a Dask cluster): its tasks
  build and stage the payloads with the same helpers (:mod:`.gene_payloads`), a
  thread here adopts the files (``ExportRunner.adopt``) as tasks finish.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any

import numpy as np
from scipy import sparse

from ..format import codecs
from ..format.layouts import LAYOUTS
from ..format.spec import FORMAT_NAME
from . import csr_kernels
from .expression import BlockPlan, ColumnBlock, plan_column_blocks, read_column_block
from .gene_payloads import (
    GeneJob,
    GenePayload,
    PayloadEncoding,
    RemoteGenes,
    block_ranges,
    block_rows,
    build_width,
    finalise_ranges,
    zero_counts,
)
from .inputs import ExportInputs, GeneSelection
from .runner import ExportRunner
from .writer_runner import WriterRunner

__all__ = ["GeneWriter", "start_genes", "write_genes", "block_ranges"]

#: Dense payload bytes one CSR sweep fills (a sweep costs ~0.1 us a row, so blocks are wide).
SWEEP_BYTES = 32 * 2**20
#: Blocks the CSR feeder cuts at least (bounds the buffers of small exports).
MIN_SWEEPS = 16
#: Dense block buffers of the CSR feeder (one filled while the workers store the others).
BLOCKS_AHEAD = 2
#: Genes a worker stores per task when the feeder sweeps (evens out the workers).
GENES_PER_TASK = 16


def uses_csr_kernels(matrix: Any) -> bool:
    """Whether genes of ``matrix`` are read by the compiled sweeps of :mod:`.csr_kernels`."""
    return (
        csr_kernels.AVAILABLE
        and sparse.issparse(matrix)
        and matrix.format == "csr"
        and csr_kernels.supports(matrix)
        and bool(matrix.has_canonical_format)  # sorted, no duplicates: one cursor per row suffices
    )


class _Countdown:
    """Calls ``action`` once ``steps`` calls of :meth:`step` have happened (any threads)."""

    def __init__(self, steps: int, action: Any) -> None:
        self._left = steps
        self._action = action
        self._lock = threading.Lock()

    def step(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._action()


class GeneWriter:
    """Writes ``var/`` in worker threads; :meth:`finish` writes the manifest.

    A canonical CSR matrix (the usual scanpy matrix) is turned into dense
    payloads by one feeder thread with the compiled sweeps of
    :mod:`.csr_kernels`, at most :data:`BLOCKS_AHEAD` blocks of up to
    :data:`SWEEP_BYTES` ahead of the workers, which compress, checksum and queue
    :data:`GENES_PER_TASK` genes per task. Any other matrix is cut into column
    blocks that each worker reads, ranges and builds itself (scipy slicing,
    numpy). Either way the exporting thread is free to write the other parts
    meanwhile.

    Parameters
    ----------
    runner
        The export runner (or the estimator's recording runner).
    inputs
        Validated inputs with ``genes`` set.
    """

    def __init__(self, runner: WriterRunner, inputs: ExportInputs) -> None:
        genes = inputs.genes
        if genes is None:
            raise ValueError("GeneWriter needs inputs.genes (got None: no expression selected)")
        self._genes: GeneSelection = genes
        self._runner = runner
        self._inputs = inputs
        self._bits = inputs.settings.var_quantization
        self._spec = codecs.QuantSpec(self._bits)
        self._n_cells = inputs.n_cells
        folder = inputs.settings.var_binary_dirname
        self._folder = folder
        runner.mkdir(folder)
        self._layout = LAYOUTS[inputs.settings.layout]
        self._names = [runner.payload_name(f"{folder}/{self._layout.stem(g, i)}.values.{self._spec.ext}")
                       for i, g in enumerate(genes.ids)]
        self._lo = np.zeros(len(genes.ids))
        self._hi = np.zeros(len(genes.ids))
        # Genes materialised densely at once (bounded memory), then stored row by row.
        self._width = build_width(self._n_cells, self._bits)
        self._futures: list[Any] = []
        self._feeder: threading.Thread | None = None
        if isinstance(genes.matrix, RemoteGenes):
            self._start_remote(genes.matrix)
        elif uses_csr_kernels(genes.matrix):
            # Dense block buffers, reused once every payload of a block is on disk:
            # fresh 32 MB buffers cost page faults (~0.05 s a block on this VM).
            self._free_buffers: queue.Queue = queue.Queue()
            self._n_buffers = 0
            self._feeder = threading.Thread(target=self._feed, name="cellucid-export-gene-feeder", daemon=True)
            self._feeder.start()
        else:
            self._matrix, plans = plan_column_blocks(genes.matrix, genes.columns)
            self._futures = [runner.spawn(self._read_and_write, plan) for plan in plans]

    # -- genes built elsewhere (Dask tasks): adopt their staged files ------------------------
    def _start_remote(self, matrix: RemoteGenes) -> None:
        runner = self._runner
        if not isinstance(runner, ExportRunner):
            raise TypeError(f"genes built by remote tasks are staged by an ExportRunner, got {type(runner).__name__}")
        # Absolute: the workers' current folder is not this process's.
        encoding = PayloadEncoding(os.path.abspath(runner.staging), self._bits, runner.compression, self._n_cells)
        job = GeneJob(encoding, self._names, self._genes.columns)
        stop = threading.Event()

        def cancelled() -> bool:
            return stop.is_set() or runner.cancelled()

        def run() -> None:
            try:
                matrix.write_payloads(job, self._adopt, cancelled)
            except BaseException as err:  # noqa: BLE001 - handed to the exporting thread
                runner.fail(err)

        self._adopted = 0
        feeder = self._feeder = threading.Thread(target=run, name="cellucid-export-gene-tasks", daemon=True)

        def stop_tasks() -> None:  # before an aborted export deletes the staging folder
            stop.set()
            feeder.join()

        runner.add_cleanup(stop_tasks)
        feeder.start()

    def _adopt(self, done: list[GenePayload]) -> None:
        runner = self._runner
        assert isinstance(runner, ExportRunner)  # checked by _start_remote
        for gene in done:
            self._lo[gene.position] = gene.lo
            self._hi[gene.position] = gene.hi
            runner.adopt(gene.rel, gene.n_bytes, gene.checksum, items=1)
        self._adopted += len(done)

    # -- any matrix: one block per worker task -----------------------------------------------
    def _read_and_write(self, plan: BlockPlan) -> None:
        if not self._runner.cancelled():
            self._write_block(read_column_block(self._matrix, plan))

    # -- canonical CSR: the feeder ---------------------------------------------------------
    def _feed(self) -> None:
        """Feeder thread: ranges of every gene, then dense blocks in column order."""
        runner = self._runner
        try:
            self._feed_blocks()
        except BaseException as err:  # noqa: BLE001 - handed to the exporting thread
            runner.fail(err)

    def _feed_blocks(self) -> None:
        runner, genes, n_cells = self._runner, self._genes, self._n_cells
        matrix = genes.matrix
        order = np.argsort(genes.columns, kind="stable")
        sorted_cols = genes.columns[order]
        lo, hi, counts = self._sorted_ranges(matrix, sorted_cols)
        self._lo[order] = lo
        self._hi[order] = hi
        zeros = n_cells - counts
        n_genes = sorted_cols.shape[0]
        # At most SWEEP_BYTES a block, and at least MIN_SWEEPS blocks: small exports stay small.
        width = max(1, min(SWEEP_BYTES // max(n_cells * self._spec.numpy_dtype.itemsize, 1), -(-n_genes // MIN_SWEEPS)))
        cursor = matrix.indptr[:-1].astype(np.int64)
        for first in range(0, n_genes, width):
            buffer = self._take_buffer(width)
            if buffer is None:
                return  # cancelled
            stop = min(first + width, n_genes)
            rows = buffer[: stop - first]
            self._sweep_block(matrix, cursor, sorted_cols[first:stop], lo[first:stop], hi[first:stop], rows)
            names = [self._names[p] for p in order[first:stop]]
            # The buffer comes back once each of its genes is written or given up.
            written = _Countdown(stop - first, lambda buffer=buffer: self._free_buffers.put(buffer))
            for task in range(0, stop - first, GENES_PER_TASK):
                end = min(task + GENES_PER_TASK, stop - first)
                self._futures.append(runner.spawn(
                    self._store_rows, rows[task:end], names[task:end], zeros[first + task : first + end], written
                ))

    def _sorted_ranges(self, matrix: Any, sorted_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Manifest ranges and stored counts of the exported columns (one pass over the matrix)."""
        n_columns = int(matrix.shape[1])
        lo32 = np.full(n_columns, np.inf, dtype=np.float32)
        hi32 = np.full(n_columns, -np.inf, dtype=np.float32)
        counts = np.zeros(n_columns, dtype=np.int64)
        csr_kernels.column_stats(matrix.indices, matrix.data, lo32, hi32, counts)
        counts = counts[sorted_cols]
        lo, hi = lo32[sorted_cols], hi32[sorted_cols]
        implicit = counts < self._n_cells  # unstored entries are zeros
        lo = np.where(implicit, np.minimum(lo, 0.0), lo)
        hi = np.where(implicit, np.maximum(hi, 0.0), hi)
        lo, hi = finalise_ranges(lo.astype(np.float64), hi.astype(np.float64))
        return lo, hi, counts

    def _sweep_block(
        self, matrix: Any, cursor: np.ndarray, cols: np.ndarray, lo: np.ndarray, hi: np.ndarray, rows: np.ndarray
    ) -> None:
        """Fill ``rows`` (one dense payload per column of ``cols``) with one sweep; moves ``cursor``."""
        bits = self._bits
        col_start = int(cols[0])
        local = np.full(int(cols[-1]) + 1 - col_start, -1, dtype=np.int64)
        local[cols - col_start] = np.arange(cols.shape[0])
        args = (matrix.indptr, matrix.indices, matrix.data, cursor, col_start, int(cols[-1]) + 1, local)
        if bits is None:
            rows[:] = 0
            csr_kernels.sweep_values(*args, rows)
            return
        qmax = codecs.QUANT_MAX[bits]
        rows[:] = codecs.quantize(np.zeros(cols.shape[0], dtype=np.float32), lo, hi, bits)[:, None]
        wide = np.ascontiguousarray(np.broadcast_to(codecs.needs_float64(lo, hi, bits), lo.shape))
        csr_kernels.sweep_codes(
            *args, lo.astype(np.float32), lo, qmax / (hi - lo), wide, qmax, codecs.MISSING_CODE[bits], rows
        )

    def _take_buffer(self, width: int) -> np.ndarray | None:
        """A dense block buffer: a new one while fewer than BLOCKS_AHEAD exist, else a returned one."""
        if self._n_buffers < BLOCKS_AHEAD:
            self._n_buffers += 1
            return np.empty((width, self._n_cells), dtype=self._spec.numpy_dtype)
        while True:
            try:
                return self._free_buffers.get(timeout=0.05)
            except queue.Empty:
                if self._runner.cancelled():
                    return None

    def _store_rows(
        self, rows: np.ndarray, names: list[str], zeros: np.ndarray, written: _Countdown | None = None
    ) -> bool:
        """Store one payload per row; ``False`` once the export is cancelled.

        ``written`` counts down once per row, when its payload is on disk or given up.
        """
        runner, n_cells = self._runner, self._n_cells
        on_written = None if written is None else written.step
        for j in range(rows.shape[0]):
            if runner.cancelled():
                if written is not None:
                    for _ in range(j, rows.shape[0]):
                        written.step()
                return False
            runner.store(names[j], rows[j], codecs.prefers_rle(n_cells, int(zeros[j])), 1, on_written)
        return True

    # -- one block ---------------------------------------------------------------------------
    def _write_block(self, block: ColumnBlock) -> None:
        n_cells, bits = self._n_cells, self._bits
        lo, hi = block_ranges(block, n_cells)
        self._lo[block.positions] = lo
        self._hi[block.positions] = hi
        names = [self._names[p] for p in block.positions]
        zeros = zero_counts(block, n_cells)
        for first, stop, rows in block_rows(block, lo, hi, bits, n_cells, self._width):
            if not self._store_rows(rows, names[first:stop], zeros[first:stop]):
                return

    def finish(self) -> dict[str, Any]:
        """Wait for every block, then write ``var_manifest.json`` and return it."""
        runner, settings, genes = self._runner, self._inputs.settings, self._genes
        if self._feeder is not None:
            while self._feeder.is_alive():
                self._feeder.join(timeout=0.05)
                runner.check()
        runner.wait(self._futures)
        if isinstance(genes.matrix, RemoteGenes) and self._adopted != len(genes.ids):
            raise RuntimeError(f"the gene tasks staged {self._adopted} of {len(genes.ids)} genes and stopped without an "
                               "error; expected every gene (nothing was moved into place)")
        spec = self._spec
        schema: dict[str, Any] = {
            "kind": "continuous",
            "pathPattern": f"{self._folder}/{self._layout.placeholder}.values.{spec.ext}{runner.suffix}",
            **spec.schema_fields(),
        }
        if self._bits is not None:
            fields = [[g, float(a), float(b)] for g, a, b in zip(genes.ids, self._lo.tolist(), self._hi.tolist(), strict=True)]
        else:
            fields = [[g] for g in genes.ids]
        fields = [self._layout.entry(i, f) for i, f in enumerate(fields)]
        manifest = {
            "_format": FORMAT_NAME,
            "n_points": self._n_cells,
            "var_gene_id_column": genes.var_gene_id_column,
            "compression": settings.compression,
            "quantization": self._bits,
            "_varSchema": schema,
            "fields": fields,
        }
        runner.write_json(settings.var_manifest_filename, manifest)
        return manifest


def start_genes(runner: WriterRunner, inputs: ExportInputs) -> GeneWriter | None:
    """Start writing every selected gene in worker threads (``None`` without expression)."""
    return None if inputs.genes is None else GeneWriter(runner, inputs)


def write_genes(runner: WriterRunner, inputs: ExportInputs) -> dict[str, Any] | None:
    """Write every selected gene to ``var/`` and ``var_manifest.json``; wait for the end.

    Returns
    -------
    dict or None
        The manifest, or ``None`` when no expression was given.
    """
    writer = start_genes(runner, inputs)
    return None if writer is None else writer.finish()
