// The viewer's controls in happy-dom: lasso and box selection, pan, orbit and zoom,
// keyboard shortcuts, toolbar controls, gene box, edges and vectors, host commands,
// the anywidget entry (traits <-> controller) and the standalone page.
import assert from "node:assert/strict";
import { test } from "node:test";
import { installDom, installObservers, settle } from "./helpers/dom.js";
import { fakeModel, fakeTransport, fakeRenderer } from "./helpers/fakes.js";
import { mounted } from "./helpers/viewer.js";

installDom();
installObservers();
const { projectPoints } = await import("../viewer/picking.js");
const { arrowScale } = await import("../viewer/overlays.js");
const { placeLabels, projectCentroid } = await import("../viewer/labels.js");
const { render } = await import("../viewer/widget.js");

const pointer = (type, x, y, extra = {}) => new PointerEvent(type, { clientX: x, clientY: y, bubbles: true, button: 0, pointerId: 1, ...extra });

function screenOf(v, i) {
  const p = v.positionsOf(i);
  const s = projectPoints(Float32Array.from(p), p.length, v.camera.matrix(300, 200), 300, 200);
  return [s[0], s[1]];
}

test("lasso and box select the cells inside; a click clears; the host hears of it", async () => {
  const { v, host, transport } = await mounted();
  const stage = host.querySelector(".cnb-stage");
  stage.setPointerCapture = () => {};
  stage.releasePointerCapture = () => {};
  const seen = [];
  const off = v.onSelect((idx) => seen.push(Array.from(idx)));
  // box around cells 3 and 4 (upper right)
  const [x3, y3] = screenOf(v, 3), [x4, y4] = screenOf(v, 4);
  host.querySelector(".cnb-tools button[data-value=box]").click();
  assert.equal(stage.dataset.tool, "box");
  stage.dispatchEvent(pointer("pointerdown", Math.min(x3, x4) - 5, Math.min(y3, y4) - 5));
  stage.dispatchEvent(pointer("pointermove", Math.max(x3, x4) + 5, Math.max(y3, y4) + 5));
  assert.ok(host.querySelector(".cnb-overlay polygon").getAttribute("points").length > 10, "the box is drawn");
  stage.dispatchEvent(pointer("pointerup", Math.max(x3, x4) + 5, Math.max(y3, y4) + 5));
  assert.deepEqual(seen.at(-1), [3, 4]);
  assert.deepEqual(transport.selections.at(-1), [3, 4]);
  assert.deepEqual(Array.from(v.state.selection), [3, 4]);
  assert.ok(host.querySelector(".cnb-clear").classList.contains("cnb-visible"));
  assert.match(host.querySelector(".cnb-status").textContent, /2 cells selected/);
  // shift-drag lassos from the pan tool: a triangle around cell 0
  host.querySelector(".cnb-tools button[data-value=pan]").click();
  const [x0, y0] = screenOf(v, 0);
  stage.dispatchEvent(pointer("pointerdown", x0 - 10, y0 - 10, { shiftKey: true }));
  stage.dispatchEvent(pointer("pointermove", x0 + 10, y0 - 10));
  stage.dispatchEvent(pointer("pointermove", x0, y0 + 12));
  stage.dispatchEvent(pointer("pointerup", x0, y0 + 12));
  assert.deepEqual(seen.at(-1), [0]);
  // a click without moving clears
  stage.dispatchEvent(pointer("pointerdown", 5, 5, { shiftKey: true }));
  stage.dispatchEvent(pointer("pointerup", 5, 5));
  assert.deepEqual(seen.at(-1), []);
  await v.select([1, 2]);
  assert.deepEqual(seen.at(-1), [1, 2]);
  host.querySelector(".cnb-clear").click();
  assert.deepEqual(seen.at(-1), []);
  off();
  v.destroy();
});

