"""export(..., client=...) on a LocalCluster(n_workers=2, processes=True): h5ad, zarr, lazy, a killed worker.

Both passes run on the workers (row spill tasks, then gene payload tasks that write into
the staging folder); the bytes are those of the single-process export.
"""

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
from distributed import Client, Event, LocalCluster, Variable, WorkerPlugin, get_task_stream

from benchmarks import synthetic
from cellucid_nb.adata.exporting import export
from cellucid_nb.adata.gene_tasks import KEY_PREFIX
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


def _gene_tasks(stream) -> set[str]:
    """Workers that ran gene payload tasks."""
    return {t["worker"] for t in stream.data if str(t["key"]).startswith(KEY_PREFIX)}


def test_backed_h5ad_rows_run_on_the_workers_with_the_same_bytes(client, data, tmp_path):
    backed = anndata.read_h5ad(data["root"] / "a.h5ad", backed="r")
    events = []
    with get_task_stream(client) as stream:
        export(backed, data["plan"], tmp_path / "export", created_at=CREATED, client=client, memory_limit="1GB",
               progress=lambda e: events.append((e.phase, e.done, e.total)))
    assert _tree(tmp_path / "export") == _tree(data["ref"])
    assert {t["worker"] for t in stream.data if "_spill_file_task" in str(t["key"])}
    assert len(_gene_tasks(stream)) == 2  # the payloads were built on both workers
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
    # 120 genes, 2 threads: 4 tasks a thread of 15 genes each.
    assert sum(str(t["key"]).startswith(KEY_PREFIX) for t in stream.data) == 8
    assert _spill_names(tmp_path) == []


def test_zarr_sparse_group_opened_by_path_on_the_workers_with_the_same_bytes(client, data, tmp_path):
    from anndata.io import sparse_dataset

    group = zarr.open_group(str(data["root"] / "a.zarr"), mode="r")
    with get_task_stream(client) as stream:
        export(_lazy(data, sparse_dataset(group["X"])), data["plan"], tmp_path / "export", created_at=CREATED,
               client=client, memory_limit="1GB")
    assert _tree(tmp_path / "export") == _tree(data["ref"])
    assert any("_spill_file_task" in str(t["key"]) for t in stream.data)  # rows read by path on the workers
    assert len(_gene_tasks(stream)) == 2
    assert _spill_names(tmp_path) == []


@pytest.mark.parametrize("settings", [{"var_quantization": 16, "layout": "index"},
                                      {"var_quantization": None, "compression": None}])
def test_other_settings_give_the_single_process_bytes_too(client, data, tmp_path, settings):
    plan = data["plan"].replace(**settings)
    export(data["adata"], plan, tmp_path / "ref" / "export", created_at=CREATED)  # same folder name
    backed = anndata.read_h5ad(data["root"] / "a.h5ad", backed="r")
    with get_task_stream(client) as stream:
        export(backed, plan, tmp_path / "export", created_at=CREATED, client=client, memory_limit="1GB")
    assert _gene_tasks(stream)
    assert _tree(tmp_path / "export") == _tree(tmp_path / "ref" / "export")


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


def test_a_second_export_with_the_cluster_links_the_equal_payloads(client, data, tmp_path, monkeypatch):
    backed = anndata.read_h5ad(data["root"] / "a.h5ad", backed="r")
    monkeypatch.chdir(tmp_path)  # a relative out_dir: the workers get the staging folder's absolute path
    export(backed, data["plan"], "export", created_at=CREATED, client=client, memory_limit="1GB")
    before = {p.name: p.stat().st_ino for p in (tmp_path / "export" / "var").iterdir()}
    result = export(backed, data["plan"], tmp_path / "export", created_at=CREATED, client=client,
                    memory_limit="1GB", force=False)
    assert _tree(tmp_path / "export") == _tree(data["ref"])
    var = sorted(p for p in result.skipped if p.startswith("var/"))
    assert len(var) == N_GENES  # adopted after the tasks wrote them, then linked from the old export
    assert {p.name: p.stat().st_ino for p in (tmp_path / "export" / "var").iterdir()} == before


