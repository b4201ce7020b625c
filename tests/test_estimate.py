"""estimate(): sizes against real exports, speed on 1M x 30k, beginner warnings."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from pbmc_data import pbmc68k_reduced
from scipy import sparse

import cellucid_nb.adata.estimation as estimate_module
import cellucid_nb.adata.estimation_sampling as estimate_sampling
from cellucid_nb.adata.estimation import estimate
from cellucid_nb.adata.exporting import export
from cellucid_nb.adata.plan import ExportPlan

CREATED = "2024-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def pbmc() -> anndata.AnnData:
    return pbmc68k_reduced()


def _real_sizes(folder: Path) -> dict[str, int]:
    return {str(f.relative_to(folder)): f.stat().st_size for f in folder.rglob("*") if f.is_file()}


@pytest.mark.parametrize("compression", [None, 1, 6, 9])
@pytest.mark.parametrize("bits", [None, 8, 16])
def test_pbmc_estimates_match_real_exports(pbmc, tmp_path, compression, bits):
    plan = ExportPlan.from_anndata(pbmc).replace(
        compression=compression, var_quantization=bits, obs_continuous_quantization=bits
    )
    out = tmp_path / "pbmc"
    est = estimate(pbmc, plan, out_dir=out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export(pbmc, plan, out, created_at=CREATED)
    real = _real_sizes(out)
    assert est.n_files == result.n_files == len(real)
    assert abs(est.total_bytes - result.n_bytes) <= 0.10 * result.n_bytes
    if compression is None:
        # Uncompressed: byte for byte, file by file for the manifests too.
        assert est.total_bytes == result.n_bytes
        manifests = {p["name"]: p["bytes"] for p in est.parts if p["part"] == "manifests"}
        for name, size in manifests.items():
            assert size == real[name], name
        # size on disk: every file rounded up to whole blocks of the target's file system
        block = os.statvfs(tmp_path).f_frsize
        assert est.block_size == block
        assert est.disk_bytes == sum(-(-size // block) * block for size in real.values())
        assert est.disk_bytes >= est.total_bytes and est.to_dict()["disk_bytes"] == est.disk_bytes
    by_part = est.bytes_by_part()
    assert by_part["genes"] == sum(v for k, v in real.items() if k.startswith("var/")) or compression
    assert est.to_dict()["by_part"] == by_part


@pytest.mark.parametrize(("compression", "bits"), [(None, 8), (1, None), (6, 8), (9, 16)])
def test_sampled_estimates_are_within_ten_percent(tmp_path, monkeypatch, compression, bits):
    from benchmarks.synthetic import make_anndata

    adata = make_anndata(12_000, 500, seed=1)
    # Force the sampling path (rows and genes) on a small data set.
    monkeypatch.setattr(estimate_sampling, "FULL_ROWS", 2_000)
    monkeypatch.setattr(estimate_module, "FULL_GENES", 100)
    plan = ExportPlan.from_anndata(adata).replace(
        genes=None, compression=compression, var_quantization=bits, obs_continuous_quantization=bits
    )
    out = tmp_path / "synthetic"
    est = estimate(adata, plan, out_dir=out)
    assert not est.exact and est.sample_cells < adata.n_obs and est.sample_genes < 500
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export(adata, plan, out, created_at=CREATED)
    assert est.n_files == result.n_files
    error = est.total_bytes / result.n_bytes - 1
    assert abs(error) <= 0.10, f"estimate off by {error:+.1%}"
    if compression is None:
        assert abs(error) <= 0.005  # payloads exact, only manifests extrapolated


def _million_cells() -> anndata.AnnData:
    rng = np.random.default_rng(0)
    n, g, per_row = 1_000_000, 30_000, 24
    indptr = np.arange(0, n * per_row + 1, per_row, dtype=np.int64)
    indices = rng.integers(0, g, n * per_row, dtype=np.int32)
    indices.reshape(n, per_row).sort(axis=1)
    data = rng.gamma(2.0, 1.0, n * per_row).astype(np.float32)
    x = sparse.csr_matrix((data, indices, indptr), shape=(n, g))
    x.has_sorted_indices = True
    obs = pd.DataFrame(
        {
            "cluster": pd.Categorical.from_codes(rng.integers(0, 30, n), [f"c{i}" for i in range(30)]),
            "total_counts": rng.random(n).astype(np.float32),
        }
    )
    obs.index = obs.index.astype(str)  # AnnData wants string cell names
    adata = anndata.AnnData(X=x, obs=obs)
    adata.obsm["X_umap"] = rng.normal(size=(n, 2)).astype(np.float32)
    adata.obsm["X_pca"] = rng.normal(size=(n, 10)).astype(np.float32)
    return adata


def test_estimate_handles_a_million_cells_by_30k_genes():
    # Its speed (< 300 ms) is measured in benchmarks/bench_estimate.py, not here.
    adata = _million_cells()
    plan = ExportPlan.from_anndata(adata)
    assert plan.genes is None
    est = estimate(adata, plan)
    assert est.n_files > 30_000 and any("files" in w for w in est.warnings)


def test_warnings_for_beginners(pbmc):
    adata = pbmc.copy()
    adata.obs["barcode"] = adata.obs_names.astype(str)
    plan = ExportPlan.from_anndata(adata).replace(
        obs_keys=("louvain", "barcode", "n_counts"), var_quantization=None, obs_continuous_quantization=None,
        compression=None,
    )
    text = " | ".join(estimate(adata, plan).warnings)
    assert "obs['barcode'] looks like an identifier" in text
    assert "float32" in text and "var_quantization=8" in text
    assert "no compression" in text
    quiet = " | ".join(estimate(adata, ExportPlan.from_anndata(adata)).warnings)
    assert "identifier" not in quiet and "float32" not in quiet


def test_summary_objects_render(pbmc):
    est = estimate(pbmc, ExportPlan.from_anndata(pbmc))
    page = est._repr_html_()
    assert "Export estimate" in page and "var/" in page
    assert est.bytes_per_gene > 0 and est.n_genes == len(ExportPlan.from_anndata(pbmc).genes)


def test_uncompressed_estimate_stays_exact_when_genes_are_sampled(pbmc, tmp_path, monkeypatch):
    monkeypatch.setattr(estimate_module, "FULL_GENES", 50)  # sample 48 of 765 genes, every cell
    plan = ExportPlan.from_anndata(pbmc).replace(genes=None, compression=None)
    out = tmp_path / "pbmc"
    est = estimate(pbmc, plan, out_dir=out)
    assert est.sample_genes == estimate_module.SAMPLED_GENES and not est.exact
    result = export(pbmc, plan, out, created_at=CREATED)
    assert est.total_bytes == result.n_bytes and est.n_files == result.n_files


def test_backed_anndata_is_estimated_like_in_memory(pbmc, tmp_path):
    path = tmp_path / "pbmc.h5ad"
    pbmc.write_h5ad(path)
    backed = anndata.read_h5ad(path, backed="r")
    plan = ExportPlan.from_anndata(pbmc)
    for source in ("X", "raw"):
        mem = estimate(pbmc, plan.replace(expression_source=source), out_dir=tmp_path / "e")
        disk = estimate(backed, plan.replace(expression_source=source), out_dir=tmp_path / "e")
        assert disk.parts == mem.parts and disk.total_bytes == mem.total_bytes
        assert disk.seconds > 0 and mem.exact


def test_sampled_connectivity_manifest_is_the_exporters(tmp_path, monkeypatch):
    # A symmetric kNN graph with self-loops: the exporter drops the diagonal, so each cell has
    # 9 neighbours while every row stores 10 entries; the estimate must count as graph.py does.
    n = 3_000
    offsets = [1, 2, 3, 4, n // 2]
    rows = np.concatenate([np.arange(n)] * len(offsets) * 2 + [np.arange(n)])
    cols = np.concatenate([(np.arange(n) + s) % n for o in offsets for s in (o, -o)] + [np.arange(n)])
    graph = sparse.csr_matrix((np.full(rows.shape[0], 0.5), (rows, cols)), shape=(n, n))
    graph.sum_duplicates()
    rng = np.random.default_rng(2)
    adata = anndata.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
                            obsm={"X_umap": rng.normal(size=(n, 2)).astype(np.float32)},
                            obsp={"connectivities": graph})
    monkeypatch.setattr(estimate_sampling, "FULL_ROWS", 500)
    plan = ExportPlan(embeddings={2: "X_umap"}, expression_source=None, connectivities="connectivities",
                      compression=None)
    out = tmp_path / "ring"
    est = estimate(adata, plan, out_dir=out)
    assert est.sample_cells < n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export(adata, plan, out, created_at=CREATED)
    real = _real_sizes(out)
    manifest = json.loads((out / "connectivity_manifest.json").read_text())
    assert manifest["max_neighbors"] == 9
    sizes = {p["name"]: p["bytes"] for p in est.parts if p["part"] == "manifests"}
    assert sizes["connectivity_manifest.json"] == real["connectivity_manifest.json"]


def test_time_model_divides_by_the_exporters_own_worker_count(monkeypatch):
    from types import SimpleNamespace

    import cellucid_nb.exporter.prepare as prepare_module

    assert prepare_module.default_n_workers() == max(1, os.cpu_count() or 1)  # prepare(n_workers=None)
    run = SimpleNamespace(cell_seconds=8.0, gene_seconds=0.0, graph_seconds=0.0)
    sample = SimpleNamespace(n=10, m=10, gene_names=[], sampled=None)
    for workers in (1, 8):
        monkeypatch.setattr(prepare_module, "default_n_workers", lambda w=workers: w)
        seconds = estimate_module._expected_seconds(run, sample, 0, 0)
        assert seconds == pytest.approx(8.0 / workers + estimate_module._FIXED_SECONDS)
