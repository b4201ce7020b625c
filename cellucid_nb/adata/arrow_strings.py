"""Compact cell names: an HDF5 string array read into Arrow strings, and a duplicate check that stays compact.

A million cell names as Python ``str`` objects take ~70 MB (a 49-byte object header,
the text, an 8-byte pointer); as Arrow strings they take the text plus an 8-byte
offset each. :func:`read_strings` parses a contiguous variable-length dataset's global
heap with numpy (:mod:`.hdf5_vlen`: no Python object per string, 0.6 s for 10M names
instead of 2.7 s through h5py) and reads any other layout through h5py ``CHUNK``
strings at a time (the transient peak is one chunk of Python ``bytes``);
:func:`has_duplicates` compares neighbours in C++ (sorted names are unique) or hashes
the Arrow buffers with numpy (pandas' ``is_unique`` on an Arrow-backed index would
build Python strings for every cell: ~1 GB at 10M cells).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from cellucid_nb.adata.hdf5_vlen import UnsupportedLayout, read_vlen_strings

__all__ = ["CHUNK", "read_strings", "has_duplicates"]

_LOG = logging.getLogger(__name__)
#: Strings read from the file at a time.
CHUNK = 1_000_000
#: Strings hashed at a time (a few 8-byte arrays per string).
_HASH_CHUNK = 65_536
_MIX = np.uint64(0xFF51AFD7ED558CCD)  # MurmurHash3's finaliser constant: odd, so multiplying loses no bit
_LENGTH_MIX = np.uint64(0x9E3779B97F4A7C15)


def read_strings(dataset: Any, chunk: int = CHUNK) -> pd.arrays.ArrowStringArray:
    """Read a 1-D HDF5 string dataset into a ``string[pyarrow]`` array, ``chunk`` strings at a time.

    A contiguous dataset of variable-length strings is parsed from the file's bytes
    (:func:`.hdf5_vlen.read_vlen_strings`, every object header checked); any other
    layout, or one that parser refuses, is read through h5py.

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

    try:  # the file's bytes parsed with numpy: no Python object per string
        buffers = read_vlen_strings(dataset, chunk)
    except UnsupportedLayout as exc:
        _LOG.debug("%s: %s; reading the strings through h5py", dataset.name, exc)
    except Exception as exc:  # noqa: BLE001 - a damaged file the checks did not name: HDF5 itself reads (or refuses) it
        _LOG.debug("%s: heap parser failed (%s: %s); reading the strings through h5py", dataset.name,
                   type(exc).__name__, exc)
    else:
        arrays = [pa.Array.from_buffers(pa.large_binary(), len(offsets) - 1,
                                        [None, pa.py_buffer(offsets), pa.py_buffer(data)]).cast(pa.large_string())
                  for offsets, data in buffers]
        return pd.arrays.ArrowStringArray(pa.chunked_array(arrays, type=pa.large_string()))
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
    """A 64-bit hash of each string of one Arrow ``large_string`` array (no nulls), 8 bytes at a time."""
    _, offsets_buf, data_buf = piece.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64, count=len(piece) + 1, offset=piece.offset * 8)
    lo, hi = int(offsets[0]), int(offsets[-1])
    text = np.zeros(hi - lo + 8, np.uint8)  # 8 spare bytes: a whole word is read at every string's end
    if hi > lo:
        text[: hi - lo] = np.frombuffer(data_buf, np.uint8, count=hi - lo, offset=lo)
    # the little-endian word starting at every byte (an unaligned strided view, no copy)
    windows = np.ndarray((hi - lo + 1,), np.dtype("<u8"), text.data, strides=(1,))
    lengths = np.diff(offsets)
    at = offsets[:-1] - lo  # of each string's next word
    hashes = lengths.astype(np.uint64) * _LENGTH_MIX
    shortest, longest = int(lengths.min(initial=0)), int(lengths.max(initial=0))
    for k in range((longest + 7) // 8):
        if 8 * k + 8 <= shortest:  # a whole word of every string
            word = windows[at]
        else:
            word = windows[np.minimum(at, hi - lo)]
            if shortest == longest:  # the same last bytes of every string
                word &= np.uint64((1 << (8 * (longest - 8 * k))) - 1)
            else:
                left = np.clip(lengths - 8 * k, 0, 8).astype(np.uint64)  # bytes of this word inside the string
                word &= np.where(left == 8, np.uint64(2**64 - 1), (np.uint64(1) << (left * np.uint64(8))) - np.uint64(1))
        mixed = hashes ^ word
        mixed *= _MIX
        mixed ^= mixed >> np.uint64(33)
        if 8 * k < shortest:
            hashes = mixed
        else:  # a string's hash never depends on longer strings
            hashes = np.where(lengths > 8 * k, mixed, hashes)
        at += 8
    return hashes


def _strictly_increasing(arrow: Any) -> bool:
    """Whether every string is (bytewise) greater than the one before: then no string repeats."""
    import pyarrow.compute as pc

    n = len(arrow)
    return n < 2 or pc.all(pc.less(arrow.slice(0, n - 1), arrow.slice(1))).as_py() is True


def has_duplicates(values: Any) -> bool:
    """Whether an Arrow-backed string array holds a value twice (missing values are ignored).

    Strictly increasing (sorted) strings are unique without hashing. Otherwise equal
    strings have equal hashes; strings whose hashes collide are compared as strings,
    so the answer is exact. Memory: 8 bytes per string plus one hash chunk.
    """
    import pyarrow as pa

    arrow = pa.chunked_array(pa.array(values))  # the array's own Arrow chunks (no copy)
    if arrow.null_count:
        arrow = arrow.drop_null()
    if arrow.type != pa.large_string():
        arrow = arrow.cast(pa.large_string())
    if _strictly_increasing(arrow):  # sorted names (a C++ pass): nothing to hash
        return False
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
