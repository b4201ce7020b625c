"""Writer of gene expression: one dense vector per gene under ``var/`` and ``var_manifest.json``.

Per block of columns (see :mod:`.expression`): the value range of every gene
is computed at once (``np.minimum.reduceat`` over the CSC data, non-finite
values masked, the implicit zero included when a column has fewer stored
values than cells); then worker threads build each gene's dense vector
(``np.full`` with the zero code + scatter of the stored values), compress,
hash and write it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..format import codecs
from ..format.naming import safe_name
from ..format.spec import FORMAT_NAME
from .expression import ColumnBlock, iter_column_blocks
from .inputs import ExportInputs
from .runner import ExportRunner

__all__ = ["write_genes", "block_ranges"]

#: Genes handed to a worker at once (amortises the task overhead).
GENES_PER_TASK = 8
#: Dense payload bytes built at once per block step.
DENSE_BUILD_BYTES = 8 * 2**20
#: Genes built at once at most.
GENES_PER_BUILD = 512


def _finalise_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Same rules as codecs.value_range: all-invalid -> (0, 1); constant -> max = min + 1.
    invalid = ~np.isfinite(lo)
    lo = np.where(invalid, 0.0, lo)
    hi = np.where(invalid, 1.0, hi)
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
    indptr = block.indptr
    s, e = int(indptr[first]), int(indptr[stop])
    counts = np.diff(indptr[first : stop + 1])
    width = stop - first
    owner = np.repeat(np.arange(width, dtype=np.int64), counts)
    flat = owner * n_cells
    flat += block.indices[s:e]
    if bits is None:
        out = np.zeros((width, n_cells), dtype="<f4")
        out.ravel()[flat] = block.data[s:e]
        return out
    zero_codes = codecs.quantize(np.zeros(width, dtype=np.float32), lo[first:stop], hi[first:stop], bits)
    out = np.empty((width, n_cells), dtype=codecs.QuantSpec(bits).numpy_dtype)
    out[:] = zero_codes[:, None]
    codes = codecs.quantize(block.data[s:e], lo[first:stop][owner], hi[first:stop][owner], bits)
    out.ravel()[flat] = codes
    return out


def _compress_rows(runner: ExportRunner, rows: np.ndarray, names: list[str], zeros: np.ndarray, n_cells: int) -> None:
    """Worker task: compress, hash and queue one payload per row."""
    for j in range(rows.shape[0]):
        if runner.cancelled():
            return
        runner.store(names[j], rows[j], codecs.prefers_rle(n_cells, int(zeros[j])), 1)


def write_genes(runner: ExportRunner, inputs: ExportInputs) -> dict[str, Any] | None:
    """Stream every selected gene to ``var/`` and write ``var_manifest.json``.

    Returns
    -------
    dict or None
        The manifest, or ``None`` when no expression was given.
    """
    genes = inputs.genes
    if genes is None:
        return None
    settings = inputs.settings
    bits = settings.var_quantization
    spec = codecs.QuantSpec(bits)
    folder = settings.var_binary_dirname
    n_cells = inputs.n_cells
    n = len(genes.ids)
    lo_all = np.zeros(n)
    hi_all = np.zeros(n)
    runner.mkdir(folder)
    file_names = [runner.payload_name(f"{folder}/{safe_name(g)}.values.{spec.ext}") for g in genes.ids]
    itemsize = codecs.QuantSpec(bits).numpy_dtype.itemsize
    # Genes materialised densely at once (bounded memory), then compressed row by row.
    width = max(1, min(GENES_PER_BUILD, DENSE_BUILD_BYTES // max(n_cells * itemsize, 1)))
    for block in iter_column_blocks(genes.matrix, genes.columns):
        runner.check()
        lo, hi = block_ranges(block, n_cells)
        lo_all[block.positions] = lo
        hi_all[block.positions] = hi
        names = [file_names[p] for p in block.positions]
        if block.dense is None:
            zeros = n_cells - np.diff(block.indptr)
        else:
            zeros = n_cells - np.count_nonzero(block.dense, axis=1)
        for first in range(0, block.n_genes, width):
            stop = min(first + width, block.n_genes)
            runner.check()
            if block.dense is None:
                rows = _dense_rows_from_sparse(block, first, stop, lo, hi, bits, n_cells)
            elif bits is None:
                rows = block.dense[first:stop].astype("<f4", copy=False)
            else:
                rows = codecs.quantize(block.dense[first:stop], lo[first:stop, None], hi[first:stop, None], bits)
            for task in range(first, stop, GENES_PER_TASK):
                end = min(task + GENES_PER_TASK, stop)
                runner.submit(
                    _compress_rows, runner, rows[task - first : end - first], names[task:end], zeros[task:end], n_cells
                )
            del rows
        del block
    schema: dict[str, Any] = {
        "kind": "continuous",
        "pathPattern": f"{folder}/{{key}}.values.{spec.ext}{runner.suffix}",
        **spec.schema_fields(),
    }
    if bits is not None:
        fields = [[g, float(a), float(b)] for g, a, b in zip(genes.ids, lo_all.tolist(), hi_all.tolist())]
    else:
        fields = [[g] for g in genes.ids]
    manifest = {
        "_format": FORMAT_NAME,
        "n_points": n_cells,
        "var_gene_id_column": genes.var_gene_id_column,
        "compression": settings.compression,
        "quantization": bits,
        "_varSchema": schema,
        "fields": fields,
    }
    runner.write_json(settings.var_manifest_filename, manifest)
    return manifest
