"""The Viewer widget's density-opacity option (``opacity``: 0 = automatic, else fixed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import traitlets

from cellucid_nb.widgets.viewer import Viewer, show

EXPORT = Path(__file__).resolve().parent / "fixtures" / "cellucid_0_0_9" / "gzip_q8"


def test_opacity_defaults_to_automatic_and_is_synced():
    v = show(EXPORT)
    assert v.opacity == 0.0
    assert v.trait_metadata("opacity", "sync") is True
    v.opacity = 0.35
    assert Viewer(EXPORT, opacity=0.5).opacity == 0.5
    v.close()


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_opacity_outside_0_1_is_refused(bad):
    with pytest.raises(traitlets.TraitError, match="opacity"):
        Viewer(EXPORT, opacity=bad)


def test_misspelt_opacity_suggests_the_option():
    with pytest.raises(TypeError, match="did you mean 'opacity'"):
        Viewer(EXPORT, opacitty=0.3)