test("pan, orbit and zoom move the camera; keys switch tools and reset", async () => {
  const { v, host, renderer, frames } = await mounted();
  const stage = host.querySelector(".cnb-stage");
  stage.setPointerCapture = () => {};
  stage.releasePointerCapture = () => {};
  const version = v.camera.version;
  stage.dispatchEvent(pointer("pointerdown", 100, 100));
  stage.dispatchEvent(pointer("pointermove", 130, 90));
  stage.dispatchEvent(pointer("pointerup", 130, 90));
  assert.ok(v.camera.cx < 0 && v.camera.cy < 0, "dragging right and up moves the view");
  stage.dispatchEvent(new WheelEvent("wheel", { deltaY: -100, clientX: 150, clientY: 100, bubbles: true, cancelable: true }));
  assert.ok(v.camera.scale > 1, "wheel up zooms in");
  stage.dispatchEvent(new WheelEvent("wheel", { deltaY: 3, deltaMode: 1, clientX: 150, clientY: 100, bubbles: true, cancelable: true }));
  frames.run();
  assert.ok(v.camera.version > version);
  assert.ok(renderer.draws.length >= 1);
  const root = host.querySelector(".cnb-viewer");
  for (const [key, tool] of [["l", "lasso"], ["b", "box"], ["p", "pan"]]) {
    root.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true }));
    assert.equal(v.state.tool, tool);
  }
  root.dispatchEvent(new KeyboardEvent("keydown", { key: "r", bubbles: true }));
  assert.equal(v.camera.scale, 1);
  await v.select([0]);
  root.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
  assert.equal(v.state.selection.length, 0);
  await v.setDimension(3);
  const yaw = v.camera.yaw;
  stage.dispatchEvent(pointer("pointerdown", 100, 100));
  stage.dispatchEvent(pointer("pointermove", 140, 100));
  stage.dispatchEvent(pointer("pointerup", 140, 100));
  assert.notEqual(v.camera.yaw, yaw, "left drag orbits in 3D");
  stage.dispatchEvent(pointer("pointerleave", 0, 0));
  stage.dispatchEvent(new Event("contextmenu", { bubbles: true, cancelable: true }));
  host.querySelector(".cnb-reset").click();
  assert.equal(v.camera.yaw, 0.6);
  assert.ok(typeof v.benchmarkRedraw() === "number");
  v.destroy();
});

test("toolbar: field select, gene box, dimensions, size, colour map, edges, vectors, snapshot", async () => {
  const { v, host, renderer, states, transport } = await mounted();
  const field = host.querySelector(".cnb-field");
  assert.deepEqual([...field.querySelectorAll("optgroup")].map((g) => g.label), ["categorical", "continuous"]);
  field.value = "obs:score";
  field.dispatchEvent(new Event("change"));
  await settle();
  assert.equal(v.state.colorField, "obs:score");
  const gene = host.querySelector(".cnb-gene");
  assert.equal(gene.placeholder, "gene (3)…");
  gene.dispatchEvent(new Event("focus"));
  assert.deepEqual([...host.querySelectorAll(".cnb-gene-item")].map((e) => e.textContent), ["CD33", "CD3E", "LYZ"]);
  gene.value = "cd3";
  gene.dispatchEvent(new Event("input"));
  assert.deepEqual([...host.querySelectorAll(".cnb-gene-item")].map((e) => e.textContent), ["CD33", "CD3E"]);
  gene.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
  await settle();
  assert.equal(v.state.colorField, "gene:CD33", "Enter: the first ranked gene in the export's order");
  gene.value = "ly";
  gene.dispatchEvent(new Event("input"));
  host.querySelector(".cnb-gene-item").dispatchEvent(new MouseEvent("mousedown", { bubbles: true }));
  await settle();
  assert.equal(v.state.colorField, "gene:LYZ");
  gene.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }));
  assert.ok(!host.querySelector(".cnb-gene-list").classList.contains("cnb-visible"));
  host.querySelector(".cnb-dims button[data-value='1']").click();
  await settle();
  assert.equal(v.state.dim, 1);
  assert.ok(host.querySelector(".cnb-dims button[data-value='1']").classList.contains("cnb-active"));
  const size = host.querySelector(".cnb-size");
  size.value = "3.5";
  size.dispatchEvent(new Event("input"));
  assert.equal(v.state.pointSize, 3.5);
  const cmap = host.querySelector(".cnb-cmap");
  cmap.value = "magma";
  cmap.dispatchEvent(new Event("change"));
  assert.equal(v.state.colormap, "magma");
  assert.deepEqual(Array.from(renderer.coloring.colors.slice(0, 3)), [0, 0, 4], "magma's first colour");
  await v.setDimension(2);
  const edges = host.querySelector(".cnb-edges input");
  edges.checked = true;
  edges.dispatchEvent(new Event("change"));
  await settle();
  assert.deepEqual(Array.from(renderer.edges), [0, 1, 1, 2]);
  assert.equal(v.renderStats.edgeCount, 4);
  await v.setShowEdges(false);
  assert.equal(renderer.edges, null);
  const vectors = host.querySelector(".cnb-vectors input");
  vectors.checked = true;
  vectors.dispatchEvent(new Event("change"));
  await settle();
  assert.equal(renderer.arrows.length, 6 * 6, "one arrow per cell");
  await v.setDimension(1);
  assert.equal(renderer.arrows, null, "no arrows in 1D");
  await v.setDimension(2);
  host.querySelector(".cnb-vector-field").dispatchEvent(new Event("change"));
  await settle();
  assert.ok(states.at(-1).showVectors);
  assert.equal(transport.requests.filter((r) => r.kind === "vectors").length, 1, "vectors cached per field and dimension");
  let downloaded = null;
  window.HTMLAnchorElement.prototype.click = function () { downloaded = this.download; };
  ui(host).canvas.toDataURL = () => "data:image/png;base64,AAAA";
  host.querySelector(".cnb-snapshot").click();
  assert.equal(downloaded, "small.png");
  v.destroy();
});