class _GateGeneTasks(WorkerPlugin):
    """On every worker: the first gene task of the cluster records its pid and waits for the test's go-ahead."""

    def __init__(self, gate_name: str) -> None:
        self.gate_name = gate_name

    def setup(self, worker) -> None:
        from cellucid_nb.adata import gene_tasks

        self.original = original = gene_tasks._gene_task
        name = self.gate_name

        def gated(*args, **kwargs):
            started = Event(f"{name}-started")
            if not started.is_set():
                Variable(f"{name}-pid").set(os.getpid())
                started.set()
                Event(f"{name}-go").wait(60)
            return original(*args, **kwargs)

        gene_tasks._gene_task = gated  # tasks unpickle the function by name: they get this one

    def teardown(self, worker) -> None:
        from cellucid_nb.adata import gene_tasks

        gene_tasks._gene_task = self.original


def _gated_genes(client, name):
    client.register_plugin(_GateGeneTasks(name), name=name)
    return name


def _running_gene_tasks(client) -> int:
    def running(dask_worker=None):
        return sum(str(k).startswith(KEY_PREFIX) for k in list(dask_worker.active_threads.values()))

    return sum(client.run(running).values())


def test_a_worker_killed_while_building_genes_is_retried_and_the_bytes_are_the_same(client, data, tmp_path):
    gate = _gated_genes(client, "kill-genes")
    try:
        backed = anndata.read_h5ad(data["root"] / "a.h5ad", backed="r")
        thread, box = _run_in_thread(lambda: export(backed, data["plan"], tmp_path / "export", created_at=CREATED,
                                                    client=client, memory_limit="1GB"))
        assert Event(f"{gate}-started", client=client).wait(60)
        os.kill(Variable(f"{gate}-pid", client=client).get(timeout=10), signal.SIGKILL)
        Event(f"{gate}-go", client=client).set()
        thread.join(120)
        assert "error" not in box, box.get("error")
        assert _tree(tmp_path / "export") == _tree(data["ref"])  # no temporary file of the killed task either
        assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    finally:
        client.unregister_worker_plugin(gate)
        client.wait_for_workers(2, timeout=60)


def test_cancel_while_workers_build_genes_stops_them_and_leaves_nothing(client, data, tmp_path):
    gate = _gated_genes(client, "cancel-genes")
    try:
        backed = anndata.read_h5ad(data["root"] / "a.h5ad", backed="r")
        cancel = threading.Event()
        thread, box = _run_in_thread(lambda: export(backed, data["plan"], tmp_path / "export", created_at=CREATED,
                                                    client=client, memory_limit="1GB", cancel=cancel))
        assert Event(f"{gate}-started", client=client).wait(60)
        names = sorted(p.name for p in tmp_path.iterdir())
        assert any(n.startswith(SPILL_PREFIX) for n in names) and any(".staging-" in n for n in names)
        cancel.set()
        thread.join(1.0)
        assert thread.is_alive()  # the export waits for the gated task to return
        Event(f"{gate}-go", client=client).set()
        thread.join(60)
        assert isinstance(box.get("error"), ExportCancelled)
        assert _running_gene_tasks(client) == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == []
    finally:
        client.unregister_worker_plugin(gate)


class _FailGeneTasks(WorkerPlugin):
    """On every worker: gene tasks fail (a full disk, say), every attempt."""

    def setup(self, worker) -> None:
        from cellucid_nb.adata import gene_tasks

        self.original = gene_tasks._gene_task

        def failing(*args, **kwargs):
            raise OSError("No space left on device (test)")

        gene_tasks._gene_task = failing

    def teardown(self, worker) -> None:
        from cellucid_nb.adata import gene_tasks

        gene_tasks._gene_task = self.original


def test_gene_tasks_that_keep_failing_fail_the_export_and_leave_nothing(client, data, tmp_path):
    client.register_plugin(_FailGeneTasks(), name="fail-genes")
    try:
        backed = anndata.read_h5ad(data["root"] / "a.h5ad", backed="r")
        with get_task_stream(client) as stream, pytest.raises(OSError, match=r"No space left on device \(test\)"):
            export(backed, data["plan"], tmp_path / "export", created_at=CREATED, client=client, memory_limit="1GB")
        assert any(str(t["key"]).startswith(KEY_PREFIX) and t["status"] == "error" for t in stream.data)
        assert _running_gene_tasks(client) == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == []
    finally:
        client.unregister_worker_plugin("fail-genes")
