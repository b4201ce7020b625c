"""Gene-major spill of a row-major matrix on local disk, read back by column blocks.

Why this layout: the per-gene payloads need columns, the usual sources (CSR on
disk, row-chunked zarr or Dask) give rows. Each row chunk is turned into CSC
(scipy, sorted rows) and appended to a spill file as one *record*: the row
indices of every gene, gene after gene, then their values. A record's
per-gene counts stay in memory (one ``int64`` per gene and chunk), so the
values of any run of genes in a record are two contiguous reads (``os.pread``,
thread-safe). Compared with one bucket file per group of genes this keeps one
open file per writer (any number of genes, and Dask tasks write their own files
independently and idempotently when retried), and the second pass can cut its
column blocks by exact counts rather than by buckets fixed before the counts were
known.

:class:`SpilledMatrix` serves those blocks through 2-D slicing
(``m[:, cols] -> CSC``), so the exporter's own gene writer (the path it uses for
any non-CSR matrix, tested byte-identical to the CSR path) reads it like any
lazily read matrix. :class:`ColumnSliced` does the same for a column-major
source (backed CSC), which needs no spill at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from ..exporter.swap import remove_stale_spills
from ..format.leftovers import SPILL_PREFIX, stale_spill_folders  # its one home: the validator and recovery know it too

__all__ = ["SpillRecord", "SpillDir", "write_records", "SpilledMatrix", "ColumnSliced", "SPILL_PREFIX"]


@dataclass
class SpillRecord:
    """One row chunk in a spill file: ``cum[j]:cum[j+1]`` are gene ``j``'s entries.

    Row indices (``row_dtype``) start at ``offset``, values (float32) right after them
    (or at ``values_at`` for a record of a few genes cut from a larger one, :meth:`genes`).
    """

    file: str
    offset: int
    cum: np.ndarray
    row_dtype: str = "<i4"
    values_at: int = -1

    @property
    def nnz(self) -> int:
        """Stored entries of the record."""
        return int(self.cum[-1])

    @property
    def values_offset(self) -> int:
        """Byte offset of the record's values in its file."""
        return self.values_at if self.values_at >= 0 else self.offset + self.nnz * np.dtype(self.row_dtype).itemsize

    def genes(self, first: int, stop: int) -> SpillRecord:
        """The record of genes ``first:stop`` only (a few integers: what a task reading those genes needs)."""
        a = int(self.cum[first])
        size = np.dtype(self.row_dtype).itemsize
        return SpillRecord(self.file, self.offset + a * size, self.cum[first : stop + 1] - a, self.row_dtype,
                           self.values_offset + 4 * a)


def row_dtype(n_rows: int) -> str:
    """Row index dtype of a spill of ``n_rows`` rows."""
    return "<i4" if n_rows < 2**31 else "<i8"


def write_records(path: str | Path, chunks: Any, n_rows: int) -> list[SpillRecord]:
    """Append ``(start, csr_chunk)`` pairs to ``path`` (created or truncated) as gene-major records.

    Parameters
    ----------
    path
        The spill file (rewritten from scratch: a retried Dask task gives the same file).
    chunks
        Iterable of ``(first_row, csr float32 chunk)``.
    n_rows
        Rows of the whole matrix (chooses the row index dtype).
    """
    dtype = row_dtype(n_rows)
    records = []
    with open(path, "wb") as handle:
        offset = 0
        for start, chunk in chunks:
            csc = sparse.csc_matrix(chunk)
            csc.sum_duplicates()  # sorted rows within each gene, as the exporter's own CSC blocks
            cum = csc.indptr.astype(np.int64)
            rows = csc.indices.astype(dtype)
            if start:
                rows += start
            handle.write(np.ascontiguousarray(rows).data.cast("B"))
            handle.write(np.ascontiguousarray(csc.data, dtype="<f4").data.cast("B"))
            records.append(SpillRecord(str(path), offset, cum, dtype))
            offset += rows.nbytes + 4 * int(cum[-1])
            del chunk, csc, rows  # before the next chunk is taken
    return records


