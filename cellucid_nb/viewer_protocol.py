"""Serve an export to the viewer front-end: the Python half of the viewer wire protocol.

Protocol (JS ``js/viewer/transport.js`` <-> this module). Every message has a
``type`` starting with ``"viewer:"`` so a host widget (the wizard) can share its
comm and forward only these to :meth:`ViewerBackend.handle`.

JS -> Python
    ``{"type": "viewer:request", "id": str | int, "kind": str, "args": dict}``
        kinds and args: ``meta`` {}; ``points`` {dim, embedding?}; ``obs`` {key};
        ``gene`` {gene}; ``edges`` {}; ``vectors`` {field, dim, embedding?};
        ``centroids`` {key, embedding?} (header only: ``centroids`` of a categorical field).
        ``embedding`` is an id of ``meta["embeddings"]`` (``compact_v2`` holds several
        per dimension; absent or empty: the dimension's default); an unknown id, or
        one of another dimension, is answered with an error naming the known ones.
        Progressive loading (large exports): ``points``, ``obs``, ``gene`` and
        ``vectors`` also take ``order="permuted"`` with ``start``/``stop``: the
        answer holds the cells at draw positions ``[start, stop)`` of the fixed
        pseudo-random draw order of :mod:`cellucid_nb.viewer_order` (a prefix is
        a uniform subsample), and its header repeats ``order``, ``start``, ``stop``.
        ``edges`` with ``order="permuted"`` gives the pairs as draw positions.
        ``meta["order"]`` says how the front-end recomputes that order.
    ``{"type": "viewer:ack", "id": str | int, "seq": int}``
        one per received chunk; the next chunk goes out only when the window
        of unacknowledged chunks has room, so a dropped message stalls the
        transfer and the JS side reports a timeout instead of drawing nothing.
    ``{"type": "viewer:select", "n": int}`` + one buffer of ``n`` uint32 cell indices.
    ``{"type": "viewer:event", "name": str, "payload": dict}`` (e.g. ``first_frame`` timings).

Python -> JS
    ``{"type": "viewer:response", "id", "seq", "n_chunks", "nbytes", "chunk_bytes", "header"}``
        + one buffer (chunk ``seq`` of the blob). ``n_chunks == 0`` means a
        header-only answer (``meta``). ``header["arrays"]`` lists
        ``{name, dtype, shape, offset, nbytes}`` inside the blob (offsets are
        8-byte aligned); other header keys describe the payload (min, max, bits, ...).
    ``{"type": "viewer:error", "id", "message"}``
    ``{"type": "viewer:command", "command", "args"}`` (+ buffers): ``highlight``
        (one uint32 buffer), ``reset_view``, ``set_color_field`` {field},
        ``set_dimension`` {dim}.

Payloads are the STORED values (inflated but still quantized: uint8/uint16 codes
or values plus min/max, float32 points); the browser dequantizes. The HTTP server
(:mod:`cellucid_nb.server`) answers the same requests with :func:`frame_response`.
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

# Imported with the module (it pulls in pandas) so that show() itself stays fast.
from cellucid_nb.format.reader import read_export
from cellucid_nb.viewer_order import draw_order_slice, draw_positions, order_spec

__all__ = ["ViewerBackend", "build_response", "build_meta", "frame_response", "MESSAGE_PREFIX", "FRAME_MAGIC"]

logger = logging.getLogger(__name__)

MESSAGE_PREFIX = "viewer:"
FRAME_MAGIC = b"CLNB"
#: Unacknowledged chunks allowed in flight (2 keeps the socket busy during an ack round trip).
DEFAULT_WINDOW = 2
#: A transfer without any acknowledgement for this long is dropped (its view is gone).
STALE_SECONDS = 120.0
#: Responses kept waiting for acknowledgements at once, and their total bytes. A page that
#: asks without acknowledging (reloaded, closed, or hostile) cannot make the kernel hold
#: more: the least recently acknowledged transfers are dropped first (their requests time
#: out in the page with a message). The viewer itself has a handful in flight.
MAX_PENDING_TRANSFERS = 32
MAX_PENDING_BYTES = 1 << 30

SendFn = Callable[[dict, list], None]
#: Front-end events kept in ``ViewerBackend.events`` (oldest dropped first).
MAX_EVENTS = 1000


class _BadMessage(ValueError):
    """A malformed message from the front-end (answered with ``viewer:error``)."""

    def __init__(self, message: str, rid: Any = None) -> None:
        super().__init__(message)
        self.rid = rid


def _is_int(value: Any) -> TypeGuard[int | np.integer]:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _request_id(rid: Any) -> str | int:
    """A request id as sent: a string or an integer (anything else is malformed)."""
    if isinstance(rid, str) or _is_int(rid):
        return rid if isinstance(rid, str) else int(rid)
    raise _BadMessage(f"request id {rid!r:.80} is a {type(rid).__name__}, expected a string or an integer")


def _open_reader(reader_or_path: Any) -> Any:
    """Return an ``ExportReader`` for a path, or the object itself if it already is one."""
    if isinstance(reader_or_path, (str, Path)):
        return read_export(reader_or_path)
    if not hasattr(reader_or_path, "points") or not hasattr(reader_or_path, "n_cells"):
        raise TypeError(
            f"expected an export folder path or an ExportReader, got {type(reader_or_path).__name__}"
        )
    return reader_or_path


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars / arrays and NaN inside ``value`` to JSON-safe values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _dtype_name(arr: np.ndarray) -> str:
    return {"u1": "uint8", "u2": "uint16", "u4": "uint32", "i4": "int32", "f4": "float32", "f8": "float64"}[
        arr.dtype.str[1:]
    ]


def pack_arrays(arrays: Sequence[tuple[str, np.ndarray]]) -> tuple[list[dict], bytes]:
    """Concatenate arrays into one blob with 8-byte aligned offsets.

    Parameters
    ----------
    arrays
        ``(name, array)`` pairs; arrays are made little-endian and contiguous.

    Returns
    -------
    specs, blob
        ``specs`` for ``header["arrays"]`` and the bytes.
    """
    specs: list[dict] = []
    parts: list[bytes] = []
    offset = 0
    for name, arr in arrays:
        arr = np.ascontiguousarray(arr)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        data = arr.tobytes()
        specs.append({"name": name, "dtype": _dtype_name(arr), "shape": list(arr.shape), "offset": offset, "nbytes": len(data)})
        parts.append(data)
        offset += len(data)
        pad = (-offset) % 8
        if pad:
            parts.append(b"\0" * pad)
            offset += pad
    return specs, b"".join(parts)


@dataclass
class _Transfer:
    """One response being sent in acknowledged chunks."""

    id: str | int  # the request id as sent
    header: dict
    blob: memoryview
    chunk_bytes: int
    n_chunks: int
    next_seq: int = 0
    acked: set = field(default_factory=set)
    last_activity: float = field(default_factory=time.monotonic)


def build_meta(reader: Any) -> dict:
    """Describe an export for the viewer: sizes, fields, genes, graph and vector fields.

    Parameters
    ----------
    reader
        An ``ExportReader``.

    Returns
    -------
    dict
        JSON-safe; the ``meta`` answer.
    """
    fields = []
    for key in reader.obs_keys:
        info = reader.obs_field_info(key)
        entry = {
            "key": key,
            "kind": info.kind,
            "dtype": info.dtype,
            "bits": info.bits,
            "min": info.min,
            "max": info.max,
        }
        if info.kind == "categorical":
            entry["categories"] = list(info.categories or [])
            entry["missing_code"] = info.missing_code
            entry["centroids"] = info.centroids or {}
            entry["centroids_by_embedding"] = _centroids_by_embedding(reader, key)
            try:
                entry["colors"] = reader.category_colors(key)
            except Exception:  # colours are a nicety; never block the viewer on them
                entry["colors"] = None
        fields.append(entry)
    vectors = {}
    for field_id, spec in (reader.vector_fields or {}).items():
        vectors[field_id] = {
            "label": spec.get("label", field_id),
            "dims": sorted(int(d) for d in spec.get("available_dimensions", [])),
            "embeddings": sorted(spec.get("embedding_files") or
                                 (f"{int(d)}d" for d in spec.get("available_dimensions", []))),
        }
    conn = reader.connectivity_manifest
    identity = reader.identity or {}
    return _jsonable(
        {
            "name": identity.get("name") or identity.get("id") or Path(str(reader.path)).name,
            "id": identity.get("id"),
            "n_cells": int(reader.n_cells),
            "dimensions": [int(d) for d in reader.dimensions],
            "default_dimension": int(reader.default_dimension),
            "embeddings": embeddings_meta(reader),
            "obs": fields,
            "genes": [str(g) for g in reader.genes],
            "has_edges": conn is not None,
            "n_edges": int(conn["n_edges"]) if conn else 0,
            "vectors": vectors,
            "order": order_spec(),
        }
    )


#: Full per-cell arrays kept between the chunk requests of a progressive load
#: (reader, kind, key) -> array; a few entries, so a 10^7-cell stream reads each file once.
_FULL_CACHE: OrderedDict[tuple, tuple[Any, np.ndarray]] = OrderedDict()
_FULL_CACHE_SIZE = 4


def _full_array(reader: Any, key: tuple, load: Callable[[], np.ndarray]) -> np.ndarray:
    """``load()`` once per (reader, key) while it is among the last few used."""
    ck = (id(reader), *key)
    hit = _FULL_CACHE.get(ck)
    if hit is not None and hit[0] is reader:
        _FULL_CACHE.move_to_end(ck)
        return hit[1]
    arr = load()
    _FULL_CACHE[ck] = (reader, arr)  # the reader is held so its id is not reused meanwhile
    while len(_FULL_CACHE) > _FULL_CACHE_SIZE:
        _FULL_CACHE.popitem(last=False)
    return arr


def _int_arg(args: dict, name: str, default: int, kind: str) -> int:
    value = args.get(name, default)
    try:
        return int(value)  # HTTP query values arrive as strings
    except (TypeError, ValueError):
        raise ValueError(f"{kind}: argument {name}={value!r:.40} is not an integer") from None


def _wants_permuted(kind: str, args: dict) -> bool:
    """Does the request ask for the draw order (``order="permuted"``)?"""
    order = args.get("order")
    if order in (None, "", "original"):
        return False
    if order != "permuted":
        raise ValueError(f"{kind}: order={order!r:.40} is not known, expected 'permuted' or 'original'")
    return True


def _draw_slice(reader: Any, kind: str, args: dict) -> tuple[np.ndarray, int, int] | None:
    """The cells of ``args``' draw-order slice, or None when the original order is asked."""
    if not _wants_permuted(kind, args):
        return None
    n = int(reader.n_cells)
    start, stop = _int_arg(args, "start", 0, kind), _int_arg(args, "stop", n, kind)
    if not 0 <= start <= stop <= n:
        raise ValueError(f"{kind}: slice start={start}, stop={stop} is not within 0 <= start <= stop <= n_cells={n}")
    return draw_order_slice(n, start, stop), start, stop


