"""Bounded-memory export (adata/streaming.py, spill.py, sources.py, budget.py) on small data.

A budget just above the exporter's fixed working set forces the spill path on a few
thousand cells; every output is compared byte for byte with the in-memory export of
the same AnnData and ``created_at``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import anndata
import numpy as np
import pytest
from scipy import sparse

from benchmarks import synthetic
from cellucid_nb.adata import budget, streaming
from cellucid_nb.adata.exporting import export
from cellucid_nb.adata.plan import ExportPlan, PlanError
from cellucid_nb.adata.sources import row_source
from cellucid_nb.adata.spill import SPILL_PREFIX, SpilledMatrix
from cellucid_nb.cli import main as cli_main
from cellucid_nb.exporter.progress import ExportCancelled

CREATED = "2026-01-01T00:00:00Z"
N_CELLS, N_GENES = 4_000, 240


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The AnnData, its h5ad files (CSR, CSC and dense X) and the in-memory reference export."""
    root = tmp_path_factory.mktemp("scale")
    adata = synthetic.make_anndata(N_CELLS, N_GENES, seed=5)
    adata.write_h5ad(root / "csr.h5ad")
    csc = adata.copy()
    csc.X = sparse.csc_matrix(adata.X)
    csc.write_h5ad(root / "csc.h5ad")
    dense = adata.copy()
    dense.X = adata.X.toarray()
    dense.write_h5ad(root / "dense.h5ad")
    plan = ExportPlan.from_anndata(adata).replace(genes=None)
    ref = root / "ref" / "export"
    export(adata, plan, ref, created_at=CREATED)
    return {"root": root, "adata": adata, "plan": plan, "ref": ref}


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_same(a: Path, b: Path) -> None:
    ta, tb = _tree(a), _tree(b)
    assert sorted(ta) == sorted(tb)
    assert [k for k in ta if ta[k] != tb[k]] == []


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(SPILL_PREFIX) or ".cellucid" in p.name)


def _spill_budget(backed, plan, monkeypatch) -> int:
    """A budget that forces the spill path with chunks of about a sixth of the rows."""
    monkeypatch.setattr(streaming, "MIN_CHUNK_ROWS", 128)
    n_columns = backed.n_vars if plan.genes is None else len(plan.genes)
    probe = streaming.choose_path(row_source(backed.X), n_columns, 2**50, n_workers=2,
                                  per_cell_bytes=streaming.per_cell_bytes(backed, plan), payload_itemsize=1)
    return probe.fixed_bytes + probe.load_bytes // 3


@pytest.fixture
def spy(monkeypatch):
    """Counts calls of the row pass and of today's whole load."""
    import cellucid_nb.adata.exporting as exporting

    calls = {"spill": 0, "load": 0}
    spill_rows, original_load = streaming.spill_rows, exporting.load_genes

    def counted_spill(*args, **kwargs):
        calls["spill"] += 1
        return spill_rows(*args, **kwargs)

    def counted_load(*args, **kwargs):
        calls["load"] += 1
        return original_load(*args, **kwargs)

    monkeypatch.setattr(streaming, "spill_rows", counted_spill)
    monkeypatch.setattr(exporting, "load_genes", counted_load)
    return calls


@pytest.mark.parametrize("layout", ["csr", "dense"])
def test_spill_path_is_byte_identical_and_reports_rows_then_genes(data, tmp_path, monkeypatch, spy, layout):
    backed = anndata.read_h5ad(data["root"] / f"{layout}.h5ad", backed="r")
    limit = _spill_budget(backed, data["plan"], monkeypatch)
    events = []
    out = tmp_path / "export"
    export(backed, data["plan"], out, created_at=CREATED, memory_limit=limit,
           progress=lambda e: events.append((e.phase, e.done, e.total)))
    _assert_same(data["ref"], out)
    assert spy == {"spill": 1, "load": 0}
    # Rows first (the row pass then runs beside points, graph and obs; its rows count in
    # every later event), then the exporter's phases with genes; done never decreases.
    assert events[0] == ("load", 0, N_CELLS)
    phases = [p for p, _, _ in events]
    assert phases.index("genes") > phases.index("points") > 0
    done = [d for _, d, _ in events]
    assert done == sorted(done) and events[-1][1] == events[-1][2] > N_CELLS
    assert _leftovers(tmp_path) == []


