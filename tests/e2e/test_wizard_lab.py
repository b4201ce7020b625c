"""The export wizard in a real JupyterLab, driven by Playwright (Debian's chromium).

1. pbmc68k_reduced: untick one obs column, pick genes by search, choose 16-bit,
   see the estimate change at each step, export, see the progress reach 100 %
   and the embedded viewer draw non-blank pixels.
2. A larger synthetic AnnData: cancel the export midway; nothing is left on disk.

Screenshots go to test-artifacts/ (and, under `make docs-images` only, a good one to docs/images/wizard.png).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time

import numpy as np
from PIL import Image

from .conftest import REPO, canvas_pixels, run_notebook_in_lab, screenshot, write_notebook

WIZARD = ".cellucid-wizard"


def _estimate_text(page) -> str:
    return page.inner_text(f"{WIZARD} [data-testid=estimate-total]").strip()


def _wait_estimate_change(page, before: str, timeout: float = 60.0) -> str:
    """Wait until the estimate is settled and differs from ``before``; return it."""
    page.wait_for_function(
        """(before) => {
            const card = document.querySelector('.cellucid-wizard .cw-estimate');
            const total = card && card.querySelector('[data-testid=estimate-total]');
            return total && !card.classList.contains('cw-stale') && total.textContent.trim() !== before
                && !/^[–…]$/.test(total.textContent.trim());
        }""",
        arg=before,
        timeout=timeout * 1000,
        polling=100,
    )
    return _estimate_text(page)


def _wait_estimate_ready(page, timeout: float = 60.0) -> str:
    return _wait_estimate_change(page, "", timeout)


def _non_blank_pixels(png: bytes) -> tuple[int, int]:
    """(pixels that differ from the most common colour, distinct colours) of a screenshot."""
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    colors, counts = np.unique(img, axis=0, return_counts=True)
    background = colors[np.argmax(counts)]
    differs = np.any(np.abs(img.astype(int) - background.astype(int)) > 24, axis=1)
    return int(differs.sum()), int(len(colors))


def test_wizard_choices_estimate_export_and_viewer(jupyter_lab, page):
    lab = jupyter_lab
    nb = write_notebook(lab.root / "wizard.ipynb", [
        "import scanpy as sc\nimport cellucid_nb\n"
        "adata = sc.datasets.pbmc68k_reduced()\n"
        "wiz = cellucid_nb.wizard(adata, out_dir='exports/pbmc')\nwiz",
    ])
    run_notebook_in_lab(page, lab, nb)
    page.wait_for_selector(f"{WIZARD} [data-testid=summary]", timeout=60_000)
    assert "700 cells" in page.inner_text(f"{WIZARD} [data-testid=summary]")
    first = _wait_estimate_ready(page)
    # the preview canvas draws the subsampled cells
    page.wait_for_function(
        "() => /of 700 cells/.test(document.querySelector('.cellucid-wizard .cw-preview').innerText)", timeout=30_000
    )
    screenshot(page, "wizard_01_open")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('.cellucid-wizard .cw-main :is(input, select, textarea, button)')]
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
            .map((el) => el.outerHTML.slice(0, 80))"""
    )
    assert unlabelled == [], f"controls without a label: {unlabelled}"

    # 1. one obs column off
    box = page.locator(f"{WIZARD} input[type=checkbox][data-key='bulk_labels']")
    assert box.is_checked()
    box.uncheck()
    second = _wait_estimate_change(page, first)

    # 2. genes by search: start from no genes, add two by type-ahead (keyboard only)
    page.click(f"{WIZARD} button:has-text('No genes')")
    third = _wait_estimate_change(page, second)
    search = page.locator(f"{WIZARD} [data-testid=gene-search]")
    for query in ("CD3", "MS4A"):
        search.fill(query)
        page.wait_for_selector(f"{WIZARD} .cw-suggestions li", timeout=20_000)
        first_hit = page.inner_text(f"{WIZARD} .cw-suggestions li >> nth=0")
        assert query.lower() in first_hit.lower()
        search.press("Enter")
        page.wait_for_selector(f"{WIZARD} .cw-chip:has-text('{first_hit}')", timeout=10_000)
    assert page.locator(f"{WIZARD} .cw-chip").count() == 2
    fourth = _wait_estimate_change(page, third)

    # 3. 16-bit gene values
    page.select_option(f"{WIZARD} [data-testid=var-quantization]", "16")
    fifth = _wait_estimate_change(page, fourth)
    assert len({first, second, third, fourth, fifth}) == 5, (first, second, third, fourth, fifth)
    screenshot(page, "wizard_02_choices")

    # 4. export: progress to 100 %, result, code, viewer
    page.click(f"{WIZARD} [data-testid=export-button]")
    page.wait_for_function(
        "() => /100 %/.test(document.querySelector('.cellucid-wizard [data-testid=progress-text]').textContent)",
        timeout=120_000,
    )
    assert page.eval_on_selector(f"{WIZARD} [data-testid=progress]", "el => el.value") == 1
    result_text = page.inner_text(f"{WIZARD} [data-testid=result]")
    assert "Exported" in result_text and "prepare(" in result_text
    out = lab.root / "exports" / "pbmc"
    assert (out / "dataset_identity.json").exists()
    assert page.inner_text(f"{WIZARD} [data-testid=result-path]").endswith("exports/pbmc")
    canvas = page.locator(f"{WIZARD} [data-testid=viewer-host] canvas").first
    canvas.wait_for(timeout=60_000)
    deadline = time.monotonic() + 60
    while True:
        changed, n_colors = _non_blank_pixels(canvas.screenshot())
        if changed > 500 and n_colors > 3:
            break
        assert time.monotonic() < deadline, f"viewer canvas stays blank ({changed} changed pixels)"
        time.sleep(0.5)
    screenshot(page, "wizard_03_done")
    # the whole widget for the README: a tall window so Lab's notebook does not clip it
    page.set_viewport_size({"width": 1280, "height": 2600})
    time.sleep(0.5)
    path = REPO / "test-artifacts" / "wizard_full.png"
    page.locator(WIZARD).screenshot(path=str(path))
    if os.environ.get("CELLUCID_DOCS_IMAGES") == "1":  # `make docs-images` only: tests never touch tracked files
        shutil.copyfile(path, REPO / "docs" / "images" / "wizard.png")
    # dark theme: JupyterLab's CSS variables restyle the widget
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=20_000)
    time.sleep(0.5)
    page.locator(WIZARD).screenshot(path=str(REPO / "test-artifacts" / "wizard_full_dark.png"))
    bg = page.eval_on_selector(WIZARD, "el => getComputedStyle(el).backgroundColor")
    assert bg != "rgb(255, 255, 255)", f"the wizard kept a light background in the dark theme: {bg}"
    # the embedded viewer's WebGL canvas follows the theme too: its most common colour is dark
    pixels = canvas_pixels(page, f"{WIZARD} .cnb-canvas", name="wizard_viewer_dark")
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    background = colours[counts.argmax()]
    assert int(background.sum()) < 3 * 128, f"the viewer canvas kept a light background in the dark theme: {background}"
    errors = [e for e in page.console_errors if "cellucid" in e.lower() or "wizard" in e.lower()]
    # the Lab server is shared by the browser tests: give the next one its light theme back
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'", timeout=20_000)
    assert not errors, errors


