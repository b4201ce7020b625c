// The viewer as a whole, with a fake transport, a fake renderer, manual animation
// frames and happy-dom: start-up, stale replies, legend state, hover in 3D, resize and
// device pixel ratio, cleanup on destroy.
import assert from "node:assert/strict";
import { test } from "node:test";
import { installDom, installObservers, setSize, settle } from "./helpers/dom.js";
import { mounted } from "./helpers/viewer.js";

installDom();
const observers = installObservers();
const { projectPoints } = await import("../viewer/picking.js");
const { stripFrom1D } = await import("../viewer/decode.js");

test("start-up colours by the field asked for and reports it once (show(color_field=...))", async () => {
  for (const field of ["obs:score", "gene:CD3E"]) {
    const { v, states, renderer, frames } = await mounted({ colorField: field });
    assert.equal(v.state.colorField, field);
    assert.deepEqual(states.map((s) => s.colorField), [field], "no report with an empty or default field");
    assert.equal(states[0].dimension, 2);
    assert.equal(renderer.coloring.kind, "palette");
    frames.run();
    assert.equal(renderer.draws.length, 1);
    v.destroy();
  }
});

test("start-up with no field shows the first categorical; an unknown one says so", async () => {
  const { v, host } = await mounted({ colorField: "obs:nope", dimension: 3 });
  assert.equal(v.state.colorField, "obs:louvain");
  assert.equal(v.state.dim, 3);
  assert.match(host.querySelector(".cnb-error").textContent, /colour field 'obs:nope' is not in this export/);
  v.destroy();
});

test("a stale field reply never overwrites a newer choice", async () => {
  const { v, transport, renderer } = await mounted({}, { hold: true });
  await settle();
  transport.releaseAll(); // start-up: points and default field
  await v.ready;
  assert.equal(v.state.colorField, "obs:louvain");
  const first = v.setColorField("obs:score");
  const second = v.setColorField("gene:LYZ");
  await settle();
  transport.release("gene");
  await second;
  transport.release("obs", (a) => a.key === "score");
  await first;
  assert.equal(v.state.colorField, "gene:LYZ");
  assert.deepEqual(Array.from(renderer.values), [0, 10, 20, 30, 40, 50], "the gene's values stay on the GPU");
  v.destroy();
});

test("a stale dimension reply never overwrites a newer choice", async () => {
  const { v, transport, renderer } = await mounted({}, { hold: true });
  await settle();
  transport.releaseAll();
  await v.ready;
  const to3 = v.setDimension(3);
  const to1 = v.setDimension(1);
  await settle();
  transport.release("points", (a) => a.dim === 1);
  await to1;
  transport.release("points", (a) => a.dim === 3);
  await to3;
  assert.equal(v.state.dim, 1);
  assert.equal(renderer.comps, 2);
  assert.deepEqual(Array.from(renderer.positions), Array.from(stripFrom1D(new Float32Array([-1, -0.5, 0, 0.2, 0.5, 1]))));
  v.destroy();
});

test("asking twice for one field sends one request; a failed field shows an error", async () => {
  const { v, transport, host } = await mounted();
  await Promise.all([v.setColorField("obs:score"), v.setColorField("obs:score")]);
  assert.equal(transport.requests.filter((r) => r.kind === "obs" && r.args.key === "score").length, 1);
  await v.setColorField("obs:missing");
  assert.match(host.querySelector(".cnb-error").textContent, /obs field 'missing' is not in this export; fields: score, louvain, wide/);
  await v.setColorField("louvain");
  assert.match(host.querySelector(".cnb-error").textContent, /must look like 'obs:<key>' or 'gene:<id>', got 'louvain'/);
  await v.setDimension(4);
  assert.match(host.querySelector(".cnb-error").textContent, /dimension 4 is not in this export, which has 1, 2, 3D/);
  await v.setColorField("obs:louvain");
  assert.equal(host.querySelector(".cnb-error").textContent, "", "a success clears the error");
  v.destroy();
});

