// mountViewer(el, transport, options) -> controller: the viewer, independent of where
// its data come from (comm in a notebook, HTTP in a browser tab, static files). The
// wizard, the standalone page and the static site embed it. This module only composes
// the units: data_cache (loading and caches), color_state (colours, legend, hide and
// isolate), selection (hover, lasso/box, highlight), overlays (edges and vectors),
// frame (canvas size and draw loop), toolbar, labels and startup (the start sequence).
//
// controller = { ready: Promise, stats, state, meta,
//                setColorField(field), setDimension(d), setEmbedding(id), highlight(indices), select(indices),
//                resetView(), onSelect(cb) -> off, resize(), setHeight(px), destroy(),
//                setPointSize(px), setShowEdges(bool), setShowVectors(bool), setColormap(name),
//                snapshot() -> dataURL, drawSync(), benchmarkRedraw(), positionsOf(i), renderStats }
// field strings: "obs:<key>", "gene:<id>" or "" (the export's first categorical field).
import { DEFAULT_COLORMAP } from "../common/colors.js";
import { createCamera } from "./camera.js";
import { createColorState } from "./color_state.js";
import { createDataCache, createLatest } from "./data_cache.js";
import { centroidsFor, createEmbeddingChoice, dimensionOf, fillEmbeddingSelect, requestEmbedding } from "./embeddings.js";
import { AUTO_MIN_POINTS, createDensityEstimator, createOpacityControl, pointOpacity } from "./density.js";
import { autoPointSize, defaultField } from "./fields.js";
import { browserFrames, createDrawLoop, cssColorToUnit, now, observeStage, syncCanvasSize } from "./frame.js";
import { attachPointer } from "./interaction.js";
import { createLabelLayer } from "./labels.js";
import { createOverlays } from "./overlays.js";
import { createMotionLOD, createProgressive, progressiveLoader } from "./progressive.js";
import { createRenderer } from "./renderer.js";
import { createSelection } from "./selection.js";
import { startViewer } from "./startup.js";
import { downloadURL, fillToolbar, markActive, wireToolbar } from "./toolbar.js";
import { buildLayout } from "./ui.js";

/**
 * @typedef {object} ViewerOptions
 * @property {number} [dimension]   1, 2 or 3 (default: the export's default)
 * @property {string} [embedding]   an embedding id of meta.embeddings (sets the dimension; default: the dimension's default)
 * @property {string} [colorField]  "obs:<key>", "gene:<id>" or "" (default field)
 * @property {number} [pointSize]   CSS pixels; 0 picks one from the number of cells
 * @property {boolean} [showEdges]
 * @property {boolean} [showVectors]
 * @property {number} [height]      plot height in CSS pixels
 * @property {string} [colormap]    continuous colour map name (common/colors.js)
 * @property {number} [opacity]     point opacity in (0, 1]; 0 or absent: automatic from the density (density.js)
 * @property {number} [firstFrameCells]  larger exports load progressively, this many cells first (progressive.js)
 * @property {number} [chunkCells]  cells per later slice of a progressive load
 * @property {number} [motionCells] cells drawn while the camera moves (all again once it stops)
 * @property {(state: {dimension: number, colorField: string, pointSize: number, showEdges: boolean, showVectors: boolean, opacity?: number, embedding?: string}) => void} [onStateChange]
 * @property {(err: Error) => void} [onError]
 * @property {(canvas: HTMLCanvasElement) => import("./renderer.js").Renderer} [createRenderer]  renderer factory (tests pass a fake)
 * @property {import("./frame.js").FrameScheduler} [frames]  animation frames (tests pass a manual scheduler)
 */

/**
 * Mount the viewer in `el`.
 * @param {HTMLElement} el
 * @param {import("./transport.js").Transport} transport  from createCommTransport / createHttpTransport, or any object with the same interface
 * @param {ViewerOptions} [options]
 */
