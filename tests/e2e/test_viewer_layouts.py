"""The standalone viewer draws exports of the later official writers: index-named compact_v1
(cellucid 0.9.2) and compact_v2 (cellucid 0.9.4), served from copies of the checked-in fixtures."""

from __future__ import annotations

import contextlib
import shutil

import numpy as np
import pytest

from cellucid_nb.format.reader import read_export
from cellucid_nb.server import serve

from .conftest import REPO, canvas_pixels, non_background
from .test_viewer_standalone import open_viewer, wait_drawn

FIXTURES = REPO / "tests" / "fixtures"


@contextlib.contextmanager
def served_in_2d(page, tmp_path, fixture):
    """Serve a copy of a fixture and show it in 2D coloured by bulk_labels; yields its reader."""
    folder = shutil.copytree(FIXTURES / fixture, tmp_path / "export")
    srv = serve(folder, port=0)
    try:
        open_viewer(page, srv.url + "&dim=2")
        page.select_option(".cnb-field", "obs:bulk_labels")
        wait_drawn(page, field="obs:bulk_labels", dim=2)
        yield read_export(folder)
    finally:
        srv.stop()


@pytest.mark.parametrize("fixture", ["cellucid_0_9_2/gzip_q8_u8_2d3d", "cellucid_0_9_4/gzip_q8_u8_multi"])
def test_viewer_draws_index_and_v2_exports(page, tmp_path, fixture):
    with served_in_2d(page, tmp_path, fixture) as reader:
        two = canvas_pixels(page, name=f"layouts_{fixture.split('/')[0]}_2d")
        assert non_background(two).sum() > 300
        # the legend counts the cells of each category as the export stores them
        counts = reader.obs_column("bulk_labels").value_counts()
        rows = page.locator(".cnb-legend-row").all_inner_texts()
        top = counts.index[0]
        assert any(top in r and f"{int(counts.iloc[0]):,}" in r for r in rows), rows
        page.click(".cnb-dims button[data-value='3']")
        wait_drawn(page, dim=3)
        three = canvas_pixels(page, name=f"layouts_{fixture.split('/')[0]}_3d")
        assert non_background(three).sum() > 300
        assert (np.abs(three.astype(int) - two.astype(int)).sum(axis=2) > 30).sum() > 100
        assert not page.console_errors, page.console_errors


def test_viewer_switches_between_the_embeddings_of_a_v2_dimension(page, tmp_path):
    """cellucid 0.9.4 export with two 2D embeddings: the Embedding select switches the picture."""
    with served_in_2d(page, tmp_path, "cellucid_0_9_4/gzip_q8_u8_multi") as reader:
        wrap = page.locator(".cnb-embedding-wrap")
        assert wrap.is_visible() and wrap.inner_text().startswith("Embedding")
        assert page.locator(".cnb-embedding option").all_inner_texts() == ["X_tsne", "X_umap"]  # export order
        assert page.input_value(".cnb-embedding") == reader.default_embeddings[2] == "X_umap"
        umap = canvas_pixels(page, name="layouts_v2_X_umap")
        page.select_option(".cnb-embedding", "X_tsne")
        page.wait_for_function("() => window.cellucidViewer.state.embedding === 'X_tsne'", timeout=20_000)
        wait_drawn(page, field="obs:bulk_labels", dim=2)
        tsne = canvas_pixels(page, name="layouts_v2_X_tsne")
        assert non_background(tsne).sum() > 300
        assert (np.abs(tsne.astype(int) - umap.astype(int)).sum(axis=2) > 30).sum() > 100, "the picture changed"
        # the points drawn are the X_tsne file's (fetched over HTTP with embedding=X_tsne)
        expected = reader.points(2, embedding="X_tsne")[[0, 57, 199]]
        got = [page.evaluate(f"() => window.cellucidViewer.positionsOf({i})") for i in (0, 57, 199)]
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        page.click(".cnb-dims button[data-value='3']")
        wait_drawn(page, dim=3)
        assert not wrap.is_visible(), "one 3D embedding: no choice to offer"
        assert not page.console_errors, page.console_errors
