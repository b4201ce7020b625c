"""The Viewer widget's Python side: options, validation, comm forwarding, selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import traitlets

from cellucid_nb.widgets.viewer import Viewer, show

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cellucid_0_0_9"
EXPORT = FIXTURES / "gzip_q8"


@pytest.fixture
def viewer():
    v = show(EXPORT)
    v.sent = []
    v.backend._send = lambda content, buffers: v.sent.append((content, buffers))
    yield v
    v.close()


def test_show_defaults_come_from_the_export(viewer):
    assert isinstance(viewer, Viewer)
    assert viewer.dimension == viewer.reader.default_dimension == 3
    assert viewer.color_field == ""
    # anywidget reads the bundled files: the front-end code is inline, nothing is fetched
    assert "msg:custom" in str(viewer._esm) and "export{" in str(viewer._esm)
    assert ".cnb-viewer" in str(viewer._css)


def test_options_are_validated_with_suggestions():
    with pytest.raises(TypeError, match="did you mean 'color_field'"):
        Viewer(EXPORT, colour_field="obs:score")
    with pytest.raises(ValueError, match="did you mean 'obs:cell type'"):
        Viewer(EXPORT, color_field="obs:cell_type")
    with pytest.raises(ValueError, match="dimension=4"):
        Viewer(EXPORT, dimension=4)
    v = Viewer(EXPORT, color_field="score", dimension=2, point_size=3, height=300)
    assert v.color_field == "obs:score" and v.dimension == 2 and v.height == 300
    v.color_field = "gene:CD3E"
    with pytest.raises(ValueError, match="gene 'CD3X'.*did you mean 'gene:CD3E'"):
        v.color_field = "gene:CD3X"
    with pytest.raises(traitlets.TraitError, match="dimension=5"):
        v.dimension = 5
    v.close()


def test_front_end_messages_are_answered_over_the_comm(viewer):
    viewer._on_front_msg(viewer, {"type": "viewer:request", "id": 1, "kind": "obs", "args": {"key": "score"}}, [])
    content, buffers = viewer.sent[-1]
    assert content["type"] == "viewer:response" and content["header"]["key"] == "score"
    np.testing.assert_array_equal(np.frombuffer(bytes(buffers[0]), dtype=np.uint8), viewer.reader.obs_raw("score"))


def test_selection_and_commands(viewer):
    got = []
    viewer.on_select(got.append)
    viewer._on_front_msg(viewer, {"type": "viewer:select", "n": 2}, [np.array([7, 3], dtype="<u4").tobytes()])
    np.testing.assert_array_equal(viewer.selected, [3, 7])
    np.testing.assert_array_equal(got[0], [3, 7])
    viewer.highlight(np.array([1, 2]))
    assert viewer.sent[-1][0]["command"] == "highlight"
    viewer.reset_view()
    assert viewer.sent[-1][0]["command"] == "reset_view"
    viewer._on_front_msg(viewer, {"type": "viewer:event", "name": "first_frame", "payload": {"ms": 12.5}}, [])
    assert viewer.timings["first_frame"]["ms"] == 12.5
