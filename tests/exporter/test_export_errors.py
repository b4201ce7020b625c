"""Every bad input is refused before the first byte is written, with a message naming key, received and expected."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from export_helpers import make_kwargs, siblings, snapshot
from scipy import sparse

from cellucid_nb.exporter.prepare import prepare

N = 300


def _set(**changes):
    return lambda kw: kw.update(changes)


def _obs(fn):
    def apply(kw):
        kw["obs"] = fn(kw["obs"].copy())

    return apply


def _var(fn):
    def apply(kw):
        kw["var"] = fn(kw["var"].copy())

    return apply


def _rename_obs(mapping):
    return _obs(lambda o: o.rename(columns=mapping))


def _nan_embedding(kw):
    emb = kw["X_umap_2d"].copy()
    emb[7, 1] = np.nan
    kw["X_umap_2d"] = emb


def _many_categories(kw):
    kw["obs"] = kw["obs"].copy()
    kw["obs"]["cell_id"] = [f"c{i}" for i in range(N)]
    kw["obs_categorical_dtype"] = "uint8"


def _negative_knn(kw):
    knn = kw["connectivities"].copy()
    knn.data[0] = -1.0
    kw["connectivities"] = knn


def _nan_knn(kw):
    knn = kw["connectivities"].copy()
    knn.data[0] = np.inf
    kw["connectivities"] = knn


CASES = {
    "no_embedding": (_set(X_umap_2d=None, X_umap_3d=None), ValueError, r"At least one dimensional embedding"),
    "embedding_4d": (_set(X_umap_4d=np.zeros((N, 4))), NotImplementedError, r"X_umap_4d.*reserved"),
    "embedding_wrong_columns": (_set(X_umap_2d=np.zeros((N, 3))), ValueError, r"X_umap_2d has shape \(300, 3\), expected \(n_cells, 2\)"),
    "embedding_1d_vector": (_set(X_umap_2d=np.zeros(N)), ValueError, r"X_umap_2d has shape \(300,\), expected \(n_cells, 2\)"),
    "embedding_rows": (_set(X_umap_3d=np.zeros((N - 1, 3))), ValueError, r"X_umap_2d has 300 rows, but X_umap_3d has shape \(299, 3\)"),
    "embedding_nan": (_nan_embedding, ValueError, r"X_umap_2d contains NaN or Inf in 1 row"),
    "latent_missing": (_set(latent_space=None), ValueError, r"latent_space is required"),
    "latent_rows": (_set(latent_space=np.zeros((N + 1, 4))), ValueError, r"latent_space has shape \(301, 4\), but embeddings have 300 cells"),
    "obs_missing": (_set(obs=None), ValueError, r"obs DataFrame is required"),
    "obs_not_frame": (_set(obs={"a": [1]}), TypeError, r"obs is a dict, expected a pandas DataFrame"),
    "obs_rows": (_obs(lambda o: o.iloc[:-2]), ValueError, r"obs has 298 rows .* but embeddings have 300 cells"),
    "obs_keys_unknown": (_set(obs_keys=["scor"]), KeyError, r"obs_keys contain columns not in obs: \['scor'\]\. Did you mean 'score'\?"),
    "obs_keys_string": (_set(obs_keys="score"), TypeError, r"obs_keys='score' is a string"),
    "obs_key_not_string": (_rename_obs({"score": 5}), ValueError, r"obs column keys must be strings: got 5 \(int\)"),
    "obs_keys_collide": (_rename_obs({"score": "a b", "batch": "a_b"}), ValueError, r"'a b' and 'a_b' both become file name 'a_b'"),
    "obs_keys_collide_case": (_rename_obs({"score": "Batch"}), ValueError, r"'Batch' and 'batch' both become file name 'batch'"),
    "obs_key_windows_device": (_rename_obs({"score": "Con"}), ValueError, r"obs key 'Con' would name a file 'Con'\.\*, a device name Windows reserves.*layout='index'"),
    "obs_key_windows_device_ext": (_rename_obs({"score": "nul.v2"}), ValueError, r"obs key 'nul\.v2' would name a file"),
    "gene_id_windows_device": (_var(lambda v: v.set_axis(["LPT1"] + [f"G{i}" for i in range(1, 12)])), ValueError, r"gene key 'LPT1' would name a file 'LPT1'"),
    "dirname_windows_device": (_set(obs_binary_dirname="aux"), ValueError, r"obs_binary_dirname='aux' is a device name Windows reserves"),
    "too_many_categories": (_many_categories, ValueError, r"obs\['cell_id'\] has 300 categories, but uint8 codes hold at most 254"),
    "categorical_dtype_bad": (_set(obs_categorical_dtype="uint32"), ValueError, r"obs_categorical_dtype='uint32' is not supported"),
    "var_missing": (_set(var=None), ValueError, r"var DataFrame must be provided when gene_expression is given"),
    "var_rows": (_var(lambda v: v.iloc[:-1]), ValueError, r"var has 11 rows, but gene_expression has shape \(300, 12\)"),
    "expression_rows": (_set(gene_expression=np.zeros((N - 5, 12))), ValueError, r"gene_expression has shape \(295, 12\), but embeddings have 300 cells"),
    "expression_non_numeric": (_set(gene_expression=np.full((N, 12), "x")), TypeError, r"gene_expression has dtype <U1, expected a numeric matrix"),
    "gene_ids_duplicate": (_var(lambda v: v.set_axis(["G0"] * 2 + [f"G{i}" for i in range(2, 12)])), ValueError, r"gene identifiers must be unique: 1 duplicated, e.g. \['G0'\]"),
    "gene_ids_not_string": (_var(lambda v: v.set_axis(range(12))), ValueError, r"gene identifiers \(var index\) must be strings: got 0 \(int\)"),
    "gene_ids_collide": (_var(lambda v: v.set_axis(["g0"] + [f"G{i}" for i in range(1, 11)] + ["G0"])), ValueError, r"gene keys collide.*'g0' and 'G0'"),
    "gene_column_unknown": (_set(var_gene_id_column="symbl"), KeyError, r"var_gene_id_column 'symbl' not found in var\. Did you mean 'symbol'\?"),
    "gene_identifiers_none_exist": (_set(gene_identifiers=["NOPE1", "NOPE2"]), ValueError, r"none of the 2 gene_identifiers exist in var"),
    "compression_bad": (_set(compression=10), ValueError, r"compression=10 is not supported"),
    "compression_bool": (_set(compression=True), ValueError, r"compression=True is not supported"),
    "quantization_12": (_set(var_quantization=12), ValueError, r"var_quantization=12 is not supported: expected None \(float32\), 8 or 16"),
    "quantization_bool": (_set(obs_continuous_quantization=True), ValueError, r"obs_continuous_quantization=True is not supported"),
    "knn_negative": (_negative_knn, ValueError, r"connectivities has 1 negative weight"),
    "knn_non_finite": (_nan_knn, ValueError, r"connectivities has 1 NaN/Inf weight"),
    "knn_shape": (_set(connectivities=sparse.random(N, N - 1, density=0.1, format="csr")), ValueError, r"connectivities has shape \(300, 299\), expected \(300, 300\)"),
    "quantile_out_of_range": (_set(centroid_outlier_quantile=1.0), ValueError, r"centroid_outlier_quantile=1.0 is outside \(0, 1\)"),
    "quantile_bool": (_set(centroid_outlier_quantile=True), ValueError, r"centroid_outlier_quantile=True \(bool\) is not supported"),
    "min_points_bad": (_set(centroid_min_points=0), ValueError, r"centroid_min_points=0 is not supported"),
    "vectors_not_dict": (_set(vector_fields=[np.zeros((N, 2))]), TypeError, r"vector_fields is a list, expected a dict"),
    "vectors_rows": (_set(vector_fields={"velocity_umap_2d": np.zeros((N - 1, 2))}), ValueError, r"vector_fields\['velocity_umap_2d'\] has shape \(299, 2\), but embeddings have 300 cells"),
    "vectors_components": (_set(vector_fields={"velocity_umap": np.zeros((N, 4))}), ValueError, r"vector_fields\['velocity_umap'\] has shape \(300, 4\): expected 1/2/3 components"),
    "vectors_ndim": (_set(vector_fields={"velocity_umap": np.zeros((N, 2, 1))}), ValueError, r"vector_fields\['velocity_umap'\] has shape \(300, 2, 1\)"),
    "vectors_declared_dim": (_set(vector_fields={"velocity_umap_3d": np.zeros((N, 2))}), ValueError, r"vector_fields\['velocity_umap_3d'\] is declared 3D but has shape \(300, 2\)"),
    "vectors_unsafe_id": (_set(vector_fields={"my velocity_2d": np.zeros((N, 2))}), ValueError, r"vector field id 'my velocity' contains unsupported characters.*'my_velocity'"),
    "vectors_collide_case": (_set(vector_fields={"Velo_2d": np.zeros((N, 2)), "velo_3d": np.zeros((N, 3))}), ValueError, r"'Velo' and 'velo' both become file name 'velo'"),
    "created_at_bad": (_set(created_at="yesterday"), ValueError, r"created_at='yesterday' is not a UTC timestamp"),
    "n_workers_bad": (_set(n_workers=0), ValueError, r"n_workers=0 is not supported"),
    "force_not_bool": (_set(force="yes"), TypeError, r"force='yes' is a str, expected True or False"),
    "dirname_bad": (_set(obs_binary_dirname="a/b"), ValueError, r"obs_binary_dirname='a/b' is not a valid name"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_before_writing(case: str, tmp_path: Path) -> None:
    modify, exc_type, pattern = CASES[case]
    kw = make_kwargs(n=N)
    modify(kw)
    out = tmp_path / "export"
    with pytest.raises(exc_type) as info:
        prepare(out_dir=out, **kw)
    assert re.search(pattern, str(info.value)), str(info.value)
    assert not out.exists()
    assert siblings(out) == []


def test_bad_input_leaves_existing_export_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs(n=N))
    before = snapshot(out)
    kw = make_kwargs(n=N)
    kw["var_quantization"] = 12
    with pytest.raises(ValueError, match="var_quantization=12"):
        prepare(out_dir=out, force=True, **kw)
    assert snapshot(out) == before
    assert siblings(out) == ["export"]


def test_vector_dimension_without_embedding_warns_and_skips(tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    kw["X_umap_3d"] = None
    kw["vector_fields"] = {"velocity_umap_2d": np.ones((N, 2)), "velocity_umap_3d": np.ones((N, 3))}
    with pytest.warns(UserWarning, match=r"vector field 'velocity_umap' 3D skipped: no X_umap_3d embedding"):
        result = prepare(out_dir=tmp_path / "e", **kw)
    assert any("3D skipped" in w for w in result.warnings)
    assert (tmp_path / "e" / "vectors" / "velocity_umap_2d.bin.gz").exists()
    assert not (tmp_path / "e" / "vectors" / "velocity_umap_3d.bin.gz").exists()


def test_unknown_gene_identifiers_warn_and_are_listed(tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    kw["gene_identifiers"] = ["G3", "NOPE", "G1"]
    with pytest.warns(UserWarning, match=r"1 gene identifier\(s\) not found in var and skipped: \['NOPE'\]"):
        prepare(out_dir=tmp_path / "e", **kw)
    import json

    fields = json.loads((tmp_path / "e" / "var_manifest.json").read_text())["fields"]
    assert [f[0] for f in fields] == ["G3", "G1"]


def test_reference_accepted_values_stay_accepted(tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    kw.update(compression=0, centroid_outlier_quantile=0.3, obs_categorical_dtype="uint16", var_quantization=16)
    kw["obs"] = kw["obs"].copy()
    result = prepare(out_dir=tmp_path / "e", **kw)
    files = snapshot(result.path)
    assert "obs/cluster.codes.u16" in files
    assert not any(name.endswith(".gz") for name in files)
    kw["centroid_outlier_quantile"] = None
    prepare(out_dir=tmp_path / "f", **kw)
    assert (tmp_path / "f" / "obs_manifest.json").exists()


def test_obs_string_categories_equal_as_text_refused(tmp_path: Path) -> None:
    kw = make_kwargs(n=N)
    obs = kw["obs"].copy()
    obs["mixed"] = pd.Categorical([1 if i % 2 else "1" for i in range(N)])
    kw["obs"] = obs
    with pytest.raises(ValueError, match=r"obs\['mixed'\] has categories that are equal as text: \['1'\]"):
        prepare(out_dir=tmp_path / "e", **kw)
    assert not (tmp_path / "e").exists()
