"""``export(adata, plan)``: run the exporter on an AnnData, in memory or backed.

Only the chosen genes are loaded. A backed matrix is read in row chunks, each
chunk keeps only the chosen columns, and the pieces become one in-memory CSR
(or dense array, for a dense source) of just those genes; an in-memory matrix is
handed to the exporter as it is, which streams its columns block by block.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from cellucid_nb.adata.budget import parse_memory_limit
from cellucid_nb.adata.gene_choice import gene_ids
from cellucid_nb.adata.inspection import expression_matrix, expression_var
from cellucid_nb.adata.lazy_frames import eager_frames
from cellucid_nb.adata.plan import ExportPlan
from cellucid_nb.adata.sources import graph_for_export, read_row_chunk
from cellucid_nb.adata.spill import SpillDir
from cellucid_nb.adata.streaming import BackgroundRowPass, choose_export_path, streamed_genes
from cellucid_nb.exporter.progress import ExportCancelled, ExportResult, ProgressEvent
from cellucid_nb.format.spec import SIDECAR_FILE

__all__ = ["export", "prepare_kwargs", "load_genes", "category_colors_for"]

#: Rows read per chunk from a backed matrix.
ROW_CHUNK = 20_000
#: Minimum seconds between two "load" progress events.
_MIN_INTERVAL = 0.1


def _is_in_memory(matrix: Any) -> bool:
    return isinstance(matrix, np.ndarray) or sparse.issparse(matrix)


def category_colors_for(adata: Any, plan: ExportPlan) -> dict[str, list[str]]:
    """Category colours of the plan's obs keys, from ``uns["<key>_colors"]``."""
    return {k: list(adata.uns[k + "_colors"]) for k in plan.obs_keys if k + "_colors" in adata.uns}


def _gene_columns(adata: Any, plan: ExportPlan) -> np.ndarray:
    """Matrix columns of the plan's genes, in the plan's order."""
    if plan.expression_source is None:
        raise ValueError("_gene_columns: the plan exports no expression (expression_source=None); expected a source")
    ids = gene_ids(adata, plan.expression_source, plan.var_gene_id_column)
    if plan.genes is None:
        return np.arange(len(ids), dtype=np.int64)
    return ids.get_indexer(pd.Index(plan.genes, dtype=object)).astype(np.int64)


def load_genes(
    matrix: Any,
    columns: np.ndarray,
    *,
    on_rows: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    row_chunk: int = ROW_CHUNK,
) -> np.ndarray | sparse.csr_matrix:
    """Read the chosen columns of a (backed) matrix, ``row_chunk`` rows at a time.

    Parameters
    ----------
    matrix
        h5py dataset, anndata backed sparse dataset, or anything with 2-D row slicing.
    columns
        Column indices to keep, in the wanted order.
    on_rows
        Called with ``(rows_done, n_rows)`` after each chunk.
    cancel
        Checked between chunks; when set, :class:`ExportCancelled` is raised.
    row_chunk
        Rows per read.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_matrix
        ``(n_rows, len(columns))`` float32: dense for a dense source, CSR otherwise.
    """
    n = int(matrix.shape[0])
    k = int(columns.shape[0])
    order = np.argsort(columns, kind="stable")
    sorted_cols = columns[order]
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.shape[0])
    identity = k == int(matrix.shape[1]) and bool(np.all(columns == np.arange(k)))
    dense_source = isinstance(matrix, np.ndarray) or type(matrix).__module__.startswith("h5py")
    if getattr(matrix, "format", None) == "csc":
        return _load_csc_columns(matrix, sorted_cols, inverse, on_rows=on_rows, cancel=cancel)
    if dense_source:
        out = np.empty((n, k), dtype=np.float32)
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, n, row_chunk):
        if cancel is not None and cancel.is_set():
            raise ExportCancelled("export cancelled while loading genes; nothing was written")
        stop = min(n, start + row_chunk)
        if dense_source:
            if k:
                # h5py fancy indexing needs increasing indices; reorder afterwards.
                block = np.asarray(matrix[start:stop] if identity else matrix[start:stop, sorted_cols])
                out[start:stop] = block if identity else block[:, inverse]
        else:
            # Backed sparse, Dask (dense or sparse chunks), anything with row slices: float32 CSR, columns in order.
            sub = read_row_chunk(matrix, start, stop, None if identity else columns)
            pieces.append((sub.data, sub.indices, np.diff(sub.indptr)))
        if on_rows is not None:
            on_rows(stop, n)
    if dense_source:
        return out
    return _stack_rows(pieces, n, k)


