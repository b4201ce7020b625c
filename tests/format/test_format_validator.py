"""validate_export: a good export reports nothing; each damage reports exactly its rule."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from format_handmade import edit_json

from cellucid_nb.format.codecs import gzip_bytes
from cellucid_nb.format.validator import RULES, Problem, format_problems, validate_export

N = 50  # cells in the hand-made export


def _rewrite(path: Path, dtype: str, change) -> None:
    """Apply ``change`` to a raw payload array and write it back (same compression)."""
    gz = path.name.endswith(".gz")
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    arr = np.frombuffer(raw, dtype=dtype).copy()
    arr = change(arr)
    data = np.ascontiguousarray(arr).tobytes()
    path.write_bytes(gzip_bytes(data, 6) if gz else data)


def _set(arr, index, value):
    arr[index] = value
    return arr


# --- one damage per rule: (options of the good export, damage(path)) ---------------------------

def d_identity_missing(p):
    (p / "dataset_identity.json").unlink()


def d_invalid_json(p):
    (p / "obs_manifest.json").write_text("{not json")


def d_manifest_malformed(p):
    edit_json(p / "obs_manifest.json", lambda m: m.update(_continuousFields="oops"))


def d_identity_field_missing(p):
    edit_json(p / "dataset_identity.json", lambda m: m["stats"].pop("n_edges"))


def d_identity_invalid(p):
    edit_json(p / "dataset_identity.json", lambda m: m.update(version=3))


def d_identity_stats_mismatch(p):
    edit_json(p / "dataset_identity.json", lambda m: m["stats"].update(n_genes=99))


def d_identity_stats_mismatch_n_categories(p):
    edit_json(p / "dataset_identity.json", lambda m: m["obs_fields"][1].update(n_categories=4))


def d_identity_stats_mismatch_settings(p):
    edit_json(p / "dataset_identity.json", lambda m: m["export_settings"].update(var_quantization=16))


def d_vector_field_invalid_default(p):
    # with a second field "aaa", the default must still be velocity_umap
    def change(m):
        fields = m["vector_fields"]["fields"]
        fields["aaa"] = {**fields["velocity_umap"], "label": "Aaa",
                         "files": {k: v.replace("velocity_umap", "aaa") for k, v in fields["velocity_umap"]["files"].items()}}
        m["vector_fields"]["default_field"] = "aaa"
    edit_json(p / "dataset_identity.json", change)
    for f in (p / "vectors").iterdir():
        shutil.copy(f, p / "vectors" / f.name.replace("velocity_umap", "aaa"))


def d_manifest_unknown_key(p):
    edit_json(p / "obs_manifest.json", lambda m: m.update(colors={}))


def d_manifest_missing_key(p):
    edit_json(p / "var_manifest.json", lambda m: m.pop("var_gene_id_column"))


def d_manifest_bad_value(p):
    edit_json(p / "obs_manifest.json", lambda m: m.update(latent_key="X_pca"))


def d_schema_keys_mismatch(p):
    edit_json(p / "obs_manifest.json", lambda m: m["_obsSchemas"].update(extra={}))


def d_schema_invalid(p):
    edit_json(p / "obs_manifest.json", lambda m: m["_obsSchemas"]["continuous"].update(pathPattern="obs/score.values.u8"))


def d_quantization_inconsistent(p):
    edit_json(p / "var_manifest.json", lambda m: m.update(quantization=16))


def d_field_tuple_shape(p):
    edit_json(p / "obs_manifest.json", lambda m: m.update(_continuousFields=[["score"]]))


def d_key_not_string(p):
    def change(m):
        m["fields"][0][0] = 5
    edit_json(p / "var_manifest.json", change)
    (p / "var/CD3E.values.u8").rename(p / "var/5.values.u8")


def d_duplicate_key(p):
    edit_json(p / "var_manifest.json", lambda m: m["fields"].append(list(m["fields"][0])))
    edit_json(p / "dataset_identity.json", lambda m: m["stats"].update(n_genes=4))


def d_name_collision(p):
    # "HLA-A_B" and the existing "HLA-A/B" both become var/HLA-A_B.values.u8
    edit_json(p / "var_manifest.json", lambda m: m["fields"].append(["HLA-A_B", *m["fields"][1][1:]]))
    edit_json(p / "dataset_identity.json", lambda m: m["stats"].update(n_genes=4))


def d_name_collision_case(p):
    edit_json(p / "var_manifest.json", lambda m: m["fields"].append(["cd3e", *m["fields"][0][1:]]))
    shutil.copy(p / "var/CD3E.values.u8", p / "var/cd3e.values.u8")
    edit_json(p / "dataset_identity.json", lambda m: m["stats"].update(n_genes=4))


def d_range_invalid(p):
    def change(m):
        m["fields"][0][2] = m["fields"][0][1]
    edit_json(p / "var_manifest.json", change)


def d_categories_not_unique(p):
    def change(m):
        m["_categoricalFields"][0][1] = ["B cell", "NK", "NK"]
        for items in m["_categoricalFields"][0][4].values():  # keep the centroids consistent
            items[:] = [c for c in items if c["category"] != "T cell"]
    edit_json(p / "obs_manifest.json", change)


def d_codes_dtype_invalid(p):
    def change(m):
        m["_categoricalFields"][0][3] = 254
    edit_json(p / "obs_manifest.json", change)


def d_centroids_invalid(p):
    edit_json(p / "obs_manifest.json", lambda m: m["_categoricalFields"][0][4].pop("2"))


def d_compression_mismatch(p):
    # an uncompressed export naming a gzip embedding file
    (p / "points_2d.bin.gz").write_bytes(gzip_bytes((p / "points_2d.bin").read_bytes(), 6))
    (p / "points_2d.bin").unlink()
    edit_json(p / "dataset_identity.json", lambda m: m["embeddings"]["files"].update({"2d": "points_2d.bin.gz"}))


def d_path_invalid(p):
    shutil.copy(p / "vectors/velocity_umap_2d.bin", p.parent / "outside.bin")
    edit_json(p / "dataset_identity.json",
              lambda m: m["vector_fields"]["fields"]["velocity_umap"]["files"].update({"2d": "../outside.bin"}))


def d_file_missing(p):
    (p / "var/CD3E.values.u8").unlink()


def d_payload_size(p):
    path = p / "obs/score.values.u8"
    path.write_bytes(path.read_bytes()[:-1])


def d_gzip_invalid(p):
    path = p / "var/HLA-A_B.values.u8.gz"
    path.write_bytes(path.read_bytes()[:-10])


def d_gzip_header(p):
    path = p / "var/HLA-A_B.values.u8.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), mtime=1234))


def d_gzip_single_member(p):
    """Two gzip members (legal gzip, same bytes inflated): browsers' DecompressionStream refuses the second."""
    path = p / "var/HLA-A_B.values.u8.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:7], mtime=0) + gzip.compress(raw[7:], mtime=0))