def _sliced(reader: Any, kind: str, args: dict, key: tuple, load: Callable[[], np.ndarray]) -> tuple[np.ndarray, dict]:
    """The whole array (original order), or the rows of a draw-order slice and its header keys."""
    part = _draw_slice(reader, kind, args)
    if part is None:
        return load(), {}
    cells, start, stop = part
    return _full_array(reader, key, load)[cells], {"order": "permuted", "start": start, "stop": stop}


def _require(args: dict, name: str, kind: str) -> Any:
    if name not in args:
        raise ValueError(f"request {kind!r} needs argument {name!r}, got {sorted(args)}")
    return args[name]


def _embedding_items(reader: Any) -> list[tuple[str, int, str]]:
    """``(id, dimension, label)`` of every embedding (``"<d>d"`` per dimension for a reader without ids)."""
    items = getattr(reader, "embeddings", None)
    if items is None:
        return [(f"{int(d)}d", int(d), f"{int(d)}D") for d in reader.dimensions]
    return [(str(e.id), int(e.dim), str(e.label)) for e in items]


def _default_embeddings(reader: Any) -> dict[int, str]:
    defaults = getattr(reader, "default_embeddings", None)
    return {int(d): str(e) for d, e in defaults.items()} if defaults is not None else \
        {int(d): f"{int(d)}d" for d in reader.dimensions}


