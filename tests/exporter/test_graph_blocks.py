"""The graph's edges by row blocks (exporter/graph_blocks.py): the symmetric fast path and its fallback.

Every expected value comes from ``graph.extract_edges`` (``A + Aᵀ`` built whole by scipy)
or from a hand-written example, never from the block writer itself.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from export_helpers import CREATED
from scipy import sparse

from cellucid_nb.exporter import graph_blocks
from cellucid_nb.exporter.graph import EDGE_FILES, extract_edges, index_dtype_for
from cellucid_nb.exporter.graph_source import BlockCSR
from cellucid_nb.exporter.prepare import prepare


def _symmetric(n: int, dtype: str, seed: int, zeros: bool = True, diagonal: bool = True) -> sparse.csr_matrix:
    """A random symmetric canonical CSR: each pair's two entries hold the same value, some stored zeros."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=8 * n)
    j = rng.integers(0, n, size=8 * n)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    pairs = np.unique(lo[lo < hi] * n + hi[lo < hi])
    lo, hi = pairs // n, pairs % n
    values = rng.random(pairs.size).astype(dtype)
    if zeros:
        values[rng.random(pairs.size) < 0.1] = 0  # stored zeros: never edges
    rows, cols, data = np.r_[lo, hi], np.r_[hi, lo], np.r_[values, values]
    if diagonal:
        d = rng.choice(n, size=n // 3, replace=False)
        rows, cols, data = np.r_[rows, d], np.r_[cols, d], np.r_[data, rng.random(d.size).astype(dtype)]
    m = sparse.csr_matrix((data, (rows, cols)), shape=(n, n), dtype=dtype)
    m.sort_indices()
    assert m.has_canonical_format
    return m


def _on_disk(path, m: sparse.csr_matrix) -> BlockCSR:
    with h5py.File(path, "w") as f:
        g = f.create_group("g")
        g.attrs["shape"] = m.shape
        for name in ("indptr", "indices", "data"):
            g[name] = getattr(m, name)
    disk = BlockCSR.from_group(h5py.File(path, "r")["g"])
    disk.validate()
    assert disk.has_canonical_format
    return disk


def _blocked(matrix) -> tuple[bytes, bytes, bytes, int, int]:
    """Payload bytes of the block iterator (joined), its DegreeCounter's ``most`` and its block count."""
    index = index_dtype_for(matrix.shape[0])
    degrees = graph_blocks.DegreeCounter(matrix.shape[0])
    blocks = list(graph_blocks.iter_edge_blocks(matrix, index, degrees))
    joined = [b"".join(block[k].tobytes() for block in blocks) for k in range(3)]
    return joined[0], joined[1], joined[2], degrees.most, len(blocks)


def _expected(m: sparse.csr_matrix) -> tuple[bytes, bytes, bytes, int]:
    src, dst, weights, most = extract_edges(m)
    index = index_dtype_for(m.shape[0])
    return src.astype(index).tobytes(), dst.astype(index).tobytes(), weights.astype("<f8").tobytes(), most


@pytest.fixture
def transposes(monkeypatch):
    """Counts the calls of the transpose builder (the general path), still running it."""
    calls = []
    real = graph_blocks._strict_lower_transposed

    def spy(a, *args):
        calls.append(a.shape)
        return real(a, *args)

    monkeypatch.setattr(graph_blocks, "_strict_lower_transposed", spy)
    monkeypatch.setattr(graph_blocks, "BLOCK_ENTRIES", 500)  # many blocks
    return calls


def _no_transpose(a, *args):
    raise AssertionError("the transpose was built for a symmetric graph")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("where", ["scipy", "file"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_symmetric_graph_takes_the_fast_path_with_the_same_bytes(tmp_path, monkeypatch, dtype, where, seed):
    monkeypatch.setattr(graph_blocks, "BLOCK_ENTRIES", 500)
    monkeypatch.setattr(graph_blocks, "_strict_lower_transposed", _no_transpose)
    m = _symmetric(2000, dtype, seed)
    assert (m.diagonal() != 0).any() and (m.data == 0).any()
    graph = m if where == "scipy" else _on_disk(tmp_path / "g.h5", m)
    *payloads, most, n_blocks = _blocked(graph)
    assert n_blocks > 10
    assert (*payloads, most) == _expected(m)
    src, dst, weights, most_whole = graph_blocks.extract_edges_blocked(graph, index_dtype_for(m.shape[0]))
    assert (src.tobytes(), dst.tobytes(), weights.tobytes(), most_whole) == _expected(m)


def test_fast_path_counts_degrees_per_row_without_a_per_cell_array(monkeypatch):
    monkeypatch.setattr(graph_blocks, "BLOCK_ENTRIES", 300)
    m = _symmetric(1500, "float32", 7)
    degrees = graph_blocks.DegreeCounter(m.shape[0])
    for _ in graph_blocks.iter_edge_blocks(m, "<u4", degrees):
        pass
    assert degrees.degree is None and degrees.most == extract_edges(m)[3]


def test_degree_counter_per_edge_is_int32():
    degrees = graph_blocks.DegreeCounter(5)
    degrees.add(np.array([0, 0, 1], dtype="<u4"), np.array([1, 4, 4], dtype="<u4"))
    assert degrees.degree is not None and degrees.degree.dtype == np.int32
    assert degrees.degree.tolist() == [2, 2, 0, 0, 2] and degrees.most == 2


def test_hand_written_examples():
    # Symmetric with a stored zero (0, 2)/(2, 0) and a diagonal entry: edges (0,1) and (1,2), doubled.
    rows, cols = [0, 0, 0, 1, 1, 2, 2], [0, 1, 2, 0, 2, 0, 1]
    sym = sparse.csr_matrix((np.array([9, 2, 0, 2, 3, 0, 3], dtype=np.float32), (rows, cols)), shape=(3, 3))
    assert sym.nnz == 7 and sym.has_canonical_format and graph_blocks.is_symmetric(sym)
    src, dst, weights, most = graph_blocks.extract_edges_blocked(sym, "<u2")
    assert src.tolist() == [0, 1] and dst.tolist() == [1, 2] and weights.tolist() == [4.0, 6.0] and most == 2
    # Not symmetric: (0, 1) only one way, (2, 0) the other way round.
    asym = sparse.csr_matrix(np.array([[0, 1, 0], [0, 0, 0], [5, 0, 0]], dtype=np.float32))
    assert not graph_blocks.is_symmetric(asym)
    src, dst, weights, most = graph_blocks.extract_edges_blocked(asym, "<u2")
    assert src.tolist() == [0, 0] and dst.tolist() == [1, 2] and weights.tolist() == [1.0, 5.0] and most == 2


@pytest.mark.parametrize("where", ["scipy", "file"])
def test_asymmetric_graph_falls_back_to_the_transpose(tmp_path, transposes, where):
    rng = np.random.default_rng(3)
    n = 1500
    rows = np.repeat(np.arange(n), 6)
    m = sparse.csr_matrix((rng.random(rows.size).astype(np.float32), (rows, rng.integers(0, n, rows.size))),
                          shape=(n, n))
    graph = m if where == "scipy" else _on_disk(tmp_path / "g.h5", m)
    assert not graph_blocks.is_symmetric(graph)
    *payloads, most, _ = _blocked(graph)
    assert (*payloads, most) == _expected(m) and transposes == [(n, n)]


@pytest.mark.parametrize("where", ["scipy", "file"])
@pytest.mark.parametrize("change", ["pattern_not_values", "one_entry_one_ulp", "values_swapped_between_pairs",
                                    "one_entry_missing", "negative_zero_one_way"])
def test_almost_symmetric_graphs_fall_back_and_match(tmp_path, transposes, where, change):
    m = _symmetric(1500, "float32", 11, zeros=False)
    upper = np.flatnonzero(np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)) < m.indices)
    if change == "pattern_not_values":
        m.data[upper] = np.float32(0.25) + m.data[upper]  # the upper triangle's values only
    elif change == "one_entry_one_ulp":
        m.data[upper[37]] = np.nextafter(m.data[upper[37]], np.float32(2))
    elif change == "values_swapped_between_pairs":
        # (i,j)=a,(j,i)=b and (k,l)=b,(l,k)=a: the same values, the same pairs, not symmetric.
        a, b = upper[10], upper[20]
        m.data[a], m.data[b] = np.float32(0.5), np.float32(0.75)
        lower_a = _mirror(m, a)
        lower_b = _mirror(m, b)
        m.data[lower_a], m.data[lower_b] = np.float32(0.75), np.float32(0.5)
    elif change == "one_entry_missing":
        m.data[upper[5]] = 0
        m.eliminate_zeros()  # (i, j) gone, (j, i) kept
    else:  # -0.0 one way, a value the other: the bits differ
        m.data[upper[3]] = -0.0
    m.sort_indices()
    graph = m if where == "scipy" else _on_disk(tmp_path / "g.h5", m)
    assert not graph_blocks.is_symmetric(graph)
    *payloads, most, _ = _blocked(graph)
    assert (*payloads, most) == _expected(m) and transposes == [m.shape]


def _mirror(m: sparse.csr_matrix, k: int) -> int:
    """Storage position of the mirror of stored entry ``k``."""
    i = int(np.searchsorted(m.indptr, k, side="right") - 1)
    j = int(m.indices[k])
    s, e = int(m.indptr[j]), int(m.indptr[j + 1])
    return s + int(np.flatnonzero(m.indices[s:e] == i)[0])


def test_zeros_of_either_sign_are_no_edges_and_keep_the_fast_path(monkeypatch):
    """Stored zeros are never edges: -0.0 one way and 0.0 (or nothing) the other is still symmetric."""
    monkeypatch.setattr(graph_blocks, "_strict_lower_transposed", _no_transpose)
    m = _symmetric(800, "float64", 5, zeros=False)
    upper = np.flatnonzero(np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)) < m.indices)
    m.data[upper[4]] = -0.0
    m.data[_mirror(m, upper[4])] = 0.0
    assert graph_blocks.is_symmetric(m)
    *payloads, most, _ = _blocked(m)
    assert (*payloads, most) == _expected(m)


