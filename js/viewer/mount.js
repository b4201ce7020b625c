// mountViewer(el, transport, options) -> controller: the viewer, independent of where
// its data come from (comm in a notebook, HTTP in a browser tab). The wizard embeds it.
//
// controller = { setColorField(field), setDimension(d), highlight(indices), resetView(),
//                onSelect(cb), resize(), destroy(),
//                setPointSize(px), setShowEdges(bool), setShowVectors(bool), snapshot() -> dataURL,
//                ready: Promise, stats, state }
// field strings: "obs:<key>", "gene:<id>" or "" (the export's first categorical field).
import { buildCategoricalLut, buildContinuousPalette, categoryColors, parseColor, rgbaCss } from "./colormaps.js";
import { arrowSegments, categoryCounts, continuousForDisplay, continuousValue, stripFrom1D } from "./decode.js";
import { createCamera } from "./camera.js";
import { createRenderer } from "./renderer.js";
import { nearestPoint, projectPoints } from "./picking.js";
import { attachPointer } from "./interaction.js";
import { attachGeneSearch } from "./gene_search.js";
import { createLabelLayer } from "./labels.js";
import { buildLayout, formatNumber, h, markActive, renderCategoricalLegend, renderColorbar, segmented } from "./ui.js";

const HOVER_RADIUS = 8;

function now() {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}

function parseCssColor(text) {
  const m = /rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)/.exec(text || "");
  if (m) return [Number(m[1]) / 255, Number(m[2]) / 255, Number(m[3]) / 255];
  const c = parseColor(text);
  return c ? [c[0] / 255, c[1] / 255, c[2] / 255] : [1, 1, 1];
}

function autoPointSize(n) {
  if (n > 500000) return 1.5;
  if (n > 100000) return 2;
  if (n > 20000) return 3;
  if (n > 2000) return 4;
  return 6;
}

/**
 * Mount the viewer in `el`.
 * @param {HTMLElement} el
 * @param {object} transport  from createCommTransport / createHttpTransport
 * @param {{dimension?: number, colorField?: string, pointSize?: number, showEdges?: boolean,
 *          showVectors?: boolean, height?: number, colormap?: string,
 *          onStateChange?: (state) => void, onError?: (err) => void}} [options]
 */
