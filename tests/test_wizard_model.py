"""The wizard's widget model, driven as the front-end drives it (no browser).

Plan edits arrive through ``set_state`` (what the comm does), commands through
the custom-message handler; messages to the front-end are captured by
replacing ``wiz.send``.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cellucid_nb.exporter.progress import ExportCancelled
from cellucid_nb.widgets.wizard import ExportWizard, wizard


def _pbmc_path() -> Path:
    # read scanpy's bundled file directly: importing scanpy costs seconds
    spec = importlib.util.find_spec("scanpy")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "10x_pbmc68k_reduced.h5ad"


@pytest.fixture(scope="module")
def pbmc() -> ad.AnnData:
    with warnings.catch_warnings():  # the bundled file is in an old anndata layout
        warnings.simplefilter("ignore")
        return ad.read_h5ad(_pbmc_path())


class Recorder:
    """Stands in for ``widget.send``: keeps every custom message sent to the front-end."""

    def __init__(self) -> None:
        self.messages: list[tuple[dict, list]] = []
        self._cond = threading.Condition()

    def __call__(self, content: dict, buffers: list | None = None) -> None:
        with self._cond:
            self.messages.append((content, list(buffers or [])))
            self._cond.notify_all()

    def wait_for(self, type_: str, timeout: float = 20.0) -> tuple[dict, list]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for content, buffers in self.messages:
                    if content.get("type") == type_:
                        return content, buffers
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {type_!r} message within {timeout} s; got {[m[0].get('type') for m in self.messages]}")
                self._cond.wait(left)


def _from_frontend(wiz: ExportWizard, content: dict, buffers: list | None = None) -> None:
    """Deliver a custom message exactly as the comm does (through ipywidgets' dispatch)."""
    wiz._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": buffers or []})


@pytest.fixture
def wiz(pbmc, tmp_path):
    w = wizard(pbmc, out_dir=tmp_path / "export")
    w.send = Recorder()  # type: ignore[method-assign]
    yield w
    w.close()


def test_opens_with_summary_default_plan_estimate_and_code(wiz, pbmc, tmp_path):
    assert wiz.summary["n_cells"] == pbmc.n_obs
    assert wiz.plan.embeddings == {2: "X_umap"}
    assert "bulk_labels" in wiz.plan.obs_keys
    est = wiz.wait_estimate()
    assert est.total_bytes > 0 and est.n_files > 0
    assert wiz.estimate_pending is False
    assert "prepare(" in wiz.code and str(tmp_path / "export") in wiz.code
    # what the front-end receives is plain JSON
    state = wiz.get_state()
    assert json.loads(json.dumps(state["plan"]))["embeddings"] == {"2": "X_umap"}
    assert state["estimate"]["total_bytes"] == est.total_bytes
    # the size on disk travels with it (files rounded up to the file system's blocks)
    assert state["estimate"]["disk_bytes"] == est.disk_bytes >= est.total_bytes


def test_frontend_plan_edit_updates_plan_and_estimate(wiz):
    before = wiz.wait_estimate()
    edited = wiz.get_state()["plan"]
    edited["obs_keys"] = [k for k in edited["obs_keys"] if k != "bulk_labels"]
    edited["var_quantization"] = 16
    wiz.set_state({"plan": edited})
    assert "bulk_labels" not in wiz.plan.obs_keys
    assert wiz.plan.var_quantization == 16
    assert wiz.plan_error == ""
    after = wiz.wait_estimate()
    assert after is not before
    obs_before = {p["name"] for p in before.to_dict()["parts"] if p["part"] == "obs"}
    obs_after = {p["name"] for p in after.to_dict()["parts"] if p["part"] == "obs"}
    assert any("bulk_labels" in name for name in obs_before)
    assert not any("bulk_labels" in name for name in obs_after)
    genes = lambda e: sum(p["bytes"] for p in e.to_dict()["parts"] if p["part"] == "genes")  # noqa: E731
    assert genes(after) > genes(before)  # 16-bit genes take more room than 8-bit


def test_invalid_frontend_edit_keeps_plan_and_sets_plan_error(wiz):
    good = wiz.plan
    bad = wiz.get_state()["plan"]
    bad["obs_keys"] = ["no_such_column"]
    wiz.set_state({"plan": bad})  # must not raise: the kernel log is not a UI
    assert wiz.plan == good
    assert "no_such_column" in wiz.plan_error
    assert "What to change" in wiz.plan_error
    # the next valid edit clears the error
    ok = wiz.get_state()["plan"]
    ok["compression"] = 9
    wiz.set_state({"plan": ok})
    assert wiz.plan.compression == 9 and wiz.plan_error == ""


def test_frontend_cannot_overwrite_python_only_traits(wiz):
    est = wiz.wait_estimate()
    wiz.set_state({"estimate": {"total_bytes": 1}, "result": {"path": "/nowhere"}})
    assert wiz.estimate is est and wiz.result is None


def test_invalid_python_assignment_raises(wiz):
    import traitlets

    with pytest.raises(traitlets.TraitError, match="embeddings"):
        wiz.plan = {**wiz.plan.to_dict(), "embeddings": {}}
    wiz.plan = wiz.plan.replace(compression=None)  # ExportPlan accepted as is
    assert wiz.plan.compression is None
    wiz.plan = {**wiz.plan.to_dict(), "compression": 3}  # dict form accepted
    assert wiz.plan.compression == 3


def test_newer_estimate_supersedes_older(wiz):
    wiz.wait_estimate()
    for level in (1, 2, 3, 4, 5):
        wiz.plan = wiz.plan.replace(compression=level)
    est = wiz.wait_estimate()
    assert wiz.estimate_pending is False
    # the estimate shown is the one of the last plan
    assert est is wiz.estimate
    from cellucid_nb.adata.estimation import estimate

    assert est.total_bytes == pytest.approx(estimate(wiz._adata, wiz.plan).total_bytes, rel=0.02)


def test_gene_ids_sent_once_as_binary(wiz, pbmc):
    _from_frontend(wiz, {"type": "wizard:gene_ids"})
    content, buffers = wiz.send.wait_for("wizard:gene_ids")
    ids = json.loads(bytes(buffers[0]).decode("utf-8"))
    assert ids == [str(g) for g in pbmc.var_names]
    assert content["n"] == pbmc.n_vars
    assert "gene_ids" not in wiz.get_state()  # never in a trait


def test_gene_list_search_presets_and_unknown_ids(wiz, pbmc):
    genes = [str(g) for g in pbmc.var_names[:3]]
    before = wiz.plan
    # one rule everywhere (gene_choice): a list with an unknown id is refused as a whole, with suggestions
    _from_frontend(wiz, {"type": "wizard:genes", "mode": "list", "ids": genes + ["cd3d"]})
    assert wiz._tasks.wait_idle(20)
    assert wiz.plan == before
    assert wiz.gene_report["n_unknown"] == 1 and wiz.gene_report["unknown"] == ["cd3d"]
    assert wiz.gene_report["suggestions"] == {"cd3d": "CD3D"}
    assert "did you mean 'CD3D'" in wiz.gene_report["error"]
    _from_frontend(wiz, {"type": "wizard:genes", "mode": "list", "ids": genes})
    assert wiz._tasks.wait_idle(20)
    assert wiz.plan.genes == tuple(genes) and wiz.gene_report["n_unknown"] == 0
    assert wiz.wait_estimate().to_dict()["parts"]
    # top-N: by variance unless asked otherwise, on the plan's source (raw: log-normalised), as the CLI
    raw = pbmc.raw.X.toarray()
    _from_frontend(wiz, {"type": "wizard:genes", "mode": "top", "n": 7})
    assert wiz._tasks.wait_idle(20)
    assert wiz.plan.genes == tuple(pbmc.raw.var_names[np.argsort(-raw.var(0), kind="stable")[:7]])
    _from_frontend(wiz, {"type": "wizard:genes", "mode": "top", "n": 7, "by": "mean"})
    assert wiz._tasks.wait_idle(20)
    assert wiz.plan.genes == tuple(pbmc.raw.var_names[np.argsort(-raw.mean(0), kind="stable")[:7]])
    _from_frontend(wiz, {"type": "wizard:genes", "mode": "all"})
    assert wiz._tasks.wait_idle(20)
    assert wiz.plan.genes is None and wiz.gene_report["n_genes"] == pbmc.n_vars
    _from_frontend(wiz, {"type": "wizard:genes", "mode": "none"})
    assert wiz._tasks.wait_idle(20)
    assert wiz.plan.expression_source is None and wiz.gene_report["n_genes"] == 0
    no_genes = wiz.wait_estimate()
    assert not [p for p in no_genes.to_dict()["parts"] if p["part"] == "genes"]
    _from_frontend(wiz, {"type": "wizard:genes", "mode": "list", "ids": genes[:1]})
    assert wiz._tasks.wait_idle(20)
    assert wiz.plan.expression_source == "raw" and wiz.plan.genes == tuple(genes[:1])
    _from_frontend(wiz, {"type": "wizard:genes", "mode": "list", "ids": ["NOPE1", "NOPE2"]})
    assert wiz._tasks.wait_idle(20)
    assert "NOPE1" in wiz.gene_report["error"] and wiz.plan.genes == tuple(genes[:1])  # unchanged
    # a gene added by type-ahead (a plan edit) makes the last report stale: it is cleared
    assert wiz.gene_report  # still the error report of the failed list
    edited = wiz.get_state()["plan"]
    edited["genes"] = genes[:2]
    wiz.set_state({"plan": edited})
    assert wiz.gene_report == {}
    # removing the last gene in the browser means "no genes", not an impossible empty list
    edited = wiz.get_state()["plan"]
    edited["genes"] = []
    wiz.set_state({"plan": edited})
    assert wiz.plan.expression_source is None and wiz.plan_error == ""
    _from_frontend(wiz, {"type": "wizard:genes", "mode": "bogus"})
    assert wiz._tasks.wait_idle(20)
    assert "bogus" in wiz.gene_report["error"]


def test_preview_message_carries_binary_points_and_codes(wiz, pbmc):
    _from_frontend(wiz, {"type": "wizard:preview", "key": "X_umap", "color": "louvain", "request_id": 3})
    content, buffers = wiz.send.wait_for("wizard:preview")
    assert content["request_id"] == 3 and content["kind"] == "categorical"
    pos = np.frombuffer(bytes(buffers[0]), dtype=np.float32).reshape(-1, 2)
    codes = np.frombuffer(bytes(buffers[1]), dtype=np.uint16)
    assert pos.shape == (pbmc.n_obs, 2) and codes.shape == (pbmc.n_obs,)
    assert np.abs(pos).max() <= 1.0 + 1e-6 and np.isclose(np.abs(pos).max(), 1.0)
    assert codes.max() < len(content["categories"])
    assert content["colors"] == list(pbmc.uns["louvain_colors"])
    np.testing.assert_array_equal(codes, pbmc.obs["louvain"].cat.codes.to_numpy())


def test_preview_error_is_answered_not_raised(wiz):
    _from_frontend(wiz, {"type": "wizard:preview", "key": "X_nope", "color": None, "request_id": 1})
    content, _ = wiz.send.wait_for("wizard:preview")
    assert "X_nope" in content["error"]


def test_export_runs_in_thread_with_throttled_progress_and_viewer(wiz, tmp_path):
    seen: list[tuple[float, dict]] = []
    wiz.observe(lambda ch: seen.append((time.monotonic(), ch["new"])), names="progress")
    main = threading.get_ident()
    threads: list[int] = []
    wiz.observe(lambda ch: threads.append(threading.get_ident()), names="status")
    _from_frontend(wiz, {"type": "wizard:export", "out_dir": str(tmp_path / "out")})
    result = wiz.wait(timeout=120)
    assert wiz.status == "done", wiz.error
    assert result is wiz.result and Path(result.path) == tmp_path / "out"
    assert (tmp_path / "out" / "dataset_identity.json").exists()
    assert wiz.get_state()["result"]["n_files"] == result.n_files
    assert wiz.progress["fraction"] == 1.0
    fractions = [p["fraction"] for _, p in seen]
    assert fractions == sorted(fractions)
    # <= 10 updates per second (+ the first, forced, and the final one)
    times = [t for t, _ in seen[1:-1]]
    if len(times) > 1:
        assert len(times) - 1 <= 10 * (times[-1] - times[0]) + 1
    assert threads[-1] != main  # "done" was set by the export thread
    assert str(tmp_path / "out") in wiz.code
    # the embedded viewer is served through the wizard's own comm
    _from_frontend(wiz, {"type": "viewer:request", "id": 1, "kind": "meta", "args": {}})
    content, _ = wiz.send.wait_for("viewer:response")
    assert content["id"] == 1


def test_export_error_surfaces_with_a_hint(wiz, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    wiz.out_dir = str(blocker / "export")
    wiz.export()
    with pytest.raises(OSError):  # the export's own error: out_dir's parent is a file
        wiz.wait(timeout=60)
    assert wiz.status == "error"
    assert "What to change" in wiz.error
    assert wiz.result is None


def test_second_export_while_running_is_refused(wiz, tmp_path):
    wiz.out_dir = str(tmp_path / "x")
    wiz.export()
    try:
        assert wiz.running and wiz.status == "running"
        with pytest.raises(RuntimeError, match="already running"):
            wiz.export()
        _from_frontend(wiz, {"type": "wizard:export"})  # the button: the refusal shows in the widget
        assert "already running" in wiz.error and wiz.status == "running"
    finally:
        wiz.wait(timeout=120)


def _big_anndata(n_cells: int = 20_000, n_genes: int = 1_500) -> ad.AnnData:
    rng = np.random.default_rng(0)
    x = rng.poisson(0.8, size=(n_cells, n_genes)).astype(np.float32)
    obs = pd.DataFrame({"group": pd.Categorical(rng.integers(0, 12, n_cells).astype(str))},
                       index=[f"c{i}" for i in range(n_cells)])
    a = ad.AnnData(X=x, obs=obs)
    a.obsm["X_umap"] = rng.normal(size=(n_cells, 2)).astype(np.float32)
    return a


def test_cancel_midway_leaves_nothing(tmp_path):
    big = _big_anndata()
    w = wizard(big, out_dir=tmp_path / "big", compression=9, var_quantization=None)
    w.send = Recorder()  # type: ignore[method-assign]
    try:
        started = threading.Event()
        w.observe(lambda ch: ch["new"].get("phase") not in (None, "start") and started.set(), names="progress")
        w.export()
        assert started.wait(60), "no progress event"
        _from_frontend(w, {"type": "wizard:cancel"})
        with pytest.raises(ExportCancelled):
            w.wait(timeout=60)
        assert w.status == "cancelled"
        assert w.message == f"Export cancelled: nothing was written ({tmp_path / 'big'} was not created)."
        assert w.progress == {} and w.error == ""
        assert not (tmp_path / "big").exists()
        assert [p.name for p in tmp_path.iterdir()] == []  # no staging folder left either
    finally:
        w.close()


def test_wait_without_export_and_close_cancels(wiz):
    with pytest.raises(RuntimeError, match="export"):
        wiz.wait(0.1)


def test_plan_changes_in_wizard_call(pbmc, tmp_path):
    w = wizard(pbmc, out_dir=tmp_path, compression=None, obs_keys=["louvain"])
    try:
        assert w.plan.compression is None and w.plan.obs_keys == ("louvain",)
        with pytest.raises(TypeError, match="compression"):
            wizard(pbmc, compresion=3)
    finally:
        w.close()


def test_backed_anndata_preview_and_export_with_load_phase(pbmc, tmp_path):
    path = tmp_path / "pbmc.h5ad"
    small = pbmc.copy()
    small.raw = None
    small.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    w = wizard(backed, out_dir=tmp_path / "out")
    w.send = Recorder()  # type: ignore[method-assign]
    try:
        phases: list[str] = []
        fractions: list[float] = []
        w.observe(lambda ch: (phases.append(ch["new"].get("phase")), fractions.append(ch["new"].get("fraction"))),
                  names="progress")
        _from_frontend(w, {"type": "wizard:preview", "key": "X_umap", "color": "n_counts", "request_id": 9})
        content, buffers = w.send.wait_for("wizard:preview")
        assert content["kind"] == "continuous" and len(buffers[1]) == backed.n_obs
        w.export()
        w.wait(timeout=120)
        assert w.status == "done", w.error
        assert "load" in phases  # a backed matrix is read block by block first
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        assert (tmp_path / "out" / "var_manifest.json").exists()
    finally:
        w.close()
        backed.file.close()


def test_none_as_the_only_embedding_then_back_clears_the_error(wiz):
    # Bug: choosing "none" as the only 2D embedding snapped back to X_umap (the plan was sent
    # back) and left the error on screen after X_umap was picked again.
    resent: list[object] = []
    original_send_state = wiz.send_state
    wiz.send_state = lambda key=None: (resent.append(key), original_send_state(key))[1]  # type: ignore[method-assign]
    good = wiz.get_state()["plan"]
    wiz.set_state({"plan": {**good, "embeddings": {}}})
    assert wiz.plan.embeddings == {2: "X_umap"}
    assert wiz.plan_error.startswith("An export needs at least one embedding")
    assert "PlanError" not in wiz.plan_error and "embeddings={}" not in wiz.plan_error
    assert "What to change: In Embeddings, pick one" in wiz.plan_error
    assert "plan" not in resent  # the page keeps "none" beside the error: no snap back
    # the Export button while the page holds the refused edit: explained, nothing started
    _from_frontend(wiz, {"type": "wizard:export"})
    assert not wiz.running and wiz.status == "idle" and "fix the setting" in wiz.error
    with pytest.raises(RuntimeError, match="settings have a problem"):
        wiz.export()
    # picking X_umap again is a change on the page, hence an edit that reaches Python: the error goes
    wiz.set_state({"plan": good})
    assert wiz.plan_error == "" and wiz.plan.embeddings == {2: "X_umap"}


def test_refused_export_keeps_the_previous_result_and_viewer(wiz, tmp_path):
    out = tmp_path / "kept"
    wiz.out_dir = str(out)
    first = (wiz.export(), wiz.wait(timeout=120))[1]
    backend = wiz.viewer
    assert backend is not None and wiz.result is first
    files = sorted(p.relative_to(out) for p in out.rglob("*"))
    # settings changed, Overwrite off: the exporter refuses before writing anything
    wiz.plan = wiz.plan.replace(var_quantization=16)
    wiz.export()
    with pytest.raises(ValueError, match="different settings"):
        wiz.wait(timeout=120)
    assert wiz.status == "error"
    assert "Tick \u201cOverwrite an existing export\u201d" in wiz.error and "force=True" not in wiz.error
    assert wiz.progress == {}  # no "checking inputs · 0 %" beside the error
    assert wiz.result is first and wiz.get_state()["result"]["path"] == str(first.path)
    assert wiz.viewer is backend  # still serving the old export, which is intact
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == files
    _from_frontend(wiz, {"type": "viewer:request", "id": 7, "kind": "meta", "args": {}})
    assert wiz.send.wait_for("viewer:response")[0]["id"] == 7


def test_wizard_exposes_its_viewer_and_selection(wiz, tmp_path):
    assert wiz.viewer is None and wiz.selected.dtype == np.int64 and wiz.selected.size == 0
    wiz.out_dir = str(tmp_path / "a_longer_folder_name")
    est = wiz.wait_estimate()
    wiz.export()
    result = wiz.wait(timeout=120)
    # estimated for this folder (its name is the dataset's name): exact on pbmc, every cell and gene sampled
    assert (est.total_bytes, est.n_files) == (result.n_bytes, result.n_files)
    picked: list[np.ndarray] = []
    wiz.viewer.on_select(picked.append)
    indices = np.array([5, 1, 3], dtype=np.uint32)
    _from_frontend(wiz, {"type": "viewer:select", "n": 3}, [indices.tobytes()])
    assert wiz.selected.tolist() == [1, 3, 5]
    assert picked and picked[-1].tolist() == [1, 3, 5]
    assert wiz.viewer.reader.n_cells == 700


def test_wizard_opens_an_h5ad_path_backed_and_names_the_folder_after_it(pbmc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "my_pbmc.h5ad"
    pbmc.write_h5ad(path)
    w = wizard(str(path))
    try:
        assert w._adata.isbacked and w._adata.n_obs == pbmc.n_obs
        assert w.out_dir == str(tmp_path / "exports" / "my_pbmc")
        assert w.wait_estimate().n_files > 0
    finally:
        w.close()
    assert not w._adata.file.is_open  # the wizard opened it, the wizard closed it
    with pytest.raises(FileNotFoundError, match="no such file"):
        wizard(tmp_path / "missing.h5ad")
    with pytest.raises(TypeError, match="expected an AnnData .* or the path of an .h5ad file"):
        wizard(42)


def test_default_folders_differ_between_unnamed_datasets(pbmc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = pbmc[:300].copy()
    titled = pbmc[:200].copy()
    titled.uns["title"] = "PBMC 3k"
    folders = []
    for adata in (pbmc, other, titled):
        w = wizard(adata)
        folders.append(w.out_dir)
        w.close()
    assert len(set(folders)) == 3 and str(tmp_path / "exports" / "dataset") not in folders
    assert folders[2] == str(tmp_path / "exports" / "PBMC_3k")
    assert folders[0].startswith(str(tmp_path / "exports" / "dataset-"))
    w = wizard(pbmc)
    assert w.out_dir == folders[0]  # the same dataset, the same folder
    w.close()


def test_wizard_says_which_expression_source_and_why(wiz):
    assert wiz.plan.expression_source == "raw"
    assert wiz.source_note.startswith("Genes come from raw: it holds log-normalised values")
    assert "X holds scaled values (z-scores" in wiz.source_note
    wiz.plan = wiz.plan.replace(expression_source="X")
    assert "as chosen" in wiz.source_note and "raw holds log-normalised values" in wiz.source_note
    assert wiz.get_state()["source_note"] == wiz.source_note


def test_genes_added_to_a_plan_without_genes_come_from_the_default_source(pbmc, tmp_path):
    w = wizard(pbmc, out_dir=tmp_path / "x", expression_source=None, genes=None)
    try:
        assert w.source_note.startswith("No genes are exported")
        report = w.choose_genes("list", ids=["CD3D"])
        assert w.plan.expression_source == "raw" and w.plan.genes == ("CD3D",) and report["n_genes"] == 1
    finally:
        w.close()
