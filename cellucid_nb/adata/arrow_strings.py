"""Compact cell names: an HDF5 string array read into Arrow strings, and a duplicate check that stays compact.

A million cell names as Python ``str`` objects take ~70 MB (a 49-byte object header,
the text, an 8-byte pointer); as Arrow strings they take the text plus an 8-byte
offset each. :func:`read_strings` reads the dataset ``CHUNK`` strings at a time, so the
transient peak is one chunk of Python ``bytes``; :func:`has_duplicates` hashes the
Arrow buffers with numpy (pandas' ``is_unique`` on an Arrow-backed index would
build Python strings for every cell: ~1 GB at 10M cells).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CHUNK", "read_strings", "has_duplicates"]

#: Strings read from the file at a time.
CHUNK = 1_000_000
#: Strings hashed at a time (the per-byte arrays are 8 bytes per character).
_HASH_CHUNK = 131_072
_BASE = np.uint64(0x100000001B3)  # FNV prime: odd, so no byte position is lost mod 2**64
_LENGTH_MIX = np.uint64(0x9E3779B97F4A7C15)


def read_strings(dataset: Any, chunk: int = CHUNK) -> pd.arrays.ArrowStringArray:
    """Read a 1-D HDF5 string dataset into a ``string[pyarrow]`` array, ``chunk`` strings at a time.

    Parameters
    ----------
    dataset
        An ``h5py.Dataset`` of variable- or fixed-length strings (anndata's ``string-array``).
    chunk
        Strings read and converted at a time.

    Returns
    -------
    pandas.arrays.ArrowStringArray
        One Arrow chunk per read (``large_string``: text + 8 bytes per string).
    """
    import pyarrow as pa

    n = int(dataset.shape[0])
    pieces = []
    for start in range(0, n, chunk):
        raw = dataset[start : min(n, start + chunk)]  # Python bytes objects, one chunk only
        # binary -> string checks the UTF-8 without decoding into Python str objects
        pieces.append(pa.array(raw, type=pa.large_binary()).cast(pa.large_string()))
        del raw
    values = pa.chunked_array(pieces, type=pa.large_string())
    return pd.arrays.ArrowStringArray(values)


def _chunk_hashes(piece: Any) -> np.ndarray:
    """A 64-bit polynomial hash of each string of one Arrow ``large_string`` array (no nulls)."""
    _, offsets_buf, data_buf = piece.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64, count=len(piece) + 1, offset=piece.offset * 8)
    lo, hi = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buf, np.uint8, count=hi - lo, offset=lo) if hi > lo else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    starts = offsets[:-1] - lo
    position = np.arange(hi - lo, dtype=np.int64) - np.repeat(starts, lengths)  # of each byte in its string
    powers = np.cumprod(np.full(max(int(lengths.max(initial=0)), 1), _BASE, dtype=np.uint64))
    terms = np.append(data.astype(np.uint64) * powers[position], np.uint64(0))  # one 0 for trailing empties
    sums = np.add.reduceat(terms, np.minimum(starts, hi - lo))
    sums[lengths == 0] = 0  # reduceat gives the element at an empty string's start
    return sums ^ (lengths.astype(np.uint64) * _LENGTH_MIX)


def has_duplicates(values: Any) -> bool:
    """Whether an Arrow-backed string array holds a value twice (missing values are ignored).

    Equal strings have equal hashes; strings whose hashes collide are compared as
    strings, so the answer is exact. Memory: 8 bytes per string plus one hash chunk.
    """
    import pyarrow as pa

    arrow = pa.chunked_array(pa.array(values))  # the array's own Arrow chunks (no copy)
    if arrow.null_count:
        arrow = arrow.drop_null()
    if arrow.type != pa.large_string():
        arrow = arrow.cast(pa.large_string())
    hashes = _hashes(arrow)
    hashes.sort()  # in place: one 8-byte array per string at a time
    repeated = hashes[1:][hashes[1:] == hashes[:-1]]
    if repeated.size == 0:
        return False
    candidates = np.flatnonzero(np.isin(_hashes(arrow), repeated))  # equal hashes: compare the strings themselves
    return bool(pd.Index(arrow.take(pa.array(candidates)).to_pylist()).has_duplicates)


def _hashes(arrow: Any) -> np.ndarray:
    """The hash of every string of a ``large_string`` chunked array, ``_HASH_CHUNK`` strings at a time."""
    hashes = np.empty(len(arrow), dtype=np.uint64)
    pos = 0
    for piece in arrow.chunks:
        for start in range(0, len(piece), _HASH_CHUNK):
            part = piece.slice(start, _HASH_CHUNK)
            hashes[pos : pos + len(part)] = _chunk_hashes(part)
            pos += len(part)
    return hashes
