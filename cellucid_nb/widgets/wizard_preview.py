"""Preview scatter data for the wizard: a subsample of one embedding, coloured by one obs column.

The front-end draws it on a canvas 2D (no WebGL), so it stays small: at most
``max_points`` cells, positions as float32 ``(n, 2)`` in [-1, 1] and colour
codes as uint16 (categories; 65535 = missing) or uint8 (continuous, 0-254
scaled, 255 = missing), sent as binary buffers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cellucid_nb.exporter.inputs import column_values
from cellucid_nb.format.codecs import MISSING_CODE
from cellucid_nb.format.spec import CATEGORY_LIMITS

__all__ = ["MAX_PREVIEW_POINTS", "preview_payload"]

MAX_PREVIEW_POINTS = 20_000
#: the export's own missing codes (format/spec.py, format/codecs.py): uint16 categories, 8-bit values
_CAT_MISSING = CATEGORY_LIMITS["uint16"][1]
_CONT_MISSING = MISSING_CODE[8]


def _sample_rows(n_cells: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted row indices of a reproducible random subsample (all rows when small)."""
    if n_cells <= max_points:
        return np.arange(n_cells)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_cells, size=max_points, replace=False))


def _positions_2d(coords: np.ndarray, seed: int) -> np.ndarray:
    """Normalise to [-1, 1] keeping the aspect; 1D gets a random jitter on y, 3D drops z."""
    pts = np.asarray(coords, dtype=np.float64)
    if pts.ndim == 1:
        pts = pts[:, None]
    if pts.shape[1] == 1:
        jitter = np.random.default_rng(seed + 1).uniform(-1.0, 1.0, size=(pts.shape[0], 1))
        lo, hi = np.nanmin(pts), np.nanmax(pts)
        span = hi - lo if hi - lo > 1e-8 else 1.0
        return np.hstack([(pts - lo) / span * 2 - 1, 0.3 * jitter]).astype(np.float32)
    pts = pts[:, :2]
    lo, hi = np.nanmin(pts, axis=0), np.nanmax(pts, axis=0)
    span = float(np.max(hi - lo))
    scale = 2.0 / span if span > 1e-8 else 1.0
    return ((pts - (lo + hi) / 2) * scale).astype(np.float32)


def _colour_codes(column: pd.Series | None, colors: Any) -> tuple[dict[str, Any], np.ndarray]:
    """Colour meta and codes for one obs column subsample."""
    if column is None:
        return {"kind": "none"}, np.zeros(0, dtype=np.uint8)
    is_categorical = (
        isinstance(column.dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(column.dtype)
        or not pd.api.types.is_numeric_dtype(column.dtype)
    )
    if is_categorical:
        cat = column.astype("category") if not isinstance(column.dtype, pd.CategoricalDtype) else column
        codes = cat.cat.codes.to_numpy()
        out = np.where(codes < 0, _CAT_MISSING, codes).astype(np.uint16)
        categories = [str(c) for c in cat.cat.categories]
        palette = [str(c) for c in colors] if colors is not None and len(colors) == len(categories) else None
        return {"kind": "categorical", "categories": categories, "colors": palette}, out
    values = column_values(column, np.float64)  # never builds the (Arrow string) index engine
    finite = np.isfinite(values)
    lo = float(values[finite].min()) if finite.any() else 0.0
    hi = float(values[finite].max()) if finite.any() else 1.0
    span = hi - lo if hi > lo else 1.0
    scaled = np.rint((np.where(finite, values, lo) - lo) / span * (_CONT_MISSING - 1))
    out = np.where(finite, scaled, _CONT_MISSING).astype(np.uint8)
    return {"kind": "continuous", "min": lo, "max": hi}, out


def preview_payload(
    adata: Any,
    obsm_key: str,
    color_key: str | None = None,
    *,
    max_points: int = MAX_PREVIEW_POINTS,
    seed: int = 0,
) -> tuple[dict[str, Any], list[bytes]]:
    """Build the preview message for ``obsm[obsm_key]`` coloured by ``obs[color_key]``.

    Parameters
    ----------
    adata
        The AnnData (in memory or backed; only the subsampled rows are read).
    obsm_key
        Embedding to draw (1-3 columns; more columns: the first two are drawn).
    color_key
        obs column for colours, or None / "" for a single colour.
    max_points, seed
        Subsample size and its random seed (the same cells for every colour).

    Returns
    -------
    meta, buffers
        ``meta`` is JSON-safe (``n``, ``key``, ``color`` and the colour meta);
        ``buffers`` are ``[positions float32 (n*2), codes uint8|uint16 (n)]``.
    """
    if obsm_key not in adata.obsm:
        raise KeyError(f"obsm[{obsm_key!r}] not found; available: {sorted(adata.obsm.keys())}")
    coords = np.asarray(adata.obsm[obsm_key])
    if coords.ndim not in (1, 2) or coords.shape[0] != adata.n_obs:
        raise ValueError(f"obsm[{obsm_key!r}] has shape {coords.shape}, expected (n_cells, 1|2|3)")
    rows = _sample_rows(adata.n_obs, max_points, seed)
    positions = _positions_2d(coords[rows], seed)
    column = None
    colors = None
    if color_key:
        if color_key not in adata.obs.columns:
            raise KeyError(f"obs[{color_key!r}] not found")
        column = adata.obs[color_key].iloc[rows]
        colors = adata.uns.get(f"{color_key}_colors") if hasattr(adata, "uns") else None
    colour_meta, codes = _colour_codes(column, colors)
    meta = {"n": int(rows.size), "n_cells": int(adata.n_obs), "key": obsm_key, "color": color_key or "", **colour_meta}
    return meta, [positions.tobytes(), codes.tobytes()]