def _load_csc_columns(
    matrix: Any,
    sorted_cols: np.ndarray,
    inverse: np.ndarray,
    *,
    on_rows: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
    col_chunk: int = 256,
) -> sparse.csc_matrix:
    """Chosen columns of a column-major (CSC) matrix, read ``col_chunk`` columns at a time.

    Row chunks of a CSC file would read every column each time; columns are its
    cheap direction. Progress reports columns as "rows done" of the load phase.
    """
    n, k = int(matrix.shape[0]), int(sorted_cols.shape[0])
    blocks = []
    for start in range(0, k, col_chunk):
        if cancel is not None and cancel.is_set():
            raise ExportCancelled("export cancelled while loading genes; nothing was written")
        cols = sorted_cols[start : start + col_chunk]
        blocks.append(sparse.csc_matrix(matrix[:, cols], dtype=np.float32))
        if on_rows is not None:
            on_rows(int(n * min(k, start + col_chunk) / k), n)
    stacked = sparse.hstack(blocks, format="csc") if blocks else sparse.csc_matrix((n, 0), dtype=np.float32)
    return stacked[:, inverse]


def _stack_rows(pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int, k: int) -> sparse.csr_matrix:
    """One CSR from row-chunk pieces, freeing each piece once copied (peak ~ result + one piece)."""
    nnz = sum(p[0].shape[0] for p in pieces)
    data = np.empty(nnz, dtype=np.float32)
    index_dtype = np.int32 if max(nnz, k) < 2**31 else np.int64
    indices = np.empty(nnz, dtype=index_dtype)
    counts = np.concatenate([p[2] for p in pieces]) if pieces else np.zeros(0, np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64 if nnz >= 2**31 else index_dtype)
    np.cumsum(counts, out=indptr[1:])
    pos = 0
    while pieces:
        piece_data, piece_indices, _ = pieces.pop(0)
        size = piece_data.shape[0]
        data[pos : pos + size] = piece_data
        indices[pos : pos + size] = piece_indices
        pos += size
        del piece_data, piece_indices
    return sparse.csr_matrix((data, indices, indptr), shape=(n, k))


def prepare_kwargs(adata: Any, plan: ExportPlan, gene_matrix: Any = None, gene_var: pd.DataFrame | None = None) -> dict[str, Any]:
    """The ``prepare()`` keyword arguments for ``plan`` (expression as given, or the source matrix).

    Parameters
    ----------
    adata
        AnnData.
    plan
        A plan checked against ``adata``.
    gene_matrix, gene_var
        Loaded expression of the chosen genes and its ``var`` rows; default: the
        whole source matrix and its ``var``.
    """
    kw: dict[str, Any] = {
        "latent_space": adata.obsm[plan.latent_key],
        "obs": adata.obs,
        "obs_keys": list(plan.obs_keys),
        "centroid_outlier_quantile": plan.centroid_outlier_quantile,
        "centroid_min_points": plan.centroid_min_points,
        "var_quantization": plan.var_quantization,
        "obs_continuous_quantization": plan.obs_continuous_quantization,
        "obs_categorical_dtype": plan.obs_categorical_dtype,
        "compression": plan.compression,
        "dataset_name": plan.dataset_name,
        "dataset_description": plan.dataset_description,
        "dataset_id": plan.dataset_id,
        "source_name": plan.source_name,
        "source_url": plan.source_url,
        "source_citation": plan.source_citation,
        "vector_basis": plan.vector_basis,
        "layout": plan.layout,
        "category_colors": category_colors_for(adata, plan),
    }
    if plan.expression_source is not None:
        kw["var"] = gene_var if gene_var is not None else expression_var(adata, plan.expression_source)
        kw["gene_expression"] = gene_matrix if gene_matrix is not None else expression_matrix(adata, plan.expression_source)
        kw["var_gene_id_column"] = plan.var_gene_id_column
        kw["gene_identifiers"] = None if plan.genes is None else list(plan.genes)
    if plan.connectivities is not None:
        kw["connectivities"] = graph_for_export(adata.obsp[plan.connectivities])  # a graph left in its file: by blocks
    for dim, key in plan.embeddings.items():
        kw[f"X_umap_{dim}d"] = adata.obsm[key]
    if plan.vector_fields:
        kw["vector_fields"] = {f: adata.obsm[k] for f, k in plan.vector_fields.items()}
    return kw


def _default_force(out_dir: Path) -> bool:
    # Replace our own previous export atomically; never delete a folder we did not write.
    return (out_dir / SIDECAR_FILE).is_file()