export function mountViewer(el, transport, options = {}) {
  const t0 = now();
  const ui = buildLayout(el);
  if (options.height) ui.root.style.setProperty("--cnb-height", `${options.height}px`);
  const selectListeners = new Set();
  const disposers = [];
  const stats = { t_mount: t0, timings: {}, frames: 0, lastFrameMs: null };
  const state = {
    meta: null,
    dim: 0,
    colorField: "",
    pointSize: options.pointSize || 0,
    showEdges: !!options.showEdges,
    showVectors: !!options.showVectors,
    vectorField: null,
    colormap: options.colormap || "viridis",
    tool: "pan",
    hidden: new Set(),
    flags: null, // Uint8Array of highlighted cells, or null
    selection: new Uint32Array(0),
  };
  const cache = { points: new Map(), fields: new Map(), edges: null, vectors: new Map() };
  let current = null; // prepared field being drawn
  let positions = null, comps = 2;
  let destroyed = false;
  let raf = 0;
  let firstFrameDone = false;
  let projection = { key: "", screen: null };
  let renderer = null;
  const camera = createCamera(2);

  function emitState() {
    if (options.onStateChange) {
      options.onStateChange({
        dimension: state.dim, colorField: state.colorField, pointSize: state.pointSize,
        showEdges: state.showEdges, showVectors: state.showVectors,
      });
    }
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
  function setStatus(text) {
    ui.status.textContent = text;
    ui.status.classList.toggle("cnb-visible", !!text);
  }

  try {
    renderer = createRenderer(ui.canvas);
  } catch (err) {
    showError(err);
  }

  // ------------------------------------------------------------------ sizing & drawing
  function viewport() {
    const w = Math.max(1, ui.canvas.clientWidth), hgt = Math.max(1, ui.canvas.clientHeight);
    return [w, hgt];
  }
  function syncCanvasSize() {
    const dpr = globalThis.devicePixelRatio || 1;
    const [w, hgt] = viewport();
    const W = Math.round(w * dpr), H = Math.round(hgt * dpr);
    if (ui.canvas.width !== W || ui.canvas.height !== H) {
      ui.canvas.width = W;
      ui.canvas.height = H;
    }
    return dpr;
  }
  function background() {
    return parseCssColor(getComputedStyle(ui.stage).backgroundColor);
  }

  function drawNow() {
    raf = 0;
    if (destroyed || !renderer || !positions) return;
    const start = now();
    const dpr = syncCanvasSize();
    const [w, hgt] = viewport();
    const mvp = camera.matrix(w, hgt);
    renderer.draw(mvp, {
      pointSize: state.pointSize || autoPointSize(state.meta.n_cells),
      pixelRatio: dpr,
      background: background(),
      depth: state.dim === 3,
      showEdges: state.showEdges,
      showArrows: state.showVectors,
      highlight: true,
      edgeColor: [0.5, 0.5, 0.5, 0.22],
    });
    updateLabels(mvp, w, hgt);
    stats.frames += 1;
    if (!firstFrameDone) {
      renderer.finish(); // wait for the GPU so the timing is the real first frame
      firstFrameDone = true;
      stats.timings.first_frame = now() - t0;
      if (transport.sendEvent) transport.sendEvent("first_frame", { ms: stats.timings.first_frame, epoch_ms: Date.now(), n_cells: state.meta.n_cells, timings: stats.timings });
    }
    stats.lastFrameMs = now() - start;
  }
  function requestDraw() {
    if (!raf && !destroyed) raf = requestAnimationFrame(drawNow);
  }
  /** Draw synchronously and wait for the GPU; returns the frame time in ms (benchmarks). */
  function drawSync() {
    if (raf) { cancelAnimationFrame(raf); raf = 0; }
    const start = now();
    drawNow();
    if (renderer) renderer.finish();
    return now() - start;
  }

  // ------------------------------------------------------------------ labels
  const labels = createLabelLayer(ui.labels);
  function updateLabels(mvp, w, hgt) {
    const f = current;
    const list = f && f.kind === "categorical" && f.centroids ? f.centroids[String(state.dim)] || [] : null;
    labels.update(list, state.dim, (category) => {
      const idx = f.categoryIndex.get(category);
      return idx !== undefined && !state.hidden.has(idx);
    }, mvp, w, hgt);
  }

  // ------------------------------------------------------------------ data loading
  async function loadPoints(dim) {
    if (cache.points.has(dim)) return cache.points.get(dim);
    const ts = now();
    const { arrays } = await transport.request("points", { dim });
    let pts = arrays.points;
    let c = dim;
    if (dim === 1) { pts = stripFrom1D(pts); c = 2; }
    const entry = { positions: pts, comps: c, raw: arrays.points };
    cache.points.set(dim, entry);
    stats.timings[`points_${dim}d`] = now() - ts;
    return entry;
  }

  function fieldMeta(key) {
    return state.meta.obs.find((f) => f.key === key);
  }

  async function loadField(field) {
    if (cache.fields.has(field)) return cache.fields.get(field);
    const ts = now();
    let prepared;
    if (field.startsWith("obs:")) {
      const key = field.slice(4);
      const fm = fieldMeta(key);
      if (!fm) throw new Error(`obs field '${key}' is not in this export; fields: ${state.meta.obs.map((f) => f.key).join(", ")}`);
      const { header, arrays } = await transport.request("obs", { key });
      if (fm.kind === "categorical") {
        const n = fm.categories.length;
        const colors = categoryColors(n, fm.colors);
        prepared = {
          kind: "categorical", field, label: key, codes: arrays.values, categories: fm.categories, colors,
          counts: categoryCounts(arrays.values, n), missingCode: fm.missing_code ?? (arrays.values instanceof Uint8Array ? 255 : 65535),
          centroids: fm.centroids || {}, categoryIndex: new Map(fm.categories.map((c, i) => [String(c), i])),
        };
      } else {
        prepared = { kind: "continuous", field, label: key, ...continuousForDisplay(arrays.values, { bits: header.bits, min: header.min, max: header.max }) };
      }
    } else if (field.startsWith("gene:")) {
      const gene = field.slice(5);
      const { header, arrays } = await transport.request("gene", { gene });
      prepared = { kind: "continuous", field, label: gene, ...continuousForDisplay(arrays.values, { bits: header.bits, min: header.min, max: header.max }) };
    } else {
      throw new Error(`colour field must look like 'obs:<key>' or 'gene:<id>', got '${field}'`);
    }
    if (prepared.kind === "continuous") {
      let nMissing = 0;
      const codes = prepared.codes, miss = prepared.missing;
      for (let i = 0; i < codes.length; i++) if (codes[i] === miss) nMissing++;
      prepared.nMissing = nMissing;
    }
    cache.fields.set(field, prepared);
    stats.timings[`field:${field}`] = now() - ts;
    return prepared;
  }

  function applyColoring() {
    if (!renderer) return;
    const f = current;
    if (!f) {
      renderer.setValues(null);
      renderer.setColoring({ kind: "uniform" });
      ui.legend.replaceChildren();
      return;
    }
    if (f.kind === "categorical") {
      const hidden = new Set([...state.hidden].filter((i) => i >= 0));
      const lut = buildCategoricalLut(f.colors, f.missingCode, hidden, state.hidden.has(-1));
      // uint8 codes: 256-colour palette (fast path); uint16 codes: texture
      renderer.setColoring(f.missingCode === 255 ? { kind: "palette", colors: lut.data, scale: 1, missing: 255 } : { kind: "texture", lut });
      renderCategoricalLegend(ui.legend, f.label, { ...f, hidden: state.hidden }, {
        toggle: (i) => { state.hidden.has(i) ? state.hidden.delete(i) : state.hidden.add(i); applyColoring(); requestDraw(); },
        isolate: (i) => {
          const all = [...f.categories.keys(), -1];
          const onlyThis = state.hidden.size === all.length - 1 && !state.hidden.has(i);
          state.hidden = onlyThis ? new Set() : new Set(all.filter((j) => j !== i));
          applyColoring(); requestDraw();
        },
        showAll: () => { state.hidden = new Set(); applyColoring(); requestDraw(); },
      });
    } else {
      // 8-bit values index the palette directly; 16-bit ones are scaled to its 255 steps
      renderer.setColoring({ kind: "palette", colors: buildContinuousPalette(state.colormap), scale: 254 / f.qmax, missing: f.missing });
      renderColorbar(ui.legend, f.label, f, state.colormap);
    }
  }

  async function setColorField(field) {
    field = field || defaultField();
    const ts = now();
    if (!field) { current = null; applyColoring(); requestDraw(); return; }
    setStatus(`loading ${field.replace(/^(obs|gene):/, "")}…`);
    const f = await loadField(field);
    if (destroyed) return;
    state.colorField = field;
    if (!current || current.field !== f.field) state.hidden = new Set();
    current = f;
    const tu = now();
    renderer && renderer.setValues(f.codes);
    applyColoring();
    stats.timings.last_color_upload = now() - tu;
    stats.timings.last_color_switch = now() - ts;
    ui.field.value = field.startsWith("obs:") ? field : "";
    ui.gene.value = field.startsWith("gene:") ? field.slice(5) : "";
    setStatus("");
    emitState();
    requestDraw();
  }

  function defaultField() {
    const m = state.meta;
    if (!m) return "";
    const cat = m.obs.find((f) => f.kind === "categorical");
    const any = cat || m.obs[0];
    if (any) return `obs:${any.key}`;
    return m.genes.length ? `gene:${m.genes[0]}` : "";
  }

  async function setDimension(dim) {
    dim = Number(dim) || state.meta.default_dimension;
    if (!state.meta.dimensions.includes(dim)) {
      throw new Error(`dimension ${dim} is not in this export, which has ${state.meta.dimensions.join(", ")}D`);
    }
    setStatus(`loading ${dim}D embedding…`);
    const p = await loadPoints(dim);
    if (destroyed) return;
    const modeChanged = (dim === 3) !== (state.dim === 3) || !state.dim;
    state.dim = dim;
    positions = p.positions;
    comps = p.comps;
    renderer && renderer.setPositions(positions, comps);
    camera.setMode(dim === 3 ? 3 : 2);
    if (modeChanged) camera.reset();
    markActive(ui.dims, dim);
    projection.key = "";
    if (state.showVectors) await refreshVectors();
    setStatus("");
    emitState();
    requestDraw();
  }

  async function refreshEdges() {
    if (!state.showEdges || !state.meta.has_edges || !renderer) { renderer && renderer.setEdges(null); return; }
    if (!cache.edges) {
      setStatus("loading kNN edges…");
      const { arrays } = await transport.request("edges", {});
      cache.edges = arrays.pairs;
      setStatus("");
    }
    renderer.setEdges(cache.edges);
  }

  async function refreshVectors() {
    const field = state.vectorField;
    const spec = field && state.meta.vectors[field];
    if (!state.showVectors || !spec || !renderer || !spec.dims.includes(state.dim) || state.dim === 1) {
      renderer && renderer.setArrows(null);
      return;
    }
    const k = `${field}|${state.dim}`;
    if (!cache.vectors.has(k)) {
      setStatus("loading vectors…");
      const { arrays } = await transport.request("vectors", { field, dim: state.dim });
      cache.vectors.set(k, arrays.vectors);
      setStatus("");
    }
    const vec = cache.vectors.get(k);
    const raw = cache.points.get(state.dim).raw;
    // scale arrows so a typical one is ~3% of the view
    let sum = 0, cnt = 0;
    const n = vec.length / state.dim, step = Math.max(1, Math.floor(n / 5000));
    for (let i = 0; i < n; i += step) {
      let s = 0;
      for (let c = 0; c < state.dim; c++) s += vec[i * state.dim + c] ** 2;
      if (Number.isFinite(s)) { sum += Math.sqrt(s); cnt++; }
    }
    const scale = cnt && sum > 0 ? 0.06 / (sum / cnt) : 1;
    renderer.setArrows(arrowSegments(raw, vec, state.dim, scale));
  }

  // ------------------------------------------------------------------ selection & highlight
  function setFlags(indices) {
    if (!indices || indices.length === 0) {
      state.flags = null;
      renderer && renderer.setHighlight(null);
    } else {
      const flags = new Uint8Array(state.meta.n_cells);
      for (let i = 0; i < indices.length; i++) if (indices[i] < flags.length) flags[indices[i]] = 1;
      state.flags = flags;
      renderer && renderer.setHighlight(flags);
    }
    requestDraw();
  }
  function select(indices) {
    state.selection = indices;
    setFlags(indices);
    ui.clear.classList.toggle("cnb-visible", indices.length > 0);
    setStatus(indices.length ? `${indices.length.toLocaleString()} cells selected` : "");
    transport.sendSelection(indices);
    for (const cb of selectListeners) cb(indices);
  }

  function visibilityTest() {
    const f = current;
    if (!f || f.kind !== "categorical" || state.hidden.size === 0) return undefined;
    const visible = new Uint8Array(f.missingCode + 1).fill(1);
    for (const i of state.hidden) visible[i >= 0 ? i : f.missingCode] = 0;
    const codes = f.codes;
    return (i) => visible[codes[i]] === 1;
  }

  function screenPositions() {
    const [w, hgt] = viewport();
    const key = `${camera.version}|${w}|${hgt}|${state.dim}`;
    if (projection.key !== key) {
      projection.screen = projectPoints(positions, comps, camera.matrix(w, hgt), w, hgt, projection.screen);
      projection.key = key;
    }
    return projection.screen;
  }

  // ------------------------------------------------------------------ interaction
  function hover(x, y) {
    const i = nearestPoint(screenPositions(), x, y, HOVER_RADIUS, visibilityTest());
    if (i < 0) { hideTooltip(); return; }
    let value = "";
    const f = current;
    if (f && f.kind === "categorical") {
      const c = f.codes[i];
      value = c < f.categories.length ? f.categories[c] : "missing";
    } else if (f) {
      const v = continuousValue(f, i);
      value = Number.isNaN(v) ? "missing" : formatNumber(v);
    }
    ui.tooltip.textContent = "";
    ui.tooltip.append(h("b", { text: `cell ${i}` }), f ? h("div", { text: `${f.label}: ${value}` }) : "");
    ui.tooltip.style.transform = `translate(${x + 12}px, ${y + 12}px)`;
    ui.tooltip.classList.add("cnb-visible");
  }
  function hideTooltip() {
    ui.tooltip.classList.remove("cnb-visible");
  }
  function onKey(ev) {
    if (ev.target && ev.target.tagName === "INPUT") return;
    if (ev.key === "Escape") select(new Uint32Array(0));
    else if (ev.key === "r") controller.resetView();
    else if (ev.key === "l") setTool("lasso");
    else if (ev.key === "b") setTool("box");
    else if (ev.key === "p") setTool("pan");
  }
  function setTool(tool) {
    state.tool = tool;
    markActive(ui.tools, tool);
    ui.stage.dataset.tool = tool;
  }

  function listen(target, type, fn, opts) {
    target.addEventListener(type, fn, opts);
    disposers.push(() => target.removeEventListener(type, fn, opts));
  }
  attachPointer(ui, {
    camera, viewport, requestDraw, screenPositions, visibilityTest, select, hover, hideTooltip,
    hasData: () => !!positions, tool: () => state.tool, dim: () => state.dim, isDestroyed: () => destroyed,
  }, listen);
  listen(ui.root, "keydown", onKey);

  // toolbar
  segmented(ui.tools, [
    { value: "pan", label: "✥", title: "Pan / orbit (p)" },
    { value: "lasso", label: "lasso", title: "Lasso selection (l, or shift-drag)" },
    { value: "box", label: "box", title: "Box selection (b)" },
  ], setTool);
  setTool("pan");
  listen(ui.reset, "click", () => controller.resetView());
  listen(ui.clear, "click", () => select(new Uint32Array(0)));
  listen(ui.field, "change", () => { if (ui.field.value) run(setColorField(ui.field.value)); });
  listen(ui.snapshot, "click", () => {
    const a = document.createElement("a");
    a.href = controller.snapshot();
    a.download = `${(state.meta && state.meta.name) || "cellucid"}.png`;
    a.click();
  });
  const edgesBox = ui.edges.querySelector("input"), vectorsBox = ui.vectors.querySelector("input");
  listen(edgesBox, "change", () => controller.setShowEdges(edgesBox.checked));
  listen(vectorsBox, "change", () => controller.setShowVectors(vectorsBox.checked));
  listen(ui.vectorField, "change", () => { state.vectorField = ui.vectorField.value; run(refreshVectors().then(requestDraw)); });
  listen(ui.size, "input", () => controller.setPointSize(Number(ui.size.value)));
  listen(ui.cmap, "change", () => { state.colormap = ui.cmap.value; applyColoring(); requestDraw(); });
  ui.cmap.value = state.colormap;

  // gene search over all exported genes
  attachGeneSearch(ui, () => (state.meta ? state.meta.genes : []), (gene) => run(setColorField(`gene:${gene}`)), listen);

  // python / host commands
  const offCommand = transport.onCommand((command, args, buffers) => {
    if (command === "highlight") {
      const b = buffers[0];
      const idx = b ? new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) : new Uint32Array(0);
      run(ready.then(() => setFlags(idx)));
    } else if (command === "reset_view") controller.resetView();
    else if (command === "set_color_field") run(ready.then(() => setColorField(args.field || "")));
    else if (command === "set_dimension") run(ready.then(() => setDimension(args.dim)));
  });

  // resize with the container
  let ro = null;
  if (typeof ResizeObserver !== "undefined") {
    ro = new ResizeObserver(() => { projection.key = ""; requestDraw(); });
    ro.observe(ui.stage);
  }
  // JupyterLab switches themes by changing <body> attributes and stylesheets; the canvas
  // clear colour comes from CSS, so redraw when the theme changes.
  let themeObserver = null;
  if (typeof MutationObserver !== "undefined" && globalThis.document && document.body) {
    themeObserver = new MutationObserver(() => requestDraw());
    themeObserver.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
  }

  function run(promise) {
    return Promise.resolve(promise).then(clearError, showError);
  }

  // ------------------------------------------------------------------ start
  async function start() {
    setStatus("loading…");
    const tm = now();
    const { header: meta } = await transport.request("meta", {});
    stats.timings.meta = now() - tm;
    if (destroyed) return;
    state.meta = meta;
    const dim = meta.dimensions.includes(Number(options.dimension)) ? Number(options.dimension) : meta.default_dimension;
    let field = options.colorField || "";
    const valid = (f) => (f.startsWith("obs:") && meta.obs.some((o) => `obs:${o.key}` === f)) || (f.startsWith("gene:") && meta.genes.includes(f.slice(5)));
    if (field && !valid(field)) { showError(new Error(`colour field '${field}' is not in this export`)); field = ""; }
    field = field || defaultField();
    // toolbar contents that depend on the export
    ui.field.replaceChildren(
      h("option", { value: "", text: "— obs field —" }),
      ...["categorical", "continuous"].map((kind) => {
        const fs = meta.obs.filter((f) => f.kind === kind);
        return fs.length ? h("optgroup", { label: kind }, fs.map((f) => h("option", { value: `obs:${f.key}`, text: f.key }))) : null;
      }).filter(Boolean),
    );
    ui.gene.disabled = meta.genes.length === 0;
    ui.gene.placeholder = meta.genes.length ? `gene (${meta.genes.length.toLocaleString()})…` : "no genes exported";
    segmented(ui.dims, meta.dimensions.map((d) => ({ value: d, label: `${d}D`, title: `${d}D embedding` })), (d) => run(setDimension(d)));
    ui.edges.classList.toggle("cnb-absent", !meta.has_edges);
    const vids = Object.keys(meta.vectors || {});
    ui.vectors.classList.toggle("cnb-absent", vids.length === 0);
    ui.vectorField.classList.toggle("cnb-absent", vids.length < 2);
    ui.vectorField.replaceChildren(...vids.map((v) => h("option", { value: v, text: meta.vectors[v].label })));
    state.vectorField = vids[0] || null;
    edgesBox.checked = state.showEdges;
    vectorsBox.checked = state.showVectors;
    ui.size.value = String(state.pointSize || autoPointSize(meta.n_cells));
    // Points and colours travel in parallel; meanwhile the GPU compiles the shaders for
    // these data formats, and the points go to the GPU as soon as they arrive.
    const fieldPromise = field ? loadField(field) : null;
    if (fieldPromise) fieldPromise.catch(() => {}); // reported by setColorField below
    const pointsPromise = loadPoints(dim);
    if (renderer) {
      const fm = field.startsWith("obs:") ? fieldMeta(field.slice(4)) : null;
      const wide = fm && fm.kind === "categorical" && fm.missing_code === 65535;
      const t = now();
      renderer.warmUp(dim === 3 ? 3 : 2, wide, dim === 3);
      stats.timings.warm_up = now() - t;
    }
    await pointsPromise;
    if (destroyed) return;
    await setDimension(dim);
    await setColorField(field);
    if (state.showEdges) await refreshEdges();
    stats.timings.data_ready = now() - t0;
    requestDraw();
  }
  const ready = start();
  ready.catch(showError);

  const controller = {
    ready,
    stats,
    state,
    get meta() { return state.meta; },
    setColorField: (field) => run(ready.then(() => setColorField(field))),
    setDimension: (d) => run(ready.then(() => setDimension(d))),
    highlight: (indices) => run(ready.then(() => setFlags(indices ? Uint32Array.from(indices) : null))),
    select: (indices) => run(ready.then(() => select(Uint32Array.from(indices || [])))),
    resetView() { camera.reset(); projection.key = ""; requestDraw(); },
    onSelect(cb) { selectListeners.add(cb); return () => selectListeners.delete(cb); },
    resize() { projection.key = ""; requestDraw(); },
    setPointSize(px) { state.pointSize = Number(px) || 0; ui.size.value = String(state.pointSize || autoPointSize(state.meta ? state.meta.n_cells : 0)); emitState(); requestDraw(); },
    setShowEdges(on) { state.showEdges = !!on; edgesBox.checked = state.showEdges; emitState(); return run(ready.then(refreshEdges).then(requestDraw)); },
    setShowVectors(on) { state.showVectors = !!on; vectorsBox.checked = state.showVectors; emitState(); return run(ready.then(refreshVectors).then(requestDraw)); },
    setHeight(px) { if (px) ui.root.style.setProperty("--cnb-height", `${px}px`); requestDraw(); },
    /** PNG of the current view as a data URL (drawn synchronously so the buffer is valid). */
    snapshot() { drawSync(); return ui.canvas.toDataURL("image/png"); },
    /** Benchmark helpers: move the camera a little and time a synchronous redraw. */
    benchmarkRedraw() {
      const [w, hgt] = viewport();
      if (state.dim === 3) camera.orbit(5, 2); else camera.pan(3, 2, w, hgt);
      return drawSync();
    },
    drawSync,
    camera,
    /** Drawn position of cell i (after the 1D strip layout). */
    positionsOf(i) { return positions ? Array.from(positions.subarray(i * comps, (i + 1) * comps)) : null; },
    get renderStats() { return renderer ? renderer.stats() : null; },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      if (raf) cancelAnimationFrame(raf);
      offCommand();
      for (const d of disposers) d();
      if (ro) ro.disconnect();
      if (themeObserver) themeObserver.disconnect();
      selectListeners.clear();
      renderer && renderer.destroy();
      renderer = null;
      ui.root.remove();
      if (globalThis.__cellucidViewers) globalThis.__cellucidViewers.delete(controller);
    },
  };
  el.__cellucidViewer = controller;
  (globalThis.__cellucidViewers ||= new Set()).add(controller);
  return controller;
}

export { rgbaCss };
