"""Browser test fixtures: headless Debian chromium (WebGL through SwiftShader) and JupyterLab.

Fixtures
--------
browser
    Playwright ``Browser`` (sync API), session scoped.
page
    A fresh page (1280x900) per test; closed afterwards.
jupyter_lab
    A running ``jupyter lab`` (from .venv) on a free 127.0.0.1 port, with a token,
    in a temporary root dir; yields a :class:`JupyterLab` with ``url(path)``,
    ``root`` (Path) and ``stop()``. Kernels import ``cellucid_nb`` from this tree.

Helpers
-------
``run_notebook_in_lab(page, lab, notebook_path)`` opens a notebook in Lab, runs all
cells and waits until the kernel is idle. ``screenshot(page, name)`` saves a PNG
under test-artifacts/.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("CELLUCID_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--ignore-gpu-blocklist",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def pytest_collection_modifyitems(items):
    """Every test under tests/e2e drives a browser: mark it so ``-m 'not browser'`` skips them."""
    for item in items:
        if "/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium with WebGL2 via SwiftShader."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item, so fixtures can tell whether the test failed."""
    outcome = yield
    setattr(item, f"rep_{call.when}", outcome.get_result())


@pytest.fixture
def page(browser, request):
    """A fresh page; console errors are collected in ``page.console_errors``.

    When the test fails, a screenshot goes to test-artifacts/FAILED_<test name>.png.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.console_errors = []  # type: ignore[attr-defined]
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))  # type: ignore[attr-defined]
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            try:
                ARTIFACTS.mkdir(exist_ok=True)
                pg.screenshot(path=str(ARTIFACTS / f"FAILED_{request.node.name}.png"), timeout=5000)
            except Exception:  # the page may be gone; the failure itself is what matters
                pass
        context.close()


def screenshot(page, name: str, **kwargs) -> Path:
    """Save a screenshot to test-artifacts/<name>.png and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    return path


@dataclass
class JupyterLab:
    """A running JupyterLab server."""

    port: int
    token: str
    root: Path
    process: subprocess.Popen
    log_path: Path
    #: the server's root; ``root`` is a per-test folder inside it when the server is shared
    server_root: Path | None = None
    _stopped: bool = field(default=False, repr=False)
    _shared: bool = field(default=False, repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "lab") -> str:
        """URL of ``path`` (e.g. ``"lab/tree/x.ipynb"``) with the token."""
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str) -> object:
        """GET a JSON REST endpoint of the server."""
        with urllib.request.urlopen(self.url(f"api/{path.lstrip('/')}"), timeout=10) as resp:
            return json.loads(resp.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def shutdown_kernels(self) -> None:
        """Shut down every running kernel (a shared server keeps no kernel between tests)."""
        for kernel in self.api("kernels"):
            req = urllib.request.Request(self.url(f"api/kernels/{kernel['id']}"), method="DELETE")
            req.add_header("Authorization", f"token {self.token}")
            with contextlib.suppress(Exception):
                urllib.request.urlopen(req, timeout=10).close()

    def stop(self) -> None:
        """Stop the server and its kernels (a per-test view of a shared server does nothing)."""
        if self._stopped or self._shared:
            return
        self._stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_jupyter_lab(tmp_path: Path) -> JupyterLab:
    """Start ``jupyter lab`` (from this venv) on a free 127.0.0.1 port with a token, rooted in ``tmp_path/lab``."""
    tmp_path = Path(tmp_path)
    root = tmp_path / "lab"
    root.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "jupyter_config")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "jupyter_runtime")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    # A fresh Lab asks about news and shows notifications: keep the UI quiet.
    settings = tmp_path / "lab_settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True, exist_ok=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "lab_workspaces")
    log_path = tmp_path / "jupyter.log"
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [
        str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.port_retries=0", "--LabApp.news_url=", "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI often run as root
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    lab = JupyterLab(port=port, token=token, root=root, process=proc, log_path=log_path, server_root=root)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{lab.log()[-3000:]}")
        try:
            lab.api("status")
            return lab
        except Exception as err:
            if time.monotonic() > deadline:
                lab.stop()
                raise RuntimeError(f"jupyter lab did not start within 60 s:\n{lab.log()[-3000:]}") from err
            time.sleep(0.3)


@pytest.fixture(scope="session")
def _lab_server(tmp_path_factory):
    """One JupyterLab for every browser test: starting Lab costs ~10 s of a 2-core machine."""
    lab = start_jupyter_lab(tmp_path_factory.mktemp("jupyter"))
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def jupyter_lab(_lab_server, request):
    """The shared JupyterLab, seen from a fresh folder of its own (``root``) for this test.

    Kernels are shut down after the test, so tests share only the server process.
    """
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)[:80]
    root = _lab_server.server_root / name
    root.mkdir(parents=True, exist_ok=True)
    view = dataclasses.replace(_lab_server, root=root, _shared=True)
    try:
        yield view
    finally:
        _lab_server.shutdown_kernels()


