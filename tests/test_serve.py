"""The HTTP server: endpoints, raw files, the viewer API, path safety, ports."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cellucid_nb.format.reader import read_export
from cellucid_nb.server import CellucidServer, find_free_port, serve

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cellucid_0_0_9"


@pytest.fixture(scope="module")
def server():
    srv = serve(FIXTURES / "gzip_q8", port=0)
    yield srv
    srv.stop()


def get(srv, path, method="GET"):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request(method, path)  # raw path: no client-side normalisation of "..".
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), body


def test_binds_localhost_by_default(server):
    assert server.host == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{server.port}/"


@pytest.mark.parametrize("endpoint", ["health", "info", "datasets"])
def test_cellucid_endpoints_answer_json_with_cors(server, endpoint):
    status, headers, body = get(server, f"/_cellucid/{endpoint}")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    data = json.loads(body)
    if endpoint == "health":
        assert data["status"] == "ok"
    elif endpoint == "datasets":
        assert data["datasets"] == [{"id": "ref_gzip_q8", "name": "ref_gzip_q8", "path": "/"}]
    else:
        assert data["n_datasets"] == 1 and data["port"] == server.port


def test_preflight_is_allowed(server):
    status, headers, _ = get(server, "/_cellucid/health", method="OPTIONS")
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "*"


def test_gz_files_are_served_as_raw_bytes(server):
    rel = "points_2d.bin.gz"
    status, headers, body = get(server, f"/{rel}")
    assert status == 200
    assert body == (FIXTURES / "gzip_q8" / rel).read_bytes()
    assert "Content-Encoding" not in headers
    assert headers["Content-Type"] == "application/octet-stream"
    status, headers, body = get(server, "/obs_manifest.json", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == (FIXTURES / "gzip_q8" / "obs_manifest.json").stat().st_size


@pytest.mark.parametrize("path", ["/../plain/obs_manifest.json", "/%2e%2e/%2e%2e/test_serve.py", "/obs/../../gzip_q8/../plain/dataset_identity.json"])
def test_paths_outside_the_export_are_refused(server, path):
    status, _, body = get(server, path)
    assert status == 403, body
    assert b"outside" in body


def test_missing_files_are_404(server):
    assert get(server, "/nope.bin")[0] == 404
    assert get(server, "/_cellucid/static/../serve.py")[0] == 404


def parse_frame(body):
    assert body[:4] == b"CLNB"
    (n,) = struct.unpack("<I", body[4:8])
    return json.loads(body[8:8 + n]), -(-(8 + n) // 8) * 8


def test_viewer_api_matches_the_reader(server):
    reader = read_export(FIXTURES / "gzip_q8")
    status, _, body = get(server, "/_cellucid/api/ref_gzip_q8/points?dim=2")
    assert status == 200
    header, base = parse_frame(body)
    pts = np.frombuffer(body, dtype="<f4", count=reader.n_cells * 2, offset=base).reshape(-1, 2)
    np.testing.assert_array_equal(pts, reader.points(2))
    status, _, body = get(server, "/_cellucid/api/ref_gzip_q8/obs?key=cell%20type")
    header, base = parse_frame(body)
    np.testing.assert_array_equal(np.frombuffer(body, dtype=np.uint8, count=reader.n_cells, offset=base), reader.obs_raw("cell type"))
    status, _, body = get(server, "/_cellucid/api/ref_gzip_q8/meta")
    header, _ = parse_frame(body)
    assert header["n_cells"] == reader.n_cells


def test_viewer_api_errors_are_readable(server):
    status, _, body = get(server, "/_cellucid/api/ref_gzip_q8/obs?key=missing")
    assert status == 400 and "obs field 'missing'" in json.loads(body)["error"]
    status, _, body = get(server, "/_cellucid/api/other/meta")
    assert status == 404 and "unknown dataset 'other'" in json.loads(body)["error"]


def test_standalone_page_and_its_assets(server):
    status, headers, body = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"/_cellucid/static/standalone.js" in body
    status, headers, body = get(server, "/_cellucid/static/standalone.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript") and len(body) > 1000


def test_next_free_port_when_taken():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert find_free_port("127.0.0.1", taken) > taken
        with CellucidServer(FIXTURES / "plain", port=taken) as srv:
            assert srv.port != taken
            with urllib.request.urlopen(srv.url + "_cellucid/health", timeout=5) as r:
                assert json.loads(r.read())["status"] == "ok"


def test_a_folder_of_exports_lists_every_dataset(tmp_path):
    for name in ("plain", "gzip_q8"):
        shutil.copytree(FIXTURES / name, tmp_path / name)
    with serve(tmp_path, port=0) as srv:
        with urllib.request.urlopen(srv.url + "_cellucid/datasets", timeout=5) as r:
            datasets = json.loads(r.read())["datasets"]
        assert {d["id"] for d in datasets} == {"ref_plain", "ref_gzip_q8"}
        assert {d["path"] for d in datasets} == {"/plain/", "/gzip_q8/"}
        with urllib.request.urlopen(srv.url + "plain/obs_manifest.json", timeout=5) as r:
            assert json.loads(r.read())["_format"] == "compact_v1"


def test_refuses_folders_without_exports(tmp_path):
    with pytest.raises(ValueError, match="holds no export"):
        serve(tmp_path)
    with pytest.raises(FileNotFoundError):
        serve(tmp_path / "missing")
