"""Value codecs of the exports format: quantization and gzip.

Only this module knows how numbers become bytes on disk (and back). Writers,
the estimator and the reader all go through it so they cannot disagree.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "QUANT_MAX",
    "MISSING_CODE",
    "QuantSpec",
    "check_bits",
    "check_compression",
    "value_range",
    "quantize",
    "dequantize",
    "gzip_bytes",
    "gunzip_bytes",
    "payload_suffix",
    "prefers_rle",
    "widen_constant_range",
    "DEFLATE_IMPLEMENTATION",
    "CHUNK_BYTES",
    "dense_strategy",
    "needs_float64",
]

#: Largest valid quantized value per bit width; the next value is "missing".
QUANT_MAX = {8: 254, 16: 65534}
#: Missing-value marker per bit width (also used for missing category codes).
MISSING_CODE = {8: 255, 16: 65535}
_QUANT_DTYPE = {8: np.uint8, 16: np.uint16}

_deflate: ModuleType  # zlib_ng.zlib_ng or zlib: the same API
try:  # zlib-ng: same deflate format and ratio for Z_RLE, measured ~1.6x faster than zlib
    from zlib_ng import zlib_ng as _deflate
except ImportError:  # pragma: no cover - optional speed-up
    _deflate = zlib

#: Name of the deflate implementation in use (recorded in the export sidecar).
DEFLATE_IMPLEMENTATION = "zlib-ng " + _deflate.ZLIBNG_VERSION if _deflate is not zlib else "zlib " + zlib.ZLIB_RUNTIME_VERSION


@dataclass(frozen=True)
class QuantSpec:
    """How one continuous payload is stored (``bits=None`` means float32)."""

    bits: int | None

    @property
    def ext(self) -> str:
        """File extension part (``u8``, ``u16`` or ``f32``)."""
        return {None: "f32", 8: "u8", 16: "u16"}[self.bits]

    @property
    def dtype_name(self) -> str:
        """Manifest dtype name (``uint8``, ``uint16`` or ``float32``)."""
        return {None: "float32", 8: "uint8", 16: "uint16"}[self.bits]

    @property
    def numpy_dtype(self) -> np.dtype:
        """The little-endian numpy dtype of the payload."""
        return np.dtype({None: "<f4", 8: "u1", 16: "<u2"}[self.bits])

    @property
    def quantized(self) -> bool:
        """Whether values are quantized integers."""
        return self.bits is not None

    def schema_fields(self) -> dict[str, object]:
        """Manifest schema keys of a continuous payload (obs ``continuous`` and ``_varSchema``).

        ``{ext, dtype, quantized}`` plus ``quantizationBits`` when quantized, in the
        order the reference exporter writes them.
        """
        fields: dict[str, object] = {"ext": self.ext, "dtype": self.dtype_name, "quantized": self.quantized}
        if self.bits is not None:
            fields["quantizationBits"] = self.bits
        return fields


def check_bits(bits: object, name: str) -> int | None:
    """Validate a quantization setting.

    Parameters
    ----------
    bits
        ``None``, 8 or 16.
    name
        Parameter name for the message.

    Returns
    -------
    int or None
    """
    if bits is None:
        return None
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)) or int(bits) not in (8, 16):
        raise ValueError(f"{name}={bits!r} is not supported: expected None (float32), 8 or 16.")
    return int(bits)


def check_compression(level: object) -> int | None:
    """Validate a gzip level and normalise ``0`` to ``None``.

    Parameters
    ----------
    level
        ``None``, 0 (no gzip) or 1-9.

    Returns
    -------
    int or None
        The gzip level, or ``None`` for no compression.
    """
    if level is None:
        return None
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, np.integer)) or not 0 <= int(level) <= 9:
        raise ValueError(f"compression={level!r} is not supported: expected None or 0 (no gzip) or an integer 1-9.")
    return int(level) or None


def value_range(values: np.ndarray, implicit_zero: bool = False) -> tuple[float, float]:
    """Return ``(min, max)`` over finite values, as the manifests store them.

    All-invalid gives ``(0.0, 1.0)``; a constant field gives ``(v, v + 1)`` so that
    strict readers always see ``min < max``.

    Parameters
    ----------
    values
        Any numeric array.
    implicit_zero
        Also count a value of 0 (unstored entries of a sparse column).
    """
    finite = values[np.isfinite(values)] if values.size else values
    if finite.size == 0:
        if not implicit_zero:
            return 0.0, 1.0
        lo = hi = 0.0
    else:
        lo, hi = float(finite.min()), float(finite.max())
        if implicit_zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
    if not hi > lo:
        hi = float(widen_constant_range(np.float64(lo), np.float64(hi)))
    return lo, hi


def widen_constant_range(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Return ``hi``, replaced by ``lo + 1`` where ``hi <= lo`` (strict readers need min < max).

    Beyond 2**53, ``lo + 1 == lo``; the next representable float is used there.

    Parameters
    ----------
    lo, hi
        float64 scalars or arrays of equal shape.
    """
    hi = np.where(hi > lo, hi, lo + 1.0)
    return np.where(hi > lo, hi, np.nextafter(lo, np.inf))


