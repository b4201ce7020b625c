"""Undirected edges of a kNN matrix by blocks of rows: :func:`graph.extract_edges`'s result, a fraction of its memory.

``extract_edges`` builds ``A + Aᵀ`` whole in float64 (a float64 copy of ``A``, the
transpose, the sum, the row of every entry: about 50 bytes per stored entry, 2 GB
for a 2M-cell scanpy graph). Only the upper triangle is written, and its row block
``r0:r1`` is the upper part of ``A[r0:r1]`` plus rows ``r0:r1`` of ``tril(A, -1)ᵀ``: so
only that half of the transpose is built whole, in ``A``'s own dtype; the blocks are
summed in float64 (the same additions, so the same weights). The pieces are copied
into the result arrays, already in the payload dtypes, and freed one by one (untouched
pages of ``np.empty`` cost nothing), so the peak is about half of ``Aᵀ`` + the result +
one block. :func:`iter_edge_blocks` hands the blocks out one by one instead, so that
the writer (:func:`.graph.write_graph` with :meth:`.runner.ExportRunner.open_stream`)
holds half of ``Aᵀ`` + one block.

A symmetric ``A`` (scanpy's connectivities) needs no transpose at all: the upper
triangle of ``A + Aᵀ`` is then the upper part of ``A``'s rows with weights
``float64(a_ij) + float64(a_ij)``, the very two numbers the general path adds, so the
same bytes. :func:`is_symmetric` proves the symmetry first in one streaming pass
(:func:`symmetry_fingerprint`), at the memory of one block; anything else takes the
transpose path unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from scipy import sparse

from .graph_source import BlockCSR

__all__ = ["extract_edges_blocked", "iter_edge_blocks", "DegreeCounter", "BLOCK_ENTRIES", "max_neighbors_estimate",
           "is_symmetric", "symmetry_fingerprint", "looks_symmetric"]

#: Stored entries of ``A`` and ``Aᵀ`` summed per block (~50 bytes each while a block is summed).
BLOCK_ENTRIES = 1 << 20


def _row_blocks(indptr_a: np.ndarray, indptr_t: np.ndarray | None, target: int) -> list[tuple[int, int]]:
    """Row ranges of about ``target`` stored entries of ``A`` (and ``Aᵀ``'s half when given).

    ``indptr_a`` alone is searched in place (an int64 copy would be 8 bytes per cell).
    """
    weight = np.asarray(indptr_a)
    if indptr_t is not None:
        weight = weight.astype(np.int64)
        weight += indptr_t
    top = int(np.iinfo(weight.dtype).max)
    n = weight.shape[0] - 1
    bounds, start = [], 0
    while start < n:
        end = np.asarray(min(int(weight[start]) + target, top), dtype=weight.dtype)
        stop = int(np.searchsorted(weight, end, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        bounds.append((start, stop))
        start = stop
    return bounds


def _fill(pieces: list[np.ndarray], dtype: Any) -> np.ndarray:
    """One array from ``pieces``, freeing each once copied."""
    out = np.empty(sum(p.shape[0] for p in pieces), dtype=dtype)
    pos = 0
    while pieces:
        piece = pieces.pop(0)
        out[pos : pos + piece.shape[0]] = piece
        pos += piece.shape[0]
        del piece
    return out


def _entries(a: sparse.csr_matrix, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row (int64), column and value of the entries of ``a[r0:r1]``, in storage order."""
    s, e = int(a.indptr[r0]), int(a.indptr[r1])
    rows = np.repeat(np.arange(r0, r1, dtype=np.int64), np.diff(a.indptr[r0 : r1 + 1]))
    # One read each when a is a BlockCSR (file-backed).
    return rows, np.asarray(a.indices[s:e]), np.asarray(a.data[s:e])


def _lower_entries(a: sparse.csr_matrix, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and value of the entries of ``a[r0:r1]`` below the diagonal, in storage order."""
    rows, cols, values = _entries(a, r0, r1)
    lower = cols < rows
    return rows[lower], cols[lower], values[lower]


def _strict_lower_transposed(a: sparse.csr_matrix, check: Callable[[], None] | None = None) -> sparse.csr_matrix:
    """``tril(a, -1)ᵀ`` as canonical CSR (row ``j`` holds ``a[i, j]`` for ``i > j``, ``i`` ascending).

    A counting sort in two passes over row blocks of ``a``: the column counts give the
    result's ``indptr``, then each block's entries are placed at their row's next free
    slots (rows of ``a`` arrive in order, so every result row comes out sorted). Only the
    result and one block are held: half of what building ``tril`` and transposing it costs.
    ``check`` (e.g. the runner's cancel check) is called before each block.
    """
    n = a.shape[0]
    blocks = _row_blocks(a.indptr, a.indptr, BLOCK_ENTRIES)
    counts = np.zeros(n, dtype=np.int64)
    for r0, r1 in blocks:
        _call(check)
        np.add.at(counts, _lower_entries(a, r0, r1)[1], 1)  # O(block), not O(cells) as bincount
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    nnz = int(indptr[-1])
    index_dtype = a.indices.dtype if n <= np.iinfo(a.indices.dtype).max else np.int64
    data = np.empty(nnz, dtype=a.dtype)
    indices = np.empty(nnz, dtype=index_dtype)
    filled = indptr[:-1].copy()  # next free slot of each result row
    for r0, r1 in blocks:
        _call(check)
        rows, cols, values = _lower_entries(a, r0, r1)
        if not cols.size:
            continue
        # By result row, rows of a ascending within each: one unique int64 key, so no stable sort needed.
        order = np.argsort(cols.astype(np.int64) * (r1 - r0) + (rows - r0))
        cols = cols[order]
        first = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
        group_sizes = np.diff(np.r_[first, cols.size])
        rank = np.arange(cols.size, dtype=np.int64) - np.repeat(first, group_sizes)
        pos = filled[cols] + rank
        indices[pos] = rows[order]
        data[pos] = values[order]
        filled[cols[first]] += group_sizes
        del rows, cols, values, order, first, group_sizes, rank, pos
    out = sparse.csr_matrix((data, indices, indptr), shape=a.shape)
    out.has_sorted_indices = True
    return out


def _canonical(matrix: Any) -> Any:
    if isinstance(matrix, BlockCSR):  # read from its file by blocks when validated canonical and float
        if matrix.has_canonical_format and matrix.dtype.kind == "f" and matrix.dtype.itemsize <= 8:
            return matrix
        matrix = matrix.to_scipy()
    a = sparse.csr_matrix(matrix)
    if a.dtype.kind not in "f" or a.dtype.itemsize > 8:
        a = sparse.csr_matrix(a, dtype=np.float64)
    if not a.has_canonical_format:  # duplicates are summed in float64, as extract_edges does
        a = sparse.csr_matrix(a, dtype=np.float64, copy=True)
        a.sum_duplicates()
    return a


def _call(check: Callable[[], None] | None) -> None:
    if check is not None:
        check()


#: Multipliers of murmur3's 64-bit finaliser.
_FMIX = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_MASK64 = (1 << 64) - 1


def _fmix64(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser of every word of ``x``, in place (a bijection, wrapping arithmetic)."""
    shift = np.uint64(33)
    x ^= x >> shift
    x *= _FMIX[0]
    x ^= x >> shift
    x *= _FMIX[1]
    x ^= x >> shift
    return x


def symmetry_fingerprint(a: Any, key: bytes, check: Callable[[], None] | None = None) -> tuple[int, int, int, int]:
    """Order-independent digests of the upper and the lower triangle of ``a``, one pass over row blocks.

    Every stored entry ``(i, j, v)`` off the diagonal with ``v != 0`` gives the word
    ``h = F(F(F((lo << 32 | hi) ^ k0) ^ bits(float64 v) ^ k1) ^ k2)`` (``lo, hi = min(i, j), max(i, j)``,
    ``F`` murmur3's finaliser, ``k0, k1, k2`` from ``key``); the words of the entries with
    ``i < j`` and those with ``i > j`` are summed apart (modulo 2**64). ``A`` is symmetric
    (up to stored zeros, which are never edges) exactly when both triangles hold the same
    multiset of ``(lo, hi, bits)``: then the sums and counts are equal; otherwise they are
    equal with probability about 2**-64 over a random ``key``. Memory: one block.

    Parameters
    ----------
    a
        Canonical CSR (scipy, or a :class:`.graph_source.BlockCSR`) of at most 2**32 rows.
    key
        24 bytes, random per call (``os.urandom``), so that no input can be crafted to collide.
    check
        Called before each block (e.g. the runner's cancel check).

    Returns
    -------
    upper_sum, lower_sum, n_upper, n_lower
    """
    if len(key) != 24:
        raise ValueError(f"key has {len(key)} bytes, expected 24.")
    k0, k1, k2 = (np.uint64(int.from_bytes(key[i : i + 8], "little")) for i in (0, 8, 16))
    sums, counts = [0, 0], [0, 0]
    for r0, r1 in _row_blocks(a.indptr, None, BLOCK_ENTRIES):
        _call(check)
        rows, cols, values = _entries(a, r0, r1)
        kept = (rows != cols) & (values != 0)
        rows, cols = rows[kept], cols[kept].astype(np.int64)
        bits = values[kept].astype(np.float64).view(np.uint64)
        upper = cols > rows
        h = np.minimum(rows, cols).astype(np.uint64)
        h <<= np.uint64(32)
        h |= np.maximum(rows, cols).astype(np.uint64)
        del rows, cols, kept
        h ^= k0
        _fmix64(h)
        h ^= bits
        h ^= k1
        _fmix64(h)
        h ^= k2
        _fmix64(h)
        for side, mask in enumerate((upper, ~upper)):
            part = h[mask]
            sums[side] = (sums[side] + int(part.sum(dtype=np.uint64))) & _MASK64
            counts[side] += int(part.shape[0])
    return sums[0], sums[1], counts[0], counts[1]


def is_symmetric(a: Any, check: Callable[[], None] | None = None) -> bool:
    """Whether the canonical CSR ``a`` equals its transpose, bit for bit, up to stored zeros.

    Proven by :func:`symmetry_fingerprint` with a fresh random key (wrong with probability
    about 2**-64). A scipy matrix whose sampled rows are not mirrored (:func:`_mirrored`) is
    refused at once, without the pass. Not canonical, not square or more than 2**32 rows: ``False``.
    """
    n = a.shape[0]
    if n != a.shape[1] or n > 1 << 32 or not a.has_canonical_format:
        return False
    if not isinstance(a, BlockCSR) and not _mirrored(a, SYMMETRY_SAMPLE_ROWS):
        return False
    upper, lower, n_upper, n_lower = symmetry_fingerprint(a, os.urandom(24), check)
    return upper == lower and n_upper == n_lower


def iter_edge_blocks(matrix: Any, index_dtype: Any, degrees: DegreeCounter | None = None,
                     check: Callable[[], None] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The edges of :func:`extract_edges_blocked` by blocks of rows, in order: ``(src, dst, weights)`` each.

    A symmetric ``A`` (:func:`is_symmetric`) gives each block straight from its rows. Otherwise
    row block ``r0:r1`` of the upper triangle of ``A + Aᵀ`` is the upper part of ``A[r0:r1]``
    plus rows ``r0:r1`` of ``tril(A, -1)ᵀ`` (the only part of ``Aᵀ`` built whole), summed in
    float64 in the same order as ``A + Aᵀ``. Concatenated, the blocks are the payloads.

    Parameters
    ----------
    matrix
        Square sparse matrix (scipy or :class:`.graph_source.BlockCSR`) with non-negative weights.
    index_dtype
        dtype of the yielded ``src``/``dst``.
    degrees
        When given, counts the degrees of the edges as they are yielded (:attr:`DegreeCounter.most`).
    check
        Called before each block of the passes that precede the first yield (the symmetry
        proof, the transpose): e.g. the runner's cancel check.
    """
    a = _canonical(matrix)
    if is_symmetric(a, check):
        yield from _symmetric_blocks(a, index_dtype, degrees)
    else:
        yield from _transpose_blocks(a, index_dtype, degrees, check)


def _symmetric_blocks(a: Any, index_dtype: Any, degrees: DegreeCounter | None
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Edges of a symmetric ``a``: entries ``j > i`` of its rows, weight ``float64(a_ij) + float64(a_ij)``.

    ``a_ji`` is ``a_ij`` bit for bit, so the sum is the one the transpose path computes.
    The degree of ``i`` is the count of non-zero off-diagonal entries of row ``i``.
    """
    for r0, r1 in _row_blocks(a.indptr, None, BLOCK_ENTRIES):
        rows, cols, values = _entries(a, r0, r1)
        weights = values.astype(np.float64)
        del values
        weights += weights
        edge = weights != 0
        edge &= cols != rows
        if degrees is not None:
            degrees.add_rows(np.bincount(rows[edge] - r0, minlength=r1 - r0))
        edge &= cols > rows
        yield rows[edge].astype(index_dtype), cols[edge].astype(index_dtype), weights[edge].astype("<f8")
        del rows, cols, weights, edge


def _transpose_blocks(a: Any, index_dtype: Any, degrees: DegreeCounter | None,
                      check: Callable[[], None] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Edges of any canonical ``a``: the upper part of its rows plus rows of ``tril(a, -1)ᵀ``."""
    t = _strict_lower_transposed(a, check)
    for r0, r1 in _row_blocks(a.indptr, t.indptr, BLOCK_ENTRIES):
        rows_a = np.repeat(np.arange(r0, r1, dtype=np.int64), np.diff(a.indptr[r0 : r1 + 1]))
        s, e = int(a.indptr[r0]), int(a.indptr[r1])
        cols = np.asarray(a.indices[s:e])
        upper_a = cols > rows_a
        counts = np.bincount(rows_a[upper_a] - r0, minlength=r1 - r0)
        indptr = np.zeros(r1 - r0 + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        own = sparse.csr_matrix((np.asarray(a.data[s:e])[upper_a].astype(np.float64), cols[upper_a], indptr),
                                shape=(r1 - r0, a.shape[1]))
        del rows_a, upper_a, cols
        block = (own + sparse.csr_matrix(t[r0:r1], dtype=np.float64)).tocsr()
        block.sum_duplicates()
        rows = np.repeat(np.arange(r0, r1, dtype=np.int64), np.diff(block.indptr))
        keep = block.data != 0
        src, dst = rows[keep].astype(index_dtype), block.indices[keep].astype(index_dtype)
        if degrees is not None:
            degrees.add(src, dst)
        yield src, dst, block.data[keep].astype("<f8")
        del own, block, rows, keep, src, dst


class DegreeCounter:
    """Largest degree (diagonal excluded) of the edges seen block by block.

    Either per edge (:meth:`add`: an int32 per cell, allocated at the first call) or per
    whole row (:meth:`add_rows`, a symmetric graph: no per-cell memory); one counter takes
    one of the two.
    """

    def __init__(self, n_cells: int) -> None:
        self.n_cells = n_cells
        #: Degree of each cell so far (int32: degrees stay below 2**31); ``None`` before :meth:`add`.
        self.degree: np.ndarray | None = None
        self._most_rows = 0

    def add(self, src: np.ndarray, dst: np.ndarray) -> None:
        """Count one block of edges."""
        if self.degree is None:
            self.degree = np.zeros(self.n_cells, dtype=np.int32)
        np.add.at(self.degree, src, 1)
        np.add.at(self.degree, dst, 1)

    def add_rows(self, row_degrees: np.ndarray) -> None:
        """Take the complete degrees of a block of rows (each row holds all the neighbours of its cell)."""
        if row_degrees.size:
            self._most_rows = max(self._most_rows, int(row_degrees.max()))

    @property
    def most(self) -> int:
        """The manifest's ``max_neighbors``."""
        per_edge = int(self.degree.max()) if self.degree is not None and self.degree.size else 0
        return max(per_edge, self._most_rows)


def extract_edges_blocked(matrix: Any, index_dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Same as :func:`cellucid_nb.exporter.graph.extract_edges`, indices already in ``index_dtype``.

    The blocks of :func:`iter_edge_blocks` joined; degrees come from the edges at the end.

    Parameters
    ----------
    matrix
        Square sparse matrix with non-negative weights.
    index_dtype
        dtype of the returned ``src``/``dst`` (the payload's, e.g. ``<u4``).

    Returns
    -------
    src, dst, weights, max_neighbors
        ``src < dst``, sorted by (src, dst), unique; float64 weights ``A[i, j] + A[j, i]``;
        the largest degree with the diagonal excluded.
    """
    src_pieces: list[np.ndarray] = []
    dst_pieces: list[np.ndarray] = []
    weight_pieces: list[np.ndarray] = []
    for src_block, dst_block, weight_block in iter_edge_blocks(matrix, index_dtype):
        src_pieces.append(src_block)
        dst_pieces.append(dst_block)
        weight_pieces.append(weight_block)
    n = matrix.shape[0]
    src, dst = _fill(src_pieces, index_dtype), _fill(dst_pieces, index_dtype)
    degree = np.bincount(src, minlength=n) + np.bincount(dst, minlength=n)
    return src, dst, _fill(weight_pieces, "<f8"), int(degree.max()) if degree.size else 0


#: Rows whose entries are checked for a mirrored entry before the column counts are skipped.
SYMMETRY_SAMPLE_ROWS = 4096
#: The same for a graph left in its file (each row pointed to is one read).
FILE_SAMPLE_ROWS = 64


def _mirrored(a: sparse.csr_matrix, n_rows: int) -> bool:
    """Whether every entry ``(i, j)`` of ``n_rows`` evenly spaced rows has a stored ``(j, i)``.

    Vectorised over the rows ``j`` to search (their entries laid end to end): about
    ``n_rows`` × (entries per row)² comparisons, milliseconds for a kNN graph.
    """
    rows = np.unique(np.linspace(0, a.shape[0] - 1, num=min(n_rows, a.shape[0])).astype(np.int64))
    lengths = np.diff(a.indptr)[rows]
    r = np.repeat(rows, lengths)
    starts = a.indptr[rows].astype(np.int64)
    pos = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    c = a.indices[np.repeat(starts, lengths) + pos].astype(np.int64)
    off = c != r
    r, c = r[off], c[off]
    if not c.size:
        return True
    seg = (a.indptr[c + 1] - a.indptr[c]).astype(np.int64)  # row c is searched for r
    owner = np.repeat(np.arange(c.size, dtype=np.int64), seg)
    at = np.repeat(a.indptr[c].astype(np.int64), seg) + (
        np.arange(int(seg.sum()), dtype=np.int64) - np.repeat(np.cumsum(seg) - seg, seg))
    hits = np.bincount(owner[a.indices[at] == r[owner]], minlength=c.size)
    return bool((hits > 0).all())


def _file_mirrored(matrix: BlockCSR) -> bool:
    """:func:`_mirrored` for a graph left in its file: column indices only, of the sampled rows
    and of the rows they point to (one read per run of rows; no weights, no full-size arrays)."""
    sampled = np.unique(np.linspace(0, matrix.shape[0] - 1,
                                    num=min(FILE_SAMPLE_ROWS, matrix.shape[0])).astype(np.int64))
    ptr, cols = matrix.take_row_indices(sampled)
    counts = np.diff(ptr)
    within = np.ones(cols.size, dtype=bool)
    within[ptr[:-1][counts > 0]] = False  # first entry of each row
    if np.any(np.diff(cols)[within[1:]] <= 0):  # unsorted or duplicated columns: not canonical
        return False
    r = np.repeat(sampled, counts)
    off = cols != r
    r, c = r[off], cols[off]
    if not c.size:
        return True
    targets = np.unique(c)
    t_ptr, t_cols = matrix.take_row_indices(targets)
    slot = np.searchsorted(targets, c)
    seg = t_ptr[slot + 1] - t_ptr[slot]  # row c is searched for r
    owner = np.repeat(np.arange(c.size, dtype=np.int64), seg)
    at = np.repeat(t_ptr[slot], seg) + (np.arange(int(seg.sum()), dtype=np.int64) - np.repeat(np.cumsum(seg) - seg, seg))
    hits = np.bincount(owner[t_cols[at] == r[owner]], minlength=c.size)
    return bool((hits > 0).all())


def looks_symmetric(matrix: Any) -> bool:
    """Whether the entries of a sample of rows all have their mirror (cheap; no proof).

    What a memory budget can assume before the writer proves symmetry (:func:`is_symmetric`)
    and so needs no transpose. A :class:`.graph_source.BlockCSR` reads only
    :data:`FILE_SAMPLE_ROWS` rows and the rows they point to. It runs before the graph is
    validated: a malformed graph (row pointers past its arrays, indices out of range) is
    "not symmetric" here (the budget then counts the transpose) and the validator names
    what is wrong with it.
    """
    if matrix.shape[0] == 0 or matrix.shape[0] != matrix.shape[1]:
        return matrix.shape[0] == 0
    try:
        if isinstance(matrix, BlockCSR):
            return _file_mirrored(matrix)
        if not sparse.issparse(matrix):
            return False
        a = sparse.csr_matrix(matrix)
        return bool(a.has_canonical_format) and _mirrored(a, SYMMETRY_SAMPLE_ROWS)
    except (IndexError, ValueError, TypeError, OverflowError):
        return False


def max_neighbors_estimate(matrix: Any) -> int:
    """The manifest's ``max_neighbors`` without building ``A + Aᵀ``: the largest row (or column) count.

    The diagonal is left out as :func:`~cellucid_nb.exporter.graph.extract_edges` leaves it out.
    Exact for a symmetric matrix without stored zeros off the diagonal (scanpy's connectivities);
    otherwise within a factor of two of :func:`cellucid_nb.exporter.graph.max_neighbors`, which
    only changes the number of digits in the manifest. When the entries of
    :data:`SYMMETRY_SAMPLE_ROWS` sampled rows all have their mirror, the row counts are taken
    (``O(cells)``); otherwise one ``bincount`` over the stored column indices as well, chunked
    (2.3 s of estimate()'s 2.9 s on a 10M-cell graph, where the row counts take 0.2 s).
    A :class:`.graph_source.BlockCSR` (file-backed) reads only the :data:`FILE_SAMPLE_ROWS`
    sampled rows and the rows they point to; its diagonal is not read (scanpy stores none),
    so its count may be one too high, and it is loaded whole only when not mirrored.
    """
    if isinstance(matrix, BlockCSR):
        if matrix.shape[0] == 0 or matrix.nnz == 0:
            return 0
        # Duplicates would make row counts too high: the sampled rows stand for the whole graph here too.
        if looks_symmetric(matrix):
            return int(np.diff(matrix.indptr).max())
        matrix = matrix.to_scipy()
    a = sparse.csr_matrix(matrix)
    if a.shape[0] == 0 or a.nnz == 0:
        return 0
    on_diagonal = (a.diagonal() != 0).astype(np.int64)  # the diagonal is never an edge
    rows = np.diff(a.indptr) - on_diagonal
    if a.shape[0] == a.shape[1] and a.has_canonical_format and _mirrored(a, SYMMETRY_SAMPLE_ROWS):
        return int(rows.max())
    columns = np.zeros(a.shape[1], dtype=np.int64)
    chunk = 1 << 24
    for start in range(0, a.indices.shape[0], chunk):
        columns += np.bincount(a.indices[start : start + chunk], minlength=a.shape[1])
    return int(max(rows.max(), (columns - on_diagonal).max()))
