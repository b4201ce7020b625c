"""The viewer's wire protocol: requests, acknowledged chunks, selection and commands."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from cellucid_nb.format.reader import read_export
from cellucid_nb.viewer_protocol import ViewerBackend, build_response, frame_response, pack_arrays

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cellucid_0_0_9"


@pytest.fixture(scope="module")
def reader():
    return read_export(FIXTURES / "gzip_q8")


class Recorder:
    """Stands in for ``widget.send``: records (content, buffers)."""

    def __init__(self):
        self.sent: list[tuple[dict, list]] = []

    def __call__(self, content, buffers):
        self.sent.append((content, [bytes(b) for b in buffers]))

    def of_type(self, t):
        return [(c, b) for c, b in self.sent if c["type"] == t]


def request(backend, rid, kind, **args):
    assert backend.handle({"type": "viewer:request", "id": rid, "kind": kind, "args": args}, [])


def test_non_viewer_messages_are_left_to_the_host(reader):
    backend = ViewerBackend(reader, Recorder())
    assert backend.handle({"type": "wizard:start"}, []) is False
    assert backend.handle({"no": "type"}, []) is False
    assert backend.handle({"type": "viewer:unknown-thing"}, []) is True


def test_meta_describes_fields_genes_graph_and_vectors(reader):
    rec = Recorder()
    backend = ViewerBackend(reader, rec)
    request(backend, 1, "meta")
    (content, bufs), = rec.sent
    meta = content["header"]
    assert content["type"] == "viewer:response" and content["n_chunks"] == 0 and bufs == []
    assert meta["n_cells"] == reader.n_cells
    assert meta["dimensions"] == reader.dimensions
    assert [f["key"] for f in meta["obs"]] == reader.obs_keys
    cat = next(f for f in meta["obs"] if f["key"] == "cell type")
    assert cat["categories"] == reader.obs_field_info("cell type").categories
    assert set(cat["centroids"]) == {str(d) for d in reader.dimensions}
    assert meta["genes"] == reader.genes
    assert meta["has_edges"] is True and meta["n_edges"] == reader.connectivity_manifest["n_edges"]
    assert meta["vectors"]["velocity_umap"]["dims"] == [2, 3]
    json.dumps(meta, allow_nan=False)  # strictly JSON-safe


def reassemble(rec, rid):
    chunks = [(c, b) for c, b in rec.of_type("viewer:response") if c["id"] == rid]
    first = next(c for c, _ in chunks if c["seq"] == 0)
    blob = bytearray(first["nbytes"])
    for c, b in chunks:
        blob[c["seq"] * c["chunk_bytes"]: c["seq"] * c["chunk_bytes"] + len(b[0])] = b[0]
    return first["header"], bytes(blob)


def test_chunks_wait_for_acknowledgements(reader):
    rec = Recorder()
    backend = ViewerBackend(reader, rec, chunk_bytes=128, window=2)
    pts = reader.points(3)
    request(backend, 7, "points", dim=3)
    n_chunks = -(-pts.nbytes // 128)
    assert n_chunks >= 3
    sent = rec.of_type("viewer:response")
    assert len(sent) == min(2, n_chunks), "only the window goes out before any ack"
    assert all(len(b[0]) <= 128 for _, b in sent)
    # without acks nothing more is sent: a lost message stalls (and the browser times out)
    assert backend.pending_transfers == 1
    seq = 0
    while backend.pending_transfers:
        backend.handle({"type": "viewer:ack", "id": 7, "seq": seq}, [])
        seq += 1
        assert seq <= n_chunks
    assert len(rec.of_type("viewer:response")) == n_chunks
    header, blob = reassemble(rec, 7)
    spec = header["arrays"][0]
    got = np.frombuffer(blob, dtype="<f4", count=spec["nbytes"] // 4, offset=spec["offset"]).reshape(spec["shape"])
    np.testing.assert_array_equal(got, pts)


@pytest.mark.parametrize("key", ["score", "cell type", "batch"])
def test_obs_payload_is_the_stored_one(reader, key):
    header, blob = build_response(reader, "obs", {"key": key})
    info = reader.obs_field_info(key)
    raw = reader.obs_raw(key)
    spec = header["arrays"][0]
    got = np.frombuffer(blob, dtype=raw.dtype, count=len(raw), offset=spec["offset"])
    np.testing.assert_array_equal(got, raw)
    assert header["kind"] == info.kind
    if info.kind == "continuous":
        assert header["bits"] == 8 and header["min"] == pytest.approx(info.min) and header["max"] == pytest.approx(info.max)


def test_gene_edges_and_vectors(reader):
    gene = reader.genes[0]
    header, blob = build_response(reader, "gene", {"gene": gene})
    np.testing.assert_array_equal(np.frombuffer(blob, dtype=reader.gene_raw(gene).dtype, count=reader.n_cells), reader.gene_raw(gene))
    lo, hi, bits = reader.gene_info(gene)
    assert (header["min"], header["max"], header["bits"]) == (lo, hi, bits)
    header, blob = build_response(reader, "edges", {})
    src, dst, _ = reader.edges()
    pairs = np.frombuffer(blob, dtype=np.uint16, count=2 * len(src))
    np.testing.assert_array_equal(pairs[0::2], src)
    np.testing.assert_array_equal(pairs[1::2], dst)
    header, blob = build_response(reader, "vectors", {"field": "velocity_umap", "dim": "2"})
    np.testing.assert_array_equal(np.frombuffer(blob, dtype="<f4").reshape(-1, 2), reader.vector_field("velocity_umap", 2))


@pytest.mark.parametrize(
    "kind,args,expected",
    [
        ("obs", {"key": "nope"}, "obs field 'nope'"),
        ("gene", {"gene": "NOPE"}, "gene 'NOPE'"),
        ("points", {"dim": 4}, "dimension 4"),
        ("points", {}, "argument 'dim'"),
        ("teapot", {}, "unknown viewer request kind 'teapot'"),
    ],
)
def test_bad_requests_answer_with_a_readable_error(reader, kind, args, expected):
    rec = Recorder()
    backend = ViewerBackend(reader, rec)
    request(backend, 3, kind, **args)
    (content, _), = rec.sent
    assert content["type"] == "viewer:error" and content["id"] == 3
    assert expected in content["message"]


def test_selection_reaches_python_and_callbacks(reader):
    backend = ViewerBackend(reader, Recorder())
    seen = []
    backend.on_select(seen.append)

    @backend.on_select
    def broken(_):
        raise RuntimeError("user bug")

    backend.handle({"type": "viewer:select", "n": 4}, [memoryview(np.array([9, 2, 2, 5], dtype="<u4").tobytes())])
    np.testing.assert_array_equal(backend.selected, [2, 5, 9])
    assert backend.selected.dtype == np.int64
    np.testing.assert_array_equal(seen[0], [2, 5, 9])
    backend.handle({"type": "viewer:select", "n": 0}, [])
    assert backend.selected.size == 0
    with pytest.raises(TypeError, match="callable"):
        backend.on_select("not callable")


def test_highlight_and_reset_commands(reader):
    rec = Recorder()
    backend = ViewerBackend(reader, rec)
    backend.highlight([4, 1, 4])
    content, bufs = rec.sent[-1]
    assert content == {"type": "viewer:command", "command": "highlight", "args": {"n": 2}}
    np.testing.assert_array_equal(np.frombuffer(bufs[0], dtype="<u4"), [1, 4])
    with pytest.raises(IndexError, match=r"\[0, 40\)"):
        backend.highlight([reader.n_cells])
    backend.reset_view()
    assert rec.sent[-1][0]["command"] == "reset_view"


def test_frame_and_pack_are_aligned_and_parseable():
    specs, blob = pack_arrays([("a", np.arange(3, dtype=np.uint8)), ("b", np.arange(2, dtype=np.float32))])
    assert specs[1]["offset"] % 8 == 0
    framed = frame_response({"arrays": specs, "x": 1}, blob)
    assert framed[:4] == b"CLNB"
    (n,) = struct.unpack("<I", framed[4:8])
    header = json.loads(framed[8:8 + n])
    base = -(-(8 + n) // 8) * 8
    assert header["x"] == 1
    b = np.frombuffer(framed, dtype="<f4", count=2, offset=base + specs[1]["offset"])
    np.testing.assert_array_equal(b, [0, 1])


def test_backend_rejects_bad_inputs(tmp_path):
    with pytest.raises(TypeError, match="ExportReader"):
        ViewerBackend(42, Recorder())
    with pytest.raises(ValueError, match="chunk_bytes"):
        ViewerBackend(FIXTURES / "plain", Recorder(), chunk_bytes=10)


def test_transfers_without_acks_are_dropped_after_a_while(reader, monkeypatch):
    import cellucid_nb.viewer_protocol as vb

    backend = ViewerBackend(reader, Recorder(), chunk_bytes=64)
    request(backend, "view-a-1", "points", dim=3)
    assert backend.pending_transfers == 1
    clock = [vb.time.monotonic() + vb.STALE_SECONDS + 1]
    monkeypatch.setattr(vb.time, "monotonic", lambda: clock[0])
    backend.handle({"type": "viewer:ack", "id": "other", "seq": 0}, [])
    assert backend.pending_transfers == 0


def test_transfers_without_acks_are_bounded_in_number_and_bytes(reader, monkeypatch):
    import cellucid_nb.viewer_protocol as vb

    rec = Recorder()
    backend = ViewerBackend(reader, rec, chunk_bytes=64)
    ticks = iter(range(10_000))
    monkeypatch.setattr(vb.time, "monotonic", lambda: float(next(ticks)))  # every message a moment later
    for i in range(vb.MAX_PENDING_TRANSFERS + 8):
        request(backend, f"r{i}", "points", dim=3)
    assert backend.pending_transfers == vb.MAX_PENDING_TRANSFERS
    # the oldest were dropped, the newest kept: an ack of the last one still gets its next chunk
    n_before = len(rec.of_type("viewer:response"))
    backend.handle({"type": "viewer:ack", "id": f"r{vb.MAX_PENDING_TRANSFERS + 7}", "seq": 0}, [])
    assert len(rec.of_type("viewer:response")) == n_before + 1
    backend.handle({"type": "viewer:ack", "id": "r0", "seq": 0}, [])  # dropped: a late ack is ignored
    assert len(rec.of_type("viewer:response")) == n_before + 1 and rec.of_type("viewer:error") == []

    points = len(build_response(reader, "points", {"dim": 3})[1])
    monkeypatch.setattr(vb, "MAX_PENDING_BYTES", 2 * points)
    backend.close()
    for i in range(3):
        request(backend, f"b{i}", "points", dim=3)
    assert backend.pending_transfers == 2  # two responses' bytes at most


def test_close_drops_transfers_and_callbacks(reader):
    backend = ViewerBackend(reader, Recorder(), chunk_bytes=64)
    backend.on_select(lambda idx: None)
    request(backend, 1, "points", dim=2)
    assert backend.pending_transfers == 1
    backend.close()
    assert backend.pending_transfers == 0 and backend._select_callbacks == []


# -- malformed messages from the front-end: an error reply each, never an exception ----------------
MALFORMED = {
    "id_list": ({"type": "viewer:request", "id": [1, 2], "kind": "meta"}, [], None, "request id [1, 2] is a list, expected a string or an integer"),
    "id_dict": ({"type": "viewer:request", "id": {"a": 1}, "kind": "meta"}, [], None, "request id {'a': 1} is a dict"),
    "id_float": ({"type": "viewer:request", "id": 1.5, "kind": "meta"}, [], None, "request id 1.5 is a float"),
    "id_bool": ({"type": "viewer:request", "id": True, "kind": "meta"}, [], None, "request id True is a bool"),
    "kind_number": ({"type": "viewer:request", "id": 4, "kind": 7}, [], 4, "request kind 7 is a int, expected a string"),
    "args_list": ({"type": "viewer:request", "id": 5, "kind": "points", "args": [2]}, [], 5, "request args are a list, expected an object"),
    "dim_text": ({"type": "viewer:request", "id": 6, "kind": "points", "args": {"dim": "two"}}, [], 6, "ValueError"),
    "ack_id_list": ({"type": "viewer:ack", "id": [], "seq": 0}, [], None, "request id [] is a list"),
    "select_not_multiple_of_4": ({"type": "viewer:select", "n": 1}, [b"\x01\x00\x00"], None, "selection buffer has 3 bytes, expected a multiple of 4"),
    "select_beyond_n_cells": ({"type": "viewer:select", "n": 2}, [np.array([1, 10**6], "<u4").tobytes()], None, "selection index 1000000 is out of range; expected indices below n_cells="),
    "select_count_mismatch": ({"type": "viewer:select", "n": 5}, [np.array([1, 2], "<u4").tobytes()], None, "selection says n=5 but its buffer holds 2 indices"),
    "select_n_text": ({"type": "viewer:select", "n": "2"}, [np.array([1, 2], "<u4").tobytes()], None, "selection says n='2'"),
    "select_buffer_not_bytes": ({"type": "viewer:select", "n": 1}, [12345], None, "selection buffer is a int, expected bytes"),
    "event_payload_string": ({"type": "viewer:event", "name": "first_frame", "payload": "fast"}, [], None, "event 'first_frame' payload is a str, expected an object"),
    "event_payload_number": ({"type": "viewer:event", "name": "first_frame", "payload": 12}, [], None, "payload is a int, expected an object"),
    "event_name_list": ({"type": "viewer:event", "name": ["x"], "payload": {}}, [], None, "event name ['x'] is a list, expected a string"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_message_gets_an_error_reply_and_changes_nothing(case, reader):
    content, buffers, rid, expected = MALFORMED[case]
    rec = Recorder()
    backend = ViewerBackend(reader, rec)
    backend.handle({"type": "viewer:select", "n": 2}, [np.array([3, 1], "<u4").tobytes()])
    assert backend.handle(content, buffers) is True  # no exception reaches the kernel
    errors = rec.of_type("viewer:error")
    assert len(errors) == 1 and errors[0][0]["id"] == rid, rec.sent
    assert expected in errors[0][0]["message"], errors[0][0]["message"]
    json.dumps(errors[0][0])  # the reply itself is JSON-safe
    np.testing.assert_array_equal(backend.selected, [1, 3])  # the previous selection stands
    assert backend.events == [] and backend.pending_transfers == 0


def test_selection_at_the_last_cell_is_accepted(reader):
    backend = ViewerBackend(reader, Recorder())
    last = reader.n_cells - 1
    backend.handle({"type": "viewer:select", "n": 1}, [np.array([last], "<u4").tobytes()])
    np.testing.assert_array_equal(backend.selected, [last])


def test_bad_ack_seq_is_an_error_and_the_transfer_goes_on(reader):
    rec = Recorder()
    backend = ViewerBackend(reader, rec, chunk_bytes=64, window=1)
    request(backend, 8, "points", dim=2)
    assert backend.pending_transfers == 1
    for seq in (99, "0", None, -1):
        backend.handle({"type": "viewer:ack", "id": 8, "seq": seq}, [])
    assert len(rec.of_type("viewer:error")) == 4 and backend.pending_transfers == 1
    backend.handle({"type": "viewer:ack", "id": 8, "seq": 0}, [])
    assert [c["seq"] for c, _ in rec.of_type("viewer:response")] == [0, 1]


def test_duplicate_request_id_while_answering_is_refused(reader):
    rec = Recorder()
    backend = ViewerBackend(reader, rec, chunk_bytes=64, window=1)
    request(backend, "p", "points", dim=2)
    request(backend, "p", "points", dim=2)
    (error, _), = rec.of_type("viewer:error")
    assert error["id"] == "p" and "already being answered" in error["message"]


def test_failing_event_callback_does_not_reach_the_kernel(reader):
    backend = ViewerBackend(reader, Recorder())
    backend.on_event(lambda name, payload: 1 / 0)
    assert backend.handle({"type": "viewer:event", "name": "x", "payload": {"a": 1}}, []) is True
    assert backend.events == [("x", {"a": 1})]


def test_event_log_is_bounded(reader):
    from cellucid_nb.viewer_protocol import MAX_EVENTS

    backend = ViewerBackend(reader, Recorder())
    for i in range(MAX_EVENTS + 5):
        backend.handle({"type": "viewer:event", "name": "tick", "payload": {"i": i}}, [])
    assert len(backend.events) == MAX_EVENTS and backend.events[-1] == ("tick", {"i": MAX_EVENTS + 4})


def test_event_without_payload_is_an_empty_one(reader):
    backend = ViewerBackend(reader, Recorder())
    backend.handle({"type": "viewer:event", "name": "ready"}, [])
    assert backend.events == [("ready", {})]
