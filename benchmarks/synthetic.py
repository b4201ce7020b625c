"""Deterministic synthetic single-cell data for the benchmarks.

``make_dataset(n_cells, n_genes, seed)`` returns the keyword arguments of
``prepare()`` (both cellucid_nb's and the reference ``cellucid.prepare``):

- ``latent_space``: (n, 30) float32, Gaussian clusters;
- ``obs``: 3 categorical columns (``cluster`` 12 levels, ``batch`` 4, ``sample`` 60)
  and 4 continuous ones (``total_counts``, ``n_genes_by_counts``, ``pct_counts_mt``,
  ``score`` with ~0.1 % NaN);
- ``var``: unique gene ids in the index, a ``highly_variable`` flag (~20 %);
- ``gene_expression``: CSR float32, ~8 % dense, log1p of normalised
  lognormal-ish counts whose detection rate and level depend on the cluster;
- ``connectivities``: symmetric CSR kNN graph (k = 15 per cell before the fuzzy
  union ``A + Aᵀ - A∘Aᵀ`` that scanpy also uses), weights in (0, 1];
- ``X_umap_2d``, ``X_umap_3d``: clustered Gaussian blobs;
- ``vector_fields``: ``{"velocity_umap_2d": (n, 2) float32}``.

Everything comes from one seeded ``numpy.random.Generator`` and is built without
dense (n_cells x n_genes) matrices and without Python loops over cells: the CSR
is filled block by block of rows into arrays allocated once, so generating
500k x 2k takes seconds and its memory peak stays near the size of the result.

``make_anndata`` wraps the same data in an AnnData; ``write_h5ad_cached`` writes
it once to ``benchmarks/.data/`` (git-ignored); ``save_dataset``/``load_dataset``
keep the raw arrays as ``.npy`` files, which load without any temporary copy.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

__all__ = [
    "DATA_DIR",
    "GENERATOR_VERSION",
    "N_CLUSTERS",
    "K_NEIGHBORS",
    "SIZES",
    "parse_size",
    "size_label",
    "make_dataset",
    "make_anndata",
    "write_h5ad_cached",
    "save_dataset",
    "load_dataset",
    "cached_dataset_dir",
]

#: Bump when the generated data change, so that cached files are rebuilt.
GENERATOR_VERSION = 1
#: Cache folder for generated inputs (git-ignored).
DATA_DIR = Path(__file__).resolve().parent / ".data"

N_CLUSTERS = 12
N_BATCHES = 4
N_SAMPLES = 60
N_LATENT = 30
K_NEIGHBORS = 15
# kNN neighbours are drawn from this many cells on each side in projection order.
_WINDOW = 12
TARGET_DENSITY = 0.08

#: The benchmark sizes of the issue, label -> (n_cells, n_genes).
SIZES: dict[str, tuple[int, int]] = {
    "10kx2k": (10_000, 2_000),
    "100kx5k": (100_000, 5_000),
    "500kx2k": (500_000, 2_000),
    "50kx30k": (50_000, 30_000),
}

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)([kKmM]?)\s*[xX×]\s*(\d+(?:\.\d+)?)([kKmM]?)\s*$")
_UNIT = {"": 1, "k": 1_000, "m": 1_000_000}
# Cells are split into this many depth levels (library size factors).
_DEPTH_LEVELS = np.array([0.55, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 1.75], dtype=np.float64)
# Rows of the expression matrix are generated in blocks of about this many entries.
_BLOCK_ENTRIES = 1 << 23


def parse_size(label: str) -> tuple[int, int]:
    """Parse ``"100kx5k"`` (also ``"100000x5000"``, ``"1Mx30k"``) into ``(n_cells, n_genes)``.

    Raises
    ------
    ValueError
        If ``label`` is not ``<cells>x<genes>`` with optional ``k``/``M`` suffixes.
    """
    match = _SIZE_RE.match(str(label))
    if not match:
        raise ValueError(f"size {label!r} is not of the form '<cells>x<genes>', e.g. '100kx5k'")
    cells = float(match.group(1)) * _UNIT[match.group(2).lower()]
    genes = float(match.group(3)) * _UNIT[match.group(4).lower()]
    if cells < 2 * _WINDOW + 2 or genes < 1:
        raise ValueError(f"size {label!r} is too small: need > {2 * _WINDOW + 1} cells and >= 1 gene")
    return int(cells), int(genes)


def size_label(n_cells: int, n_genes: int) -> str:
    """Short label such as ``"100kx5k"`` for a size (inverse of :func:`parse_size`)."""

    def short(value: int) -> str:
        if value % 1_000_000 == 0:
            return f"{value // 1_000_000}M"
        if value % 1_000 == 0:
            return f"{value // 1_000}k"
        return str(value)

    return f"{short(n_cells)}x{short(n_genes)}"


def make_dataset(n_cells: int, n_genes: int, seed: int = 0) -> dict[str, Any]:
    """Generate the ``prepare()`` inputs for a synthetic data set.

    Parameters
    ----------
    n_cells, n_genes
        Shape of the expression matrix.
    seed
        Seed of the ``numpy.random.Generator``; equal arguments give equal data.

    Returns
    -------
    dict
        Keys ``latent_space``, ``obs``, ``var``, ``gene_expression``,
        ``connectivities``, ``X_umap_2d``, ``X_umap_3d``, ``vector_fields``: pass
        them as keyword arguments to ``prepare()``.
    """
    n_cells, n_genes = int(n_cells), int(n_genes)
    if n_cells < 2 * _WINDOW + 2:
        raise ValueError(f"n_cells={n_cells}, expected at least {2 * _WINDOW + 2}")
    if n_genes < 1:
        raise ValueError(f"n_genes={n_genes}, expected at least 1")
    rng = np.random.default_rng(seed)

    cluster_weights = rng.dirichlet(np.full(N_CLUSTERS, 2.0))
    cluster = rng.choice(N_CLUSTERS, size=n_cells, p=cluster_weights).astype(np.int16)
    depth_level = rng.integers(0, len(_DEPTH_LEVELS), size=n_cells).astype(np.int16)

    latent_space = _clustered_points(rng, cluster, N_LATENT, center_scale=3.0, spread=(0.8, 1.2))
    umap_2d = _clustered_points(rng, cluster, 2, center_scale=8.0, spread=(0.4, 1.4))
    umap_3d = _clustered_points(rng, cluster, 3, center_scale=8.0, spread=(0.4, 1.4))
    velocity_2d = _velocity_field(rng, cluster, umap_2d)

    # The graph's temporaries come before the big CSR exists, to keep the peak low.
    connectivities = _knn_connectivities(rng, cluster, latent_space)
    gene_expression, total_counts = _expression_csr(rng, cluster, depth_level, n_genes)
    obs = _obs_frame(rng, cluster, total_counts, gene_expression)
    var = _var_frame(rng, n_genes)

    return {
        "latent_space": latent_space,
        "obs": obs,
        "var": var,
        "gene_expression": gene_expression,
        "connectivities": connectivities,
        "X_umap_2d": umap_2d,
        "X_umap_3d": umap_3d,
        "vector_fields": {"velocity_umap_2d": velocity_2d},
    }


def _clustered_points(
    rng: np.random.Generator,
    cluster: np.ndarray,
    n_dims: int,
    *,
    center_scale: float,
    spread: tuple[float, float],
) -> np.ndarray:
    """Gaussian blob per cluster: ``center[c] + spread[c] * N(0, 1)``, float32 (n, n_dims)."""
    centers = rng.normal(0.0, center_scale, size=(N_CLUSTERS, n_dims)).astype(np.float32)
    spreads = rng.uniform(*spread, size=N_CLUSTERS).astype(np.float32)
    points = rng.standard_normal((cluster.size, n_dims), dtype=np.float32)
    points *= spreads[cluster, None]
    points += centers[cluster]
    return points


def _velocity_field(rng: np.random.Generator, cluster: np.ndarray, umap_2d: np.ndarray) -> np.ndarray:
    """Swirl around each cluster's mean plus a per-cluster drift and noise, float32 (n, 2)."""
    counts = np.bincount(cluster, minlength=N_CLUSTERS).astype(np.float64)
    means = np.stack(
        [np.bincount(cluster, weights=umap_2d[:, axis], minlength=N_CLUSTERS) for axis in range(2)], axis=1
    ) / np.maximum(counts, 1)[:, None]
    offset = umap_2d - means[cluster].astype(np.float32)
    drift = rng.normal(0.0, 0.3, size=(N_CLUSTERS, 2)).astype(np.float32)
    velocity = np.empty_like(umap_2d)
    velocity[:, 0] = -0.3 * offset[:, 1]
    velocity[:, 1] = 0.3 * offset[:, 0]
    velocity += drift[cluster]
    velocity += rng.normal(0.0, 0.05, size=velocity.shape).astype(np.float32)
    return velocity


