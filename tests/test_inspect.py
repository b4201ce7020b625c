"""inspect(): what an AnnData holds, in memory and backed, fast."""

from __future__ import annotations

import json

import anndata
import numpy as np
import pandas as pd
import pytest
from pbmc_data import pbmc68k_reduced
from scipy import sparse

from cellucid_nb.adata.inspection import inspect


@pytest.fixture(scope="module")
def pbmc() -> anndata.AnnData:
    adata = pbmc68k_reduced()
    adata.layers["counts"] = adata.raw.X.copy()
    return adata


@pytest.fixture(scope="module")
def pbmc_backed(pbmc, tmp_path_factory) -> anndata.AnnData:
    path = tmp_path_factory.mktemp("h5ad") / "pbmc.h5ad"
    pbmc.write_h5ad(path)
    return anndata.read_h5ad(path, backed="r")


def test_pbmc_summary_matches_the_anndata(pbmc):
    s = inspect(pbmc)
    assert (s.n_cells, s.n_genes, s.backed) == (700, 765, False)
    assert [e.key for e in s.embeddings] == ["X_umap"] and s.embeddings[0].n_dims == 2
    assert s.latents[0].key == "X_pca" and s.latents[0].n_dims == 50
    louvain = s.obs_column("louvain")
    assert louvain.kind == "categorical" and not louvain.identifier_like
    expected = pbmc.obs["louvain"].value_counts(sort=False)
    assert louvain.categories == [str(c) for c in expected.index]
    assert louvain.counts == expected.tolist()
    assert louvain.has_colors and s.category_colors["louvain"] == len(pbmc.uns["louvain_colors"])
    mito = s.obs_column("percent_mito")
    assert mito.kind == "continuous" and mito.min == pytest.approx(float(pbmc.obs["percent_mito"].min()))
    assert [x.name for x in s.expression] == ["X", "layers/counts", "raw"]
    assert s.expression_source("X").storage == "dense" and s.expression_source("X").value_hint == "scaled"
    raw = s.expression_source("raw")
    assert raw.storage == "csr" and raw.nnz == pbmc.raw.X.nnz and raw.value_hint == "log-normalized"
    assert s.var_flags == {"highly_variable": int(pbmc.var["highly_variable"].sum())}
    assert s.gene_id_columns[0] == "index"
    assert s.graphs[0].key == "connectivities" and s.graphs[0].nnz == pbmc.obsp["connectivities"].nnz


def test_summary_is_json_safe_and_renders_html(pbmc):
    s = inspect(pbmc)
    text = json.dumps(s.to_dict())
    assert json.loads(text)["obs"][0]["key"] == "bulk_labels"
    page = s._repr_html_()
    assert "<table>" in page and "X_umap" in page and "louvain" in page


def test_backed_anndata_is_inspected_without_loading_x(pbmc, pbmc_backed, monkeypatch):
    # Any full read of X would go through Dataset.__getitem__ with a full slice or read_direct.
    x = pbmc_backed.file["X"]
    reads = []
    original = type(x).__getitem__

    def spy(self, key):
        if self.name == "/X":
            reads.append(key)
        return original(self, key)

    monkeypatch.setattr(type(x), "__getitem__", spy)
    s = inspect(pbmc_backed)
    monkeypatch.undo()
    assert s.backed and s.expression_source("X").backed
    # Only the leading sample rows were read, never the whole matrix.
    assert reads, "expected a small read of the leading rows for the value hint"
    for key in reads:
        assert isinstance(key, slice) and key.stop is not None and key.stop <= 256
    mem = inspect(pbmc)
    assert [c.key for c in s.obs] == [c.key for c in mem.obs]
    assert s.obs_column("bulk_labels").counts == mem.obs_column("bulk_labels").counts
    assert s.expression_source("raw").nnz == pbmc.raw.X.nnz


def test_identifier_like_columns_are_flagged():
    rng = np.random.default_rng(0)
    n = 30_000
    barcodes = np.array([f"CELL{i:07d}-1" for i in range(n)], dtype=object)
    obs = pd.DataFrame(
        {
            "barcode": barcodes,  # object column, long: sample path
            "barcode_cat": pd.Categorical(barcodes[:n]),
            "cluster": pd.Categorical(rng.integers(0, 12, n).astype(str)),
            "donor": rng.choice(["a", "b", "c"], n).astype(object),
            "is_doublet": rng.random(n) < 0.1,
            "score": rng.random(n),
        },
        index=barcodes,
    )
    adata = anndata.AnnData(X=sparse.random(n, 20, density=0.1, format="csr", dtype=np.float32, random_state=0), obs=obs)
    adata.obsm["X_umap"] = rng.normal(size=(n, 2))
    s = inspect(adata)
    assert s.obs_column("barcode").identifier_like
    assert s.obs_column("barcode_cat").identifier_like and s.obs_column("barcode_cat").n_categories == n
    assert not s.obs_column("cluster").identifier_like
    donor = s.obs_column("donor")
    assert donor.kind == "categorical" and not donor.identifier_like and sorted(donor.categories) == ["a", "b", "c"]
    assert sum(donor.counts) == n
    doublet = s.obs_column("is_doublet")
    assert doublet.kind == "categorical" and doublet.counts == [int((~obs.is_doublet).sum()), int(obs.is_doublet.sum())]
    assert s.obs_column("score").kind == "continuous"


