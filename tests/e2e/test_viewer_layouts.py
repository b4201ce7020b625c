"""The standalone viewer draws exports of the later official writers: index-named compact_v1
(cellucid 0.9.2) and compact_v2 (cellucid 0.9.4), served from copies of the checked-in fixtures."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cellucid_nb.format.reader import read_export
from cellucid_nb.server import serve

from .conftest import REPO, canvas_pixels, non_background
from .test_viewer_standalone import open_viewer, wait_drawn

FIXTURES = REPO / "tests" / "fixtures"


@pytest.mark.parametrize("fixture", ["cellucid_0_9_2/gzip_q8_u8_2d3d", "cellucid_0_9_4/gzip_q8_u8_multi"])
def test_viewer_draws_index_and_v2_exports(page, tmp_path, fixture):
    folder = shutil.copytree(FIXTURES / fixture, tmp_path / "export")
    reader = read_export(folder)
    srv = serve(folder, port=0)
    try:
        open_viewer(page, srv.url + "&dim=2")
        page.select_option(".cnb-field", "obs:bulk_labels")
        wait_drawn(page, field="obs:bulk_labels", dim=2)
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
    finally:
        srv.stop()
