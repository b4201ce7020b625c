"""All three exports layouts: the cellucid 0.9.2 / 0.9.4 fixtures read back against the values their
writers were given, and ``prepare(layout="index")`` against ``layout="key"`` of the same inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.format.layouts import FormatError, detect_format
from cellucid_nb.format.reader import read_export
from cellucid_nb.format.validator import format_problems, validate_export
from cellucid_nb.viewer_protocol import build_meta, build_response

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V092 = sorted(p for p in (FIXTURES / "cellucid_0_9_2").iterdir() if p.is_dir())
V094 = sorted(p for p in (FIXTURES / "cellucid_0_9_4").iterdir() if p.is_dir())
CREATED_AT = "2026-01-01T00:00:00Z"
MAX_QUANT = {8: 254, 16: 65534}


def given(folder: Path) -> tuple[dict, dict]:
    """The arrays and facts the writer was given (saved beside the export by make_fixtures_092_094.py)."""
    with np.load(folder.parent / f"{folder.name}.inputs.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads((folder.parent / f"{folder.name}.inputs.json").read_text(encoding="utf-8"))


def normalised(values: np.ndarray) -> tuple[np.ndarray, float]:
    """The format's normalisation, computed here: bounding-box centre to 0, one scale 2 / largest range."""
    x = values.astype(np.float64).reshape(len(values), -1)
    lo, hi = x.min(0), x.max(0)
    scale = 2.0 / float((hi - lo).max())
    return (x - (lo + hi) / 2) * scale, scale


def assert_truncated(decoded: np.ndarray, original: np.ndarray, bits: int | None, lo: float, hi: float) -> None:
    """0.9.x quantizes by truncation: the decoded value lies at most one step below the original."""
    original = original.astype(np.float64)
    if bits is None:
        np.testing.assert_array_equal(decoded, original.astype(np.float32))
        return
    step = (hi - lo) / MAX_QUANT[bits]
    diff = original - decoded.astype(np.float64)
    assert diff.min() >= -1e-6 * max(abs(hi), 1) and diff.max() < step * (1 + 1e-6) + 1e-6 * max(abs(hi), 1)


@pytest.mark.parametrize("folder", V092 + V094, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_reads_back_what_its_writer_was_given(folder: Path) -> None:
    arrays, facts = given(folder)
    opts = facts["options"]
    reader = read_export(folder)
    v2 = folder.parent.name == "cellucid_0_9_4"
    assert reader.layout.name == ("compact_v2" if v2 else "compact_v1 (index-named)")
    assert reader.n_cells == facts["n_cells"]
    # points: every embedding, normalised as the format says
    embedded = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("embedding/")}
    items = {e.id: e for e in reader.embeddings}
    scales = {}
    for name, values in embedded.items():
        eid = name if v2 else f"{values.shape[1]}d"
        expected, scales[eid] = normalised(values)
        np.testing.assert_allclose(reader.points(items[eid].dim, eid), expected, atol=2e-7)
    assert sorted(items) == sorted(scales)
    if v2 and facts["embedding_defaults"]:
        assert reader.default_embeddings[2] == facts["embedding_defaults"]["2d"]
        np.testing.assert_array_equal(reader.points(2), reader.points(2, facts["embedding_defaults"]["2d"]))
    # obs: continuous values within the writer's quantization, categories and codes exactly
    assert reader.obs_keys == [k for k in facts["obs_order"] if f"obs_values/{k}" in arrays] + \
        [k for k in facts["obs_order"] if f"obs_codes/{k}" in arrays]
    for key in reader.obs_keys:
        info = reader.obs_field_info(key)
        column = reader.obs_column(key)
        if info.kind == "continuous":
            assert_truncated(column.to_numpy(), arrays[f"obs_values/{key}"], opts["obs_continuous_quantization"],
                             info.min, info.max)
        else:
            assert info.categories == facts["categories"][key]
            np.testing.assert_array_equal(column.cat.codes.to_numpy(), arrays[f"obs_codes/{key}"])
            assert info.missing_code == {"uint8": 255, "uint16": 65535}[opts["obs_categorical_dtype"]]
            assert sorted(info.centroids) == sorted(str(d) for d in reader.dimensions)
    # genes on demand, by id, in the given order
    assert reader.genes == facts["genes"]
    for i in (0, 7, len(facts["genes"]) - 1):
        gene = facts["genes"][i]
        lo, hi, bits = reader.gene_info(gene)
        assert_truncated(reader.gene(gene), arrays["expression"][:, i], bits, lo, hi)
    # edges: the upper triangle of the symmetric kNN graph, with its weights
    src, dst, weights = reader.edges()
    np.testing.assert_array_equal(src, arrays["edges_src"])
    np.testing.assert_array_equal(dst, arrays["edges_dst"])
    np.testing.assert_array_equal(weights, arrays["edges_weight"])
    # vector fields: the given vectors times their embedding's scale
    vectors = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("vector/")}
    assert vectors
    field = next(iter(reader.vector_fields))
    for name, values in vectors.items():
        dim = values.shape[1]
        eid = name.split("/", 1)[1] if v2 else f"{dim}d"
        got = reader.vector_field(field, dim, embedding=eid) if v2 else reader.vector_field(field, dim)
        np.testing.assert_allclose(got, values * scales[eid], rtol=1e-6, atol=1e-7)
    # the validator finds nothing wrong and names the format
    assert validate_export(folder) == [], format_problems(validate_export(folder))
    assert detect_format(folder) == reader.layout