test("legend: click hides, double-click isolates, again shows all; the LUT follows", async () => {
  const { v, host, renderer } = await mounted();
  const rows = () => [...host.querySelectorAll(".cnb-legend-row")];
  assert.equal(rows().length, 4, "three categories and missing");
  assert.equal(rows()[0].getAttribute("title"), "T cells (2 cells)", "full name on hover");
  rows()[1].querySelector(".cnb-legend-name").dispatchEvent(new MouseEvent("click", { bubbles: true }));
  assert.deepEqual([...v.state.hidden], [1]);
  assert.equal(renderer.coloring.colors[1 * 4 + 3], 0, "hidden category: alpha 0");
  assert.equal(renderer.coloring.colors[0 * 4 + 3], 255);
  assert.ok(rows()[1].classList.contains("cnb-hidden"));
  rows()[0].dispatchEvent(new MouseEvent("dblclick", { bubbles: true }));
  assert.deepEqual([...v.state.hidden].sort(), [-1, 1, 2]);
  assert.equal(renderer.coloring.colors[255 * 4 + 3], 0, "missing hidden too");
  rows()[0].dispatchEvent(new MouseEvent("dblclick", { bubbles: true }));
  assert.equal(v.state.hidden.size, 0, "isolating the only shown entry shows all");
  rows()[2].dispatchEvent(new MouseEvent("click", { bubbles: true, altKey: true }));
  assert.deepEqual([...v.state.hidden].sort(), [-1, 0, 1]);
  host.querySelector(".cnb-show-all").click();
  assert.equal(v.state.hidden.size, 0);
  rows()[3].dispatchEvent(new MouseEvent("click", { bubbles: true }));
  assert.deepEqual([...v.state.hidden], [-1]);
  await v.setColorField("obs:score");
  assert.equal(v.state.hidden.size, 0, "a new field shows everything");
  assert.ok(host.querySelector(".cnb-colorbar"));
  await v.setColorField("obs:wide");
  assert.equal(renderer.coloring.kind, "texture", "uint16 codes use the texture LUT");
  v.destroy();
});

/** Screen position of cell i as the viewer projects it. */
function screenOf(v, i, w = 300, h = 200) {
  const p = v.positionsOf(i);
  const s = projectPoints(Float32Array.from(p), p.length, v.camera.matrix(w, h), w, h);
  return [s[0], s[1]];
}

test("hover picks the cell under the pointer in 3D, skipping hidden categories", async () => {
  const { v, host, frames } = await mounted({ dimension: 3 });
  const stage = host.querySelector(".cnb-stage");
  const tip = host.querySelector(".cnb-tooltip");
  const [x, y] = screenOf(v, 3);
  stage.dispatchEvent(new PointerEvent("pointermove", { clientX: x, clientY: y, bubbles: true }));
  frames.run();
  assert.ok(tip.classList.contains("cnb-visible"));
  assert.equal(tip.dataset.cell, "3");
  assert.match(tip.textContent, /cell 3louvain: B cells/);
  v.camera.orbit(200, 40); // the same cell moves on screen
  const [x2, y2] = screenOf(v, 3);
  assert.ok(Math.hypot(x2 - x, y2 - y) > 5, "orbiting moves the cell");
  stage.dispatchEvent(new PointerEvent("pointermove", { clientX: x2, clientY: y2, bubbles: true }));
  frames.run();
  assert.equal(tip.dataset.cell, "3", "picked again after the camera moved");
  host.querySelectorAll(".cnb-legend-row")[1].click(); // hide B cells: nothing to pick there any more
  stage.dispatchEvent(new PointerEvent("pointermove", { clientX: x2, clientY: y2, bubbles: true }));
  frames.run();
  assert.ok(!tip.classList.contains("cnb-visible"));
  stage.dispatchEvent(new PointerEvent("pointermove", { clientX: -500, clientY: -500, bubbles: true }));
  frames.run();
  assert.ok(!tip.classList.contains("cnb-visible"));
  v.destroy();
});

