"""Viewer speed on this machine: headless Chromium, WebGL2 through SwiftShader (no GPU).

Generates a synthetic export (default 1M cells, cached in ``benchmarks/.data/``) and
measures, in the page with ``performance.now()``:

- JupyterLab: ``show()`` in a notebook cell to the first drawn frame (wall clock from the
  cell's ``show()`` call to the browser's first finished frame, both on this machine);
- standalone page (``serve``): page navigation to the first frame;
- static site (``publish``, served by a plain static server): page navigation to the first
  frame, compared with ``show()``'s first frame measured in the same run;
- redraw after a camera move (median of several), against a bare WebGL2 draw of the
  same number of points on a canvas of the same size (same point size);
- switching the colour field: data not yet loaded (includes the transfer), and
  cached (upload + LUT + redraw, minus a plain redraw);
- 10^7 cells (``measure_scale``): navigation to the first frame at 10M vs 1M cells (both
  stream a 500k uniform subsample first), and the redraw at 1M with the automatic
  density opacity vs opaque vs a bare WebGL2 draw (benchmarks/README.md, last section).

Run: ``.venv/bin/python -m benchmarks.bench_viewer [--cells 1000000] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DATA_DIR = REPO / "benchmarks" / ".data"

BARE_DRAW_JS = """
async ({n, width, height, pointSize}) => {
  const canvas = document.createElement('canvas');
  canvas.width = width; canvas.height = height;
  canvas.style.cssText = 'position:fixed;left:0;top:0;z-index:-1';
  document.body.append(canvas);
  const gl = canvas.getContext('webgl2', {antialias: false, alpha: false});
  const vs = `#version 300 es
  in vec2 p; uniform float s; void main() { gl_Position = vec4(p, 0.0, 1.0); gl_PointSize = s; }`;
  const fs = `#version 300 es
  precision mediump float; out vec4 c; void main() { c = vec4(0.2, 0.4, 0.7, 1.0); }`;
  const prog = gl.createProgram();
  for (const [t, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
    const sh = gl.createShader(t); gl.shaderSource(sh, src); gl.compileShader(sh); gl.attachShader(prog, sh);
  }
  gl.linkProgram(prog);
  const pos = new Float32Array(2 * n);
  for (let i = 0; i < pos.length; i++) pos[i] = Math.random() * 1.8 - 0.9;
  const px = new Uint8Array(4);
  const draw = () => {
    gl.viewport(0, 0, width, height); gl.clearColor(1, 1, 1, 1); gl.clear(gl.COLOR_BUFFER_BIT);
    gl.drawArrays(gl.POINTS, 0, n); gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
  };
  const t0 = performance.now();
  const buf = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, buf);
  gl.bufferData(gl.ARRAY_BUFFER, pos, gl.STATIC_DRAW);
  gl.useProgram(prog); gl.uniform1f(gl.getUniformLocation(prog, 's'), pointSize);
  gl.enableVertexAttribArray(0); gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
  draw();
  const first = performance.now() - t0;
  window.__bare = {draw, first_ms: first, destroy: () => { gl.getExtension('WEBGL_lose_context')?.loseContext(); canvas.remove(); }};
  return {first_ms: first};
}
"""

VIEWER_JS = """
async ({other}) => {
  const c = [...window.__cellucidViewers][0];
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
  // viewer redraws interleaved with bare draws of the same points, so load changes hit both
  const redraws = [], bare = [];
  for (let k = 0; k < 7; k++) {
    redraws.push(c.benchmarkRedraw());
    const t0 = performance.now(); window.__bare.draw(); bare.push(performance.now() - t0);
  }
  window.__bare.destroy();
  const redraw = median(redraws);
  const before = c.state.colorField;
  let t = performance.now();
  await c.setColorField(other);
  const loadSwitch = performance.now() - t + c.drawSync();
  const cached = [];
  for (let k = 0; k < 3; k++) {
    for (const f of [before, other]) {
      t = performance.now();
      await c.setColorField(f);
      c.drawSync();
      cached.push(performance.now() - t);
    }
  }
  const canvas = document.querySelector('.cnb-canvas');
  return {
    timings: c.stats.timings, n_cells: c.meta.n_cells, redraw_ms: redraw, bare_redraw_ms: median(bare),
    redraws_ms: redraws, bare_redraws_ms: bare,
    color_switch_uncached_ms: loadSwitch, color_switch_cached_ms: median(cached),
    color_switch_added_ms: median(cached) - redraw,
    canvas: [canvas.width, canvas.height], point_size: Number(document.querySelector('.cnb-size').value),
  };
}
"""


def make_export(n_cells: int, compression: int | None, seed: int = 0) -> Path:
    """Write (once) a synthetic export: 2D + 3D blobs, 2 categorical + 2 continuous obs, 10 genes."""
    from cellucid_nb.exporter.prepare import prepare

    out = DATA_DIR / f"viewer_{n_cells}_c{compression or 0}"
    if (out / "dataset_identity.json").is_file():
        return out
    rng = np.random.default_rng(seed)
    n_clusters = 12
    cluster = rng.integers(0, n_clusters, n_cells)
    centers = rng.normal(scale=6.0, size=(n_clusters, 3))
    xyz = (centers[cluster] + rng.normal(size=(n_cells, 3))).astype(np.float32)
    obs = pd.DataFrame(
        {
            "cluster": pd.Categorical.from_codes(cluster, [f"cluster {i}" for i in range(n_clusters)]),
            "batch": pd.Categorical.from_codes(rng.integers(0, 4, n_cells), ["b1", "b2", "b3", "b4"]),
            "score": xyz[:, 0] + rng.normal(scale=0.3, size=n_cells),
            "total_counts": rng.lognormal(8, 0.5, n_cells),
        }
    )
    n_genes = 10
    expression = np.abs(rng.normal(size=(n_cells, n_genes))).astype(np.float32)
    var = pd.DataFrame(index=[f"GENE{i}" for i in range(n_genes)])
    prepare(
        latent_space=xyz, obs=obs, var=var, gene_expression=expression, out_dir=out, force=True,
        X_umap_2d=xyz[:, :2].copy(), X_umap_3d=xyz, compression=compression, var_quantization=8,
        obs_continuous_quantization=8, dataset_name=f"viewer benchmark {n_cells:,} cells",
    )
    return out


def _browser(pw):
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def _interaction(page) -> dict:
    """Bare-draw baseline on a canvas like the viewer's, then the viewer's interaction timings."""
    _wait_all_drawn(page)  # large exports load progressively: time the full picture
    size = page.evaluate(
        "(() => { const c = document.querySelector('.cnb-canvas'); const v = [...window.__cellucidViewers][0];"
        " return {n: v.meta.n_cells, width: c.width, height: c.height, pointSize: Number(document.querySelector('.cnb-size').value)}; })()"
    )
    bare = page.evaluate(BARE_DRAW_JS, size)
    result = page.evaluate(VIEWER_JS, {"other": "obs:batch"})
    result["bare"] = {"first_ms": bare["first_ms"], "redraw_ms": result["bare_redraw_ms"]}
    return result


def measure_standalone(export: Path, browser) -> dict:
    """Navigation -> first frame and interaction timings on the ``serve`` page."""
    from cellucid_nb.server import serve

    with serve(export, port=0) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(srv.url + "&dim=2")
        page.wait_for_function("() => window.cellucidViewer && window.cellucidViewer.stats.timings.first_frame", timeout=120_000)
        first = page.evaluate("window.cellucidViewer.stats.t_mount + window.cellucidViewer.stats.timings.first_frame")
        result = _interaction(page)
        result["navigation_to_first_frame_ms"] = first
        page.close()
    return result


def measure_site(export: Path, browser, workdir: Path) -> dict:
    """The static site of ``publish``: page navigation -> first frame, served by a plain static server."""
    import contextlib
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from cellucid_nb.publishing import publish

    site = workdir / "site"
    if not (site / "index.html").is_file():
        publish(export, site)  # payloads hard-linked: no copy of the export

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(workdir)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/site/index.html#dim=2")
        page.wait_for_function("() => window.cellucidViewer && window.cellucidViewer.stats.timings.first_frame", timeout=120_000)
        first = page.evaluate("window.cellucidViewer.stats.t_mount + window.cellucidViewer.stats.timings.first_frame")
        drawn = page.evaluate("window.cellucidViewer.stats.firstFrameCells ?? window.cellucidViewer.meta.n_cells")
        result = _interaction(page)
        result["navigation_to_first_frame_ms"] = first
        result["first_frame_cells"] = drawn
        page.close()
    finally:
        with contextlib.suppress(Exception):
            httpd.shutdown()
            httpd.server_close()
    return result


def measure_lab(export: Path, browser, workdir: Path) -> dict:
    """``show()`` in a JupyterLab notebook -> first frame, then interaction timings."""
    from tests.e2e.conftest import cell_output_text, run_notebook_in_lab, start_jupyter_lab, wait_kernel_idle, write_notebook

    lab = start_jupyter_lab(workdir)
    try:
        link = lab.root / "export"
        link.symlink_to(export, target_is_directory=True)
        nb = write_notebook(
            lab.root / "bench.ipynb",
            [
                "import time\nfrom cellucid_nb import show  # imports are not part of show()\nt0 = time.time()\n"
                "v = show('export', dimension=2)\n"
                "t_show = time.time() - t0\nv",
                "ff = v.timings.get('first_frame', {})\n"
                "print('RESULT', ff.get('epoch_ms', float('nan')) / 1000 - t0, t_show)",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # Run only the first cell: the second must wait until the frame exists.
        run_notebook_in_lab(page, lab, nb)
        page.wait_for_function(
            "() => [...(window.__cellucidViewers || [])].some((c) => c.stats.timings.first_frame)", timeout=120_000
        )
        page.wait_for_timeout(500)
        page.locator(".jp-Notebook .jp-CodeCell").nth(1).locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        page.wait_for_timeout(300)
        wait_kernel_idle(page)
        text = cell_output_text(page, 1)
        parts = text.split("RESULT", 1)[1].split()
        result = _interaction(page)
        result["show_to_first_frame_ms"] = float(parts[0]) * 1000
        result["show_call_ms"] = float(parts[1]) * 1000
        page.close()
        return result
    finally:
        lab.stop()


# ------------------------------------------------------------------ 10^7 cells (issue 13 §3)
# Progressive loading and density opacity, in their own functions: first frame at 10M vs
# 1M (both stream a 500k subsample first), and redraw at 1M with the automatic density
# opacity (blended) vs opaque vs a bare WebGL2 draw, all timed in the page.

SCALE_REDRAW_JS = """
async ({repeat}) => {
  const c = window.cellucidViewer;
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
  const density = [], opaque = [], bare = [];
  c.setOpacity(0);
  c.benchmarkRedraw();
  const alpha = c.progress.alpha;
  for (let k = 0; k < repeat; k++) {  // interleaved, so load changes hit all three
    c.setOpacity(0); density.push(c.benchmarkRedraw());
    c.setOpacity(1); opaque.push(c.benchmarkRedraw());
    const t0 = performance.now(); window.__bare.draw(); bare.push(performance.now() - t0);
  }
  c.setOpacity(0);
  window.__bare.destroy();
  return {alpha, drawn: c.progress.drawn, density_ms: median(density), opaque_ms: median(opaque), bare_ms: median(bare),
          density_all_ms: density, opaque_all_ms: opaque, bare_all_ms: bare};
}
"""


def _wait_all_drawn(page, timeout_ms: int = 600_000) -> None:
    """Wait until the viewer draws every cell (progressive loads end with their last slice)."""
    page.wait_for_function(
        "() => { const v = window.cellucidViewer || [...(window.__cellucidViewers || [])][0];"
        " return v && v.meta && (!v.progress || v.progress.drawn === v.meta.n_cells); }",
        timeout=timeout_ms,
    )


def measure_first_frame(export: Path, browser) -> dict:
    """Serve page: navigation -> first frame (and the cells it drew), then -> every cell drawn."""
    from cellucid_nb.server import serve

    with serve(export, port=0) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(srv.url + "&dim=2")
        page.wait_for_function("() => window.cellucidViewer && window.cellucidViewer.stats.timings.first_frame", timeout=600_000)
        _wait_all_drawn(page)
        r = page.evaluate(
            "(() => { const v = window.cellucidViewer, t = v.stats.timings;"
            " return {n_cells: v.meta.n_cells, first_frame_cells: v.stats.firstFrameCells, progressive: v.progress.progressive,"
            " navigation_to_first_frame_ms: v.stats.t_mount + t.first_frame, mount_to_first_frame_ms: t.first_frame,"
            " navigation_to_all_drawn_ms: v.stats.t_mount + t.all_drawn, meta_ms: t.meta}; })()"
        )
        page.close()
    return r


def measure_density_redraw(export: Path, browser, repeat: int = 9) -> dict:
    """Serve page at full load: redraw with automatic density opacity, opaque, and a bare WebGL2 draw."""
    from cellucid_nb.server import serve

    with serve(export, port=0) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(srv.url + "&dim=2")
        _wait_all_drawn(page)
        size = page.evaluate(
            "(() => { const c = document.querySelector('.cnb-canvas'); const v = window.cellucidViewer;"
            " return {n: v.meta.n_cells, width: c.width, height: c.height, pointSize: Number(document.querySelector('.cnb-size').value)}; })()"
        )
        page.evaluate(BARE_DRAW_JS, size)
        r = page.evaluate(SCALE_REDRAW_JS, {"repeat": repeat})
        r.update(canvas=[size["width"], size["height"]], point_size=size["pointSize"], n_cells=size["n"])
        page.close()
    return r


def measure_scale(cells: list[int], browser, repeat: int) -> dict:
    """First frames at each size (runs interleaved across sizes), then the 1M-class density redraw."""
    exports = {n: make_export(n, None) for n in cells}
    runs: dict[int, list[dict]] = {n: [] for n in cells}
    for _ in range(repeat):
        for n in cells:
            runs[n].append(measure_first_frame(exports[n], browser))
    out: dict = {"first_frame": {str(n): _median_run(runs[n], "navigation_to_first_frame_ms") for n in cells}}
    small, large = min(cells), max(cells)
    f = out["first_frame"]
    out["first_frame_ratio"] = f[str(large)]["navigation_to_first_frame_ms"] / f[str(small)]["navigation_to_first_frame_ms"]
    out["density_redraw"] = measure_density_redraw(exports[small], browser)
    d = out["density_redraw"]
    out["density_vs_bare"] = d["density_ms"] / d["bare_ms"]
    out["opaque_vs_bare"] = d["opaque_ms"] / d["bare_ms"]
    return out


def summarize_scale(r: dict) -> list[str]:
    lines = ["progressive loading and density opacity (serve page, performance.now() in the page):"]
    for n, f in r["first_frame"].items():
        lines.append(
            f"  {int(n):>11,} cells: first frame {f['navigation_to_first_frame_ms']:7.0f} ms after navigation "
            f"({f['first_frame_cells']:,} cells drawn; all runs {f['all_navigation_to_first_frame_ms']}), "
            f"every cell drawn at {f['navigation_to_all_drawn_ms']:7.0f} ms"
        )
    lines.append(f"  first frame ratio largest / smallest: {r['first_frame_ratio']:.2f}x (target <= 2x)")
    d = r["density_redraw"]
    lines.append(
        f"  redraw at {d['n_cells']:,} cells, canvas {d['canvas'][0]}x{d['canvas'][1]}, point size {d['point_size']}: "
        f"density opacity (alpha {d['alpha']:.3f}) {d['density_ms']:.1f} ms, opaque {d['opaque_ms']:.1f} ms, "
        f"bare WebGL2 {d['bare_ms']:.1f} ms (medians)"
    )
    lines.append(f"  density / bare {r['density_vs_bare']:.2f}x (target <= 1.3x); opaque / bare {r['opaque_vs_bare']:.2f}x")
    return lines


def _median_run(runs: list[dict], key: str) -> dict:
    """The run with the median ``key``, plus every run's ``key`` under ``all_<key>``."""
    ordered = sorted(runs, key=lambda r: r[key])
    median = dict(ordered[len(ordered) // 2])
    median[f"all_{key}"] = [round(r[key], 1) for r in runs]
    return median


def summarize(name: str, r: dict) -> list[str]:
    t = r["timings"]
    lines = [f"{name}: {r['n_cells']:,} cells, canvas {r['canvas'][0]}x{r['canvas'][1]}, point size {r['point_size']}"]
    if "show_to_first_frame_ms" in r:
        lines.append(f"  show() -> first frame        {r['show_to_first_frame_ms']:8.0f} ms   (show() call itself {r['show_call_ms']:.0f} ms; "
                     f"all runs {r.get('all_show_to_first_frame_ms')})")
    if "navigation_to_first_frame_ms" in r:
        lines.append(f"  page load -> first frame     {r['navigation_to_first_frame_ms']:8.0f} ms   (all runs {r.get('all_navigation_to_first_frame_ms')})")
    lines += [
        f"  in widget: meta {t.get('meta', 0):.0f} ms, points {t.get('points_2d', 0):.0f} ms, "
        f"first field {max((v for k, v in t.items() if k.startswith('field:')), default=0):.0f} ms, mount -> first frame {t['first_frame']:.0f} ms",
        f"  redraw after camera move     {r['redraw_ms']:8.1f} ms median, {min(r['redraws_ms']):.1f} ms min "
        f"(bare draw interleaved: {r['bare_redraw_ms']:.1f} ms median, {min(r['bare_redraws_ms']):.1f} ms min)",
        f"  colour switch, first time    {r['color_switch_uncached_ms']:8.1f} ms (transfer + upload + redraw)",
        f"  colour switch, cached        {r['color_switch_cached_ms']:8.1f} ms (= redraw + {r['color_switch_added_ms']:.1f} ms)",
    ]
    if "bare" in r:
        lines.append(f"  bare WebGL2 draw, same n     first {r['bare']['first_ms']:.0f} ms (upload + draw)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_viewer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--compression", default="none", help="gzip level of the export, or 'none' (default)")
    parser.add_argument("--skip-lab", action="store_true", help="leave out JupyterLab (show())")
    parser.add_argument("--skip-site", action="store_true", help="leave out the static site of publish")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each page (the median is reported)")
    parser.add_argument("--json", help="write the measurements here")
    parser.add_argument("--scale-cells", default="1000000,10000000",
                        help="sizes of the progressive first-frame comparison (comma-separated; the smallest also times the density redraw)")
    parser.add_argument("--skip-scale", action="store_true", help="leave out the progressive / density-opacity cases")
    parser.add_argument("--only-scale", action="store_true", help="only the progressive / density-opacity cases")
    args = parser.parse_args(argv)
    compression = None if args.compression == "none" else int(args.compression)
    from playwright.sync_api import sync_playwright

    t = time.perf_counter()
    export = make_export(args.cells, compression) if not args.only_scale else None
    print(f"export: {export} (ready in {time.perf_counter() - t:.1f} s)", flush=True)
    results: dict = {"n_cells": args.cells, "compression": compression, "load_average": list(os.getloadavg())}
    print(f"load average at start: {results['load_average'][0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench_viewer_"))
    try:
        with sync_playwright() as pw:
            browser = _browser(pw)
            try:
                if not args.skip_scale:
                    cells = sorted(int(c) for c in args.scale_cells.split(","))
                    results["scale"] = measure_scale(cells, browser, args.repeat)
                    print("\n".join(summarize_scale(results["scale"])), flush=True)
                if not args.only_scale:
                    runs = [measure_standalone(export, browser) for _ in range(args.repeat)]
                    results["standalone"] = _median_run(runs, "navigation_to_first_frame_ms")
                    print("\n".join(summarize("standalone page (serve)", results["standalone"])), flush=True)
                if not args.skip_site and not args.only_scale:
                    runs = [measure_site(export, browser, workdir) for _ in range(args.repeat)]
                    results["site"] = _median_run(runs, "navigation_to_first_frame_ms")
                    print("\n".join(summarize("static site (publish, python http.server)", results["site"])), flush=True)
                if not args.skip_lab and not args.only_scale:
                    runs = [measure_lab(export, browser, workdir / f"lab{k}") for k in range(args.repeat)]
                    results["jupyterlab"] = _median_run(runs, "show_to_first_frame_ms")
                    print("\n".join(summarize("JupyterLab widget (comm)", results["jupyterlab"])), flush=True)
                if "site" in results and "jupyterlab" in results:
                    ratio = results["site"]["navigation_to_first_frame_ms"] / results["jupyterlab"]["show_to_first_frame_ms"]
                    results["site_vs_show_first_frame"] = ratio
                    print(f"static site first frame / show() first frame: {ratio:.2f}x (target <= 1.2x; site drew "
                          f"{results['site']['first_frame_cells']:,} cells in its first frame)", flush=True)
            finally:
                browser.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
