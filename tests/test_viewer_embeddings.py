"""Embedding choice in the viewer protocol: meta lists every embedding, requests name one.

Expected values come from the fixture's own files (``dataset_identity.json``,
``obs_manifest.json`` and the gzip payloads read with ``gzip`` + ``numpy``), not from
the reader the protocol uses.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import traitlets

from cellucid_nb.format.reader import read_export
from cellucid_nb.viewer_order import draw_order_slice
from cellucid_nb.viewer_protocol import ViewerBackend, build_meta, build_response

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MULTI = FIXTURES / "cellucid_0_9_4" / "gzip_q8_u8_multi"  # 2D: X_tsne, X_umap (default); 3D: X_pca_3d


@pytest.fixture(scope="module")
def reader():
    return read_export(MULTI)


@pytest.fixture(scope="module")
def identity():
    return json.loads((MULTI / "dataset_identity.json").read_text())


def stored(relpath: str, dim: int) -> np.ndarray:
    """A float32 payload of the fixture, inflated here (independent of the reader)."""
    raw = gzip.decompress((MULTI / relpath).read_bytes())
    return np.frombuffer(raw, dtype="<f4").reshape(-1, dim)


def floats(header: dict, blob: bytes, name: str) -> np.ndarray:
    spec = next(a for a in header["arrays"] if a["name"] == name)
    return np.frombuffer(blob, dtype="<f4", count=spec["nbytes"] // 4, offset=spec["offset"]).reshape(spec["shape"])


class Recorder:
    """Stands in for ``widget.send``."""

    def __init__(self):
        self.sent: list[tuple[dict, list]] = []

    def __call__(self, content, buffers):
        self.sent.append((content, list(buffers)))


def test_meta_lists_the_embeddings_of_each_dimension(reader, identity):
    meta = build_meta(reader)
    items = identity["embeddings"]["items"]
    defaults = identity["embeddings"]["defaults"]
    expected: dict[str, list[dict]] = {}
    for eid, item in items.items():
        d = int(item["dimension"])
        expected.setdefault(str(d), []).append(
            {"id": eid, "label": item["label"], "dimension": d, "default": defaults[f"{d}d"] == eid})
    assert meta["embeddings"] == expected
    assert [e["id"] for e in meta["embeddings"]["2"]] == ["X_tsne", "X_umap"]
    assert sum(e["default"] for e in meta["embeddings"]["2"]) == 1
    json.dumps(meta, allow_nan=False)


def test_meta_gives_centroids_per_embedding_and_vector_bindings(reader):
    meta = build_meta(reader)
    manifest = json.loads((MULTI / "obs_manifest.json").read_text())
    tuples = {t[1]: t for t in manifest["_categoricalFields"]}  # index layout: [index, key, ...]
    phase = next(f for f in meta["obs"] if f["key"] == "phase")
    assert phase["centroids_by_embedding"] == tuples["phase"][5]
    assert set(phase["centroids_by_embedding"]) == {"X_tsne", "X_umap", "X_pca_3d"}
    assert meta["vectors"]["velocity"]["embeddings"] == ["X_pca_3d", "X_umap"]  # not bound to X_tsne


def test_v1_exports_have_one_default_embedding_per_dimension():
    meta = build_meta(read_export(FIXTURES / "cellucid_0_0_9" / "gzip_q8"))
    assert meta["embeddings"] == {
        str(d): [{"id": f"{d}d", "label": f"{d}D", "dimension": d, "default": True}] for d in (1, 2, 3)}
    assert meta["vectors"]["velocity_umap"]["embeddings"] == ["2d", "3d"]


@pytest.mark.parametrize("eid,file", [("X_tsne", "embeddings/0_2d.bin.gz"), ("X_umap", "embeddings/1_2d.bin.gz"),
                                      (None, "embeddings/1_2d.bin.gz"), ("", "embeddings/1_2d.bin.gz")])
def test_points_of_a_named_embedding_are_its_file(reader, eid, file):
    args = {"dim": 2} if eid is None else {"dim": 2, "embedding": eid}
    header, blob = build_response(reader, "points", args)
    np.testing.assert_array_equal(floats(header, blob, "points"), stored(file, 2))
    assert header["embedding"] == (eid or "X_umap")


def test_permuted_slices_follow_the_embedding(reader):
    n = reader.n_cells
    tsne, umap = stored("embeddings/0_2d.bin.gz", 2), stored("embeddings/1_2d.bin.gz", 2)
    assert not np.array_equal(tsne, umap)
    cells = draw_order_slice(n, 10, 70)
    for eid, full in [("X_umap", umap), ("X_tsne", tsne), ("X_umap", umap)]:  # the slice cache keeps them apart
        header, blob = build_response(reader, "points", {"dim": 2, "embedding": eid, "order": "permuted",
                                                         "start": 10, "stop": 70})
        np.testing.assert_array_equal(floats(header, blob, "points"), full[cells])
        assert (header["embedding"], header["start"], header["stop"]) == (eid, 10, 70)


def test_vectors_of_a_named_embedding(reader):
    header, blob = build_response(reader, "vectors", {"field": "velocity", "dim": 3, "embedding": "X_pca_3d"})
    np.testing.assert_array_equal(floats(header, blob, "vectors"), stored("vectors/0_2.bin.gz", 3))
    header, blob = build_response(reader, "vectors", {"field": "velocity", "dim": 2})
    np.testing.assert_array_equal(floats(header, blob, "vectors"), stored("vectors/0_1.bin.gz", 2))
    assert header["embedding"] == "X_umap"


def test_centroids_request_names_its_embedding(reader):
    manifest = json.loads((MULTI / "obs_manifest.json").read_text())
    raw = next(t for t in manifest["_categoricalFields"] if t[1] == "louvain")[5]
    header, blob = build_response(reader, "centroids", {"key": "louvain", "embedding": "X_tsne"})
    assert blob == b"" and header == {"key": "louvain", "embedding": "X_tsne", "centroids": raw["X_tsne"]}
    header, _ = build_response(reader, "centroids", {"key": "louvain"})  # default dimension's default embedding
    assert header["embedding"] == "X_pca_3d" and header["centroids"] == raw["X_pca_3d"]


@pytest.mark.parametrize("kind,args,expected", [
    ("points", {"dim": 2, "embedding": "X_pca"}, "embedding 'X_pca' is not in the export; known embeddings: "
                                                   "['X_pca_3d', 'X_tsne', 'X_umap']"),
    ("points", {"dim": 3, "embedding": "X_tsne"}, "embedding 'X_tsne' is 2D, expected one of the 3D embeddings "
                                                    "['X_pca_3d']"),
    ("points", {"dim": 2, "embedding": 7}, "embedding 7 is not in the export"),
    ("points", {"dim": 2, "embedding": ["X_umap"]}, "embedding ['X_umap'] is not in the export"),
    ("vectors", {"field": "velocity", "dim": 2, "embedding": "X_tsne"}, "not bound to embedding 'X_tsne'"),
    ("vectors", {"field": "velocity", "dim": 2, "embedding": "umap"}, "embedding 'umap' is not in the export"),
    ("centroids", {"key": "louvain", "embedding": "nope"}, "embedding 'nope' is not in the export"),
    ("centroids", {"key": "n_genes"}, "'n_genes' is not a categorical obs field"),
    ("centroids", {}, "argument 'key'"),
])
def test_bad_embedding_gets_an_error_reply_not_an_exception(reader, kind, args, expected):
    rec = Recorder()
    backend = ViewerBackend(reader, rec)
    assert backend.handle({"type": "viewer:request", "id": "r1", "kind": kind, "args": args}, []) is True
    (content, buffers), = rec.sent
    assert content["type"] == "viewer:error" and content["id"] == "r1" and buffers == []
    assert expected in content["message"]
    # the backend still answers afterwards
    backend.handle({"type": "viewer:request", "id": "r2", "kind": "points", "args": {"dim": 2, "embedding": "X_tsne"}}, [])
    assert rec.sent[-1][0]["type"] == "viewer:response" and rec.sent[-1][0]["header"]["embedding"] == "X_tsne"


# ---------------------------------------------------------------------------- the Viewer widget's trait

def test_viewer_embedding_trait_sets_the_dimension_and_is_validated():
    from cellucid_nb.widgets.viewer import Viewer

    v = Viewer(MULTI)
    try:
        assert (v.embedding, v.dimension) == ("", 3)  # "": each dimension's default
        v.embedding = "X_tsne"
        assert v.embedding == "X_tsne"
        with pytest.raises(traitlets.TraitError) as err:
            v.embedding = "X_tsn"
        msg = str(err.value)
        assert "embedding='X_tsn' is not in the export; did you mean 'X_tsne'?" in msg
        assert "{2: ['X_tsne', 'X_umap'], 3: ['X_pca_3d']}" in msg
        assert v.embedding == "X_tsne", "a refused value leaves the trait as it was"
        v.embedding = ""
    finally:
        v.close()
    v = Viewer(MULTI, embedding="X_tsne")  # the embedding's dimension, not the export's default (3)
    assert (v.embedding, v.dimension) == ("X_tsne", 2)
    v.close()
    v = Viewer(MULTI, embedding="X_umap", dimension=2)
    assert v.dimension == 2
    v.close()


def test_viewer_refuses_an_unknown_or_conflicting_embedding_before_showing():
    from cellucid_nb.widgets.viewer import Viewer

    with pytest.raises(ValueError, match=r"embedding='umap' is not in the export.*did you mean 'X_umap'"):
        Viewer(MULTI, embedding="umap")
    with pytest.raises(ValueError, match=r"embedding='X_tsne' is 2D but dimension=3 was asked"):
        Viewer(MULTI, embedding="X_tsne", dimension=3)
    with pytest.raises(TypeError, match="did you mean 'embedding'"):
        Viewer(MULTI, embeding="X_tsne")
    v1 = Viewer(FIXTURES / "cellucid_0_0_9" / "gzip_q8", embedding="2d")  # v1: one "<d>d" embedding per dimension
    assert v1.dimension == 2
    v1.close()


# ---------------------------------------------------------------------------- over HTTP (serve)

def test_http_requests_carry_the_embedding(tmp_path):
    import shutil
    import struct
    import urllib.error
    import urllib.request

    from cellucid_nb.server import TOKEN_HEADER, serve

    folder = shutil.copytree(MULTI, tmp_path / "export")
    srv = serve(folder, port=0)
    try:
        def get(query: str) -> bytes:
            req = urllib.request.Request(f"http://127.0.0.1:{srv.port}/_cellucid/api/pbmc68k_gzip_q8_u8_multi/{query}",
                                         headers={TOKEN_HEADER: srv.token})
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.read()

        frame = get("points?dim=2&embedding=X_tsne")
        assert frame[:4] == b"CLNB"
        (n,) = struct.unpack("<I", frame[4:8])
        header = json.loads(frame[8:8 + n])
        blob = frame[8 + n + (-(8 + n)) % 8:]
        assert header["embedding"] == "X_tsne"
        np.testing.assert_array_equal(floats(header, blob, "points"), stored("embeddings/0_2d.bin.gz", 2))
        with pytest.raises(urllib.error.HTTPError) as err:
            get("points?dim=2&embedding=X_pca")
        assert err.value.code == 400
        assert "embedding 'X_pca' is not in the export; known embeddings" in err.value.read().decode()
    finally:
        srv.stop()