def embeddings_meta(reader: Any) -> dict[str, list[dict]]:
    """The embeddings of each dimension, for ``meta["embeddings"]``.

    Parameters
    ----------
    reader
        An ``ExportReader``.

    Returns
    -------
    dict
        ``{"<dim>": [{"id", "label", "dimension", "default"}, ...]}`` in export order;
        ``default`` is true for the one ``points`` serves without an ``embedding``.
    """
    defaults = _default_embeddings(reader)
    out: dict[str, list[dict]] = {}
    for eid, dim, label in _embedding_items(reader):
        out.setdefault(str(dim), []).append(
            {"id": eid, "label": label, "dimension": dim, "default": defaults.get(dim) == eid})
    return out


def _centroids_by_embedding(reader: Any, key: str) -> dict[str, list]:
    """A categorical field's centroids on every embedding (``{}`` for a reader without them)."""
    if not hasattr(reader, "centroids"):
        return {}
    return {eid: reader.centroids(key, eid) for eid, _dim, _label in _embedding_items(reader)}


def _embedding_arg(reader: Any, args: dict, kind: str, dim: int | None = None) -> tuple[str | None, str | None]:
    """Check the request's ``embedding`` id against the export.

    Returns ``(id, id for the reader)``: the reader's argument is None for the
    dimension's default embedding (``(None, None)`` when neither is known).
    """
    eid = args.get("embedding")
    items = {i: d for i, d, _label in _embedding_items(reader)}
    if eid in (None, ""):
        return (_default_embeddings(reader).get(dim) if dim is not None else None), None
    if not isinstance(eid, str) or eid not in items:
        raise ValueError(f"{kind}: embedding {eid!r:.80} is not in the export; known embeddings: {sorted(items)}")
    if dim is not None and items[eid] != dim:
        same = sorted(i for i, d in items.items() if d == dim)
        raise ValueError(f"{kind}: embedding {eid!r} is {items[eid]}D, expected one of the {dim}D embeddings {same}")
    return eid, (None if _default_embeddings(reader).get(items[eid]) == eid else eid)


