"""Column-block streaming of a dense or sparse expression matrix.

The matrix is never densified whole and never converted whole to CSC (a CSR
matrix is read in at most MAX_CSR_PASSES column slices whose non-zeros stay
moderate). :func:`plan_column_blocks` decides the blocks up front so that
worker threads can read them independently (scipy's slicing releases the GIL);
each :class:`ColumnBlock` holds a few hundred genes either as CSC arrays
(``data``, ``indices``, ``indptr``) or as a dense gene-major array.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from .inputs import F32_MAX, overflow_count

__all__ = ["ColumnBlock", "BlockPlan", "plan_column_blocks", "read_column_block", "iter_column_blocks", "column_nnz"]

#: Non-zeros per block of a CSR input (its slice and CSC copy live at the same time).
TARGET_BLOCK_NNZ = 4_000_000
#: Matrices smaller than MIN_BLOCKS x TARGET_BLOCK_NNZ are cut into this many blocks...
MIN_BLOCKS = 8
#: ... of at least this many non-zeros.
MIN_BLOCK_NNZ = 131_072
#: A CSR matrix is read in this many column slices...
MAX_CSR_PASSES = 8
#: ... unless that makes a block larger than this (its slice and CSC copy live at once).
MAX_CSR_BLOCK_NNZ = 24_000_000
#: Bytes of float32 per dense block.
TARGET_DENSE_BYTES = 32 * 2**20
#: Stored entries counted per chunk when sizing the blocks of a CSR matrix.
_COUNT_CHUNK = 1 << 18
#: Genes per block at most (bounds per-block Python lists).
MAX_BLOCK_GENES = 2048


@dataclass
class ColumnBlock:
    """A group of exported genes, in export positions ``positions``.

    Sparse blocks: gene ``j`` of the block has rows ``indices[indptr[j]:indptr[j+1]]``
    and values ``data[...]`` (float32); dense blocks: ``dense[j]`` is the gene's
    float32 vector.
    """

    positions: np.ndarray
    data: np.ndarray | None = None
    indices: np.ndarray | None = None
    indptr: np.ndarray | None = None
    dense: np.ndarray | None = None

    @property
    def n_genes(self) -> int:
        """Number of genes in the block."""
        return int(self.positions.shape[0])


def column_nnz(matrix: Any) -> np.ndarray | None:
    """Stored entries per column of a CSR/CSC matrix (``None`` for other inputs)."""
    if not sparse.issparse(matrix):
        return None
    if matrix.format == "csc":
        return np.diff(matrix.indptr)
    if matrix.format == "csr":
        # Chunked: np.bincount casts its input to intp, a full int64 copy of the indices otherwise.
        counts = np.zeros(matrix.shape[1], dtype=np.int64)
        indices = matrix.indices
        for start in range(0, indices.shape[0], _COUNT_CHUNK):
            counts += np.bincount(indices[start : start + _COUNT_CHUNK], minlength=matrix.shape[1])
        return counts
    return None


def _split_by_weight(weights: np.ndarray, target: float, max_len: int) -> list[tuple[int, int]]:
    """Split ``range(len(weights))`` into consecutive runs of about ``target`` total weight."""
    bounds = []
    start = 0
    n = weights.shape[0]
    cum = np.cumsum(weights, dtype=np.float64)
    while start < n:
        base = cum[start - 1] if start else 0.0
        stop = int(np.searchsorted(cum, base + target, side="right"))
        stop = min(max(stop, start + 1), start + max_len, n)
        bounds.append((start, stop))
        start = stop
    return bounds


def _as_csc_block(sub: Any) -> sparse.csc_matrix:
    block = sparse.csc_matrix(sub)
    block.sum_duplicates()
    return block


def _sparse_block(matrix: Any, cols: np.ndarray) -> sparse.csc_matrix:
    """CSC of ``matrix[:, cols]`` (``cols`` sorted), reading a contiguous slice when it is cheap."""
    lo, hi = int(cols[0]), int(cols[-1]) + 1
    if matrix.format == "csr" and hi - lo <= 4 * cols.shape[0]:
        sub = _as_csc_block(matrix[:, lo:hi])
        if hi - lo == cols.shape[0]:
            return sub
        return sub[:, cols - lo]
    return _as_csc_block(matrix[:, cols])


def _to_float32(values: np.ndarray, columns: np.ndarray, indptr: np.ndarray | None = None) -> np.ndarray:
    """``values`` as float32; finite values beyond float32's range are refused, never turned into +-inf.

    Parameters
    ----------
    values
        The stored values of a CSC block (with its ``indptr``) or a dense ``(n_cells, n_columns)`` block.
    columns
        Matrix column of each block column (named in the error).
    indptr
        Column offsets of a sparse block; ``None`` for a dense one.
    """
    if values.dtype == np.float32:
        return values
    n, largest = overflow_count(values)
    if n:
        with np.errstate(invalid="ignore"):
            big = np.isfinite(values) & (np.abs(values) > F32_MAX)
        if indptr is None:
            where = np.flatnonzero(big.any(axis=0))
        else:
            where = np.unique(np.searchsorted(indptr, np.flatnonzero(big), side="right") - 1)
        raise ValueError(
            f"gene_expression has {n} finite value(s) beyond float32's range in columns "
            f"{columns[where[:5]].tolist()}{'...' if where.size > 5 else ''} (largest |value| {largest:.6g}); "
            f"expected |value| <= {F32_MAX:.6g}: genes are stored as float32. Rescale the matrix."
        )
    return values.astype(np.float32)


@dataclass(frozen=True)
class BlockPlan:
    """Which selected genes one block reads: ``positions`` (export order) of ``columns``."""

    positions: np.ndarray
    columns: np.ndarray


def _as_sliceable(matrix: Any) -> Any:
    if sparse.issparse(matrix) and matrix.format not in ("csr", "csc"):
        return sparse.csc_matrix(matrix)  # coo/lil/dok/...: one conversion, never dense
    return matrix


def plan_column_blocks(matrix: Any, columns: np.ndarray) -> tuple[Any, list[BlockPlan]]:
    """Cut the selected columns into blocks that can be read independently (by worker threads).

    Parameters
    ----------
    matrix
        ``(n_cells, n_genes)``: numpy array, any scipy sparse matrix/array, or
        an object with 2-D slicing (h5py dataset, backed AnnData matrix).
    columns
        Column index of each exported gene, in export order.

    Returns
    -------
    matrix, plans
        The matrix to read from (COO/LIL/... converted once to CSC) and the blocks,
        each in ascending column order (``positions`` maps back to export order).
    """
    matrix = _as_sliceable(matrix)
    n_cells = int(matrix.shape[0])
    order = np.argsort(columns, kind="stable")
    sorted_cols = columns[order]
    if sparse.issparse(matrix):
        stored = column_nnz(matrix)
        assert stored is not None  # _as_sliceable made every sparse matrix CSR or CSC
        nnz = stored[sorted_cols].astype(np.float64)
        total = float(nnz.sum())
        # Small matrices get smaller blocks too (at least MIN_BLOCKS of them), so the
        # export's own memory stays a fraction of the input's at every size.
        target = max(min(TARGET_BLOCK_NNZ, total / MIN_BLOCKS), MIN_BLOCK_NNZ)
        if matrix.format == "csr":
            # Each block re-reads every stored index of a CSR matrix: few, larger blocks.
            target = max(target, min(total / MAX_CSR_PASSES, MAX_CSR_BLOCK_NNZ))
        # A little weight per column keeps all-zero stretches from making huge blocks.
        bounds = _split_by_weight(nnz + n_cells / 64, target, MAX_BLOCK_GENES)
    else:
        width = max(1, min(MAX_BLOCK_GENES, TARGET_DENSE_BYTES // max(4 * n_cells, 1)))
        bounds = [(a, min(a + width, sorted_cols.shape[0])) for a in range(0, sorted_cols.shape[0], width)]
    return matrix, [BlockPlan(order[a:b], sorted_cols[a:b]) for a, b in bounds]


def read_column_block(matrix: Any, plan: BlockPlan) -> ColumnBlock:
    """Read one planned block (thread-safe: the matrix is only read).

    Parameters
    ----------
    matrix
        The matrix returned by :func:`plan_column_blocks`.
    plan
        One of its blocks.
    """
    cols = plan.columns
    if sparse.issparse(matrix):
        block = _sparse_block(matrix, cols)
        return ColumnBlock(plan.positions, _to_float32(block.data, cols, block.indptr), block.indices, block.indptr)
    lo, hi = int(cols[0]), int(cols[-1]) + 1
    sub = matrix[:, lo:hi] if hi - lo == cols.shape[0] else matrix[:, cols]
    if sparse.issparse(sub):  # lazy inputs (backed AnnData) may hand back sparse slices
        block = _as_csc_block(sub)
        return ColumnBlock(plan.positions, _to_float32(block.data, cols, block.indptr), block.indices, block.indptr)
    dense = np.asarray(sub)
    if dense.dtype.kind not in "biuf":
        raise TypeError(f"gene_expression columns have dtype {dense.dtype}, expected numbers.")
    if dense.dtype.kind == "f" and dense.dtype.itemsize > 4:
        _to_float32(dense, cols)  # only checks: the cast below is fused with the transpose
    return ColumnBlock(plan.positions, dense=np.ascontiguousarray(dense.T, dtype=np.float32))


def iter_column_blocks(matrix: Any, columns: np.ndarray) -> Iterator[ColumnBlock]:
    """Yield the selected columns of ``matrix`` block by block, in the calling thread.

    Parameters
    ----------
    matrix, columns
        As for :func:`plan_column_blocks`.

    Yields
    ------
    ColumnBlock
        Genes in ascending column order (``positions`` maps back to export order).
    """
    matrix, plans = plan_column_blocks(matrix, columns)
    for plan in plans:
        yield read_column_block(matrix, plan)
