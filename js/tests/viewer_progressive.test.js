// Progressive loading (progressive.js): the draw order (pinned against
// cellucid_nb/viewer_order.py), chunk ranges and their in-order streaming, the motion
// subsample, and the whole viewer on a 1,000-cell export streamed in slices: first frame
// from the subsample, the rest appended, fields streamed, selection and highlight in
// original cell indices.
import assert from "node:assert/strict";
import { test } from "node:test";
import { installDom, installObservers, manualFrames, setSize, settle } from "./helpers/dom.js";
import { fakeRenderer, fakeTransport } from "./helpers/fakes.js";

installDom();
installObservers();
const P = await import("../viewer/progressive.js");
const { projectPoints } = await import("../viewer/picking.js");

const SPEC = { kind: "feistel-lowbias32", seed: 0x5eedce11, rounds: 4 };
// Same values as tests/test_viewer_order.py (computed there with numpy).
const PINNED = { 1000: [123, 941, 938, 8, 667, 362, 506, 816], 10000000: [6718271, 3302392, 571169, 7605192, 1215980, 5831299, 4101057, 6051642] };

test("the draw order matches the Python backend's, value for value", () => {
  for (const [n, values] of Object.entries(PINNED)) {
    const order = P.createDrawOrder(Number(n), SPEC);
    assert.deepEqual(values.map((_, k) => order.cellAt(k)), values);
    assert.deepEqual(values.map((c) => order.positionOf(c)), values.map((_, k) => k));
  }
  assert.throws(() => P.createDrawOrder(10, { kind: "shuffle", seed: 1, rounds: 4 }), /'shuffle' is not known/);
});

test("the draw order is a permutation of the cells for awkward sizes", () => {
  for (const n of [1, 2, 3, 4, 5, 17, 64, 65, 1000, 4097]) {
    const order = P.createDrawOrder(n, SPEC);
    const seen = new Uint8Array(n);
    for (let k = 0; k < n; k++) {
      const c = order.cellAt(k);
      assert.ok(c < n && !seen[c], `n=${n}: position ${k} -> ${c} repeats or is out of range`);
      seen[c] = 1;
      assert.equal(order.positionOf(c), k);
    }
  }
  assert.equal(P.halfBits(1), 1);
  assert.equal(P.halfBits(16), 2);
  assert.equal(P.halfBits(17), 3);
  assert.equal(P.hash32(0), 0);
  // numpy's uint32 arithmetic gives the same (viewer_order._hash32)
  assert.equal(P.hash32(1), 1753845952);
  assert.equal(P.hash32(0xdeadbeef), 3861431939);
});

test("selection indices map from draw positions to sorted cells and back", () => {
  const order = P.createDrawOrder(1000, SPEC);
  const cells = order.toCells(Uint32Array.from([0, 1, 2, 3]));
  assert.deepEqual(Array.from(cells), [8, 123, 938, 941]); // PINNED[1000][0..3], sorted
  const back = order.toPositions(cells);
  assert.deepEqual(Array.from(back).sort((a, b) => a - b), [0, 1, 2, 3]);
  assert.deepEqual(Array.from(order.toPositions([5, 1000, 2000])), [order.positionOf(5)], "indices past n are dropped");
});

test("gatherDrawOrder picks rows of the original array in the draw order", () => {
  const order = P.createDrawOrder(1000, SPEC);
  const src = Float32Array.from({ length: 2000 }, (_, i) => i); // row i holds (2i, 2i + 1)
  const rows = P.gatherDrawOrder(order, src, 2, 0, 4);
  assert.deepEqual(Array.from(rows), PINNED[1000].slice(0, 4).flatMap((c) => [2 * c, 2 * c + 1]));
  assert.ok(P.gatherDrawOrder(order, new Uint8Array(1000), 1, 10, 20) instanceof Uint8Array);
  assert.throws(() => P.gatherDrawOrder(order, src, 2, 5, 1001), /\[5, 1001\) is not within \[0, 1000\]/);
});

