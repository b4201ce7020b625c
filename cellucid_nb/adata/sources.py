"""One reader for every kind of expression matrix: row chunks of the chosen genes.

:func:`row_source` wraps what ``expression_matrix(adata, source)`` returns:

- ``"memory"``: numpy array or scipy sparse matrix (``anndata.read_zarr`` and
  ``read_h5ad`` without ``backed`` give these);
- ``"h5ad"`` / ``"zarr"``: a backed matrix (anndata's sparse dataset over an
  h5py or zarr group, or an h5py dataset), read by row slices; it also records
  the file's path and element so that Dask workers can open it themselves;
- ``"dask"``: a Dask array (``anndata.experimental.read_elem_lazy``, ``read_lazy``),
  read by its own row chunks; it must hold whole rows (one chunk along genes).

:meth:`RowSource.read_rows` returns the chosen columns of ``rows start:stop`` as a
float32 CSR, in the requested column order, whatever the storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from cellucid_nb.exporter.graph_source import BlockCSR

__all__ = ["RowSource", "row_source", "read_row_chunk", "opened_element", "graph_for_export", "stored_entries"]


@dataclass
class RowSource:
    """A matrix read by row chunks.

    Attributes
    ----------
    matrix
        The object rows are read from.
    kind
        ``"memory"``, ``"h5ad"``, ``"zarr"`` or ``"dask"``.
    shape
        ``(n_rows, n_columns)``.
    stored_sparse
        Whether the storage is sparse (else dense: every value is stored).
    column_major
        A CSC matrix (its columns are the cheap direction).
    path, element
        For ``"h5ad"``/``"zarr"``: the file (or store folder) and the element in it
        (``"/X"``, ``"layers/counts"``...), for workers that open it themselves.
    """

    matrix: Any
    kind: str
    shape: tuple[int, int]
    stored_sparse: bool
    column_major: bool = False
    path: str | None = None
    element: str | None = None

    @property
    def n_rows(self) -> int:
        """Rows (cells)."""
        return int(self.shape[0])

    def stored_values(self) -> int:
        """Stored values of the whole matrix, from metadata (never a pass over the data)."""
        if not self.stored_sparse:
            return self.n_rows * int(self.shape[1])
        m = self.matrix
        if sparse.issparse(m):
            return int(m.nnz)
        group = getattr(m, "group", None)
        if group is not None:
            return int(group["data"].shape[0])
        if self.kind == "dask":
            # Sparse chunks: nnz is not in the metadata; assume dense as an upper bound.
            return self.n_rows * int(self.shape[1])
        return self.n_rows * int(self.shape[1])

    def row_chunks(self, chunk_rows: int) -> list[tuple[int, int]]:
        """Row ranges of about ``chunk_rows`` rows (a Dask array's own chunks, merged or as they are)."""
        n = self.n_rows
        if self.kind == "dask":
            bounds = np.concatenate([[0], np.cumsum(self.matrix.chunks[0])]).astype(np.int64)
            out, start = [], 0
            for stop in bounds[1:]:
                if stop - start >= chunk_rows or stop == n:
                    out.append((int(start), int(stop)))
                    start = int(stop)
            return out
        return [(s, min(n, s + chunk_rows)) for s in range(0, n, max(1, int(chunk_rows)))]

    def read_rows(self, start: int, stop: int, columns: np.ndarray | None) -> sparse.csr_matrix:
        """Rows ``start:stop`` of the chosen ``columns`` (all when ``None``), float32 CSR."""
        return read_row_chunk(self.matrix, start, stop, columns)


def _dask_array_type() -> Any:
    try:
        import dask.array as da
    except ImportError:
        return None
    return da.Array


def _is_dask(matrix: Any) -> bool:
    kind = _dask_array_type()
    return kind is not None and isinstance(matrix, kind)


def _file_of(obj: Any) -> tuple[str, str, str] | None:
    """``(kind, path, element)`` of an h5py or zarr object, or ``None``."""
    module = type(obj).__module__
    if module.startswith("h5py"):
        return "h5ad", str(obj.file.filename), str(obj.name)
    if module.startswith("zarr"):
        store = obj.store
        root = getattr(store, "root", None) or getattr(store, "path", None)
        if root is None:
            return None
        return "zarr", str(root), str(obj.path)
    return None


def row_source(matrix: Any) -> RowSource:
    """Wrap an expression matrix (in memory, backed h5ad/zarr, or Dask) as a :class:`RowSource`.

    Raises
    ------
    ValueError
        For a Dask array chunked along genes (each task needs whole rows).
    """
    shape = (int(matrix.shape[0]), int(matrix.shape[1]))
    if isinstance(matrix, np.ndarray) or sparse.issparse(matrix):
        csc = sparse.issparse(matrix) and matrix.format == "csc"
        return RowSource(matrix, "memory", shape, sparse.issparse(matrix), csc)
    if _is_dask(matrix):
        if len(matrix.chunks[1]) > 1:
            raise ValueError(
                f"the expression matrix is a Dask array chunked along genes ({len(matrix.chunks[1])} column chunks, "
                f"chunks={tuple(matrix.chunksize)}); the export reads whole rows. Rechunk it to whole rows first, "
                "e.g. adata.X = adata.X.rechunk({1: -1}), or read it with read_elem_lazy(..., chunks=(n_rows, -1))."
            )
        meta = getattr(matrix, "_meta", None)
        return RowSource(matrix, "dask", shape, sparse.issparse(meta))
    group = getattr(matrix, "group", None)
    if group is not None:  # anndata's backed sparse dataset (h5py or zarr group)
        where = _file_of(group)
        fmt = getattr(matrix, "format", "csr")
        kind, path, element = where if where else ("h5ad", None, None)
        return RowSource(matrix, kind, shape, True, fmt == "csc", path, element)
    where = _file_of(matrix)
    if where is not None:  # a dense h5py dataset or zarr array
        return RowSource(matrix, where[0], shape, False, False, where[1], where[2])
    return RowSource(matrix, "memory", shape, False)


def read_row_chunk(matrix: Any, start: int, stop: int, columns: np.ndarray | None) -> sparse.csr_matrix:
    """Rows ``start:stop`` and ``columns`` (in that order; all when ``None``) of any matrix, float32 CSR."""
    if sparse.issparse(matrix) or isinstance(matrix, np.ndarray):
        block = matrix[start:stop]
    elif _is_dask(matrix):
        block = matrix[start:stop].compute(scheduler="synchronous")
    elif hasattr(matrix, "group") and getattr(matrix, "format", None) == "csr":
        block = _csr_rows(matrix.group, start, stop, int(matrix.shape[1]))
    elif hasattr(matrix, "group"):
        block = matrix[start:stop]
    else:  # h5py / zarr dense
        if columns is not None:
            # h5py fancy indexing needs increasing indices: read the span, reorder afterwards.
            block = np.asarray(matrix[start:stop])[:, columns]
            return sparse.csr_matrix(block, dtype=np.float32)
        block = np.asarray(matrix[start:stop])
    block = block if sparse.issparse(block) else sparse.csr_matrix(np.asarray(block))
    if columns is not None and not (columns.shape[0] == block.shape[1] and np.array_equal(columns, np.arange(block.shape[1]))):
        block = block.tocsr()[:, columns]
    return sparse.csr_matrix(block, dtype=np.float32)


def _csr_rows(group: Any, start: int, stop: int, n_cols: int) -> sparse.csr_matrix:
    """Rows ``start:stop`` of a CSR group on disk, read directly (h5py or zarr): three contiguous slices.

    Half the time of anndata's row slicing of a backed matrix, which matters in a pass over every row.
    """
    indptr = np.asarray(group["indptr"][start : stop + 1], dtype=np.int64)
    first, last = int(indptr[0]), int(indptr[-1])
    data = np.asarray(group["data"][first:last])
    indices = np.asarray(group["indices"][first:last])
    return sparse.csr_matrix((data, indices, indptr - first), shape=(stop - start, n_cols))


@contextmanager
def opened_element(kind: str, path: str, element: str) -> Iterator[Any]:
    """Open ``element`` of the h5ad file or zarr store at ``path`` for reading (on a worker); closed after.

    Yields anndata's sparse dataset for a sparse element, else the h5py/zarr array.
    """
    from anndata.io import sparse_dataset

    handle = None
    if kind == "h5ad":
        import h5py

        handle = h5py.File(path, "r")
        node = handle[element]
    else:
        import zarr

        node = zarr.open_group(path, mode="r")[element.lstrip("/")]
    try:
        encoding = node.attrs.get("encoding-type", "")
        if isinstance(encoding, bytes):
            encoding = encoding.decode()
        yield sparse_dataset(node) if encoding in ("csr_matrix", "csc_matrix") else node
    finally:
        if handle is not None:
            handle.close()


def graph_for_export(matrix: Any) -> Any:
    """The kNN graph as the exporter reads it.

    anndata's backed CSR dataset (an ``obsp`` element left in its file, as :func:`.open_file.open_h5ad`
    leaves it) becomes a :class:`~cellucid_nb.exporter.graph_source.BlockCSR` over its group, read by
    row blocks; a Dask array (``read_lazy``'s) is computed; anything else is returned as it is.
    """
    group = getattr(matrix, "group", None)
    if group is not None and getattr(matrix, "format", None) == "csr":
        return BlockCSR.from_group(group)
    if _is_dask(matrix):  # read_lazy's obsp: sparse chunks, computed into one scipy matrix (8 bytes an entry)
        return matrix.compute(scheduler="synchronous")
    return matrix


def stored_entries(matrix: Any) -> int:
    """Stored entries of a sparse matrix, in memory or backed (from metadata); 0 when unknown."""
    nnz = getattr(matrix, "nnz", None)
    if nnz is not None:
        return int(nnz)
    group = getattr(matrix, "group", None)
    if group is not None and "data" in group:
        return int(group["data"].shape[0])
    return 0
