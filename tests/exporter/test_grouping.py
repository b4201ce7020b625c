"""Cells grouped by category (counting sort by blocks) and centroids computed batch by batch."""

from __future__ import annotations

import numpy as np
import pytest

from cellucid_nb.exporter import centroids, grouping
from cellucid_nb.exporter.grouping import Grouping, category_counts


def test_grouping_lists_the_taken_categories_in_cell_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grouping, "BLOCK_ROWS", 37)  # many blocks
    rng = np.random.default_rng(0)
    codes = rng.integers(-1, 9, size=1000).astype(np.int16)
    counts = category_counts(codes, 10)
    assert counts.tolist() == [int((codes == c).sum()) for c in range(10)] and counts[9] == 0
    take = counts >= 100
    g = Grouping.build(codes, take)
    assert g.order.dtype == np.int32 and g.order.size == counts[take].sum()
    for c in range(10):
        expected = np.flatnonzero(codes == c) if take[c] else np.empty(0, dtype=np.intp)
        np.testing.assert_array_equal(g.cells(c), expected)
    batches = list(g.batches(250))
    assert batches[0][0] == 0 and batches[-1][1] == 10
    assert all(a[1] == b[0] for a, b in zip(batches, batches[1:], strict=False))
    for lo, hi in batches:  # at most 250 listed cells, or one category alone
        assert g.starts[hi] - g.starts[lo] <= 250 or hi - lo == 1


@pytest.mark.parametrize("batch", [1, 300, 1 << 18])
def test_centroids_do_not_depend_on_the_batches(batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    coords = rng.normal(size=(3000, 3)).astype(np.float32)
    coords[::5] = coords[1]  # ties at the quantile
    codes = rng.integers(-1, 12, size=3000).astype(np.int8)
    codes[codes == 11] = 0  # a large category
    cats = [f"k{i}" for i in range(12)]
    expected = centroids.category_centroids(coords, codes, cats, 0.9, 10)
    monkeypatch.setattr(centroids, "_BATCH_CELLS", batch)  # 1: every category alone (the one-category path)
    assert centroids.category_centroids(coords, codes, cats, 0.9, 10) == expected
    # the definition for one category: mean, distances, np.quantile, trimmed mean
    pts = coords[codes == 0].astype(np.float64)
    dist = np.linalg.norm(pts - pts.mean(axis=0), axis=1)
    inliers = pts[dist <= np.quantile(dist, 0.9)]
    first = expected[0]
    assert first["category"] == "k0" and first["n_points"] == len(inliers)
    np.testing.assert_allclose(first["position"], inliers.mean(axis=0), rtol=1e-6)
    assert [c["category"] for c in expected] == cats[:11]  # k11 has no cells