test("chunk ranges: the subsample first, then equal slices, covering every cell once", () => {
  assert.deepEqual(P.chunkRanges(10, 4, 3), [[0, 4], [4, 7], [7, 10]]);
  assert.deepEqual(P.chunkRanges(3, 4, 3), [[0, 3]]);
  assert.deepEqual(P.chunkRanges(0, 4, 3), []);
  const r = P.chunkRanges(10_000_000);
  assert.deepEqual(r[0], [0, P.FIRST_FRAME_CELLS]);
  assert.equal(r.at(-1)[1], 10_000_000);
  assert.ok(r.every(([a, b], i) => b > a && (i === 0 || a === r[i - 1][1])));
  assert.throws(() => P.chunkRanges(10, 0, 3), /first=0/);
});

test("streamChunks keeps one request ahead and applies slices in order whatever order replies come in", async () => {
  const ranges = P.chunkRanges(10, 4, 2); // [0,4] [4,6] [6,8] [8,10]
  const asked = [], applied = [], resolvers = new Map();
  const fetchChunk = (a, b) => { asked.push(a); return new Promise((res) => resolvers.set(a, () => res(`${a}-${b}`))); };
  const done = P.streamChunks(ranges, fetchChunk, (a, b, reply) => applied.push(reply));
  await settle();
  assert.deepEqual(asked, [0, 4], "the first slice and one ahead");
  resolvers.get(4)();
  await settle();
  assert.deepEqual(applied, [], "slice 4 waits for slice 0");
  resolvers.get(0)();
  await settle();
  assert.deepEqual(applied, ["0-4", "4-6"]);
  assert.deepEqual(asked, [0, 4, 6, 8]);
  resolvers.get(6)(); resolvers.get(8)();
  assert.equal(await done, true);
  assert.deepEqual(applied, ["0-4", "4-6", "6-8", "8-10"]);
  // with a gate, only the first slice goes out until it opens
  let open;
  const gate = new Promise((r) => { open = r; });
  const asked3 = [];
  const gated = P.streamChunks(ranges, async (a) => { asked3.push(a); return a; }, () => {}, { gate });
  await settle();
  assert.deepEqual(asked3, [0]);
  open();
  assert.equal(await gated, true);
  assert.deepEqual(asked3, [0, 4, 6, 8]);
  // a stream that is no longer current stops without applying more
  let current = true;
  const applied2 = [];
  const stopped = P.streamChunks(ranges, async (a, b) => `${a}-${b}`, (a, b, r) => { applied2.push(r); current = false; }, { isCurrent: () => current });
  assert.equal(await stopped, false);
  assert.deepEqual(applied2, ["0-4"]);
});

test("motion LOD: a subsample while the camera moves, everything once it has settled", () => {
  const timers = { pending: null, set(fn) { timers.pending = fn; return 1; }, clear() { timers.pending = null; } };
  let settled = 0;
  const lod = P.createMotionLOD({ budget: 100, settleMs: 50, onSettle: () => settled++, timers });
  assert.equal(lod.count(0, 1000), 1000, "first frame: no motion yet");
  assert.equal(lod.count(0, 1000), 1000, "same camera: all");
  assert.equal(lod.count(1, 1000), 100, "camera moved: the budget");
  assert.equal(lod.moving, true);
  assert.equal(lod.count(2, 1000), 100);
  assert.equal(lod.count(2, 80), 80, "small data are never cut");
  timers.pending();
  assert.equal(settled, 1);
  assert.equal(lod.count(2, 1000), 1000, "settled: all again");
  assert.equal(lod.count(3, 50), 50);
  assert.equal(lod.moving, false, "small data never start a motion");
  lod.count(4, 1000);
  lod.stop();
  assert.equal(timers.pending, null);
});

test("quantize16 clamps to the given range and marks non-finite values missing", () => {
  const out = new Uint16Array(6);
  P.quantize16(Float32Array.from([0, 5, 10, -1, 11, NaN]), 0, 10, out, 0);
  assert.deepEqual(Array.from(out), [0, 32767, 65534, 0, 65534, 65535]);
});

// ---------------------------------------------------------------- whole viewer, streamed