def test_gene_subset_in_plan_order_and_column_major_source(data, tmp_path, monkeypatch, spy):
    genes = tuple(reversed(data["adata"].var_names[::7]))
    plan = data["plan"].replace(genes=genes)
    ref = tmp_path / "ref" / "export"
    export(data["adata"], plan, ref, created_at=CREATED)
    backed = anndata.read_h5ad(data["root"] / "csr.h5ad", backed="r")
    out = tmp_path / "spill" / "export"
    export(backed, plan, out, created_at=CREATED, memory_limit=_spill_budget(backed, plan, monkeypatch))
    _assert_same(ref, out)
    # CSC on disk: read by column blocks, no spill and no whole load.
    csc = anndata.read_h5ad(data["root"] / "csc.h5ad", backed="r")
    out = tmp_path / "csc" / "export"
    export(csc, plan, out, created_at=CREATED, memory_limit=_spill_budget(csc, plan, monkeypatch))
    _assert_same(ref, out)
    assert spy == {"spill": 1, "load": 0}


def test_data_that_fits_keeps_the_whole_load(data, tmp_path, spy):
    backed = anndata.read_h5ad(data["root"] / "csr.h5ad", backed="r")
    out = tmp_path / "export"
    export(backed, data["plan"], out, created_at=CREATED)  # default budget: half the RAM
    _assert_same(data["ref"], out)
    assert spy == {"spill": 0, "load": 1}


def test_spilled_matrix_columns_equal_the_source(data, tmp_path):
    from cellucid_nb.adata.spill import SpillDir

    matrix = data["adata"].X
    columns = np.array([5, 3, 200, 0, 17], dtype=np.int64)
    with SpillDir(tmp_path) as spill:
        spilled = streaming.spill_rows(row_source(matrix), columns, spill, 999)
        expected = matrix[:, columns].tocsc()
        got = spilled[:, 1:4]
        assert got.has_canonical_format and got.dtype == np.float32
        assert (got != expected[:, 1:4]).nnz == 0
        assert (spilled[:, np.array([4, 0])] != expected[:, [4, 0]]).nnz == 0
        assert spilled.nnz == expected.nnz and len(spilled.records) == 5
        with pytest.raises(TypeError, match="never densified"):
            np.asarray(spilled)
        spilled.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("phase", ["points", "genes"])
def test_cancel_leaves_nothing_spill_included(data, tmp_path, monkeypatch, phase):
    backed = anndata.read_h5ad(data["root"] / "csr.h5ad", backed="r")
    limit = _spill_budget(backed, data["plan"], monkeypatch)
    cancel = threading.Event()
    seen = []

    def progress(event):
        if event.phase == phase and not cancel.is_set():
            seen.append(sorted(p.name for p in tmp_path.iterdir()))
            cancel.set()

    with pytest.raises(ExportCancelled):
        export(backed, data["plan"], tmp_path / "export", created_at=CREATED, memory_limit=limit,
               progress=progress, cancel=cancel)
    assert any(name.startswith(SPILL_PREFIX) for name in seen[0])  # the spill existed while running
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_failure_reading_the_spill_removes_it(data, tmp_path, monkeypatch):
    backed = anndata.read_h5ad(data["root"] / "csr.h5ad", backed="r")
    limit = _spill_budget(backed, data["plan"], monkeypatch)

    def broken(self, first, stop):
        raise RuntimeError("disk read failed")

    monkeypatch.setattr(SpilledMatrix, "columns", broken)
    with pytest.raises(RuntimeError, match="disk read failed"):
        export(backed, data["plan"], tmp_path / "export", created_at=CREATED, memory_limit=limit)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["lots", "-1GB", 0, -5, True, "1.5 parsecs", [1]])
def test_a_budget_that_is_not_a_size_is_refused_before_writing(data, tmp_path, value):
    with pytest.raises(ValueError, match=r"memory_limit=.* is not a size: expected bytes as an integer"):
        export(data["adata"], data["plan"], tmp_path / "export", memory_limit=value)
    with pytest.raises(PlanError, match="is not a size"):
        data["plan"].replace(memory_limit=value)
    assert list(tmp_path.iterdir()) == []


def test_budget_sizes_parse_with_their_units():
    assert budget.parse_memory_limit("2GB") == 2 * 10**9
    assert budget.parse_memory_limit("1.5 GiB") == int(1.5 * 2**30)
    assert budget.parse_memory_limit("800M") == 800 * 2**20
    assert budget.parse_memory_limit(123456) == 123456
    assert budget.parse_memory_limit(None) == budget.parse_memory_limit("auto") == int(budget.machine_memory() / 2)


def test_a_budget_too_small_for_one_chunk_is_refused_before_writing(data, tmp_path):
    backed = anndata.read_h5ad(data["root"] / "csr.h5ad", backed="r")
    with pytest.raises(MemoryError, match=r"memory_limit=1\.0 MB is too small for one chunk: .* Give memory_limit >= "):
        export(backed, data["plan"], tmp_path / "export", memory_limit="1MB")
    assert list(tmp_path.iterdir()) == []
    assert "memory_limit" not in data["plan"].to_dict()
    assert data["plan"].replace(memory_limit="2GB").to_dict()["memory_limit"] == "2GB"


