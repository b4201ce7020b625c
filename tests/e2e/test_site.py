"""The published static site in headless Chromium: every way of opening it draws the known export.

Servers: ``python -m http.server`` (site under the sub-path ``/a/b/site/``), Debian's nginx
started here on 127.0.0.1 in two configurations (``.gz`` sent raw as ``application/gzip``;
``gzip_static on`` with ``Content-Encoding: gzip`` on ``.gz`` files, so the browser inflates
them), ``file://`` with the folder picker, and ``?url=`` to an export on another origin (CORS).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from cellucid_nb.publishing import publish
from cellucid_nb.server import serve

from .conftest import (
    KNOWN_COLORS,
    REPO,
    assert_edges_and_vectors_draw,
    canvas_pixels,
    color_mask,
    free_port,
    lasso_left_half,
    make_known_export,
    non_background,
)

RED, BLUE = KNOWN_COLORS["group"]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SUBPATH = "a/b/site"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A web root holding a site of two datasets at /a/b/site/: the known export (default) and a 0.9.2 export."""
    tmp = tmp_path_factory.mktemp("site")
    known = make_known_export(tmp / "exports" / "known")
    other = shutil.copytree(REPO / "tests" / "fixtures" / "cellucid_0_9_2" / "gzip_q8_u8_2d3d", tmp / "exports" / "pbmc092")
    v2 = shutil.copytree(REPO / "tests" / "fixtures" / "cellucid_0_9_4" / "gzip_q8_u8_multi", tmp / "exports" / "pbmc094")
    root = tmp / "www"
    result = publish([known, other, v2], root / SUBPATH, title="Known site")
    assert result.datasets[0] == "known"
    return {"root": root, "site": root / SUBPATH, "known": known, "other_id": result.datasets[1], "v2_id": result.datasets[2]}


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=1)) as c:
            c.request("HEAD", "/")
            c.getresponse()
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def running(cmd: list[str], port: int):
    """Run a server process until the block ends; yields its base URL once it answers."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def http_server(root: Path):
    """``python -m http.server`` on 127.0.0.1 serving ``root``."""
    port = free_port()
    return running([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)], port)


NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  types {{ text/html html; text/javascript js; text/css css; application/json json; application/gzip gz; }}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    {extra}
  }}
}}
"""
#: as hosts that serve .gz files with Content-Encoding: gzip (the browser inflates them)
GZIP_STATIC = """gzip_static on;
    location ~ \\.gz$ { add_header Content-Encoding gzip always; types { } default_type application/octet-stream; }"""


@contextlib.contextmanager
def nginx(root: Path, tmp: Path, extra: str = ""):
    """Debian's nginx on 127.0.0.1 with a temporary configuration, serving ``root``."""
    assert Path(NGINX).exists(), "nginx is needed: apt-get install -y nginx-light (make nginx)"
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = tmp / "nginx.conf"
    # as root, workers would drop to "nobody", who cannot read pytest's private temp folders
    user = "user root;" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(user=user, tmp=tmp, port=port, root=root, extra=extra))
    with running([NGINX, "-c", str(conf), "-p", str(tmp)], port) as base:
        yield base