const N = 1000;
function streamedExport() {
  const order = P.createDrawOrder(N, SPEC);
  const pos = new Float32Array(2 * N), codes = new Uint8Array(N), gene = new Uint8Array(N), xs = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    pos[2 * i] = ((i % 40) / 39) * 1.6 - 0.8; // a 40 x 25 grid in original order
    pos[2 * i + 1] = (Math.floor(i / 40) / 24) * 1.6 - 0.8;
    codes[i] = i < 500 ? 0 : 1;
    gene[i] = i % 251;
    xs[i] = i / N;
  }
  const slice = (args, src, comps) => (args.order === "permuted" ? P.gatherDrawOrder(order, src, comps, Number(args.start), Number(args.stop)) : src);
  const meta = {
    name: "streamed", n_cells: N, dimensions: [1, 2], default_dimension: 2, has_edges: true, vectors: {}, genes: ["G1"], order: SPEC,
    obs: [{ key: "half", kind: "categorical", categories: ["low", "high"], colors: null, missing_code: 255, centroids: {} },
      { key: "f32", kind: "continuous" }],
  };
  const f32 = Float32Array.from(xs, (x) => x * 10);
  const replies = {
    points: (a) => ({ header: { dim: a.dim }, arrays: { points: a.dim === 1 ? slice(a, xs, 1) : slice(a, pos, 2) } }),
    obs: (a) => (a.key === "half"
      ? { header: {}, arrays: { values: slice(a, codes, 1) } }
      : { header: { bits: null, min: 0, max: 10 }, arrays: { values: slice(a, f32, 1) } }),
    gene: (a) => ({ header: { bits: 8, min: 0, max: 5 }, arrays: { values: slice(a, gene, 1) } }),
    edges: (a) => ({ header: {}, arrays: { pairs: Uint32Array.from(a.order === "permuted" ? [order.positionOf(0), order.positionOf(1)] : [0, 1]) } }),
  };
  return { meta, replies, order, pos, codes, gene };
}

/** The fake renderer plus the progressive methods, keeping a GPU-side copy of the buffers. */
function streamingRenderer() {
  const r = fakeRenderer();
  return Object.assign(r, {
    gpuPositions: null, gpuValues: null,
    reservePositions(n, comps) { r.calls.push("reservePositions"); r.gpuPositions = new Float32Array(n * comps); r.comps = comps; },
    updatePositions(start, data) { r.calls.push("updatePositions"); r.gpuPositions.set(data, start * r.comps); },
    setValues(v) { r.calls.push("setValues"); r.values = v; r.gpuValues = v ? v.slice() : null; },
    updateValues(start, data) { r.calls.push("updateValues"); r.gpuValues.set(data, start); },
  });
}

async function mountStreamed(options = {}) {
  const { mountViewer } = await import("../viewer/mount.js");
  const exp = streamedExport();
  const host = document.createElement("div");
  document.body.append(host);
  const transport = fakeTransport(exp, { hold: true });
  const renderer = streamingRenderer();
  const frames = manualFrames();
  const v = mountViewer(host, transport, { createRenderer: () => renderer, frames, firstFrameCells: 100, chunkCells: 300, motionCells: 200, ...options });
  setSize(host.querySelector(".cnb-canvas"), 300, 200);
  setSize(host.querySelector(".cnb-stage"), 300, 200);
  return { v, host, transport, renderer, frames, exp };
}

/** Answer the held requests of `kind` whose slice starts at `start`. */
async function release(transport, kind, start) {
  await settle();
  transport.release(kind, (a) => Number(a.start) === start);
  await settle();
}

