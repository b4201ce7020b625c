"""The standalone viewer page (``serve``) in headless Chromium with SwiftShader WebGL2."""

from __future__ import annotations

import base64
import shutil

import numpy as np
import pytest

from cellucid_nb.server import serve

from .conftest import (
    ARTIFACTS,
    KNOWN_COLORS,
    REPO,
    assert_edges_and_vectors_draw,
    canvas_pixels,
    color_mask,
    lasso_left_half,
    make_known_export,
    non_background,
)

RED, BLUE = KNOWN_COLORS["group"]
FIXTURES = REPO / "tests" / "fixtures" / "cellucid_0_0_9"


@pytest.fixture(scope="module")
def known_server(tmp_path_factory):
    out = make_known_export(tmp_path_factory.mktemp("exports") / "known")
    srv = serve(out, port=0)
    yield srv
    srv.stop()


def open_viewer(page, url):
    page.goto(url)
    page.wait_for_function("() => window.cellucidViewer && window.cellucidViewer.stats.timings.first_frame", timeout=30_000)
    page.wait_for_timeout(100)
    return page


def wait_drawn(page, field=None, dim=None):
    cond = ["window.cellucidViewer.stats.frames > 0"]
    if field:
        cond.append(f"window.cellucidViewer.state.colorField === {field!r}")
    if dim:
        cond.append(f"window.cellucidViewer.state.dim === {dim}")
    page.wait_for_function("() => " + " && ".join(cond), timeout=20_000)
    page.wait_for_timeout(150)  # next animation frame


def test_known_export_draws_in_its_colours(page, known_server):
    open_viewer(page, known_server.url + "&dim=2")
    px = canvas_pixels(page, name="standalone_known_2d")
    h, w, _ = px.shape
    red, blue = color_mask(px, RED), color_mask(px, BLUE)
    assert red.sum() > 500 and blue.sum() > 500, (red.sum(), blue.sum())
    # "left" cells are red and left of centre, "right" cells blue and right of centre
    assert np.nonzero(red)[1].max() < w / 2 < np.nonzero(blue)[1].min()
    # legend shows both categories with their counts
    rows = page.locator(".cnb-legend-row").all_inner_texts()
    assert any("left" in r and "1,000" in r for r in rows) and any("right" in r and "1,000" in r for r in rows)
    assert not page.console_errors, page.console_errors
    shutil.copy(ARTIFACTS / "standalone_known_2d.png", ARTIFACTS / "viewer_canvas.png")
    page.screenshot(path=str(ARTIFACTS / "standalone_page.png"))