def _expression_tables(rng: np.random.Generator, n_genes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per (cluster, depth level) detection thresholds and per cluster log mean counts.

    Returns
    -------
    thresholds
        uint16 (N_CLUSTERS * n_levels, n_genes): a uniform uint16 draw below it
        means "detected", so the probability is exactly ``threshold / 65536``.
    log_means
        float32 (N_CLUSTERS, n_genes): log of the mean count of detected entries.
    """
    # Detection rates vary over orders of magnitude between genes, as in real data.
    base = rng.lognormal(mean=0.0, sigma=1.2, size=n_genes)
    boost = np.ones((N_CLUSTERS, n_genes))
    markers = rng.random((N_CLUSTERS, n_genes)) < 0.05
    boost[markers] = rng.uniform(2.0, 6.0, size=int(markers.sum()))
    rates = base[None, None, :] * boost[:, None, :] * _DEPTH_LEVELS[None, :, None]
    for _ in range(3):  # rescale after clipping so that the mean density stays on target
        rates *= TARGET_DENSITY / rates.mean()
        rates = np.clip(rates, 0.0, 0.95)
    thresholds = np.round(rates * 65536).astype(np.uint16).reshape(-1, n_genes)

    log_means = rng.normal(0.3, 0.8, size=n_genes)[None, :] + np.log(boost)
    return thresholds, log_means.astype(np.float32)


def expression_blocks(rng: np.random.Generator, cluster: np.ndarray, depth_level: np.ndarray, n_genes: int):
    """Row blocks of the log-normalised expression (~8 % dense), in row order.

    Counts of detected entries are ``1 + floor(lognormal)`` around a per
    (cluster, gene) mean scaled by the cell's depth; each row is then normalised
    to 1e4 counts and log1p-transformed, as ``sc.pp.normalize_total`` +
    ``sc.pp.log1p`` do. The random draws are the same whoever consumes the blocks
    (:func:`_expression_csr` here, the streaming writers of ``benchmarks.atlas_data``).

    Yields
    ------
    start, stop, local_row, col, values, block_totals
        Rows ``start:stop``; one entry per stored value (row-major, columns sorted
        within a row): its row within the block, its column and its float32 value;
        each row's raw total count.
    """
    thresholds, log_means = _expression_tables(rng, n_genes)
    table_row = cluster.astype(np.int64) * len(_DEPTH_LEVELS) + depth_level
    log_depth = np.log(_DEPTH_LEVELS).astype(np.float32)
    rows_per_block = max(1, _BLOCK_ENTRIES // n_genes)
    for start in range(0, cluster.size, rows_per_block):
        stop = min(start + rows_per_block, cluster.size)
        draws = rng.integers(0, 65536, size=(stop - start, n_genes), dtype=np.uint16)
        hits = np.flatnonzero(draws < thresholds[table_row[start:stop]])
        del draws
        local_row, col = np.divmod(hits, n_genes)
        del hits
        row = local_row + start
        counts = np.floor(
            np.exp(
                log_means[cluster[row], col]
                + log_depth[depth_level[row]]
                + 0.7 * rng.standard_normal(col.size, dtype=np.float32)
            )
        )
        counts += 1.0
        block_totals = np.bincount(local_row, weights=counts, minlength=stop - start)
        counts *= (1e4 / np.maximum(block_totals, 1.0)).astype(np.float32)[local_row]
        yield start, stop, local_row, col, np.log1p(counts).astype(np.float32, copy=False), block_totals


def _expression_csr(
    rng: np.random.Generator, cluster: np.ndarray, depth_level: np.ndarray, n_genes: int
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Log-normalised CSR float32 (~8 % dense) from :func:`expression_blocks`, in arrays grown as needed.

    Returns the matrix and each cell's raw total count.
    """
    n_cells = cluster.size
    # About 8 % dense plus a margin: allocate once (grown in the unlikely case it is not enough).
    capacity = int(n_cells * n_genes * TARGET_DENSITY * 1.02 + 1024)
    indices = np.empty(capacity, dtype=np.int32)
    data = np.empty(capacity, dtype=np.float32)
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    total_counts = np.zeros(n_cells, dtype=np.float32)
    filled = 0
    for start, stop, local_row, col, values, block_totals in expression_blocks(rng, cluster, depth_level, n_genes):
        count = col.size
        if filled + count > capacity:
            capacity = max(2 * capacity, filled + count)
            indices = np.resize(indices, capacity)
            data = np.resize(data, capacity)
        indices[filled : filled + count] = col
        data[filled : filled + count] = values
        total_counts[start:stop] = block_totals
        indptr[start + 1 : stop + 1] = filled + np.cumsum(np.bincount(local_row, minlength=stop - start))
        filled += count

    index_dtype = np.int32 if filled < np.iinfo(np.int32).max else np.int64
    matrix = sparse.csr_matrix(
        (data[:filled], indices[:filled], indptr.astype(index_dtype)), shape=(n_cells, n_genes), copy=False
    )
    matrix.has_sorted_indices = True
    return matrix, total_counts


def _knn_connectivities(rng: np.random.Generator, cluster: np.ndarray, latent: np.ndarray) -> sparse.csr_matrix:
    """Approximate kNN graph: neighbours along a random projection within clusters.

    Cells are sorted by (cluster, projection of the latent space on a random
    direction); each cell's neighbours are the K_NEIGHBORS cells around it in that
    order (K random ones among the nearest 2 * _WINDOW, all distinct). Weights
    decay with the projected distance, in (0, 1]; the fuzzy union
    ``A + Aᵀ - A∘Aᵀ`` makes the graph symmetric like scanpy's connectivities.
    """
    n_cells = cluster.size
    direction = rng.standard_normal(latent.shape[1]).astype(np.float32)
    projection = latent @ direction
    order = np.lexsort((projection, cluster))
    position = np.empty(n_cells, dtype=np.int64)
    position[order] = np.arange(n_cells)

    # Each cell takes K random cells of the 2 * _WINDOW cells around it (cyclic,
    # so all are distinct), which makes degrees vary as in real kNN graphs.
    offsets = np.concatenate([np.arange(-_WINDOW, 0), np.arange(1, _WINDOW + 1)])
    chosen = np.argsort(rng.random((n_cells, offsets.size), dtype=np.float32), axis=1)[:, :K_NEIGHBORS]
    neighbours = order[(position[:, None] + offsets[chosen]) % n_cells]
    distance = np.abs(projection[neighbours] - projection[:, None]) + 1e-3
    nearest = distance.min(axis=1, keepdims=True)
    sigma = distance.mean(axis=1, keepdims=True) - nearest + 1e-6
    weights = np.exp(-(distance - nearest) / sigma).astype(np.float32)
    np.maximum(weights, 1e-4, out=weights)

    directed = sparse.csr_matrix(
        (weights.ravel(), neighbours.ravel().astype(np.int32), np.arange(0, n_cells * K_NEIGHBORS + 1, K_NEIGHBORS)),
        shape=(n_cells, n_cells),
    )
    directed.sort_indices()
    transposed = directed.T.tocsr()
    graph = (directed + transposed - directed.multiply(transposed)).tocsr()
    graph.sort_indices()
    graph.data = graph.data.astype(np.float32, copy=False)
    return graph


def _obs_frame(
    rng: np.random.Generator, cluster: np.ndarray, total_counts: np.ndarray, expression: sparse.csr_matrix
) -> pd.DataFrame:
    """3 categorical and 4 continuous columns, index ``cell000000``…"""
    n_cells = cluster.size
    batch = rng.integers(0, N_BATCHES, size=n_cells)
    per_batch = N_SAMPLES // N_BATCHES
    sample = batch * per_batch + rng.integers(0, per_batch, size=n_cells)
    n_genes_by_counts = np.diff(expression.indptr).astype(np.int32)
    pct_mt = np.clip(rng.gamma(2.0, 2.0, size=n_cells), 0, 100).astype(np.float32)
    score = (rng.standard_normal(n_cells) + 0.2 * cluster).astype(np.float64)
    score[rng.random(n_cells) < 0.001] = np.nan

    width = max(6, len(str(n_cells - 1)))
    index = pd.Index(np.char.add("cell", np.char.zfill(np.arange(n_cells).astype(str), width)), name="cell_id")
    return pd.DataFrame(
        {
            "cluster": pd.Categorical.from_codes(cluster, categories=[f"cluster_{i:02d}" for i in range(N_CLUSTERS)]),
            "batch": pd.Categorical.from_codes(batch, categories=[f"batch_{i}" for i in range(N_BATCHES)]),
            "sample": pd.Categorical.from_codes(sample, categories=[f"sample_{i:02d}" for i in range(N_SAMPLES)]),
            "total_counts": total_counts,
            "n_genes_by_counts": n_genes_by_counts,
            "pct_counts_mt": pct_mt,
            "score": score,
        },
        index=index,
    )


def _var_frame(rng: np.random.Generator, n_genes: int) -> pd.DataFrame:
    """Unique gene ids (``GENE00000``…) as index, a ``highly_variable`` flag (~20 %)."""
    width = max(5, len(str(n_genes - 1)))
    index = pd.Index(np.char.add("GENE", np.char.zfill(np.arange(n_genes).astype(str), width)), name="gene_id")
    return pd.DataFrame({"highly_variable": rng.random(n_genes) < 0.2}, index=index)


def _palette(n: int, offset: float) -> list[str]:
    """``n`` distinct hex colours spread around the hue circle (deterministic)."""
    import colorsys

    colours = []
    for i in range(n):
        red, green, blue = colorsys.hsv_to_rgb((offset + i / n) % 1.0, 0.65, 0.9)
        colours.append(f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}")
    return colours


def make_anndata(n_cells: int, n_genes: int, seed: int = 0):
    """The same data as :func:`make_dataset`, as an ``anndata.AnnData``.

    ``X`` is the CSR expression; ``obsm`` has ``X_umap`` (2D), ``X_umap_3d``,
    ``X_pca`` (the latent space) and ``velocity_umap``; ``obsp['connectivities']``
    the kNN graph; ``var['highly_variable']`` flags ~20 % of genes; ``uns`` holds
    ``<key>_colors`` for each categorical obs column.
    """
    import anndata

    data = make_dataset(n_cells, n_genes, seed)
    obs = data["obs"]
    adata = anndata.AnnData(
        X=data["gene_expression"],
        obs=obs,
        var=data["var"],
        obsm={
            "X_umap": data["X_umap_2d"],
            "X_umap_3d": data["X_umap_3d"],
            "X_pca": data["latent_space"],
            "velocity_umap": data["vector_fields"]["velocity_umap_2d"],
        },
        obsp={"connectivities": data["connectivities"]},
    )
    for number, key in enumerate(obs.select_dtypes("category").columns):
        adata.uns[f"{key}_colors"] = np.array(_palette(len(obs[key].cat.categories), offset=0.13 * number))
    return adata


def _cache_stem(n_cells: int, n_genes: int, seed: int) -> str:
    return f"synthetic_{size_label(n_cells, n_genes)}_seed{seed}_v{GENERATOR_VERSION}"


def write_h5ad_cached(n_cells: int, n_genes: int, seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Path:
    """Write :func:`make_anndata` to an ``.h5ad`` once and return its path.

    The file lives in ``cache_dir`` (default ``benchmarks/.data/``) under a name
    holding the size, the seed and :data:`GENERATOR_VERSION`; an existing file is
    reused. Writing goes to a temporary name first, so a crash never leaves a
    truncated file that looks cached.
    """
    folder = Path(cache_dir) if cache_dir is not None else DATA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_cache_stem(n_cells, n_genes, seed)}.h5ad"
    if path.exists():
        return path
    adata = make_anndata(n_cells, n_genes, seed)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        adata.write_h5ad(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


_ARRAY_KEYS = ("latent_space", "X_umap_2d", "X_umap_3d")
_CSR_KEYS = ("gene_expression", "connectivities")


def save_dataset(dataset: dict[str, Any], folder: str | os.PathLike) -> Path:
    """Store a :func:`make_dataset` result as ``.npy`` files (+ pickled frames) in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key in _ARRAY_KEYS:
        np.save(folder / f"{key}.npy", dataset[key])
    for key in _CSR_KEYS:
        matrix = dataset[key]
        for part in ("data", "indices", "indptr"):
            np.save(folder / f"{key}.{part}.npy", getattr(matrix, part))
        np.save(folder / f"{key}.shape.npy", np.asarray(matrix.shape, dtype=np.int64))
    for name, field in dataset["vector_fields"].items():
        np.save(folder / f"vector_fields.{name}.npy", field)
    for key in ("obs", "var"):
        with open(folder / f"{key}.pkl", "wb") as handle:
            pickle.dump(dataset[key], handle, protocol=pickle.HIGHEST_PROTOCOL)
    (folder / "COMPLETE").write_text("ok\n")
    return folder


def load_dataset(folder: str | os.PathLike) -> dict[str, Any]:
    """Load what :func:`save_dataset` stored (same keys as :func:`make_dataset`)."""
    folder = Path(folder)
    if not (folder / "COMPLETE").exists():
        raise FileNotFoundError(f"{folder} holds no complete saved dataset (no COMPLETE marker)")
    dataset: dict[str, Any] = {key: np.load(folder / f"{key}.npy") for key in _ARRAY_KEYS}
    for key in _CSR_KEYS:
        parts = [np.load(folder / f"{key}.{part}.npy") for part in ("data", "indices", "indptr")]
        shape = tuple(int(v) for v in np.load(folder / f"{key}.shape.npy"))
        matrix = sparse.csr_matrix(tuple(parts), shape=shape, copy=False)
        matrix.has_sorted_indices = True
        dataset[key] = matrix
    dataset["vector_fields"] = {
        path.name[len("vector_fields.") : -len(".npy")]: np.load(path)
        for path in sorted(folder.glob("vector_fields.*.npy"))
    }
    for key in ("obs", "var"):
        with open(folder / f"{key}.pkl", "rb") as handle:
            dataset[key] = pickle.load(handle)
    return dataset


def cached_dataset_dir(n_cells: int, n_genes: int, seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the saved :func:`make_dataset` inputs, generated on first use."""
    folder = (Path(cache_dir) if cache_dir is not None else DATA_DIR) / _cache_stem(n_cells, n_genes, seed)
    if (folder / "COMPLETE").exists():
        return folder
    partial = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    save_dataset(make_dataset(n_cells, n_genes, seed), partial)
    if folder.exists():  # an incomplete leftover of an interrupted run
        import shutil

        shutil.rmtree(folder)
    os.replace(partial, folder)
    return folder