def d_gzip_single_member_padding(p):
    """Zero padding after the stream of a payload the validator reads for its content (obs)."""
    path = p / "obs/score.values.u8.gz"
    path.write_bytes(path.read_bytes() + bytes(16))


def d_points_not_finite(p):
    _rewrite(p / "points_2d.bin", "<f4", lambda a: _set(a, 3, np.nan))


def d_points_out_of_range(p):
    _rewrite(p / "points_3d.bin", "<f4", lambda a: a * 1.5)


def d_code_out_of_range(p):
    _rewrite(p / "obs/cell_type.codes.u8", "u1", lambda a: _set(a, 0, 7))


def d_outlier_out_of_range(p):
    _rewrite(p / "obs/cell_type.outliers.f32", "<f4", lambda a: _set(a, 0, 1.5))


def d_edge_src_not_below_dst(p):
    def swap_last(_):
        src = np.fromfile(p / "connectivity/edges.src.bin", "<u2")
        dst = np.fromfile(p / "connectivity/edges.dst.bin", "<u2")
        src[-1], dst[-1] = dst[-1], src[-1]
        src.tofile(p / "connectivity/edges.src.bin")
        dst.tofile(p / "connectivity/edges.dst.bin")
    swap_last(None)


def d_edges_not_sorted(p):
    _rewrite(p / "connectivity/edges.dst.bin", "<u2", lambda a: a[[1, 0, *range(2, a.size)]])


def d_edges_duplicate(p):
    _rewrite(p / "connectivity/edges.dst.bin", "<u2", lambda a: _set(a, 1, a[0]))


def d_edge_index_out_of_range(p):
    _rewrite(p / "connectivity/edges.dst.bin", "<u2", lambda a: _set(a, -1, N))


def d_edge_weight_invalid(p):
    _rewrite(p / "connectivity/edges.weights.f64.bin", "<f8", lambda a: _set(a, 0, -1.0))


def d_max_neighbors_mismatch(p):
    edit_json(p / "connectivity_manifest.json", lambda m: m.update(max_neighbors=m["max_neighbors"] + 1))


