"""Damaged and hostile exports: gzip bombs, lying counts, deep JSON, symlinks. Findings, never crashes or gigabytes."""

from __future__ import annotations

import gzip
import json
import resource
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from cellucid_nb.cli import main as cli_main
from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.format.payloads import MAX_DEFLATE_RATIO, PayloadSizeError, inflated_size, max_gzip_size, read_payload
from cellucid_nb.format.reader import read_export
from cellucid_nb.format.safe_io import SymlinkError, parse_json
from cellucid_nb.format.validator import validate_export
from cellucid_nb.viewer_protocol import ViewerBackend, build_response

N = 64
GENE = "var/G0.values.u8.gz"


def _export(folder: Path, compression: int | None = 6) -> Path:
    rng = np.random.default_rng(0)
    x = sparse.random(N, 3, density=0.5, format="csr", random_state=0, dtype=np.float32)
    prepare(
        out_dir=folder, latent_space=rng.normal(size=(N, 3)), X_umap_2d=rng.normal(size=(N, 2)),
        obs=pd.DataFrame({"score": rng.normal(size=N), "cluster": pd.Categorical(rng.choice(["a", "b"], N))}),
        var=pd.DataFrame(index=["G0", "G1", "G2"]), gene_expression=x,
        connectivities=sparse.random(N, N, density=0.05, format="csr", random_state=1),
        compression=compression, var_quantization=8, created_at="2024-01-01T00:00:00Z",
    )
    return folder


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("clean") / "export")


