"""A kNN graph read from its file by row blocks (a CSR group of an h5ad or zarr store).

anndata's ``read_h5ad(path, backed="r")`` loads ``obsp`` whole (8 bytes per stored
entry: 330 MB for a 2M-cell scanpy graph). :class:`BlockCSR` holds only the row
pointers and reads ``indices``/``data`` as slices, which is all the block writer
(:mod:`.graph_blocks`) asks of a CSR matrix: ``indptr``, ``indices[s:e]``,
``data[s:e]``, ``shape``, ``dtype`` and ``has_canonical_format``. :meth:`BlockCSR.validate`
makes the checks ``prepare()`` makes on an in-memory graph, block by block.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

__all__ = ["BlockCSR"]

#: Stored entries read per block by :meth:`BlockCSR.validate`.
_CHECK_ENTRIES = 1 << 22


class BlockCSR:
    """A CSR matrix whose ``indices`` and ``data`` stay in their file (h5py datasets, zarr arrays).

    Parameters
    ----------
    indptr
        Row pointers, in memory (``n_rows + 1`` integers).
    indices, data
        Sliceable arrays of the stored column indices and values (``[s:e]`` gives numpy arrays).
    shape
        ``(n_rows, n_columns)``.
    """

    def __init__(self, indptr: np.ndarray, indices: Any, data: Any, shape: tuple[int, int]) -> None:
        self.indptr = np.asarray(indptr)
        self.indices = indices
        self.data = data
        self.shape = (int(shape[0]), int(shape[1]))
        #: Set by :meth:`validate`: sorted, unique column indices in every row.
        self.has_canonical_format = False

    @classmethod
    def from_group(cls, group: Any) -> BlockCSR:
        """Over a CSR group (``indptr``/``indices``/``data`` and a ``shape`` attribute) of h5py or zarr."""
        shape = tuple(int(s) for s in group.attrs["shape"])
        return cls(np.asarray(group["indptr"][:]), group["indices"], group["data"], (shape[0], shape[1]))

    @property
    def dtype(self) -> np.dtype:
        """dtype of the stored values."""
        return np.dtype(self.data.dtype)

    @property
    def nnz(self) -> int:
        """Stored entries."""
        return int(self.indptr[-1]) if self.indptr.size else 0

    def to_scipy(self) -> sparse.csr_matrix:
        """The whole matrix in memory (for graphs that are not canonical)."""
        return sparse.csr_matrix((np.asarray(self.data[:]), np.asarray(self.indices[:]), self.indptr), shape=self.shape)

    def take_rows(self, rows: np.ndarray) -> sparse.csr_matrix:
        """Rows ``rows`` (increasing) as a CSR of ``len(rows)`` rows, read by contiguous runs."""
        rows = np.asarray(rows, dtype=np.int64)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        bounds = np.concatenate([[0], breaks, [rows.shape[0]]]).astype(np.int64)
        indices, data = [], []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if b > a:
                s, e = int(self.indptr[rows[a]]), int(self.indptr[rows[b - 1] + 1])
                indices.append(np.asarray(self.indices[s:e]))
                data.append(np.asarray(self.data[s:e]))
        counts = np.diff(self.indptr)[rows] if rows.size else np.zeros(0, np.int64)
        indptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        cat_i = np.concatenate(indices) if indices else np.zeros(0, np.int32)
        cat_d = np.concatenate(data) if data else np.zeros(0, self.dtype)
        return sparse.csr_matrix((cat_d, cat_i, indptr), shape=(rows.shape[0], self.shape[1]))

    def take_row_indices(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row pointers and column indices of ``rows`` (increasing), read by contiguous runs; no weights."""
        rows = np.asarray(rows, dtype=np.int64)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        bounds = np.concatenate([[0], breaks, [rows.shape[0]]]).astype(np.int64)
        pieces = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if b > a:
                pieces.append(np.asarray(self.indices[int(self.indptr[rows[a]]) : int(self.indptr[rows[b - 1] + 1])]))
        indptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        if rows.size:
            np.cumsum(self.indptr[rows + 1] - self.indptr[rows], out=indptr[1:])
        return indptr, (np.concatenate(pieces) if pieces else np.zeros(0, np.int64)).astype(np.int64)

    def validate(self, name: str = "connectivities") -> None:
        """The checks of an in-memory graph, one block of rows at a time; sets ``has_canonical_format``.

        Raises
        ------
        ValueError
            Row pointers that do not match the arrays, column indices out of range,
            non-finite or negative weights.
        TypeError
            Non-numeric weights.
        """
        if self.dtype.kind not in "biuf":
            raise TypeError(f"{name} has dtype {self.dtype}, expected numeric weights.")
        ptr = self.indptr
        n_rows, n_cols = self.shape
        if ptr.shape != (n_rows + 1,) or (ptr.size and (int(ptr[0]) != 0 or (np.diff(ptr) < 0).any())):
            raise ValueError(f"{name}: indptr of shape {ptr.shape} is not non-decreasing from 0 over {n_rows} rows.")
        if int(self.indices.shape[0]) < self.nnz or int(self.data.shape[0]) < self.nnz:
            raise ValueError(f"{name}: indptr ends at {self.nnz} but indices/data hold "
                             f"{int(self.indices.shape[0])}/{int(self.data.shape[0])} entries.")
        canonical = True
        start = 0
        while start < n_rows:
            stop = int(np.searchsorted(ptr, ptr[start] + _CHECK_ENTRIES, side="right")) - 1
            stop = min(max(stop, start + 1), n_rows)
            s, e = int(ptr[start]), int(ptr[stop])
            cols = np.asarray(self.indices[s:e])
            values = np.asarray(self.data[s:e])
            if cols.size and (int(cols.min()) < 0 or int(cols.max()) >= n_cols):
                raise ValueError(f"{name}: column indices of rows {start}:{stop} outside 0..{n_cols - 1}.")
            if values.size and not np.isfinite(values).all():
                raise ValueError(f"{name} has {int((~np.isfinite(values)).sum())} NaN/Inf weight(s) in rows "
                                 f"{start}:{stop}; expected finite weights >= 0.")
            if values.size and (values < 0).any():
                raise ValueError(f"{name} has {int((values < 0).sum())} negative weight(s) in rows {start}:{stop} "
                                 f"(min {float(values.min())}); expected weights >= 0.")
            if canonical and cols.size > 1:
                # Increasing within each row: a decrease (or repeat) is allowed only where a row starts.
                step = np.diff(cols.astype(np.int64)) <= 0
                row_starts = ptr[start + 1 : stop] - s - 1
                step[row_starts[(row_starts >= 0) & (row_starts < step.size)]] = False
                canonical = not step.any()
            start = stop
        self.has_canonical_format = canonical