@pytest.mark.parametrize("folder", [V092[0], V094[1]], ids=lambda p: p.parent.name)
def test_viewer_protocol_serves_index_and_v2_exports(folder: Path) -> None:
    reader = read_export(folder)
    meta = build_meta(reader)
    assert meta["dimensions"] == reader.dimensions and meta["genes"] == reader.genes
    assert {f["key"] for f in meta["obs"]} == set(reader.obs_keys)
    cat = next(f for f in meta["obs"] if f["key"] == "louvain")
    assert set(cat["centroids"]) == {str(d) for d in reader.dimensions}
    dim = reader.default_dimension
    header, blob = build_response(reader, "points", {"dim": dim})
    assert len(blob) >= reader.n_cells * dim * 4
    header, blob = build_response(reader, "gene", {"gene": reader.genes[3]})
    assert header and blob


def test_reading_writes_nothing(tmp_path: Path) -> None:
    folder = shutil.copytree(V094[1], tmp_path / "v2")
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}
    reader = read_export(folder)
    reader.obs, [reader.gene(g) for g in reader.genes], reader.edges()
    validate_export(folder)
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")} == before


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_mixed_or_unknown_formats_are_refused_naming_the_file(tmp_path: Path) -> None:
    index = shutil.copytree(V092[0], tmp_path / "index_with_key_patterns")

    def key_patterns(m: dict) -> None:
        for schema in m["_obsSchemas"].values():
            for k, v in schema.items():
                if isinstance(v, str):
                    schema[k] = v.replace("{index}", "{key}")

    _edit(index / "obs_manifest.json", key_patterns)
    with pytest.raises(FormatError, match=r"obs_manifest\.json: .*\{key\}.*integer index"):
        read_export(index)
    v2_over_v1 = shutil.copytree(V092[0], tmp_path / "v2_identity")
    _edit(v2_over_v1 / "dataset_identity.json", lambda m: m.update(version=3))
    with pytest.raises(FormatError, match=r"obs_manifest\.json: _format 'compact_v1' but dataset_identity\.json "
                                          r"has version 3"):
        read_export(v2_over_v1)
    unknown = shutil.copytree(V094[0], tmp_path / "unknown")
    _edit(unknown / "dataset_identity.json", lambda m: m.update(version=7))
    with pytest.raises(FormatError, match=r"dataset_identity\.json: version 7 .*expected 2 \(compact_v1\) or 3"):
        read_export(unknown)


# ----------------------------------------------------------------- writing the index layout


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory) -> dict[str, Path]:
    from make_fixtures import make_inputs

    root = tmp_path_factory.mktemp("layouts")
    inputs = make_inputs(n_cells=80, seed=3)
    out = {}
    for layout in ("key", "index"):
        out[layout] = root / layout
        prepare(out_dir=out[layout], created_at=CREATED_AT, dataset_name="layouts", compression=6, var_quantization=8,
                obs_continuous_quantization=16, layout=layout, n_workers=2, **inputs)
    out["inputs"] = inputs
    return out


