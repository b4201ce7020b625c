"""Writer of the kNN graph: ``connectivity/edges.{src,dst,weights.f64}.bin`` and its manifest.

Vectorised: ``A + Aᵀ`` (float64), diagonal and zeros dropped, the upper
triangle of the canonical CSR gives every undirected edge once, already
sorted by (src, dst).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from .graph_blocks import DegreeCounter, extract_edges_blocked, iter_edge_blocks
from .inputs import ExportInputs
from .writer_runner import WriterRunner

__all__ = ["EDGE_FILES", "connectivity_manifest", "extract_edges", "index_dtype_for", "max_neighbors", "write_graph"]

#: The three edge payloads, in manifest order (sources, destinations, weights).
EDGE_FILES = ("edges.src.bin", "edges.dst.bin", "edges.weights.f64.bin")


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
    sym, rows, keep, most = _undirected(matrix)
    cols = sym.indices
    upper = keep & (rows < cols)
    return rows[upper], cols[upper], sym.data[upper], most


def _undirected(matrix: Any) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray, int]:
    """``A + Aᵀ`` (canonical CSR), the row of each entry, the entries kept (no diagonal, no zeros), max degree."""
    a = sparse.csr_matrix(matrix, dtype=np.float64)
    sym = (a + a.T).tocsr()
    sym.sum_duplicates()  # canonical: sorted column indices per row
    # Row of each stored entry, in the indices' own width (int32 below 2**31 cells).
    rows = np.repeat(np.arange(sym.shape[0], dtype=sym.indices.dtype), np.diff(sym.indptr))
    keep = (rows != sym.indices) & (sym.data != 0)
    degree = np.bincount(rows[keep], minlength=sym.shape[0])
    return sym, rows, keep, int(degree.max()) if degree.size else 0


def max_neighbors(matrix: Any) -> int:
    """The manifest's ``max_neighbors`` of a kNN matrix, counted as :func:`extract_edges` counts it.

    Parameters
    ----------
    matrix
        Square sparse matrix with non-negative weights.
    """
    return _undirected(matrix)[3]


def connectivity_manifest(
    n_cells: int, n_edges: int, most_neighbors: int, paths: tuple[str, str, str], compression: int | None
) -> dict[str, Any]:
    """The ``connectivity_manifest.json`` document (the writer's, and the estimate's for the full data).

    Parameters
    ----------
    n_cells, n_edges, most_neighbors
        Cells, undirected edges, largest degree.
    paths
        Relative paths of the :data:`EDGE_FILES` as written (with ``.gz`` when compressed).
    compression
        Normalised gzip level or ``None``.
    """
    dtype = index_dtype_for(n_cells)
    return {
        "format": "edge_pairs",
        "n_cells": n_cells,
        "n_edges": int(n_edges),
        "max_neighbors": int(most_neighbors),
        "index_bytes": dtype.itemsize,
        "index_dtype": dtype.name,
        "sourcesPath": paths[0],
        "destinationsPath": paths[1],
        "weightsPath": paths[2],
        "weight_bytes": 8,
        "weight_dtype": "float64",
        "compression": compression,
    }


def write_graph(runner: WriterRunner, inputs: ExportInputs) -> dict[str, Any] | None:
    """Queue the edge payloads and write ``connectivity_manifest.json`` (``None`` without a graph)."""
    if inputs.connectivity is None:
        return None
    settings = inputs.settings
    folder = settings.connectivity_binary_dirname
    dtype = index_dtype_for(inputs.n_cells)
    runner.mkdir(folder)
    if hasattr(runner, "open_stream"):
        # Block by block into streamed payloads: one block in memory for a symmetric graph,
        # else half of Aᵀ + one block (graph_blocks.py).
        n_edges, most, paths = _write_edges_streamed(runner, inputs.connectivity, dtype, folder)
    else:  # the estimator's recording runner measures whole arrays of a sampled graph
        src, dst, weights, most = extract_edges_blocked(inputs.connectivity, dtype)
        n_edges = int(src.shape[0])
        paths = (
            runner.write_array(f"{folder}/{EDGE_FILES[0]}", src, items=0),
            runner.write_array(f"{folder}/{EDGE_FILES[1]}", dst, items=0),
            runner.write_array(f"{folder}/{EDGE_FILES[2]}", weights, items=1),
        )
    manifest = connectivity_manifest(inputs.n_cells, n_edges, most, paths, settings.compression)
    runner.write_json(settings.connectivity_manifest_filename, manifest)
    return manifest


def _write_edges_streamed(runner: Any, matrix: Any, dtype: np.dtype, folder: str) -> tuple[int, int, tuple[str, str, str]]:
    """The three edge payloads fed block by block; returns edges, largest degree and paths."""
    streams = [runner.open_stream(f"{folder}/{name}") for name in EDGE_FILES]
    try:
        degrees = DegreeCounter(matrix.shape[0])
        n_edges = 0
        for block in iter_edge_blocks(matrix, dtype, degrees, runner.check):
            runner.check()
            for stream, piece in zip(streams, block, strict=True):
                stream.append(piece)
            n_edges += int(block[0].shape[0])
            del block
        paths = tuple(runner.close_stream(stream, items=int(i == 2)) for i, stream in enumerate(streams))
    finally:
        for stream in streams:
            stream.close()
    return n_edges, degrees.most, (paths[0], paths[1], paths[2])
