"""Variable-length HDF5 strings read from the file's bytes: the global heap parsed with numpy.

HDF5 converts a variable-length string element by element (a heap look-up and a
``malloc`` each: ~0.25 s per million names, 2.7 s at 10M cells). A contiguous dataset
of such strings stores one 16-byte record per element (byte length, address of its
global heap collection, object index) and the text in global heap collections
(HDF5 file format specification, "Global Heap"): a 16-byte collection header
(``GCOL``, version 1, collection size) followed by the objects packed one after the
other, each a 16-byte header (object index, reference count, reserved, object size)
and its bytes padded to a multiple of 8.

:func:`read_vlen_strings` reads the records, places every referenced object by
assuming the objects of a collection lie in index order (as HDF5 allocates them) and
**checks every placement** against the object header found there (index and size):
the first object of a collection starts right after its header, so by induction
every checked placement is a real object boundary and the text read is exact. Any
layout it does not recognise (chunked or filtered dataset, user block, other address
sizes, objects out of index order, a missing object) raises :class:`UnsupportedLayout`;
the caller then reads through h5py.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["UnsupportedLayout", "read_vlen_strings"]

_RECORD = np.dtype([("len", "<u4"), ("addr", "<u8"), ("idx", "<u4")])
#: Bytes of gathered text matrix per pass (rows x padded width).
_GATHER_BYTES = 1 << 20
#: Records processed at a time: arrays that stay in the allocator's heap and the CPU cache
#: (1M-record arrays are fresh memory maps: 2x slower at 10M names).
_BLOCK = 131_072


class UnsupportedLayout(Exception):
    """The dataset is not a layout :func:`read_vlen_strings` reads (read it through h5py)."""


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise UnsupportedLayout(what)


def _pread_into(fd: int, out: np.ndarray, position: int) -> None:
    """Fill ``out`` (a contiguous ``uint8`` array) with the file's bytes at ``position``."""
    view = out.data
    done = 0
    while done < out.size:
        got = os.preadv(fd, [view[done:]], position + done)
        _check(got > 0, "file shorter than its addresses")
        done += got


def _pread(fd: int, size: int, position: int) -> np.ndarray:
    """``size`` bytes of the file at ``position``."""
    out = np.empty(size, np.uint8)
    _pread_into(fd, out, position)
    return out


def _runs(addr: np.ndarray) -> np.ndarray:
    """Start of each run of equal addresses."""
    return np.r_[0, np.flatnonzero(addr[1:] != addr[:-1]) + 1]