def write_notebook(path: Path, cells: list[str]) -> Path:
    """Write a minimal notebook of code cells (Python 3 kernel)."""
    nb = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}
            for src in cells
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))
    return path


_PROMPTS_JS = "() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')].map((p) => p.textContent.trim())"


def wait_kernel_idle(page, timeout: float = 120.0) -> None:
    """Wait until the kernel status shows idle and no cell is queued or running."""
    page.wait_for_function(
        """() => {
            const busy = document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="busy"]');
            const prompts = [...document.querySelectorAll('.jp-Notebook .jp-InputArea-prompt')];
            const queued = prompts.some((p) => /\\[\\*\\]/.test(p.textContent));
            const idle = document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]');
            return !busy && !queued && !!idle;
        }""",
        timeout=timeout * 1000,
        polling=250,
    )


def _run_all(page) -> None:
    ran = page.evaluate(
        """async () => {
            const app = window.jupyterapp || window.jupyterlab;
            if (!app || !app.commands) return false;
            await app.commands.execute('notebook:run-all-cells');
            return true;
        }"""
    )
    if not ran:  # app not exposed: use the command palette
        page.keyboard.press("Control+Shift+C")
        page.keyboard.type("Run All Cells")
        page.keyboard.press("Enter")


def run_notebook_in_lab(page, lab: JupyterLab, notebook_path: str | Path, timeout: float = 180.0) -> None:
    """Open a notebook (path relative to ``lab.root`` or absolute inside it), run all cells, wait for idle.

    "Run All" right after the kernel connects is sometimes dropped by Lab, so it is
    retried until the first cell shows that it started.
    """
    rel = Path(notebook_path)
    if rel.is_absolute():
        rel = rel.relative_to(lab.server_root or lab.root)
    elif lab.server_root is not None and lab.root != lab.server_root:
        rel = (lab.root / rel).relative_to(lab.server_root)
    # a workspace of its own: the shared server would otherwise reopen earlier tests' notebooks
    workspace = f"t{secrets.token_hex(4)}"
    page.goto(lab.url(f"lab/workspaces/{workspace}/tree/{rel.as_posix()}"), wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
    page.click(".jp-Notebook .jp-Cell .jp-InputArea-editor")
    page.keyboard.press("Escape")
    started = "(ps) => ps.length > 0 && /\\[(\\*|\\d+)\\]/.test(ps[0])"
    for _attempt in range(4):
        _run_all(page)
        try:
            page.wait_for_function(f"() => ({started})(({_PROMPTS_JS})())", timeout=10_000, polling=200)
            break
        except Exception:
            continue
    else:
        raise RuntimeError(f"JupyterLab did not start running {rel}: prompts {page.evaluate(_PROMPTS_JS)}")
    # Under heavy load Lab sometimes loses the kernel websocket for a moment and the queued
    # cells never run: re-run the cells that have not run yet (at most twice).
    all_ran = f"() => ({_PROMPTS_JS})().every((p) => /\\[\\d+\\]/.test(p))"
    deadline = time.monotonic() + timeout
    for attempt in range(3):
        try:
            page.wait_for_function(all_ran, timeout=max(1.0, min(60.0, deadline - time.monotonic())) * 1000, polling=250)
            break
        except Exception:
            if attempt == 2 or time.monotonic() > deadline:
                raise
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
            page.evaluate(
                """async () => {
                    const app = window.jupyterapp || window.jupyterlab;
                    const panel = app.shell.currentWidget;
                    const cells = panel.content.widgets;
                    const first = cells.findIndex((c) => c.model.type === 'code' && !c.model.executionCount);
                    if (first < 0) return;
                    panel.content.activeCellIndex = first;
                    await app.commands.execute('notebook:run-all-below');
                }"""
            )
    wait_kernel_idle(page, timeout)


def cell_output_text(page, index: int) -> str:
    """Text of the outputs of code cell ``index`` (0-based) in the open notebook."""
    return page.evaluate(
        """(i) => {
            const cells = document.querySelectorAll('.jp-Notebook .jp-CodeCell');
            const c = cells[i];
            return c ? (c.querySelector('.jp-Cell-outputArea')?.innerText || '') : '';
        }""",
        index,
    )


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------- known exports
#: Category colours of the known export (stored in the sidecar, as an AnnData's uns colours would be).
KNOWN_COLORS = {"group": ["#e41a1c", "#377eb8"]}


def make_known_export(out_dir: Path, n_cells: int = 2000, seed: int = 0, colors: bool = True) -> Path:
    """Write a small export with two well separated groups, via ``cellucid==0.0.9``'s prepare.

    Group "left" sits at x < 0, group "right" at x > 0 (2D and 3D); ``score`` rises
    with x; gene ``G1`` is high in "right" only. With ``colors=True`` the sidecar holds
    :data:`KNOWN_COLORS` (red for left, blue for right).
    """
    import contextlib
    import io
    import warnings

    import numpy as np
    import pandas as pd
    from cellucid.prepare_data import prepare as reference_prepare

    rng = np.random.default_rng(seed)
    half = n_cells // 2
    right = np.arange(n_cells) >= half
    xy = rng.normal(scale=0.6, size=(n_cells, 3)).astype(np.float32)
    xy[:, 0] += np.where(right, 4.0, -4.0)
    obs = pd.DataFrame(
        {
            "group": pd.Categorical(np.where(right, "right", "left"), categories=["left", "right"]),
            "score": xy[:, 0].astype(np.float64),
        }
    )
    expression = np.stack([right * 3.0 + rng.random(n_cells) * 0.1, rng.random(n_cells)], axis=1).astype(np.float32)
    var = pd.DataFrame(index=["G1", "G2"])
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference_prepare(
            latent_space=xy, obs=obs, var=var, gene_expression=expression, out_dir=str(out_dir),
            X_umap_2d=xy[:, :2].copy(), X_umap_3d=xy.copy(), force=True, dataset_name="known",
            compression=6, var_quantization=8, obs_continuous_quantization=8,
        )
    if colors:
        (Path(out_dir) / "cellucid_nb.json").write_text(json.dumps({"generator": "test", "category_colors": KNOWN_COLORS}))
    return Path(out_dir)


# ---------------------------------------------------------------------- pixel helpers
def canvas_pixels(page, selector: str = ".cnb-canvas", name: str | None = None):
    """Screenshot the element and return it as an (h, w, 3) uint8 array (also saved when ``name``)."""
    import io

    import numpy as np
    from PIL import Image

    png = page.locator(selector).first.screenshot()
    if name:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"{name}.png").write_bytes(png)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def color_mask(pixels, hex_color: str, tol: int = 40):
    """Boolean mask of pixels within ``tol`` (per channel) of ``hex_color``."""
    import numpy as np

    target = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])
    return (np.abs(pixels.astype(int) - target) <= tol).all(axis=2)