def test_not_enough_disk_is_refused_before_writing(data, tmp_path, monkeypatch):
    import shutil

    real = shutil.disk_usage

    def tiny(path):
        usage = real(path)
        return type(usage)(usage.total, usage.total - 1000, 1000)

    monkeypatch.setattr(budget.shutil, "disk_usage", tiny)
    backed = anndata.read_h5ad(data["root"] / "csr.h5ad", backed="r")
    limit = _spill_budget(backed, data["plan"], monkeypatch)
    with pytest.raises(OSError, match=r"not enough disk space .* \(export .* \+ spill files .*\) but 1.0 kB is free"):
        export(backed, data["plan"], tmp_path / "export", memory_limit=limit)
    assert list(tmp_path.iterdir()) == []


def test_a_dask_array_chunked_along_genes_is_refused(data, tmp_path):
    import dask.array as da

    lazy = data["adata"].copy()
    lazy.X = da.from_array(data["adata"].X.toarray(), chunks=(1000, 100))
    with pytest.raises(ValueError, match=r"chunked along genes .*\.rechunk\(\{1: -1\}\)"):
        export(lazy, data["plan"], tmp_path / "export")
    assert list(tmp_path.iterdir()) == []


def test_cli_memory_limit(data, tmp_path, capsys):
    path = str(data["root"] / "csr.h5ad")
    assert cli_main(["export", path, str(tmp_path / "a"), "--memory-limit", "lots", "--no-progress"]) != 0
    assert "--memory-limit='lots' is not a size" in capsys.readouterr().err
    assert cli_main(["export", path, str(tmp_path / "b"), "--memory-limit", "1MB", "--no-progress"]) != 0
    assert "too small for one chunk" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed", range(6))
def test_blocked_graph_edges_equal_extract_edges(seed, monkeypatch):
    from cellucid_nb.exporter import graph_blocks
    from cellucid_nb.exporter.graph import extract_edges

    monkeypatch.setattr(graph_blocks, "BLOCK_ENTRIES", 500)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 2500))
    m = sparse.random(n, n, density=float(rng.uniform(0.001, 0.02)), random_state=seed, format="csr", dtype=np.float32)
    if seed % 2:
        m = m + m.T  # symmetric, as scanpy's
    if seed % 3 == 0:
        m.setdiag(rng.random(n).astype(np.float32))  # the diagonal is dropped
        m.data[::5] = 0  # explicit zeros are dropped
    src, dst, weights, most = extract_edges(m)
    got = graph_blocks.extract_edges_blocked(m, "<u4")
    assert got[0].dtype == np.dtype("<u4") and got[2].dtype == np.dtype("<f8")
    assert np.array_equal(got[0], src) and np.array_equal(got[1], dst)
    assert got[2].tobytes() == weights.astype("<f8").tobytes() and got[3] == most
    # The estimate's neighbour count: exact when symmetric without stored zeros, else within 2x.
    bound = graph_blocks.max_neighbors_estimate(m)
    if seed % 2 and seed % 3:
        assert bound == most
    assert most <= 2 * bound and bound <= 2 * max(most, 1)


def _counted_lazy(data, chunk_rows):
    """The AnnData with a Dask X (whole rows per chunk) that records the rows of every chunk it computes."""
    import dask.array as da

    computed = []

    def count(block, block_info=None):
        computed.append(tuple(block_info[0]["array-location"][0]))
        return block

    lazy = data["adata"].copy()
    dense = da.from_array(data["adata"].X.toarray(), chunks=(chunk_rows, -1))
    lazy.X = dense.map_blocks(count, dtype=dense.dtype)
    return lazy, computed


def test_inspect_and_plan_compute_only_the_first_rows_of_a_lazy_matrix(data):
    from cellucid_nb.adata.inspection import inspect

    lazy, computed = _counted_lazy(data, 500)
    summary = inspect(lazy)
    plan = ExportPlan.from_anndata(lazy, summary)
    assert summary.expression_source("X").value_hint == "log-normalized"
    assert plan.expression_source == "X"
    assert set(computed) == {(0, 500)}


def test_lazy_matrix_spilled_chunk_by_chunk_gives_the_same_bytes(data, tmp_path, monkeypatch, spy):
    lazy, computed = _counted_lazy(data, 1000)
    limit = _spill_budget(lazy, data["plan"], monkeypatch)
    export(lazy, data["plan"], tmp_path / "export", created_at=CREATED, memory_limit=limit)
    _assert_same(data["ref"], tmp_path / "export")
    assert sorted(set(computed)) == [(s, s + 1000) for s in range(0, N_CELLS, 1000)]
    assert spy == {"spill": 1, "load": 0} and _leftovers(tmp_path) == []
