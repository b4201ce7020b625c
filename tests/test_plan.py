"""ExportPlan: defaults, validation, JSON round trip, gene helpers."""

from __future__ import annotations

import dataclasses
import json
import pickle

import anndata
import numpy as np
import pandas as pd
import pytest
from pbmc_data import pbmc68k_reduced
from scipy import sparse

from cellucid_nb.adata.gene_choice import all_genes, column_stats, genes_by_list, highly_variable, top_genes
from cellucid_nb.adata.plan import ExportPlan, PlanError


@pytest.fixture(scope="module")
def pbmc() -> anndata.AnnData:
    return pbmc68k_reduced()


def test_defaults_follow_the_issue(pbmc):
    plan = ExportPlan.from_anndata(pbmc)
    assert dict(plan.embeddings) == {2: "X_umap"}
    assert plan.latent == "X_pca"
    assert plan.obs_keys == tuple(pbmc.obs.columns)
    assert plan.expression_source == "raw"  # X holds z-scores, raw log-normalised values
    hvg = tuple(pbmc.var_names[pbmc.var["highly_variable"].to_numpy()])
    assert plan.genes == hvg and len(hvg) > 0
    assert plan.connectivities == "connectivities"
    assert (plan.compression, plan.var_quantization, plan.obs_continuous_quantization) == (6, 8, 8)
    plan.check(pbmc)


def test_defaults_skip_identifier_columns_and_pick_per_dimension_umaps():
    rng = np.random.default_rng(0)
    n = 500
    obs = pd.DataFrame(
        {
            "barcode": [f"BC{i}" for i in range(n)],
            "cluster": pd.Categorical(rng.integers(0, 5, n).astype(str)),
            "empty": np.full(n, np.nan),
        },
        index=[f"BC{i}" for i in range(n)],
    )
    adata = anndata.AnnData(X=sparse.random(n, 30, density=0.2, format="csr", random_state=0, dtype=np.float32), obs=obs)
    adata.obsm["X_umap"] = rng.normal(size=(n, 2))
    adata.obsm["X_umap_3d"] = rng.normal(size=(n, 3))
    adata.obsm["X_tsne"] = rng.normal(size=(n, 2))
    adata.obsm["velocity_umap"] = rng.normal(size=(n, 2))
    adata.obsm["velocity_umap_1d"] = rng.normal(size=(n, 1))  # no 1D embedding: not chosen
    plan = ExportPlan.from_anndata(adata)
    assert dict(plan.embeddings) == {2: "X_umap", 3: "X_umap_3d"}
    assert plan.latent is None and plan.latent_key == "X_umap_3d"
    assert plan.obs_keys == ("cluster",)
    assert plan.genes is None  # no highly_variable flag: all genes
    assert dict(plan.vector_fields) == {"velocity_umap": "velocity_umap"}
    plan.check(adata)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"embeddings": {}}, "non-empty"),
        ({"embeddings": {4: "X_umap"}}, "expected 1, 2 or 3"),
        ({"compression": 12}, "compression=12"),
        ({"var_quantization": 12}, "var_quantization=12"),
        ({"obs_continuous_quantization": True}, "obs_continuous_quantization=True"),
        ({"obs_categorical_dtype": "int8"}, "obs_categorical_dtype='int8'"),
        ({"obs_keys": "louvain"}, "expected a list"),
        ({"obs_keys": ["a", "a"]}, "duplicates ['a']"),
        ({"genes": ["A", "B", "A"]}, "duplicates ['A']"),
        ({"expression_source": "layer/counts"}, "expression_source='layer/counts'"),
        ({"centroid_outlier_quantile": 1.5}, "centroid_outlier_quantile=1.5"),
        ({"centroid_min_points": 0}, "centroid_min_points=0"),
        ({"vector_fields": {"velocity umap": "velocity_umap"}}, "not file-name safe"),
    ],
)
def test_invalid_plans_are_refused_with_the_value(changes, message):
    base = ExportPlan(embeddings={2: "X_umap"})
    with pytest.raises(PlanError) as info:
        base.replace(**changes)
    assert message in str(info.value)


