"""Embeddings and vectors become float32 through float64 block by block: same values as whole-array math."""

from __future__ import annotations

import numpy as np
import pytest

from cellucid_nb.exporter import inputs as inputs_module
from cellucid_nb.exporter.inputs import normalise_embedding


def _whole(arr: np.ndarray) -> tuple[np.ndarray, float]:
    """The definition, on a whole float64 copy (independent of the blocked code)."""
    a = np.asarray(arr, dtype=np.float64)
    mins, maxs = a.min(axis=0), a.max(axis=0)
    half = float((maxs / 2 - mins / 2).max())
    half = 0.5 if half < 0.5e-8 else half
    return ((a - (mins / 2 + maxs / 2)) / half).astype(np.float32), 1.0 / half


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.longdouble])
def test_normalised_embedding_equals_whole_array_math_over_several_blocks(dtype):
    rng = np.random.default_rng(7)
    n = 2 * inputs_module._BLOCK_ROWS + 123
    arr = (rng.normal(size=(n, 3)) * 1e3).astype(dtype)
    coords, scale = normalise_embedding(arr)
    expected, expected_scale = _whole(arr)
    assert coords.dtype == np.float32 and coords.shape == (n, 3)
    # (a - c) * (1 / h) and (a - c) / h may differ by one float64 ulp before rounding to float32
    np.testing.assert_allclose(coords, expected, rtol=2e-7, atol=1e-12)
    assert scale == pytest.approx(expected_scale, rel=1e-15)
    assert float(np.abs(coords).max()) == pytest.approx(1.0, abs=1e-6)


def test_huge_finite_embedding_normalises_without_overflow():
    arr = np.array([[-3e38, 0.0], [3e38, 1.0], [0.0, 2.0]], dtype=np.float64)
    coords, _ = normalise_embedding(arr)
    assert np.isfinite(coords).all()
    np.testing.assert_allclose(coords[:, 0], [-1.0, 1.0, 0.0], atol=1e-6)


def test_vectors_are_scaled_by_blocks_and_overflow_is_counted_over_all_blocks():
    n = inputs_module._BLOCK_ROWS + 10
    dense = np.ones((n, 2), dtype=np.float64)
    scaled = inputs_module._scaled_vectors(dense, 0.5, "velocity")
    assert scaled.dtype == np.float32 and np.all(scaled == np.float32(0.5))
    dense[3, 0] = 1e39  # beyond float32 after scaling: one in the first block, one in the last
    dense[n - 1, 1] = -2e39
    with pytest.raises(ValueError, match=r"vector_fields\['velocity'\] has 2 finite displacements .*\(largest \|value\| 2e\+39\)"):
        inputs_module._scaled_vectors(dense, 1.0, "velocity")
    dense[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"contains NaN or Inf in 1 row"):
        inputs_module._scaled_vectors(dense, 1.0, "velocity")
