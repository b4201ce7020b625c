"""Gene payloads do not depend on how the expression matrix is read.

A canonical CSR matrix goes through the compiled sweeps of ``csr_kernels``;
every other input (and CSR without the C extension) through scipy slicing and numpy.
Both must write byte-identical ``var/`` payloads and manifests, for any values:
NaN, infinities, signed zeros, constant genes, ranges that need float64.
"""

from __future__ import annotations

import gc
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from export_helpers import CREATED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

from cellucid_nb.exporter import csr_kernels
from cellucid_nb.exporter.gc_pause import frozen_heap
from cellucid_nb.exporter.genes import uses_csr_kernels
from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.format import codecs


def _gene_files(folder: Path) -> dict[str, bytes]:
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    return {rel: data for rel, data in files.items() if rel.startswith("var/") or rel == "var_manifest.json"}


def _export_genes(matrix, gene_ids, subset, bits, compression, kernels: bool, monkeypatch) -> dict[str, bytes]:
    monkeypatch.setattr(csr_kernels, "AVAILABLE", kernels)
    assert uses_csr_kernels(matrix) == (kernels and matrix.format == "csr")
    n = matrix.shape[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        prepare(
            latent_space=np.zeros((n, 2)),
            obs=pd.DataFrame(index=pd.RangeIndex(n).astype(str)),
            var=pd.DataFrame(index=gene_ids),
            gene_expression=matrix,
            gene_identifiers=subset,
            X_umap_2d=np.column_stack([np.arange(n), np.arange(n) % 7]).astype(np.float32),
            var_quantization=bits,
            compression=compression,
            out_dir=out,
            created_at=CREATED,
        )
        return _gene_files(out)


_SCALES = st.sampled_from([1.0, 1e-33, 1e30, 3e38, 250.0])


@st.composite
def expression(draw):
    n = draw(st.integers(1, 40))
    g = draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n, g)) * draw(_SCALES)
    dense[rng.random((n, g)) < draw(st.sampled_from([0.0, 0.5, 0.9]))] = 0.0
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0])
    pick = rng.random((n, g)) < draw(st.sampled_from([0.0, 0.1]))
    dense[pick] = rng.choice(specials, size=int(pick.sum()))
    if draw(st.booleans()):  # a constant gene, stored in every row
        dense[:, 0] = 2.5
    # Finite float64 beyond float32's range is refused (test_export_hostile); keep values within it.
    f32_max = float(np.finfo(np.float32).max)
    dense = np.where(np.isfinite(dense), np.clip(dense, -f32_max, f32_max), dense)
    matrix = sparse.csr_matrix(dense.astype(draw(st.sampled_from([np.float32, np.float64]))))
    if n > 1 and draw(st.booleans()):  # explicit zeros stay stored
        matrix.data[::3] = 0.0
    if draw(st.booleans()):
        matrix.indices = matrix.indices.astype(np.int64)
        matrix.indptr = matrix.indptr.astype(np.int64)
    ids = [f"G{i}" for i in range(g)]
    subset = None
    if draw(st.booleans()):  # a subset in another order
        subset = list(rng.permutation(ids)[: draw(st.integers(1, g))])
    return matrix, ids, subset


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=expression(), bits=st.sampled_from([None, 8, 16]), compression=st.sampled_from([None, 1]))
def test_csr_sweeps_write_the_same_bytes_as_scipy_slicing(data, bits, compression, monkeypatch) -> None:
    matrix, ids, subset = data
    assert matrix.has_canonical_format
    swept = _export_genes(matrix, ids, subset, bits, compression, True, monkeypatch)
    sliced = _export_genes(matrix, ids, subset, bits, compression, False, monkeypatch)
    assert swept.keys() == sliced.keys() and len(swept) == 1 + len(subset or ids)
    for rel in swept:
        assert swept[rel] == sliced[rel], rel


def test_csc_dense_and_unsorted_csr_take_the_scipy_path(monkeypatch) -> None:
    rng = np.random.default_rng(1)
    dense = (rng.random((30, 5)) < 0.3) * rng.random((30, 5))
    canonical = sparse.csr_matrix(dense)
    unsorted = canonical.copy()
    unsorted.indices[:2] = unsorted.indices[:2][::-1]  # row 0 out of order (if it has 2 entries)
    unsorted.has_sorted_indices = False
    assert uses_csr_kernels(canonical)
    assert not uses_csr_kernels(sparse.csc_matrix(dense)) and not uses_csr_kernels(dense)
    assert not uses_csr_kernels(unsorted)
    ids = [f"G{i}" for i in range(5)]
    reference = _export_genes(canonical, ids, None, 8, None, True, monkeypatch)
    assert _export_genes(sparse.csc_matrix(dense), ids, None, 8, None, True, monkeypatch) == reference


