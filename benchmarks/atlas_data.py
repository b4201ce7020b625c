"""Atlas-size synthetic h5ad and zarr files (2M x 2k, 10M x 1k), written without holding ``X``.

``write_atlas_cached(n_cells, n_genes, seed, fmt)`` writes the same data as
``synthetic.make_anndata(n_cells, n_genes, seed)`` (same random draws, same
statistics, kNN graph included) to ``benchmarks/.data/`` once and returns the
path. The expression matrix is streamed: row blocks from
``synthetic.expression_blocks`` are gathered into pieces of about
:data:`PIECE_ENTRIES` stored values and appended to the on-disk CSR
(``anndata.io.sparse_dataset(...).append``), so the generator's memory is the
per-cell arrays and the graph, never the matrix. Everything but ``X`` is small
enough (per cell) to be written with ``anndata.io.write_elem``.

Run: ``python -m benchmarks.atlas_data --size 2Mx2k --format h5ad``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy import sparse

from benchmarks import synthetic as syn

__all__ = ["write_atlas_cached", "PIECE_ENTRIES"]

#: Stored values gathered before one append to the on-disk CSR.
PIECE_ENTRIES = 1 << 25


def _cache_path(n_cells: int, n_genes: int, seed: int, fmt: str, cache_dir: Path) -> Path:
    return cache_dir / f"synthetic_{syn.size_label(n_cells, n_genes)}_seed{seed}_v{syn.GENERATOR_VERSION}_streamed.{fmt}"


def _open_store(path: Path, fmt: str) -> Any:
    if fmt == "h5ad":
        import h5py

        return h5py.File(path, "w")
    import zarr

    return zarr.open_group(str(path), mode="w", zarr_format=2)


def _stream_expression(store: Any, rng: np.random.Generator, cluster: np.ndarray, depth: np.ndarray,
                       n_genes: int) -> tuple[np.ndarray, np.ndarray]:
    """Append the expression to ``store["X"]`` piece by piece; return total counts and stored values per row."""
    from anndata.io import sparse_dataset, write_elem

    n_cells = cluster.size
    total_counts = np.zeros(n_cells, dtype=np.float32)
    per_row = np.zeros(n_cells, dtype=np.int64)
    pending: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]] = []
    state = {"entries": 0, "started": False}

    def flush() -> None:
        if not pending:
            return
        first, last = pending[0][0], pending[-1][1]
        counts = np.concatenate([np.bincount(p[2], minlength=p[1] - p[0]) for p in pending])
        indptr = np.zeros(last - first + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        piece = sparse.csr_matrix(
            (np.concatenate([p[4] for p in pending]), np.concatenate([p[3] for p in pending]).astype(np.int32), indptr),
            shape=(last - first, n_genes),
        )
        if state["started"]:
            sparse_dataset(store["X"]).append(piece)
        else:
            write_elem(store, "X", piece)
            state["started"] = True
        pending.clear()
        state["entries"] = 0

    for start, stop, local_row, col, values, totals in syn.expression_blocks(rng, cluster, depth, n_genes):
        total_counts[start:stop] = totals
        per_row[start:stop] = np.bincount(local_row, minlength=stop - start)
        pending.append((start, stop, local_row, col, values))
        state["entries"] += col.size
        if state["entries"] >= PIECE_ENTRIES:
            flush()
    flush()
    return total_counts, per_row


def write_atlas(path: Path, n_cells: int, n_genes: int, seed: int = 0, fmt: str = "h5ad") -> Path:
    """Write the synthetic data set to ``path`` (``fmt`` ``"h5ad"`` or ``"zarr"``), streaming ``X``."""
    from anndata.io import write_elem

    rng = np.random.default_rng(seed)
    # The same draws, in the same order, as synthetic.make_dataset.
    cluster_weights = rng.dirichlet(np.full(syn.N_CLUSTERS, 2.0))
    cluster = rng.choice(syn.N_CLUSTERS, size=n_cells, p=cluster_weights).astype(np.int16)
    depth = rng.integers(0, len(syn._DEPTH_LEVELS), size=n_cells).astype(np.int16)
    latent = syn._clustered_points(rng, cluster, syn.N_LATENT, center_scale=3.0, spread=(0.8, 1.2))
    umap_2d = syn._clustered_points(rng, cluster, 2, center_scale=8.0, spread=(0.4, 1.4))
    umap_3d = syn._clustered_points(rng, cluster, 3, center_scale=8.0, spread=(0.4, 1.4))
    velocity = syn._velocity_field(rng, cluster, umap_2d)
    graph = syn._knn_connectivities(rng, cluster, latent)
    store = _open_store(path, fmt)
    try:
        total_counts, per_row = _stream_expression(store, rng, cluster, depth, n_genes)
        indptr = np.zeros(n_cells + 1, dtype=np.int64)
        np.cumsum(per_row, out=indptr[1:])
        obs = syn._obs_frame(rng, cluster, total_counts, SimpleNamespace(indptr=indptr))
        var = syn._var_frame(rng, n_genes)
        uns = {
            f"{key}_colors": np.array(syn._palette(len(obs[key].cat.categories), offset=0.13 * number))
            for number, key in enumerate(obs.select_dtypes("category").columns)
        }
        write_elem(store, "obs", obs)
        write_elem(store, "var", var)
        write_elem(store, "obsm", {"X_umap": umap_2d, "X_umap_3d": umap_3d, "X_pca": latent, "velocity_umap": velocity})
        write_elem(store, "obsp", {"connectivities": graph})
        for key in ("varm", "varp", "layers"):
            write_elem(store, key, {})
        write_elem(store, "uns", uns)
        store.attrs["encoding-type"] = "anndata"
        store.attrs["encoding-version"] = "0.1.0"
    finally:
        if fmt == "h5ad":
            store.close()
    return path


def write_atlas_cached(n_cells: int, n_genes: int, seed: int = 0, fmt: str = "h5ad",
                       cache_dir: str | os.PathLike | None = None) -> Path:
    """:func:`write_atlas` once into ``cache_dir`` (default ``benchmarks/.data/``); the path.

    Written under a temporary name and renamed, so an interrupted run never looks cached.
    """
    if fmt not in ("h5ad", "zarr"):
        raise ValueError(f"fmt={fmt!r}: expected 'h5ad' or 'zarr'")
    folder = Path(cache_dir) if cache_dir is not None else syn.DATA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = _cache_path(int(n_cells), int(n_genes), seed, fmt, folder)
    if path.exists():
        return path
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write_atlas(partial, int(n_cells), int(n_genes), seed, fmt)
        os.replace(partial, path)
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="2Mx2k")
    parser.add_argument("--format", default="h5ad", choices=["h5ad", "zarr"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_cells, n_genes = syn.parse_size(args.size)
    print(write_atlas_cached(n_cells, n_genes, args.seed, args.format))


if __name__ == "__main__":
    main()