@dataclass
class SpillDir:
    """A private folder for spill files; removed with everything in it on :meth:`close`.

    Used as a context manager: whatever ends the export (success, cancel, error),
    the spill is gone afterwards.
    """

    parent: Path
    path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.parent = Path(self.parent)
        self.parent.mkdir(parents=True, exist_ok=True)
        # Spill folders of killed exports here (a spill_dir= elsewhere than beside the export too).
        for message in remove_stale_spills(stale_spill_folders(self.parent)):
            warnings.warn(f"{self.parent}: {message}", UserWarning, stacklevel=3)
        self.path = Path(tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}-",
                                          dir=self.parent))

    def file(self, name: str) -> Path:
        """Path of a spill file in the folder."""
        return self.path / name

    def close(self) -> None:
        """Delete the folder and its files.

        A Dask task still running after a cancel may create its file while the folder
        is being deleted; deleting again until the folder is gone removes it too (a file
        can no longer be created once the folder is gone).
        """
        for _ in range(100):
            shutil.rmtree(self.path, ignore_errors=True)
            if not self.path.exists():
                return

    def __enter__(self) -> SpillDir:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SpilledMatrix:
    """``(n_rows, n_genes)`` float32 matrix whose column slices are read from spill records.

    Parameters
    ----------
    records
        The records of every row chunk, in row order.
    shape
        ``(n_rows, n_genes)``.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, records: list[SpillRecord], shape: tuple[int, int]) -> None:
        self.records = sorted(records, key=lambda r: (r.file, r.offset))
        self.shape = (int(shape[0]), int(shape[1]))
        self._fds: dict[str, int] = {}
        self._cums = np.stack([r.cum for r in self.records]) if self.records else np.zeros((0, shape[1] + 1), np.int64)

    @property
    def nnz(self) -> int:
        """Stored entries."""
        return int(self._cums[:, -1].sum())

    def gene_records(self, first: int, stop: int) -> list[SpillRecord]:
        """The records of genes ``first:stop`` (``SpilledMatrix(m.gene_records(a, b), (n, b - a))`` reads them)."""
        return [r.genes(first, stop) for r in self.records]

    def column_counts(self) -> np.ndarray:
        """Stored entries per column."""
        return np.diff(self._cums, axis=1).sum(axis=0)

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            fd = self._fds[name] = os.open(name, os.O_RDONLY)
        return fd

    def close(self) -> None:
        """Close the spill files."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def columns(self, first: int, stop: int) -> sparse.csc_matrix:
        """Columns ``first:stop`` as a canonical float32 CSC (rows sorted within each column)."""
        width = stop - first
        # counts[c, j]: entries of gene first + j in record c.
        counts = self._cums[:, first + 1 : stop + 1] - self._cums[:, first:stop]
        per_gene = counts.sum(axis=0)
        indptr = np.zeros(width + 1, dtype=np.int64)
        np.cumsum(per_gene, out=indptr[1:])
        nnz = int(indptr[-1])
        rdt = self.records[0].row_dtype if self.records else "<i4"
        rows = np.empty(nnz, dtype=rdt)
        data = np.empty(nnz, dtype="<f4")
        # Entries of gene j from record c go after those of the records before c.
        before = np.cumsum(counts, axis=0) - counts
        for c, record in enumerate(self.records):
            piece = counts[c]
            total = int(piece.sum())
            if not total:
                continue
            a, b = int(record.cum[first]), int(record.cum[stop])
            size = np.dtype(rdt).itemsize
            fd = self._fd(record.file)
            raw_rows = os.pread(fd, (b - a) * size, record.offset + a * size)
            raw_data = os.pread(fd, (b - a) * 4, record.values_offset + a * 4)
            # Destination of each entry: gene start + entries of earlier records + position within the piece.
            owner_start = indptr[:-1] + before[c]
            local = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(piece) - piece, piece)
            dest = np.repeat(owner_start, piece) + local
            rows[dest] = np.frombuffer(raw_rows, dtype=rdt)
            data[dest] = np.frombuffer(raw_data, dtype="<f4")
        index = rows.astype(np.int32) if rdt == "<i4" else rows
        out = sparse.csc_matrix((data, index, indptr), shape=(self.shape[0], width), copy=False)
        out.has_canonical_format = True
        return out

    def __getitem__(self, key: Any) -> sparse.csc_matrix:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if not (isinstance(rows, slice) and rows == slice(None)):
            raise IndexError("a SpilledMatrix is read by columns only: m[:, columns]")
        if isinstance(cols, slice):
            first, stop, step = cols.indices(self.shape[1])
            if step == 1:
                return self.columns(first, stop)
            cols = np.arange(first, stop, step)
        cols = np.asarray(cols, dtype=np.int64)
        if cols.size == 0:
            return sparse.csc_matrix((self.shape[0], 0), dtype=np.float32)
        lo, hi = int(cols.min()), int(cols.max()) + 1
        return self.columns(lo, hi)[:, cols - lo]

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("a SpilledMatrix is never densified whole; read it by column blocks (m[:, cols])")


class ColumnSliced:
    """The chosen columns of a column-major source (backed CSC), read by column blocks, no spill.

    Parameters
    ----------
    matrix
        Backed matrix with cheap column slices (``matrix[:, cols]`` with sorted ``cols``).
    columns
        Its columns in export order; column ``j`` of this object is ``columns[j]``.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, matrix: Any, columns: np.ndarray) -> None:
        self._matrix = matrix
        self._columns = np.asarray(columns, dtype=np.int64)
        self.shape = (int(matrix.shape[0]), int(self._columns.shape[0]))

    def __getitem__(self, key: Any) -> sparse.csc_matrix:
        _, cols = key
        wanted = self._columns[cols]
        order = np.argsort(wanted, kind="stable")
        block = sparse.csc_matrix(self._matrix[:, wanted[order]], dtype=np.float32)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.shape[0])
        return block[:, inverse]

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("a ColumnSliced matrix is never densified whole; read it by column blocks")
