"""The validator's rules of the index-named compact_v1 layout and of compact_v2: one damaged copy
of a cellucid 0.9.2 / 0.9.4 fixture per rule, each reporting exactly that rule."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from cellucid_nb.format.validate_layouts import ALL_RULES, LAYOUT_RULES
from cellucid_nb.format.validator import RULES, format_problems, validate_export

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INDEX = FIXTURES / "cellucid_0_9_2" / "gzip_q8_u8_2d3d"
V2 = FIXTURES / "cellucid_0_9_4" / "gzip_q8_u8_multi"


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def d_index_repeated(p: Path) -> None:
    _edit(p / "obs_manifest.json", lambda m: m["_continuousFields"][1].__setitem__(0, 0))


def d_index_not_int(p: Path) -> None:
    _edit(p / "var_manifest.json", lambda m: m["fields"][3].__setitem__(0, "3"))


def d_placeholder(p: Path) -> None:
    # {ext} belongs to codesPathPattern only; here it happens to be filled with "" by no reader
    _edit(p / "obs_manifest.json", lambda m: m["_obsSchemas"]["continuous"].__setitem__(
        "pathPattern", "obs/{index}{ext}.values.u8.gz"))
    for i in (0, 1):
        shutil.copy(p / "obs" / f"{i}.values.u8.gz", p / "obs" / f"{i}{{ext}}.values.u8.gz")


def d_placeholder_twice(p: Path) -> None:
    _edit(p / "var_manifest.json", lambda m: m["_varSchema"].__setitem__("pathPattern", "var/{index}.values.u8.gz"
                                                                        .replace("var/", "var/{index}")))
    for f in list((p / "var").iterdir()):
        shutil.copy(f, p / "var" / (f.name.split(".")[0] + f.name))


def d_isize(p: Path) -> None:
    # Two gzip members: valid gzip that decodes to the right bytes, but the trailer's ISIZE
    # (the last member's length) is not the payload's length.
    path = p / "obs" / "0.values.u8.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:150], mtime=0) + gzip.compress(raw[150:], mtime=0))


def d_dtype_auto(p: Path) -> None:
    _edit(p / "dataset_identity.json", lambda m: m["export_settings"].__setitem__("obs_categorical_dtype", "auto"))


def d_key_patterns_over_index_tuples(p: Path) -> None:
    _edit(p / "var_manifest.json", lambda m: m["_varSchema"].__setitem__("pathPattern", "var/{key}.values.u8.gz"))


def d_v2_identity_over_v1(p: Path) -> None:
    _edit(p / "dataset_identity.json", lambda m: m.__setitem__("version", 3))


def d_embedding_file(p: Path) -> None:
    _edit(p / "dataset_identity.json", lambda m: m["embeddings"]["items"]["X_umap"].__setitem__(
        "file", "embeddings/0_2d.bin.gz"))  # X_tsne's file: index 1 expected


def d_embedding_default(p: Path) -> None:
    _edit(p / "dataset_identity.json", lambda m: m["embeddings"].__setitem__("default_dimension", 2))


def d_gene_name_sets(p: Path) -> None:
    _edit(p / "var_manifest.json", lambda m: m["gene_name_sets"][0].__setitem__("names", ["CD3E"]))


def d_v2_var_key(p: Path) -> None:
    _edit(p / "var_manifest.json", lambda m: m.__setitem__("var_gene_id_column", "index"))


def d_v2_centroids(p: Path) -> None:
    _edit(p / "obs_manifest.json", lambda m: m["_categoricalFields"][1][5].pop("X_tsne"))


def d_v2_vector_file(p: Path) -> None:
    shutil.copy(p / "vectors" / "0_2.bin.gz", p / "vectors" / "0_9.bin.gz")
    _edit(p / "dataset_identity.json", lambda m: m["vector_fields"]["fields"]["velocity"]["files"].__setitem__(
        "X_pca_3d", "vectors/0_9.bin.gz"))  # embedding index 2 expected


def d_v2_codes_out_of_range(p: Path) -> None:
    path = p / "obs" / "4.codes.u8.gz"  # phase: 3 categories
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[5] = 7
    path.write_bytes(gzip.compress(bytes(raw), mtime=0))


#: case -> (fixture, damage, the one rule it must report)
DAMAGES = {
    "index_repeated": (INDEX, d_index_repeated, "index_invalid"),
    "index_not_int": (INDEX, d_index_not_int, "index_invalid"),
    "placeholder": (INDEX, d_placeholder, "placeholder_invalid"),
    "placeholder_twice": (INDEX, d_placeholder_twice, "placeholder_invalid"),
    "isize": (INDEX, d_isize, "gzip_isize"),
    "dtype_auto": (INDEX, d_dtype_auto, "categorical_dtype_auto"),
    "key_patterns_over_index_tuples": (INDEX, d_key_patterns_over_index_tuples, "format_unknown"),
    "v2_identity_over_v1": (INDEX, d_v2_identity_over_v1, "format_unknown"),
    "v2_isize": (V2, d_isize, "gzip_isize"),
    "v2_dtype_auto": (V2, d_dtype_auto, "categorical_dtype_auto"),
    "v2_index_repeated": (V2, d_index_repeated, "index_invalid"),
    "embedding_file": (V2, d_embedding_file, "embedding_invalid"),
    "embedding_default": (V2, d_embedding_default, "embedding_invalid"),
    "gene_name_sets": (V2, d_gene_name_sets, "gene_name_sets_invalid"),
    "v2_var_key": (V2, d_v2_var_key, "manifest_unknown_key"),
    "v2_centroids": (V2, d_v2_centroids, "centroids_invalid"),
    "v2_vector_file": (V2, d_v2_vector_file, "path_invalid"),
    "v2_codes_out_of_range": (V2, d_v2_codes_out_of_range, "code_out_of_range"),
}


def test_every_layout_rule_has_a_damage_case() -> None:
    assert {rule for _, _, rule in DAMAGES.values()} >= set(LAYOUT_RULES)
    assert ALL_RULES == {**RULES, **LAYOUT_RULES} and not set(RULES) & set(LAYOUT_RULES)


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_damage_reports_exactly_its_rule(case: str, tmp_path: Path) -> None:
    source, damage, rule = DAMAGES[case]
    folder = shutil.copytree(source, tmp_path / "export")
    assert validate_export(folder) == []
    damage(folder)
    problems = validate_export(folder)
    # a wrong ISIZE comes from a second gzip member, which browsers refuse as well
    also = {"gzip_single_member"} if rule == "gzip_isize" else set()
    assert {p.rule for p in problems} == {rule} | also, format_problems(problems)
    assert all(p.detail and p.file for p in problems)


def test_index_layout_default_vector_field_is_the_writers_choice(tmp_path: Path) -> None:
    folder = shutil.copytree(INDEX, tmp_path / "two_fields")
    shutil.copy(folder / "vectors" / "0_2d.bin.gz", folder / "vectors" / "1_2d.bin.gz")

    def add_field(m: dict) -> None:
        block = m["vector_fields"]
        block["fields"]["zeta_umap"] = {"label": "zeta_umap", "available_dimensions": [2], "default_dimension": 2,
                                        "files": {"2d": "vectors/1_2d.bin.gz"}, "basis": "umap"}
        block["default_field"] = "zeta_umap"  # 0.9.2's vector_field_default: any field

    _edit(folder / "dataset_identity.json", add_field)
    assert validate_export(folder) == []
    _edit(folder / "dataset_identity.json", lambda m: m["vector_fields"].__setitem__("default_field", "nope"))
    assert {p.rule for p in validate_export(folder)} == {"vector_field_invalid"}


def _phase_categories(p: Path, n: int) -> None:
    extra = [f"extra {i}" for i in range(n - 3)]
    _edit(p / "obs_manifest.json", lambda m: m["_categoricalFields"][2][2].extend(extra))
    _edit(p / "dataset_identity.json", lambda m: m["obs_fields"][4].__setitem__("n_categories", n))


def test_index_layout_uint8_holds_255_categories(tmp_path: Path) -> None:
    for n, rules in ((255, set()), (256, {"codes_dtype_invalid"})):  # uint8: codes 0-254, missing 255 (0.9.2)
        folder = shutil.copytree(INDEX, tmp_path / f"many{n}")
        _phase_categories(folder, n)
        assert {p.rule for p in validate_export(folder)} == rules


def test_v2_uint32_codes_are_read_and_valid(tmp_path: Path) -> None:
    import numpy as np

    from cellucid_nb.format.reader import read_export

    folder = shutil.copytree(V2, tmp_path / "u32")
    path = folder / "obs" / "4.codes.u8.gz"
    codes = np.frombuffer(gzip.decompress(path.read_bytes()), dtype=np.uint8).astype("<u4")
    codes[codes == 255] = 4294967295
    (folder / "obs" / "4.codes.u32.gz").write_bytes(gzip.compress(codes.tobytes(), mtime=0))
    path.unlink()
    def to_u32(m: dict) -> None:
        m["_categoricalFields"][2][3:5] = ["uint32", 4294967295]

    _edit(folder / "obs_manifest.json", to_u32)
    assert validate_export(folder) == [], format_problems(validate_export(folder))
    column = read_export(folder).obs_column("phase")
    np.testing.assert_array_equal(column.cat.codes.to_numpy(), read_export(V2).obs_column("phase").cat.codes)


def test_mixed_formats_name_the_file_and_what_was_expected(tmp_path: Path) -> None:
    folder = shutil.copytree(INDEX, tmp_path / "mixed")
    d_v2_identity_over_v1(folder)
    (problem,) = validate_export(folder)
    assert problem.file == "obs_manifest.json"
    assert "_format 'compact_v1' but dataset_identity.json has version 3 (compact_v2)" in problem.detail


@pytest.mark.parametrize("junk", [None, [], {}, "x", 3, [[]], [[1]]])
@pytest.mark.parametrize("where", ["embeddings", "vector_fields", "_continuousFields", "fields", "gene_name_sets"])
def test_junk_never_crashes_the_v2_checks(junk, where: str, tmp_path: Path) -> None:
    folder = shutil.copytree(V2, tmp_path / "junk")
    name = {"embeddings": "dataset_identity.json", "vector_fields": "dataset_identity.json",
            "_continuousFields": "obs_manifest.json"}.get(where, "var_manifest.json")
    _edit(folder / name, lambda m: m.__setitem__(where, junk))
    problems = validate_export(folder)
    if where == "vector_fields" and junk is None:
        assert problems == []  # like an identity without vector fields
    else:
        assert problems and all(p.rule in ALL_RULES for p in problems)
