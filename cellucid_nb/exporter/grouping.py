"""The cells of each category, listed without per-cell int64 temporaries.

:class:`Grouping` holds the cells of the chosen categories grouped by
category (increasing cell index within one), built by a counting sort over
row blocks: 4 bytes per listed cell (int32), other temporaries one block.
Centroids (:mod:`.centroids`) and latent outlier ranks (:mod:`.outliers`) then
work one category, or one batch of whole categories, at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .latent import BLOCK_ROWS

__all__ = ["Grouping", "block_groups", "category_counts"]


def block_groups(codes: np.ndarray, start: int, stop: int, n_categories: int) -> np.ndarray:
    """Codes of cells ``[start:stop]`` as intp, missing (-1) mapped to the extra bin ``n_categories``."""
    groups = codes[start:stop].astype(np.intp)
    groups[groups < 0] = n_categories
    return groups


def category_counts(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """Cells per category (int64, missing codes not counted), counted block by block."""
    counts = np.zeros(n_categories + 1, dtype=np.int64)
    for start in range(0, codes.shape[0], BLOCK_ROWS):
        counts += np.bincount(block_groups(codes, start, start + BLOCK_ROWS, n_categories), minlength=n_categories + 1)
    return counts[:n_categories]


@dataclass(frozen=True)
class Grouping:
    """Cells of the categories in ``take``: category ``c``'s are ``order[starts[c]:starts[c + 1]]``."""

    counts: np.ndarray  # cells per category, all of them
    take: np.ndarray  # bool per category: listed in order
    order: np.ndarray  # int32 (int64 from 2**31 cells) cell indices
    starts: np.ndarray  # int64, n_categories + 1 offsets into order

    @classmethod
    def build(cls, codes: np.ndarray, take: np.ndarray, counts: np.ndarray | None = None) -> Grouping:
        """Group the cells of the categories in ``take`` (a blocked, stable counting sort).

        Parameters
        ----------
        codes
            Category code per cell, -1 for missing.
        take
            Bool per category.
        counts
            Cells per category, if already counted.
        """
        k = take.shape[0]
        if counts is None:
            counts = category_counts(codes, k)
        starts = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(np.where(take, counts, 0), out=starts[1:])
        order = np.empty(int(starts[-1]), dtype=np.int32 if codes.shape[0] < 2**31 else np.int64)
        cursor = starts[:-1].copy()
        take_ext = np.append(take, False)
        for start in range(0, codes.shape[0] if order.size else 0, BLOCK_ROWS):
            groups = block_groups(codes, start, start + BLOCK_ROWS, k)
            cells = np.flatnonzero(take_ext[groups])
            if cells.size == 0:
                continue
            groups = groups[cells]
            by_group = np.argsort(groups, kind="stable")
            sorted_groups = groups[by_group]
            block_counts = np.bincount(sorted_groups, minlength=k)
            first = np.cumsum(block_counts) - block_counts
            order[cursor[sorted_groups] + (np.arange(cells.size) - first[sorted_groups])] = cells[by_group] + start
            cursor += block_counts
        return cls(counts, take, order, starts)

    def cells(self, category: int) -> np.ndarray:
        """Cells of one listed category (a view of :attr:`order`)."""
        return self.order[self.starts[category] : self.starts[category + 1]]

    def batches(self, max_cells: int) -> Iterator[tuple[int, int]]:
        """Ranges ``[lo, hi)`` of categories whose listed cells add up to at most ``max_cells``
        (or one category alone when it has more), covering every category in order."""
        k = self.take.shape[0]
        lo = 0
        while lo < k:
            limit = self.starts[lo] + max_cells
            hi = max(lo + 1, int(np.searchsorted(self.starts, limit, side="right")) - 1)
            hi = min(hi, k)
            yield lo, hi
            lo = hi