def read_vlen_strings(dataset: Any, chunk: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The strings of a 1-D variable-length string dataset as ``(offsets, data)`` pairs, ``chunk`` strings each.

    ``offsets`` is ``int64`` (``len + 1`` values, from 0), ``data`` the UTF-8 (or ASCII)
    bytes: the buffers of an Arrow ``large_binary`` array. A missing (null) element
    reads as an empty string, as h5py reads it.

    Parameters
    ----------
    dataset
        An ``h5py.Dataset`` of an ``.h5ad`` opened from a path.
    chunk
        Strings per returned pair.

    Raises
    ------
    UnsupportedLayout
        A layout this reader does not handle (nothing is returned; read through h5py).
    """
    import h5py

    _check(h5py.check_string_dtype(dataset.dtype) is not None, "not strings")
    _check(h5py.check_string_dtype(dataset.dtype).length is None, "fixed-length strings")
    _check(dataset.ndim == 1, "not 1-D")
    _check(hasattr(os, "preadv"), "no positioned reads on this system")
    _check(dataset.file.driver == "sec2" and dataset.file.userblock_size == 0, "driver or user block")
    _check(tuple(dataset.file.id.get_create_plist().get_sizes()) == (8, 8), "address or length size")
    _check(dataset.id.get_create_plist().get_nfilters() == 0, "filtered")
    start = dataset.id.get_offset()
    _check(start is not None and dataset.chunks is None, "not contiguous or not allocated")
    n = int(dataset.shape[0])
    fd = os.open(dataset.file.filename, os.O_RDONLY)
    try:
        return _read(fd, int(start), n, chunk)
    finally:
        os.close(fd)


def _records(fd: int, start: int, first: int, stop: int) -> np.ndarray:
    return _pread(fd, (stop - first) * _RECORD.itemsize, start + first * _RECORD.itemsize).view(_RECORD)


def _walk(heap: np.ndarray, at: int, size: int, max_idx: int) -> np.ndarray:
    """Buffer position of each object (by index, 0 where absent) of the collection at ``heap[at:at + size]``."""
    import struct

    places = np.zeros(max_idx + 1, np.int64)
    buffer = heap.data
    p = at + 16
    while p + 16 <= at + size:
        idx, _, _, length = struct.unpack_from("<HHIQ", buffer, p)
        if idx == 0:  # the free space: the last object
            break
        if idx <= max_idx:
            places[idx] = p
        p += 16 + (length + 7) // 8 * 8
    return places


def _read(fd: int, start: int, n: int, chunk: int) -> list[tuple[np.ndarray, np.ndarray]]:
    block = max(1, min(chunk, _BLOCK))
    bounds = [(a, min(n, a + block, c + chunk)) for c in range(0, n, chunk) for a in range(c, min(n, c + chunk), block)]
    # pass 1: the collections and the largest object index used in each
    run_addr, run_max = [], []
    text_bytes = np.zeros(-(-n // chunk), np.int64)  # of each chunk
    for a, b in bounds:
        rec = _records(fd, start, a, b)
        nulls = rec["addr"] == 0
        _check(not np.any(rec["len"][nulls]), "null reference with a length")
        text_bytes[a // chunk] += int(rec["len"].sum(dtype=np.int64))
        runs = _runs(rec["addr"])
        run_addr.append(rec["addr"][runs])
        run_max.append(np.maximum.reduceat(rec["idx"], runs))
    addrs, inverse = np.unique(np.concatenate(run_addr), return_inverse=True)
    max_idx = np.zeros(len(addrs), np.int64)
    np.maximum.at(max_idx, inverse, np.concatenate(run_max))
    # Heap object indices are 16-bit in the file: a larger one is damage (and would size `slots`).
    _check(int(max_idx.max(initial=0)) <= 0xFFFF, "object index beyond 16 bits")
    file_size = os.fstat(fd).st_size
    sizes = np.empty(len(addrs), np.int64)  # of each collection, from its header
    for i, address in enumerate(addrs.tolist()):
        if address == 0:
            sizes[i] = 0
            continue
        _check(address + 16 <= file_size, "collection address past the end of the file")
        head = _pread(fd, 16, address)
        _check(head[:5].tobytes() == b"GCOL\x01", "not a global heap collection")
        sizes[i] = int(head[8:16].view("<u8")[0])
        _check(sizes[i] % 8 == 0 and 16 <= sizes[i] < 2**32, "collection size")
        # Every object takes at least its 16-byte header; the collection lies inside the file.
        _check(max_idx[i] <= sizes[i] // 16 and address + sizes[i] <= file_size, "collection bounds")
    # Collections never overlap: what is read and allocated is at most the file's size.
    real = addrs != 0
    _check(bool(np.all((addrs[real] + sizes[real])[:-1] <= addrs[real][1:])), "overlapping collections")
    base = np.r_[0, np.cumsum(max_idx + 1)]  # slot of object index 0 of each collection
    # pass 2: every referenced object's padded size at its slot; cumulative sums place them
    slots = np.zeros(int(base[-1]), np.uint32)

    def located(rec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        runs = _runs(rec["addr"])
        ids = np.repeat(np.searchsorted(addrs, rec["addr"][runs]), np.diff(np.r_[runs, len(rec)]))
        return ids, base[ids] + rec["idx"]

    for a, b in bounds:
        rec = _records(fd, start, a, b)
        ids, slot = located(rec)
        slots[slot] = np.where(rec["addr"] == 0, 0, 16 + ((rec["len"].astype(np.uint32) + 7) & ~np.uint32(7)))
    np.cumsum(slots, out=slots)  # modulo 2**32: differences inside a collection (< 2**32 bytes) are exact
    # pass 3: read the collections of each chunk, check every object header, gather the text in element order
    out = [(np.zeros(min(n, c + chunk) - c + 1, np.int64), np.empty(int(size), np.uint8))
           for c, size in zip(range(0, n, chunk), text_bytes.tolist(), strict=True)]  # (offsets, text) of each chunk
    heap = np.empty(0, np.uint8)  # reused: the collections of one block
    written = 0  # text bytes of the blocks before, in their chunk
    for a, b in bounds:
        rec = _records(fd, start, a, b)
        addr = rec["addr"]
        runs = _runs(addr)
        counts = np.diff(np.r_[runs, len(rec)])
        run_ids = np.searchsorted(addrs, addr[runs])
        used = np.unique(run_ids)
        used = used[addrs[used] != 0]
        at = np.zeros(len(addrs), np.int64)  # of each collection in ``heap``
        at[used] = np.r_[0, np.cumsum(sizes[used])[:-1]]
        total = int(sizes[used].sum())
        lengths = rec["len"].astype(np.int64)
        spare = 8 * (int(lengths.max(initial=0)) // 8 + 2)  # the gather reads whole words past short strings
        if heap.size < total + spare:
            heap = np.empty(total + spare, np.uint8)
        heap[total : total + spare] = 0
        joined = np.r_[0, np.flatnonzero(addrs[used][1:] != (addrs[used] + sizes[used])[:-1]) + 1, len(used)]
        for first, stop in zip(joined[:-1].tolist(), joined[1:].tolist(), strict=True):  # file-adjacent collections: one read
            begin = int(at[used[first]])
            end = int(at[used[stop - 1]] + sizes[used[stop - 1]])
            _pread_into(fd, heap[begin:end], int(addrs[used[first]]))
        words = heap[: total + spare].view("<u8")
        idx = rec["idx"]
        padded = 16 + ((lengths + 7) & ~7)
        ends = slots[np.repeat(base[run_ids], counts) + idx]  # cumulative padded sizes, modulo 2**32
        ends -= np.repeat(slots[base[run_ids]], counts)  # ... from the start of the collection (exact)
        position = (ends.astype(np.int64) + np.repeat(at[run_ids] + 16, counts) - padded) // 8  # header word
        real = addr != 0
        has_null = not bool(real.all())
        if has_null:
            position[~real] = 0
        wrong = ((words[position] & 0xFFFF) != idx) | (words[position + 1] != rec["len"])
        if has_null:
            wrong &= real
        if wrong.any():  # a collection shared with other strings of the file: walk its object headers
            ids = np.repeat(run_ids, counts)
            shared = np.unique(ids[wrong])
            _check(len(shared) <= 64 and int(max_idx[shared].sum()) <= max(65_536, len(rec) // 16),
                   "too many objects out of place")  # h5py is as fast
            for i in shared.tolist():
                mine = ids == i
                places = _walk(heap, int(at[i]), int(sizes[i]), int(max_idx[i]))
                position[mine] = places[idx[mine]] // 8
            found = position[real] if has_null else position
            _check(bool(np.all(found > 0)), "object not found in its collection")
            _check(bool(np.all((words[found] & 0xFFFF) == idx[real])), "object index")
            _check(bool(np.all(words[found + 1] == rec["len"][real])), "object size")
        # every object inside its collection (the headers are real: the text is too, but not past the collection)
        last = np.repeat(at[run_ids] + sizes[run_ids], counts)
        _check(bool(np.all((position * 8 + padded <= last) | ~real)), "object outside its collection")
        if has_null:
            lengths[~real] = 0
        offsets, text = out[a // chunk]
        if a % chunk == 0:
            written = 0
        first = a % chunk
        offsets[first + 1 : first + 1 + len(rec)] = lengths
        size = int(lengths.sum())
        _gather(words, position + 2, lengths, text[written : written + size])
        written += size
    for offsets, _ in out:
        np.cumsum(offsets, out=offsets)
    return out


def _gather(words: np.ndarray, first: np.ndarray, lengths: np.ndarray, out: np.ndarray) -> None:
    """Write the bytes of each string (``lengths[i]`` bytes from word ``first[i]`` of ``words``) one after the other in ``out``."""
    width = max(1, int((int(lengths.max(initial=0)) + 7) // 8))
    step = max(1, _GATHER_BYTES // (8 * width))
    at = 0
    same = bool(lengths.size) and bool(np.all(lengths == lengths[0]))
    for r in range(0, len(first), step):
        rows = slice(r, min(len(first), r + step))
        text = np.empty((len(first[rows]), width), np.uint64)
        for k in range(width):
            text[:, k] = words[first[rows] + k]  # the heap has spare words past the last object
        raw = text.view(np.uint8)
        piece = raw[:, : int(lengths[0])] if same else raw[np.arange(8 * width) < lengths[rows, None]]
        out[at : at + piece.size] = piece.reshape(-1)
        at += piece.size
