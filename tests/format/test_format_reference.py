"""Our prepare() against cellucid==0.0.9 on the same inputs: layout, manifests, accuracy, documented differences."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from make_fixtures import make_inputs, quiet, write_reference_export

from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.format.codecs import QUANT_MAX
from cellucid_nb.format.reader import read_export
from cellucid_nb.format.validator import validate_export

CASES = {
    "plain": dict(),
    "gzip6_q8": dict(compression=6, var_quantization=8, obs_continuous_quantization=8),
    "gzip1_q16_u16": dict(compression=1, var_quantization=16, obs_continuous_quantization=16,
                          obs_categorical_dtype="uint16"),
    "gzip9_subset_q8": dict(compression=9, var_quantization=8, gene_identifiers=["LYZ", "CD3E", "HLA-A/B"]),
    "only_2d_q16": dict(var_quantization=16, obs_continuous_quantization=16, dims=(2,)),
}
WEIGHTS = "connectivity/edges.weights.f64.bin"
SIDECAR = "cellucid_nb.json"


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _load(root: Path, name: str) -> dict:
    return json.loads((root / name).read_text())


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request, tmp_path_factory):
    """(case options, inputs, reference export, our export) written from identical inputs."""
    options = dict(CASES[request.param])
    inputs = make_inputs(n_cells=60, seed=3, dims=options.pop("dims", (1, 2, 3)))
    root = tmp_path_factory.mktemp(request.param)
    # The reference scales float32 vector field arrays in place (np.asarray makes no copy): give it its own.
    ref = write_reference_export(root / "ref", copy.deepcopy(inputs), dataset_name="same", **options)
    ours_inputs = copy.deepcopy(inputs)
    with quiet():  # our exporter prints nothing, but keep both runs under the same conditions
        prepare(out_dir=root / "ours", dataset_name="same", created_at="2024-01-01T00:00:00Z", **ours_inputs, **options)
    for name, field in inputs.get("vector_fields", {}).items():  # we leave the caller's arrays alone
        np.testing.assert_array_equal(ours_inputs["vector_fields"][name], field)
    return options, inputs, ref, root / "ours"


def test_same_files_plus_weights_and_sidecar(pair):
    options, _, ref, ours = pair
    gz = ".gz" if options.get("compression") else ""
    ref_files, our_files = _files(ref), _files(ours)
    assert ref_files - our_files == set()
    assert our_files - ref_files == {WEIGHTS + gz, SIDECAR}


def test_obs_manifest_structure_matches(pair):
    _, _, ref, ours = pair
    r, o = _load(ref, "obs_manifest.json"), _load(ours, "obs_manifest.json")
    assert set(r) == set(o)
    assert {k: v for k, v in r.items() if not k.startswith("_")} == {k: v for k, v in o.items() if not k.startswith("_")}
    assert r["_obsSchemas"] == o["_obsSchemas"]
    for kind in ("_continuousFields", "_categoricalFields"):
        assert [(f[0], len(f)) for f in r[kind]] == [(f[0], len(f)) for f in o[kind]]
    for rf, of in zip(r["_categoricalFields"], o["_categoricalFields"], strict=True):
        assert rf[1:4] == of[1:4]  # categories, codesDtype, codesMissingValue
        assert sorted(rf[4]) == sorted(of[4])  # centroid dimensions
        for dim in rf[4]:
            ref_c = {c["category"]: c for c in rf[4][dim]}
            our_c = {c["category"]: c for c in of[4][dim]}
            assert set(ref_c) == set(our_c)
            for cat, c in ref_c.items():
                assert our_c[cat]["n_points"] == c["n_points"]
                np.testing.assert_allclose(our_c[cat]["position"], c["position"], atol=1e-5)


def test_var_and_connectivity_manifests_match(pair):
    _, _, ref, ours = pair
    r, o = _load(ref, "var_manifest.json"), _load(ours, "var_manifest.json")
    assert set(r) == set(o) and r["_varSchema"] == o["_varSchema"]
    assert {k: r[k] for k in r if k != "fields"} == {k: o[k] for k in o if k != "fields"}
    assert [(f[0], len(f)) for f in r["fields"]] == [(f[0], len(f)) for f in o["fields"]]
    rc, oc = _load(ref, "connectivity_manifest.json"), _load(ours, "connectivity_manifest.json")
    assert set(oc) - set(rc) == {"weightsPath", "weight_bytes", "weight_dtype"}
    assert {k: oc[k] for k in rc} == rc
    ref_edges, our_edges = read_export(ref).edges(), read_export(ours).edges()
    np.testing.assert_array_equal(ref_edges[0], our_edges[0])
    np.testing.assert_array_equal(ref_edges[1], our_edges[1])
    assert ref_edges[2] is None and our_edges[2].dtype == np.float64 and np.all(our_edges[2] > 0)


def test_identity_differences_are_exactly_the_documented_ones(pair):
    options, inputs, ref, ours = pair
    r, o = _load(ref, "dataset_identity.json"), _load(ours, "dataset_identity.json")
    assert set(r) == set(o)
    for key in ("version", "id", "name", "embeddings", "obs_fields", "export_settings"):
        assert r[key] == o[key], key
    # n_genes: the reference counts the whole matrix, we count the exported genes.
    n_exported = len(options.get("gene_identifiers") or inputs["var"].index)
    assert o["stats"]["n_genes"] == n_exported
    assert r["stats"]["n_genes"] == inputs["gene_expression"].shape[1]
    assert {k: v for k, v in r["stats"].items() if k != "n_genes"} == {k: v for k, v in o["stats"].items() if k != "n_genes"}
    # basis: the reference writes it only for ids ending in _umap; we always do (default "umap").
    rv, ov = r.get("vector_fields", {}).get("fields", {}), o.get("vector_fields", {}).get("fields", {})
    assert set(rv) == set(ov)
    for fid, entry in rv.items():
        assert {k: v for k, v in entry.items() if k != "basis"} == {k: v for k, v in ov[fid].items() if k != "basis"}
        assert ov[fid]["basis"] == "umap"
        assert ("basis" in entry) == fid.endswith("_umap")


def test_validator_reports_only_the_documented_reference_gaps(pair):
    options, _, ref, ours = pair
    assert validate_export(ours) == []
    expected = {"manifest_missing_key"}  # no weights in connectivity_manifest.json
    if "drift" in read_export(ref).vector_fields:
        expected.add("vector_basis_missing")
    if options.get("compression"):
        expected.add("gzip_header")  # gzip.open stores mtime and file name
    if options.get("gene_identifiers"):
        expected.add("identity_stats_mismatch")  # n_genes of the whole matrix
    problems = validate_export(ref)
    assert {p.rule for p in problems} == expected
    missing = [p for p in problems if p.rule == "manifest_missing_key"]
    assert [p.file for p in missing] == ["connectivity_manifest.json"]
    assert "weightsPath" in missing[0].detail


def _max_err(decoded: np.ndarray, truth: np.ndarray) -> float:
    ok = np.isfinite(truth)
    assert np.array_equal(np.isnan(decoded), ~ok)
    return float(np.max(np.abs(decoded[ok].astype(np.float64) - truth[ok]))) if ok.any() else 0.0


def test_our_values_are_at_least_as_accurate(pair):
    options, inputs, ref, ours = pair
    rr, ro = read_export(ref), read_export(ours)
    for dim in rr.dimensions:
        np.testing.assert_allclose(ro.points(dim), rr.points(dim), atol=1e-6)
    obs = inputs["obs"]
    for key in ("score", "n_counts"):
        truth = obs[key].to_numpy(np.float64)
        ours_err, ref_err = _max_err(ro.obs_column(key).to_numpy(), truth), _max_err(rr.obs_column(key).to_numpy(), truth)
        assert ours_err <= ref_err + 1e-6 * np.nanmax(np.abs(truth))
        bits = options.get("obs_continuous_quantization")
        if bits:
            step = (np.nanmax(truth) - np.nanmin(truth)) / QUANT_MAX[bits]
            assert ours_err <= step / 2 * 1.001 + 1e-6 * np.nanmax(np.abs(truth))
    for key in ("cell type", "is_good", "batch"):
        assert ro.obs_column(key).equals(rr.obs_column(key))
        ref_out, our_out = rr.obs_outliers(key), ro.obs_outliers(key)
        assert np.array_equal(np.isnan(ref_out), np.isnan(our_out))
    expression = inputs["gene_expression"].toarray()
    index = {g: j for j, g in enumerate(inputs["var"].index)}
    assert ro.genes == rr.genes
    for gene in ro.genes:
        truth = expression[:, index[gene]].astype(np.float64)
        assert _max_err(ro.gene(gene), truth) <= _max_err(rr.gene(gene), truth) + 1e-6 * truth.max()
    for fid, entry in rr.vector_fields.items():
        for dim in entry["available_dimensions"]:
            np.testing.assert_allclose(ro.vector_field(fid, dim), rr.vector_field(fid, dim), rtol=1e-5, atol=1e-7)
