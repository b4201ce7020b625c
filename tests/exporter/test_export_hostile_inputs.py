"""Hostile inputs: silent value damage and raw errors become clear errors (or correct results), before writing."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from export_helpers import make_kwargs, siblings, snapshot
from scipy import sparse

from cellucid_nb.exporter.inputs import F32_MAX, name_max
from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.format.reader import read_export
from cellucid_nb.format.validator import validate_export

N = 120


def _masked_embedding(kw):
    emb = np.ma.masked_array(kw["X_umap_2d"], mask=np.zeros((N, 2), bool))
    emb.mask[3, 0] = True
    emb.data[3, 0] = 1e20  # the hidden fill value must never reach the export
    kw["X_umap_2d"] = emb


def _masked_expression(kw):
    dense = kw["gene_expression"].toarray()
    kw["gene_expression"] = np.ma.masked_array(dense, mask=dense > 1.5)


def _masked_latent(kw):
    kw["latent_space"] = np.ma.masked_invalid(np.where(np.arange(N)[:, None] == 5, np.nan, kw["latent_space"]))


def _obs_overflow(kw):
    kw["obs"] = kw["obs"].copy()
    kw["obs"]["big"] = np.linspace(0, 1e39, N)


def _obs_overflow_nullable(kw):
    kw["obs"] = kw["obs"].copy()
    values = pd.array(np.linspace(0, 1e39, N), dtype="Float64")
    values[0] = pd.NA
    kw["obs"]["big"] = values


def _expression_overflow_sparse(kw):
    x = kw["gene_expression"].astype(np.float64)
    x.data[0] = 5e38
    kw["gene_expression"] = x


def _expression_overflow_dense(kw):
    x = kw["gene_expression"].toarray().astype(np.float64)
    x[4, 7] = -4e38
    kw["gene_expression"] = x


def _latent_overflow(kw):
    latent = kw["latent_space"].copy()
    latent[0, 0] = 1e300
    kw["latent_space"] = latent


def _vectors_overflow(kw):
    vec = kw["vector_fields"]["velocity_umap_2d"].copy()
    vec[1, 1] = 1e308
    kw["vector_fields"] = {"velocity_umap_2d": vec}


def _vectors_nan(kw):
    vec = kw["vector_fields"]["velocity_umap_2d"].copy()
    vec[[2, 9], 0] = np.nan
    kw["vector_fields"] = {"velocity_umap_2d": vec}


def _vectors_inf(kw):
    vec = kw["vector_fields"]["velocity_umap_2d"].copy()
    vec[0, 0] = np.inf
    kw["vector_fields"] = {"velocity_umap_2d": vec}


def _zero_cells(kw):
    for key in ("X_umap_2d", "X_umap_3d"):
        kw[key] = kw[key][:0]


def _obs_lists(kw):
    kw["obs"] = kw["obs"].copy()
    kw["obs"]["tags"] = [["a", "b"] if i % 2 else ["c"] for i in range(N)]


def _obs_dicts(kw):
    kw["obs"] = kw["obs"].copy()
    kw["obs"]["meta"] = [{"k": i} for i in range(N)]


def _csr_index_out_of_range(kw):
    x = kw["gene_expression"].copy()
    x.indices[3] = 50  # 12 genes
    kw["gene_expression"] = x


def _csr_bad_indptr(kw):
    x = kw["gene_expression"].copy()
    x.indptr[5], x.indptr[6] = x.indptr[6] + 1, x.indptr[5]
    kw["gene_expression"] = x


def _csc_index_out_of_range(kw):
    x = kw["gene_expression"].tocsc()
    x.indices[0] = N + 7
    kw["gene_expression"] = x


def _coo_index_out_of_range(kw):
    x = kw["gene_expression"].tocoo()
    x.col[0] = 99
    kw["gene_expression"] = x


def _knn_index_out_of_range(kw):
    knn = kw["connectivities"].copy()
    knn.indices[0] = N + 3
    kw["connectivities"] = knn


def _long_obs_key(kw):
    kw["obs"] = kw["obs"].rename(columns={"score": "s" * 250})


def _long_gene_id(kw):
    kw["var"] = kw["var"].set_axis(["G" * 300] + [f"G{i}" for i in range(1, 12)])


def _long_vector_id(kw):
    kw["vector_fields"] = {"v" * 260 + "_2d": kw["vector_fields"]["velocity_umap_2d"]}


def _set(**changes):
    return lambda kw: kw.update(changes)


CASES = {
    "masked_embedding": (_masked_embedding, ValueError, r"X_umap_2d is a masked array with 1 masked value\(s\).*hidden fill values"),
    "masked_expression": (_masked_expression, ValueError, r"gene_expression is a masked array with \d+ masked value"),
    "masked_latent": (_masked_latent, ValueError, r"latent_space is a masked array with 5 masked value"),
    "masked_connectivities": (_set(connectivities=np.ma.masked_array(np.zeros((N, N)), mask=np.eye(N, dtype=bool))), ValueError,
                              r"connectivities is a masked array with 120 masked value"),
    "obs_overflow": (_obs_overflow, ValueError, r"obs\['big'\] has 79 finite values beyond float32's range \(largest \|value\| 1e\+39\).*overflow"),
    "obs_overflow_nullable": (_obs_overflow_nullable, ValueError, r"obs\['big'\] has 79 finite values beyond float32's range"),
    "expression_overflow_sparse": (_expression_overflow_sparse, ValueError, r"gene_expression has 1 finite values beyond float32's range \(largest \|value\| 5e\+38\)"),
    "expression_overflow_dense": (_expression_overflow_dense, ValueError, r"gene_expression has 1 finite value\(s\) beyond float32's range in columns \[7\].*4e\+38"),
    "latent_overflow": (_latent_overflow, ValueError, r"latent_space has 1 finite values beyond float32's range \(largest \|value\| 1e\+300\)"),
    "vectors_overflow": (_vectors_overflow, ValueError, r"vector_fields\['velocity_umap_2d'\] has 1 finite displacements \(after scaling like the embedding\) beyond float32's range"),
    "vectors_nan": (_vectors_nan, ValueError, r"vector_fields\['velocity_umap_2d'\] contains NaN or Inf in 2 row\(s\).*nan_to_num"),
    "vectors_inf": (_vectors_inf, ValueError, r"vector_fields\['velocity_umap_2d'\] contains NaN or Inf in 1 row"),
    "zero_cells": (_zero_cells, ValueError, r"X_umap_2d has shape \(0, 2\): zero cells; expected at least one cell"),
    "obs_lists": (_obs_lists, ValueError, r"obs\['tags'\] holds list values \(e\.g\. \['c'\] at row 0\); expected one scalar"),
    "obs_dicts": (_obs_dicts, ValueError, r"obs\['meta'\] holds dict values .*expected one scalar"),
    "csr_index_out_of_range": (_csr_index_out_of_range, ValueError, r"gene_expression \(CSR, shape \(120, 12\)\) has column index 50 out of range; expected column indices in \[0, 12\)"),
    "csr_bad_indptr": (_csr_bad_indptr, ValueError, r"gene_expression \(CSR, shape \(120, 12\)\) has a decreasing indptr"),
    "csc_index_out_of_range": (_csc_index_out_of_range, ValueError, r"gene_expression \(CSC, shape \(120, 12\)\) has row index 127 out of range"),
    "coo_index_out_of_range": (_coo_index_out_of_range, ValueError, r"gene_expression \(COO, shape \(120, 12\)\) has column index 99 out of range"),
    "knn_index_out_of_range": (_knn_index_out_of_range, ValueError, r"connectivities \(CSR, shape \(120, 120\)\) has column index 123 out of range"),
    "long_obs_key": (_long_obs_key, ValueError, r"obs key 'sss.*gives the file name .* bytes; expected at most \d+ bytes \(the file system's name limit\)"),
    "long_gene_id": (_long_gene_id, ValueError, r"gene id 'GGG.*expected at most \d+ bytes"),
    "long_vector_id": (_long_vector_id, ValueError, r"vector field id 'vvv.*expected at most \d+ bytes"),
    "long_manifest_name": (_set(obs_manifest_filename="m" * 300 + ".json"), ValueError, r"obs_manifest_filename 'mmm.*expected at most"),
    "manifest_is_identity": (_set(obs_manifest_filename="dataset_identity.json"), ValueError, r"obs_manifest_filename='dataset_identity.json' collides with the identity file"),
    "manifest_is_sidecar": (_set(var_manifest_filename="cellucid_nb.json"), ValueError, r"var_manifest_filename='cellucid_nb.json' collides with the sidecar"),
    "dirs_collide": (_set(var_binary_dirname="obs"), ValueError, r"var_binary_dirname='obs' collides with obs_binary_dirname='obs'"),
    "dirs_collide_case": (_set(connectivity_binary_dirname="VAR"), ValueError, r"connectivity_binary_dirname='VAR' collides with var_binary_dirname='var' \(names are compared ignoring case\)"),
    "manifest_is_dir": (_set(connectivity_manifest_filename="var"), ValueError, r"connectivity_manifest_filename='var' collides with var_binary_dirname='var'"),
    "dir_is_vectors": (_set(obs_binary_dirname="vectors"), ValueError, r"obs_binary_dirname='vectors' collides with the vector fields folder"),
    "dir_is_points": (_set(obs_binary_dirname="points_2d.bin.gz"), ValueError, r"collides with the 2D embedding file"),
    "obs_complex": (_set(obs=pd.DataFrame({"c": np.ones(N, complex)})), ValueError, r"obs\['c'\] has complex dtype complex128; expected real numbers"),
    "gene_identifiers_empty": (_set(gene_identifiers=[]), ValueError, r"gene_identifiers is empty: expected at least one gene id, or None"),
    "out_dir_empty": (_set(out_dir=""), ValueError, r"out_dir='' is empty: expected a folder path"),
    "out_dir_blank": (_set(out_dir="  "), ValueError, r"out_dir='  ' is empty"),
    "out_dir_not_path": (_set(out_dir=3), TypeError, r"out_dir is a int, expected a path"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input_is_refused_before_writing(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    modify, exc_type, pattern = CASES[case]
    kw = make_kwargs(n=N)
    kw["out_dir"] = tmp_path / "export"
    modify(kw)
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("user file")
    monkeypatch.chdir(work)  # out_dir="" must not touch the current folder
    with pytest.raises(exc_type) as info:
        prepare(**kw)
    assert re.search(pattern, str(info.value)), str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # no export, staging, lock or old folder
    assert snapshot(work) == {"mine.txt": b"user file"}


@pytest.mark.parametrize("case", ["obs_overflow", "vectors_nan", "csr_index_out_of_range", "masked_embedding"])
def test_hostile_input_leaves_an_existing_export_untouched(case: str, tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    before = snapshot(out)
    kw = make_kwargs(n=N, seed=3)
    CASES[case][0](kw)
    with pytest.raises(ValueError):
        prepare(out_dir=out, force=True, **kw)
    assert snapshot(out) == before and siblings(out) == ["export"]


def test_masked_array_without_masked_values_is_its_data(tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    plain = prepare(out_dir=tmp_path / "plain" / "e", **kw)
    kw["X_umap_2d"] = np.ma.masked_array(kw["X_umap_2d"], mask=False)
    masked = prepare(out_dir=tmp_path / "masked" / "e", **kw)
    assert snapshot(plain.path) == snapshot(masked.path)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_embedding_spanning_the_float32_range_is_normalised_correctly(dtype, tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    emb = np.zeros((N, 2), dtype=dtype)
    emb[:, 0] = np.linspace(-3e38, 3e38, N)
    emb[:, 1] = np.linspace(-1.5e38, 1.5e38, N)
    kw["X_umap_2d"] = emb
    kw["vector_fields"] = {"velocity_umap_2d": emb / 10}
    prepare(out_dir=tmp_path / "e", **kw)
    reader = read_export(tmp_path / "e")
    pts = reader.points(2).astype(np.float64)
    # Independent expectation: center 0, half range 3e38 (x is the widest axis).
    expected = emb.astype(np.float64) / 3e38
    np.testing.assert_allclose(pts, expected, rtol=1e-6, atol=1e-7)
    assert pts[:, 0].min() == -1.0 and pts[:, 0].max() == 1.0
    np.testing.assert_allclose(reader.vector_field("velocity_umap", 2), expected / 10, rtol=1e-6, atol=1e-7)
    assert validate_export(tmp_path / "e") == []


def test_finite_float64_embedding_beyond_float32_is_exported_not_called_nan(tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    emb = kw["X_umap_2d"] * 1e300  # finite float64, far beyond float32
    kw["X_umap_2d"] = emb
    prepare(out_dir=tmp_path / "e", **kw)
    pts = read_export(tmp_path / "e").points(2)
    assert np.isfinite(pts).all() and np.abs(pts).max() <= 1.0
    base = kw["X_umap_2d"] / 1e300
    reference = prepare(out_dir=tmp_path / "r", **{**kw, "X_umap_2d": base})
    np.testing.assert_allclose(pts, read_export(reference.path).points(2), atol=1e-6)


def test_nan_obs_values_still_export_as_missing(tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    kw["obs"] = kw["obs"].copy()
    kw["obs"].loc[3, "score"] = np.nan  # NaN is "missing", not an overflow
    prepare(out_dir=tmp_path / "e", **kw)
    assert np.isnan(read_export(tmp_path / "e").obs_column("score")[3])


def test_out_dir_symlink_is_refused_and_its_export_untouched(tmp_path: Path) -> None:
    real = tmp_path / "real"
    prepare(out_dir=real, **make_kwargs(n=N))
    before = snapshot(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(ValueError, match=r"out_dir=.*link' is a symbolic link \(to .*real'\); expected a real folder"):
        prepare(out_dir=link, force=True, **make_kwargs(n=N, seed=2))
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert snapshot(real) == before and sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_out_dir_symlink_to_an_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"is a symbolic link .* pass the link's target"):
        prepare(out_dir=tmp_path / "link", **make_kwargs(n=N))
    assert list((tmp_path / "empty").iterdir()) == [] and (tmp_path / "link").is_symlink()


def test_out_dir_dangling_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"is a symbolic link"):
        prepare(out_dir=tmp_path / "link", **make_kwargs(n=N))
    assert not (tmp_path / "nowhere").exists()


def test_out_dir_current_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    for value in (".", str(tmp_path), tmp_path.parent):
        with pytest.raises(ValueError, match=r"is the current folder or one of its parents"):
            prepare(out_dir=value, **make_kwargs(n=N))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_out_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"out_dir=.*f' exists and is not a folder"):
        prepare(out_dir=tmp_path / "f", **make_kwargs(n=N))
    assert (tmp_path / "f").read_text() == "x"


def test_out_dir_inside_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"out_dir=.*lies inside '.*/f', which is a file, not a folder"):
        prepare(out_dir=tmp_path / "f" / "sub" / "export", **make_kwargs(n=N))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"] and (tmp_path / "f").read_text() == "x"


def test_out_dir_name_too_long_for_the_staging_folder(tmp_path: Path) -> None:
    limit = name_max(tmp_path)
    name = "e" * (limit - 5)  # fits itself, not with the staging prefix and suffix
    with pytest.raises(ValueError, match=r"out_dir name 'eee.*expected at most \d+ bytes"):
        prepare(out_dir=tmp_path / name, **make_kwargs(n=N))
    assert list(tmp_path.iterdir()) == []


def test_name_max_of_a_missing_path_is_its_existing_parents(tmp_path: Path) -> None:
    assert name_max(tmp_path / "a" / "b") == os.pathconf(tmp_path, "PC_NAME_MAX")


def test_float32_max_itself_is_accepted(tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    kw["obs"] = kw["obs"].copy()
    kw["obs"]["edge"] = np.full(N, F32_MAX, dtype=np.float64)
    kw["obs_continuous_quantization"] = None
    prepare(out_dir=tmp_path / "e", **kw)
    assert read_export(tmp_path / "e").obs_column("edge").max() == np.float32(F32_MAX)


def test_sparse_array_classes_are_checked_too(tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    x = sparse.csr_array(kw["gene_expression"])
    x.indices[0] = 12
    kw["gene_expression"] = x
    with pytest.raises(ValueError, match=r"column index 12 out of range"):
        prepare(out_dir=tmp_path / "e", **kw)
    assert list(tmp_path.iterdir()) == []


def test_obs_tuples_are_hashable_categories(tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    kw["obs"] = kw["obs"].copy()
    kw["obs"]["pair"] = [(i % 2, "x") for i in range(N)]
    prepare(out_dir=tmp_path / "e", **kw)
    assert sorted(read_export(tmp_path / "e").obs_field_info("pair").categories) == ["(0, 'x')", "(1, 'x')"]
    assert pd.notna(read_export(tmp_path / "e").obs_column("pair")).all()


def test_long_keys_are_fine_when_files_are_named_by_index(tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    _long_obs_key(kw)
    _long_gene_id(kw)
    prepare(out_dir=tmp_path / "e", layout="index", **kw)
    reader = read_export(tmp_path / "e")
    assert "s" * 250 in reader.obs_keys and "G" * 300 in reader.genes


def test_out_dir_mount_point_is_refused_before_writing() -> None:
    # a replace renames out_dir, which a mount point refuses (EBUSY) after staging began
    assert os.path.ismount("/proc")
    with pytest.raises(ValueError, match=r"out_dir='/proc' is a mount point; expected a folder inside it"):
        prepare(out_dir="/proc", **make_kwargs(n=N))
    assert not any(p.name.startswith((".proc", "proc.")) for p in Path("/").iterdir())


def test_out_dir_with_a_tilde_is_the_home_folders(tmp_path: Path, monkeypatch) -> None:
    """'~/exports' exports into the home folder, never into a new folder literally named '~' in the current one."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    prepare(out_dir="~/exports/pbmc", **{k: v for k, v in make_kwargs(n=50, n_genes=3).items() if k != "out_dir"})
    assert validate_export(home / "exports" / "pbmc") == []
    assert list(work.iterdir()) == []
