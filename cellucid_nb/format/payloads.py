"""Reading raw payload files of an export (plain or gzip), with exact length checks.

Shared by the reader (which decodes) and the validator (which only checks), so
both agree on what a well-formed payload is. Errors always name the file.

Every size is checked before memory is allocated: a plain payload by its file
size; a gzip payload by what its compressed size can possibly hold (deflate
expands at most :data:`MAX_DEFLATE_RATIO` times) and then by inflating with
a bound of the expected length (one byte more is an error), so a gzip bomb
never inflates beyond what the manifest announces. Symbolic links are refused.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from cellucid_nb.format.safe_io import SymlinkError, open_no_follow

__all__ = [
    "is_gzip_path",
    "read_payload",
    "inflated_size",
    "gzip_header_problem",
    "PayloadError",
    "PayloadSizeError",
    "GzipDataError",
    "SymlinkError",
    "MAX_DEFLATE_RATIO",
    "max_gzip_size",
]

_CHUNK = 1 << 20
# Upper bound of inflated bytes held at once while streaming a gzip file.
_MAX_INFLATE = 8 << 20
#: Deflate turns one byte into at most 1032 (258-byte matches, 2 bits each); gzip adds 18 bytes a member.
MAX_DEFLATE_RATIO = 1032


class PayloadError(ValueError):
    """A payload file is unreadable, truncated or has the wrong length."""


class PayloadSizeError(PayloadError):
    """A payload (after inflating) has a byte length other than the manifests imply."""


class GzipDataError(PayloadError):
    """A ``.gz`` payload is not valid gzip or is cut short."""


def is_gzip_path(path: str | Path) -> bool:
    """Return whether a payload is gzip-compressed: decided by the ``.gz`` suffix only.

    Parameters
    ----------
    path
        File path or manifest-relative path.
    """
    return str(path).endswith(".gz")


def read_payload(path: Path, dtype: np.dtype | str, count: int, label: str | None = None) -> np.ndarray:
    """Read exactly ``count`` little-endian values of ``dtype`` from a payload file.

    Parameters
    ----------
    path
        The file; inflated when its name ends in ``.gz``.
    dtype
        Element type (a little-endian numpy dtype).
    count
        Number of values expected (e.g. ``n_cells * dim``).
    label
        Name of the file in messages (defaults to ``path``).

    Returns
    -------
    numpy.ndarray
        A writable 1-D array of ``count`` values.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    PayloadError
        Invalid gzip or a length other than ``count * itemsize`` bytes.
    """
    dtype = np.dtype(dtype)
    name = label or str(path)
    expected = int(count) * dtype.itemsize
    if count < 0:
        raise PayloadSizeError(f"{name}: the manifests declare {count} values, expected a count >= 0")
    if os.path.islink(path):
        raise SymlinkError(f"payload file {name} is a symbolic link; exports are read without following links")
    if not path.is_file():
        raise FileNotFoundError(f"payload file {name} does not exist")
    fd = open_no_follow(path)
    with os.fdopen(fd, "rb") as handle:
        got = os.fstat(handle.fileno()).st_size
        if is_gzip_path(path):
            if got > max_gzip_size(expected):
                raise PayloadSizeError(
                    f"{name}: {got} compressed bytes, more than the {max_gzip_size(expected)} that {count} values of "
                    f"{dtype.name} can need; the file is not this export's payload"
                )
            if expected > got * MAX_DEFLATE_RATIO:
                raise PayloadSizeError(
                    f"{name}: {got} compressed bytes cannot inflate to the {expected} bytes expected "
                    f"({count} values of {dtype.name}); the manifests declare more values than the file holds"
                )
            try:
                data = _gunzip_bounded(handle.read(), expected, name)
            except (zlib.error, EOFError) as exc:
                raise GzipDataError(f"{name}: invalid gzip data ({exc})") from None
            if len(data) != expected:
                raise PayloadSizeError(
                    f"{name}: inflated payload has {len(data)} bytes, expected {expected} "
                    f"({count} values of {dtype.name}); the file is truncated or was written with other settings"
                )
            return np.frombuffer(data, dtype=dtype)
        if got != expected:
            raise PayloadSizeError(
                f"{name}: payload has {got} bytes, expected {expected} "
                f"({count} values of {dtype.name}); the file is truncated or was written with other settings"
            )
        return np.fromfile(handle, dtype=dtype, count=count)


def max_gzip_size(n_bytes: int) -> int:
    """Largest gzip file that ``n_bytes`` of data can need (incompressible data stored, several members).

    Deflate's worst case adds 5 bytes per 64 KiB stored block; each gzip member
    adds 18 bytes of header and trailer. The bound leaves room for members of a
    few hundred kilobytes and a little zero padding.
    """
    return n_bytes + n_bytes // 256 + 65536


def _gunzip_bounded(raw: bytes, limit: int, name: str) -> bytearray:
    """Inflate every gzip member of ``raw``, never more than ``limit`` bytes.

    Raises
    ------
    PayloadSizeError
        The data inflates to more than ``limit`` bytes (the message names ``name``).
    EOFError
        The stream is cut short.
    """
    out = bytearray()
    rest = raw
    while True:
        d = zlib.decompressobj(31)
        out += d.decompress(rest, limit + 1 - len(out))
        if len(out) > limit:
            raise PayloadSizeError(
                f"{name}: inflates to more than the {limit} bytes the manifests imply (stopped there); "
                "the file is not this export's payload or is a decompression bomb"
            )
        if not d.eof:
            if d.unconsumed_tail:  # output bound reached exactly with input left: more than limit
                raise PayloadSizeError(
                    f"{name}: inflates to more than the {limit} bytes the manifests imply (stopped there); "
                    "the file is not this export's payload or is a decompression bomb"
                )
            raise EOFError("gzip stream is truncated")
        rest = d.unused_data
        # Trailing zero padding is tolerated by gzip tools; anything else is another member.
        if not rest.strip(b"\x00"):
            return out


def inflated_size(path: Path, limit: int | None = None, tails: list[str] | None = None) -> int:
    """Stream-inflate a gzip file and return its uncompressed size, holding little in memory.

    Parameters
    ----------
    path
        A ``.gz`` payload.
    limit
        Stop once more than ``limit`` bytes came out and return that count (a
        gzip bomb is not inflated to the end).
    tails
        When given, receives one sentence per thing after the first gzip member
        (another member, zero padding): legal gzip that Python reads, but that
        browsers' ``DecompressionStream`` refuses.

    Raises
    ------
    PayloadError
        Invalid or truncated gzip data (the message names the file).
    """
    total = 0
    d = zlib.decompressobj(31)
    pending = b""
    try:
        with os.fdopen(open_no_follow(path), "rb") as fh:
            while True:
                if limit is not None and total > limit:
                    return total
                if not pending:
                    pending = fh.read(_CHUNK)
                    if not pending:
                        break
                if d.eof:
                    if not pending.strip(b"\x00"):
                        if tails is not None and pending:
                            tails.append(f"{len(pending)} zero byte(s) of padding after the gzip stream")
                        pending = b""  # zero padding after the last member
                        continue
                    if tails is not None:
                        tails.append("a further gzip member after the first")
                    d = zlib.decompressobj(31)  # a further gzip member
                total += len(d.decompress(pending, _MAX_INFLATE))
                pending = d.unused_data if d.eof else d.unconsumed_tail
        if not d.eof:
            total += len(d.flush())  # output zlib still holds back after the last input
    except zlib.error as exc:
        raise GzipDataError(f"{path.name}: invalid gzip data ({exc})") from None
    if not d.eof:
        raise GzipDataError(f"{path.name}: gzip stream is truncated")
    return total


def gzip_header_problem(path: Path) -> str | None:
    """Describe why a gzip header is not reproducible (mtime set or file name stored), else ``None``.

    Parameters
    ----------
    path
        A ``.gz`` payload.
    """
    with open(path, "rb") as fh:
        head = fh.read(10)
    if len(head) < 10 or head[:2] != b"\x1f\x8b":
        return None  # not gzip at all: reported by the content check instead
    flags = head[3]
    mtime = int.from_bytes(head[4:8], "little")
    issues = []
    if mtime:
        issues.append(f"mtime {mtime} (expected 0)")
    if flags & 0x08:
        issues.append("an embedded file name")
    return ", ".join(issues) or None