test("canvas follows its CSS size times the device pixel ratio; resize redraws", async () => {
  globalThis.devicePixelRatio = 2;
  const { v, canvas, renderer, frames } = await mounted();
  frames.run();
  assert.equal(canvas.width, 600);
  assert.equal(canvas.height, 400);
  assert.equal(renderer.draws.at(-1).pixelRatio, 2);
  setSize(canvas, 400, 100);
  globalThis.devicePixelRatio = 1.5;
  const ro = observers.resize.at(-1);
  ro.fire();
  assert.equal(frames.size, 1, "a resize asks for one frame");
  ro.fire();
  assert.equal(frames.size, 1, "frames are coalesced");
  frames.run();
  assert.equal(canvas.width, 600);
  assert.equal(canvas.height, 150);
  assert.equal(renderer.draws.at(-1).pixelRatio, 1.5);
  v.setHeight(300);
  assert.equal(v.state.dim, 2);
  globalThis.devicePixelRatio = 1;
  v.destroy();
});

test("destroy removes every listener, observer, frame and GL object", async () => {
  let proto = Object.getPrototypeOf(document.createElement("div"));
  while (!Object.prototype.hasOwnProperty.call(proto, "addEventListener")) proto = Object.getPrototypeOf(proto);
  const origAdd = proto.addEventListener, origRemove = proto.removeEventListener;
  /** @type {Map<EventTarget, number>} */
  const active = new Map();
  proto.addEventListener = function (type, fn, o) { active.set(this, (active.get(this) || 0) + 1); return origAdd.call(this, type, fn, o); };
  proto.removeEventListener = function (type, fn, o) { active.set(this, (active.get(this) || 0) - 1); return origRemove.call(this, type, fn, o); };
  try {
    const { v, transport, renderer, frames, host } = await mounted();
    const stage = host.querySelector(".cnb-stage"), root = host.querySelector(".cnb-viewer"), gene = host.querySelector(".cnb-gene");
    const ro = observers.resize.at(-1), mo = observers.mutation.at(-1);
    assert.equal(active.get(stage), 7, "pointer, wheel and menu listeners on the stage");
    assert.equal(active.get(root), 1, "keyboard shortcuts");
    assert.equal(active.get(gene), 4);
    v.resize();
    assert.equal(frames.size, 1);
    v.destroy();
    for (const el of [stage, root, gene, host.querySelector(".cnb-field")]) assert.equal(active.get(el) || 0, 0);
    assert.equal(frames.size, 0, "pending frame cancelled");
    assert.ok(ro.disconnected && mo.disconnected);
    assert.equal(transport.nCommandListeners, 0);
    assert.ok(renderer.destroyed);
    assert.equal(host.querySelector(".cnb-viewer"), null);
    assert.ok(![...globalThis.__cellucidViewers].includes(v));
    v.destroy(); // twice is harmless
    v.resize();
    frames.run();
    assert.equal(renderer.draws.length, 0);
  } finally {
    proto.addEventListener = origAdd;
    proto.removeEventListener = origRemove;
  }
});

test("with the real renderer on a WebGL2 double, destroy frees every GL object", async () => {
  const { fakeGl } = await import("./helpers/fake_gl.js");
  const { createRenderer } = await import("../viewer/renderer.js");
  const gl = fakeGl();
  const { v, frames } = await mounted({
    createRenderer: (canvas) => { canvas.getContext = () => gl; return createRenderer(canvas); },
    showEdges: true, showVectors: true,
  });
  frames.run();
  assert.ok(gl.calls.some(([name]) => name === "drawArrays"), "a frame was drawn");
  assert.ok(gl.live.size > 10);
  v.destroy();
  assert.equal(gl.live.size, 0, "no buffer, texture, vertex array or program left");
  assert.equal(gl.lost, true, "the context is released");
});
