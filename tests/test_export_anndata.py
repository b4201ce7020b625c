"""export(adata, plan): to_code equivalence, backed AnnData, progress, cancel."""

from __future__ import annotations

import hashlib
import threading
import warnings
from pathlib import Path

import anndata
import pytest
from pbmc_data import pbmc68k_reduced

from cellucid_nb.adata.exporting import export
from cellucid_nb.adata.plan import ExportPlan
from cellucid_nb.exporter.progress import ExportCancelled

CREATED = "2024-01-01T00:00:00Z"
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def pbmc() -> anndata.AnnData:
    return pbmc68k_reduced()


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def test_to_code_reproduces_the_export_byte_for_byte(pbmc, tmp_path):
    plan = ExportPlan.from_anndata(pbmc).replace(compression=9, var_quantization=16, dataset_name="PBMC")
    first = tmp_path / "a" / "export"
    export(pbmc, plan, first, created_at=CREATED)
    second = tmp_path / "b" / "export"
    code = plan.to_code(out_dir=str(second), created_at=CREATED, record_plan=True)
    assert code.startswith("from cellucid_nb import prepare") and "gene_identifiers=" in code
    exec(compile(code, "<to_code>", "exec"), {"adata": pbmc})
    assert _tree(first) == _tree(second) and len(_tree(first)) > 300


def test_backed_export_equals_in_memory_and_reports_loading(pbmc, tmp_path):
    path = tmp_path / "pbmc.h5ad"
    adata = pbmc.copy()
    adata.layers["counts"] = adata.raw.X.copy()
    adata.write_h5ad(path)
    backed = anndata.read_h5ad(path, backed="r")
    for source in ("X", "raw"):
        plan = ExportPlan.from_anndata(pbmc).replace(expression_source=source)
        mem = tmp_path / "mem" / source
        export(pbmc, plan, mem, created_at=CREATED)
        events = []
        out = tmp_path / "backed" / source
        export(backed, plan, out, created_at=CREATED, progress=events.append)
        assert _tree(out) == _tree(mem)
        assert events[0].phase == "load" and any(e.phase == "genes" for e in events)
    assert backed.isbacked


def test_progress_is_monotonic_and_throttled(pbmc, tmp_path):
    events = []
    result = export(pbmc, ExportPlan.from_anndata(pbmc).replace(genes=None), tmp_path / "p", progress=events.append)
    assert events and events[-1].done == events[-1].total
    dones = [e.done for e in events]
    assert dones == sorted(dones)
    assert len(events) <= 10 * result.seconds + 12  # ~10/s plus forced phase changes
    assert result.n_files > 700 and result.n_bytes > 0 and result.path == tmp_path / "p"


def test_cancel_leaves_nothing_and_keeps_the_previous_export(pbmc, tmp_path):
    out = tmp_path / "export"
    plan = ExportPlan.from_anndata(pbmc)
    export(pbmc, plan, out, created_at=CREATED)
    before = _tree(out)
    cancel = threading.Event()

    def stop_in_genes(event):
        if event.phase == "genes":
            cancel.set()

    with pytest.raises(ExportCancelled):
        export(pbmc, plan.replace(genes=None, compression=9), out, progress=stop_in_genes, cancel=cancel)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no staging folder left


def test_cancel_while_loading_a_backed_matrix_writes_nothing(pbmc, tmp_path):
    path = tmp_path / "pbmc.h5ad"
    pbmc.write_h5ad(path)
    backed = anndata.read_h5ad(path, backed="r")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ExportCancelled, match="loading genes"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export(backed, ExportPlan.from_anndata(pbmc), tmp_path / "never", cancel=cancel)
    assert not (tmp_path / "never").exists()


def test_load_genes_reads_chosen_columns_from_any_backed_layout(tmp_path):
    import numpy as np
    from scipy import sparse

    from cellucid_nb.adata.exporting import load_genes

    dense = sparse.random(230, 40, density=0.25, random_state=5, dtype=np.float32).toarray()
    columns = np.array([7, 3, 39, 0, 12])
    for layout in ("dense", "csr", "csc"):
        x = dense if layout == "dense" else getattr(sparse, f"{layout}_matrix")(dense)
        path = tmp_path / f"{layout}.h5ad"
        anndata.AnnData(X=x).write_h5ad(path)
        backed = anndata.read_h5ad(path, backed="r")
        seen = []
        got = load_genes(backed.X, columns, row_chunk=50, on_rows=lambda d, t, seen=seen: seen.append((d, t)))
        got = got.toarray() if sparse.issparse(got) else got
        np.testing.assert_array_equal(got, dense[:, columns])
        assert seen[-1] == (230, 230) and [d for d, _ in seen] == sorted(d for d, _ in seen)
        backed.file.close()
