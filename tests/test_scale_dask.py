"""export(..., client=...) on a LocalCluster(n_workers=2, processes=True): h5ad, zarr, lazy, a killed worker."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import anndata
import cloudpickle
import numpy as np
import pytest
import zarr
from distributed import Client, Event, LocalCluster, get_task_stream

from benchmarks import synthetic
from cellucid_nb.adata.exporting import export
from cellucid_nb.adata.plan import ExportPlan
from cellucid_nb.adata.spill import SPILL_PREFIX
from cellucid_nb.exporter.progress import ExportCancelled

CREATED = "2026-01-01T00:00:00Z"
N_CELLS, N_GENES = 3_000, 120

# Functions of this module run on the workers, which cannot import it: send them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    adata = synthetic.make_anndata(N_CELLS, N_GENES, seed=7)
    adata.write_h5ad(root / "a.h5ad")
    adata.write_zarr(root / "a.zarr")
    plan = ExportPlan.from_anndata(adata).replace(genes=None)
    ref = root / "ref" / "export"
    export(adata, plan, ref, created_at=CREATED)
    return {"root": root, "adata": adata, "plan": plan, "ref": ref}


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _lazy(data, x) -> anndata.AnnData:
    a = data["adata"]
    return anndata.AnnData(X=x, obs=a.obs, var=a.var, obsm=dict(a.obsm), obsp=dict(a.obsp), uns=dict(a.uns))


def _spill_names(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(SPILL_PREFIX)]


def test_backed_h5ad_rows_run_on_the_workers_with_the_same_bytes(client, data, tmp_path):
    backed = anndata.read_h5ad(data["root"] / "a.h5ad", backed="r")
    events = []
    with get_task_stream(client) as stream:
        export(backed, data["plan"], tmp_path / "export", created_at=CREATED, client=client, memory_limit="1GB",
               progress=lambda e: events.append((e.phase, e.done, e.total)))
    assert _tree(tmp_path / "export") == _tree(data["ref"])
    assert {t["worker"] for t in stream.data if "_spill_file_task" in str(t["key"])}
    # Rows read by finished tasks count in the progress: the last event has them all.
    assert events[0] == ("load", 0, N_CELLS) and events[-1][1] == events[-1][2] > N_CELLS
    assert _spill_names(tmp_path) == []


def test_zarr_read_lazily_on_the_workers_with_the_same_bytes(client, data, tmp_path):
    group = zarr.open_group(str(data["root"] / "a.zarr"), mode="r")
    lazy = _lazy(data, anndata.experimental.read_elem_lazy(group["X"], chunks=(700, -1)))
    with get_task_stream(client) as stream:
        export(lazy, data["plan"], tmp_path / "export", created_at=CREATED, client=client)
    assert _tree(tmp_path / "export") == _tree(data["ref"])
    assert sum("_spill_block_task" in str(t["key"]) for t in stream.data) == 5  # one task per row chunk
    assert _spill_names(tmp_path) == []


def _gate(block, gate_name):
    """The first time it runs, say so and wait for the test's go-ahead (the test kills this worker meanwhile)."""
    started, go = Event(f"{gate_name}-started"), Event(f"{gate_name}-go")
    if not started.is_set():
        started.set()
        go.wait(60)
    return block


def _gated_lazy(data, name):
    import h5py

    handle = h5py.File(data["root"] / "a.h5ad", "r")
    x = anndata.experimental.read_elem_lazy(handle["X"], chunks=(1000, -1))
    gated = x.map_blocks(_gate, name, dtype=x.dtype, meta=x._meta)
    return _lazy(data, gated)


def _run_in_thread(fn):
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as err:  # noqa: BLE001 - checked by the test
            box["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def test_a_worker_killed_mid_export_is_retried_and_the_bytes_are_the_same(client, data, tmp_path):
    lazy = _gated_lazy(data, "kill")
    thread, box = _run_in_thread(lambda: export(lazy, data["plan"], tmp_path / "export", created_at=CREATED,
                                                client=client))
    assert Event("kill-started", client=client).wait(60)
    processing = {w: keys for w, keys in client.processing().items() if any("_gate" in str(k) or "spill" in str(k)
                                                                             for k in keys)}
    pids = client.run(os.getpid)
    victim = next(iter(processing)) if processing else next(iter(pids))
    os.kill(pids[victim], signal.SIGKILL)
    Event("kill-go", client=client).set()
    thread.join(120)
    assert "error" not in box, box.get("error")
    assert _tree(tmp_path / "export") == _tree(data["ref"])
    assert _spill_names(tmp_path) == []
    client.wait_for_workers(2, timeout=60)


def test_cancel_while_workers_read_leaves_nothing(client, data, tmp_path):
    lazy = _gated_lazy(data, "cancel")
    cancel = threading.Event()
    thread, box = _run_in_thread(lambda: export(lazy, data["plan"], tmp_path / "export", created_at=CREATED,
                                                client=client, cancel=cancel))
    assert Event("cancel-started", client=client).wait(60)
    assert len(_spill_names(tmp_path)) == 1  # the spill folder exists while the workers run
    cancel.set()
    thread.join(60)
    Event("cancel-go", client=client).set()
    assert isinstance(box.get("error"), ExportCancelled)
    client.cancel(list(client.futures))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_h5ad_the_workers_cannot_open_is_refused_before_writing(client, data, tmp_path):
    moved = tmp_path / "moved.h5ad"
    moved.write_bytes((data["root"] / "a.h5ad").read_bytes())
    backed = anndata.read_h5ad(moved, backed="r")
    _ = backed.X.shape  # the client keeps its open handle; the path is gone for the workers
    os.rename(moved, tmp_path / "elsewhere.h5ad")
    with pytest.raises(ValueError, match=r"2 of 2 Dask worker\(s\) cannot take part .*cannot open '/X' .* "
                                         r"file system every worker mounts at the same path"):
        export(backed, data["plan"], tmp_path / "out" / "export", client=client)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.h5ad", "out"]
    assert list((tmp_path / "out").iterdir()) == []
    np.testing.assert_equal(backed.X.shape, (N_CELLS, N_GENES))


def test_cli_scheduler_option_exports_with_the_cluster(client, data, tmp_path, capsys):
    from cellucid_nb.cli import main as cli_main
    from cellucid_nb.format.validator import validate_export

    with get_task_stream(client) as stream:
        code = cli_main(["export", str(data["root"] / "a.h5ad"), str(tmp_path / "export"), "--scheduler",
                         client.scheduler.address, "--memory-limit", "1GB", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert any("_spill_file_task" in str(t["key"]) for t in stream.data)
    assert validate_export(tmp_path / "export") == []
    assert _spill_names(tmp_path) == []