export function mountViewer(el, transport, options = {}) {
  const t0 = now();
  const ui = buildLayout(el);
  if (options.height) ui.root.style.setProperty("--cnb-height", `${options.height}px`);
  /** @type {(() => void)[]} */
  const disposers = [];
  const stats = { t_mount: t0, timings: {}, frames: 0, lastFrameMs: null };
  const state = {
    meta: null,
    dim: 0,
    colorField: "",
    pointSize: options.pointSize || 0,
    showEdges: !!options.showEdges,
    showVectors: !!options.showVectors,
    /** @type {string|null} */
    vectorField: null,
    embedding: /** @type {string|null} */ (null),
    tool: "pan",
    opacity: Number(options.opacity) || 0,
  };
  /** @type {{positions: Float32Array, comps: number, raw: Float32Array, dim: number, loaded?: number, progressive?: boolean}|null} */
  let points = null;
  let destroyed = false;
  let firstFrameDone = false;
  /** @type {any} */
  let renderer = null;
  const getRenderer = () => renderer;
  const camera = createCamera(2);
  const fieldLatest = createLatest(), dimLatest = createLatest();

  function setStatus(text) {
    ui.status.textContent = text;
    ui.status.classList.toggle("cnb-visible", !!text);
  }
  function showError(err) {
    const msg = err && err.message ? err.message : String(err);
    ui.error.textContent = msg;
    ui.error.classList.add("cnb-visible");
    setStatus("");
    if (options.onError) options.onError(err);
    if (transport.sendEvent) transport.sendEvent("error", { message: msg });
  }
  function clearError() {
    ui.error.textContent = "";
    ui.error.classList.remove("cnb-visible");
  }
  /** Report failures of an action in the viewer (and to the host) instead of throwing. */
  function run(promise) {
    return Promise.resolve(promise).then(clearError, showError);
  }
  function emitState() {
    if (options.onStateChange) {
      options.onStateChange({
        dimension: state.dim, colorField: state.colorField, pointSize: state.pointSize,
        showEdges: state.showEdges, showVectors: state.showVectors, opacity: state.opacity, embedding: state.embedding || "",
      });
    }
  }

  try {
    renderer = (options.createRenderer || createRenderer)(ui.canvas);
  } catch (err) {
    showError(err);
  }

  // ------------------------------------------------------------------ drawing
  const viewport = () => /** @type {[number, number]} */ ([Math.max(1, ui.canvas.clientWidth), Math.max(1, ui.canvas.clientHeight)]);
  const loop = createDrawLoop(drawNow, options.frames || browserFrames);
  const requestDraw = () => loop.request();
  const data = createDataCache(transport, stats);
  // Large exports stream in the draw order (progressive.js); `order` maps draw positions
  // to cell indices for selection, highlight and the tooltip.
  // later slices wait for the first frame: on a small machine the subsample is drawn sooner
  const prog = createProgressive(transport, stats, { firstFrameCells: options.firstFrameCells, chunkCells: options.chunkCells, holdUntilFirstFrame: true });
  const loader = progressiveLoader(prog, data);
  if (!renderer) prog.firstFrameDrawn(); // nothing will be drawn: do not hold the transfer back
  const lod = createMotionLOD({ budget: options.motionCells, onSettle: requestDraw });
  const density = createDensityEstimator();
  stats.drawn = 0;
  stats.alpha = 1;
  const colors = createColorState(ui, getRenderer, requestDraw, options.colormap || DEFAULT_COLORMAP);
  const labels = createLabelLayer(ui.labels);
  const selection = createSelection({
    ui, camera, viewport, colors: () => colors, getRenderer, setStatus, requestDraw,
    points: () => points,
    nCells: () => (state.meta ? state.meta.n_cells : 0),
    toPositions: (cells) => (prog.order ? prog.order.toPositions(cells) : cells),
    cellId: (i) => (prog.order ? prog.order.cellAt(i) : i),
    sendSelection: (idx) => transport.sendSelection(idx),
  });
  const overlays = createOverlays({ data: loader, getRenderer, setStatus, meta: () => state.meta, state: () => state });

  function drawNow() {
    if (destroyed || !renderer || !points) return;
    const start = now();
    const { w, h, dpr } = syncCanvasSize(ui.canvas);
    const mvp = camera.matrix(w, h);
    const pointSize = state.pointSize || autoPointSize(state.meta.n_cells);
    const available = prog.drawable(points, colors.field) ?? state.meta.n_cells;
    const count = lod.count(camera.version, available);
    const auto = !(state.opacity > 0) && count >= AUTO_MIN_POINTS;
    const alpha = pointOpacity(state.opacity, auto ? density.coverage(points, count, mvp, w, h, Math.max(1 / dpr, pointSize)) : 0, count);
    stats.drawn = count;
    stats.alpha = alpha;
    if (opacityControl) opacityControl.show(state.opacity, alpha);
    renderer.draw(mvp, {
      pointSize,
      count,
      alpha,
      pixelRatio: dpr,
      background: cssColorToUnit(getComputedStyle(ui.stage).backgroundColor),
      depth: state.dim === 3,
      showEdges: state.showEdges,
      showArrows: state.showVectors,
      highlight: true,
      edgeColor: [0.5, 0.5, 0.5, 0.22],
    });
    const f = colors.field;
    const centroids = centroidsFor(state.meta, f, state.dim, state.embedding);
    labels.update(centroids, state.dim, colors.isShown, (c) => (f && f.counts ? f.counts[f.categoryIndex.get(c)] || 0 : 0), mvp, w, h);
    stats.frames += 1;
    if (!firstFrameDone) {
      renderer.finish(); // wait for the GPU so the timing is the real first frame
      firstFrameDone = true;
      prog.firstFrameDrawn();
      stats.timings.first_frame = now() - t0;
      stats.firstFrameCells = count;
      if (transport.sendEvent) transport.sendEvent("first_frame", { ms: stats.timings.first_frame, epoch_ms: Date.now(), n_cells: state.meta.n_cells, drawn: count, timings: stats.timings });
    }
    // every cell on screen for the first time (progressive loads: the last slice drawn)
    if (count === state.meta.n_cells && stats.timings.all_drawn === undefined) stats.timings.all_drawn = now() - t0;
    stats.lastFrameMs = now() - start;
  }
  /** Draw synchronously and wait for the GPU; returns the frame time in ms (benchmarks). */
  function drawSync() {
    const start = now();
    loop.flush();
    if (renderer) renderer.finish();
    return now() - start;
  }

  // ------------------------------------------------------------------ field and dimension
  async function setColorField(field, { emit = true } = {}) {
    field = field || defaultField(state.meta);
    const isLatest = fieldLatest.next();
    if (!field) { state.colorField = ""; colors.setField(null); requestDraw(); return; }
    const ts = now();
    setStatus(`loading ${field.replace(/^(obs|gene):/, "")}…`);
    let f;
    try {
      f = await loader.field(state.meta, field);
    } catch (err) {
      if (isLatest()) throw err;
      return; // a newer choice replaced this one: its failure no longer matters
    }
    if (destroyed || !isLatest()) return;
    state.colorField = field;
    const tu = now();
    colors.setField(f);
    if (f.progressive && renderer) {
      // later slices go straight to the GPU; the legend's counts are final at the end
      prog.bindField(f, renderer, requestDraw, () => { if (colors.field === f) { colors.setField(f); requestDraw(); } });
      f.done.catch((err) => { if (colors.field === f) showError(err); }); // a later slice failed
    }
    stats.timings.last_color_upload = now() - tu;
    stats.timings.last_color_switch = now() - ts;
    ui.field.value = field.startsWith("obs:") ? field : "";
    ui.gene.value = field.startsWith("gene:") ? field.slice(5) : "";
    setStatus("");
    if (emit) emitState();
    requestDraw();
  }

  const embeddings = createEmbeddingChoice();
  const setEmbedding = (id) => setDimension(id ? dimensionOf(state.meta, id) : state.dim, { embedding: id || "" });
  async function setDimension(dim, { emit = true, embedding = null } = {}) {
    dim = Number(dim) || state.meta.default_dimension;
    if (!state.meta.dimensions.includes(dim)) {
      throw new Error(`dimension ${dim} is not in this export, which has ${state.meta.dimensions.join(", ")}D`);
    }
    const isLatest = dimLatest.next();
    const emb = embeddings.resolve(state.meta, dim, embedding);
    setStatus(`loading ${dim}D embedding…`);
    const p = await loader.points(dim, requestEmbedding(state.meta, dim, emb));
    if (destroyed || !isLatest()) return;
    const modeChanged = (dim === 3) !== (state.dim === 3) || !state.dim;
    state.dim = dim;
    state.embedding = emb;
    points = p.progressive ? p : { ...p, dim };
    if (renderer && p.progressive) prog.bindPoints(p, renderer, requestDraw);
    if (p.progressive) p.done.catch((err) => { if (points === p) showError(err); }); // a later slice failed
    else if (renderer) renderer.setPositions(p.positions, p.comps);
    camera.setMode(dim === 3 ? 3 : 2);
    if (modeChanged) camera.reset();
    markActive(ui.dims, dim);
    fillEmbeddingSelect(ui, state.meta, dim, emb);
    selection.invalidate();
    if (state.showVectors) await overlays.refreshVectors();
    setStatus("");
    if (emit) emitState();
    requestDraw();
  }

  function setTool(tool) {
    state.tool = tool;
    markActive(ui.tools, tool);
    ui.stage.dataset.tool = tool;
  }

  // ------------------------------------------------------------------ wiring
  function listen(target, type, fn, opts) {
    target.addEventListener(type, fn, opts);
    disposers.push(() => target.removeEventListener(type, fn, opts));
  }
  attachPointer(ui, {
    camera, viewport, requestDraw, setTool,
    screenPositions: selection.screenPositions, visibilityTest: colors.visibilityTest,
    select: (idx) => selection.select(prog.order ? prog.order.toCells(idx) : idx), hover: selection.hover, hideTooltip: selection.hideTooltip,
    hasData: () => !!points, tool: () => state.tool, dim: () => state.dim, isDestroyed: () => destroyed,
  }, listen, options.frames || browserFrames);

  const boxes = wireToolbar(ui, listen, {
    setColorField: (f) => run(setColorField(f)),
    setDimension: (d) => run(setDimension(d)),
    setEmbedding: (id) => run(setEmbedding(id)),
    setTool,
    resetView: () => controller.resetView(),
    clearSelection: () => selection.select(new Uint32Array(0)),
    snapshot: () => downloadURL(controller.snapshot(), `${(state.meta && state.meta.name) || "cellucid"}.png`),
    setShowEdges: (on) => controller.setShowEdges(on),
    setShowVectors: (on) => controller.setShowVectors(on),
    setVectorField(v) { state.vectorField = v; run(overlays.refreshVectors().then(requestDraw)); },
    setPointSize: (px) => controller.setPointSize(px),
    setColormap: (name) => controller.setColormap(name),
    genes: () => (state.meta ? state.meta.genes : []),
  });
  setTool("pan");
  ui.cmap.value = colors.colormap;
  const opacityControl = createOpacityControl(ui.size, listen, (v) => controller.setOpacity(v));

  // host commands (Python over the comm)
  const offCommand = transport.onCommand((command, args, buffers) => {
    if (command === "highlight") {
      const b = buffers[0];
      const idx = b ? new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) : new Uint32Array(0);
      run(ready.then(() => selection.setFlags(idx)));
    } else if (command === "reset_view") controller.resetView();
    else if (command === "set_color_field") run(ready.then(() => setColorField(args.field || "")));
    else if (command === "set_dimension") run(ready.then(() => setDimension(args.dim)));
    else if (command === "set_embedding") run(ready.then(() => setEmbedding(args.embedding)));
  });

  // resize with the container, redraw when JupyterLab's theme changes (frame.js)
  const unobserve = observeStage(ui.stage, () => controller.resize(), requestDraw);

  // state read by hosts and tests: the units own these parts
  Object.defineProperties(state, {
    hidden: { get: () => colors.hidden, enumerable: true },
    colormap: { get: () => colors.colormap, enumerable: true },
    flags: { get: () => selection.flags, enumerable: true },
    selection: { get: () => selection.selection, enumerable: true },
  });

  // ------------------------------------------------------------------ start
  const ready = startViewer({
    transport, options, stats, state, data: loader, getRenderer, setStatus, showError, emitState, requestDraw,
    isDestroyed: () => destroyed,
    setMeta(meta) {
      state.meta = meta;
      prog.enable(meta);
      state.vectorField = fillToolbar(ui, meta, (d) => run(setDimension(d)));
      boxes.edgesBox.checked = state.showEdges;
      boxes.vectorsBox.checked = state.showVectors;
      ui.size.value = String(state.pointSize || autoPointSize(meta.n_cells));
    },
    setDimension, setColorField,
    refreshEdges: overlays.refreshEdges,
  });
  ready.catch(showError);

  const controller = {
    ready,
    stats,
    /** @type {typeof state & {hidden: Set<number>, colormap: string, flags: Uint8Array|null, selection: Uint32Array}} */
    state: /** @type {any} */ (state),
    get meta() { return state.meta; },
    setColorField: (field) => run(ready.then(() => setColorField(field))),
    setDimension: (d) => run(ready.then(() => setDimension(d))),
    /** Show embedding `id` of meta.embeddings (switches to its dimension); "": the dimension's default. */
    setEmbedding: (id) => run(ready.then(() => setEmbedding(id))),
    highlight: (indices) => run(ready.then(() => selection.setFlags(indices ? Uint32Array.from(indices) : null))),
    select: (indices) => run(ready.then(() => selection.select(Uint32Array.from(indices || [])))),
    resetView() { camera.reset(); selection.invalidate(); requestDraw(); },
    onSelect: (cb) => selection.onSelect(cb),
    resize() { selection.invalidate(); requestDraw(); },
    setPointSize(px) { state.pointSize = Number(px) || 0; ui.size.value = String(state.pointSize || autoPointSize(state.meta ? state.meta.n_cells : 0)); emitState(); requestDraw(); },
    setShowEdges(on) { state.showEdges = !!on; boxes.edgesBox.checked = state.showEdges; emitState(); return run(ready.then(overlays.refreshEdges).then(requestDraw)); },
    setShowVectors(on) { state.showVectors = !!on; boxes.vectorsBox.checked = state.showVectors; emitState(); return run(ready.then(overlays.refreshVectors).then(requestDraw)); },
    setColormap(name) { colors.setColormap(name); ui.cmap.value = colors.colormap; },
    /** Point opacity in (0, 1], or 0 for automatic from the density on screen. */
    setOpacity(v) { state.opacity = Math.min(1, Math.max(0, Number(v) || 0)); emitState(); requestDraw(); },
    /** Cells loaded and drawn so far (progressive loading) and the opacity of the last frame. */
    get progress() { return { total: state.meta ? state.meta.n_cells : 0, loaded: points ? (points.loaded ?? state.meta.n_cells) : 0, drawn: stats.drawn, alpha: stats.alpha, progressive: prog.enabled }; },
    setHeight(px) { if (px) ui.root.style.setProperty("--cnb-height", `${px}px`); controller.resize(); },
    /** PNG of the current view as a data URL (drawn synchronously so the buffer is valid). */
    snapshot() { drawSync(); return ui.canvas.toDataURL("image/png"); },
    /** Benchmark helper: move the camera a little and time a synchronous redraw. */
    benchmarkRedraw() {
      const [w, hgt] = viewport();
      if (state.dim === 3) camera.orbit(5, 2); else camera.pan(3, 2, w, hgt);
      return drawSync();
    },
    drawSync,
    camera,
    /** Drawn position of cell i (after the 1D strip layout). */
    positionsOf(i) {
      if (!points) return null;
      const k = prog.order ? prog.order.positionOf(i) : i;
      return Array.from(points.positions.subarray(k * points.comps, (k + 1) * points.comps));
    },
    get renderStats() { return renderer ? renderer.stats() : null; },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      loop.stop();
      lod.stop();
      offCommand();
      for (const d of disposers) d();
      disposers.length = 0;
      unobserve();
      selection.clearListeners();
      if (renderer) renderer.destroy();
      renderer = null;
      ui.root.remove();
      if (globalThis.__cellucidViewers) globalThis.__cellucidViewers.delete(controller);
    },
  };
  /** @type {any} */ (el).__cellucidViewer = controller;
  (globalThis.__cellucidViewers ||= new Set()).add(controller);
  return controller;
}