def test_embeddings_latents_and_vector_fields_are_told_apart():
    rng = np.random.default_rng(1)
    n = 100
    adata = anndata.AnnData(X=np.zeros((n, 3), dtype=np.float32))
    adata.obsm["X_umap"] = rng.normal(size=(n, 2))
    adata.obsm["X_umap_3d"] = rng.normal(size=(n, 3))
    adata.obsm["X_tsne"] = rng.normal(size=(n, 2))
    adata.obsm["X_draw_graph_fa"] = rng.normal(size=(n, 2))
    adata.obsm["X_scvi"] = rng.normal(size=(n, 10))
    adata.obsm["X_pca"] = rng.normal(size=(n, 30))
    adata.obsm["velocity_umap"] = rng.normal(size=(n, 2))
    adata.obsm["T_fwd_umap_3d"] = rng.normal(size=(n, 3))
    adata.obsm["labels"] = np.array([["a", "b"]] * n)  # not numeric: ignored
    s = inspect(adata)
    kinds = {e.key: e.kind for e in s.embeddings}
    assert kinds == {"X_umap": "umap", "X_umap_3d": "umap", "X_tsne": "tsne", "X_draw_graph_fa": "draw_graph"}
    assert [e.key for e in s.embeddings][:2] == ["X_umap", "X_umap_3d"]
    assert [lat.key for lat in s.latents] == ["X_pca", "X_scvi"]
    vectors = {v.key: (v.field, v.n_dims, v.explicit_dim) for v in s.vector_fields}
    assert vectors == {"velocity_umap": ("velocity_umap", 2, False), "T_fwd_umap_3d": ("T_fwd_umap", 3, True)}


def test_inspect_handles_a_million_cells():
    rng = np.random.default_rng(2)
    n, g, per_row = 1_000_000, 30_000, 20
    indptr = np.arange(0, n * per_row + 1, per_row, dtype=np.int64)
    indices = rng.integers(0, g, n * per_row).astype(np.int32)
    indices.reshape(n, per_row).sort(axis=1)
    x = sparse.csr_matrix((np.ones(n * per_row, np.float32), indices, indptr), shape=(n, g))
    obs = pd.DataFrame(
        {
            "cluster": pd.Categorical.from_codes(rng.integers(0, 40, n), [f"c{i}" for i in range(40)]),
            "sample": rng.choice(["s1", "s2", "s3", "s4"], n).astype(object),
            "barcode": pd.Index(np.arange(n).astype(str)).astype(object),
            "total_counts": rng.random(n),
            "n_genes": rng.integers(0, 5000, n),
        }
    )
    obs.index = obs.index.astype(str)  # AnnData wants string cell names
    adata = anndata.AnnData(X=x, obs=obs)
    adata.obsm["X_umap"] = rng.normal(size=(n, 2)).astype(np.float32)
    adata.obsm["X_pca"] = np.zeros((n, 30), np.float32)
    # Its speed (< 1 s) is measured in benchmarks/bench_estimate.py, not here.
    s = inspect(adata)
    assert s.obs_column("barcode").identifier_like
    assert s.expression_source("X").nnz == n * per_row


def test_scaled_values_are_told_from_other_negative_values():
    rng = np.random.default_rng(3)
    logn = np.log1p(rng.poisson(3.0, size=(400, 30))).astype(np.float32)
    z = (logn - logn.mean(0)) / logn.std(0)
    noisy = logn + rng.normal(0, 0.05, size=logn.shape).astype(np.float32)  # a few small negatives, not centred
    assert noisy.min() < 0
    adata = anndata.AnnData(X=z, layers={"noisy": noisy, "log1p": logn},
                            obs=pd.DataFrame(index=[f"c{i}" for i in range(400)]))
    hints = {e.name: e.value_hint for e in inspect(adata).expression}
    assert hints == {"X": "scaled", "layers/noisy": "other", "layers/log1p": "log-normalized"}