def test_wizard_cancel_midway_leaves_nothing(jupyter_lab, page):
    lab = jupyter_lab
    nb = write_notebook(lab.root / "cancel.ipynb", [
        "import numpy as np, pandas as pd, anndata as ad\nimport cellucid_nb\n"
        "rng = np.random.default_rng(0)\n"
        "n, g = 30_000, 1_000\n"
        "X = rng.normal(size=(n, g)).astype(np.float32)\n"
        "obs = pd.DataFrame({'group': pd.Categorical(rng.integers(0, 20, n).astype(str))}, index=[f'c{i}' for i in range(n)])\n"
        "big = ad.AnnData(X=X, obs=obs)\n"
        "big.obsm['X_umap'] = rng.normal(size=(n, 2)).astype(np.float32)\n"
        "wiz = cellucid_nb.wizard(big, out_dir='exports/big', genes=None, compression=9, var_quantization=None)\nwiz",
    ])
    run_notebook_in_lab(page, lab, nb)
    page.wait_for_selector(f"{WIZARD} [data-testid=export-button]", timeout=60_000)
    _wait_estimate_ready(page)
    page.click(f"{WIZARD} [data-testid=export-button]")
    cancel = page.locator(f"{WIZARD} [data-testid=cancel-button]")
    cancel.wait_for(state="visible", timeout=30_000)
    # let it make some progress first, so the cancel lands midway
    page.wait_for_function(
        "() => { const t = document.querySelector('.cellucid-wizard [data-testid=progress-text]').textContent;"
        " return /[1-9]\\d* %/.test(t) || /genes/.test(t); }",
        timeout=60_000,
    )
    text = page.inner_text(f"{WIZARD} [data-testid=progress-text]")
    assert "100 %" not in text, f"the export ended before the cancel: {text}"
    screenshot(page, "wizard_04_running")
    cancel.click()
    page.wait_for_function(
        "() => /cancelled/.test(document.querySelector('.cellucid-wizard [data-testid=progress-text]').textContent)",
        timeout=30_000,
    )
    screenshot(page, "wizard_05_cancelled")
    exports = lab.root / "exports"
    assert not (exports / "big").exists()
    leftovers = [p.name for p in exports.iterdir()] if exports.exists() else []
    assert leftovers == [], f"staging leftovers: {leftovers}"
    assert re.search(r"cancelled", page.inner_text(f"{WIZARD} [data-testid=progress-text]"))