@pytest.fixture
def export(clean: Path, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    shutil.copytree(clean, out)
    return out


def _bomb(n_bytes: int) -> bytes:
    """A small gzip member that inflates to ``n_bytes`` zeros (streamed: never held whole)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [comp.compress(block) for _ in range(n_bytes >> 20)]
    return b"".join(parts) + comp.compress(bytes(n_bytes & ((1 << 20) - 1))) + comp.flush()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cli(path: Path, capsys) -> tuple[int, str]:
    code = cli_main(["validate", str(path)])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.out


# -- gzip bombs --------------------------------------------------------------------------------------
def test_gzip_bomb_gene_is_refused_without_inflating_it(export: Path, capsys) -> None:
    bomb = _bomb(48 << 20)  # 48 MB of zeros in ~47 kB: small enough to pass the compressed-size bound
    assert len(bomb) < max_gzip_size(N)
    (export / GENE).write_bytes(bomb)
    before = _peak_rss_mb()
    reader = read_export(export)
    with pytest.raises(PayloadSizeError, match=rf"G0.values.u8.gz: inflates to more than the {N} bytes the manifests imply"):
        reader.gene("G0")
    backend_msgs: list = []
    backend = ViewerBackend(export, send=lambda c, b: backend_msgs.append(c))
    backend.handle({"type": "viewer:request", "id": 1, "kind": "gene", "args": {"gene": "G0"}})
    assert backend_msgs[-1]["type"] == "viewer:error" and "inflates to more than" in backend_msgs[-1]["message"]
    problems = {(p.file, p.rule): p.detail for p in validate_export(export)}
    assert set(problems) == {(GENE, "payload_size"), ("cellucid_nb.json", "sidecar_mismatch")}  # sidecar: other size
    assert problems[(GENE, "payload_size")].startswith(f"{N} cells x uint8: inflates to more than the expected {N} bytes")
    code, out = _cli(export, capsys)
    assert code == 1 and "payload_size" in out
    assert _peak_rss_mb() - before < 40  # never near the 48 MB the bomb holds


def test_gzip_bomb_points_is_refused(export: Path) -> None:
    (export / "points_2d.bin.gz").write_bytes(_bomb(48 << 20))
    with pytest.raises(PayloadSizeError, match=r"points_2d.bin.gz: inflates to more than the 512 bytes"):
        read_export(export).points(2)
    with pytest.raises(PayloadSizeError):
        build_response(read_export(export), "points", {"dim": 2})
    assert sorted(p.rule for p in validate_export(export)) == ["payload_size", "sidecar_mismatch"]


def test_inflate_bound_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(bytes(100)))
    assert read_payload(path, "u1", 100).size == 100
    with pytest.raises(PayloadSizeError, match=r"inflates to more than the 99 bytes"):
        read_payload(path, "u1", 99)
    with pytest.raises(PayloadSizeError, match=r"inflated payload has 100 bytes, expected 101"):
        read_payload(path, "u1", 101)
    path.write_bytes(gzip.compress(bytes(50)) + gzip.compress(bytes(60)))  # two members: the bound spans both
    with pytest.raises(PayloadSizeError, match=r"more than the 100 bytes"):
        read_payload(path, "u1", 100)
    assert inflated_size(path, limit=10) > 10 and inflated_size(path) == 110


# -- declared counts that do not match the files ------------------------------------------------------------
@pytest.mark.parametrize("n_cells", [10**12, 2**62])
def test_huge_declared_cell_count_uncompressed(n_cells: int, tmp_path: Path, capsys) -> None:
    out = _export(tmp_path / "plain", compression=None)
    identity = json.loads((out / "dataset_identity.json").read_text())
    identity["stats"]["n_cells"] = n_cells
    (out / "dataset_identity.json").write_text(json.dumps(identity))
    before = _peak_rss_mb()
    problems = validate_export(out)
    assert any(p.file == "points_2d.bin" and p.rule == "payload_size" for p in problems)
    assert _cli(out, capsys)[0] == 1
    with pytest.raises(PayloadSizeError, match=rf"payload has {N * 2 * 4} bytes, expected {n_cells * 8}"):
        read_export(out).points(2)
    assert _peak_rss_mb() - before < 100


@pytest.mark.parametrize("n_cells", [10**12, 2**62])
def test_huge_declared_cell_count_is_a_finding_not_an_allocation(n_cells: int, export: Path, capsys) -> None:
    identity = json.loads((export / "dataset_identity.json").read_text())
    identity["stats"]["n_cells"] = n_cells
    (export / "dataset_identity.json").write_text(json.dumps(identity))
    problems = validate_export(export)
    assert {"payload_size"} <= {p.rule for p in problems}
    assert any(p.file == "points_2d.bin.gz" and "cannot inflate to" in p.detail for p in problems)
    code, _out = _cli(export, capsys)
    assert code == 1
    with pytest.raises(PayloadSizeError, match=r"compressed bytes cannot inflate to the"):
        read_export(export).gene("G0")


def test_huge_declared_count_in_an_uncompressed_export(tmp_path: Path) -> None:
    out = _export(tmp_path / "plain", compression=None)
    conn = json.loads((out / "connectivity_manifest.json").read_text())
    conn["n_edges"] = 10**13
    (out / "connectivity_manifest.json").write_text(json.dumps(conn))
    problems = validate_export(out)
    assert {p.rule for p in problems} >= {"payload_size"}
    with pytest.raises(PayloadSizeError, match=r"payload has \d+ bytes, expected 20000000000000"):
        read_export(out).edges()


@pytest.mark.parametrize("compression", [None, 6])
def test_negative_declared_count_is_a_clear_error(compression, tmp_path: Path) -> None:
    out = _export(tmp_path / "e", compression=compression)
    identity = json.loads((out / "dataset_identity.json").read_text())
    identity["stats"]["n_cells"] = -5
    (out / "dataset_identity.json").write_text(json.dumps(identity))
    with pytest.raises(PayloadSizeError, match=r"declare -10 values, expected a count >= 0"):
        read_export(out).points(2)
    assert any(p.rule == "identity_invalid" and "n_cells -5" in p.detail for p in validate_export(out))


def test_big_bomb_is_refused_by_its_compressed_size(export: Path) -> None:
    (export / GENE).write_bytes(_bomb(300 << 20))  # 300 MB of zeros in ~300 kB
    with pytest.raises(PayloadSizeError, match=r"305\d{3} compressed bytes, more than the 65600 that 64 values"):
        read_export(export).gene("G0")
    assert {p.rule for p in validate_export(export)} == {"payload_size", "sidecar_mismatch"}


def test_oversized_compressed_payload_is_refused_before_reading(export: Path) -> None:
    with open(export / GENE, "ab") as handle:  # valid gzip, then 2 MB of zero padding
        handle.write(bytes(2 << 20))
    with pytest.raises(PayloadSizeError, match=rf"compressed bytes, more than the {max_gzip_size(N)} that {N} values"):
        read_export(export).gene("G0")


@pytest.mark.parametrize("n", [0, 1, 1000, 1 << 20])
def test_max_gzip_size_holds_for_incompressible_data(n: int) -> None:
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    for level in (1, 6, 9):
        assert len(gzip.compress(data, level, mtime=0)) <= max_gzip_size(n)


def test_ratio_bound_is_deflates_limit() -> None:
    data = bytes(10 << 20)
    assert len(data) <= len(zlib.compress(data, 9)) * MAX_DEFLATE_RATIO


# -- JSON nested 100,000 deep ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["obs_manifest.json", "dataset_identity.json", "var_manifest.json", "cellucid_nb.json"])
def test_deeply_nested_json_is_a_finding(name: str, export: Path, capsys) -> None:
    (export / name).write_text("[" * 100_000 + "]" * 100_000)
    problems = validate_export(export)
    assert any(p.rule == "invalid_json" and p.file == name and "nested" in p.detail for p in problems)
    code, _out = _cli(export, capsys)
    assert code == 1
    if name != "cellucid_nb.json":
        with pytest.raises(ValueError, match=rf"{name} is nested too deeply|{name} is nested more than"):
            reader = read_export(export)
            _ = reader.var_manifest  # loaded lazily
            reader.genes  # noqa: B018


def test_moderately_deep_json_is_refused_before_anything_recurses(export: Path) -> None:
    ident = json.loads((export / "dataset_identity.json").read_text())
    deep: list = []
    for _ in range(900):  # parses in Python, but printing or walking it would recurse 900 levels
        deep = [deep]
    ident["description"] = deep
    (export / "dataset_identity.json").write_text(json.dumps(ident))
    with pytest.raises(ValueError, match=r"nested more than 64 levels"):
        read_export(export)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"genes": ["[" * 500, "{" * 500]})
    assert parse_json(text, "x.json") == {"genes": ["[" * 500, "{" * 500]}


# -- symbolic links --------------------------------------------------------------------------------------------
def _secret(tmp_path: Path, data: bytes) -> Path:
    secret = tmp_path / "outside" / "secret.bin"
    secret.parent.mkdir()
    secret.write_bytes(data)
    return secret


def test_payload_symlink_out_of_the_export_is_never_followed(export: Path, tmp_path: Path, capsys) -> None:
    target = export / GENE
    secret = _secret(tmp_path, target.read_bytes())  # a valid payload: only the link is wrong
    target.unlink()
    target.symlink_to(secret)
    with pytest.raises(SymlinkError, match=r"symbolic link .*exports are read without following links"):
        read_export(export).gene("G0")
    sent: list = []
    ViewerBackend(export, send=lambda c, b: sent.append((c, b))).handle(
        {"type": "viewer:request", "id": "g", "kind": "gene", "args": {"gene": "G0"}})
    assert [c["type"] for c, _ in sent] == ["viewer:error"] and "symbolic link" in sent[0][0]["message"]
    problems = validate_export(export, checksums=True)
    assert [(p.file, p.rule) for p in problems] == [(GENE, "symlink")]
    code, out = _cli(export, capsys)
    assert code == 1 and "symlink" in out


def test_obs_folder_symlink_is_reported_and_refused(export: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    shutil.move(export / "obs", moved)
    (export / "obs").symlink_to(moved)
    with pytest.raises(SymlinkError, match=r"reached through the symbolic link .*obs"):
        read_export(export).obs_column("score")
    problems = validate_export(export)
    assert [(p.file, p.rule) for p in problems] == [("obs", "symlink")]


def test_manifest_symlink_is_refused_by_the_reader(export: Path, tmp_path: Path) -> None:
    secret = _secret(tmp_path, (export / "obs_manifest.json").read_bytes())
    (export / "obs_manifest.json").unlink()
    (export / "obs_manifest.json").symlink_to(secret)
    with pytest.raises(SymlinkError):
        read_export(export)
    assert ("obs_manifest.json", "symlink") in [(p.file, p.rule) for p in validate_export(export)]


def test_every_symlink_is_reported_even_unreferenced(export: Path, tmp_path: Path) -> None:
    (export / "extra").symlink_to(tmp_path)
    (export / "var" / "loop").symlink_to(export / "var")
    problems = validate_export(export)
    assert sorted((p.file, p.rule) for p in problems) == [("extra", "symlink"), ("var/loop", "symlink")]


def test_export_folder_reached_through_a_link_is_fine(clean: Path, tmp_path: Path) -> None:
    link = tmp_path / "via-link"
    link.symlink_to(clean)
    assert validate_export(link) == []
    assert read_export(link).gene("G0").shape == (N,)


def test_sidecar_listing_a_path_outside_is_reported(export: Path) -> None:
    side = json.loads((export / "cellucid_nb.json").read_text())
    side["files"]["../../etc/passwd"] = {"bytes": 1, "crc32": "00000000"}
    (export / "cellucid_nb.json").write_text(json.dumps(side))
    problems = validate_export(export, checksums=True)
    assert [p.rule for p in problems] == ["sidecar_mismatch"] and "outside" in problems[0].detail


def test_datasets_root_with_a_linked_dataset_folder(clean: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "ds").symlink_to(clean)
    (root / "datasets.json").write_text(json.dumps(
        {"version": 1, "default": "a", "datasets": [{"id": "a", "path": "ds/", "name": "A"}]}))
    problems = validate_export(root)
    assert [(p.file, p.rule) for p in problems] == [("ds", "symlink")]


# -- manifests another reader would read differently, or that hold the wrong types ------------------------------
def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("name", "damage", "message"), [
    ("obs_manifest.json", lambda t: t.replace('{"_format"', '{"n_points": 99999999999, "_format"', 1),
     "holds the key 'n_points' more than once"),
    ("dataset_identity.json", lambda t: t.replace('"stats": {', '"stats": {"n_cells": 1, ', 1),
     "holds the key 'n_cells' more than once"),
    ("obs_manifest.json", lambda t: "\ufeff" + t, "Unexpected UTF-8 BOM"),
])
def test_duplicate_keys_and_a_bom_are_findings_and_clear_errors(export: Path, name, damage, message, capsys) -> None:
    path = export / name
    path.write_text(damage(path.read_text(encoding="utf-8")), encoding="utf-8")
    before = _tree(export)
    problems = validate_export(export)
    assert any(p.rule == "invalid_json" and p.file == name and message in p.detail for p in problems), problems
    with pytest.raises(ValueError, match=message):
        reader = read_export(export)
        reader.obs_keys  # noqa: B018
    assert _cli(export, capsys)[0] == 1
    assert _tree(export) == before


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_a_manifest_that_is_not_utf8_is_a_clear_error(export: Path, encoding: str, capsys) -> None:
    path = export / "obs_manifest.json"
    path.write_bytes(path.read_text(encoding="utf-8").replace('"score"', '"sc\u00f6re"').encode(encoding))
    problems = validate_export(export)
    assert any(p.rule == "invalid_json" and p.file == "obs_manifest.json" and "not UTF-8" in p.detail for p in problems)
    with pytest.raises(ValueError, match=r"obs_manifest.json is not UTF-8 text \(byte 0x"):
        read_export(export).obs_keys  # noqa: B018
    assert _cli(export, capsys)[0] == 1


@pytest.mark.parametrize(("field", "index", "value", "message"), [
    ("_continuousFields", 1, "zero", r"'score' has min 'zero', expected a number"),
    ("_continuousFields", 2, None, r"'score' has max None, expected a number"),
    ("_continuousFields", 1, True, r"'score' has min True, expected a number"),
    ("_categoricalFields", 1, "ab", r"'cluster' has categories 'ab', expected a list"),
])
def test_manifest_values_of_the_wrong_type_are_named(export: Path, field, index, value, message) -> None:
    path = export / "obs_manifest.json"
    manifest = json.loads(path.read_text())
    entry = manifest[field][0]
    if field == "_continuousFields":  # an unquantized field: min/max are optional, given here
        entry[1:] = [0.0, 1.0]
    entry[index] = value
    path.write_text(json.dumps(manifest))
    assert validate_export(export)  # a finding
    with pytest.raises(ValueError, match=message):
        read_export(export).obs_keys  # noqa: B018


def test_gene_min_max_of_the_wrong_type_is_named(export: Path) -> None:
    path = export / "var_manifest.json"
    manifest = json.loads(path.read_text())
    manifest["fields"][0][1] = "low"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"var_manifest.json: 'G0' has min 'low', expected a number"):
        read_export(export).gene("G0")


def test_a_var_manifest_naming_far_more_genes_than_files_is_one_finding(export: Path, capsys) -> None:
    path = export / "var_manifest.json"
    manifest = json.loads(path.read_text())
    manifest["fields"] = [[f"G{i}", 0.0, 1.0] for i in range(200_000)]  # the folder holds 3 gene files
    path.write_text(json.dumps(manifest))
    before = _tree(export)
    problems = [p for p in validate_export(export) if p.file == "var_manifest.json"]
    assert [p.rule for p in problems if p.rule == "file_missing"] == ["file_missing"], problems[:5]
    assert "names 200000 genes but var/ holds 3 file(s)" in problems[0].detail
    assert len(validate_export(export)) < 10
    assert _cli(export, capsys)[0] == 1
    assert _tree(export) == before