def test_replace_suggests_the_closest_name_and_plans_stay_frozen():
    plan = ExportPlan(embeddings={2: "X_umap"})
    with pytest.raises(TypeError, match="did you mean 'compression'"):
        plan.replace(compresion=9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.compression = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.embeddings[3] = "X_other"  # type: ignore[index]
    assert plan.replace(compression=0).compression is None
    assert plan.replace(compression=9).compression == 9 and plan.compression == 6


def test_json_round_trip_is_exact(pbmc):
    plan = ExportPlan.from_anndata(pbmc).replace(
        embeddings={"2": "X_umap"}, compression=9, var_quantization=None, dataset_name="PBMC 68k (reduced)",
        vector_fields={"velocity_umap_2d": "velocity_umap"}, source_citation="Zheng et al. 2017",
    )
    again = ExportPlan.from_json(plan.to_json())
    assert again == plan
    assert again.to_dict() == plan.to_dict() == json.loads(plan.to_json())
    assert ExportPlan.from_dict(plan.to_dict()) == plan
    assert pickle.loads(pickle.dumps(plan)) == plan and hash(again) == hash(plan)
    with pytest.raises(TypeError, match="did you mean 'genes'"):
        ExportPlan.from_dict({**plan.to_dict(), "gnes": []})


def test_check_names_key_received_and_expected(pbmc):
    plan = ExportPlan.from_anndata(pbmc)
    with pytest.raises(PlanError, match=r"obsm\['X_umap'\] has shape \(700, 2\), expected \(700, 3\)"):
        plan.replace(embeddings={3: "X_umap"}).check(pbmc)
    with pytest.raises(PlanError, match="did you mean 'X_umap'"):
        plan.replace(embeddings={2: "X_uamp"}).check(pbmc)
    with pytest.raises(PlanError, match=r"obs_keys \['louvian'\] not in obs; did you mean 'louvain'"):
        plan.replace(obs_keys=("louvian",)).check(pbmc)
    with pytest.raises(PlanError, match=r"2 of the genes asked for are not in the 'raw' expression source"):
        plan.replace(genes=("CD3D", "NOPE1", "NOPE2")).check(pbmc)
    with pytest.raises(PlanError, match="layer 'counts' not in adata.layers"):
        plan.replace(expression_source="layers/counts").check(pbmc)
    with pytest.raises(PlanError, match="connectivities='knn' not in obsp"):
        plan.replace(connectivities="knn").check(pbmc)
    with pytest.raises(PlanError, match="var_gene_id_column='symbol'"):
        plan.replace(var_gene_id_column="symbol").check(pbmc)


def test_gene_helpers(pbmc):
    found, unknown = genes_by_list(pbmc, ["CD3D", "nope", "LYZ", "CD3D", "MS4A1"])
    assert found == ("CD3D", "LYZ", "MS4A1") and unknown == ("nope",)
    assert highly_variable(pbmc) == tuple(pbmc.var_names[pbmc.var["highly_variable"].to_numpy()])
    assert highly_variable(pbmc, source="raw") == highly_variable(pbmc)
    assert all_genes(pbmc, source="raw") == tuple(pbmc.raw.var_names)
    dense = pbmc.raw.X.toarray()
    by_mean = top_genes(pbmc, 10, by="mean", source="raw")
    assert by_mean == tuple(pbmc.raw.var_names[np.argsort(-dense.mean(0), kind="stable")[:10]])
    by_var = top_genes(pbmc, 5, by="variance", source="X")
    assert by_var == tuple(pbmc.var_names[np.argsort(-pbmc.X.var(0), kind="stable")[:5]])
    with pytest.raises(ValueError, match="by='median'"):
        top_genes(pbmc, 3, by="median")


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
def test_column_stats_in_row_blocks_match_numpy(fmt):
    dense = sparse.random(301, 17, density=0.3, random_state=4, dtype=np.float64).toarray()
    dense[5, 3] = np.nan  # non-finite counts as 0
    matrix = dense if fmt == "dense" else sparse.csr_matrix(dense) if fmt == "csr" else sparse.csc_matrix(dense)
    mean, var = column_stats(matrix, row_block=64)
    clean = np.nan_to_num(dense, nan=0.0)
    np.testing.assert_allclose(mean, clean.mean(0), rtol=1e-10)
    np.testing.assert_allclose(var, clean.var(0), rtol=1e-8, atol=1e-12)


def test_top_genes_reads_a_backed_matrix_in_row_blocks(pbmc, tmp_path):
    small = anndata.AnnData(X=sparse.csr_matrix(pbmc.raw.X), var=pbmc.raw.var.copy(), obs=pbmc.obs.copy())
    path = tmp_path / "small.h5ad"
    small.write_h5ad(path)
    backed = anndata.read_h5ad(path, backed="r")
    assert top_genes(backed, 7, by="variance") == top_genes(small, 7, by="variance")


def test_an_empty_gene_list_is_refused_unless_genes_are_off():
    from cellucid_nb.adata.plan import ExportPlan, PlanError

    with pytest.raises(PlanError, match=r"genes=\(\) selects no genes"):
        ExportPlan(embeddings={2: "X_umap"}, genes=())
    plan = ExportPlan(embeddings={2: "X_umap"}, genes=(), expression_source=None)
    assert plan.genes == () and plan.expression_source is None


def _adata_with_sources(x: np.ndarray, layers: dict | None = None, raw: np.ndarray | None = None) -> anndata.AnnData:
    n, g = x.shape
    var = pd.DataFrame(index=[f"G{i}" for i in range(g)])
    adata = anndata.AnnData(X=x, var=var, obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
                            obsm={"X_umap": np.zeros((n, 2), dtype=np.float32)})
    for name, values in (layers or {}).items():
        adata.layers[name] = values
    if raw is not None:
        adata.raw = anndata.AnnData(X=raw, var=var.copy())
    return adata


def test_default_source_prefers_log_normalised_values_over_z_scores():
    from cellucid_nb.adata.gene_choice import default_expression_source, expression_source_note
    from cellucid_nb.adata.inspection import inspect

    rng = np.random.default_rng(1)
    counts = rng.poisson(2.0, size=(300, 20)).astype(np.float32)
    lognorm = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    z = ((lognorm - lognorm.mean(0)) / (lognorm.std(0) + 1e-6)).astype(np.float32)
    cases = [
        (_adata_with_sources(z, layers={"log1p": lognorm}), "layers/log1p"),
        (_adata_with_sources(z, raw=lognorm), "raw"),
        (_adata_with_sources(lognorm, raw=counts), "X"),
        (_adata_with_sources(z, layers={"counts": counts}), "layers/counts"),
        (_adata_with_sources(z), "X"),
    ]
    for adata, expected in cases:
        summary = inspect(adata)
        assert default_expression_source(summary) == expected
        assert ExportPlan.from_anndata(adata, summary).expression_source == expected
    scaled = _adata_with_sources(z, layers={"log1p": lognorm})
    note = expression_source_note(inspect(scaled), "layers/log1p")
    assert "layers/log1p" in note and "log-normalised" in note and "z-scores" in note
    note_x = expression_source_note(inspect(scaled), "X")
    assert "as chosen" in note_x and "layers/log1p" in note_x and "better" in note_x


def test_gene_rules_are_one_set(pbmc):
    from cellucid_nb.adata.gene_choice import (
        DEFAULT_TOP_BY,
        UnknownGenesError,
        choose_genes,
        parse_gene_spec,
    )

    assert DEFAULT_TOP_BY == "variance"
    expected = tuple(pbmc.raw.var_names[np.argsort(-pbmc.raw.X.toarray().var(0), kind="stable")[:4]])
    assert choose_genes(pbmc, "top", n=4, source="raw") == expected
    assert choose_genes(pbmc, "all") is None and choose_genes(pbmc, "none") == ()
    with pytest.raises(UnknownGenesError) as info:
        choose_genes(pbmc, "list", ids=["CD3D", "cd79a", "LYZZ", "CD3D"], source="raw")
    assert info.value.unknown == ("cd79a", "LYZZ")
    assert info.value.suggestions == {"cd79a": "CD79A", "LYZZ": "LYZ"}
    assert "did you mean 'CD79A'?" in str(info.value) and "nothing was changed" in str(info.value)
    assert choose_genes(pbmc, "list", ids=[" CD3D", "LYZ", "CD3D", ""]) == ("CD3D", "LYZ")
    with pytest.raises(ValueError, match="gene choice 'best'"):
        choose_genes(pbmc, "best")
    assert parse_gene_spec("top:50") == {"mode": "top", "n": 50, "by": "variance"}
    assert parse_gene_spec("TOP:5:mean") == {"mode": "top", "n": 5, "by": "mean"}
    assert parse_gene_spec("CD3D, LYZ") == {"mode": "list", "ids": ["CD3D", "LYZ"]}
    with pytest.raises(ValueError, match="top:N"):
        parse_gene_spec("top:x")

    plan = ExportPlan.from_anndata(pbmc)
    assert plan.with_genes(pbmc, "top", n=4).genes == expected
    off = plan.with_genes(pbmc, "none")
    assert off.expression_source is None and off.genes is None
    assert off.with_genes(pbmc, "all").expression_source == "raw"
    with pytest.raises(UnknownGenesError):
        plan.with_genes(pbmc, "list", ids=["NOPE"])
    with pytest.raises(PlanError, match="did you mean 'LYZ'"):
        plan.replace(genes=("LYZZ",)).check(pbmc)


@pytest.mark.parametrize(("text", "message"), [
    ("{bad", "plan JSON is not valid JSON"),
    ("[1, 2]", "plan JSON holds a list, expected an object"),
    ("null", "plan JSON holds a NoneType, expected an object"),
    ('"x"', "plan JSON holds a str, expected an object"),
    ("[" * 100_000, "nested too deeply"),
    ('{"embeddings": {"2": "X_umap"}, "embeddings": {"3": "X_pca"}}', "holds the key 'embeddings' more than once"),
    ('{"embeddings": {"2": "X_umap"}, "compression": 1' + "0" * 5000 + "}", "Exceeds the limit"),
])
def test_a_hostile_plan_json_is_a_plan_error(text, message):
    with pytest.raises(PlanError, match=message):
        ExportPlan.from_json(text)