def test_quantize_codes_depend_only_on_each_values_own_range() -> None:
    values = np.array([[0.0, 0.3, 1.0], [0.0, 1e-31, 2e-31], [-1e38, 0.0, 1e38]], dtype=np.float32)
    lo = values.min(axis=1).astype(np.float64)
    hi = values.max(axis=1).astype(np.float64)
    together = codecs.quantize(values, lo[:, None], hi[:, None], 8)
    one_by_one = np.stack([codecs.quantize(values[i], float(lo[i]), float(hi[i]), 8) for i in range(3)])
    rows = np.stack([codecs.quantize(values[i], lo[i : i + 1], hi[i : i + 1], 8) for i in range(3)])
    np.testing.assert_array_equal(together, rows)
    assert together[2].tolist() == [0, 127, 254]  # float64 arithmetic: no overflow
    grouped = codecs.quantize(values.ravel(), lo, hi, 8, groups=np.repeat(np.arange(3), 3))
    np.testing.assert_array_equal(grouped.reshape(3, 3), together)
    assert one_by_one[0].tolist() == together[0].tolist()


def test_frozen_heap_is_reentrant_and_always_unfreezes() -> None:
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0  # the outer export still runs
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), frozen_heap():
        raise RuntimeError("export failed")
    assert gc.get_freeze_count() == 0


def test_progress_callbacks_run_on_the_calling_thread_only(tmp_path: Path) -> None:
    from export_helpers import make_kwargs

    threads = set()
    kw = make_kwargs(n=2000, n_genes=40)
    prepare(out_dir=tmp_path / "e", progress=lambda event: threads.add(threading.get_ident()), **kw)
    assert threads == {threading.get_ident()}


def test_csr_sweeps_refuse_a_malformed_matrix_instead_of_reading_out_of_bounds() -> None:
    indices = np.array([0, 7], dtype=np.int32)  # 7 is outside a 3-column matrix
    data = np.ones(2, dtype=np.float32)
    lo, hi, count = np.full(3, np.inf, np.float32), np.full(3, -np.inf, np.float32), np.zeros(3, np.int64)
    with pytest.raises(ValueError, match="column index outside"):
        csr_kernels.column_stats(indices, data, lo, hi, count)
    indptr = np.array([0, 5], dtype=np.int32)  # points past the 2 stored values
    out = np.zeros((3, 1), dtype=np.uint8)
    with pytest.raises(ValueError, match="malformed"):
        csr_kernels.sweep_values(indptr, indices, data, np.zeros(1, np.int64), 0, 3, np.arange(3, dtype=np.int64),
                                 np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match="holds"):  # out has the wrong size for the block
        csr_kernels.sweep_codes(np.array([0, 2], np.int32), indices, data, np.zeros(1, np.int64), 0, 3,
                                np.arange(3, dtype=np.int64), np.zeros(3, np.float32), np.zeros(3), np.ones(3),
                                np.zeros(3, bool), 254, 255, out[:2])


@pytest.mark.parametrize("bits", [None, 8, 16])
def test_sparse_block_rows_equal_the_quantized_dense_genes(bits) -> None:
    # Gene by gene scatter (exporter/gene_payloads.py) against quantize() of each whole dense gene.
    from cellucid_nb.exporter.expression import ColumnBlock
    from cellucid_nb.exporter.gene_payloads import _dense_rows_from_sparse, finalise_ranges

    rng = np.random.default_rng(3)
    n = 200
    scales = np.array([1.0, 1e-33, 3e38, 250.0, 1.0])  # narrow, float64-only and plain ranges in one block
    dense = ((rng.random((n, 5)) < 0.3) * rng.normal(size=(n, 5)) * scales).astype(np.float32)
    dense[5, 0], dense[6, 0] = np.nan, np.inf
    dense[:, 4] = 0.0  # a gene without stored values
    csc = sparse.csc_matrix(dense)
    block = ColumnBlock(np.arange(5), data=csc.data, indices=csc.indices, indptr=csc.indptr)
    finite = np.where(np.isfinite(dense), dense, np.nan)
    lo, hi = finalise_ranges(np.nanmin(finite, axis=0).astype(np.float64), np.nanmax(finite, axis=0).astype(np.float64))
    rows = _dense_rows_from_sparse(block, 1, 5, lo, hi, bits, n)
    for j in range(1, 5):
        expected = dense[:, j] if bits is None else codecs.quantize(dense[:, j], lo[j : j + 1], hi[j : j + 1], bits)
        np.testing.assert_array_equal(rows[j - 1], expected)
    first = _dense_rows_from_sparse(block, 0, 1, lo, hi, bits, n)[0]
    if bits is not None:
        assert first[5] == first[6] == codecs.MISSING_CODE[bits]  # NaN and inf: the missing code
