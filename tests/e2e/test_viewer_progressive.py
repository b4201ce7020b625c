"""A large-ish export (300k cells) in the standalone page: progressive drawing in the
draw order, box selection in original cell indices, and density opacity that keeps
category colours true."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest

from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.server import serve
from cellucid_nb.viewer_order import draw_order_slice

from .conftest import canvas_pixels, non_background

N_CELLS = 300_000
FIRST, CHUNK = 30_000, 90_000
RED, BLUE = "#e41a1c", "#377eb8"


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """300k cells: a random 30 % ("left", red) in a blob at x < 0, the rest ("right", blue) at x > 0."""
    rng = np.random.default_rng(3)
    left = rng.random(N_CELLS) < 0.3
    xyz = rng.normal(scale=0.5, size=(N_CELLS, 3)).astype(np.float32)
    xyz[:, 0] += np.where(left, -3.0, 3.0)
    obs = pd.DataFrame({"group": pd.Categorical(np.where(left, "left", "right"), categories=["left", "right"])})
    out = tmp_path_factory.mktemp("big") / "export"
    prepare(
        latent_space=xyz, obs=obs, var=pd.DataFrame(index=["G1"]), gene_expression=xyz[:, :1] + 4.0, out_dir=out,
        X_umap_2d=xyz[:, :2].copy(), compression=None, var_quantization=8, dataset_name="big",
    )
    (out / "cellucid_nb.json").write_text(f'{{"generator": "test", "category_colors": {{"group": ["{RED}", "{BLUE}"]}}}}')
    srv = serve(out, port=0)
    yield srv, left
    srv.stop()


def test_draws_progressively_and_box_selects_original_indices(page, big):
    srv, left = big
    slices, held = [], []
    release = {"now": False}

    def hold_later_slices(route):
        q = parse_qs(urlparse(route.request.url).query)
        if "/points" in route.request.url:
            slices.append(q)
        if int(q.get("start", ["0"])[0]) > 0 and not release["now"]:
            held.append(route)  # answered only after the first frame has been checked
        else:
            route.continue_()

    page.route("**/_cellucid/api/**", hold_later_slices)
    page.goto(srv.url + f"&dim=2&first={FIRST}&chunk={CHUNK}")
    page.wait_for_function("() => window.cellucidViewer && window.cellucidViewer.stats.timings.first_frame", timeout=60_000)
    assert page.evaluate("window.cellucidViewer.stats.firstFrameCells") == FIRST, "the first frame draws the subsample"
    assert page.evaluate("window.cellucidViewer.progress.drawn") == FIRST
    partial = canvas_pixels(page, name="progressive_300k_first_frame")
    release["now"] = True
    for route in held:
        route.continue_()
    page.wait_for_function(f"() => window.cellucidViewer.progress.drawn === {N_CELLS}", timeout=60_000)
    progress = page.evaluate("window.cellucidViewer.progress")
    assert progress["loaded"] == N_CELLS and progress["progressive"] is True
    got = [(int(q["start"][0]), int(q["stop"][0])) for q in slices]
    assert got == [(0, FIRST), (FIRST, FIRST + CHUNK), (FIRST + CHUNK, FIRST + 2 * CHUNK), (FIRST + 2 * CHUNK, N_CELLS)]
    assert all(q["order"] == ["permuted"] for q in slices)
    # the first slice is a uniform subsample: about 30 % of it is "left"
    first_cells = draw_order_slice(N_CELLS, 0, FIRST)
    assert abs(left[first_cells].mean() - 0.3) < 0.02
    # the full picture: both colours, the category colours true in the dense cores
    page.wait_for_timeout(100)  # the next animation frame
    px = canvas_pixels(page, name="progressive_300k")
    h, w, _ = px.shape
    for colour, half in ((RED, px[:, : w // 2]), (BLUE, px[:, w // 2:])):
        # translucent points over white: every drawn pixel is white + t x (colour - white), hue kept
        r = 255.0 - np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        d = 255.0 - half.reshape(-1, 3).astype(float)
        t = d @ r / (r @ r)
        drawn = t > 0.1
        residual = np.linalg.norm(d[drawn] - np.outer(t[drawn], r), axis=1)
        assert drawn.sum() > 5000, (colour, drawn.sum())
        assert np.percentile(residual, 95) < 20, f"{colour}: pixels off the white-{colour} line, 95th percentile {np.percentile(residual, 95):.1f}"
        top = np.percentile(t[drawn], 99)  # (the centroid label's dark text aside)
        assert 0.8 < top < 1.05, f"{colour}: densest pixels at {top:.2f} of the colour, expected near 1, never past it"
    # the rest filled in: more of the plot covered than by the subsample
    assert (non_background(px).sum() > 1.2 * non_background(partial).sum()), (non_background(px).sum(), non_background(partial).sum())
    alpha = page.evaluate("window.cellucidViewer.progress.alpha")
    assert 0.04 <= alpha < 1, f"300k points on screen should be drawn translucent, got alpha {alpha}"

    # box around the whole left blob (the gap between the blobs is empty)
    box = page.evaluate(
        """() => {
          const v = window.cellucidViewer, c = document.querySelector('.cnb-canvas'), r = c.getBoundingClientRect();
          const m = v.camera.matrix(c.clientWidth, c.clientHeight);
          const toScreen = (x, y) => [r.left + ((m[0] * x + m[12]) + 1) / 2 * c.clientWidth, r.top + (1 - (m[5] * y + m[13])) / 2 * c.clientHeight];
          return {a: toScreen(-1.05, 1.05), b: toScreen(-0.02, -1.05)};
        }"""
    )
    page.click(".cnb-tools button[data-value=box]")
    page.mouse.move(*box["a"])
    page.mouse.down()
    page.mouse.move(*box["b"], steps=4)
    page.mouse.up()
    page.wait_for_function("() => window.cellucidViewer.state.selection.length > 0", timeout=20_000)
    selected = np.array(page.evaluate("Array.from(window.cellucidViewer.state.selection)"))
    np.testing.assert_array_equal(selected, np.flatnonzero(left))
    assert not page.console_errors, page.console_errors
