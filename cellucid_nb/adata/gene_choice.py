"""Gene selection helpers for an :class:`~cellucid_nb.adata.plan.ExportPlan`.

Every helper returns gene identifiers as strings (from ``var.index`` or a ``var``
column), ready for ``ExportPlan.genes``. Statistics are vectorised over row
blocks of the expression matrix (in memory or backed) and never densify it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from cellucid_nb.adata.inspection import expression_matrix, expression_var, read_rows

__all__ = ["gene_ids", "genes_by_list", "highly_variable", "top_genes", "all_genes", "column_stats"]

#: Rows per block when scanning a matrix (bounded memory for backed and dense data).
_ROW_BLOCK = 50_000


def gene_ids(adata: Any, source: str = "X", id_column: str = "index") -> pd.Index:
    """Return the gene identifiers of an expression source as a string Index.

    Parameters
    ----------
    adata
        AnnData (in memory or backed).
    source
        ``"X"``, ``"layers/<name>"`` or ``"raw"`` (``raw`` has its own ``var``).
    id_column
        ``"index"`` for ``var.index`` or a column of ``var``.
    """
    var = expression_var(adata, source)
    if id_column == "index":
        return pd.Index(var.index.astype(str))
    if id_column not in var.columns:
        raise KeyError(
            f"var_gene_id_column={id_column!r} is not a column of the {source!r} var; "
            f"expected 'index' or one of {list(var.columns)}"
        )
    return pd.Index(var[id_column].astype(str))


def genes_by_list(
    adata: Any, ids: Iterable[object], source: str = "X", id_column: str = "index"
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split a requested gene list into known and unknown identifiers.

    Parameters
    ----------
    adata
        AnnData.
    ids
        Requested identifiers, in the order wanted; duplicates are dropped.
    source, id_column
        As in :func:`gene_ids`.

    Returns
    -------
    (found, unknown)
        Both in request order.
    """
    known = set(gene_ids(adata, source, id_column))
    found: list[str] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for gene in ids:
        gene = str(gene)
        if gene in seen:
            continue
        seen.add(gene)
        (found if gene in known else unknown).append(gene)
    return tuple(found), tuple(unknown)


def highly_variable(
    adata: Any, source: str = "X", id_column: str = "index", flag: str = "highly_variable"
) -> tuple[str, ...]:
    """Return the genes flagged in ``adata.var[flag]`` (var order), as ids of ``source``.

    For ``source="raw"`` the flag is read from ``adata.var`` and kept to the
    genes that ``raw`` also holds.

    Parameters
    ----------
    adata
        AnnData.
    source, id_column
        As in :func:`gene_ids`.
    flag
        Boolean ``var`` column.
    """
    if flag not in adata.var.columns:
        raise KeyError(f"var has no column {flag!r}; expected a boolean flag column, var has {list(adata.var.columns)}")
    mask = adata.var[flag].fillna(False).to_numpy().astype(bool)
    if source == "raw":
        var_ids = gene_ids_of_var(adata.var, id_column)[mask]
        raw_ids = gene_ids(adata, "raw", id_column)
        return tuple(var_ids[var_ids.isin(raw_ids)])
    return tuple(gene_ids(adata, source, id_column)[mask])


def gene_ids_of_var(var: pd.DataFrame, id_column: str) -> pd.Index:
    """Return identifiers of a ``var`` table (``"index"`` or a column) as strings."""
    return pd.Index((var.index if id_column == "index" else var[id_column]).astype(str))


def all_genes(adata: Any, source: str = "X", id_column: str = "index") -> tuple[str, ...]:
    """Return every gene id of ``source`` in matrix order."""
    return tuple(gene_ids(adata, source, id_column))


def column_stats(matrix: Any, row_block: int = _ROW_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Column means and variances over all rows, reading ``row_block`` rows at a time.

    Non-finite values count as 0. Sparse blocks are reduced with ``np.bincount``
    over their stored values (no densifying).

    Parameters
    ----------
    matrix
        Dense array, scipy sparse matrix/array, h5py dataset or anndata backed
        sparse dataset, shape (n_cells, n_genes).
    row_block
        Rows per block.

    Returns
    -------
    (mean, variance)
        float64 arrays of length n_genes (population variance).
    """
    n, g = (int(s) for s in matrix.shape)
    total = np.zeros(g, dtype=np.float64)
    total_sq = np.zeros(g, dtype=np.float64)
    if sparse.issparse(matrix) and matrix.format == "csc":
        # CSC in memory: per-column sums straight from the stored values.
        data = np.where(np.isfinite(matrix.data), matrix.data, 0).astype(np.float64, copy=False)
        counts = np.diff(matrix.indptr)
        cols = np.repeat(np.arange(g), counts)
        total = np.bincount(cols, weights=data, minlength=g)
        total_sq = np.bincount(cols, weights=data * data, minlength=g)
    else:
        for start in range(0, n, row_block):
            block = read_rows(matrix, start, min(n, start + row_block))
            if sparse.issparse(block):
                block = block.tocsr() if block.format != "csr" else block
                data = block.data.astype(np.float64)
                data[~np.isfinite(data)] = 0
                total += np.bincount(block.indices, weights=data, minlength=g)
                total_sq += np.bincount(block.indices, weights=data * data, minlength=g)
            else:
                values = np.asarray(block, dtype=np.float64)
                values = np.where(np.isfinite(values), values, 0.0)
                total += values.sum(axis=0)
                total_sq += np.einsum("ij,ij->j", values, values)
    mean = total / max(n, 1)
    variance = np.maximum(total_sq / max(n, 1) - mean * mean, 0.0)
    return mean, variance


def top_genes(
    adata: Any, n: int, by: str = "mean", source: str = "X", id_column: str = "index"
) -> tuple[str, ...]:
    """Return the ``n`` genes with the highest mean or variance, best first.

    Parameters
    ----------
    adata
        AnnData (in memory or backed; backed matrices are read in row blocks).
    n
        Number of genes (capped at the number available).
    by
        ``"mean"`` or ``"variance"``.
    source, id_column
        As in :func:`gene_ids`.
    """
    if by not in ("mean", "variance"):
        raise ValueError(f"top_genes(by={by!r}) is not supported: expected 'mean' or 'variance'")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"top_genes(n={n!r}): expected a non-negative integer")
    ids = gene_ids(adata, source, id_column)
    mean, variance = column_stats(expression_matrix(adata, source))
    score = mean if by == "mean" else variance
    # Stable sort on -score: ties keep var order, so results are reproducible.
    order = np.argsort(-score, kind="stable")[: int(n)]
    return tuple(ids[order])
