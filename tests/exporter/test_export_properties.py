"""Property tests: safe names and collisions, quantization, edge extraction, per-gene ranges."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import sparse

from cellucid_nb.exporter.expression import iter_column_blocks
from cellucid_nb.exporter.genes import block_ranges
from cellucid_nb.exporter.graph import extract_edges, index_dtype_for
from cellucid_nb.format import codecs
from cellucid_nb.format.naming import NameCollisionError, check_no_collisions, find_name_collisions, safe_name

FAST = settings(max_examples=60, deadline=None)


@FAST
@given(st.text(max_size=30))
def test_safe_name_is_safe_and_idempotent(name: str) -> None:
    safe = safe_name(name)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", safe)
    assert not safe.startswith((".", "_")) or safe == "field"
    assert safe_name(safe) == safe


@FAST
@given(st.lists(st.text(alphabet="aAbB _.-1", max_size=4), max_size=8))
def test_collisions_found_exactly_when_folded_names_repeat(keys: list[str]) -> None:
    folded = [safe_name(k).casefold() for k in keys]
    collisions = find_name_collisions(keys)
    assert len(collisions) == len(folded) - len(set(folded))
    for first, second, name in collisions:
        assert safe_name(first).casefold() == safe_name(second).casefold() == name.casefold()
    if collisions:
        with pytest.raises(NameCollisionError, match=re.escape(repr(collisions[0][1]))):
            check_no_collisions(keys, "obs")


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=32)


@FAST
@given(hnp.arrays(np.float32, st.integers(1, 200), elements=finite_or_not), st.sampled_from([8, 16]))
def test_quantization_roundtrip_within_half_step(values: np.ndarray, bits: int) -> None:
    lo, hi = codecs.value_range(values)
    assert hi > lo
    codes = codecs.quantize(values, lo, hi, bits)
    decoded = codecs.dequantize(codes, lo, hi, bits)
    finite = np.isfinite(values)
    assert np.all(np.isnan(decoded[~finite]))
    assert np.all(codes[~finite] == codecs.MISSING_CODE[bits])
    assert np.all(codes[finite] <= codecs.QUANT_MAX[bits])
    step = (hi - lo) / codecs.QUANT_MAX[bits]
    err = np.abs(decoded[finite].astype(np.float64) - values[finite].astype(np.float64))
    # half a step, plus float32 rounding of the decode itself
    assert np.all(err <= step / 2 + 1e-6 * max(abs(lo), abs(hi), 1.0) + step * 1e-3)


@FAST
@given(st.floats(-1e6, 1e6, width=32), st.integers(1, 50))
def test_constant_field_gets_max_min_plus_one(value: float, n: int) -> None:
    lo, hi = codecs.value_range(np.full(n, value, dtype=np.float32))
    assert lo == pytest.approx(value) and hi == lo + 1.0


def _dense_edges(a: np.ndarray):
    sym = a + a.T
    np.fill_diagonal(sym, 0)
    src, dst = np.nonzero(np.triu(sym, k=1))
    return src, dst, sym[src, dst], int((sym != 0).sum(axis=1).max(initial=0))


@FAST
@given(st.integers(1, 25), st.floats(0.0, 0.6), st.integers(0, 2**16), st.sampled_from(["csr", "csc", "coo", "dense"]))
def test_edges_match_dense_reference(n: int, density: float, seed: int, fmt: str) -> None:
    rng = np.random.default_rng(seed)
    a = np.where(rng.random((n, n)) < density, rng.random((n, n)) + 0.01, 0.0)
    matrix = a if fmt == "dense" else sparse.random(1, 1).asformat(fmt).__class__(a)
    src, dst, weights, max_neighbors = extract_edges(sparse.csr_matrix(matrix))
    e_src, e_dst, e_w, e_max = _dense_edges(a)
    assert np.all(src < dst)
    keys = src * n + dst
    assert np.all(np.diff(keys) > 0)  # sorted by (src, dst) and unique
    assert np.array_equal(src, e_src) and np.array_equal(dst, e_dst)
    np.testing.assert_allclose(weights, e_w, rtol=1e-12)
    assert weights.dtype == np.float64 and np.all(weights > 0)
    assert max_neighbors == e_max


def test_index_dtype_boundary() -> None:
    assert index_dtype_for(65536) == np.dtype("<u2")
    assert index_dtype_for(65537) == np.dtype("<u4")


def _with_specials(rng: np.random.Generator, dense: np.ndarray) -> np.ndarray:
    dense = dense.copy()
    dense[rng.integers(0, dense.shape[0], 3), rng.integers(0, dense.shape[1], 3)] = [np.nan, np.inf, -np.inf]
    return dense


@FAST
@given(st.integers(1, 40), st.integers(1, 30), st.floats(0.0, 1.0), st.integers(0, 2**16),
       st.sampled_from(["csr", "csc", "coo", "dense"]), st.booleans())
def test_block_ranges_match_value_range(n: int, g: int, density: float, seed: int, fmt: str, specials: bool) -> None:
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, g)) < density, rng.normal(size=(n, g)), 0.0).astype(np.float32)
    if specials:
        dense = _with_specials(rng, dense)
    matrix = dense if fmt == "dense" else sparse.csr_matrix(dense).asformat(fmt)
    columns = rng.permutation(g)[: max(1, g // 2)]
    seen = []
    for block in iter_column_blocks(matrix, columns):
        lo, hi = block_ranges(block, n)
        for j, pos in enumerate(block.positions):
            column = dense[:, columns[pos]]
            stored = column if fmt == "dense" else sparse.csc_matrix(matrix)[:, columns[pos]].data
            implicit = fmt != "dense" and stored.shape[0] < n
            assert (lo[j], hi[j]) == pytest.approx(codecs.value_range(stored, implicit_zero=implicit))
            seen.append(pos)
    assert sorted(seen) == list(range(columns.shape[0]))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 3 * codecs.CHUNK_BYTES + 17), st.integers(0, 2**16), st.sampled_from([1, 6, 9]), st.booleans())
def test_chunked_gzip_is_one_valid_member_independent_of_threads(size: int, seed: int, level: int, rle: bool) -> None:
    import gzip
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(seed)
    data = np.where(rng.random(size) < 0.9, 0, rng.integers(0, 255, size)).astype(np.uint8)
    serial = codecs.gzip_bytes(data, level, rle=rle)
    with ThreadPoolExecutor(2) as pool:
        parallel = codecs.gzip_bytes(data, level, rle=rle, map_fn=pool.map)
    assert serial == parallel
    assert gzip.decompress(serial) == data.tobytes() == codecs.gunzip_bytes(serial)
    assert serial[:2] == b"\x1f\x8b" and serial[4:8] == b"\0\0\0\0"  # mtime 0
    strategy = codecs.dense_strategy(data, level)
    assert codecs.gunzip_bytes(codecs.gzip_bytes(data, level, strategy=strategy)) == data.tobytes()
