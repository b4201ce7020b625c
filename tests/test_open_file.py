"""open_h5ad: a backed AnnData whose graph and obsm stay in the file, names as Arrow strings; same export bytes."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import cellucid_nb.adata.estimation_sampling as estimate_sampling
from cellucid_nb.adata import arrow_strings
from cellucid_nb.adata.estimation import estimate
from cellucid_nb.adata.exporting import export, prepare_kwargs
from cellucid_nb.adata.inspection import inspect
from cellucid_nb.adata.open_file import LegacyH5adError, close_h5ad, open_h5ad, open_h5ad_for_export
from cellucid_nb.adata.plan import ExportPlan
from cellucid_nb.exporter import graph_blocks
from cellucid_nb.exporter.graph_source import BlockCSR

CREATED = "2026-01-01T00:00:00Z"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def h5ad(tmp_path) -> Path:
    n, g = 3000, 40
    rng = np.random.default_rng(0)
    x = sparse.random(n, g, density=0.1, format="csr", random_state=0, dtype=np.float32)
    rows = np.repeat(np.arange(n), 8)
    knn = sparse.csr_matrix((rng.random(rows.size).astype(np.float32), (rows, rng.integers(0, n, rows.size))),
                            shape=(n, n))
    knn = (knn + knn.T).tocsr()
    obs = pd.DataFrame({"cluster": pd.Categorical(rng.choice(list("abc"), n)), "score": rng.normal(size=n)},
                       index=[f"c{i}" for i in range(n)])
    a = anndata.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(g)]),
                        obsm={"X_pca": rng.normal(size=(n, 10)).astype(np.float32),
                              "X_umap": rng.normal(size=(n, 2)).astype(np.float32)},
                        obsp={"connectivities": knn, "distances": knn * 2})
    path = tmp_path / "a.h5ad"
    a.write_h5ad(path)
    return path


def test_graph_read_from_file_same_bytes(h5ad, tmp_path, monkeypatch):
    monkeypatch.setattr(graph_blocks, "BLOCK_ENTRIES", 5000)  # several blocks
    lazy = open_h5ad(h5ad)
    assert lazy.isbacked and not sparse.issparse(lazy.obsp["connectivities"])  # left in the file
    plan = ExportPlan.from_anndata(lazy).replace(genes=None, compression=6, var_quantization=8)
    assert plan.connectivities == "connectivities"
    assert isinstance(prepare_kwargs(lazy, plan)["connectivities"], BlockCSR)
    export(lazy, plan, tmp_path / "lazy" / "out", created_at=CREATED)
    memory = anndata.read_h5ad(h5ad)
    export(memory, plan, tmp_path / "memory" / "out", created_at=CREATED)
    got, expected = _tree(tmp_path / "lazy" / "out"), _tree(tmp_path / "memory" / "out")
    assert got.keys() == expected.keys() and any(k.startswith("connectivity/") for k in got)
    assert got == expected


def test_open_h5ad_refuses_files_without_encoding(tmp_path):
    import h5py

    path = tmp_path / "old.h5ad"
    with h5py.File(path, "w") as f:
        f.create_group("obs")
    with pytest.raises(ValueError, match="no anndata encoding metadata"):
        open_h5ad(path)
    os.remove(path)  # the file was closed: it can go


# --------------------------------------------------------------------------- obsm left in the file, compact names


@pytest.fixture
def rich_h5ad(tmp_path) -> Path:
    """Dense, sparse and dataframe obsm; categorical, numeric and plain string obs columns; a named index."""
    n, g = 3000, 30
    rng = np.random.default_rng(1)
    names = pd.Index([f"cell-{i:05d}-é" for i in range(n)], name="barcode")  # non-ASCII: UTF-8 is checked
    obs = pd.DataFrame({
        "cluster": pd.Categorical(rng.choice(list("abcd"), n)),
        "donor": rng.choice(["d1", "d2", "d3"], n).astype(object),  # stays a string column (see write below)
        "score": rng.normal(size=n),
    }, index=names)
    a = anndata.AnnData(
        X=sparse.random(n, g, density=0.2, format="csr", random_state=1, dtype=np.float32),
        obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(g)]),
        obsm={"X_pca": rng.normal(size=(n, 12)).astype(np.float32),
              "X_umap": rng.normal(size=(n, 2)).astype(np.float32),
              "X_umap_3d": rng.normal(size=(n, 3)),
              "velocity_umap": rng.normal(size=(n, 2)).astype(np.float32),
              "X_sparse": sparse.random(n, 4, density=0.5, format="csr", random_state=2),
              "meta": pd.DataFrame({"q": np.arange(n)}, index=names)},
    )
    path = tmp_path / "rich.h5ad"
    a.write_h5ad(path, convert_strings_to_categoricals=False)
    return path


def test_obsm_stays_in_the_file_and_names_are_arrow_strings(rich_h5ad):
    import h5py

    memory = anndata.read_h5ad(rich_h5ad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither anndata nor pandas has anything to say
        lazy = open_h5ad(rich_h5ad)
    for key in ("X_pca", "X_umap", "X_umap_3d", "velocity_umap"):
        assert isinstance(lazy.obsm[key], h5py.Dataset), key
        np.testing.assert_array_equal(lazy.obsm[key][:], memory.obsm[key])
    assert sparse.issparse(lazy.obsm["X_sparse"])
    assert (lazy.obsm["X_sparse"] != memory.obsm["X_sparse"]).nnz == 0
    pd.testing.assert_frame_equal(lazy.obsm["meta"], memory.obsm["meta"], check_index_type=False)
    assert list(lazy.obsm.keys()) == list(memory.obsm.keys())

    assert lazy.obs_names.dtype == "string[pyarrow]" and lazy.obs_names.name == "barcode"
    assert lazy.obs_names.tolist() == memory.obs_names.tolist()
    assert lazy.obs["donor"].dtype == "string[pyarrow]"
    assert lazy.obs["donor"].tolist() == memory.obs["donor"].tolist()
    assert isinstance(lazy.obs["cluster"].dtype, pd.CategoricalDtype)  # categoricals as anndata reads them
    pd.testing.assert_series_equal(lazy.obs["score"], memory.obs["score"], check_index_type=False)
    assert lazy.obsm["meta"].index.dtype == "string[pyarrow]"  # the obs names, as anndata gives them

    mask = np.zeros(lazy.n_obs, dtype=bool)
    mask[::7] = True
    view = lazy[mask]
    assert view.obs_names.dtype == "string[pyarrow]"
    assert view.obs_names.tolist() == memory[mask].obs_names.tolist()
    np.testing.assert_array_equal(np.asarray(view.obsm["X_pca"]), memory.obsm["X_pca"][mask])
    assert lazy[["cell-00003-é", "cell-00010-é"]].obs["score"].tolist() == memory.obs["score"].iloc[[3, 10]].tolist()


def test_duplicate_names_warn_as_anndata_does(tmp_path):
    n = 200
    with pytest.warns(UserWarning, match="Observation names are not unique"):
        a = anndata.AnnData(obs=pd.DataFrame(index=[f"c{i % 150}" for i in range(n)]),
                            obsm={"X_umap": np.zeros((n, 2), np.float32)})
    path = tmp_path / "dup.h5ad"
    a.write_h5ad(path)
    with pytest.warns(UserWarning, match="Observation names are not unique"):
        lazy = open_h5ad(path)
    assert lazy.obs_names.tolist() == a.obs_names.tolist()


@pytest.mark.parametrize("names", [
    ["a", "b", "c", "ab", ""],  # unique, an empty one
    ["", "x", ""],  # empty twice
    ["a", "b", "ab", "ba", "b"],
    [f"cell{i}" for i in range(5000)] + ["cell4999"],  # a duplicate across hash chunks
    ["é", "e\u0301", "é"],  # equal code points only
])
def test_has_duplicates_matches_pandas(names, monkeypatch):
    import pyarrow as pa

    monkeypatch.setattr(arrow_strings, "_HASH_CHUNK", 7)
    array = pd.arrays.ArrowStringArray(pa.chunked_array([pa.array(names[: len(names) // 2], pa.large_string()),
                                                         pa.array(names[len(names) // 2:], pa.large_string())]))
    assert arrow_strings.has_duplicates(array) == pd.Index(names, dtype=object).has_duplicates


def test_has_duplicates_ignores_missing_and_compares_colliding_hashes(monkeypatch):
    import pyarrow as pa

    array = pd.array(["a", None, "b", None], dtype="string[pyarrow]")
    assert not arrow_strings.has_duplicates(array)  # missing names are not duplicates (anndata's rule)
    # every hash equal: the strings themselves decide
    monkeypatch.setattr(arrow_strings, "_chunk_hashes", lambda piece: np.zeros(len(piece), np.uint64))
    assert not arrow_strings.has_duplicates(pd.arrays.ArrowStringArray(pa.chunked_array([pa.array(
        ["z", "x", "y"], pa.large_string())])))  # not sorted: hashed
    assert arrow_strings.has_duplicates(pd.array(["x", "y", "x"], dtype="string[pyarrow]"))
    # sorted names are unique without hashing
    assert not arrow_strings.has_duplicates(pd.array(["x", "xa", "y"], dtype="string[pyarrow]"))


def test_read_strings_in_chunks(rich_h5ad):
    import h5py

    with h5py.File(rich_h5ad, "r") as f:
        values = arrow_strings.read_strings(f["obs/barcode"], chunk=1000)
        expected = [s.decode() for s in f["obs/barcode"][:]]
    assert values.dtype == "string[pyarrow]" and values.tolist() == expected
    import pyarrow as pa

    assert pa.chunked_array(pa.array(values)).num_chunks == 3


def test_read_strings_parses_the_heap_as_h5py_reads_it(tmp_path, monkeypatch):
    """Shared heap collections, empty and missing strings, multi-byte text, pieces written out of order."""
    import h5py
    import pyarrow as pa

    from cellucid_nb.adata import hdf5_vlen

    pieces = ["", "é", "a" * 40, "x", "日本語テキスト", "b" * 8, "c" * 9, "d" * 7]
    names = [pieces[i % 8] + (str(i) if i % 3 else "") for i in range(5000)]
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["other"] = np.array(["q" * i for i in range(50)], dtype=h5py.string_dtype())  # same collection first
        f["names"] = np.array(names, dtype=h5py.string_dtype())
        f["empty"] = np.array([""] * 10, dtype=h5py.string_dtype())
        f.create_dataset("missing", shape=(5,), dtype=h5py.string_dtype())[1] = "hi"  # the others never written
        later = f.create_dataset("later", shape=(300,), dtype=h5py.string_dtype())
        for i in range(300, 0, -7):
            later[max(0, i - 7) : i] = [f"w{j}" for j in range(max(0, i - 7), i)]
        f.create_dataset("chunked", data=np.array(names, dtype=h5py.string_dtype()), chunks=(100,), compression="gzip")
    monkeypatch.setattr(hdf5_vlen, "_GATHER_BYTES", 64)  # several gathers per block
    monkeypatch.setattr(hdf5_vlen, "_BLOCK", 100)  # several blocks per chunk, the last one shorter
    with h5py.File(path, "r") as f:
        for key in ("other", "names", "empty", "missing", "later"):
            parsed = hdf5_vlen.read_vlen_strings(f[key], 777)  # no fallback
            assert len(parsed) == -(-f[key].shape[0] // 777)
            got = [bytes(data[o[i] : o[i + 1]]) for o, data in parsed for i in range(len(o) - 1)]
            assert got == list(f[key][:]), key
            values = arrow_strings.read_strings(f[key], chunk=777)
            assert values.dtype == "string[pyarrow]" and values.tolist() == [s.decode() for s in f[key][:]]
            assert pa.chunked_array(pa.array(values)).num_chunks == len(parsed)
        with pytest.raises(hdf5_vlen.UnsupportedLayout, match="filtered"):
            hdf5_vlen.read_vlen_strings(f["chunked"], 777)
        assert arrow_strings.read_strings(f["chunked"], chunk=777).tolist() == names  # read through h5py


def test_read_strings_refuses_a_heap_it_cannot_place(tmp_path):
    """An object header that does not match its record: the file is not trusted, h5py reads it."""
    import h5py

    from cellucid_nb.adata import hdf5_vlen

    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["names"] = np.array([f"n{i}" for i in range(100)], dtype=h5py.string_dtype())
        start = f["names"].id.get_offset()
    record = np.fromfile(path, np.dtype([("len", "<u4"), ("addr", "<u8"), ("idx", "<u4")]), count=1, offset=start)
    with open(path, "r+b") as handle:  # object index of the first element's heap object -> 0xFFFF
        handle.seek(int(record["addr"][0]) + 16 + 24 * (int(record["idx"][0]) - 1))  # 16 + 8 bytes each
        assert int.from_bytes(handle.read(2), "little") == int(record["idx"][0])
        handle.seek(-2, 1)
        handle.write(b"\xff\xff")
    with h5py.File(path, "r") as f, pytest.raises(hdf5_vlen.UnsupportedLayout, match="object"):
        hdf5_vlen.read_vlen_strings(f["names"], 1000)


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("idx", 0xFFFF_FFFF, "16 bits"),  # would size the placement table at 16 GB
    ("addr", 1 << 40, "past the end"),  # a collection beyond the file
])
def test_damaged_records_are_refused_before_anything_is_sized_by_them(tmp_path, field, value, reason):
    import h5py

    from cellucid_nb.adata import hdf5_vlen
    from cellucid_nb.adata.arrow_strings import read_strings

    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["names"] = np.array([f"n{i}" for i in range(100)], dtype=h5py.string_dtype())
        start = f["names"].id.get_offset()
    records = np.dtype([("len", "<u4"), ("addr", "<u8"), ("idx", "<u4")])
    with open(path, "r+b") as handle:  # element 7's record
        handle.seek(start + 7 * records.itemsize + records.fields[field][1])
        handle.write(np.array(value, dtype=records.fields[field][0]).tobytes())
    with h5py.File(path, "r") as f:
        with pytest.raises(hdf5_vlen.UnsupportedLayout, match=reason):
            hdf5_vlen.read_vlen_strings(f["names"], 1000)
        # read_strings hands the damaged file to HDF5 itself, which reads or refuses it (never our guess)
        try:
            got = list(read_strings(f["names"], 1000))
        except Exception as exc:  # noqa: BLE001 - HDF5's own refusal is fine
            assert not isinstance(exc, MemoryError)
        else:
            assert got[:7] == [f"n{i}" for i in range(7)]


def test_inspect_plan_estimate_export_match_the_in_memory_anndata(rich_h5ad, tmp_path, monkeypatch):
    monkeypatch.setattr(estimate_sampling, "FULL_ROWS", 1000)  # the sampled path: obsm rows read by runs
    lazy, memory = open_h5ad(rich_h5ad), anndata.read_h5ad(rich_h5ad)
    got, expected = inspect(lazy).to_dict(), inspect(memory).to_dict()
    for summary in (got, expected):
        summary.pop("backed")
        summary["expression"] = [dict(e, backed=None) for e in summary["expression"]]
    donor = [c for c in got["obs"] if c["key"] == "donor"][0]
    assert donor["dtype"] == "string"
    donor["dtype"] = "object"
    assert got == expected

    plan = ExportPlan.from_anndata(lazy)
    assert plan == ExportPlan.from_anndata(memory)
    assert "donor" in plan.obs_keys and plan.latent_key == "X_pca" and plan.vector_fields
    plan = plan.replace(genes=None, compression=6, var_quantization=8)
    lazy_est = estimate(lazy, plan, out_dir=tmp_path / "x", created_at=CREATED)
    memory_est = estimate(memory, plan, out_dir=tmp_path / "x", created_at=CREATED)
    assert not lazy_est.exact and lazy_est.sample_cells < lazy.n_obs
    assert lazy_est.parts == memory_est.parts and lazy_est.warnings == memory_est.warnings

    export(lazy, plan, tmp_path / "lazy" / "out", created_at=CREATED)
    export(memory, plan, tmp_path / "memory" / "out", created_at=CREATED)
    got_files, expected_files = _tree(tmp_path / "lazy" / "out"), _tree(tmp_path / "memory" / "out")
    assert any(k.startswith("obs/donor") for k in got_files) and any("velocity" in k for k in got_files)
    assert got_files == expected_files


def test_take_rows_reads_runs_of_a_dataset(rich_h5ad):
    import h5py

    class Recording:  # an array left in its file: what was read?
        def __init__(self, dataset):
            self.dataset, self.reads = dataset, []

        def __getitem__(self, key):
            self.reads.append(key)
            return self.dataset[key]

    rows = np.concatenate([np.arange(5, 9), np.arange(100, 103), [2999]])
    with h5py.File(rich_h5ad, "r") as f:
        recording = Recording(f["obsm/X_pca"])
        got = estimate_sampling.take_rows(recording, rows)
        expected = f["obsm/X_pca"][:][rows]
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, expected)
    assert recording.reads == [slice(5, 9), slice(100, 103), slice(2999, 3000)]  # the runs, nothing else
    in_memory = sparse.random(3000, 4, density=0.5, format="csr", random_state=0)
    assert sparse.issparse(estimate_sampling.take_rows(in_memory, rows))


def test_wizard_preview_of_a_dataset_left_in_the_file(rich_h5ad):
    from cellucid_nb.widgets.wizard_preview import preview_payload

    lazy, memory = open_h5ad(rich_h5ad), anndata.read_h5ad(rich_h5ad)
    for key, color in (("X_umap", "donor"), ("X_umap_3d", "cluster")):
        got, expected = preview_payload(lazy, key, color, max_points=500), preview_payload(memory, key, color, max_points=500)
        assert got == expected


def test_close_h5ad_closes_every_handle(rich_h5ad, h5ad):
    lazy = open_h5ad(h5ad)
    dataset, graph = lazy.obsm["X_pca"], lazy.obsp["connectivities"].group
    close_h5ad(lazy)
    assert not dataset.id.valid and not graph.id.valid and not lazy.file.is_open
    os.remove(h5ad)  # nothing holds the file


def test_legacy_files_fall_back_to_read_h5ad_with_a_note(tmp_path, monkeypatch, caplog):
    import h5py

    path = tmp_path / "old.h5ad"
    with h5py.File(path, "w") as f:
        f.create_group("obs")
    calls = []
    monkeypatch.setattr(anndata, "read_h5ad", lambda p, backed=None: calls.append((p, backed)) or "opened")
    with caplog.at_level(logging.INFO, logger="cellucid_nb.adata.open_file"):
        assert open_h5ad_for_export(path) == "opened"
    assert calls == [(path, "r")]
    assert "no anndata encoding metadata" in caplog.text and "read_h5ad" in caplog.text
    with pytest.raises(LegacyH5adError):
        open_h5ad(path)


def test_export_and_preview_never_build_the_index_hash_table(rich_h5ad, tmp_path):
    # pandas builds an index's hash table on some Series calls (to_numpy(na_value=...) among
    # them); for the Arrow string names that is a Python string per cell, kept in pandas'
    # cache: 0.6 GB at 10M cells. The export and the wizard preview must not trigger it.
    from cellucid_nb.widgets.wizard_preview import preview_payload

    lazy = open_h5ad(rich_h5ad)
    lazy.obs["nullable"] = pd.array(np.where(np.arange(lazy.n_obs) % 7, 1.5, np.nan), dtype="Float64")
    lazy.obs["count"] = np.arange(lazy.n_obs, dtype=np.int32)  # an integer column: pandas fills "NA" through the Series
    names = lazy.obs.index
    assert "_engine" not in names._cache
    plan = ExportPlan.from_anndata(lazy).replace(genes=("g1", "g2"))
    assert {"score", "nullable", "count"} <= set(plan.obs_keys)
    export(lazy, plan, tmp_path / "out", created_at=CREATED)
    preview_payload(lazy, "X_umap", "score", max_points=500)
    preview_payload(lazy, "X_umap", "nullable", max_points=500)
    preview_payload(lazy, "X_umap", "count", max_points=500)
    assert "_engine" not in names._cache, "the export built the obs index's hash table"
    # the check can fail: the call the export used to make builds it
    lazy.obs["count"].to_numpy(dtype=np.float32, na_value=np.nan)
    assert "_engine" in names._cache
