"""The HTTP server: endpoints, raw files, the viewer API, and that only its user can read it.

One test per rule of issue 12 section 2 (foreign Origin, foreign Host, missing token,
a dotfile, a staging folder, a non-export file in the root, an outward symlink, slow
clients), over real sockets on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cellucid_nb.format.reader import read_export
from cellucid_nb.server import TOKEN_HEADER, CellucidServer, find_free_port, serve

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cellucid_0_0_9"


@pytest.fixture(scope="module")
def server():
    srv = serve(FIXTURES / "gzip_q8", port=0)
    yield srv
    srv.stop()


def get(srv, path, method="GET", headers=None, token=True, host=None):
    """A raw request (no client-side normalisation of ".."), with the token header unless told."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    hdrs = dict(headers or {})
    if token and srv.token:
        hdrs.setdefault(TOKEN_HEADER, srv.token)
    conn.putrequest(method, path, skip_host=True)
    conn.putheader("Host", host if host is not None else f"127.0.0.1:{srv.port}")
    for k, v in hdrs.items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), body


def test_binds_localhost_with_a_random_token(server):
    assert server.host == "127.0.0.1"
    assert server.token and len(server.token) >= 24
    assert server.url == f"http://127.0.0.1:{server.port}/?token={server.token}"
    with serve(FIXTURES / "gzip_q8", port=0) as other:
        assert other.token != server.token


@pytest.mark.parametrize("endpoint", ["health", "info", "datasets"])
def test_cellucid_endpoints_answer_json_without_cors(server, endpoint):
    status, headers, body = get(server, f"/_cellucid/{endpoint}")
    assert status == 200
    assert "Access-Control-Allow-Origin" not in headers
    data = json.loads(body)
    if endpoint == "health":
        assert data["status"] == "ok"
    elif endpoint == "datasets":
        assert data["datasets"] == [{"id": "ref_gzip_q8", "name": "ref_gzip_q8", "path": "/"}]
    else:
        assert data["n_datasets"] == 1 and data["port"] == server.port


def test_no_answer_reveals_an_absolute_path(server):
    root = str(FIXTURES.parent.parent.parent)
    for path in ("/_cellucid/info", "/_cellucid/datasets", "/_cellucid/health", "/nope.bin", "/_cellucid/api/x/meta",
                 "/_cellucid/api/ref_gzip_q8/meta", "/_cellucid/api/ref_gzip_q8/obs?key=missing", "/../x"):
        status, _, body = get(server, path)
        assert root.encode() not in body, (path, body[:200])
        assert b"/work/" not in body and b"/tmp/" not in body, (path, body[:200])
    info = json.loads(get(server, "/_cellucid/info")[2])
    assert "data_dir" not in info


def test_errors_about_broken_payloads_name_no_absolute_path(tmp_path):
    export = shutil.copytree(FIXTURES / "gzip_q8", tmp_path / "deep" / "export")
    with serve(export, port=0) as srv:
        (export / "points_2d.bin.gz").write_bytes(b"\x1f\x8b broken")
        (export / "obs" / "cell_type.codes.u8.gz").unlink()
        for path in ("/_cellucid/api/ref_gzip_q8/points?dim=2", "/_cellucid/api/ref_gzip_q8/obs?key=cell%20type"):
            status, _, body = get(srv, path)
            assert status in (400, 500), (path, status)
            assert str(tmp_path).encode() not in body and b"/deep/" not in body, body
            assert json.loads(body)["error"], body


# ---------------------------------------------------------------- rule: foreign Origin
def test_foreign_origin_gets_no_cors_and_is_refused(server):
    status, headers, body = get(server, "/_cellucid/datasets", headers={"Origin": "https://evil.example"})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    assert b"ref_gzip_q8" not in body
    status, headers, _ = get(server, "/_cellucid/datasets", method="OPTIONS", headers={"Origin": "https://evil.example"})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    # the page's own origin is fine
    status, headers, _ = get(server, "/_cellucid/datasets", headers={"Origin": f"http://127.0.0.1:{server.port}"})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


def test_allowed_origin_gets_cors_for_itself_only(tmp_path):
    with serve(FIXTURES / "gzip_q8", port=0, allow_origins=["https://app.example"]) as srv:
        status, headers, _ = get(srv, "/_cellucid/health", headers={"Origin": "https://app.example"})
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert headers["Vary"] == "Origin"
        status, headers, _ = get(srv, "/_cellucid/health", method="OPTIONS", token=False,
                                 headers={"Origin": "https://app.example", "Access-Control-Request-Headers": TOKEN_HEADER})
        assert status == 204 and TOKEN_HEADER in headers["Access-Control-Allow-Headers"]
        status, headers, _ = get(srv, "/_cellucid/health", headers={"Origin": "https://other.example"})
        assert status == 403 and "Access-Control-Allow-Origin" not in headers
    with pytest.raises(ValueError, match="not an origin"):
        serve(FIXTURES / "gzip_q8", port=0, allow_origins=["app.example/path"])


