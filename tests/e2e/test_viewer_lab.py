"""The Viewer widget inside JupyterLab: show() draws, and a mouse selection reaches Python."""

from __future__ import annotations

import numpy as np

from .conftest import (
    ARTIFACTS,
    KNOWN_COLORS,
    canvas_pixels,
    cell_output_text,
    color_mask,
    make_known_export,
    non_background,
    run_notebook_in_lab,
    wait_kernel_idle,
    write_notebook,
)


def test_show_draws_and_box_selection_reaches_python(page, jupyter_lab):
    make_known_export(jupyter_lab.root / "known")
    nb = write_notebook(
        jupyter_lab.root / "viewer.ipynb",
        [
            "import cellucid_nb\nv = cellucid_nb.show('known', dimension=2, height=420)\nv",
            "print('SELECTED', len(v.selected), int(v.selected.max()) if len(v.selected) else -1)",
        ],
    )
    run_notebook_in_lab(page, jupyter_lab, nb)
    try:
        page.wait_for_function(
            "() => [...(window.__cellucidViewers || [])].some((c) => c.stats.timings.first_frame)", timeout=60_000
        )
    except Exception as err:
        page.screenshot(path=str(ARTIFACTS / "lab_viewer_failed.png"))
        raise AssertionError(
            f"no frame drawn; console errors: {page.console_errors}; lab log: {jupyter_lab.log()[-1500:]}"
        ) from err
    page.wait_for_timeout(300)
    px = canvas_pixels(page, name="lab_viewer_canvas")
    red, blue = color_mask(px, KNOWN_COLORS["group"][0]), color_mask(px, KNOWN_COLORS["group"][1])
    assert red.sum() > 300 and blue.sum() > 300, (red.sum(), blue.sum())
    assert "SELECTED 0 -1" in cell_output_text(page, 1)

    # box-select the left half of the plot with the mouse
    page.click(".cnb-tools button[data-value='box']")
    box = page.locator(".cnb-canvas").bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + 4, y0 + 4)
    page.mouse.down()
    page.mouse.move(x0 + w * 0.3, y0 + h * 0.5, steps=5)
    page.mouse.move(x0 + w * 0.49, y0 + h - 4, steps=5)
    page.mouse.up()
    page.wait_for_timeout(300)
    page.locator(".jp-Notebook .jp-CodeCell").nth(1).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_timeout(300)
    wait_kernel_idle(page)
    page.wait_for_function(
        "() => /SELECTED \\d+/.test(document.querySelectorAll('.jp-Notebook .jp-CodeCell')[1].innerText)"
    )
    text = cell_output_text(page, 1)
    assert "SELECTED 1000 999" in text, text  # the "left" group is cells 0..999
    page.screenshot(path=str(ARTIFACTS / "lab_viewer.png"))
    selected = canvas_pixels(page, name="lab_viewer_selected")
    assert np.abs(selected.astype(int) - px).sum() > 0, "selection changes the picture"

    # Python drives the view: colour field trait and a highlight command
    page.locator(".jp-Notebook .jp-CodeCell").nth(2).locator(".jp-InputArea-editor").click()
    page.keyboard.type("v.color_field = 'obs:score'; v.highlight([])")
    page.keyboard.press("Shift+Enter")
    wait_kernel_idle(page)
    page.wait_for_function(
        "() => [...window.__cellucidViewers].some((c) => c.state.colorField === 'obs:score' && !c.state.flags)",
        timeout=30_000,
    )
    page.wait_for_timeout(300)
    score = canvas_pixels(page, name="lab_viewer_score")
    assert color_mask(score, KNOWN_COLORS["group"][0]).sum() < 50, "no red left once coloured by score"


def test_show_keeps_the_colour_field_it_was_given(page, jupyter_lab):
    """show(path, color_field=...) colours by that field from the first frame, and Python keeps it."""
    make_known_export(jupyter_lab.root / "known")
    nb = write_notebook(
        jupyter_lab.root / "field.ipynb",
        [
            "import cellucid_nb\nv = cellucid_nb.show('known', color_field='obs:score', height=420)\nv",
            "print('FIELD', v.color_field)",
        ],
    )
    run_notebook_in_lab(page, jupyter_lab, nb)
    page.wait_for_function(
        "() => [...(window.__cellucidViewers || [])].some((c) => c.stats.timings.first_frame)", timeout=60_000
    )
    assert page.evaluate("() => [...window.__cellucidViewers].map((c) => c.state.colorField)") == ["obs:score"]
    px = canvas_pixels(page, name="lab_viewer_given_field")
    # coloured by the continuous score, not by the first categorical ("group": red / blue)
    assert color_mask(px, KNOWN_COLORS["group"][0]).sum() < 50
    assert non_background(px).sum() > 300
    # run the second cell again now that the front-end has started: the trait was not reset
    page.locator(".jp-Notebook .jp-CodeCell").nth(1).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    wait_kernel_idle(page)
    assert "FIELD obs:score" in cell_output_text(page, 1)
