"""Helpers of the export wizard: background workers, throttling, progress, previews, error hints."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cellucid_nb.adata.plan import PlanError
from cellucid_nb.widgets.wizard_errors import describe_error
from cellucid_nb.widgets.wizard_jobs import ExportJob, LatestOnlyWorker, ProgressTracker, Throttle
from cellucid_nb.widgets.wizard_preview import preview_payload


def test_latest_only_worker_skips_superseded_jobs():
    worker = LatestOnlyWorker()
    gate = threading.Event()
    ran: list[int] = []
    results: dict[int, object] = {}

    def job(i):
        def run():
            if i == 0:
                gate.wait(5)
            ran.append(i)
            return i * 10
        return run

    def done(serial, value, error):
        results[serial] = (value, worker.is_latest(serial))

    worker.submit(job(0), done)  # starts and blocks
    time.sleep(0.05)
    for i in (1, 2, 3):
        worker.submit(job(i), done)  # 1 and 2 are replaced before they start
    gate.set()
    assert worker.wait_idle(5)
    assert ran == [0, 3]
    assert results[1] == (0, False)  # the running job learns it is stale
    assert results[4] == (30, True)
    worker.close()


def test_latest_only_worker_reports_errors():
    worker = LatestOnlyWorker()
    got = []
    worker.submit(lambda: 1 / 0, lambda s, v, e: got.append(e))
    assert worker.wait_idle(5)
    assert isinstance(got[0], ZeroDivisionError)


def test_throttle_allows_ten_per_second():
    clock = iter(np.arange(0, 2, 0.01))  # 200 calls over 2 s
    t = Throttle(10, clock=lambda: float(next(clock)))
    passed = sum(t.ready() for _ in range(199))
    assert 19 <= passed <= 21
    assert t.ready(force=True)


def _event(phase, done, total, eta=None):
    return SimpleNamespace(phase=phase, done=done, total=total, bytes_written=done * 10, elapsed=done * 0.1, eta=eta)


def test_progress_tracker_without_load_phase():
    tr = ProgressTracker()
    assert [tr.update(_event("obs", i, 4)).fraction for i in range(4)] == [0.0, 0.25, 0.5, 0.75]


def test_progress_tracker_is_monotonic_and_splits_load_phase():
    tr = ProgressTracker(load_share=0.3)
    fr = [tr.update(_event("load", i, 10)).fraction for i in range(11)]
    assert fr[-1] == pytest.approx(0.3)
    # the exporter's events after a load count the 10 load rows as an offset
    fr += [tr.update(_event("genes", 10 + i, 30)).fraction for i in range(21)]
    assert fr == sorted(fr)
    assert fr[11] == pytest.approx(0.3) and fr[21] == pytest.approx(0.3 + 0.7 * 10 / 20)
    assert fr[-1] == pytest.approx(0.999)  # 1.0 only when the export thread ends
    snap = tr.update(_event("finalize", 30, 30, eta=2.0))
    assert snap.fraction == pytest.approx(0.999) and 0.0 <= snap.to_dict()["eta"] < 1.0


def test_first_eta_is_not_wild():
    # A 2.3 s export whose first events carry the exporter's wild guess (4 min 53 s):
    # no ETA until 10 % is done and 1 s has passed, then close to the real time left.
    tr = ProgressTracker()
    etas = []
    for step in range(1, 47):
        t = step * 0.05
        event = SimpleNamespace(phase="genes", done=round(1000 * t / 2.3), total=1000, bytes_written=0,
                                elapsed=t, eta=293.0 if step < 5 else 2.3 - t)
        etas.append((t, tr.update(event).eta))
    assert all(eta is None for t, eta in etas if t < 1.0)
    later = [(t, eta) for t, eta in etas if t >= 1.0]
    assert later and all(eta is not None and abs(eta - (2.3 - t)) < 0.5 for t, eta in later)


def test_export_job_keeps_result_and_error():
    events = []
    finished = []
    job = ExportJob(lambda progress, cancel: (progress("p"), 42)[1], events.append, lambda r, e: finished.append((r, e)))
    job.start()
    assert job.wait(5)
    assert job.result == 42 and events == ["p"] and finished == [(42, None)]

    def fails(progress, cancel):
        while not cancel.is_set():
            time.sleep(0.01)
        raise RuntimeError("stopped")

    job = ExportJob(fails, events.append, lambda r, e: finished.append((r, e)))
    job.start()
    assert job.running
    job.cancel()
    assert job.wait(5)
    assert isinstance(job.error, RuntimeError) and finished[-1][1] is job.error


def test_describe_error_names_what_to_change():
    text = describe_error(FileExistsError("export exists at /x; pass force=True or another out_dir"))
    assert text.startswith("export exists at /x; tick \u201cOverwrite an existing export\u201d or another output folder")
    assert "force=True" not in text and "What to change: Tick \u201cOverwrite" in text
    assert describe_error(ZeroDivisionError("strange")).startswith("Unexpected error (ZeroDivisionError): strange")


@pytest.mark.parametrize(("error", "words", "click"), [
    (PlanError("embeddings={}: expected a non-empty {dimension: obsm key} mapping"),
     "An export needs at least one embedding", "In Embeddings, pick one"),
    (ValueError("out_dir '/x/pbmc' already holds an export made with different settings "
                "(var_quantization: existing 8, requested 16). Use force=True to replace it, or choose another out_dir."),
     "already holds an export made with other settings (var_quantization: existing 8, requested 16)",
     "Tick \u201cOverwrite an existing export\u201d"),
    (PlanError("obs_keys ['louvian'] not in obs; did you mean 'louvain'?; obs has ['louvain']"),
     "Cell metadata column(s) 'louvian' are not in this dataset", "In Cell metadata (obs), untick"),
    (PlanError("genes: unknown gene id(s): 1 of the genes asked for are not in the 'raw' expression source "
               "(var index): 'cd3d' (did you mean 'CD3D'?). Expected ids as the var index spells them"),
     "Some genes are not in this dataset (raw): 'cd3d' (did you mean 'CD3D'?)", "In Genes, fix the spelling"),
])
def test_errors_are_in_a_beginners_words(error, words, click):
    text = describe_error(error)
    assert words in text and f"What to change: {click}" in text
    assert "PlanError" not in text and "={" not in text and "force=True" not in text


def _toy(n=50_000):
    rng = np.random.default_rng(1)
    obs = pd.DataFrame({
        "cat": pd.Categorical(rng.choice(["a", "b", "c"], n)),
        "num": rng.normal(size=n),
    }, index=[f"c{i}" for i in range(n)])
    obs.loc[obs.index[:5], "num"] = np.nan
    a = ad.AnnData(obs=obs)
    a.obsm["e1"] = rng.normal(size=(n, 1)) * 5 + 3
    a.obsm["e3"] = rng.normal(size=(n, 3))
    return a


def test_preview_subsamples_and_normalises():
    a = _toy()
    meta, (pos, codes) = preview_payload(a, "e3", "cat", max_points=1000)
    p = np.frombuffer(pos, np.float32).reshape(-1, 2)
    c = np.frombuffer(codes, np.uint16)
    assert meta["n"] == 1000 and p.shape == (1000, 2) and c.shape == (1000,)
    assert np.isclose(np.abs(p).max(), 1.0, atol=1e-5)
    assert set(np.unique(c)) <= {0, 1, 2} and meta["categories"] == ["a", "b", "c"]
    again, (pos2, _) = preview_payload(a, "e3", None, max_points=1000)
    assert pos2 == pos and again["kind"] == "none"  # same cells for every colour


def test_preview_1d_and_continuous_with_missing():
    a = _toy(200)
    meta, (pos, codes) = preview_payload(a, "e1", "num")
    p = np.frombuffer(pos, np.float32).reshape(-1, 2)
    c = np.frombuffer(codes, np.uint8)
    assert p[:, 0].min() == pytest.approx(-1) and p[:, 0].max() == pytest.approx(1)
    assert np.abs(p[:, 1]).max() <= 0.3 + 1e-6
    assert meta["kind"] == "continuous" and np.all(c[:5] == 255) and c[5:].max() == 254 and c[5:].min() == 0
    with pytest.raises(KeyError, match="nope"):
        preview_payload(a, "nope")