# ---------------------------------------------------------------- rule: foreign Host
@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1:1", "attacker.localhost.evil:{port}", "127.0.0.1"])
def test_foreign_host_is_refused(server, host):
    status, _, body = get(server, "/_cellucid/datasets", host=host.format(port=server.port))
    assert status == 421, (host, status)
    assert b"ref_gzip_q8" not in body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}"])
def test_loopback_hosts_are_accepted(server, host):
    assert get(server, "/_cellucid/health", host=host.format(port=server.port))[0] == 200


def test_missing_host_is_a_bad_request(server):
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(f"GET /_cellucid/health HTTP/1.0\r\n{TOKEN_HEADER}: {server.token}\r\n\r\n".encode())
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.0 400") or reply.startswith(b"HTTP/1.1 400"), reply[:40]


def test_two_host_headers_or_a_foreign_absolute_target_are_refused(server):
    """A second Host (a proxy may route by the last one) and an absolute-form target naming another host."""
    own = f"127.0.0.1:{server.port}"
    for extra_host in ("evil.example", own):
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            s.sendall(f"GET /_cellucid/datasets HTTP/1.1\r\nHost: {own}\r\nHost: {extra_host}\r\n"
                      f"{TOKEN_HEADER}: {server.token}\r\nConnection: close\r\n\r\n".encode())
            reply = b"".join(iter(lambda: s.recv(65536), b""))  # until the server closes
        assert reply.startswith(b"HTTP/1.1 400") and b"exactly one Host header" in reply, reply[:80]
        assert b"ref_gzip_q8" not in reply
    status, _, body = get(server, "http://evil.example/obs_manifest.json")
    assert status == 421 and b"_obsSchemas" not in body
    assert get(server, f"http://{own}/obs_manifest.json")[0] == 200


@pytest.mark.parametrize(("name", "text"), [
    ("datasets.json", b"{bad"), ("datasets.json", b"\xff{}"), ("datasets.json", b"[" * 100_000),
    ("datasets.json", b'{"datasets": 5}'), ("a/dataset_identity.json", b"{bad"),
    ("a/dataset_identity.json", b"\xff"), ("a/dataset_identity.json", b"{" * 100_000),
])
def test_a_broken_json_file_in_the_served_folder_is_a_clear_error(tmp_path, name, text):
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "gzip_q8", root / "a")
    (root / name).write_bytes(text)
    with pytest.raises(ValueError, match=f"cannot serve .*{name.split('/')[-1]}: .*expected"):
        CellucidServer(root, port=0)


# ---------------------------------------------------------------- rule: missing token
@pytest.mark.parametrize("path", ["/", "/_cellucid/datasets", "/_cellucid/api/ref_gzip_q8/meta", "/obs_manifest.json",
                                  "/_cellucid/static/standalone.js"])
def test_missing_or_wrong_token_is_403(server, path):
    status, _, body = get(server, path, token=False)
    assert status == 403 and b"token" in body
    status, _, _ = get(server, path, token=False, headers={TOKEN_HEADER: "x" * len(server.token)})
    assert status == 403
    sep = "&" if "?" in path else "?"
    assert get(server, f"{path}{sep}token={server.token}", token=False)[0] == 200


def test_page_carries_the_token_to_its_assets(server):
    status, headers, body = get(server, f"/?token={server.token}", token=False)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert f"/_cellucid/static/standalone.js?token={server.token}".encode() in body
    assert headers["Referrer-Policy"] == "no-referrer"


def test_no_token_when_turned_off():
    with serve(FIXTURES / "gzip_q8", port=0, token=None) as srv:
        assert srv.token is None and srv.url == f"http://127.0.0.1:{srv.port}/"
        assert get(srv, "/_cellucid/datasets", token=False)[0] == 200
    with pytest.raises(ValueError, match="at least 8"):
        serve(FIXTURES / "gzip_q8", port=0, token="short")


