"""Compiled sweeps that turn a canonical CSR matrix into dense gene payloads.

Slicing a CSR matrix by columns with scipy scans every stored index twice per
block, then needs a CSC copy of the slice and a scatter into dense payloads; on
100k x 5k cells x genes that was most of the exporter's CPU time. When the
column indices of every row are sorted (scipy's canonical format), cursors do
better:

1. :func:`column_stats` reads the matrix once, in memory order, for every
   gene's stored count and finite min/max (the manifest ranges);
2. :func:`sweep_codes` / :func:`sweep_values` then fill the dense payloads of a
   block of genes in one pass over the rows, each row's cursor starting where
   the previous block stopped, so that every stored value is read once more.

Measured on 100k x 5k: 0.07 s for the statistics and ~0.25 s for all sweeps,
against 0.9 s of slicing and CSC copies plus 0.3 s of numpy scatter.

The loops are a small C extension (``_csr_sweep.c``, built by ``pip install``;
they release the GIL). A JIT such as numba was tried first and measured as
fast, but it added ~120 MB of memory and ~0.8 s of start-up to every process
that exports, more than a whole small export. Without a C compiler the
extension is skipped, :data:`AVAILABLE` is false and the exporter slices with
scipy; ``CELLUCID_NB_NO_CSR_SWEEP=1`` forces that path. Both write
byte-identical exports (tested): :func:`sweep_codes` quantizes with exactly the
arithmetic of :func:`cellucid_nb.format.codecs.quantize`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["AVAILABLE", "supports", "column_stats", "sweep_codes", "sweep_values"]

try:
    from . import _csr_sweep
except ImportError:  # pragma: no cover - built by pip install wherever a C compiler exists
    _csr_sweep = None  # type: ignore[assignment]  # optional compiled module: None when it was not built

#: Whether the compiled sweeps are used.
AVAILABLE = _csr_sweep is not None and os.environ.get("CELLUCID_NB_NO_CSR_SWEEP", "").lower() not in ("1", "true", "yes")

_DATA_KINDS = {np.dtype(np.float32): "f", np.dtype(np.float64): "d"}
_OUT_KINDS = {np.dtype(np.uint8): "B", np.dtype("<u2"): "H", np.dtype("<f4"): "f"}
_EMPTY_F4 = np.zeros(0, dtype=np.float32)
_EMPTY_F8 = np.zeros(0, dtype=np.float64)
_EMPTY_U1 = np.zeros(0, dtype=np.uint8)


def supports(matrix: Any) -> bool:
    """Whether the sweeps can read ``matrix``'s arrays (int32/int64 indices, float32/float64 values)."""
    return (
        matrix.indices.dtype in (np.int32, np.int64)
        and matrix.indptr.dtype == matrix.indices.dtype
        and matrix.data.dtype in _DATA_KINDS
        and all(a.flags.c_contiguous for a in (matrix.indices, matrix.indptr, matrix.data))
    )


def column_stats(indices: np.ndarray, data: np.ndarray, lo: np.ndarray, hi: np.ndarray, count: np.ndarray) -> None:
    """Per column: stored values (``count``) and finite float32 min/max (``lo``/``hi``), updated in place.

    ``lo``/``hi`` (float32) start at +inf/-inf, ``count`` (int64) at 0.
    """
    _csr_sweep.column_stats(indices, data, lo, hi, count, indices.dtype.itemsize, _DATA_KINDS[data.dtype])


def sweep_codes(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, cursor: np.ndarray, col_start: int, col_stop: int,
    local: np.ndarray, lo32: np.ndarray, lo64: np.ndarray, scale: np.ndarray, wide: np.ndarray,
    qmax: int, missing: int, out: np.ndarray,
) -> None:
    """Quantize the stored values of columns ``[col_start, col_stop)`` into ``out[gene, row]``.

    Parameters
    ----------
    indptr, indices, data
        The CSR matrix (indices sorted within each row, no duplicates).
    cursor
        int64, per row the first entry not read yet; moved past ``col_stop``.
    col_start, col_stop
        Column range of the block (entries before ``col_start`` are skipped).
    local
        int64, ``local[c - col_start]``: row of ``out`` for column ``c``, -1 if not exported.
    lo32, lo64, scale, wide
        Per gene: ``lo`` as float32 and float64, ``qmax / (hi - lo)`` (float64) and
        whether float64 arithmetic is needed (:func:`codecs.needs_float64`, bool).
    qmax, missing
        Largest code and the code of non-finite values.
    out
        ``(genes, rows)`` uint8 or uint16, C-contiguous, pre-filled with each gene's code of 0.
    """
    _csr_sweep.sweep(
        indptr, indices, data, cursor, col_start, col_stop, local, lo32, lo64, scale, wide.view(np.uint8), out,
        qmax, missing, indices.dtype.itemsize, _DATA_KINDS[data.dtype], _OUT_KINDS[out.dtype],
    )


def sweep_values(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, cursor: np.ndarray, col_start: int, col_stop: int,
    local: np.ndarray, out: np.ndarray,
) -> None:
    """Like :func:`sweep_codes` for float32 payloads (``out`` pre-filled with zeros)."""
    _csr_sweep.sweep(
        indptr, indices, data, cursor, col_start, col_stop, local, _EMPTY_F4, _EMPTY_F8, _EMPTY_F8, _EMPTY_U1, out,
        0, 0, indices.dtype.itemsize, _DATA_KINDS[data.dtype], _OUT_KINDS[out.dtype],
    )