def d_index_dtype_invalid(p):
    for side in ("src", "dst"):
        path = p / f"connectivity/edges.{side}.bin"
        np.fromfile(path, "<u2").astype("<u4").tofile(path)
    edit_json(p / "connectivity_manifest.json", lambda m: m.update(index_dtype="uint32", index_bytes=4))


def d_vector_field_invalid(p):
    edit_json(p / "dataset_identity.json", lambda m: m["vector_fields"].update(default_field="nope"))


def d_vector_basis_missing(p):
    edit_json(p / "dataset_identity.json", lambda m: m["vector_fields"]["fields"]["velocity_umap"].pop("basis"))


def d_sidecar_mismatch(p):
    (p / "cellucid_nb.json").write_text(json.dumps({"files": {"points_2d.bin": {"bytes": 1, "sha256": "0"}}}))


def _as_root(p):
    """Turn the export folder ``p`` into an exports root holding it as ``ds/``."""
    inner = p / "ds"
    inner.mkdir()
    for child in list(p.iterdir()):
        if child != inner:
            shutil.move(str(child), inner / child.name)
    return inner


def d_datasets_invalid(p):
    _as_root(p)
    (p / "datasets.json").write_text(json.dumps({"version": 2, "default": "handmade",
                                                 "datasets": [{"id": "handmade", "path": "ds/", "name": "x"}]}))


def d_datasets_duplicate_id(p):
    _as_root(p)
    entry = {"id": "handmade", "path": "ds/", "name": "x"}
    (p / "datasets.json").write_text(json.dumps({"version": 1, "default": "handmade", "datasets": [entry, entry]}))


def d_datasets_path_missing(p):
    _as_root(p)
    (p / "datasets.json").write_text(json.dumps({"version": 1, "default": "handmade", "datasets": [
        {"id": "handmade", "path": "ds/", "name": "x"}, {"id": "gone", "path": "gone/", "name": "y"}]}))


def d_symlink(p):
    outside = p.parent / "outside.bin"
    (p / "obs" / "score.values.u8").rename(outside)
    (p / "obs" / "score.values.u8").symlink_to(outside)


def d_leftover_folder(p):
    (p.parent / f".{p.name}.staging-999999999-abcdefgh").mkdir()


# rule -> (good-export options, damage); every rule of RULES must appear here
DAMAGES = {
    name[2:]: (fn, {}) for name, fn in list(globals().items()) if name.startswith("d_") and callable(fn)
}
DAMAGES["name_collision_case"] = (d_name_collision_case, {})
DAMAGES["gzip_invalid"] = (d_gzip_invalid, {"compression": 6})
DAMAGES["gzip_header"] = (d_gzip_header, {"compression": 6})
DAMAGES["gzip_single_member"] = (d_gzip_single_member, {"compression": 6})
DAMAGES["gzip_single_member_padding"] = (d_gzip_single_member_padding, {"compression": 6})
DAMAGES["outlier_out_of_range"] = (d_outlier_out_of_range, {"bits": None})
ALIASES = {"name_collision_case": "name_collision", "gzip_single_member_padding": "gzip_single_member", "identity_stats_mismatch_n_categories": "identity_stats_mismatch",
           "identity_stats_mismatch_settings": "identity_stats_mismatch",
           "vector_field_invalid_default": "vector_field_invalid"}
EXPECTED_RULE = {case: ALIASES.get(case, case) for case in DAMAGES}


def test_every_rule_has_a_damage_fixture():
    assert set(EXPECTED_RULE.values()) == set(RULES)


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_damage_reports_exactly_its_rule(case, good_export):
    damage, options = DAMAGES[case]
    path = good_export(**options)
    assert validate_export(path) == []  # the starting point is clean
    damage(path)
    problems = validate_export(path)
    assert {p.rule for p in problems} == {EXPECTED_RULE[case]}, format_problems(problems)
    assert all(isinstance(p, Problem) and p.detail and p.file for p in problems)


@pytest.mark.parametrize("compression", [None, 1, 9])
@pytest.mark.parametrize("bits", [None, 8, 16])
@pytest.mark.parametrize("codes_dtype", ["uint8", "uint16"])
def test_good_handmade_exports_report_nothing(handmade_cache, compression, bits, codes_dtype):
    path, _ = handmade_cache(compression=compression, bits=bits, codes_dtype=codes_dtype)
    assert validate_export(path) == []


def test_problem_names_file_relative_to_export(good_export):
    path = good_export()
    d_payload_size(path)
    (problem,) = validate_export(path)
    assert problem.file == "obs/score.values.u8"
    assert "49 bytes, expected 50" in problem.detail


