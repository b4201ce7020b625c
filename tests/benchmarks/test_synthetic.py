"""Tests of the benchmark data generator (benchmarks/synthetic.py)."""

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from benchmarks import synthetic

N_CELLS, N_GENES = 3_000, 400


@pytest.fixture(scope="module")
def dataset():
    return synthetic.make_dataset(N_CELLS, N_GENES, seed=3)


def test_same_seed_same_data_other_seed_other_data(dataset):
    again = synthetic.make_dataset(N_CELLS, N_GENES, seed=3)
    other = synthetic.make_dataset(N_CELLS, N_GENES, seed=4)
    for key in ("latent_space", "X_umap_2d", "X_umap_3d"):
        np.testing.assert_array_equal(dataset[key], again[key])
    assert (dataset["gene_expression"] != again["gene_expression"]).nnz == 0
    assert (dataset["connectivities"] != again["connectivities"]).nnz == 0
    pd.testing.assert_frame_equal(dataset["obs"], again["obs"])
    assert not np.array_equal(dataset["X_umap_2d"], other["X_umap_2d"])


def test_expression_is_log_normalised_csr_about_8_percent_dense(dataset):
    matrix = dataset["gene_expression"]
    assert sparse.isspmatrix_csr(matrix) and matrix.dtype == np.float32
    assert matrix.shape == (N_CELLS, N_GENES)
    assert matrix.has_canonical_format
    assert 0.06 < matrix.nnz / (N_CELLS * N_GENES) < 0.10
    assert np.all(np.isfinite(matrix.data)) and matrix.data.min() > 0
    # normalize_total(1e4) + log1p: every row's expm1 sums to 1e4
    row_sums = np.asarray(np.expm1(matrix.astype(np.float64)).sum(axis=1)).ravel()
    np.testing.assert_allclose(row_sums, 1e4, rtol=1e-4)
    # obs n_genes_by_counts / total_counts agree with the matrix
    np.testing.assert_array_equal(dataset["obs"]["n_genes_by_counts"].to_numpy(), np.diff(matrix.indptr))
    assert dataset["obs"]["total_counts"].min() >= dataset["obs"]["n_genes_by_counts"].min()


def test_expression_depends_on_cluster(dataset):
    matrix = dataset["gene_expression"]
    codes = dataset["obs"]["cluster"].cat.codes.to_numpy()
    first, second = np.bincount(codes).argsort()[-2:]
    mean_a = np.asarray(matrix[codes == first].mean(axis=0)).ravel()
    mean_b = np.asarray(matrix[codes == second].mean(axis=0)).ravel()
    assert np.abs(mean_a - mean_b).max() > 0.5


def test_knn_graph_symmetric_without_diagonal_weights_in_0_1(dataset):
    graph = dataset["connectivities"]
    assert graph.shape == (N_CELLS, N_CELLS)
    assert abs(graph - graph.T).max() == 0
    assert graph.diagonal().max() == 0
    assert graph.data.min() > 0 and graph.data.max() <= 1
    degree = np.diff(graph.indptr)
    assert degree.min() >= synthetic.K_NEIGHBORS and degree.max() > degree.min()


def test_obs_var_embeddings_and_vectors(dataset):
    obs = dataset["obs"]
    assert len(obs) == N_CELLS
    categorical = [c for c in obs if isinstance(obs[c].dtype, pd.CategoricalDtype)]
    assert categorical == ["cluster", "batch", "sample"]
    assert [len(obs[c].cat.categories) for c in categorical] == [12, 4, 60]
    assert len(obs.columns) - len(categorical) == 4
    assert obs["score"].isna().sum() < N_CELLS * 0.01
    var = dataset["var"]
    assert len(var) == N_GENES and var.index.is_unique
    assert 0.1 < var["highly_variable"].mean() < 0.3
    assert dataset["latent_space"].shape == (N_CELLS, 30) and dataset["latent_space"].dtype == np.float32
    assert dataset["X_umap_2d"].shape == (N_CELLS, 2) and dataset["X_umap_3d"].shape == (N_CELLS, 3)
    velocity = dataset["vector_fields"]["velocity_umap_2d"]
    assert velocity.shape == (N_CELLS, 2) and np.all(np.isfinite(velocity))


def test_sizes_parse_and_label_round_trip():
    assert synthetic.parse_size("100kx5k") == (100_000, 5_000)
    assert synthetic.parse_size("1Mx30k") == (1_000_000, 30_000)
    for label, shape in synthetic.SIZES.items():
        assert synthetic.parse_size(label) == shape
        assert synthetic.size_label(*shape) == label
    with pytest.raises(ValueError, match="'10k-2k'"):
        synthetic.parse_size("10k-2k")


def test_save_load_round_trip(dataset, tmp_path):
    synthetic.save_dataset(dataset, tmp_path / "d")
    loaded = synthetic.load_dataset(tmp_path / "d")
    assert (loaded["gene_expression"] != dataset["gene_expression"]).nnz == 0
    assert (loaded["connectivities"] != dataset["connectivities"]).nnz == 0
    np.testing.assert_array_equal(loaded["vector_fields"]["velocity_umap_2d"], dataset["vector_fields"]["velocity_umap_2d"])
    pd.testing.assert_frame_equal(loaded["obs"], dataset["obs"])
    with pytest.raises(FileNotFoundError, match="no complete saved dataset"):
        synthetic.load_dataset(tmp_path / "missing")


def test_make_anndata_and_h5ad_cache(tmp_path):
    adata = synthetic.make_anndata(500, 50, seed=1)
    assert {"X_umap", "X_umap_3d", "X_pca", "velocity_umap"} <= set(adata.obsm)
    assert "connectivities" in adata.obsp
    assert len(adata.uns["sample_colors"]) == 60
    path = synthetic.write_h5ad_cached(500, 50, seed=1, cache_dir=tmp_path)
    assert path.exists() and synthetic.write_h5ad_cached(500, 50, seed=1, cache_dir=tmp_path) == path
    import anndata

    back = anndata.read_h5ad(path)
    assert (back.X != adata.X).nnz == 0
