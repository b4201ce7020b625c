"""A fixed pseudo-random order of the cells, shared by the viewer's backend and front-end.

Why a permutation, and why this one
-----------------------------------
A viewer of 10^7 cells draws its first frame from a uniform random subsample and
fills in the rest progressively. The backend therefore serves every per-cell array
(points, obs values, gene values, vectors) in one fixed *draw order*: position ``k``
of the stream holds cell ``permute(k)``. Any prefix of a uniformly random
permutation is a uniform random subsample, so the first chunk is the subsample and
every later chunk only adds cells.

The permutation is a 4-round Feistel network on ``2**(2h)`` values (the smallest
even power of two holding ``n``), made a permutation of ``range(n)`` by cycle
walking (re-encrypt while the result is ``>= n``, at most ~4 times on average).
Compared with shipping a stored random permutation (e.g. ``rng.permutation(n)``):

- both ends compute it from ``(n, seed)`` alone, so no index array travels and the
  page keeps none (at 10^7 cells that is 40 MB less transfer and memory);
- any slice ``[start, stop)`` of the order is computed in ``O(stop - start)``
  without building the whole permutation, and so is the inverse of any set of
  cells (selection and highlight map only the indices they hold);
- it is deterministic across runs, machines and languages: the same 32-bit
  integer hash (``lowbias32``) runs in numpy here and with ``Math.imul`` in
  ``js/viewer/progressive.js``; tests pin the same values on both sides.

Its prefixes are pseudo-random rather than truly random, which is all a preview
subsample needs (no spatial or index structure survives 4 rounds of the hash).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ORDER_SEED", "ORDER_ROUNDS", "order_spec", "draw_order_slice", "draw_positions"]

#: Seed of the draw order (fixed: the same export always streams in the same order).
ORDER_SEED = 0x5EEDCE11
#: Feistel rounds (4 rounds of a good hash give a pseudo-random permutation).
ORDER_ROUNDS = 4
_GOLDEN = 0x9E3779B9


def _hash32(x: np.ndarray) -> np.ndarray:
    """``lowbias32`` integer hash of a uint32 array (wrapping multiplication)."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def _half_bits(n: int) -> int:
    """Bits of each Feistel half: the smallest h with 4**h >= n (at least 1)."""
    return max(1, (max(1, int(n) - 1).bit_length() + 1) // 2)


def _round_keys(seed: int = ORDER_SEED, rounds: int = ORDER_ROUNDS) -> np.ndarray:
    raw = (np.arange(rounds, dtype=np.uint64) * _GOLDEN + seed) & 0xFFFFFFFF
    return _hash32(raw.astype(np.uint32))


def _feistel(x: np.ndarray, h: int, keys: np.ndarray, inverse: bool) -> np.ndarray:
    mask = np.uint32((1 << h) - 1)
    sh = np.uint32(h)
    left, right = x >> sh, x & mask
    if not inverse:
        for k in keys:
            left, right = right, left ^ (_hash32(right ^ k) & mask)
    else:
        for k in keys[::-1]:
            left, right = right ^ (_hash32(left ^ k) & mask), left
    return (left << sh) | right


def _walk(x: np.ndarray, n: int, inverse: bool) -> np.ndarray:
    """Apply the Feistel permutation restricted to ``range(n)`` (cycle walking)."""
    h, keys = _half_bits(n), _round_keys()
    out = _feistel(x, h, keys, inverse)
    todo = np.flatnonzero(out >= n)
    while todo.size:  # iterations, not cells: each walk leaves ~3/4 of the rest done
        out[todo] = _feistel(out[todo], h, keys, inverse)
        todo = todo[out[todo] >= n]
    return out


def _check_n(n: int) -> int:
    n = int(n)
    if not 0 <= n < 2**32:
        raise ValueError(f"draw order: n_cells={n} is out of range, expected 0 <= n < 2**32")
    return n


def draw_order_slice(n: int, start: int, stop: int) -> np.ndarray:
    """Cells drawn at positions ``start`` to ``stop - 1`` of the draw order.

    Parameters
    ----------
    n
        Number of cells.
    start, stop
        A slice of draw positions, ``0 <= start <= stop <= n``.

    Returns
    -------
    numpy.ndarray
        uint32 cell indices (original order), one per position.
    """
    n = _check_n(n)
    if not 0 <= start <= stop <= n:
        raise ValueError(f"draw order slice [{start}, {stop}) is not within [0, {n}]")
    return _walk(np.arange(start, stop, dtype=np.uint32), n, inverse=False)


def draw_positions(n: int, cells: np.ndarray) -> np.ndarray:
    """Inverse of :func:`draw_order_slice`: the draw position of each cell index.

    Parameters
    ----------
    n
        Number of cells.
    cells
        Cell indices in ``[0, n)`` (any integer array).

    Returns
    -------
    numpy.ndarray
        uint32 positions, same shape as ``cells``.
    """
    n = _check_n(n)
    cells = np.asarray(cells)
    if cells.size and (int(cells.min()) < 0 or int(cells.max()) >= n):
        raise ValueError(f"draw positions: cell indices must be in [0, {n}), got [{cells.min()}, {cells.max()}]")
    return _walk(cells.astype(np.uint32), n, inverse=True)


def order_spec() -> dict:
    """How the front-end recomputes the order (sent in the viewer's ``meta``)."""
    return {"kind": "feistel-lowbias32", "seed": ORDER_SEED, "rounds": ORDER_ROUNDS}