test("the viewer draws the subsample first, then appends each slice, and selects in original indices", async () => {
  const { v, host, transport, renderer, frames, exp } = await mountStreamed();
  await release(transport, "obs", 0);
  await release(transport, "points", 0);
  await v.ready;
  await settle();
  const asked = () => transport.requests.filter((r) => r.kind === "points").map((r) => [r.args.start, r.args.stop]);
  assert.deepEqual(asked(), [[0, 100]], "the rest waits for the first frame");
  frames.run();
  assert.equal(renderer.draws.at(-1).count, 100, "first frame: the 100-cell subsample");
  assert.equal(v.stats.firstFrameCells, 100);
  // legend counts of the subsample so far (counted independently from the draw order)
  let low = 0;
  for (let k = 0; k < 100; k++) low += exp.codes[exp.order.cellAt(k)] === 0 ? 1 : 0;
  assert.match(host.querySelector(".cnb-legend").textContent, new RegExp(`low${low}high${100 - low}`));
  assert.deepEqual(v.progress, { total: N, loaded: 100, drawn: 100, alpha: renderer.draws.at(-1).alpha, progressive: true });
  await settle();
  assert.deepEqual(asked(), [[0, 100], [100, 400], [400, 700]], "then the slice awaited and one ahead");
  // points arrive before the field: only cells with both are drawn
  await release(transport, "points", 100);
  frames.run();
  assert.equal(renderer.draws.at(-1).count, 100);
  await release(transport, "obs", 100);
  frames.run();
  assert.equal(renderer.draws.at(-1).count, 400);
  for (const s of [400, 700]) { await release(transport, "points", s); await release(transport, "obs", s); }
  frames.run();
  assert.equal(renderer.draws.at(-1).count, N);
  assert.equal(transport.held.length, 0);
  // the GPU holds every cell at its draw position, with its own value
  for (const k of [0, 1, 99, 100, 523, 999]) {
    const c = exp.order.cellAt(k);
    assert.deepEqual(Array.from(renderer.gpuPositions.subarray(2 * k, 2 * k + 2)), Array.from(exp.pos.subarray(2 * c, 2 * c + 2)));
    assert.equal(renderer.gpuValues[k], exp.codes[c]);
  }
  assert.ok(renderer.calls.filter((c) => c === "updatePositions").length === 4 && renderer.calls.includes("reservePositions"));
  // the legend counts every cell once the field is complete
  await settle();
  assert.match(host.querySelector(".cnb-legend").textContent, /low500/);
  const t = v.stats.timings;
  for (const key of ["points_2d", "points_2d all", "field:obs:half", "field:obs:half all", "all_drawn"]) assert.ok(t[key] >= 0, `timing ${key}`);
  // positionsOf takes an original index
  assert.deepEqual(v.positionsOf(41), Array.from(exp.pos.subarray(82, 84)));

  // box selection over the left column of the grid -> the original indices i % 40 === 0
  const stage = host.querySelector(".cnb-stage");
  stage.setPointerCapture = () => {};
  stage.releasePointerCapture = () => {};
  const m = v.camera.matrix(300, 200);
  const corner = (i) => { const s = projectPoints(exp.pos.subarray(2 * i, 2 * i + 2), 2, m, 300, 200); return [s[0], s[1]]; };
  const [xa, ya] = corner(0), [xb, yb] = corner(960);
  const pointer = (type, x, y) => new PointerEvent(type, { clientX: x, clientY: y, bubbles: true, button: 0, pointerId: 1 });
  host.querySelector(".cnb-tools button[data-value=box]").click();
  stage.dispatchEvent(pointer("pointerdown", Math.min(xa, xb) - 1, Math.min(ya, yb) - 1));
  stage.dispatchEvent(pointer("pointermove", Math.max(xa, xb) + 1, Math.max(ya, yb) + 1));
  stage.dispatchEvent(pointer("pointerup", Math.max(xa, xb) + 1, Math.max(ya, yb) + 1));
  const expected = Array.from({ length: 25 }, (_, r) => r * 40);
  assert.deepEqual(Array.from(v.state.selection), expected);
  assert.deepEqual(transport.selections.at(-1), expected);
  // highlight flags sit at the draw positions of those cells
  const flags = renderer.highlight;
  for (const c of expected) assert.equal(flags[exp.order.positionOf(c)], 1);
  assert.equal(flags.reduce((a, b) => a + b, 0), 25);
  // the tooltip names the original cell
  const [x41, y41] = corner(41);
  stage.dispatchEvent(new PointerEvent("pointermove", { clientX: x41, clientY: y41, bubbles: true }));
  frames.run();
  assert.equal(host.querySelector(".cnb-tooltip").dataset.cell, "41");
  v.destroy();
});

test("colouring by a gene streams the same way; camera motion draws a subsample until it settles", async () => {
  const { v, transport, renderer, frames, exp } = await mountStreamed({ colorField: "gene:G1" });
  transport.releaseAll();
  await settle();
  for (let i = 0; i < 6; i++) { transport.releaseAll(); await settle(); frames.run(); }
  await v.ready;
  frames.run();
  assert.equal(renderer.draws.at(-1).count, N);
  for (const k of [0, 450, 999]) assert.equal(renderer.gpuValues[k], exp.gene[exp.order.cellAt(k)]);
  // a float32 field arrives as 16-bit codes against the header's range
  const switching = v.setColorField("obs:f32");
  for (let i = 0; i < 6; i++) { await settle(); transport.releaseAll(); }
  await switching;
  await settle();
  frames.run();
  const c = exp.order.cellAt(7);
  assert.equal(renderer.gpuValues[7], Math.round((c / N) * 10 * 6553.4));
  // motion: subsample (motionCells = 200) then everything after the settle timer
  v.benchmarkRedraw();
  assert.equal(renderer.draws.at(-1).count, 200);
  await new Promise((r) => setTimeout(r, 220));
  frames.run();
  assert.equal(renderer.draws.at(-1).count, N);
  v.destroy();
});