def build_response(reader: Any, kind: str, args: dict | None = None) -> tuple[dict, bytes]:
    """Answer one viewer request with a header and a binary blob.

    Parameters
    ----------
    reader
        An ``ExportReader``.
    kind
        ``meta``, ``points``, ``obs``, ``gene``, ``edges``, ``vectors`` or ``centroids``.
    args
        Request arguments (see the module docstring).

    Returns
    -------
    header, blob
    """
    args = dict(args or {})
    if kind == "meta":
        return build_meta(reader), b""
    if kind == "points":
        dim = int(_require(args, "dim", kind))
        if dim not in reader.dimensions:
            raise ValueError(f"points: dimension {dim} is not in the export, which has {list(reader.dimensions)}")
        eid, own = _embedding_arg(reader, args, kind, dim)
        load = (lambda: reader.points(dim)) if own is None else (lambda: reader.points(dim, embedding=own))
        pts, extra = _sliced(reader, kind, args, ("points", dim, eid), lambda: np.asarray(load(), dtype=np.float32))
        specs, blob = pack_arrays([("points", pts)])
        return {"arrays": specs, "dim": dim, "embedding": eid, **extra}, blob
    if kind == "obs":
        key = str(_require(args, "key", kind))
        if key not in reader.obs_keys:
            raise KeyError(f"obs field {key!r} is not in the export; fields: {list(reader.obs_keys)[:20]}")
        info = reader.obs_field_info(key)
        raw, extra = _sliced(reader, kind, args, ("obs", key), lambda: np.asarray(reader.obs_raw(key)))
        specs, blob = pack_arrays([("values", raw)])
        header = {"arrays": specs, "key": key, "kind": info.kind, "bits": info.bits, "min": info.min, "max": info.max,
                  "missing_code": info.missing_code, **extra}
        return _jsonable(header), blob
    if kind == "gene":
        gene = str(_require(args, "gene", kind))
        if gene not in reader.genes:
            raise KeyError(f"gene {gene!r} is not in the export ({len(reader.genes)} genes exported)")
        lo, hi, bits = reader.gene_info(gene)
        raw, extra = _sliced(reader, kind, args, ("gene", gene), lambda: np.asarray(reader.gene_raw(gene)))
        specs, blob = pack_arrays([("values", raw)])
        return _jsonable({"arrays": specs, "gene": gene, "bits": bits, "min": lo, "max": hi, **extra}), blob
    if kind == "edges":
        if reader.connectivity_manifest is None:
            raise ValueError("edges: the export has no connectivity (no connectivity_manifest.json)")
        src, dst, _weights = reader.edges()
        permuted = _wants_permuted(kind, args)
        if permuted:  # the front-end's position buffer is in draw order
            src, dst = draw_positions(int(reader.n_cells), src), draw_positions(int(reader.n_cells), dst)
        # Interleave (src, dst) so the browser can use it directly as a gl.LINES index buffer.
        pairs = np.empty(2 * len(src), dtype=np.uint32 if int(reader.n_cells) > 65536 else np.uint16)
        pairs[0::2] = src
        pairs[1::2] = dst
        specs, blob = pack_arrays([("pairs", pairs)])
        return {"arrays": specs, "n_edges": int(len(src)), **({"order": "permuted"} if permuted else {})}, blob
    if kind == "vectors":
        field_id = str(_require(args, "field", kind))
        dim = int(_require(args, "dim", kind))
        if field_id not in (reader.vector_fields or {}):
            raise KeyError(f"vector field {field_id!r} is not in the export; fields: {sorted(reader.vector_fields or {})}")
        eid, own = _embedding_arg(reader, args, kind, dim)
        load_vec = (lambda: reader.vector_field(field_id, dim)) if own is None else \
            (lambda: reader.vector_field(field_id, dim, embedding=own))
        vec, extra = _sliced(reader, kind, args, ("vectors", field_id, dim, eid),
                             lambda: np.asarray(load_vec(), dtype=np.float32))
        specs, blob = pack_arrays([("vectors", vec)])
        return {"arrays": specs, "field": field_id, "dim": dim, "embedding": eid, **extra}, blob
    if kind == "centroids":
        key = str(_require(args, "key", kind))
        if key not in reader.obs_keys or reader.obs_field_info(key).kind != "categorical":
            raise KeyError(f"centroids: {key!r} is not a categorical obs field of the export")
        eid, _own = _embedding_arg(reader, args, kind)
        eid = eid or _default_embeddings(reader)[int(reader.default_dimension)]
        return _jsonable({"key": key, "embedding": eid, "centroids": reader.centroids(key, eid)}), b""
    raise ValueError(f"unknown viewer request kind {kind!r}; expected meta, points, obs, gene, edges, vectors or centroids")