class _CorsHandler(SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def cors_server(root: Path):
    """A static server on another port that allows every origin (as a data host would)."""
    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_CorsHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def open_site(page, url: str):
    page.goto(url)
    page.wait_for_function("() => window.cellucidViewer && window.cellucidViewer.stats.timings.first_frame", timeout=30_000)
    page.wait_for_timeout(150)
    return page


def cell_pixel(page, px, cell: int):
    """Canvas pixel (x, y) where ``cell`` is drawn (2D)."""
    h, w, _ = px.shape
    pos = page.evaluate("""([w, h, i]) => { const c = window.cellucidViewer; const m = c.camera.matrix(w, h);
        const p = c.positionsOf(i); const x = m[0] * p[0] + m[4] * p[1] + m[12], y = m[1] * p[0] + m[5] * p[1] + m[13];
        return [(x + 1) / 2 * w, (1 - y) / 2 * h]; }""", [w, h, cell])
    return int(round(pos[0])), int(round(pos[1]))


def assert_known_picture(page, name: str):
    """Red "left" cells left of centre, blue "right" cells right of it, cell 0 (left) red where it is drawn."""
    px = canvas_pixels(page, name=name)
    h, w, _ = px.shape
    red, blue = color_mask(px, RED), color_mask(px, BLUE)
    assert non_background(px).sum() > 1000, "blank canvas"
    assert red.sum() > 500 and blue.sum() > 500, (red.sum(), blue.sum())
    assert np.nonzero(red)[1].max() < w / 2 < np.nonzero(blue)[1].min()
    x, y = cell_pixel(page, px, 0)
    patch = red[max(0, y - 1):y + 2, max(0, x - 1):x + 2]
    assert patch.any(), f"cell 0 (category 'left') is not red at ({x}, {y}): {px[y, x]}"
    x, y = cell_pixel(page, px, 1999)
    assert color_mask(px, BLUE)[max(0, y - 1):y + 2, max(0, x - 1):x + 2].any(), "cell 1999 ('right') is not blue"
    return px


def test_python_http_server_under_a_sub_path(page, published):
    with http_server(published["root"]) as base:
        open_site(page, f"{base}/{SUBPATH}/index.html#dim=2")
        assert page.locator("#title").inner_text() == "known"
        assert page.title() == "known · Cellucid"
        assert_known_picture(page, "site_http_server")
        rows = page.locator(".cnb-legend-row").all_inner_texts()
        assert any("left" in r and "1,000" in r for r in rows), rows
        # the switcher lists both datasets; the second one draws too
        other = published["other_id"]
        names = page.locator("#dataset option").all_inner_texts()
        assert names[:2] == ["known", "pbmc68k gzip_q8_u8_2d3d"] and len(names) == 3
        page.select_option("#dataset", other)
        page.wait_for_function("() => window.cellucidViewer.meta && window.cellucidViewer.meta.name === 'pbmc68k gzip_q8_u8_2d3d' && window.cellucidViewer.stats.frames > 0", timeout=30_000)
        page.wait_for_timeout(200)
        plain = canvas_pixels(page, name="site_switched")
        assert non_background(plain).sum() > 300
        page.wait_for_function(f"() => location.hash.includes('dataset={other}')", timeout=5_000)
        # kNN edges and vector fields of the index-named export, read from its files
        assert_edges_and_vectors_draw(page, plain, "site_switched")
        # the compact_v2 export (several embeddings per dimension) draws too
        page.select_option("#dataset", published["v2_id"])
        page.wait_for_function("() => window.cellucidViewer.meta && window.cellucidViewer.meta.embeddings['2'].length === 2 && window.cellucidViewer.stats.frames > 0", timeout=30_000)
        page.wait_for_timeout(200)
        assert non_background(canvas_pixels(page, name="site_switched_v2")).sum() > 300
    assert not page.console_errors, page.console_errors


def test_nginx_sends_gz_raw(page, published, tmp_path):
    with nginx(published["root"], tmp_path / "nginx") as base:
        conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=5)
        conn.request("GET", f"/{SUBPATH}/known/points_2d.bin.gz", headers={"Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.getheader("Content-Type") == "application/gzip" and resp.getheader("Content-Encoding") is None
        assert body[:2] == b"\x1f\x8b"
        open_site(page, f"{base}/{SUBPATH}/#dim=2")
        assert_known_picture(page, "site_nginx_raw")
    assert not page.console_errors, page.console_errors


def test_nginx_gzip_static_content_encoding(page, published, tmp_path):
    with nginx(published["root"], tmp_path / "nginx", GZIP_STATIC) as base:
        conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=5)
        conn.request("GET", f"/{SUBPATH}/known/points_2d.bin.gz", headers={"Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        resp.read()
        assert resp.getheader("Content-Encoding") == "gzip", resp.getheaders()
        open_site(page, f"{base}/{SUBPATH}/#dim=2")
        assert_known_picture(page, "site_nginx_gzip_static")
        # gene values arrive inflated by the browser and are drawn (G1 high on the right only)
        page.evaluate("window.cellucidViewer.setColorField('gene:G1')")
        page.wait_for_function("() => window.cellucidViewer.state.colorField === 'gene:G1'", timeout=20_000)
        page.wait_for_timeout(200)
        px = canvas_pixels(page)
        drawn = non_background(px)
        half = px.shape[1] // 2
        assert px[:, half:][drawn[:, half:]][:, 1].mean() > px[:, :half][drawn[:, :half]][:, 1].mean() + 60
    assert not page.console_errors, page.console_errors


def test_file_url_offers_the_folder_picker(page, published):
    page.goto((published["site"] / "index.html").as_uri() + "#dim=2")
    page.wait_for_selector("#notice:not([hidden])", timeout=15_000)
    assert "does not let a page opened from a file" in page.locator("#notice-text").inner_text()
    page.set_input_files("#folder", str(published["site"]))
    page.wait_for_function("() => window.cellucidViewer && window.cellucidViewer.stats.timings.first_frame", timeout=30_000)
    page.wait_for_timeout(150)
    assert page.locator("#notice").is_hidden()
    assert_known_picture(page, "site_file_picker")


def test_url_parameter_reads_an_export_on_another_origin(page, published):
    with http_server(published["root"]) as site_base, cors_server(published["known"].parent) as data_base:
        open_site(page, f"{site_base}/{SUBPATH}/index.html?url={data_base}/known/#dim=2")
        assert page.locator("#title").inner_text() == "known"
        assert page.locator("#dataset").is_hidden()
        assert_known_picture(page, "site_url_parameter")
    assert not page.console_errors, page.console_errors


def test_same_picture_as_the_served_viewer_and_view_state_in_the_hash(page, published):
    with serve(published["known"], port=0) as srv:
        page.goto(srv.url + "&dim=2")
        page.wait_for_function("() => window.cellucidViewer && window.cellucidViewer.stats.timings.first_frame", timeout=30_000)
        page.wait_for_timeout(200)
        served = canvas_pixels(page, name="site_compare_served")
    with http_server(published["root"]) as base:
        open_site(page, f"{base}/{SUBPATH}/#dim=2")
        site = canvas_pixels(page, name="site_compare_site")
        assert site.shape == served.shape
        differ = (np.abs(site.astype(int) - served.astype(int)).sum(axis=2) > 30).mean()
        assert differ < 0.002, f"{differ:.4%} of the pixels differ between the site and the served viewer"
        # lasso the left half: CSV of the selection holds the cell indices and their category
        lasso_left_half(page)
        box = page.locator(".cnb-canvas").bounding_box()
        x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
        page.wait_for_selector("#download:not([hidden])")
        assert "1,000 cells selected" in page.locator("#selection").inner_text()
        with page.expect_download() as info:
            page.click("#download")
        text = Path(info.value.path()).read_text()
        lines = text.strip().split("\n")
        assert lines[0] == "cell_index,group"
        assert len(lines) == 1001 and lines[1] == "0,left" and lines[-1] == "999,left"
        assert info.value.suggested_filename == "known_selection.csv"
        # zoom, switch to 3D and to a continuous field: the hash follows, and a copied link reopens the view
        page.evaluate("window.cellucidViewer.setColorField('obs:score')")
        page.mouse.move(x0 + w * 0.7, y0 + h * 0.5)
        page.mouse.wheel(0, -300)
        page.wait_for_function("() => location.hash.includes('field=obs%3Ascore') && location.hash.includes('cam=2')", timeout=10_000)
        page.click(".cnb-dims button[data-value='3']")
        page.wait_for_function("() => location.hash.includes('dim=3')", timeout=10_000)
        page.mouse.move(x0 + w * 0.5, y0 + h * 0.5)
        page.mouse.down()
        page.mouse.move(x0 + w * 0.6, y0 + h * 0.55, steps=5)
        page.mouse.up()
        page.wait_for_function("() => location.hash.includes('cam=3')", timeout=10_000)
        page.wait_for_timeout(300)
        link = page.url
        camera = page.evaluate("window.cellucidViewer.camera.getState()")
        before = canvas_pixels(page, name="site_view_before")
        page.goto("about:blank")
        open_site(page, link)
        page.wait_for_timeout(300)
        state = page.evaluate("[window.cellucidViewer.state.dim, window.cellucidViewer.state.colorField, window.cellucidViewer.camera.getState()]")
        assert state[0] == 3 and state[1] == "obs:score"
        assert state[2]["yaw"] == pytest.approx(camera["yaw"], abs=1e-4)
        assert state[2]["pitch"] == pytest.approx(camera["pitch"], abs=1e-4)
        after = canvas_pixels(page, name="site_view_after")
        assert (np.abs(after.astype(int) - before.astype(int)).sum(axis=2) > 30).mean() < 0.002
    assert not page.console_errors, page.console_errors


def test_url_parameter_reads_a_token_protected_serve_that_allows_the_site(page, published):
    """``serve(..., allow_origins=[site])``: the site reads it across origins, the token in ``?url=``."""
    from urllib.parse import quote

    with http_server(published["root"]) as site_base, serve(published["known"], port=0, allow_origins=[site_base]) as srv:
        open_site(page, f"{site_base}/{SUBPATH}/index.html?url={quote(srv.url)}#dim=2")
        assert_known_picture(page, "site_url_serve")  # the colours come from the sidecar serve answers too
    assert not page.console_errors, page.console_errors
