"""Latent-space outlier quantiles of categorical fields, read by row blocks.

Semantics of the reference exporter (``_compute_latent_space_quantiles`` of
cellucid 0.0.9): for every category with at least ``min_points`` cells, each
cell gets ``rank / n`` where ``rank`` counts the category's cells at a distance
to the category's latent mean <= its own; other cells get NaN.

Two passes over the latent space's row blocks (:class:`.latent.LatentReader`)
serve every categorical field at once:

1. float64 sums per category, accumulated cell by cell in cell order
   (``np.add.at``), so the sums do not depend on the block size or on where
   the latent space lives, and equal a plain ``np.bincount`` over all cells;
2. float32 distances to the float32 centres (4 bytes per cell and field).

Ranks then come per category (a loop over categories, not cells): the
category's distances sorted (``np.argsort``) and ``np.searchsorted(side="right")``
of each into them, with the cells of each category listed by
:class:`.grouping.Grouping` (int32). Temporaries besides the distances are one
row block, or 12 bytes per cell of one category.

A category whose mean is not finite (NaN or Inf in one of its cells) gets NaN
for all its cells, as the validation warning says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .grouping import Grouping, block_groups
from .latent import BLOCK_ROWS, LatentReader

__all__ = ["FieldDistances", "latent_distances", "rank_quantiles", "outlier_quantiles", "latent_outlier_quantiles"]

#: Cells whose rank is looked up at once (bounds the int64 ``searchsorted`` result).
_RANK_CHUNK = 1 << 20


@dataclass
class FieldDistances:
    """Distances of one field's cells to their category's latent centre (pass 2's result).

    ``values`` holds float32 distances for cells of usable categories and NaN
    for the rest; :func:`rank_quantiles` turns it into the quantiles in place.
    """

    codes: np.ndarray
    counts: np.ndarray  # cells per category (missing codes not counted)
    usable: np.ndarray  # bool per category: >= min_points cells and a finite centre
    values: np.ndarray


def _sums(
    reader: LatentReader, fields: Sequence[tuple[np.ndarray, int]], stop: Callable[[], bool]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pass 1: ``(sums (n_dims, k + 1) float64, counts (k + 1,))`` per field, the last bin for missing codes."""
    n_dims = reader.shape[1]
    acc = [(np.zeros((n_dims, k + 1)), np.zeros(k + 1, dtype=np.int64)) for _, k in fields]
    for start, end in reader.ranges(BLOCK_ROWS):
        if stop():
            break
        columns = np.ascontiguousarray(reader.block(start, end).T, dtype=np.float64)
        for (codes, k), (sums, counts) in zip(fields, acc, strict=True):
            groups = block_groups(codes, start, end, k)
            counts += np.bincount(groups, minlength=k + 1)
            for j in range(n_dims):
                np.add.at(sums[j], groups, columns[j])  # in cell order: block size and source do not matter
    return acc


def latent_distances(
    latent: LatentReader | Any, fields: Sequence[tuple[np.ndarray, int]], min_points: int,
    stop: Callable[[], bool] = lambda: False,
) -> list[FieldDistances]:
    """Passes 1 and 2 for several categorical fields at once (the latent space is read twice in all).

    Parameters
    ----------
    latent
        A :class:`.latent.LatentReader`, or an array it can open.
    fields
        ``(codes, n_categories)`` per field; codes per cell, -1 for missing.
    min_points
        Minimum cells of a category.
    stop
        Checked before every block (e.g. the runner's ``cancelled``): when true,
        the passes end early and the distances are incomplete.

    Returns
    -------
    list of FieldDistances
        One per field, in order.
    """
    reader = latent if isinstance(latent, LatentReader) else LatentReader.open(latent)
    n = reader.n_rows
    if not fields:
        return []
    centres: list[np.ndarray] = []
    out: list[FieldDistances] = []
    for (codes, k), (sums, counts) in zip(fields, _sums(reader, fields, stop), strict=True):
        with np.errstate(invalid="ignore", divide="ignore"):
            # float32 centres, as the reference computes them; the extra bin (missing codes) at 0
            centre = (sums[:, :k] / np.maximum(counts[:k], 1)).T.astype(np.float32).astype(np.float64)
        usable = (counts[:k] >= min_points) & np.isfinite(centre).all(axis=1)
        centres.append(np.vstack([centre, np.zeros((1, centre.shape[1]))]))
        out.append(FieldDistances(codes, counts[:k], usable, np.full(n, np.nan, dtype=np.float32)))
    if not any(f.usable.any() for f in out):
        return out
    for start, end in reader.ranges(BLOCK_ROWS):
        if stop():
            break
        rows = reader.block(start, end)
        for (codes, k), centre, field in zip(fields, centres, out, strict=True):
            if not field.usable.any():
                continue
            groups = block_groups(codes, start, end, k)
            diff = rows - centre[groups]
            dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
            keep = np.append(field.usable, False)[groups]
            field.values[start:end][keep] = dist[keep]
    return out


def rank_quantiles(field: FieldDistances) -> np.ndarray:
    """Turn ``field.values`` into the outlier quantiles, in place, and return it.

    ``rank / n`` per cell of a usable category, ``rank`` = the category's
    cells at distance <= the cell's own (ties share the top rank).
    """
    values = field.values
    if not field.usable.any():
        return values
    grouping = Grouping.build(field.codes, field.usable, field.counts)
    for c in np.flatnonzero(field.usable).tolist():
        cells = grouping.cells(c)
        by_distance = np.argsort(values[cells])
        ordered = values[cells[by_distance]]
        n = np.float32(cells.shape[0])
        for q in range(0, cells.shape[0], _RANK_CHUNK):
            # sorted queries: searchsorted walks the array in order (2.5x faster than unsorted ones)
            ranks = np.searchsorted(ordered, ordered[q : q + _RANK_CHUNK], side="right")
            values[cells[by_distance[q : q + _RANK_CHUNK]]] = ranks.astype(np.float32) / n
    return values


def outlier_quantiles(
    latent: LatentReader | Any, fields: Sequence[tuple[np.ndarray, int]], min_points: int
) -> list[np.ndarray]:
    """Outlier quantiles (float32 per cell) of several categorical fields, reading the latent space twice.

    Parameters are those of :func:`latent_distances`; one array per field, in order.
    """
    return [rank_quantiles(f) for f in latent_distances(latent, fields, min_points)]


def latent_outlier_quantiles(latent: LatentReader | Any, codes: np.ndarray, n_categories: int, min_points: int) -> np.ndarray:
    """Per-cell rank quantile of the distance to its category's latent mean (one field).

    Parameters
    ----------
    latent
        ``(n_cells, n_dims)``: a :class:`.latent.LatentReader`, or an array it can open.
    codes
        Category code per cell, -1 for missing.
    n_categories
        Number of categories.
    min_points
        Minimum cells of a category.
    """
    return outlier_quantiles(latent, [(codes, n_categories)], min_points)[0]
