"""Gene payload bytes: ranges, dense rows, gzip, and writing them where another process stages them.

One implementation for every gene path: :class:`.genes.GeneWriter` (threads of this
process) and the gene tasks of a Dask cluster (``cellucid_nb.adata.gene_tasks``) take a
:class:`.expression.ColumnBlock` through :func:`block_ranges`, :func:`block_rows` and
:func:`payload_bytes`, so a payload's bytes do not depend on where it was built.

Tasks that run elsewhere write their payloads into the staging folder themselves
(:func:`write_block_payloads`: a temporary file in :data:`PARTS_DIR`, then an atomic
rename, so a retried task overwrites its files with the same bytes) and return
:class:`GenePayload` records; the runner then adopts the files
(``ExportRunner.adopt``). A matrix whose genes are built that way implements
:class:`RemoteGenes`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..format import codecs
from ..format.checksums import payload_checksum
from .expression import ColumnBlock

__all__ = [
    "block_ranges", "finalise_ranges", "block_rows", "zero_counts", "build_width", "payload_bytes", "write_block_payloads",
    "GeneJob", "GenePayload", "PayloadEncoding", "RemoteGenes", "PARTS_DIR", "STOP_FILE", "DENSE_BUILD_BYTES", "GENES_PER_BUILD",
]

#: Dense payload bytes built at once per block step.
DENSE_BUILD_BYTES = 8 * 2**20
#: Genes built at once at most.
GENES_PER_BUILD = 512
#: Folder of the staging area where remote tasks write their temporary files (removed before the move).
PARTS_DIR = ".cellucid_nb-gene-parts"
#: A file in :data:`PARTS_DIR` that tells remote tasks to stop at their next gene.
STOP_FILE = "STOP"


def finalise_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        return finalise_ranges(lo.astype(np.float64), hi.astype(np.float64))
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
    return finalise_ranges(lo, hi)


def _dense_rows_from_sparse(
    block: ColumnBlock, first: int, stop: int, lo: np.ndarray, hi: np.ndarray, bits: int | None, n_cells: int
) -> np.ndarray:
    """Gene-major dense payloads of block genes ``first:stop``, one scatter per gene.

    Gene by gene (a loop over a few genes, not over cells): the only temporaries are the
    gene's codes and float32 arithmetic (about 6 bytes per stored value). Building all the
    genes' codes at once took ~40 bytes per stored value (int64 owners and flat positions,
    per-value float64 ranges): 0.5 GB of temporaries per worker at 10M cells. Each gene's
    range goes to :func:`~cellucid_nb.format.codecs.quantize` as a one-element float64 array,
    which is exactly the arithmetic of its ``groups`` form (same bytes).
    """
    indptr, indices, data = block.indptr, block.indices, block.data
    if indptr is None or indices is None or data is None:
        raise ValueError("a sparse column block needs data, indices and indptr (got None)")
    width = stop - first
    if bits is None:
        out = np.zeros((width, n_cells), dtype="<f4")
    else:
        zero_codes = codecs.quantize(np.zeros(width, dtype=np.float32), lo[first:stop], hi[first:stop], bits)
        out = np.empty((width, n_cells), dtype=codecs.QuantSpec(bits).numpy_dtype)
        out[:] = zero_codes[:, None]
    for j in range(width):
        s, e = int(indptr[first + j]), int(indptr[first + j + 1])
        if s == e:
            continue
        values = data[s:e]
        if bits is not None:
            g = first + j
            values = codecs.quantize(values, lo[g : g + 1], hi[g : g + 1], bits)
        out[j, indices[s:e]] = values
    return out


def build_width(n_cells: int, bits: int | None) -> int:
    """Genes whose dense payloads are built at once (at most :data:`DENSE_BUILD_BYTES`)."""
    itemsize = codecs.QuantSpec(bits).numpy_dtype.itemsize
    return max(1, min(GENES_PER_BUILD, DENSE_BUILD_BYTES // max(n_cells * itemsize, 1)))


def zero_counts(block: ColumnBlock, n_cells: int) -> np.ndarray:
    """Per gene of the block, the cells without a stored value (decides the gzip strategy)."""
    if block.dense is None:
        assert block.indptr is not None  # block_ranges refuses a sparse block without indptr
        return n_cells - np.diff(block.indptr)
    return n_cells - np.count_nonzero(block.dense, axis=1)


def block_rows(
    block: ColumnBlock, lo: np.ndarray, hi: np.ndarray, bits: int | None, n_cells: int, width: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Dense payload rows of the block's genes, ``width`` genes at a time.

    Yields
    ------
    first, stop, rows
        ``rows[j]`` is the payload array of block gene ``first + j`` (float32 or codes).
    """
    for first in range(0, block.n_genes, width):
        stop = min(first + width, block.n_genes)
        if block.dense is None:
            rows = _dense_rows_from_sparse(block, first, stop, lo, hi, bits, n_cells)
        elif bits is None:
            rows = block.dense[first:stop].astype("<f4", copy=False)
        else:
            rows = codecs.quantize(block.dense[first:stop], lo[first:stop, None], hi[first:stop, None], bits)
        yield first, stop, rows


