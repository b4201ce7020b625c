"""Writer of the kNN graph: ``connectivity/edges.{src,dst,weights.f64}.bin`` and its manifest.

Vectorised: ``A + Aᵀ`` (float64), diagonal and zeros dropped, the upper
triangle of the canonical CSR gives every undirected edge once, already
sorted by (src, dst).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from .inputs import ExportInputs
from .runner import ExportRunner

__all__ = ["extract_edges", "index_dtype_for", "write_graph"]


def index_dtype_for(n_cells: int) -> np.dtype:
    """Smallest index dtype that holds ``n_cells - 1``: uint16 up to 65,536 cells, else uint32."""
    return np.dtype("<u2") if n_cells <= 65536 else np.dtype("<u4")


def extract_edges(matrix: sparse.spmatrix | sparse.sparray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Undirected edges of a kNN matrix.

    Parameters
    ----------
    matrix
        Square sparse matrix with non-negative weights.

    Returns
    -------
    src, dst, weights, max_neighbors
        ``src < dst``, sorted by (src, dst), unique; ``weights`` are the
        symmetrised values ``A[i, j] + A[j, i]`` (float64, > 0); ``max_neighbors``
        is the largest degree with the diagonal excluded.
    """
    a = sparse.csr_matrix(matrix, dtype=np.float64)
    sym = (a + a.T).tocsr()
    sym.sum_duplicates()  # canonical: sorted column indices per row
    # Row of each stored entry, in the indices' own width (int32 below 2**31 cells).
    rows = np.repeat(np.arange(sym.shape[0], dtype=sym.indices.dtype), np.diff(sym.indptr))
    cols = sym.indices
    keep = (rows != cols) & (sym.data != 0)
    degree = np.bincount(rows[keep], minlength=sym.shape[0])
    max_neighbors = int(degree.max()) if degree.size else 0
    upper = keep & (rows < cols)
    return rows[upper], cols[upper], sym.data[upper], max_neighbors


def write_graph(runner: ExportRunner, inputs: ExportInputs) -> dict[str, Any] | None:
    """Queue the edge payloads and write ``connectivity_manifest.json`` (``None`` without a graph)."""
    if inputs.connectivity is None:
        return None
    settings = inputs.settings
    folder = settings.connectivity_binary_dirname
    src, dst, weights, max_neighbors = extract_edges(inputs.connectivity)
    dtype = index_dtype_for(inputs.n_cells)
    runner.mkdir(folder)
    src_path = runner.write_array(f"{folder}/edges.src.bin", src.astype(dtype), items=0)
    dst_path = runner.write_array(f"{folder}/edges.dst.bin", dst.astype(dtype), items=0)
    w_path = runner.write_array(f"{folder}/edges.weights.f64.bin", weights.astype("<f8"), items=1)
    manifest = {
        "format": "edge_pairs",
        "n_cells": inputs.n_cells,
        "n_edges": int(src.shape[0]),
        "max_neighbors": max_neighbors,
        "index_bytes": dtype.itemsize,
        "index_dtype": dtype.name,
        "sourcesPath": src_path,
        "destinationsPath": dst_path,
        "weightsPath": w_path,
        "weight_bytes": 8,
        "weight_dtype": "float64",
        "compression": settings.compression,
    }
    runner.write_json(settings.connectivity_manifest_filename, manifest)
    return manifest