const ui = (host) => ({ canvas: host.querySelector(".cnb-canvas") });

test("host commands: highlight, colour field, dimension, reset", async () => {
  const { v, transport, renderer } = await mounted();
  transport.command("highlight", {}, [new DataView(new Uint32Array([1, 4, 99]).buffer)]);
  await settle();
  assert.deepEqual(Array.from(renderer.highlight), [0, 1, 0, 0, 1, 0], "index 99 is out of range");
  transport.command("highlight", {}, []);
  await settle();
  assert.equal(renderer.highlight, null);
  await v.highlight([2]);
  assert.equal(v.state.flags[2], 1);
  transport.command("set_color_field", { field: "gene:CD3E" });
  transport.command("set_dimension", { dim: 3 });
  transport.command("reset_view");
  await settle();
  assert.equal(v.state.colorField, "gene:CD3E");
  assert.equal(v.state.dim, 3);
  await v.setColorField("");
  assert.equal(v.state.colorField, "obs:louvain", "'' means the default field");
  v.destroy();
});

test("no WebGL2: the viewer says so and still loads", async () => {
  const errors = [];
  const { v, host, transport } = await mounted({ createRenderer: () => { throw new Error("WebGL2 is not available"); }, onError: (e) => errors.push(e.message) });
  assert.match(host.querySelector(".cnb-error").textContent, /WebGL2 is not available/);
  assert.deepEqual(errors, ["WebGL2 is not available"]);
  assert.deepEqual(transport.events[0], ["error", { message: "WebGL2 is not available" }]);
  assert.equal(v.renderStats, null);
  await v.setShowEdges(true);
  await v.setShowVectors(true);
  v.destroy();
});

test("labels: greedy by size, overlaps hidden, off-screen and behind-camera skipped", async () => {
  const kept = placeLabels([
    { text: "small", x: 100, y: 100, size: 5 },
    { text: "big", x: 104, y: 102, size: 500 },
    { text: "apart", x: 250, y: 30, size: 1 },
  ]);
  assert.deepEqual(kept.map((k) => k.text), ["big", "apart"]);
  const I = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  assert.deepEqual(projectCentroid([0, 0], 2, I, 200, 100), [100, 50]);
  assert.deepEqual(projectCentroid([1, 5], 1, I, 200, 100), [200, 50], "1D: y is 0");
  assert.equal(projectCentroid([9, 0], 2, I, 200, 100), null);
  assert.equal(projectCentroid([0, 0, 0], 3, [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, -1], 200, 100), null);
  const { v, host, frames } = await mounted();
  frames.run();
  const shown = () => [...host.querySelectorAll(".cnb-label")].filter((l) => l.style.display !== "none").map((l) => l.textContent);
  assert.deepEqual(shown().sort(), ["B cells", "NK", "T cells"]);
  host.querySelectorAll(".cnb-legend-row")[2].click();
  frames.run();
  assert.deepEqual(shown().sort(), ["B cells", "T cells"], "hidden category: no label");
  await v.setColorField("obs:score");
  frames.run();
  assert.deepEqual(shown(), []);
  v.destroy();
});