def payload_bytes(data: np.ndarray | bytes, compression: int | None, rle: bool = False) -> bytes | memoryview:
    """A payload's final bytes: ``data`` deflated by :func:`codecs.gzip_bytes` when compressing."""
    raw = np.ascontiguousarray(data).data.cast("B") if isinstance(data, np.ndarray) else data
    return codecs.gzip_bytes(raw, compression, rle=rle) if compression else raw


@dataclass(frozen=True)
class GenePayload:
    """What the var manifest and the sidecar need of one gene written elsewhere."""

    position: int
    rel: str
    n_bytes: int
    checksum: str
    lo: float
    hi: float


@dataclass(frozen=True)
class PayloadEncoding:
    """How gene payloads are encoded and where they are staged (what every remote task needs).

    Attributes
    ----------
    staging
        Absolute staging folder (every worker sees it at this path).
    bits, compression
        ``var_quantization`` and the gzip level.
    n_cells
        Rows of the matrix.
    """

    staging: str
    bits: int | None
    compression: int | None
    n_cells: int


@dataclass(frozen=True)
class GeneJob:
    """Every gene a :class:`RemoteGenes` matrix builds and stages.

    Attributes
    ----------
    encoding
        Encoding and staging folder.
    names
        Relative payload path (gzip suffix included) per export position.
    columns
        Matrix column per export position.
    """

    encoding: PayloadEncoding
    names: list[str]
    columns: np.ndarray


@runtime_checkable
class RemoteGenes(Protocol):
    """A gene matrix whose payloads are built and staged by tasks elsewhere (a Dask cluster)."""

    shape: tuple[int, int]

    def write_payloads(
        self, job: GeneJob, on_done: Callable[[list[GenePayload]], None], cancelled: Callable[[], bool]
    ) -> None:
        """Stage every gene of ``job``; call ``on_done`` with each finished task's genes (this thread).

        Returns early once ``cancelled()`` is true, after the tasks have stopped writing.
        """


def _write_staged(staging: str, rel: str, payload: bytes | memoryview) -> None:
    """Write ``payload`` at ``staging/rel``: a temporary file in :data:`PARTS_DIR`, then one rename.

    Folders are never created here: once the staging folder is deleted, nothing can be written.
    """
    part = os.path.join(staging, PARTS_DIR, f"{uuid.uuid4().hex}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        view = memoryview(payload)
        while view.nbytes:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(part, os.path.join(staging, rel))


def write_block_payloads(
    block: ColumnBlock, names: list[str], encoding: PayloadEncoding, stop: Callable[[], bool] | None = None
) -> list[GenePayload] | None:
    """Build, compress and stage the payload of every gene of ``block`` (``names[j]``: block gene ``j``).

    Returns
    -------
    list of GenePayload or None
        One record per gene in block order; ``None`` when ``stop()`` turned true first.
    """
    n_cells, bits = encoding.n_cells, encoding.bits
    lo, hi = block_ranges(block, n_cells)
    zeros = zero_counts(block, n_cells)
    done: list[GenePayload] = []
    for first, _, rows in block_rows(block, lo, hi, bits, n_cells, build_width(n_cells, bits)):
        for j in range(rows.shape[0]):
            if stop is not None and stop():
                return None
            k = first + j
            payload = payload_bytes(rows[j], encoding.compression, codecs.prefers_rle(n_cells, int(zeros[k])))
            _write_staged(encoding.staging, names[k], payload)
            done.append(GenePayload(int(block.positions[k]), names[k], memoryview(payload).nbytes,
                                    payload_checksum(payload), float(lo[k]), float(hi[k])))
    return done
