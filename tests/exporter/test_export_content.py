"""What the writers put on disk, decoded with numpy + codecs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from export_helpers import make_kwargs, payload
from scipy import sparse

from cellucid_nb.exporter.centroids import category_centroids, grouped_quantile
from cellucid_nb.exporter.outliers import latent_outlier_quantiles
from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.format import codecs
from cellucid_nb.format.spec import CONNECTIVITY_MANIFEST_KEYS, OBS_MANIFEST_KEYS, VAR_MANIFEST_KEYS


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_manifests_have_exactly_the_format_keys(tmp_path: Path) -> None:
    out = prepare(out_dir=tmp_path / "e", **make_kwargs()).path
    obs, var, conn = _json(out / "obs_manifest.json"), _json(out / "var_manifest.json"), _json(out / "connectivity_manifest.json")
    assert set(obs) == OBS_MANIFEST_KEYS and set(var) == VAR_MANIFEST_KEYS and set(conn) == CONNECTIVITY_MANIFEST_KEYS
    assert set(obs["_obsSchemas"]) == {"continuous", "categorical"}
    assert var["quantization"] == var["_varSchema"]["quantizationBits"] == 8
    assert conn["weightsPath"] == "connectivity/edges.weights.f64.bin.gz" and conn["weight_dtype"] == "float64"


def test_obs_schema_only_for_non_empty_lists(tmp_path: Path) -> None:
    kw = make_kwargs()
    kw["obs_keys"] = ["cluster"]
    out = prepare(out_dir=tmp_path / "e", **kw).path
    obs = _json(out / "obs_manifest.json")
    assert set(obs["_obsSchemas"]) == {"categorical"} and obs["_continuousFields"] == []


@pytest.mark.parametrize("bits", [None, 8, 16])
def test_obs_continuous_and_categorical_payloads(bits, tmp_path: Path) -> None:
    kw = make_kwargs()
    obs = kw["obs"].copy()
    obs.loc[3, "score"] = np.nan
    obs["nullable"] = pd.array([None if i % 7 == 0 else i for i in range(len(obs))], dtype="Int64")
    obs["cluster"] = obs["cluster"].cat.add_categories(["unused"])
    obs.loc[5, "cluster"] = np.nan
    kw.update(obs=obs, obs_continuous_quantization=bits)
    out = prepare(out_dir=tmp_path / "e", **kw).path
    manifest = _json(out / "obs_manifest.json")
    ext = codecs.QuantSpec(bits).ext
    for entry in manifest["_continuousFields"]:
        key = entry[0]
        raw = payload(out / "obs" / f"{key}.values.{ext}.gz", codecs.QuantSpec(bits).numpy_dtype)
        truth = obs[key].to_numpy(dtype=np.float64, na_value=np.nan)
        if bits is None:
            assert len(entry) == 1
            np.testing.assert_array_equal(raw, truth.astype(np.float32))
        else:
            lo, hi = entry[1], entry[2]
            decoded = codecs.dequantize(raw, lo, hi, bits)
            assert np.array_equal(np.isnan(decoded), np.isnan(truth))
            ok = ~np.isnan(truth)
            assert np.abs(decoded[ok] - truth[ok]).max() <= (hi - lo) / codecs.QUANT_MAX[bits] / 2 + 1e-5
    cats = {e[0]: e for e in manifest["_categoricalFields"]}
    assert cats["flag"][1] == ["False", "True"] and cats["batch"][1] == ["x", "y"]
    key, categories, dtype, missing, centroids = cats["cluster"][:5]
    assert categories == ["a", "b", "c", "unused"] and dtype == "uint8" and missing == 255
    assert set(centroids) == {"2", "3"}
    assert [c["category"] for c in centroids["2"]] == ["a", "b", "c"]  # "unused" has no cells
    codes = payload(out / "obs" / "cluster.codes.u8.gz", "u1")
    expected = obs["cluster"].cat.codes.to_numpy()
    assert codes[5] == 255 and np.array_equal(codes[expected >= 0], expected[expected >= 0])
    assert len(cats["cluster"]) == (5 if bits is None else 7)
    outliers = payload(out / "obs" / f"cluster.outliers.{ext}.gz", codecs.QuantSpec(bits).numpy_dtype)
    if bits is not None:
        outliers = codecs.dequantize(outliers, cats["cluster"][5], cats["cluster"][6], bits)
    assert np.isnan(outliers[5]) and np.all((outliers[expected >= 0] > 0) & (outliers[expected >= 0] <= 1.0 + 1e-6))


def test_auto_codes_switch_to_uint16(tmp_path: Path) -> None:
    kw = make_kwargs(n=600)
    obs = kw["obs"].copy()
    obs["cell"] = [f"c{i % 300}" for i in range(600)]
    kw["obs"] = obs
    out = prepare(out_dir=tmp_path / "e", **kw).path
    cats = {e[0]: e for e in _json(out / "obs_manifest.json")["_categoricalFields"]}
    assert cats["cell"][2] == "uint16" and cats["cell"][3] == 65535
    codes = payload(out / "obs" / "cell.codes.u16.gz", "<u2")
    assert codes.max() == 299


def test_centroids_follow_reference_semantics() -> None:
    from cellucid.prepare_data import _compute_centroids_for_field, _compute_latent_space_quantiles

    rng = np.random.default_rng(4)
    for q, min_points in [(0.95, 10), (0.6, 3), (0.2, 5), (0.999, 1)]:
        coords = rng.normal(size=(500, 3)).astype(np.float32)
        codes = rng.integers(-1, 8, size=500)
        codes[codes == 7] = 6 if min_points > 1 else 7
        cats = [f"k{i}" for i in range(9)]
        ours = category_centroids(coords, codes, cats, q, min_points)
        ref = _compute_centroids_for_field(coords, codes, cats, q, min_points)
        assert [(c["category"], c["n_points"]) for c in ours] == [(c["category"], c["n_points"]) for c in ref]
        for a, b in zip(ours, ref, strict=True):
            np.testing.assert_allclose(a["position"], b["position"], atol=1e-6)
        latent = rng.normal(size=(500, 6)).astype(np.float32)
        np.testing.assert_allclose(
            latent_outlier_quantiles(latent, codes, 9, min_points),
            _compute_latent_space_quantiles(latent, codes, cats, min_points),
            atol=1e-6,
        )


def test_grouped_quantile_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=400)
    groups = rng.integers(0, 7, size=400)
    counts = np.bincount(groups, minlength=9)
    for q in (0.0, 0.3, 0.5, 0.95, 1.0):
        got = grouped_quantile(values, groups, counts, q)
        for g in range(9):
            if counts[g]:
                assert got[g] == np.quantile(values[groups == g], q)
            else:
                assert np.isnan(got[g])


@pytest.mark.parametrize("bits", [None, 8, 16])
@pytest.mark.parametrize("kind", ["csr", "dense"])
def test_gene_payloads_decode_to_the_input(bits, kind: str, tmp_path: Path) -> None:
    kw = make_kwargs(n=400, n_genes=30)
    dense = kw["gene_expression"].toarray()
    dense[0, 0] = np.nan
    dense[1, 1] = np.inf
    dense[:, 2] = 3.5  # constant column
    dense[:, 3] = 0.0  # empty column
    kw["gene_expression"] = dense if kind == "dense" else sparse.csr_matrix(dense)
    kw["var_quantization"] = bits
    kw["gene_identifiers"] = ["G5", "G0", "G1", "G2", "G3", "G29"]
    out = prepare(out_dir=tmp_path / "e", **kw).path
    manifest = _json(out / "var_manifest.json")
    assert [f[0] for f in manifest["fields"]] == kw["gene_identifiers"]
    spec = codecs.QuantSpec(bits)
    for entry in manifest["fields"]:
        gene = entry[0]
        truth = dense[:, int(gene[1:])]
        raw = payload(out / "var" / f"{gene}.values.{spec.ext}.gz", spec.numpy_dtype)
        if bits is None:
            np.testing.assert_array_equal(raw, truth)
            continue
        lo, hi = entry[1], entry[2]
        assert (lo, hi) == pytest.approx(codecs.value_range(truth))
        decoded = codecs.dequantize(raw, lo, hi, bits)
        finite = np.isfinite(truth)
        assert np.all(np.isnan(decoded[~finite]))
        assert np.abs(decoded[finite] - truth[finite]).max() <= (hi - lo) / codecs.QUANT_MAX[bits] / 2 + 1e-5


def test_gene_ids_from_a_var_column(tmp_path: Path) -> None:
    kw = make_kwargs()
    kw["var_gene_id_column"] = "symbol"
    out = prepare(out_dir=tmp_path / "e", **kw).path
    manifest = _json(out / "var_manifest.json")
    assert manifest["var_gene_id_column"] == "symbol"
    assert [f[0] for f in manifest["fields"]][:2] == ["S0", "S1"]
    assert (out / "var" / "S0.values.u8.gz").exists()


def test_connectivity_edges_and_identity(tmp_path: Path) -> None:
    kw = make_kwargs()
    kw.update(dataset_name="My data", source_name="Lab", source_url="local", gene_identifiers=["G1", "G2"])
    out = prepare(out_dir=tmp_path / "e", **kw).path
    conn = _json(out / "connectivity_manifest.json")
    src = payload(out / conn["sourcesPath"], conn["index_dtype"])
    dst = payload(out / conn["destinationsPath"], conn["index_dtype"])
    w = payload(out / conn["weightsPath"], "<f8")
    a = kw["connectivities"].toarray()
    sym = a + a.T
    np.fill_diagonal(sym, 0)
    e_src, e_dst = np.nonzero(np.triu(sym, 1))
    assert np.array_equal(src, e_src) and np.array_equal(dst, e_dst)
    np.testing.assert_allclose(w, sym[e_src, e_dst])
    assert conn["n_edges"] == len(src) and conn["max_neighbors"] == int((sym > 0).sum(1).max())
    identity = _json(out / "dataset_identity.json")
    assert identity["id"] == "My_data" and identity["name"] == "My data"
    assert identity["created_at"] == kw["created_at"]
    assert identity["stats"] == {
        "n_cells": 300, "n_genes": 2, "n_obs_fields": 4, "n_categorical_fields": 3,
        "n_continuous_fields": 1, "has_connectivity": True, "n_edges": conn["n_edges"],
    }
    assert identity["embeddings"] == {
        "available_dimensions": [2, 3], "default_dimension": 3,
        "files": {"2d": "points_2d.bin.gz", "3d": "points_3d.bin.gz"},
    }
    assert identity["source"] == {"name": "Lab", "url": "local"}
    assert identity["export_settings"] == {
        "compression": 6, "var_quantization": 8, "obs_continuous_quantization": 8, "obs_categorical_dtype": "auto",
    }
    assert {"key": "cluster", "kind": "category", "n_categories": 3} in identity["obs_fields"]


def test_points_are_normalised_per_dimension(tmp_path: Path) -> None:
    kw = make_kwargs()
    kw["X_umap_1d"] = np.linspace(5, 9, 300)[:, None]
    out = prepare(out_dir=tmp_path / "e", **kw).path
    for dim in (1, 2, 3):
        pts = payload(out / f"points_{dim}d.bin.gz", "<f4").reshape(-1, dim)
        ranges = pts.max(0) - pts.min(0)
        assert ranges.max() == pytest.approx(2.0, rel=1e-5)
        np.testing.assert_allclose((pts.max(0) + pts.min(0)) / 2, 0, atol=1e-6)
        original = kw[f"X_umap_{dim}d"]
        scale = 2.0 / (original.max(0) - original.min(0)).max()
        np.testing.assert_allclose(pts[1] - pts[0], (original[1] - original[0]) * scale, rtol=1e-4, atol=1e-6)


def test_implicit_vector_key_and_custom_basis(tmp_path: Path) -> None:
    kw = make_kwargs()
    kw["vector_fields"] = {"drift": np.ones((300, 3)), "drift_2d": np.ones((300, 2)), "velocity_umap": np.ones((300, 2))}
    out = prepare(out_dir=tmp_path / "e", vector_basis="tsne", **kw).path
    fields = _json(out / "dataset_identity.json")["vector_fields"]["fields"]
    assert fields["drift"]["available_dimensions"] == [2, 3] and fields["drift"]["basis"] == "tsne"
    assert fields["drift"]["label"] == "Drift"
    assert fields["velocity_umap"]["basis"] == "umap"