# ---------------------------------------------------------------- rule: only export files
@pytest.fixture
def cluttered(tmp_path):
    """An exports root with one export, and beside / inside it things that must never be served."""
    root = tmp_path / "root"
    export = shutil.copytree(FIXTURES / "gzip_q8", root / "gzip_q8")
    (root / ".env").write_text("SECRET=1")
    (export / ".secret").write_text("SECRET=2")
    (root / "notes.txt").write_text("SECRET=3")
    (export / "notes.txt").write_text("SECRET=4")
    staging = root / ".gzip_q8.staging-123-abc"
    shutil.copytree(FIXTURES / "gzip_q8", staging)
    (staging / "obs_manifest.json").write_text('{"SECRET": 5}')
    old = root / ".gzip_q8.old-123-abc"
    shutil.copytree(FIXTURES / "gzip_q8", old)
    outside = tmp_path / "outside.txt"
    outside.write_text("SECRET=6")
    return root


@pytest.fixture
def cluttered_server(cluttered):
    with serve(cluttered, port=0) as srv:
        yield srv


def test_a_dotfile_is_not_served(cluttered_server):
    for path in ("/.env", "/gzip_q8/.secret", "/%2eenv"):
        status, _, body = get(cluttered_server, path)
        assert status == 404 and b"SECRET" not in body, path


def test_a_staging_folder_is_not_served(cluttered_server):
    for path in ("/.gzip_q8.staging-123-abc/obs_manifest.json", "/.gzip_q8.old-123-abc/dataset_identity.json"):
        status, _, body = get(cluttered_server, path)
        assert status == 404 and b"SECRET" not in body and b"compact_v1" not in body, path
    datasets = json.loads(get(cluttered_server, "/_cellucid/datasets")[2])["datasets"]
    assert [d["path"] for d in datasets] == ["/gzip_q8/"]


def test_a_non_export_file_in_the_root_is_not_served(cluttered_server):
    for path in ("/notes.txt", "/gzip_q8/notes.txt", "/gzip_q8/"):
        status, _, body = get(cluttered_server, path)
        assert status == 404 and b"SECRET" not in body, path
    # while the export's own files are
    status, _, body = get(cluttered_server, "/gzip_q8/obs/cell_type.codes.u8.gz")
    assert status == 200 and body == (FIXTURES / "gzip_q8" / "obs" / "cell_type.codes.u8.gz").read_bytes()


def test_an_outward_symlink_is_not_served(tmp_path):
    export = shutil.copytree(FIXTURES / "gzip_q8", tmp_path / "export")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"SECRET" * 100)
    target = export / "obs" / "score.values.u8.gz"
    target.unlink()
    os.symlink(secret, target)  # a payload the manifest names, now a link out of the export
    os.symlink(tmp_path, export / "up")  # a folder link
    with serve(export, port=0) as srv:
        for path in ("/obs/score.values.u8.gz", "/up/secret.bin", "/up/export/obs_manifest.json"):
            status, _, body = get(srv, path)
            assert status == 404 and b"SECRET" not in body, path
        # swapping a served file for a link after start is caught too
        served = export / "points_2d.bin.gz"
        served.unlink()
        os.symlink(secret, served)
        status, _, body = get(srv, "/points_2d.bin.gz")
        assert status == 404 and b"SECRET" not in body


