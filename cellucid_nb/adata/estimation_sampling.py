"""Helpers of :mod:`cellucid_nb.adata.estimation`: the recording runner, the sample, JSON lengths.

Nothing here writes files. The recording runner stands in for the exporter's
``ExportRunner`` so the exporter's own writers can run on a sample of the data.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
import time
from concurrent.futures import Future
from typing import Any

import numpy as np
from scipy import sparse

from cellucid_nb.format import codecs
from cellucid_nb.format.checksums import CHECKSUM_KEY, payload_checksum
from cellucid_nb.format.naming import safe_name

#: Datasets with at most this many cells are sampled whole.
FULL_ROWS = 50_000
#: Contiguous runs of cells and cells per run when sampling.
ROW_SEGMENTS = 16
SEGMENT_ROWS = 1024
#: gzip header + trailer bytes (fixed per file).
GZIP_OVERHEAD = 18


class _Reporter:
    """Progress sink that ignores everything."""

    def poll(self, force: bool = False) -> None:
        pass

    def advance(self, items: int = 0, n_bytes: int = 0) -> None:
        pass


class RecordingRunner:
    """Stands in for ``ExportRunner``: encodes and compresses in memory, writes nothing.

    It implements the part of ``cellucid_nb.exporter.runner.ExportRunner`` that the
    writers call (``mkdir check cancelled submit drain payload_name store
    write_array write_json suffix compression reporter spawn wait fail``); the estimate tests
    run the writers through it, so a change of that interface shows up there.
    """

    def __init__(self, compression: int | None, cell_scale: float = 1.0) -> None:
        self.compression = compression
        # full / sampled cells: the exporter picks a strategy for large dense payloads,
        # so the recorder must know how large each sampled payload really is.
        self.cell_scale = cell_scale
        self.suffix = codecs.payload_suffix(compression)
        self.reporter = _Reporter()
        self.files: dict[str, tuple[int, int]] = {}  # rel -> (raw bytes, stored bytes)
        self.json_docs: dict[str, Any] = {}
        self._error: BaseException | None = None  # from the gene feeder thread

    def mkdir(self, rel: str) -> None:
        pass

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def cancelled(self) -> bool:
        return False

    def submit(self, fn: Any, *args: Any) -> Future:
        return self.spawn(fn, *args)

    def spawn(self, fn: Any, *args: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def wait(self, futures: list[Future]) -> None:
        self.check()

    def fail(self, err: BaseException) -> None:
        self._error = err

    def drain(self) -> None:
        pass

    def payload_name(self, rel: str) -> str:
        return rel + self.suffix

    def store(
        self, rel: str, data: np.ndarray | bytes, rle: bool = False, items: int = 0, on_written: Any = None
    ) -> None:
        raw = np.ascontiguousarray(data).data.cast("B") if isinstance(data, np.ndarray) else memoryview(data)
        if not self.compression:
            stored = raw.nbytes
        else:
            full = int(raw.nbytes * self.cell_scale)
            strategy = None if rle else codecs.dense_strategy(raw, self.compression, full_nbytes=full)
            stored = len(codecs.gzip_bytes(raw, self.compression, rle=rle, strategy=strategy))
        self.files[rel] = (raw.nbytes, stored)
        if on_written is not None:
            on_written()

    def write_array(self, rel: str, data: np.ndarray, rle: bool = False, items: int = 1) -> str:
        name = self.payload_name(rel)
        self.store(name, data, rle, items)
        return name

    def write_json(self, rel: str, obj: Any, indent: int | None = None, items: int = 1) -> None:
        self.json_docs[rel] = (obj, indent)


def json_len(obj: Any, indent: int | None = None) -> int:
    """UTF-8 length of ``obj`` as the exporter's ``write_json`` encodes it."""
    return len(json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False).encode("utf-8"))