def export(
    adata: Any,
    plan: ExportPlan | None = None,
    out_dir: str | Path | None = None,
    *,
    progress: Callable[[ProgressEvent], None] | None = None,
    cancel: threading.Event | None = None,
    force: bool | None = None,
    created_at: str | None = None,
    n_workers: int | None = None,
    memory_limit: int | str | None = None,
    client: Any = None,
    spill_dir: str | Path | None = None,
) -> ExportResult:
    """Export an AnnData (in memory or backed) as described by ``plan``.

    Parameters
    ----------
    adata
        The AnnData.
    plan
        The choices; default ``ExportPlan.from_anndata(adata)``.
    out_dir
        Target folder (default ``./exports``).
    progress
        Called with :class:`ProgressEvent` at most ~10 times a second: first a
        ``"load"`` phase while a backed matrix is read, then the exporter's
        phases; ``done`` never decreases over the whole export.
    cancel
        Set it to stop; the export raises :class:`ExportCancelled` within about a
        second, leaving nothing behind and any previous export intact.
    force
        Replace an existing export; ``None`` means True when ``out_dir`` holds a
        previous cellucid_nb export, else False (prepare's skip-existing rule).
    created_at
        Fixed timestamp for reproducible bytes.
    n_workers
        Exporter threads.
    memory_limit
        Memory the export may add to what ``adata`` already holds: bytes or a size such
        as ``"2GB"``; default ``plan.memory_limit``, else half the machine's memory. A backed or lazy matrix whose chosen genes fit
        is loaded whole (fastest); a larger one is exported in two passes through
        spill files on disk (see :mod:`cellucid_nb.adata.streaming`), with the same bytes.
    client
        A ``dask.distributed.Client``: the row pass and the gene payloads run as tasks on
        its workers, which open the h5ad/zarr file themselves and write the payloads into
        the staging folder beside ``out_dir`` (see :mod:`cellucid_nb.adata.distributed` and
        :mod:`cellucid_nb.adata.gene_tasks`): the data, ``spill_dir`` and ``out_dir`` must be
        on a file system every worker sees at the same path. Same bytes as without ``client``.
    spill_dir
        Where spill files go (default: beside ``out_dir``; with ``client``, a folder
        every worker sees at the same path). Removed when the export ends, however it ends.

    Returns
    -------
    ExportResult
        Path, bytes, files, seconds and warnings.
    """
    adata = eager_frames(adata)  # read_lazy's obs/var as pandas (adata/lazy_frames.py)
    from cellucid_nb.exporter.prepare import prepare

    plan = plan if plan is not None else ExportPlan.from_anndata(adata)
    plan.check(adata)
    started = time.perf_counter()
    target = Path.cwd() / "exports" if out_dir is None else Path(out_dir)
    # "offset": load-phase items, added to the exporter's counts so that done never decreases.
    state = {"last": 0.0, "offset": 0}

    def emit(event: ProgressEvent) -> None:
        if progress is not None:
            progress(event)

    gene_matrix = gene_var = None
    spill = None
    if plan.expression_source is not None:
        matrix = expression_matrix(adata, plan.expression_source)
        columns = _gene_columns(adata, plan)
        limit = parse_memory_limit(memory_limit if memory_limit is not None else plan.memory_limit)
        choice = choose_export_path(adata, plan, matrix, columns, limit, target, n_workers, spill_dir, client)
        if choice.path != "memory" or not _is_in_memory(matrix):
            state["offset"] = int(matrix.shape[0])

            def on_rows(done: int, total: int) -> None:
                now = time.perf_counter()
                if done < total and now - state["last"] < _MIN_INTERVAL:
                    return
                state["last"] = now
                elapsed = now - started
                eta = elapsed / done * (total - done) if done else None
                emit(ProgressEvent("load", done, total, 0, elapsed, eta))

            emit(ProgressEvent("load", 0, int(state["offset"]), 0, 0.0, None))
            if choice.path == "memory":
                gene_matrix = load_genes(matrix, columns, on_rows=on_rows, cancel=cancel)
            else:
                spill = SpillDir(Path(spill_dir) if spill_dir is not None else target.absolute().parent)
                try:
                    gene_matrix = streamed_genes(choice, matrix, columns, spill, client, cancel,
                                                 output=target.absolute().parent)
                except BaseException:
                    spill.close()
                    raise
            var = expression_var(adata, plan.expression_source)
            gene_var = var.iloc[columns]

    def relay(event: ProgressEvent) -> None:
        offset = int(state["offset"])  # state holds floats (times) too
        # Rows read so far by a row pass running beside the exporter (all of them otherwise).
        rows = gene_matrix.rows_done if isinstance(gene_matrix, BackgroundRowPass) else offset
        emit(ProgressEvent(
            event.phase, event.done + rows, event.total + offset, event.bytes_written,
            time.perf_counter() - started, event.eta,
        ))

    kw = prepare_kwargs(adata, plan, gene_matrix, gene_var)
    try:
        return prepare(
            out_dir=target,
            force=_default_force(target) if force is None else force,
            created_at=created_at,
            progress=relay if progress is not None else None,
            cancel=cancel,
            n_workers=n_workers,
            # The budget is a machine setting: left out so that every path writes the same bytes.
            sidecar_extra={"plan": plan.replace(memory_limit=None).to_dict()},
            **kw,
        )
    finally:
        if spill is not None:
            close = getattr(gene_matrix, "close", None)
            if close is not None:
                close()
            spill.close()