test("arrow scale makes a typical arrow 6 % of the view", () => {
  assert.ok(Math.abs(arrowScale(new Float32Array([3, 4, 3, 4]), 2) - 0.06 / 5) < 1e-9);
  assert.equal(arrowScale(new Float32Array([0, 0]), 2), 1);
  assert.equal(arrowScale(new Float32Array([NaN, 1]), 2), 1);
});

test("anywidget entry: traits start the viewer, Python changes reach it, its own echoes do not", async () => {
  const model = fakeModel({ dimension: 2, color_field: "obs:score", point_size: 0, show_edges: false, show_vectors: false, height: 400, timeout_ms: 1000 });
  const transport = fakeTransport();
  const renderer = fakeRenderer();
  const el = document.createElement("div");
  document.body.append(el);
  let controller = null;
  const { mountViewer } = await import("../viewer/mount.js");
  const cleanup = render({ model, el }, {
    createTransport: (m, o) => { assert.equal(m, model); assert.deepEqual(o, { timeoutMs: 1000 }); return transport; },
    mount: (host, t, options) => (controller = mountViewer(host, t, { ...options, createRenderer: () => renderer, frames: { request: () => 1, cancel() {} } })),
  });
  await controller.ready;
  await settle(); // any echo of a half-set state would have been applied by now
  assert.equal(controller.state.colorField, "obs:score", "the field given to show() is kept");
  assert.equal(model.state.color_field, "obs:score");
  assert.deepEqual(model.sets.map(([k]) => k), [], "nothing to write back: the state matches the traits");
  model.remote("color_field", "gene:LYZ");
  await settle();
  assert.equal(controller.state.colorField, "gene:LYZ");
  controller.setDimension(3);
  await settle();
  assert.equal(model.state.dimension, 3, "a change in the viewer reaches the trait");
  assert.equal(model.saves, 1);
  model.remote("point_size", 5);
  model.remote("show_edges", true);
  model.remote("show_vectors", true);
  model.remote("height", 300);
  await settle();
  assert.equal(controller.state.pointSize, 5);
  assert.ok(renderer.edges && renderer.arrows);
  cleanup();
  assert.equal(model.listenerCount(), 0);
  assert.ok(transport.destroyed);
});

test("standalone page: lists datasets, mounts the one asked for, reports selections", async () => {
  document.body.innerHTML = '<h1 id="title"></h1><select id="dataset"></select><span id="selection"></span><div id="app"></div>';
  const fetched = [];
  globalThis.fetch = async (url) => {
    fetched.push(url);
    if (url === "/_cellucid/datasets") return { ok: true, json: async () => ({ datasets: [{ id: "a", name: "A" }, { id: "b", name: "B" }] }) };
    return { ok: false, status: 404, json: async () => ({ error: "test server" }) };
  };
  window.happyDOM.setURL("http://localhost/?dataset=b&dim=3&color=obs:x");
  Object.defineProperty(globalThis, "location", { value: window.location, configurable: true });
  globalThis.addEventListener = window.addEventListener.bind(window);
  globalThis.innerHeight = 800;
  await import("../standalone/main.js");
  await settle(50);
  assert.equal(document.getElementById("title").textContent, "B");
  assert.equal(document.title, "B · Cellucid viewer");
  assert.equal(document.getElementById("dataset").hidden, false);
  assert.ok(fetched.some((u) => u.startsWith("/_cellucid/api/b/meta")));
  const viewer = window.cellucidViewer || globalThis.cellucidViewer;
  assert.ok(viewer, "the viewer is exposed for tests and the console");
  assert.match(document.querySelector(".cnb-error").textContent, /server answered 404 for 'meta': test server/);
  viewer.destroy();
});
