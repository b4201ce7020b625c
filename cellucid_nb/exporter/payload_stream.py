"""One payload written piece by piece: the bytes of :meth:`.runner.ExportRunner.write_array` at O(piece) memory.

The kNN graph's three edge payloads are produced by blocks of rows
(:func:`.graph_blocks.iter_edge_blocks`); holding them whole for ``write_array``
cost ~16 bytes per stored graph entry (0.7 GB for a 2M-cell graph). Here each
block is appended to a raw spool file in the staging folder and dropped, and
:meth:`PayloadStream.finish` then compresses the spool into the final file.

Why a spool and not a gzip stream fed block by block: the gzip bytes of a
payload larger than :data:`.codecs.CHUNK_BYTES` depend on the whole payload
before its first chunk is deflated, since the deflate strategy is chosen from
four samples at quarters of the payload (:func:`.codecs.dense_strategy`). The
payload's length is only known once the last block is produced, so the samples
are read back from the spool, then the chunks (independent 1 MiB deflate
streams joined into one gzip member, as :func:`.codecs.gzip_bytes` writes them)
are read, deflated (by the runner's workers when given a ``map``) and appended
to the final file with the CRC-32 of the raw bytes and the checksum of the
written ones. Uncompressed payloads are written in place. The result is byte
for byte ``write_array`` of the concatenated pieces (tested); the disk holds the
raw payload once more until it is compressed.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..format import codecs

__all__ = ["PayloadStream"]

_O_NEW = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
#: Chunks deflated at once by the workers (bounds the compressed chunks held).
_WINDOW = 8

MapFn = Callable[[Callable[[int], Any], Iterable[int]], Iterable[Any]]


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view.nbytes:
        view = view[os.write(fd, view) :]


def _pread_all(fd: int, n: int, offset: int) -> bytes:
    out = os.pread(fd, n, offset)
    while len(out) < n:  # short reads are legal
        more = os.pread(fd, n - len(out), offset + len(out))
        if not more:
            raise OSError(f"spool file ended at byte {offset + len(out)}, expected {offset + n} bytes")
        out += more
    return out


class PayloadStream:
    """Raw bytes appended piece by piece, then written as one payload (compressed or not).

    Parameters
    ----------
    staging
        The export's staging folder (the folder of ``name`` must exist).
    name
        Final relative path, gzip suffix included.
    compression
        Normalised gzip level or ``None``.
    """

    def __init__(self, staging: Path, name: str, compression: int | None) -> None:
        self.name = name
        self.compression = compression
        self.n_raw = 0
        self._final = os.path.join(staging, name)
        # Uncompressed: the spool is the final file. Compressed: a hidden file beside it, removed by finish().
        self._spool = self._final if not compression else os.path.join(staging, f".spool-{uuid.uuid4().hex}")
        self._fd: int | None = os.open(self._spool, _O_NEW, 0o644)
        self._crc = 0

    def append(self, piece: np.ndarray) -> None:
        """Append the bytes of a contiguous little-endian array (it may be dropped afterwards)."""
        if self._fd is None:
            raise RuntimeError(f"payload {self.name!r} is already finished; append() received a piece after finish()")
        raw = np.ascontiguousarray(piece).data.cast("B")
        if not self.compression:
            self._crc = zlib.crc32(raw, self._crc)
        _write_all(self._fd, raw)
        self.n_raw += raw.nbytes

    def close(self) -> None:
        """Close and delete the spool (after a failure; the staging folder goes anyway)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._spool != self._final:
            try:
                os.unlink(self._spool)
            except FileNotFoundError:
                pass

    def finish(self, map_fn: MapFn | None = None) -> tuple[int, str]:
        """Write the final file; returns its size and checksum (as :func:`.checksums.payload_checksum`).

        Parameters
        ----------
        map_fn
            ``map``-like function deflating chunks in parallel (``executor.map``); ``None`` deflates here.
        """
        if self._fd is None:
            raise RuntimeError(f"payload {self.name!r} is already finished")
        fd, n = self._fd, self.n_raw
        try:
            if not self.compression:
                return n, f"{self._crc & 0xFFFFFFFF:08x}"
            if n <= codecs.CHUNK_BYTES:  # write_array stores small payloads in one deflate call
                payload = codecs.gzip_bytes(_pread_all(fd, n, 0), self.compression)
                return self._write_final([payload])
            return self._write_final(self._chunks(fd, n, self.compression, map_fn))
        finally:
            self.close()

    def _chunks(self, fd: int, n: int, level: int, map_fn: MapFn | None) -> Iterable[bytes]:
        """The gzip member of :func:`.codecs.gzip_bytes` with :func:`.codecs.dense_strategy`, piece by piece."""
        # dense_strategy samples min(step, 64 KiB) bytes at i * (n // 4): the same pieces, read back.
        step = max(n // 4, 1)
        width = min(step, 1 << 16)
        sample = b"".join(_pread_all(fd, width, i * step) for i in range(4))
        strategy = codecs.dense_strategy(sample, level, full_nbytes=n)
        n_chunks = -(-n // codecs.CHUNK_BYTES)

        def deflate(i: int) -> bytes:
            start = i * codecs.CHUNK_BYTES
            raw = _pread_all(fd, min(codecs.CHUNK_BYTES, n - start), start)
            return codecs._deflate_raw(memoryview(raw), level, strategy, i == n_chunks - 1)

        xfl = 2 if level == 9 else (4 if level == 1 else 0)
        yield bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, xfl, 3])
        crc = 0
        for first in range(0, n_chunks, _WINDOW):
            window = range(first, min(first + _WINDOW, n_chunks))
            for i, part in zip(window, (map_fn or map)(deflate, window), strict=True):
                start = i * codecs.CHUNK_BYTES
                # CRC of the raw bytes in order (no crc32_combine in zlib's Python API): read again, cached.
                crc = zlib.crc32(_pread_all(fd, min(codecs.CHUNK_BYTES, n - start), start), crc)
                yield part
        yield struct.pack("<II", crc & 0xFFFFFFFF, n & 0xFFFFFFFF)

    def _write_final(self, parts: Iterable[bytes]) -> tuple[int, str]:
        out = os.open(self._final, _O_NEW, 0o644)
        size, crc = 0, 0
        try:
            for part in parts:
                _write_all(out, part)
                size += len(part)
                crc = zlib.crc32(part, crc)
        finally:
            os.close(out)
        return size, f"{crc & 0xFFFFFFFF:08x}"
