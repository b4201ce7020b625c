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
GENES_PER_TASK = 16


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


def _write_sparse_genes(
    runner: ExportRunner,
    block: ColumnBlock,
    first: int,
    stop: int,
    names: list[str],
    lo: np.ndarray,
    hi: np.ndarray,
    zero_codes: np.ndarray | None,
    bits: int | None,
    n_cells: int,
) -> None:
    data, indices, indptr = block.data, block.indices, block.indptr
    dtype = codecs.QuantSpec(bits).numpy_dtype
    for j in range(first, stop):
        if runner.cancelled():
            return
        s, e = indptr[j], indptr[j + 1]
        if bits is None:
            out = np.zeros(n_cells, dtype=dtype)
            out[indices[s:e]] = data[s:e]
        else:
            out = np.full(n_cells, zero_codes[j], dtype=dtype)
            if e > s:
                out[indices[s:e]] = codecs.quantize(data[s:e], lo[j], hi[j], bits)
        runner.store(names[j], out, rle=codecs.prefers_rle(n_cells, n_cells - int(e - s)), items=1)


def _write_dense_genes(
    runner: ExportRunner,
    block: ColumnBlock,
    first: int,
    stop: int,
    names: list[str],
    lo: np.ndarray,
    hi: np.ndarray,
    bits: int | None,
    n_cells: int,
) -> None:
    for j in range(first, stop):
        if runner.cancelled():
            return
        values = block.dense[j]
        out = values.astype("<f4", copy=False) if bits is None else codecs.quantize(values, lo[j], hi[j], bits)
        zeros = n_cells - int(np.count_nonzero(values))
        runner.store(names[j], out, rle=codecs.prefers_rle(n_cells, zeros), items=1)


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
    for block in iter_column_blocks(genes.matrix, genes.columns):
        runner.check()
        lo, hi = block_ranges(block, n_cells)
        lo_all[block.positions] = lo
        hi_all[block.positions] = hi
        names = [file_names[p] for p in block.positions]
        zero_codes = None
        if bits is not None and block.dense is None:
            zero_codes = codecs.quantize(np.zeros(block.n_genes, dtype=np.float32), lo, hi, bits)
        for first in range(0, block.n_genes, GENES_PER_TASK):
            stop = min(first + GENES_PER_TASK, block.n_genes)
            if block.dense is None:
                runner.submit(_write_sparse_genes, runner, block, first, stop, names, lo, hi, zero_codes, bits, n_cells)
            else:
                runner.submit(_write_dense_genes, runner, block, first, stop, names, lo, hi, bits, n_cells)
        del block
    schema: dict[str, Any] = {
        "kind": "continuous",
        "pathPattern": f"{folder}/{{key}}.values.{spec.ext}{runner.suffix}",
        "ext": spec.ext,
        "dtype": spec.dtype_name,
        "quantized": spec.quantized,
    }
    if bits is not None:
        schema["quantizationBits"] = bits
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