def test_fingerprint_depends_on_the_key_and_sees_the_triangles():
    m = _symmetric(500, "float32", 9)
    first = graph_blocks.symmetry_fingerprint(m, bytes(range(24)))
    second = graph_blocks.symmetry_fingerprint(m, bytes(range(1, 25)))
    assert first[0] == first[1] and second[0] == second[1] and first[0] != second[0]
    off_diagonal_nonzero = int(((m.data != 0) & (np.repeat(np.arange(500), np.diff(m.indptr)) != m.indices)).sum())
    assert first[2] == first[3] == off_diagonal_nonzero // 2
    with pytest.raises(ValueError, match="key has 8 bytes, expected 24"):
        graph_blocks.symmetry_fingerprint(m, bytes(8))


def test_export_of_a_symmetric_graph_writes_extract_edges_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(graph_blocks, "BLOCK_ENTRIES", 2000)
    monkeypatch.setattr(graph_blocks, "_strict_lower_transposed", _no_transpose)
    n = 3000
    m = _symmetric(n, "float32", 4)
    rng = np.random.default_rng(4)
    out = tmp_path / "out"
    prepare(X_umap_2d=rng.normal(size=(n, 2)), latent_space=rng.normal(size=(n, 3)), connectivities=m,
            obs=pd.DataFrame({"score": rng.normal(size=n)}), compression=None, created_at=CREATED, out_dir=out)
    *payloads, most = _expected(m)
    for name, expected in zip(EDGE_FILES, payloads, strict=True):
        assert (out / "connectivity" / name).read_bytes() == expected
    manifest = json.loads((out / "connectivity_manifest.json").read_text())
    assert manifest["max_neighbors"] == most and manifest["n_edges"] == len(payloads[0]) // 2