def frame_response(header: dict, blob: bytes) -> bytes:
    """Frame a response for HTTP: ``CLNB``, u32 header length, header JSON, padding to 8, blob."""
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    pad = (-(8 + len(head))) % 8
    return FRAME_MAGIC + struct.pack("<I", len(head)) + head + b" " * pad + blob


class ViewerBackend:
    """Answer the viewer's requests over a widget comm, in acknowledged chunks.

    Parameters
    ----------
    reader_or_path
        An ``ExportReader`` or an export folder.
    send
        ``send(content, buffers)``: sends one custom message (e.g. ``widget.send``).
    chunk_bytes
        Largest binary buffer per message (default 4 MiB).
    window
        Chunks allowed in flight without acknowledgement.

    Examples
    --------
    >>> backend = ViewerBackend(path, send=lambda c, b: widget.send(c, buffers=b))  # doctest: +SKIP
    >>> widget.on_msg(lambda _w, content, buffers: backend.handle(content, buffers))  # doctest: +SKIP
    """

    def __init__(self, reader_or_path: Any, send: SendFn, chunk_bytes: int = 4 << 20, window: int = DEFAULT_WINDOW):
        if chunk_bytes < 64:
            raise ValueError(f"chunk_bytes={chunk_bytes} is too small, expected at least 64")
        self.reader = _open_reader(reader_or_path)
        self._send = send
        self.chunk_bytes = int(chunk_bytes)
        self.window = max(1, int(window))
        self._transfers: dict[str | int, _Transfer] = {}
        self._selected = np.zeros(0, dtype=np.int64)
        self._select_callbacks: list[Callable[[np.ndarray], None]] = []
        self._event_callbacks: list[Callable[[str, dict], None]] = []
        self.events: list[tuple[str, dict]] = []

    # ----------------------------------------------------------------- selection
    @property
    def selected(self) -> np.ndarray:
        """Indices (int64) of the cells selected in the viewer, sorted."""
        return self._selected.copy()

    def on_select(self, callback: Callable[[np.ndarray], None]) -> Callable[[np.ndarray], None]:
        """Call ``callback(indices)`` after each selection made in the viewer; returns it (decorator-friendly)."""
        if not callable(callback):
            raise TypeError(f"on_select expects a callable, got {type(callback).__name__}")
        self._select_callbacks.append(callback)
        return callback

    def on_event(self, callback: Callable[[str, dict], None]) -> None:
        """Call ``callback(name, payload)`` for front-end events (timings, errors)."""
        self._event_callbacks.append(callback)

    # ------------------------------------------------------------------ commands
    def command(self, command: str, args: dict | None = None, buffers: list | None = None) -> None:
        """Send a command to the front-end (``highlight``, ``reset_view``, ``set_color_field``, ``set_dimension``)."""
        self._send({"type": MESSAGE_PREFIX + "command", "command": command, "args": args or {}}, buffers or [])

    def highlight(self, indices: Sequence[int] | np.ndarray) -> None:
        """Highlight cells by index (an empty list clears the highlight)."""
        idx = np.asarray(indices if indices is not None else [], dtype=np.int64).ravel()
        n = int(self.reader.n_cells)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"highlight: indices must be in [0, {n}), got range [{idx.min()}, {idx.max()}]")
        data = np.unique(idx).astype(np.uint32)
        self.command("highlight", {"n": int(data.size)}, [data.tobytes()])

    def reset_view(self) -> None:
        """Reset the camera of the front-end."""
        self.command("reset_view")

    # ------------------------------------------------------------------ messages
    def handle(self, content: dict, buffers: list | None = None) -> bool:
        """Handle one custom message; return True if it was a ``viewer:`` message.

        Never raises: a malformed message (wrong types, a selection buffer that is
        not whole uint32 values, indices beyond the cell count...) gets a
        ``viewer:error`` reply and is otherwise ignored; the kernel never sees an
        exception from the front-end's messages.

        Parameters
        ----------
        content
            The message content (a dict with ``type``).
        buffers
            Binary buffers of the message.
        """
        kind = content.get("type") if isinstance(content, dict) else None
        if not isinstance(kind, str) or not kind.startswith(MESSAGE_PREFIX):
            return False
        kind = kind[len(MESSAGE_PREFIX):]
        try:
            self._drop_stale()
            if kind == "request":
                self._on_request(content)
            elif kind == "ack":
                self._on_ack(content)
            elif kind == "select":
                self._on_select(content, buffers or [])
            elif kind == "event":
                self._on_event(content)
            else:
                logger.debug("ignoring viewer message of type %r", kind)
        except _BadMessage as exc:
            logger.warning("malformed viewer message %r: %s", kind, exc)
            self._error(exc.rid, f"malformed viewer:{kind} message: {exc}")
        except Exception as exc:  # noqa: BLE001 - the comm handler must never raise
            logger.exception("viewer message %r failed", kind)
            self._error(None, f"viewer:{kind} failed: {type(exc).__name__}: {exc}")
        return True

    def _error(self, rid: Any, message: str) -> None:
        self._send({"type": MESSAGE_PREFIX + "error", "id": rid, "message": message}, [])

    def _on_event(self, content: dict) -> None:
        name, payload = content.get("name"), content.get("payload")
        if not isinstance(name, str):
            raise _BadMessage(f"event name {name!r:.80} is a {type(name).__name__}, expected a string")
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise _BadMessage(f"event {name!r:.80} payload is a {type(payload).__name__}, expected an object")
        self.events.append((name, payload))
        del self.events[:-MAX_EVENTS]  # bounded: a front-end cannot grow it without end
        for cb in list(self._event_callbacks):
            try:
                cb(name, payload)
            except Exception:  # a user's callback must not break the comm handler
                logger.exception("on_event callback failed")

    def _on_request(self, content: dict) -> None:
        rid = _request_id(content.get("id"))
        kind, args = content.get("kind"), content.get("args")
        if not isinstance(kind, str):
            raise _BadMessage(f"request kind {kind!r:.80} is a {type(kind).__name__}, expected a string", rid)
        if args is not None and not isinstance(args, dict):
            raise _BadMessage(f"request args are a {type(args).__name__}, expected an object", rid)
        if rid in self._transfers:
            raise _BadMessage(f"request id {rid!r} is already being answered; expected a new id", rid)
        try:
            header, blob = build_response(self.reader, kind, args or {})
        except Exception as exc:  # any failure must reach the browser as a visible error
            logger.warning("viewer request %r failed: %s", kind, exc)
            self._error(rid, f"{type(exc).__name__}: {exc}")
            return
        n_chunks = -(-len(blob) // self.chunk_bytes)
        transfer = _Transfer(rid, header, memoryview(blob), self.chunk_bytes, n_chunks)
        if n_chunks == 0:
            self._send_chunk(transfer, None)
            return
        self._make_room(len(blob))
        self._transfers[rid] = transfer
        while transfer.next_seq < min(self.window, n_chunks):
            self._send_next(transfer)

    def _make_room(self, nbytes: int) -> None:
        """Drop the least recently active transfers until a new one of ``nbytes`` fits the bounds."""
        held = sum(len(t.blob) for t in self._transfers.values())
        by_age = sorted(self._transfers.values(), key=lambda t: t.last_activity)
        while by_age and (len(self._transfers) >= MAX_PENDING_TRANSFERS or held + nbytes > MAX_PENDING_BYTES):
            oldest = by_age.pop(0)
            logger.warning("dropping viewer transfer %r: %d responses (%d bytes) wait for acknowledgements, "
                           "at most %d (%d bytes) are kept", oldest.id, len(self._transfers), held,
                           MAX_PENDING_TRANSFERS, MAX_PENDING_BYTES)
            held -= len(oldest.blob)
            del self._transfers[oldest.id]

    def _drop_stale(self) -> None:
        now = time.monotonic()
        for rid in [rid for rid, t in self._transfers.items() if now - t.last_activity > STALE_SECONDS]:
            logger.warning("dropping viewer transfer %r: no acknowledgement for %.0f s", rid, STALE_SECONDS)
            del self._transfers[rid]

    def _send_chunk(self, t: _Transfer, seq: int | None) -> None:
        content: dict[str, Any] = {
            "type": MESSAGE_PREFIX + "response",
            "id": t.id,
            "seq": seq if seq is not None else 0,
            "n_chunks": t.n_chunks,
            "nbytes": len(t.blob),
            "chunk_bytes": t.chunk_bytes,
        }
        if not seq:
            content["header"] = t.header  # only the first chunk carries the header
        bufs = [] if seq is None else [t.blob[seq * t.chunk_bytes:(seq + 1) * t.chunk_bytes]]
        self._send(content, bufs)

    def _send_next(self, t: _Transfer) -> None:
        self._send_chunk(t, t.next_seq)
        t.next_seq += 1

    def _on_ack(self, content: dict) -> None:
        rid = _request_id(content.get("id"))
        t = self._transfers.get(rid)
        if t is None:
            return  # a late ack of a finished or dropped transfer
        seq = content.get("seq")
        if not _is_int(seq) or not 0 <= seq < t.next_seq:
            raise _BadMessage(f"ack seq {seq!r:.40} is not a chunk sent so far (0 to {t.next_seq - 1})", rid)
        t.acked.add(int(seq))
        t.last_activity = time.monotonic()
        if len(t.acked) >= t.n_chunks:
            del self._transfers[t.id]
            return
        while t.next_seq < t.n_chunks and t.next_seq - len(t.acked) < self.window:
            self._send_next(t)

    def _on_select(self, content: dict, buffers: list) -> None:
        n_cells = int(self.reader.n_cells)
        if buffers:
            try:
                raw = memoryview(buffers[0]).cast("B")
            except TypeError:
                raise _BadMessage(f"selection buffer is a {type(buffers[0]).__name__}, expected bytes") from None
            if raw.nbytes % 4:
                raise _BadMessage(f"selection buffer has {raw.nbytes} bytes, expected a multiple of 4 (uint32 indices)")
            idx = np.frombuffer(raw, dtype="<u4").astype(np.int64)
        else:
            idx = np.zeros(0, dtype=np.int64)
        n = content.get("n", idx.size)
        if not _is_int(n) or n != idx.size:
            raise _BadMessage(f"selection says n={n!r:.40} but its buffer holds {idx.size} indices")
        if idx.size and int(idx.max()) >= n_cells:
            raise _BadMessage(
                f"selection index {int(idx.max())} is out of range; expected indices below n_cells={n_cells}"
            )
        self._selected = np.unique(idx)
        for cb in list(self._select_callbacks):
            try:
                cb(self.selected)
            except Exception:  # a user's callback must not break the comm handler
                logger.exception("on_select callback failed")

    def close(self) -> None:
        """Drop pending transfers and callbacks (the host widget is closing)."""
        self._transfers.clear()
        self._select_callbacks.clear()
        self._event_callbacks.clear()

    @property
    def pending_transfers(self) -> int:
        """Responses still waiting for acknowledgements."""
        return len(self._transfers)