def test_switching_field_and_dimension_changes_the_picture(page, known_server):
    open_viewer(page, known_server.url + "&dim=2")
    before = canvas_pixels(page)
    page.select_option(".cnb-field", "obs:score")
    wait_drawn(page, field="obs:score")
    score = canvas_pixels(page, name="standalone_score")
    assert color_mask(score, RED).sum() < 50 and color_mask(score, BLUE).sum() < 50
    assert (np.abs(score.astype(int) - before).sum(axis=2) > 30).sum() > 1000
    # score rises with x: the left cluster is dark purple, the right one yellow-green (viridis)
    drawn = non_background(score)
    cols = np.nonzero(drawn)[1]
    left = score[:, : score.shape[1] // 2][drawn[:, : score.shape[1] // 2]].astype(int)
    right = score[:, score.shape[1] // 2:][drawn[:, score.shape[1] // 2:]].astype(int)
    assert cols.size > 500
    assert left[:, 1].mean() + 60 < right[:, 1].mean(), "green channel grows with the score"
    page.click(".cnb-dims button[data-value='3']")
    wait_drawn(page, dim=3)
    three = canvas_pixels(page, name="standalone_score_3d")
    assert non_background(three).sum() > 500
    assert (np.abs(three.astype(int) - score).sum(axis=2) > 30).sum() > 500
    colorbar = page.locator(".cnb-colorbar-ticks").inner_text()
    assert "4" in colorbar  # score spans about -6..6


def test_gene_search_and_legend_clicks(page, known_server):
    open_viewer(page, known_server.url + "&dim=2")
    page.fill(".cnb-gene", "g1")
    page.wait_for_selector(".cnb-gene-item[data-gene='G1']")
    page.keyboard.press("Enter")
    wait_drawn(page, field="gene:G1")
    px = canvas_pixels(page, name="standalone_gene")
    drawn = non_background(px)
    half = px.shape[1] // 2
    left = px[:, :half][drawn[:, :half]].astype(int)
    right = px[:, half:][drawn[:, half:]].astype(int)
    assert right[:, 1].mean() > left[:, 1].mean() + 60, "G1 is high in the right group only"
    # back to the groups, hide "left" with a legend click
    page.select_option(".cnb-field", "obs:group")
    wait_drawn(page, field="obs:group")
    page.click(".cnb-legend-row[data-index='0']")
    page.wait_for_timeout(200)
    px = canvas_pixels(page)
    assert color_mask(px, RED).sum() == 0 and color_mask(px, BLUE).sum() > 500
    # "show all", then double-click isolates "left"
    page.click(".cnb-show-all")
    page.dblclick(".cnb-legend-row[data-index='0']")
    page.wait_for_timeout(200)
    px = canvas_pixels(page)
    assert color_mask(px, RED).sum() > 500 and color_mask(px, BLUE).sum() == 0


def test_lasso_selects_the_cells_inside(page, known_server):
    open_viewer(page, known_server.url + "&dim=2")
    lasso_left_half(page)
    page.wait_for_function("() => window.cellucidViewer.state.selection.length > 0")
    sel = page.evaluate("Array.from(window.cellucidViewer.state.selection)")
    assert len(sel) == 1000 and max(sel) == 999  # exactly the "left" group (cells 0..999)
    assert "1,000 cells selected" in page.locator("#selection").inner_text()
    png = page.evaluate("window.cellucidViewer.snapshot()")
    assert png.startswith("data:image/png;base64,")
    assert len(base64.b64decode(png.split(",", 1)[1])) > 2000


def test_a_cellucid_0_0_9_export_draws(page, tmp_path):
    # unchanged output of the reference exporter (no sidecar: default palette)
    out = make_known_export(tmp_path / "ref", n_cells=600, colors=False)
    assert not (out / "cellucid_nb.json").exists()
    with serve(out, port=0) as srv:
        open_viewer(page, srv.url + "&dim=2")
        px = canvas_pixels(page, name="standalone_reference_0_0_9")
    assert color_mask(px, "#1f77b4").sum() > 200 and color_mask(px, "#ff7f0e").sum() > 200


def test_reference_fixture_with_1d_and_uint16_codes(page):
    with serve(FIXTURES / "gzip_q16_u16", port=0) as srv:
        open_viewer(page, srv.url + "&dim=1")
        assert page.evaluate("window.cellucidViewer.state.dim") == 1
        px = canvas_pixels(page, name="standalone_fixture_1d")
        assert non_background(px).sum() > 50
        page.click(".cnb-dims button[data-value='2']")
        wait_drawn(page, dim=2)
        page.wait_for_timeout(200)
        plain = canvas_pixels(page)
        assert_edges_and_vectors_draw(page, plain, "standalone_fixture_2d")
        # hover names the cell under the mouse
        box = page.locator(".cnb-canvas").bounding_box()
        pos = page.evaluate("""([w, h]) => { const c = window.cellucidViewer; const m = c.camera.matrix(w, h);
            const p = c.positionsOf(0); const x = m[0] * p[0] + m[4] * p[1] + m[12], y = m[1] * p[0] + m[5] * p[1] + m[13];
            return [(x + 1) / 2 * w, (1 - y) / 2 * h]; }""", [box["width"], box["height"]])
        page.mouse.move(box["x"] + pos[0], box["y"] + pos[1])
        page.wait_for_selector(".cnb-tooltip.cnb-visible", timeout=5000)
        assert "cell" in page.locator(".cnb-tooltip").inner_text()
        # destroy() frees the view: no controller left, canvas gone
        page.evaluate("window.cellucidViewer.destroy()")
        assert page.evaluate("window.__cellucidViewers.size") == 0
        assert page.locator(".cnb-canvas").count() == 0
    assert not page.console_errors, page.console_errors