def row_sample(n: int) -> np.ndarray:
    """Row indices of the sample: all rows, or ROW_SEGMENTS contiguous runs spread over the data."""
    if n <= FULL_ROWS:
        return np.arange(n, dtype=np.int64)
    length = max(1, min(SEGMENT_ROWS, n // (2 * ROW_SEGMENTS)))  # at most half of the cells
    starts = np.linspace(0, n - length, ROW_SEGMENTS).astype(np.int64)
    return (starts[:, None] + np.arange(length)[None, :]).ravel()


def _segments(rows: np.ndarray) -> list[tuple[int, int]]:
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    bounds = np.concatenate([[0], breaks, [rows.shape[0]]])
    return [(int(rows[a]), int(rows[b - 1]) + 1) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def take_rows(array: Any, rows: np.ndarray) -> Any:
    """Rows ``rows`` (increasing, unique) of a per-cell array: sparse stays sparse, the rest is a numpy array.

    In-memory arrays are indexed at once; anything else (an ``h5py.Dataset`` or zarr
    array left in its file, a Dask array, a dataframe) is read by the sample's
    contiguous runs, so only the sampled rows are read (h5py's fancy indexing is slow
    on long index lists).
    """
    if isinstance(array, np.ndarray) or sparse.issparse(array):
        return array[rows]
    def read(a: int, b: int) -> Any:
        part = array[a:b]
        return part.compute(scheduler="synchronous") if hasattr(part, "compute") else part

    pieces = [read(a, b) for a, b in _segments(rows)] if rows.shape[0] else [read(0, 0)]
    if sparse.issparse(pieces[0]):
        return sparse.vstack(pieces, format="csr")
    return np.concatenate([np.asarray(p) for p in pieces])


def sample_density(matrix: Any, rows: np.ndarray, n_genes: int) -> tuple[np.ndarray, Any]:
    """Stored-value density per gene over the sampled rows, and the sampled rows themselves.

    In-memory CSR is read through views of ``indices`` (no copy of the rows).
    """
    segs = _segments(rows)
    if sparse.issparse(matrix) and matrix.format == "csr":
        counts = np.zeros(n_genes, dtype=np.int64)
        for a, b in segs:
            lo, hi = matrix.indptr[a], matrix.indptr[b]
            counts += np.bincount(matrix.indices[lo:hi], minlength=n_genes)
        return counts / max(rows.shape[0], 1), None
    pieces = []
    for a, b in segs:
        part = matrix[a:b]
        if hasattr(part, "compute"):  # a Dask array (read_lazy, read_elem_lazy): its chunks may be sparse
            part = part.compute(scheduler="synchronous")
        pieces.append(sparse.csr_matrix(part) if sparse.issparse(part) else np.asarray(part))
    # CSR or dense: scipy's sparse types are not visible to the type checker
    block: Any = sparse.vstack(pieces, format="csr") if sparse.issparse(pieces[0]) else np.concatenate(pieces)
    if sparse.issparse(block):
        counts = np.bincount(block.indices, minlength=n_genes)
    else:
        counts = np.count_nonzero(block, axis=0)
    return counts / max(rows.shape[0], 1), block


def sample_columns(matrix: Any, rows: np.ndarray, cols: np.ndarray, rows_block: Any) -> Any:
    """``matrix[rows][:, cols]`` as CSR (sparse source) or dense float32, read cheaply."""
    if rows_block is not None:
        sub = rows_block[:, cols]
        return sparse.csr_matrix(sub) if sparse.issparse(sub) else np.asarray(sub, dtype=np.float32)
    # In-memory CSR: gather the sampled rows' entries of the sampled columns through index views.
    col_map = np.full(matrix.shape[1], -1, dtype=np.int64)
    col_map[cols] = np.arange(cols.shape[0])
    data_parts, col_parts, row_parts = [], [], []
    offset = 0
    for a, b in _segments(rows):
        lo, hi = matrix.indptr[a], matrix.indptr[b]
        mapped = col_map[matrix.indices[lo:hi]]
        keep = mapped >= 0
        local_rows = np.repeat(np.arange(b - a), np.diff(matrix.indptr[a : b + 1]))
        data_parts.append(matrix.data[lo:hi][keep])
        col_parts.append(mapped[keep])
        row_parts.append(local_rows[keep] + offset)
        offset += b - a
    return sparse.csr_matrix(
        (np.concatenate(data_parts), (np.concatenate(row_parts), np.concatenate(col_parts))),
        shape=(rows.shape[0], cols.shape[0]),
        dtype=np.float32,
    )


def pick_genes(density: np.ndarray, k: int) -> np.ndarray:
    """Positions of ``k`` genes at evenly spaced quantiles of density (extremes included)."""
    order = np.argsort(density, kind="stable")
    picks = np.unique(np.round(np.linspace(0, density.shape[0] - 1, k)).astype(np.int64))
    return np.sort(order[picks])


def graph_estimate(matrix: Any, rows: np.ndarray, n: int, compression: int | None) -> tuple[int, int, bool]:
    """(bytes, n_edges, exact) of the three edge files, from sampled rows of a symmetric kNN matrix."""
    from cellucid_nb.exporter.graph import index_dtype_for

    if hasattr(matrix, "take_rows"):  # a BlockCSR (graph left in its file): only the sampled rows are read
        sub = matrix.take_rows(rows)
        stored = sub.data != 0
        on_diag = np.count_nonzero(sub.indices[stored] == np.repeat(rows, np.diff(sub.indptr))[stored])
        diag = int(round(on_diag * matrix.shape[0] / max(len(rows), 1)))  # scaled from the sample
        a = None
        nnz = matrix.nnz
    else:
        a = sparse.csr_matrix(matrix)
        diag = int(np.count_nonzero(a.diagonal()))
        nnz = int(a.nnz)
    n_edges = (nnz - diag) // 2  # scanpy's connectivities are symmetric
    idx = index_dtype_for(n).itemsize
    raw = n_edges * (2 * idx + 8)
    if not compression or n_edges == 0:
        return raw, n_edges, False
    if a is not None:
        sub = a[rows]
    r = np.repeat(rows, np.diff(sub.indptr))
    c = sub.indices.astype(np.int64)
    keep = c > r
    order = np.lexsort((c[keep], r[keep]))
    src, dst, w = r[keep][order], c[keep][order], sub.data[keep][order].astype("<f8") * 2
    m = max(src.shape[0], 1)
    dt = index_dtype_for(n)
    stored = 0.0
    for payload in (src.astype(dt), dst.astype(dt), w):
        # Same strategy choice as the exporter makes for the full edge file.
        full = n_edges * payload.itemsize
        strategy = codecs.dense_strategy(payload, compression, full_nbytes=full)
        size = len(codecs.gzip_bytes(payload, compression, strategy=strategy)) - GZIP_OVERHEAD
        stored += size * n_edges / m + GZIP_OVERHEAD
    return int(round(stored)), n_edges, False


def safe_names(names: list[str]) -> list[str]:
    """``safe_name`` of many names at once (vectorised through pandas)."""
    joined = "\n".join(map(str, names))
    if len(names) < 1000 or joined.count("\n") != len(names) - 1:
        return [safe_name(g) for g in names]
    # One regex pass over all names; "\n" (kept) separates them.
    replaced = re.sub(r"[^A-Za-z0-9._\n-]+", "_", joined).split("\n")
    return [x.strip("._") or "field" for x in replaced]


def sum_json_lengths(values: list[Any]) -> int:
    """Sum of ``len(json.dumps(v))`` in UTF-8 bytes over ``values``, with one C-encoder call."""
    if not values:
        return 0
    text = json.dumps(values, ensure_ascii=False).encode("utf-8")
    return len(text) - 2 - 2 * (len(values) - 1)


def sidecar_len(sidecar: dict[str, Any], files: dict[str, int]) -> int:
    """Length of the indented sidecar JSON with a ``files`` entry per file (checksum placeholders).

    The indented encoder is pure Python and slow on 30k files, so the length is
    derived from two tiny documents: each entry adds a constant plus its path and
    size lengths.
    """
    digest = payload_checksum(b"")  # fixed width
    one = dict(sidecar, files={"a": {"bytes": 1, CHECKSUM_KEY: digest}})
    two = dict(sidecar, files={"a": {"bytes": 1, CHECKSUM_KEY: digest}, "b": {"bytes": 1, CHECKSUM_KEY: digest}})
    len_one, len_two = json_len(one, indent=2), json_len(two, indent=2)
    per_entry = len_two - len_one - len('"b"') - len("1")  # constant part of one more entry
    if not files:
        return json_len(dict(sidecar, files={}), indent=2)
    first = len_one - (per_entry + len('"a"') + len("1"))  # document without entries, separators included
    rels = sorted(files)
    return first + per_entry * len(rels) + sum_json_lengths(rels) + sum_json_lengths([int(files[r]) for r in rels])


def stratified_rates(density: np.ndarray, sampled: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Give every gene the rate of the sampled gene nearest to it in density rank.

    Rank-based (not value-based) so that ties, e.g. dense matrices where every
    gene has density 1, still spread over all sampled genes.
    """
    order = np.argsort(density, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    sample_rank = rank[sampled]
    by_rank = np.argsort(sample_rank)
    sorted_ranks = sample_rank[by_rank]
    # Nearest sampled rank: midpoints between consecutive sampled ranks split the genes.
    mids = (sorted_ranks[1:] + sorted_ranks[:-1]) / 2
    which = np.searchsorted(mids, rank, side="right")
    return rates[by_rank][which]


def float_field_len(lo: float, hi: float) -> int:
    """Characters that ``, lo, hi`` add to a var manifest field entry."""
    return len(json.dumps(lo)) + len(json.dumps(hi)) + 4  # ", " twice


def full_var_fields(sample_fields: list, gene_names: list[str], bits: int | None, matrix: Any, cols: np.ndarray,
                     n: int, rows_all: bool, iter_column_blocks: Any, block_ranges: Any) -> int:
    """JSON length of the ``fields`` list for every gene (exact when the ranges are affordable)."""
    ids_len = sum_json_lengths(list(gene_names))
    count = len(gene_names)
    structure = 2 * count + 2 * max(count - 1, 0)  # [ ] per entry + ", " between (outer [ ] are in the base)
    if bits is None:
        return ids_len + structure
    if rows_all and (sparse.issparse(matrix) or isinstance(matrix, np.ndarray)):
        floats = 0
        for block in iter_column_blocks(matrix, cols):
            lo, hi = block_ranges(block, n)
            floats += sum(float_field_len(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True))
        return ids_len + structure + floats
    sample = [(float_field_len(f[1], f[2])) for f in sample_fields] or [40]
    return ids_len + structure + int(round(np.mean(sample) * count))


@functools.lru_cache(maxsize=1)
def machine_rates() -> tuple[float, float]:
    """Measure, once per process, this machine's ``(bytes/s, seconds/file)`` for storing payloads.

    Writes 48 files of 256 KB into a temporary folder the way the exporter's
    runner does (``os.open`` + ``os.write``, a checksum of each payload), then
    deletes them. Returns the checksum+write throughput and the per-file cost.
    """
    payload = np.random.default_rng(0).integers(0, 255, 256 * 1024, dtype=np.uint8).tobytes()
    n_files = 48
    with tempfile.TemporaryDirectory(prefix="cellucid-nb-calibrate-") as folder:
        start = time.perf_counter()
        for i in range(n_files):
            payload_checksum(payload)
            fd = os.open(os.path.join(folder, f"f{i}.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, payload)
            finally:
                os.close(fd)
        big = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(n_files):
            fd = os.open(os.path.join(folder, f"e{i}.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.close(fd)
        per_file = (time.perf_counter() - start) / n_files
    rate = n_files * len(payload) / max(big - per_file * n_files, 1e-6)
    return float(rate), float(per_file)
