"""read_export on hand-made exports and on checked-in cellucid==0.0.9 exports."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from format_handmade import CATEGORIES, edit_json, normalise
from make_fixtures import REFERENCE_FIXTURES, REFERENCE_VARIANTS, make_inputs

from cellucid_nb.format import payloads
from cellucid_nb.format import reader as reader_module
from cellucid_nb.format.codecs import QUANT_MAX
from cellucid_nb.format.reader import ExportReader, read_export


def _half_step(lo: float, hi: float, bits: int | None, values: np.ndarray) -> np.ndarray:
    """Allowed decode error: half a quantization step (plus float32 rounding of the decode)."""
    eps = np.abs(values) * 4e-7 + 1e-7
    return eps if bits is None else (hi - lo) / QUANT_MAX[bits] / 2 + eps


@pytest.mark.parametrize("compression", [None, 6])
@pytest.mark.parametrize("bits", [None, 8, 16])
@pytest.mark.parametrize("codes_dtype", ["uint8", "uint16"])
def test_reads_handmade_export(handmade_cache, compression, bits, codes_dtype):
    path, data = handmade_cache(compression=compression, bits=bits, codes_dtype=codes_dtype)
    r = read_export(path)
    assert r.n_cells == 50
    assert r.dimensions == [2, 3] and r.default_dimension == 3
    for dim in (2, 3):
        np.testing.assert_array_equal(r.points(dim), data["points_normalised"][dim])
        assert r.points(dim).dtype == np.float32 and r.points(dim).shape == (50, dim)

    assert r.obs_keys == ["score", "cell type"]
    score = r.obs_column("score")
    info = r.obs_field_info("score")
    assert info.kind == "continuous" and info.bits == bits
    expected = data["score"]
    assert np.isnan(score[2]) and np.isnan(expected[2])
    finite = np.isfinite(expected)
    lo, hi = np.nanmin(expected), np.nanmax(expected)
    assert np.all(np.abs(score.to_numpy()[finite] - expected[finite]) <= _half_step(lo, hi, bits, expected[finite]))

    cell_type = r.obs_column("cell type")
    assert isinstance(cell_type.dtype, pd.CategoricalDtype)
    assert list(cell_type.cat.categories) == CATEGORIES
    np.testing.assert_array_equal(cell_type.cat.codes.to_numpy(), data["codes"])
    assert pd.isna(cell_type[1])
    cinfo = r.obs_field_info("cell type")
    assert cinfo.dtype == codes_dtype and cinfo.missing_code == (255 if codes_dtype == "uint8" else 65535)
    assert cinfo.outlier_bits == bits
    assert sorted(cinfo.centroids) == ["2", "3"]
    outliers = r.obs_outliers("cell type")
    assert np.array_equal(np.isnan(outliers), np.isnan(data["outliers"]))
    ok = ~np.isnan(outliers)
    assert np.all(np.abs(outliers[ok] - data["outliers"][ok]) <= _half_step(
        np.nanmin(data["outliers"]), np.nanmax(data["outliers"]), bits, data["outliers"][ok]))

    frame = r.obs
    assert list(frame.columns) == ["score", "cell type"] and len(frame) == 50

    assert r.genes == ["CD3E", "HLA-A/B", "gene 3"]
    for gene, values in data["genes"].items():
        decoded = r.gene(gene)
        lo, hi, gbits = r.gene_info(gene)
        assert gbits == bits
        if bits is not None:
            assert lo == pytest.approx(values.min()) and hi > lo
            assert r.gene_raw(gene).dtype == np.dtype({8: "u1", 16: "<u2"}[bits])
        assert np.all(np.abs(decoded - values) <= _half_step(values.min(), values.max() if values.max() > values.min()
                                                             else values.min() + 1, bits, values))

    src, dst, weights = r.edges()
    np.testing.assert_array_equal(src, data["src"])
    np.testing.assert_array_equal(dst, data["dst"])
    np.testing.assert_array_equal(weights, data["weights"])

    assert set(r.vector_fields) == {"velocity_umap"}
    for dim in (2, 3):
        np.testing.assert_array_equal(r.vector_field("velocity_umap", dim), data["velocity"][dim].astype(np.float32))
    assert r.sidecar is None and r.category_colors("cell type") is None


def test_opening_reads_only_json(handmade_cache, tmp_path, monkeypatch):
    src, _ = handmade_cache(compression=6)
    path = tmp_path / "e"
    shutil.copytree(src, path)
    calls = []
    monkeypatch.setattr(reader_module, "read_payload", lambda *a, **k: calls.append(a) or payloads.read_payload(*a, **k))
    # Payloads may even be broken: opening and listing never touches them.
    for payload in path.rglob("*.gz"):
        payload.write_bytes(b"broken")
    r = read_export(path)
    assert r.obs_keys and r.genes and r.dimensions == [2, 3] and r.vector_fields
    assert r.obs_field_info("cell type").categories == CATEGORIES
    assert calls == []
    with pytest.raises(ValueError, match=r"points_2d\.bin\.gz"):
        r.points(2)
    assert len(calls) == 1


def test_truncated_payload_error_names_file_and_sizes(good_export):
    path = good_export()
    target = path / "var" / "CD3E.values.u8"
    target.write_bytes(target.read_bytes()[:30])
    with pytest.raises(ValueError, match=r"CD3E\.values\.u8.*30 bytes, expected 50"):
        read_export(path).gene("CD3E")


def test_truncated_gzip_error_names_file(good_export):
    path = good_export(compression=6)
    target = path / "points_3d.bin.gz"
    target.write_bytes(target.read_bytes()[:-12])
    with pytest.raises(ValueError, match=r"points_3d\.bin\.gz"):
        read_export(path).points(3)


def test_missing_identity_and_bad_json_name_the_file(good_export, tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset_identity.json"):
        read_export(tmp_path)
    path = good_export()
    (path / "obs_manifest.json").write_text("{oops")
    with pytest.raises(ValueError, match="obs_manifest.json"):
        read_export(path)


def test_code_out_of_range_is_a_clear_error(good_export):
    path = good_export()
    codes_file = path / "obs" / "cell_type.codes.u8"
    codes = np.fromfile(codes_file, "u1")
    codes[4] = 9
    codes.tofile(codes_file)
    with pytest.raises(ValueError, match=r"cell_type\.codes\.u8.*code 9 at cell 4"):
        read_export(path).obs_column("cell type")


def test_file_path_refuses_paths_outside_the_export(good_export):
    r = read_export(good_export())
    assert r.file_path("obs/score.values.u8") == r.path / "obs" / "score.values.u8"
    for bad in ("../x", "/etc/passwd", "obs/../../x"):
        with pytest.raises(ValueError, match="outside"):
            r.file_path(bad)


def test_sidecar_colors_and_unknown_names(good_export):
    path = good_export()
    (path / "cellucid_nb.json").write_text(json.dumps({"category_colors": {"cell type": ["#ff0000", "#00ff00", "#0000ff"]}}))
    r = read_export(path)
    assert r.category_colors("cell type") == ["#ff0000", "#00ff00", "#0000ff"]
    assert r.category_colors("score") is None
    with pytest.raises(KeyError, match="nope"):
        r.obs_field_info("nope")
    with pytest.raises(KeyError, match="nope"):
        r.gene("nope")
    with pytest.raises(KeyError):
        r.points(1)
    with pytest.raises(KeyError):
        r.vector_field("velocity_umap", 1)


def test_key_is_sanitised_in_path_patterns(good_export):
    # "HLA-A/B" is stored as var/HLA-A_B...: the reader substitutes safe(key), not the raw key.
    path = good_export()
    assert (path / "var" / "HLA-A_B.values.u8").is_file()
    assert read_export(path).gene_raw("HLA-A/B").shape == (50,)


def test_export_without_optional_parts(good_export):
    path = good_export()
    for name in ("var_manifest.json", "connectivity_manifest.json"):
        (path / name).unlink()
    edit_json(path / "dataset_identity.json", lambda m: m.pop("vector_fields"))
    r = read_export(path)
    assert r.genes == [] and r.vector_fields == {} and r.var_manifest is None
    with pytest.raises(FileNotFoundError, match="connectivity_manifest.json"):
        r.edges()


# ---------------------------------------------------------------- cellucid 0.0.9 fixtures


@pytest.mark.parametrize("variant", sorted(REFERENCE_VARIANTS))
def test_reads_checked_in_reference_exports(variant):
    options = REFERENCE_VARIANTS[variant]
    inputs = make_inputs(n_cells=40, seed=1)
    r = read_export(REFERENCE_FIXTURES / variant)
    assert isinstance(r, ExportReader) and r.n_cells == 40
    assert r.dimensions == [1, 2, 3]
    for dim in (1, 2, 3):
        np.testing.assert_allclose(r.points(dim), normalise(inputs[f"X_umap_{dim}d"]), atol=1e-6)

    obs = r.obs
    assert list(obs.columns) == ["score", "n_counts", "cell type", "is_good", "batch"]
    source = inputs["obs"]
    for key in ("cell type", "batch"):
        np.testing.assert_array_equal(obs[key].astype(object).fillna("NA").to_numpy(),
                                      source[key].astype(object).fillna("NA").to_numpy())
    assert obs["cell type"].isna().sum() == 1
    assert list(obs["is_good"].cat.categories) == ["False", "True"]
    np.testing.assert_array_equal(obs["is_good"].astype(str).to_numpy(), source["is_good"].astype(str).to_numpy())

    bits = options.get("obs_continuous_quantization")
    score = source["score"].to_numpy(np.float32)
    got = obs["score"].to_numpy()
    assert np.array_equal(np.isnan(got), np.isnan(score))
    ok = ~np.isnan(score)
    # The reference truncates: its error is up to one full step, not half.
    step = 0 if bits is None else (np.nanmax(score) - np.nanmin(score)) / QUANT_MAX[bits]
    assert np.all(np.abs(got[ok] - score[ok]) <= step + 1e-5)

    expression = inputs["gene_expression"].toarray()
    gbits = options.get("var_quantization")
    for j, gene in enumerate(inputs["var"].index):
        values = expression[:, j]
        step = 0 if gbits is None else (values.max() - values.min()) / QUANT_MAX[gbits]
        assert np.all(np.abs(r.gene(gene) - values) <= step + 1e-5)

    src, dst, weights = r.edges()
    assert weights is None  # 0.0.9 writes no weights file
    assert np.all(src < dst) and src.dtype == np.uint16
    sym = inputs["connectivities"] + inputs["connectivities"].T
    sym.setdiag(0)
    sym.eliminate_zeros()
    assert len(src) == sym.nnz // 2

    assert r.vector_fields["drift"].get("basis") is None  # 0.0.9 omits it for non-UMAP ids
    scale2 = 2.0 / np.ptp(inputs["X_umap_2d"], axis=0).max()
    np.testing.assert_allclose(r.vector_field("drift", 2), inputs["vector_fields"]["drift_2d"] * scale2, rtol=1e-5)


def test_a_range_that_is_not_finite_is_an_error_naming_the_key(good_export):
    path = good_export(bits=8)

    def break_gene(var: dict) -> None:
        entry = next(e for e in var["fields"] if e[0] == "CD3E")
        entry[2] = float("inf")  # Python's json writes Infinity, as writers of NaN data did

    edit_json(path / "var_manifest.json", break_gene)
    reader = read_export(path)
    with pytest.raises(ValueError, match=r"var_manifest\.json: gene 'CD3E'.*max=inf.*not finite"):
        reader.gene("CD3E")

    def break_score(obs: dict) -> None:
        entry = next(e for e in obs["_continuousFields"] if e[0] == "score")
        entry[1] = float("nan")

    edit_json(path / "obs_manifest.json", break_score)
    with pytest.raises(ValueError, match=r"obs_manifest\.json: obs field 'score'.*min=nan"):
        read_export(path).obs_column("score")


def test_an_all_missing_payload_with_a_nan_range_decodes_to_nan():
    # cellucid 0.0.9 writes nanmin/nanmax of an all-NaN column: NaN, and only missing codes
    from cellucid_nb.format.codecs import MISSING_CODE, dequantize

    codes = np.full(7, MISSING_CODE[8], dtype=np.uint8)
    out = dequantize(codes, float("nan"), float("nan"), 8)
    assert out.dtype == np.float32 and out.shape == (7,) and np.isnan(out).all()