def non_background(pixels, tol: int = 12):
    """Boolean mask of pixels that differ from the most common (background) colour."""
    import numpy as np

    flat = pixels.reshape(-1, 3)
    values, counts = np.unique(flat, axis=0, return_counts=True)
    bg = values[counts.argmax()]
    return (np.abs(pixels.astype(int) - bg) > tol).any(axis=2)


def assert_edges_and_vectors_draw(page, plain, name: str) -> None:
    """Ticking "kNN edges" adds line pixels to ``plain`` (the canvas without them), then "vectors" adds arrows.

    Waits for the renderer's buffers (``renderStats``) and draws the frame at once
    (``drawSync``: the pending frame, then ``gl.finish``) instead of sleeping.
    """
    import numpy as np

    page.check(".cnb-edges input")
    page.wait_for_function("() => window.cellucidViewer.renderStats.edgeCount > 0", timeout=10_000)
    page.evaluate("() => window.cellucidViewer.drawSync()")
    edges = canvas_pixels(page, name=f"{name}_edges")
    assert non_background(edges).sum() > non_background(plain).sum() + 200
    page.uncheck(".cnb-edges input")
    page.check(".cnb-vectors input")
    page.wait_for_function("() => window.cellucidViewer.renderStats.arrowCount > 0", timeout=10_000)
    page.evaluate("() => window.cellucidViewer.drawSync()")
    arrows = canvas_pixels(page, name=f"{name}_vectors")
    assert (np.abs(arrows.astype(int) - plain.astype(int)).sum(axis=2) > 30).sum() > 50


def lasso_left_half(page, selector: str = ".cnb-canvas") -> None:
    """Pick the lasso tool and draw it around the left 48 % of the plot (the "left" group of the known export)."""
    page.click(".cnb-tools button[data-value='lasso']")
    box = page.locator(selector).first.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    path = [(x0 + 5, y0 + 5), (x0 + w * 0.48, y0 + 5), (x0 + w * 0.48, y0 + h - 5), (x0 + 5, y0 + h - 5), (x0 + 6, y0 + 6)]
    page.mouse.move(*path[0])
    page.mouse.down()
    for x, y in path[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
