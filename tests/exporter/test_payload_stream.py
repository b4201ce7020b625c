"""Streamed payloads (exporter/payload_stream.py) and the graph written block by block: today's bytes."""

from __future__ import annotations

import gzip
import zlib

import numpy as np
import pandas as pd
import pytest
from export_helpers import CREATED
from scipy import sparse

from cellucid_nb.exporter import graph_blocks
from cellucid_nb.exporter.graph import extract_edges, index_dtype_for
from cellucid_nb.exporter.payload_stream import PayloadStream
from cellucid_nb.exporter.prepare import prepare
from cellucid_nb.format import codecs


def _write_array_bytes(raw: bytes, level: int | None) -> bytes:
    """What ExportRunner.write_array stores for ``raw`` (its two branches, written out independently)."""
    if not level:
        return raw
    if len(raw) <= codecs.CHUNK_BYTES:
        return codecs.gzip_bytes(raw, level)
    return codecs.gzip_bytes(raw, level, strategy=codecs.dense_strategy(raw, level))


def _payloads() -> dict[str, bytes]:
    rng = np.random.default_rng(3)
    big = codecs.CHUNK_BYTES
    return {
        "empty": b"",
        "small": rng.integers(0, 50, size=1000, dtype=np.uint32).tobytes(),
        "one_chunk": rng.random(big // 8).tobytes(),  # exactly CHUNK_BYTES: write_array's one-call branch
        "one_more": rng.integers(0, 3, size=big + 1, dtype=np.uint8).tobytes(),
        # sorted indices (Huffman chosen) and repetitive bytes (default strategy chosen), 3.6 chunks
        "sorted": np.sort(rng.integers(0, 1 << 20, size=int(0.9 * big), dtype=np.uint32)).tobytes(),
        "repetitive": np.tile(np.arange(100, dtype=np.float64), int(3.6 * big) // 800).tobytes(),
    }


@pytest.mark.parametrize("level", [None, 1, 6, 9])
@pytest.mark.parametrize("name", list(_payloads()))
def test_stream_equals_write_array(tmp_path, name, level):
    raw = _payloads()[name]
    rng = np.random.default_rng(len(raw))
    cuts = np.sort(rng.integers(0, len(raw) + 1, size=7))  # pieces of random sizes, empty ones included
    stream = PayloadStream(tmp_path, "p.bin" + codecs.payload_suffix(level), level)
    for piece in np.split(np.frombuffer(raw, dtype=np.uint8), cuts):
        stream.append(piece)
    n, checksum = stream.finish(map_fn=map if name == "sorted" else None)
    written = (tmp_path / stream.name).read_bytes()
    expected = _write_array_bytes(raw, level)
    assert written == expected
    assert n == len(expected) and checksum == f"{zlib.crc32(expected):08x}"
    if level:
        assert gzip.decompress(written) == raw
    assert sorted(p.name for p in tmp_path.iterdir()) == [stream.name]  # the spool is gone


def test_stream_refuses_pieces_after_finish(tmp_path):
    stream = PayloadStream(tmp_path, "p.bin.gz", 6)
    stream.append(np.arange(10, dtype="<u4"))
    stream.finish()
    with pytest.raises(RuntimeError, match="already finished"):
        stream.append(np.arange(3, dtype="<u4"))


@pytest.mark.parametrize("compression", [None, 6])
def test_graph_streamed_by_blocks_equals_whole_arrays(tmp_path, monkeypatch, compression):
    """An export whose edge payloads span several deflate chunks, written by blocks of ~2k entries."""
    monkeypatch.setattr(graph_blocks, "BLOCK_ENTRIES", 20_000)
    n = 30_000
    rng = np.random.default_rng(5)
    rows = np.repeat(np.arange(n), 16)
    cols = rng.integers(0, n, size=rows.size)
    knn = sparse.csr_matrix((rng.random(rows.size).astype(np.float32), (rows, cols)), shape=(n, n))
    out = tmp_path / "out"
    prepare(X_umap_2d=rng.normal(size=(n, 2)), latent_space=rng.normal(size=(n, 3)), connectivities=knn,
            obs=pd.DataFrame({"score": rng.normal(size=n)}), compression=compression, created_at=CREATED,
            out_dir=out)
    src, dst, weights, most = extract_edges(knn)
    assert weights.nbytes > 3 * codecs.CHUNK_BYTES
    suffix = codecs.payload_suffix(compression)
    index = index_dtype_for(n)  # uint16 below 65,537 cells
    for name, array in (("edges.src.bin", src.astype(index)), ("edges.dst.bin", dst.astype(index)),
                        ("edges.weights.f64.bin", weights.astype("<f8"))):
        assert (out / "connectivity" / (name + suffix)).read_bytes() == _write_array_bytes(array.tobytes(), compression)
    manifest = (out / "connectivity_manifest.json").read_text()
    assert f'"n_edges": {src.size}' in manifest and f'"max_neighbors": {most}' in manifest
    assert not [p for p in out.rglob(".spool-*")]