def test_index_layout_has_the_key_layouts_values_and_payload_bytes(both_layouts) -> None:
    key, index = read_export(both_layouts["key"]), read_export(both_layouts["index"])
    assert (key.layout.naming, index.layout.naming) == ("key", "index")
    assert validate_export(both_layouts["index"]) == [], format_problems(validate_export(both_layouts["index"]))
    assert key.obs_keys == index.obs_keys and key.genes == index.genes and key.dimensions == index.dimensions
    for dim in key.dimensions:
        np.testing.assert_array_equal(key.points(dim), index.points(dim))
    for k in key.obs_keys:
        assert key.obs_field_info(k) == index.obs_field_info(k)
        assert key.obs_raw(k).tobytes() == index.obs_raw(k).tobytes()
        np.testing.assert_array_equal(key.obs_outliers_raw(k) if key.obs_outliers_raw(k) is not None else [],
                                      index.obs_outliers_raw(k) if index.obs_outliers_raw(k) is not None else [])
    for g in key.genes:
        assert key.gene_info(g) == index.gene_info(g)
        assert key.gene_raw(g).tobytes() == index.gene_raw(g).tobytes()
    for a, b in zip(key.edges(), index.edges(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert key.vector_fields.keys() == index.vector_fields.keys()
    for fid, entry in key.vector_fields.items():
        for dim in entry["available_dimensions"]:
            np.testing.assert_array_equal(key.vector_field(fid, dim), index.vector_field(fid, dim))
    # the files differ only in their names: the same compressed bytes, file for file
    def contents(folder: Path, sub: str) -> list[bytes]:
        return sorted(p.read_bytes() for p in (folder / sub).iterdir())

    for sub in ("obs", "var", "vectors", "connectivity"):
        assert contents(both_layouts["key"], sub) == contents(both_layouts["index"], sub)
    for name in ("points_1d.bin.gz", "points_2d.bin.gz", "points_3d.bin.gz"):
        assert (both_layouts["key"] / name).read_bytes() == (both_layouts["index"] / name).read_bytes()
    assert sorted(p.name for p in (both_layouts["index"] / "obs").iterdir())[:3] == \
        ["0.values.u16.gz", "1.values.u16.gz", "2.codes.u8.gz"]


def test_index_layout_follows_the_092_rules(both_layouts) -> None:
    folder = both_layouts["index"]
    obs = json.loads((folder / "obs_manifest.json").read_text())
    var = json.loads((folder / "var_manifest.json").read_text())
    ident = json.loads((folder / "dataset_identity.json").read_text())
    indices = [e[0] for e in obs["_continuousFields"] + obs["_categoricalFields"]]
    assert sorted(indices) == list(range(len(indices)))
    assert [e[1] for e in obs["_continuousFields"] + obs["_categoricalFields"]] == \
        [k for k in both_layouts["inputs"]["obs"].columns if k in ("score", "n_counts")] + \
        [k for k in both_layouts["inputs"]["obs"].columns if k not in ("score", "n_counts")]
    assert [e[0] for e in var["fields"]] == list(range(len(var["fields"])))
    assert obs["_obsSchemas"]["categorical"]["codesPathPattern"] == "obs/{index}.codes.{ext}.gz"
    assert var["_varSchema"]["pathPattern"] == "var/{index}.values.u8.gz"
    assert ident["export_settings"]["obs_categorical_dtype"] == "uint8"  # never "auto"
    files = {k: v["files"] for k, v in ident["vector_fields"]["fields"].items()}
    assert files == {"drift": {"2d": "vectors/0_2d.bin.gz"},
                     "velocity_umap": {"2d": "vectors/1_2d.bin.gz", "3d": "vectors/1_3d.bin.gz"}}


def test_index_layout_reexport_is_byte_identical(both_layouts, tmp_path: Path) -> None:
    again = tmp_path / "again"
    prepare(out_dir=again, created_at=CREATED_AT, dataset_name="layouts", compression=6, var_quantization=8, obs_continuous_quantization=16,
            layout="index", n_workers=1, **both_layouts["inputs"])
    first = {p.relative_to(both_layouts["index"]): p.read_bytes() for p in both_layouts["index"].rglob("*")
             if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first == second


def test_index_layout_round_trips_the_inputs(both_layouts) -> None:
    inputs = both_layouts["inputs"]
    reader = read_export(both_layouts["index"])
    score = inputs["obs"]["score"].to_numpy(np.float64)
    info = reader.obs_field_info("score")
    half_step = (info.max - info.min) / MAX_QUANT[16] / 2
    got = reader.obs_column("score").to_numpy(np.float64)
    finite = np.isfinite(score)
    assert np.isnan(got[~finite]).all()
    assert np.abs(got[finite] - score[finite]).max() <= half_step * (1 + 1e-6)
    expr = inputs["gene_expression"].toarray()
    for i, gene in enumerate(reader.genes):
        lo, hi, bits = reader.gene_info(gene)
        assert np.abs(reader.gene(gene) - expr[:, i]).max() <= (hi - lo) / MAX_QUANT[bits] / 2 * (1 + 1e-6)
    codes = inputs["obs"]["cell type"].cat.codes.to_numpy()
    np.testing.assert_array_equal(reader.obs_column("cell type").cat.codes.to_numpy(), codes)
    expected, _ = normalised(inputs["X_umap_2d"])
    np.testing.assert_allclose(reader.points(2), expected, atol=2e-7)


def test_bad_layout_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from make_fixtures import make_inputs

    out = tmp_path / "never"
    with pytest.raises(ValueError, match=r"layout='by_name' is not supported: expected one of \['index', 'key'\]"):
        prepare(out_dir=out, layout="by_name", **make_inputs(n_cells=20))
    assert not out.exists()


def test_merging_into_an_export_of_the_other_layout_is_refused(both_layouts, tmp_path: Path) -> None:
    existing = shutil.copytree(both_layouts["key"], tmp_path / "existing")
    before = sorted(p.name for p in existing.rglob("*"))
    with pytest.raises(ValueError, match=r"different settings \(layout: existing None, requested 'index'\)"):
        prepare(out_dir=existing, created_at=CREATED_AT, compression=6, var_quantization=8,
                obs_continuous_quantization=16, layout="index", **both_layouts["inputs"])
    assert sorted(p.name for p in existing.rglob("*")) == before


def test_cli_validate_prints_the_format(capsys: pytest.CaptureFixture[str]) -> None:
    from cellucid_nb.cli import main

    assert main(["validate", str(V094[0])]) == 0
    assert f"{V094[0]}: format compact_v2\n" in capsys.readouterr().out
    assert main(["validate", str(V092[0])]) == 0
    assert "format compact_v1 (index-named)" in capsys.readouterr().out


def _centroids(coords: np.ndarray, codes: np.ndarray, categories: list[str], q: float = 0.95,
               min_points: int = 10) -> list[dict]:
    """FORMAT.md's centroid rule, computed here: mean; drop cells beyond the q-quantile distance; mean again."""
    out = []
    for code, label in enumerate(categories):
        pts = coords[codes == code]
        if len(pts) < min_points:
            continue
        centre, used = pts.mean(0), len(pts)
        if len(pts) > min_points:
            dist = np.linalg.norm(pts - centre, axis=1)
            keep = dist <= np.quantile(dist, q)
            if keep.sum() >= min_points:
                centre, used = pts[keep].mean(0), int(keep.sum())
        out.append({"category": label, "position": centre, "n_points": used})
    return out


@pytest.mark.parametrize("folder", [V092[1], V094[0]], ids=lambda p: p.parent.name)
def test_centroids_per_embedding_follow_the_rule(folder: Path) -> None:
    arrays, facts = given(folder)
    reader = read_export(folder)
    v2 = folder.parent.name == "cellucid_0_9_4"
    embedded = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("embedding/")}
    for name, values in embedded.items():
        eid = name if v2 else f"{values.shape[1]}d"
        expected = _centroids(normalised(values)[0], arrays["obs_codes/louvain"], facts["categories"]["louvain"])
        got = reader.centroids("louvain", eid)
        assert [c["category"] for c in got] == [c["category"] for c in expected]
        assert [c["n_points"] for c in got] == [c["n_points"] for c in expected]
        np.testing.assert_allclose([c["position"] for c in got], [c["position"] for c in expected], atol=1e-9)
    dim = reader.default_dimension
    assert reader.obs_field_info("louvain").centroids[str(dim)] == \
        reader.centroids("louvain", reader.default_embeddings[dim])
    with pytest.raises(KeyError, match="no centroids of 'n_genes'"):
        reader.centroids("n_genes", reader.default_embeddings[dim])
