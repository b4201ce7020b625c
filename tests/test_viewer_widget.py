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


@pytest.fixture(scope="module")
def pbmc_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's export: scanpy's pbmc68k_reduced with the default plan (a 2D UMAP only)."""
    from pbmc_data import pbmc68k_reduced

    from cellucid_nb.adata.exporting import export

    return export(pbmc68k_reduced(), out_dir=tmp_path_factory.mktemp("viewer") / "pbmc").path


def test_a_missing_dimension_is_refused_with_the_available_ones(pbmc_export):
    # The README's pbmc export has only a 2D UMAP: `v.dimension = 3` must say so and what to do.
    from cellucid_nb.widgets.viewer import DimensionError

    v = show(pbmc_export, color_field="obs:louvain")
    try:
        with pytest.raises(DimensionError, match=r"no 3D embedding; its dimensions are \[2\] \(2D\)") as info:
            v.dimension = 3
        assert isinstance(info.value, ValueError) and "n_components=3" in str(info.value)
        assert v.dimension == 2
        with pytest.raises(ValueError, match=r"dimensions are \[2\]"):
            show(pbmc_export, dimension=3)
        # what the README does instead works on the same export
        v.color_field = "gene:CD3D"
        v.highlight([0, 1, 2])
        v.reset_view()
    finally:
        v.close()


@pytest.mark.parametrize("field", ["obs:louvain", "gene:CD3D"])
def test_show_keeps_the_colour_field_it_was_given(pbmc_export, field):
    # Python side of "show(path, color_field=...) ignored": the widget starts with that field
    # in its state (the front-end receives it before its first frame) and never replaces it.
    v = show(pbmc_export, color_field=field)
    try:
        assert v.color_field == field and v.get_state()["color_field"] == field
        v.backend.handle({"type": "viewer:request", "id": 1, "kind": "meta", "args": {}}, [])
        assert v.color_field == field
    finally:
        v.close()