def needs_float64(lo: float | np.ndarray, hi: float | np.ndarray, bits: int) -> np.ndarray:
    """Per range: whether float32 arithmetic could overflow or lose the range (16 bits: always)."""
    span = np.abs(np.asarray(hi, dtype=np.float64) - lo)
    return (span >= 1e37) | (span <= 1e-30) | (bits == 16) | np.isnan(span)


def _codes(values: np.ndarray, lo: Any, scale: Any, qmax: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """``floor((v - lo) * scale + 0.5)`` clipped to ``[0, qmax]`` in ``dtype``, and the non-finite mask."""
    v: np.ndarray = np.asarray(values, dtype=dtype)
    scaled = np.subtract(v, lo, dtype=dtype)
    scaled *= scale
    scaled += 0.5
    bad = ~np.isfinite(scaled)
    scaled[bad] = 0  # replaced by the missing code; avoids casting NaN
    np.clip(scaled, 0, qmax, out=scaled)
    return scaled, bad


def quantize(
    values: np.ndarray,
    lo: float | np.ndarray,
    hi: float | np.ndarray,
    bits: int,
    out: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Quantize to the nearest step of ``bits``; non-finite values get the missing code.

    Decoding with :func:`dequantize` is within half a step of the input for
    finite values in ``[lo, hi]``. Each value's code depends only on the value
    and its own range: the arithmetic is float32 for 8 bits unless that range is
    too wide or too narrow for it, float64 otherwise.

    Parameters
    ----------
    values
        Values to encode (any float or int dtype, any shape).
    lo, hi
        Range from :func:`value_range`; ``hi > lo``. Scalars, arrays broadcast
        against ``values``, or one value per group when ``groups`` is given.
    bits
        8 or 16.
    out
        Optional preallocated output of the right dtype and shape.
    groups
        Group index of each value (1-D ``values``): the result equals
        ``quantize(values, lo[groups], hi[groups], bits)``, with the range
        arithmetic done once per group instead of once per value (the stored
        values of many genes quantized at once).
    """
    qmax = QUANT_MAX[bits]
    wide = needs_float64(lo, hi, bits)
    # Python-float ranges stay Python floats: numpy then computes `scaled *= scale` in float32.
    scale = qmax / (hi - lo)
    lo32: Any = lo
    if groups is not None:
        lo64 = np.asarray(lo, dtype=np.float64)
        lo, lo32 = lo64[groups], lo64.astype(np.float32)[groups]
        scale, wide = np.asarray(scale, dtype=np.float64)[groups], wide[groups]
    if out is None:
        out = np.empty(np.shape(values), dtype=_QUANT_DTYPE[bits])
    if not wide.any():
        scaled, bad = _codes(values, lo32, scale, qmax, np.float32)
    elif wide.all():
        scaled, bad = _codes(values, lo, scale, qmax, np.float64)
    else:  # some ranges need float64: each value takes the result of its own range's arithmetic
        with np.errstate(over="ignore", invalid="ignore"):  # float32 results of wide ranges are dropped
            narrow, bad32 = _codes(values, lo32, scale, qmax, np.float32)
        scaled, bad = _codes(values, lo, scale, qmax, np.float64)
        scaled = np.where(wide, scaled, narrow)
        bad = np.where(wide, bad, bad32)
    # astype truncates toward zero; values are >= 0 so truncation == floor.
    np.copyto(out, scaled, casting="unsafe")
    out[bad] = MISSING_CODE[bits]
    return out


def dequantize(codes: np.ndarray, lo: float, hi: float, bits: int, what: str = "quantized values") -> np.ndarray:
    """Decode quantized values as readers do; the missing code becomes NaN.

    Parameters
    ----------
    codes
        uint8 or uint16 codes.
    lo, hi
        The stored ``minValue`` and ``maxValue``.
    bits
        8 or 16.
    what
        What the codes are, for the error message (file and key).

    Raises
    ------
    ValueError
        A range that is not finite (NaN or infinite ``lo``/``hi``, which JSON writers such as
        Python's emit as ``NaN``/``Infinity``) while some code is not the missing code: every
        such value would decode to NaN or infinity. An all-missing payload decodes to NaN.
    """
    qmax = QUANT_MAX[bits]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        stored = int(np.count_nonzero(codes != MISSING_CODE[bits]))
        if stored:
            raise ValueError(f"{what}: stored range min={lo!r}, max={hi!r} is not finite, expected finite numbers: "
                             f"{stored} stored value(s) cannot be decoded (the export is damaged or was written "
                             "from non-finite data)")
        return np.full(codes.shape, np.nan, dtype=np.float32)
    # float64 arithmetic, as JavaScript readers do; float32 could overflow near its max.
    with np.errstate(over="ignore"):  # ranges beyond float32 decode to +-inf, as in float32 readers
        out = (lo + codes.astype(np.float64) * ((hi - lo) / qmax)).astype(np.float32)
    out[codes == MISSING_CODE[bits]] = np.nan
    return out


#: Payloads larger than this are deflated in independent chunks (pigz style), so that
#: several threads can share one big file; the chunking never depends on the threads.
CHUNK_BYTES = 1 << 20
#: A sample-based strategy choice is made for dense payloads larger than this.
_SAMPLE_FROM = 1 << 20
_SAMPLE_PIECES = 4
_SAMPLE_BYTES = 1 << 16


def _as_bytes_view(data: bytes | memoryview | np.ndarray) -> memoryview:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).data.cast("B")
    view = memoryview(data)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _deflate_raw(chunk: memoryview, level: int, strategy: int, last: bool) -> bytes:
    co = _deflate.compressobj(level, _deflate.DEFLATED, -15, 9, strategy)
    # SYNC_FLUSH ends a chunk on a byte boundary without the final-block bit,
    # so independently deflated chunks concatenate into one valid stream.
    return co.compress(chunk) + co.flush(_deflate.Z_FINISH if last else _deflate.Z_SYNC_FLUSH)


def dense_strategy(data: bytes | memoryview | np.ndarray, level: int, full_nbytes: int | None = None) -> int:
    """Pick the deflate strategy for a dense payload from a fixed sample.

    Huffman-only coding is several times faster than the default strategy and
    measured as small on coordinates and edge indices (their bytes rarely
    repeat); the default strategy is kept when it is clearly smaller on the
    sample (by 3 % at levels 8-9, by 20 % below).

    Parameters
    ----------
    data
        The payload.
    level
        gzip level.
    full_nbytes
        Size of the whole payload when ``data`` is only a sample of it (the size
        estimator passes the sampled cells' payload), so that the estimate makes
        the same choice as the export.
    """
    buf = _as_bytes_view(data)
    n = buf.nbytes
    if (n if full_nbytes is None else full_nbytes) < _SAMPLE_FROM or n == 0:
        return _deflate.Z_DEFAULT_STRATEGY
    step = max(n // _SAMPLE_PIECES, 1)
    pieces = [buf[i * step : i * step + min(step, _SAMPLE_BYTES)] for i in range(_SAMPLE_PIECES)]
    default = sum(len(_deflate_raw(p, level, _deflate.Z_DEFAULT_STRATEGY, True)) for p in pieces)
    huffman = sum(len(_deflate_raw(p, level, _deflate.Z_HUFFMAN_ONLY, True)) for p in pieces)
    # Levels 8-9 ask for size: any clear gain keeps the default strategy. Otherwise it
    # must save a fifth to be worth being 4-8x slower (float64 edge weights: 17 %).
    needed = 0.97 if level >= 8 else 0.8
    return _deflate.Z_DEFAULT_STRATEGY if default < needed * huffman else _deflate.Z_HUFFMAN_ONLY


def gzip_bytes(
    data: bytes | memoryview | np.ndarray,
    level: int,
    *,
    rle: bool = False,
    strategy: int | None = None,
    map_fn: Callable[[Callable[[int], bytes], range], Iterable[bytes]] | None = None,
) -> bytes:
    """Compress to a single deterministic gzip member.

    The header has mtime 0 and no file name, so identical input gives
    byte-identical files. ``rle=True`` selects the ``Z_RLE`` strategy: on
    quantized gene vectors (runs of one zero code) it measured ~6x faster than
    the default strategy at level 6 and about 12 % smaller. Payloads larger
    than :data:`CHUNK_BYTES` are deflated in independent chunks joined into one
    member (as pigz does); the bytes do not depend on ``map_fn``.

    Parameters
    ----------
    data
        Bytes or a contiguous array.
    level
        gzip level 1-9.
    rle
        Use the run-length strategy.
    strategy
        Explicit zlib strategy (overrides ``rle``).
    map_fn
        ``map``-like function to deflate chunks in parallel (e.g. ``executor.map``).
    """
    buf = _as_bytes_view(data)
    if strategy is None:
        strategy = _deflate.Z_RLE if rle else _deflate.Z_DEFAULT_STRATEGY
    n = buf.nbytes
    if n <= CHUNK_BYTES:
        co = _deflate.compressobj(level, _deflate.DEFLATED, 31, 9, strategy)
        return co.compress(buf) + co.flush()
    n_chunks = -(-n // CHUNK_BYTES)

    def chunk(i: int) -> bytes:
        return _deflate_raw(buf[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES], level, strategy, i == n_chunks - 1)

    parts = list((map_fn or map)(chunk, range(n_chunks)))
    xfl = 2 if level == 9 else (4 if level == 1 else 0)
    header = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, xfl, 3])
    trailer = struct.pack("<II", zlib.crc32(buf) & 0xFFFFFFFF, n & 0xFFFFFFFF)
    return b"".join([header, *parts, trailer])


def gunzip_bytes(data: bytes) -> bytes:
    """Inflate gzip bytes (one or more members).

    Parameters
    ----------
    data
        The file's bytes.
    """
    d = zlib.decompressobj(31)
    out = [d.decompress(data)]
    # Concatenated members are legal gzip; keep going while data remains.
    while d.unused_data:
        rest = d.unused_data
        d = zlib.decompressobj(31)
        out.append(d.decompress(rest))
    if not d.eof:
        raise ValueError("gzip stream is truncated")
    return b"".join(out)


def payload_suffix(compression: int | None) -> str:
    """Return ``".gz"`` when gzip is on, else ``""``.

    Parameters
    ----------
    compression
        Normalised level from :func:`check_compression`.
    """
    return ".gz" if compression else ""


def prefers_rle(n_values: int, n_repeated: int) -> bool:
    """Choose the gzip strategy for a payload from its share of one repeated value.

    Measured on log-normalised expression vectors of 100k cells at 8 % density
    (uint8, uint16 and float32 payloads alike): ``Z_RLE`` was 3-10x faster than
    the default strategy at level 6 and 10-25 % smaller, because the payload is
    mostly runs of one value. On dense payloads (coordinates, continuous obs)
    it loses ratio, so it is used only when most values repeat one value.

    Parameters
    ----------
    n_values
        Number of values in the payload.
    n_repeated
        Number of values equal to the payload's most common value (for a sparse
        column: the implicit zeros).
    """
    return n_values > 0 and n_repeated * 2 >= n_values
