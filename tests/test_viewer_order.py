"""The viewer's draw order and the permuted, chunked protocol that streams large exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellucid_nb.format.reader import read_export
from cellucid_nb.viewer_order import ORDER_ROUNDS, ORDER_SEED, draw_order_slice, draw_positions, order_spec
from cellucid_nb.viewer_protocol import ViewerBackend, build_meta, build_response

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cellucid_0_0_9"

# Pinned here and in js/tests/viewer_progressive.test.js: both languages must agree.
PINNED = {1000: [123, 941, 938, 8, 667, 362, 506, 816],
          10_000_000: [6718271, 3302392, 571169, 7605192, 1215980, 5831299, 4101057, 6051642]}


@pytest.fixture(scope="module")
def reader():
    return read_export(FIXTURES / "gzip_q8")


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 17, 64, 65, 1000, 65_537, 300_001])
def test_draw_order_is_a_permutation_and_its_inverse_undoes_it(n):
    order = draw_order_slice(n, 0, n)
    assert order.dtype == np.uint32
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    np.testing.assert_array_equal(draw_positions(n, order), np.arange(n))


def test_slices_are_pieces_of_the_whole_order():
    n = 10_007
    whole = draw_order_slice(n, 0, n)
    pieces = np.concatenate([draw_order_slice(n, a, min(n, a + 999)) for a in range(0, n, 999)])
    np.testing.assert_array_equal(pieces, whole)


@pytest.mark.parametrize("n", sorted(PINNED))
def test_pinned_values_shared_with_the_front_end(n):
    assert draw_order_slice(n, 0, 8).tolist() == PINNED[n]
    assert order_spec() == {"kind": "feistel-lowbias32", "seed": ORDER_SEED, "rounds": ORDER_ROUNDS}


def test_a_prefix_is_a_uniform_subsample():
    """The first 5 % of 10^6 cells fall evenly into 20 index bins (chi-square, 19 dof)."""
    n, k = 1_000_000, 50_000
    prefix = draw_order_slice(n, 0, k).astype(np.int64)
    counts = np.bincount(prefix * 20 // n, minlength=20)
    chi2 = float(((counts - k / 20) ** 2 / (k / 20)).sum())
    assert chi2 < 43.8, f"chi-square {chi2:.1f} for bins {counts.tolist()} (p < 0.001 at 43.8)"
    # no short-range structure either: consecutive positions are not neighbouring cells
    gaps = np.abs(np.diff(prefix))
    assert np.median(gaps) > n / 10


@pytest.mark.parametrize("bad", [(5, 0, 6), (5, 3, 2), (5, -1, 2)])
def test_slices_outside_the_cells_are_refused(bad):
    with pytest.raises(ValueError, match="not within"):
        draw_order_slice(*bad)
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        draw_positions(5, np.array([0, 5]))


def test_meta_says_how_to_recompute_the_order(reader):
    assert build_meta(reader)["order"] == order_spec()


def _array(header, blob, name):
    spec = next(a for a in header["arrays"] if a["name"] == name)
    return np.frombuffer(blob, dtype=spec["dtype"], count=int(np.prod(spec["shape"])), offset=spec["offset"]).reshape(spec["shape"])


def test_permuted_chunks_over_the_comm_rebuild_every_field_in_draw_order(reader):
    """Points, obs, gene and vector chunks of a partition of the positions, sent in acked pieces."""
    n = int(reader.n_cells)
    order = draw_order_slice(n, 0, n)
    rec = []
    backend = ViewerBackend(reader, lambda c, b: rec.append((c, [bytes(x) for x in b])), chunk_bytes=64, window=1)
    rid = 0
    asked = [("points", {"dim": 2}, "points", reader.points(2)),
             ("obs", {"key": "cell type"}, "values", reader.obs_raw("cell type")),
             ("obs", {"key": "score"}, "values", reader.obs_raw("score")),
             ("gene", {"gene": reader.genes[1]}, "values", reader.gene_raw(reader.genes[1])),
             ("vectors", {"field": "velocity_umap", "dim": 3}, "vectors", reader.vector_field("velocity_umap", 3))]
    for kind, args, name, full in asked:
        parts = []
        for start, stop in [(0, 7), (7, 30), (30, n)]:  # first frame, then the rest
            rid += 1
            rec.clear()
            backend.handle({"type": "viewer:request", "id": rid, "kind": kind,
                            "args": {**args, "order": "permuted", "start": start, "stop": stop}}, [])
            seq = 0
            while backend.pending_transfers:
                backend.handle({"type": "viewer:ack", "id": rid, "seq": seq}, [])
                seq += 1
            chunks = sorted((c["seq"], c, b) for c, b in rec if c["type"] == "viewer:response")
            header = chunks[0][1]["header"]
            assert (header["order"], header["start"], header["stop"]) == ("permuted", start, stop)
            blob = b"".join(b[0] for _, _, b in chunks)
            assert len(blob) == chunks[0][1]["nbytes"]
            parts.append(_array(header, blob, name))
        got = np.concatenate(parts)
        np.testing.assert_array_equal(got, np.asarray(full)[order])
        # and back: the value drawn at position draw_positions(i) is cell i's
        np.testing.assert_array_equal(got[draw_positions(n, np.arange(n))], np.asarray(full))


def test_permuted_edges_are_pairs_of_draw_positions(reader):
    n = int(reader.n_cells)
    header, blob = build_response(reader, "edges", {"order": "permuted"})
    pairs = _array(header, blob, "pairs")
    src, dst, _ = reader.edges()
    order = draw_order_slice(n, 0, n)
    assert header["order"] == "permuted"
    np.testing.assert_array_equal(order[pairs[0::2]], src)
    np.testing.assert_array_equal(order[pairs[1::2]], dst)


def test_http_style_string_arguments_are_accepted(reader):
    header, blob = build_response(reader, "points", {"dim": "3", "order": "permuted", "start": "5", "stop": "9"})
    np.testing.assert_array_equal(_array(header, blob, "points"), reader.points(3)[draw_order_slice(reader.n_cells, 5, 9)])


@pytest.mark.parametrize(
    "args,expected",
    [
        ({"order": "shuffled"}, "order='shuffled' is not known"),
        ({"order": "permuted", "start": 10, "stop": 5}, "start=10, stop=5 is not within"),
        ({"order": "permuted", "start": 0, "stop": 41}, "n_cells=40"),
        ({"order": "permuted", "start": "x"}, "start='x' is not an integer"),
    ],
)
def test_bad_slices_answer_with_a_readable_error(reader, args, expected):
    rec = []
    backend = ViewerBackend(reader, lambda c, b: rec.append(c))
    assert backend.handle({"type": "viewer:request", "id": "q", "kind": "points", "args": {"dim": 2, **args}}, [])
    (msg,) = rec
    assert msg["type"] == "viewer:error" and msg["id"] == "q" and expected in msg["message"], msg
    assert backend.pending_transfers == 0