test("1D strips, edges as draw positions and a dimension switch restart the stream", async () => {
  const { v, transport, renderer, frames } = await mountStreamed({ dimension: 1, showEdges: true });
  for (let i = 0; i < 8; i++) { transport.releaseAll(); await settle(); frames.run(); }
  await v.ready;
  frames.run();
  assert.equal(v.state.dim, 1);
  assert.equal(renderer.comps, 2, "1D is drawn as a 2D strip");
  assert.deepEqual(transport.requests.find((r) => r.kind === "edges").args, { order: "permuted" });
  const sw = v.setDimension(2);
  for (let i = 0; i < 8; i++) { await settle(); transport.releaseAll(); }
  await sw;
  frames.run();
  assert.equal(v.state.dim, 2);
  assert.deepEqual(transport.requests.filter((r) => r.kind === "points" && r.args.dim === 2).map((r) => r.args.start), [0, 100, 400, 700]);
  v.destroy();
});

test("small exports and transports without an order load everything at once", async () => {
  const { mountViewer } = await import("../viewer/mount.js");
  const exp = streamedExport();
  for (const meta of [{ ...exp.meta, order: undefined }, exp.meta]) {
    const transport = fakeTransport({ meta, replies: exp.replies });
    const host = document.createElement("div");
    const renderer = fakeRenderer();
    const v = mountViewer(host, transport, { createRenderer: () => renderer, frames: manualFrames(), firstFrameCells: meta.order ? 5000 : 100 });
    await v.ready;
    assert.equal(v.progress.progressive, false);
    assert.ok(transport.requests.every((r) => r.args.order === undefined));
    assert.equal(renderer.positions.length, 2 * N);
    v.destroy();
  }
});

test("without a renderer (no WebGL2) the stream is not held back by a first frame that never comes", async () => {
  const { mountViewer } = await import("../viewer/mount.js");
  const exp = streamedExport();
  const transport = fakeTransport(exp);
  const errors = [];
  const v = mountViewer(document.createElement("div"), transport, {
    createRenderer: () => { throw new Error("WebGL2 is not available"); }, frames: manualFrames(),
    firstFrameCells: 100, chunkCells: 300, onError: (e) => errors.push(e.message),
  });
  await v.ready;
  for (let i = 0; i < 10 && v.progress.loaded < N; i++) await settle();
  assert.equal(v.progress.loaded, N);
  assert.match(errors[0], /WebGL2 is not available/);
  v.destroy();
});

test("a slice that fails after the first frame is shown as an error, not dropped silently", async () => {
  const { mountViewer } = await import("../viewer/mount.js");
  const exp = streamedExport();
  const points = exp.replies.points, obs = exp.replies.obs;
  exp.replies.points = (a) => { if (Number(a.start) === 400) throw new Error("points slice 400 failed"); return points(a); };
  exp.replies.obs = (a) => { if (Number(a.start) === 700) throw new Error("obs slice 700 failed"); return obs(a); };
  const transport = fakeTransport(exp);
  const errors = [];
  const frames = manualFrames();
  const host = document.createElement("div");
  const v = mountViewer(host, transport, { createRenderer: () => streamingRenderer(), frames, firstFrameCells: 100, chunkCells: 300, onError: (e) => errors.push(e.message) });
  await v.ready;
  for (let i = 0; i < 10 && errors.length < 2; i++) { frames.run(); await settle(); }
  assert.deepEqual(errors.sort(), ["obs slice 700 failed", "points slice 400 failed"]);
  assert.equal(v.progress.loaded, 400, "what arrived stays drawn");
  assert.match(host.querySelector(".cnb-error").textContent, /slice \d+ failed/);
  v.destroy();
});