def test_problems_in_an_exports_root_are_prefixed_with_the_dataset_folder(good_export):
    path = good_export()
    _as_root(path)
    (path / "datasets.json").write_text(json.dumps({"version": 1, "default": "handmade",
                                                    "datasets": [{"id": "handmade", "path": "ds/", "name": "x"}]}))
    assert validate_export(path) == []
    d_file_missing(path / "ds")
    assert [(p.file, p.rule) for p in validate_export(path)] == [("ds/var/CD3E.values.u8", "file_missing")]


def test_problem_is_frozen():
    problem = Problem("a", "file_missing", "b")
    with pytest.raises(AttributeError):
        problem.rule = "other"  # type: ignore[misc]


def test_format_problems_lists_each_problem_and_a_count():
    text = format_problems([Problem("x.bin", "file_missing", "gone"), Problem("y.bin", "payload_size", "short")])
    lines = text.splitlines()
    assert lines[0] == "x.bin: [file_missing] gone"
    assert lines[1] == "y.bin: [payload_size] short"
    assert lines[2].startswith("2 problems")
    assert "no problems" in format_problems([])


def test_gzip_header_problems_are_collapsed_to_one(good_export):
    path = good_export(compression=6)
    for gene_file in sorted((path / "var").iterdir()):
        gene_file.write_bytes(gzip.compress(gzip.decompress(gene_file.read_bytes()), mtime=99))
    problems = validate_export(path)
    assert [p.rule for p in problems] == ["gzip_header"]
    assert "and 2 more" in problems[0].detail


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        validate_export(tmp_path / "nothere")


# --- robustness: junk anywhere in a manifest is reported, never a crash ---------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _leaves(node, path=()):
    """Every (path, value) of a JSON tree, inner nodes included."""
    yield path, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from _leaves(child, (*path, key))


JUNK = [None, -1, 0, 2**40, 1e300, float("nan"), "x", "../../etc", [], {}, [1, "a"], {"a": 1}, True]
MANIFESTS = ["dataset_identity.json", "obs_manifest.json", "var_manifest.json", "connectivity_manifest.json"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=st.sampled_from(MANIFESTS), pick=st.integers(0, 10_000), junk=st.sampled_from(JUNK),
       delete=st.booleans())
def test_junk_in_manifests_never_crashes(handmade_cache, tmp_path_factory, manifest, pick, junk, delete):
    src, _ = handmade_cache()
    path = tmp_path_factory.mktemp("junk") / "e"
    shutil.copytree(src, path)
    data = json.loads((path / manifest).read_text())
    leaves = [p for p, _ in _leaves(data) if p]
    target = leaves[pick % len(leaves)]
    parent = data
    for key in target[:-1]:
        parent = parent[key]
    if delete:
        del parent[target[-1]]
    else:
        parent[target[-1]] = junk
    (path / manifest).write_text(json.dumps(data))
    problems = validate_export(path)
    assert isinstance(problems, list) and all(p.rule in RULES for p in problems)
    if delete and len(target) == 1 and target[0] not in ("vector_fields", "source"):  # a required key
        assert problems, f"deleting {target} of {manifest} went unnoticed"


@pytest.mark.parametrize("key", ["crc32", "sha256"])
def test_sidecar_checksums_of_both_generations_are_verified(key, tmp_path):
    """New sidecars list CRC-32s, earlier cellucid_nb sidecars SHA-256s: a damaged file is caught either way."""
    import hashlib
    import zlib

    from cellucid_nb.exporter.prepare import prepare

    rng = np.random.default_rng(0)
    out = prepare(
        latent_space=rng.normal(size=(50, 3)), obs=pd.DataFrame({"c": pd.Categorical(["a", "b"] * 25)}),
        X_umap_2d=rng.normal(size=(50, 2)), out_dir=tmp_path / "e", compression=6,
    ).path
    sidecar_path = out / "cellucid_nb.json"
    sidecar = json.loads(sidecar_path.read_text())
    for rel, info in sidecar["files"].items():
        data = (out / rel).read_bytes()
        info.pop("crc32")
        info[key] = f"{zlib.crc32(data):08x}" if key == "crc32" else hashlib.sha256(data).hexdigest()
    sidecar_path.write_text(json.dumps(sidecar))
    assert validate_export(out, checksums=True) == []
    target = out / "points_2d.bin.gz"
    damaged = bytearray(target.read_bytes())
    damaged[-9] ^= 0xFF  # same size, one byte flipped
    target.write_bytes(bytes(damaged))
    rules = {(p.file, p.rule) for p in validate_export(out, checksums=True)}
    assert ("cellucid_nb.json", "sidecar_mismatch") in rules
