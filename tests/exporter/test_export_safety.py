"""Staging, cancel, force semantics, determinism, inputs never mutated, progress events."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from export_helpers import make_kwargs, payload, siblings, snapshot
from scipy import sparse

from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.exporter.progress import PHASES, ExportCancelled, ExportResult, ProgressEvent
from cellucid_nb.format.spec import SIDECAR_FILE


def test_two_exports_are_byte_identical(tmp_path: Path) -> None:
    a = prepare(out_dir=tmp_path / "a" / "data", **make_kwargs())
    b = prepare(out_dir=tmp_path / "b" / "data", n_workers=1, **make_kwargs())
    sa, sb = snapshot(a.path), snapshot(b.path)
    assert sa == sb
    assert SIDECAR_FILE in sa and "seconds" not in sa[SIDECAR_FILE].decode()
    assert a.n_files == len(sa) and a.n_bytes == sum(len(v) for v in sa.values())


def test_sidecar_lists_every_file_with_size_and_checksum(tmp_path: Path) -> None:
    import zlib

    result = prepare(out_dir=tmp_path / "e", category_colors={"cluster": ["#ff0000", "#00ff00", "#0000ff"]},
                     sidecar_extra={"plan": {"k": 1}}, **make_kwargs())
    files = snapshot(result.path)
    sidecar = json.loads(files.pop(SIDECAR_FILE))
    assert set(sidecar["files"]) == set(files)
    for rel, info in sidecar["files"].items():
        assert info == {"bytes": len(files[rel]), "crc32": f"{zlib.crc32(files[rel]):08x}"}
    assert sidecar["category_colors"] == {"cluster": ["#ff0000", "#00ff00", "#0000ff"]}
    assert sidecar["plan"] == {"k": 1} and sidecar["generator"] == "cellucid_nb"


def test_inputs_are_not_mutated(tmp_path: Path) -> None:
    kw = make_kwargs()
    vel = kw["vector_fields"]["velocity_umap_2d"].astype(np.float32)
    kw["vector_fields"]["velocity_umap_2d"] = vel
    emb = kw["X_umap_2d"].astype(np.float32)
    kw["X_umap_2d"] = emb
    copies = {
        "vel": vel.copy(), "emb": emb.copy(), "latent": kw["latent_space"].copy(),
        "x": kw["gene_expression"].copy(), "knn": kw["connectivities"].copy(),
        "obs": kw["obs"].copy(), "var": kw["var"].copy(),
    }
    prepare(out_dir=tmp_path / "e", **kw)
    assert np.array_equal(vel, copies["vel"]) and np.array_equal(emb, copies["emb"])
    assert np.array_equal(kw["latent_space"], copies["latent"])
    assert (kw["gene_expression"] != copies["x"]).nnz == 0 and kw["gene_expression"].format == "csr"
    assert (kw["connectivities"] != copies["knn"]).nnz == 0
    pd.testing.assert_frame_equal(kw["obs"], copies["obs"])
    pd.testing.assert_frame_equal(kw["var"], copies["var"])


@pytest.mark.parametrize("kind", ["csr_array", "csc_array", "coo_array", "csc_matrix", "dense", "lil_matrix"])
def test_sparse_arrays_and_dense_give_the_same_export(kind: str, tmp_path: Path) -> None:
    base = make_kwargs()
    reference = snapshot(prepare(out_dir=tmp_path / "ref" / "data", **base).path)
    kw = make_kwargs()
    x = kw["gene_expression"]
    kw["gene_expression"] = x.toarray() if kind == "dense" else getattr(sparse, kind)(x)
    if kind.endswith("_array"):
        kw["connectivities"] = getattr(sparse, kind)(kw["connectivities"])
        kw["latent_space"] = getattr(sparse, kind)(kw["latent_space"])
    files = snapshot(prepare(out_dir=tmp_path / kind / "data", **kw).path)
    assert files == reference


def _cancel_after(n_events: int):
    cancel = threading.Event()
    seen: list[ProgressEvent] = []

    def on_progress(event: ProgressEvent) -> None:
        seen.append(event)
        if event.phase == "genes":
            cancel.set()

    return cancel, on_progress, seen


def test_cancel_midway_removes_staging_and_keeps_previous_export(tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs())
    before = snapshot(out)
    cancel, on_progress, seen = _cancel_after(1)
    kw = make_kwargs(seed=3)
    with pytest.raises(ExportCancelled):
        prepare(out_dir=out, force=True, cancel=cancel, progress=on_progress, **kw)
    assert snapshot(out) == before
    assert siblings(out) == ["export"]
    assert seen and seen[-1].phase == "genes"


def test_cancel_on_fresh_export_leaves_nothing(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ExportCancelled):
        prepare(out_dir=tmp_path / "export", cancel=cancel, **make_kwargs())
    assert list(tmp_path.iterdir()) == []


def test_worker_failure_removes_staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cellucid_nb.format import codecs

    calls = {"n": 0}
    real = codecs.gzip_bytes

    def flaky(data, level, *, rle=False):
        calls["n"] += 1
        if calls["n"] == 10:
            raise OSError("disk full (simulated)")
        return real(data, level, rle=rle)

    monkeypatch.setattr(codecs, "gzip_bytes", flaky)
    with pytest.raises(OSError, match="disk full"):
        prepare(out_dir=tmp_path / "export", **make_kwargs())
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_with_complete_export(tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs())
    (out / "stray.txt").write_text("old")
    kw = make_kwargs(seed=5)
    kw["compression"] = None
    with pytest.warns(UserWarning, match=r"kept 1 file\(s\) .* that no export wrote .*stray.txt"):
        result = prepare(out_dir=out, force=True, **kw)
    files = snapshot(out)
    assert files.pop("stray.txt") == b"old"  # not ours: kept
    assert not any(f.endswith(".gz") for f in files)
    assert result.skipped == [] and siblings(out) == ["export"]
    fresh = snapshot(prepare(out_dir=tmp_path / "fresh" / "export", **kw).path)
    assert files == fresh


def test_force_false_different_settings_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "export"
    prepare(out_dir=out, **make_kwargs())
    before = snapshot(out)
    kw = make_kwargs()
    kw["var_quantization"] = 16
    with pytest.raises(ValueError, match=r"different settings \(var_quantization: existing 8, requested 16\).*force=True.*another out_dir"):
        prepare(out_dir=out, **kw)
    assert snapshot(out) == before and siblings(out) == ["export"]


def test_force_false_reference_export_with_other_compression_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "obs_manifest.json").write_text(json.dumps({"compression": None, "_obsSchemas": {}}))
    with pytest.raises(ValueError, match=r"compression: existing None, requested 6.*force=True"):
        prepare(out_dir=out, **make_kwargs())


def test_force_false_same_settings_skips_existing_and_adds_missing(tmp_path: Path) -> None:
    out = tmp_path / "export"
    kw = make_kwargs()
    kw["gene_identifiers"] = ["G0", "G1"]
    prepare(out_dir=out, **kw)
    gene0 = (out / "var" / "G0.values.u8.gz").read_bytes()
    kw = make_kwargs()
    kw["gene_identifiers"] = ["G0", "G1", "G2"]
    result = prepare(out_dir=out, **kw)  # reused files are proven equal: nothing to warn about
    assert "var/G0.values.u8.gz" in result.skipped and "var/G2.values.u8.gz" not in result.skipped
    assert not any(s.endswith(".json") for s in result.skipped)
    assert (out / "var" / "G0.values.u8.gz").read_bytes() == gene0
    manifest = json.loads((out / "var_manifest.json").read_text())
    assert [f[0] for f in manifest["fields"]] == ["G0", "G1", "G2"]
    for gene, _lo, _hi in manifest["fields"]:
        assert (out / "var" / f"{gene}.values.u8.gz").exists()
    sidecar = json.loads((out / SIDECAR_FILE).read_text())
    assert set(sidecar["files"]) == set(snapshot(out)) - {SIDECAR_FILE}
    assert siblings(out) == ["export"]


def test_empty_existing_folder_is_written_into(tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    result = prepare(out_dir=out, **make_kwargs())
    assert result.skipped == [] and (out / "dataset_identity.json").exists()


def test_force_refuses_to_delete_a_folder_that_is_no_export(tmp_path: Path) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match=r"holds no Cellucid export .*thesis.tex"):
        prepare(out_dir=out, force=True, **make_kwargs())
    assert (out / "thesis.tex").read_text() == "precious"


def test_out_dir_none_means_cwd_exports_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = prepare(**make_kwargs())
    assert result.path == tmp_path / "exports" and (tmp_path / "exports" / "dataset_identity.json").exists()


def test_progress_events_are_monotonic_throttled_and_complete(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    kw = make_kwargs(n=2000, n_genes=400)
    result = prepare(out_dir=tmp_path / "e", progress=events.append, **kw)
    assert isinstance(result, ExportResult)
    done = [e.done for e in events]
    assert done == sorted(done)
    assert events[0].phase == "validate" and events[-1].phase == "finalize"
    assert events[-1].done == events[-1].total and events[-1].eta == 0.0
    assert events[-1].bytes_written == result.n_bytes
    phases = [e.phase for e in events]
    order = list(PHASES)  # the order prepare() reports them
    assert [p for p in order if p in phases] == sorted(set(phases), key=order.index)
    assert {"points", "obs", "genes", "graph", "identity"} <= set(phases)
    # Throttled: forced phase events aside, at most ~10 per second.
    assert len(events) <= len(order) + 2 + 10 * result.seconds
    phase, d, total, *_ = events[-1]
    assert (phase, d, total) == ("finalize", events[-1].done, events[-1].total)


def test_vector_fields_scaled_like_points(tmp_path: Path) -> None:
    kw = make_kwargs()
    emb = kw["X_umap_2d"]
    scale = 2.0 / float((emb.max(axis=0) - emb.min(axis=0)).max())
    result = prepare(out_dir=tmp_path / "e", **kw)
    vec = payload(result.path / "vectors" / "velocity_umap_2d.bin.gz", "<f4").reshape(-1, 2)
    np.testing.assert_allclose(vec, kw["vector_fields"]["velocity_umap_2d"] * scale, rtol=1e-5)
    identity = json.loads((result.path / "dataset_identity.json").read_text())
    field = identity["vector_fields"]["fields"]["velocity_umap"]
    assert field["label"] == "Velocity (UMAP)" and field["basis"] == "umap"
    assert field["files"] == {"2d": "vectors/velocity_umap_2d.bin.gz"}
    assert identity["vector_fields"]["default_field"] == "velocity_umap"


class _LazyMatrix:
    """Stands in for an h5py dataset or a backed matrix: shape, dtype and 2-D slicing only."""

    def __init__(self, dense: np.ndarray) -> None:
        self._dense = dense
        self.shape = dense.shape
        self.dtype = dense.dtype
        self.requests: list = []

    def __getitem__(self, key):
        self.requests.append(key)
        return self._dense[key]


def test_lazy_sliceable_expression_is_read_by_column_blocks(tmp_path: Path) -> None:
    reference = snapshot(prepare(out_dir=tmp_path / "ref" / "data", **make_kwargs()).path)
    kw = make_kwargs()
    lazy = _LazyMatrix(np.asfortranarray(kw["gene_expression"].toarray()))
    kw["gene_expression"] = lazy
    files = snapshot(prepare(out_dir=tmp_path / "lazy" / "data", **kw).path)
    assert files == reference
    assert lazy.requests and all(isinstance(k, tuple) and k[0] == slice(None) for k in lazy.requests)


def test_writer_shard_folders_never_reach_the_export(tmp_path):
    # Writers create files in private shard folders of the staging area (faster than
    # one shared folder); finalize must move every file out and leave no shard behind.
    out = tmp_path / "out"
    kwargs = {**make_kwargs(n=200, n_genes=40), "compression": 6, "var_quantization": 8}
    result = prepare(**kwargs, out_dir=out)
    entries = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    assert not [e for e in entries if ".shard" in e]
    assert len([e for e in entries if e.startswith("var/")]) == 40
    assert result.n_files == len([p for p in out.rglob("*") if p.is_file()])
    assert not [p for p in tmp_path.iterdir() if p.name != "out"], "staging folder left beside out_dir"