def test_row_blocks_search_int32_pointers_in_place_up_to_their_top():
    ptr = np.array([0, 5, 5, 9, 2**31 - 3, 2**31 - 1], dtype=np.int32)
    expected = [(0, 2), (2, 3), (3, 4), (4, 5)]  # by hand: at most 6 entries, or one row
    assert graph_blocks._row_blocks(ptr, None, 6) == graph_blocks._row_blocks(ptr.astype(np.int64), None, 6) == expected
    assert graph_blocks._row_blocks(ptr, None, 2**40) == [(0, 5)]


class _Stop(Exception):
    pass


@pytest.mark.parametrize("symmetric", [True, False])
def test_passes_before_the_first_block_call_check_per_block(monkeypatch, symmetric):
    """The symmetry proof and the transpose are cancellable (the runner's check) before any edge comes out."""
    monkeypatch.setattr(graph_blocks, "BLOCK_ENTRIES", 300)
    m = _symmetric(1500, "float32", 3)
    if not symmetric:
        m = sparse.triu(m, format="csr")  # sampled rows not mirrored: straight to the transpose
        m.sort_indices()
    calls = []

    def check():
        calls.append(1)
        if len(calls) == 3:
            raise _Stop

    with pytest.raises(_Stop):
        next(graph_blocks.iter_edge_blocks(m, "<u2", check=check))
    assert len(calls) == 3
