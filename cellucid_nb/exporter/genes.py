"""Writer of gene expression: one dense vector per gene under ``var/`` and ``var_manifest.json``.

Two ways in, the same bytes out (tested):

- a canonical CSR matrix: a feeder thread takes every gene's range from one
  pass over the matrix, then fills dense blocks with the C sweeps of
  :mod:`.csr_kernels`; workers compress, checksum and queue the payloads;
- any other matrix: per block of columns (see :mod:`.expression`), in a worker
  thread, the range of every gene is computed at once (``np.minimum.reduceat``
  over the CSC data, non-finite values masked, the implicit zero included when a
  column has fewer stored values than cells), then each gene's dense vector is
  built (the zero code + one scatter of the stored values) and stored.
"""

from __future__ import annotations

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
from .inputs import ExportInputs, GeneSelection
from .writer_runner import WriterRunner

__all__ = ["GeneWriter", "start_genes", "write_genes", "block_ranges"]

#: Dense payload bytes built at once per block step.
DENSE_BUILD_BYTES = 8 * 2**20
#: Genes built at once at most.
GENES_PER_BUILD = 512
#: Dense payload bytes one CSR sweep fills (a sweep costs ~0.1 us a row, so blocks are wide).
SWEEP_BYTES = 32 * 2**20
#: Blocks the CSR feeder cuts at least (bounds the buffers of small exports).
MIN_SWEEPS = 16
#: Dense block buffers of the CSR feeder (one filled while the workers store the others).
BLOCKS_AHEAD = 2
#: Genes a worker stores per task when the feeder sweeps (evens out the workers).
GENES_PER_TASK = 16


def _finalise_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Same rules as codecs.value_range: all-invalid -> (0, 1); constant -> max = min + 1.
    invalid = ~np.isfinite(lo)
    # "+ 0.0" turns -0.0 into 0.0: which zero numpy's min/max keep depends on its SIMD path.
    lo = np.where(invalid, 0.0, lo) + 0.0
    hi = np.where(invalid, 1.0, hi) + 0.0
    return lo, codecs.widen_constant_range(lo, hi)


def block_ranges(block: ColumnBlock, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene ``(min, max)`` over finite values, as :func:`codecs.value_range` would give.

    Parameters
    ----------
    block
        A sparse or dense column block.
    n_cells
        Rows of the matrix (a sparse column with fewer stored values also holds 0).

    Returns
    -------
    lo, hi
        float64 arrays, one value per gene of the block.
    """
    if block.dense is not None:
        values = block.dense
        finite = np.isfinite(values)
        if finite.all():
            lo, hi = values.min(axis=1), values.max(axis=1)
        else:
            lo = np.where(finite, values, np.inf).min(axis=1)
            hi = np.where(finite, values, -np.inf).max(axis=1)
        if values.shape[1] == 0:
            lo, hi = np.full(values.shape[0], np.inf), np.full(values.shape[0], -np.inf)
        return _finalise_ranges(lo.astype(np.float64), hi.astype(np.float64))
    data, indptr = block.data, block.indptr
    if data is None or indptr is None:
        raise ValueError("block_ranges: a column block without dense values needs sparse data and indptr (got None)")
    counts = np.diff(indptr)
    lo = np.full(block.n_genes, np.inf)
    hi = np.full(block.n_genes, -np.inf)
    nonempty = counts > 0
    if nonempty.any():
        starts = indptr[:-1][nonempty]
        finite = np.isfinite(data)
        if finite.all():
            lo[nonempty] = np.minimum.reduceat(data, starts)
            hi[nonempty] = np.maximum.reduceat(data, starts)
        else:
            lo[nonempty] = np.minimum.reduceat(np.where(finite, data, np.inf), starts)
            hi[nonempty] = np.maximum.reduceat(np.where(finite, data, -np.inf), starts)
    implicit = counts < n_cells
    lo[implicit] = np.minimum(lo[implicit], 0.0)
    hi[implicit] = np.maximum(hi[implicit], 0.0)
    return _finalise_ranges(lo, hi)


def _dense_rows_from_sparse(
    block: ColumnBlock, first: int, stop: int, lo: np.ndarray, hi: np.ndarray, bits: int | None, n_cells: int
) -> np.ndarray:
    """Gene-major dense payloads of block genes ``first:stop``, built with one scatter."""
    indptr, indices, data = block.indptr, block.indices, block.data
    if indptr is None or indices is None or data is None:
        raise ValueError("a sparse column block needs data, indices and indptr (got None)")
    s, e = int(indptr[first]), int(indptr[stop])
    counts = np.diff(indptr[first : stop + 1])
    width = stop - first
    owner = np.repeat(np.arange(width, dtype=np.int64), counts)
    flat = owner * n_cells
    flat += indices[s:e]
    if bits is None:
        out = np.zeros((width, n_cells), dtype="<f4")
        out.ravel()[flat] = data[s:e]
        return out
    zero_codes = codecs.quantize(np.zeros(width, dtype=np.float32), lo[first:stop], hi[first:stop], bits)
    out = np.empty((width, n_cells), dtype=codecs.QuantSpec(bits).numpy_dtype)
    out[:] = zero_codes[:, None]
    codes = codecs.quantize(data[s:e], lo[first:stop], hi[first:stop], bits, groups=owner)
    out.ravel()[flat] = codes
    return out


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
        itemsize = self._spec.numpy_dtype.itemsize
        self._width = max(1, min(GENES_PER_BUILD, DENSE_BUILD_BYTES // max(self._n_cells * itemsize, 1)))
        self._futures: list[Any] = []
        self._feeder: threading.Thread | None = None
        if uses_csr_kernels(genes.matrix):
            # Dense block buffers, reused once every payload of a block is on disk:
            # fresh 32 MB buffers cost page faults (~0.05 s a block on this VM).
            self._free_buffers: queue.Queue = queue.Queue()
            self._n_buffers = 0
            self._feeder = threading.Thread(target=self._feed, name="cellucid-export-gene-feeder", daemon=True)
            self._feeder.start()
        else:
            self._matrix, plans = plan_column_blocks(genes.matrix, genes.columns)
            self._futures = [runner.spawn(self._read_and_write, plan) for plan in plans]

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
        lo, hi = _finalise_ranges(lo.astype(np.float64), hi.astype(np.float64))
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
        if block.dense is None:
            assert block.indptr is not None  # block_ranges refuses a sparse block without indptr
            zeros = n_cells - np.diff(block.indptr)
        else:
            zeros = n_cells - np.count_nonzero(block.dense, axis=1)
        for first in range(0, block.n_genes, self._width):
            stop = min(first + self._width, block.n_genes)
            if block.dense is None:
                rows = _dense_rows_from_sparse(block, first, stop, lo, hi, bits, n_cells)
            elif bits is None:
                rows = block.dense[first:stop].astype("<f4", copy=False)
            else:
                rows = codecs.quantize(block.dense[first:stop], lo[first:stop, None], hi[first:stop, None], bits)
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
