"""The graph read from its file by blocks (exporter/graph_source.py) and the estimate's neighbour count."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy import sparse

from cellucid_nb.exporter import graph_blocks
from cellucid_nb.exporter.graph import extract_edges
from cellucid_nb.exporter.graph_source import BlockCSR


def _knn(n: int, seed: int) -> sparse.csr_matrix:
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), 6)
    a = sparse.csr_matrix((rng.random(rows.size).astype(np.float32), (rows, rng.integers(0, n, rows.size))), shape=(n, n))
    sym = (a + a.T).tocsr()
    sym.sum_duplicates()
    return sym


def _on_disk(tmp_path, m: sparse.csr_matrix) -> BlockCSR:
    path = tmp_path / "g.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("g")
        g.attrs["shape"] = m.shape
        for name in ("indptr", "indices", "data"):
            g[name] = getattr(m, name)
    return BlockCSR.from_group(h5py.File(path, "r")["g"])


def test_edges_from_file_blocks_equal_extract_edges(tmp_path, monkeypatch):
    monkeypatch.setattr(graph_blocks, "BLOCK_ENTRIES", 300)
    m = _knn(1500, 1)
    m.setdiag(0.5)  # the diagonal is dropped
    m = sparse.csr_matrix(m)
    disk = _on_disk(tmp_path, m)
    disk.validate()
    assert disk.has_canonical_format and disk.nnz == m.nnz
    src, dst, weights, most = extract_edges(m)
    got = graph_blocks.extract_edges_blocked(disk, "<u4")
    assert np.array_equal(got[0], src) and np.array_equal(got[1], dst)
    assert got[2].tobytes() == weights.astype("<f8").tobytes() and got[3] == most


def test_validate_refuses_bad_graphs_and_sees_unsorted_rows(tmp_path):
    m = _knn(200, 2)
    bad = m.copy()
    bad.data[7] = -1.0
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="1 negative weight"):
        _on_disk(tmp_path / "a", bad).validate()
    nan = m.copy()
    nan.data[3] = np.nan
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="NaN/Inf"):
        _on_disk(tmp_path / "b", nan).validate()
    unsorted = m.copy()
    row = int(np.flatnonzero(np.diff(m.indptr) >= 2)[0])
    s = int(m.indptr[row])
    unsorted.indices[s], unsorted.indices[s + 1] = unsorted.indices[s + 1], unsorted.indices[s]
    (tmp_path / "c").mkdir()
    disk = _on_disk(tmp_path / "c", unsorted)
    disk.validate()
    assert not disk.has_canonical_format  # then the writer loads it whole and sorts it, as before
    (tmp_path / "d").mkdir()
    ok = _on_disk(tmp_path / "d", m)
    ok.validate()
    assert ok.has_canonical_format


def test_max_neighbors_estimate_skips_columns_only_when_sampled_rows_are_mirrored(monkeypatch):
    m = _knn(3000, 3)
    most = extract_edges(m)[3]
    assert graph_blocks._mirrored(m, 4096)
    assert graph_blocks.max_neighbors_estimate(m) == most
    # A hub column (entries (i, 0) without (0, i)): not mirrored, so the column counts are taken.
    hub = sparse.lil_matrix(m)
    hub[np.arange(1, 3000, 3), 0] = 1.0
    hub = sparse.csr_matrix(hub)
    assert not graph_blocks._mirrored(hub, 4096)
    assert graph_blocks.max_neighbors_estimate(hub) == extract_edges(hub)[3]
    # The column counts are what the mirror check saves: forced to "mirrored", the hub is missed.
    monkeypatch.setattr(graph_blocks, "_mirrored", lambda a, n: True)
    rows_only = int((np.diff(hub.indptr) - (hub.diagonal() != 0)).max())
    assert graph_blocks.max_neighbors_estimate(hub) == rows_only < extract_edges(hub)[3]


def test_estimates_of_a_file_graph_read_only_sampled_rows(tmp_path, monkeypatch):
    from cellucid_nb.adata.estimation_sampling import graph_estimate

    m = _knn(5000, 4)
    m.setdiag(0)  # no diagonal, as scanpy's: the file graph's diagonal is scaled from the sample
    m.eliminate_zeros()
    disk = _on_disk(tmp_path, m)  # not validated: estimate() gets it straight from prepare_kwargs
    monkeypatch.setattr(BlockCSR, "to_scipy", lambda self: pytest.fail("the whole graph was loaded"))
    assert graph_blocks.max_neighbors_estimate(disk) == extract_edges(m)[3]
    rows = np.concatenate([np.arange(100, 400), np.arange(3000, 3300)])
    assert graph_estimate(disk, rows, 5000, 6) == graph_estimate(m, rows, 5000, 6)
    assert disk.take_rows(rows).toarray().tobytes() == m[rows].toarray().tobytes()


def test_looks_symmetric_of_a_file_graph_reads_only_column_indices_of_sampled_rows(tmp_path, monkeypatch):
    m = _knn(5000, 4)
    (tmp_path / "sym").mkdir()
    disk = _on_disk(tmp_path / "sym", m)
    monkeypatch.setattr(BlockCSR, "to_scipy", lambda self: pytest.fail("the whole graph was loaded"))
    monkeypatch.setattr(BlockCSR, "take_rows", lambda self, rows: pytest.fail("weights were read"))
    assert graph_blocks._mirrored(m, 4096) and graph_blocks.looks_symmetric(disk)
    # entries (i, 0) without (0, i) in rows the sample reads: not mirrored, as the in-memory check says
    hub = sparse.lil_matrix(m)
    hub[np.arange(1, 5000, 3), 0] = 1.0
    hub = sparse.csr_matrix(hub)
    (tmp_path / "hub").mkdir()
    assert not graph_blocks._mirrored(hub, 4096) and not graph_blocks.looks_symmetric(_on_disk(tmp_path / "hub", hub))
    # a sampled row with its columns out of order is not canonical: no assumption of symmetry
    unsorted = m.copy()
    s = int(unsorted.indptr[0])
    assert unsorted.indptr[1] - s >= 2
    unsorted.indices[s], unsorted.indices[s + 1] = unsorted.indices[s + 1], unsorted.indices[s]
    (tmp_path / "unsorted").mkdir()
    assert not graph_blocks.looks_symmetric(_on_disk(tmp_path / "unsorted", unsorted))


def test_looks_symmetric_of_a_malformed_file_graph_is_false_not_an_error(tmp_path):
    # Asked before validation (the export's memory budget): the validator names the damage afterwards.
    m = _knn(500, 2)
    broken = sparse.csr_matrix((m.data, m.indices.copy(), m.indptr.copy()), shape=m.shape)
    broken.indptr[-1] += 10_000  # row pointers past the arrays
    broken.indices[broken.indptr[1] - 1] = 10**6  # a column out of range, in sampled row 0 (still in order)
    disk = _on_disk(tmp_path, broken)
    assert graph_blocks.looks_symmetric(disk) is False
    with pytest.raises(ValueError, match="connectivities"):
        disk.validate()