def test_a_linked_export_folder_is_not_served(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(FIXTURES / "gzip_q8", root / "real")
    os.symlink(FIXTURES / "plain", root / "linked")
    with serve(root, port=0) as srv:
        datasets = json.loads(get(srv, "/_cellucid/datasets")[2])["datasets"]
        assert [d["path"] for d in datasets] == ["/real/"]
        assert get(srv, "/linked/obs_manifest.json")[0] == 404


# ---------------------------------------------------------------- rule: slow clients
def test_slow_clients_do_not_block_others_and_idle_ones_are_closed():
    with serve(FIXTURES / "gzip_q8", port=0, idle_timeout=1.5) as srv:
        slow = []
        for _ in range(100):  # each sends half a request line and then nothing
            s = socket.create_connection((srv.host, srv.port), timeout=10)
            s.sendall(b"GET /_cellucid/hea")
            slow.append(s)
        try:
            t0 = time.monotonic()
            status, _, body = get(srv, "/_cellucid/health")
            assert status == 200 and json.loads(body)["status"] == "ok"
            assert time.monotonic() - t0 < 1.0, "a free client waited behind the slow ones"
            # the idle ones are closed by the server after the timeout: recv sees EOF
            slow[0].settimeout(10)
            assert slow[0].recv(100) == b""
            assert time.monotonic() - t0 < 8
        finally:
            for s in slow:
                s.close()
        # keep-alive connections that stay idle are closed too
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        conn.request("GET", "/_cellucid/health", headers={TOKEN_HEADER: srv.token})
        conn.getresponse().read()
        conn.sock.settimeout(10)
        assert conn.sock.recv(10) == b""
        conn.close()


# ---------------------------------------------------------------- rule: non-loopback bind
def test_non_loopback_bind_needs_an_explicit_option():
    with pytest.raises(ValueError, match="allow_remote"):
        serve(FIXTURES / "gzip_q8", host="0.0.0.0", port=0)
    with pytest.warns(UserWarning, match="other machines"):
        srv = serve(FIXTURES / "gzip_q8", host="0.0.0.0", port=0, allow_remote=True)
    try:
        assert srv.token  # the token stays on
        assert get(srv, "/_cellucid/health", token=False)[0] == 403
        assert get(srv, "/_cellucid/health", host=f"10.1.2.3:{srv.port}")[0] == 200  # an IP literal: no rebinding
        assert get(srv, "/_cellucid/health", host=f"rebind.example:{srv.port}")[0] == 421
    finally:
        srv.stop()


# ---------------------------------------------------------------- files and the API
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
            req = urllib.request.Request(srv.base_url + "_cellucid/health", headers={TOKEN_HEADER: srv.token})
            with urllib.request.urlopen(req, timeout=5) as r:
                assert json.loads(r.read())["status"] == "ok"
            with pytest.raises(urllib.error.HTTPError, match="403"):
                urllib.request.urlopen(srv.base_url + "_cellucid/health", timeout=5)


def test_a_folder_of_exports_lists_every_dataset(tmp_path):
    for name in ("plain", "gzip_q8"):
        shutil.copytree(FIXTURES / name, tmp_path / name)
    with serve(tmp_path, port=0) as srv:
        datasets = json.loads(get(srv, "/_cellucid/datasets")[2])["datasets"]
        assert {d["id"] for d in datasets} == {"ref_plain", "ref_gzip_q8"}
        assert {d["path"] for d in datasets} == {"/plain/", "/gzip_q8/"}
        assert json.loads(get(srv, "/plain/obs_manifest.json")[2])["_format"] == "compact_v1"


def test_refuses_folders_without_exports(tmp_path):
    with pytest.raises(ValueError, match="holds no export"):
        serve(tmp_path)
    with pytest.raises(FileNotFoundError):
        serve(tmp_path / "missing")


def test_concurrent_requests_are_answered(server):
    results = []

    def worker():
        results.append(get(server, "/_cellucid/api/ref_gzip_q8/points?dim=3")[0])

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 16


def test_cli_serve_options(tmp_path):
    import subprocess
    import sys

    export = str(FIXTURES / "gzip_q8")
    base = [sys.executable, "-m", "cellucid_nb", "serve", export, "--no-browser", "--port", "0"]
    proc = subprocess.run([*base, "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--allow-remote" in proc.stderr
    # with --allow-remote: the warning is printed at once, the URL still carries a token
    proc = subprocess.Popen([*base, "--host", "0.0.0.0", "--allow-remote", "--allow-origin", "https://app.example"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "other machines can connect" in proc.stderr.readline()
        url = proc.stdout.readline().split(" at ", 1)[1].split()[0]
        assert "?token=" in url
        port = int(url.split(":")[2].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/_cellucid/health?token=" + url.split("?token=")[1], headers={"Origin": "https://app.example"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Access-Control-Allow-Origin") == "https://app.example"
    finally:
        proc.terminate()
        proc.wait(10)
    proc = subprocess.Popen([*base, "--no-token"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split(" at ", 1)[1].split()[0]
        assert "token" not in url
        with urllib.request.urlopen(url + "_cellucid/health", timeout=10) as r:
            assert json.loads(r.read())["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_dataset_id_holding_a_slash_is_reachable_through_the_api(tmp_path):
    """The page sends the id with encodeURIComponent ('lab/pbmc v1' -> 'lab%2Fpbmc%20v1')."""
    folder = shutil.copytree(FIXTURES / "gzip_q8", tmp_path / "export")
    identity = json.loads((folder / "dataset_identity.json").read_text())
    identity["id"] = "lab/pbmc v1"
    (folder / "dataset_identity.json").write_text(json.dumps(identity))
    with serve(folder, port=0) as srv:
        status, _, body = get(srv, "/_cellucid/api/lab%2Fpbmc%20v1/meta")
        assert status == 200, body[:200]
        status, _, body = get(srv, "/_cellucid/api/lab/pbmc%20v1/meta")
        assert status == 404 and b"expected /_cellucid/api/<dataset>/<kind>" in body


def test_one_allowed_origin_given_as_a_string(tmp_path):
    with serve(FIXTURES / "gzip_q8", port=0, allow_origins="https://site.example/") as srv:
        status, headers, _ = get(srv, "/_cellucid/health", headers={"Origin": "https://site.example"})
        assert status == 200 and headers.get("Access-Control-Allow-Origin") == "https://site.example"
        assert get(srv, "/_cellucid/health", headers={"Origin": "https://h"})[0] == 403
