// The viewer's units on their own (no DOM): latest-reply-wins, the data cache, the
// hidden-set rules of the legend, colourings, tooltip text, highlight flags, canvas
// sizing with the device pixel ratio, the draw loop and the start-up choices.
import assert from "node:assert/strict";
import { test } from "node:test";
import { coloringSpec, isolateEntry, MISSING_ENTRY, toggleEntry, visibilityTest } from "../viewer/color_state.js";
import { createDataCache, createLatest } from "../viewer/data_cache.js";
import { autoPointSize, defaultField, isValidField, prepareField } from "../viewer/fields.js";
import { createDrawLoop, cssColorToUnit, syncCanvasSize } from "../viewer/frame.js";
import { describeCell, flagsFor } from "../viewer/selection.js";
import { initialChoice } from "../viewer/startup.js";
import { fakeTransport, smallExport } from "./helpers/fakes.js";
import { manualFrames } from "./helpers/dom.js";

const { meta } = smallExport();

test("latest wins: an older check turns false once a newer request starts", () => {
  const latest = createLatest();
  const a = latest.next();
  assert.equal(a(), true);
  const b = latest.next();
  assert.deepEqual([a(), b()], [false, true]);
});

test("data cache: one request per item, failures not cached, 1D drawn as a strip", async () => {
  const transport = fakeTransport();
  const stats = { timings: {} };
  const data = createDataCache(transport, stats);
  const [p1, p2] = await Promise.all([data.points(2), data.points(2)]);
  assert.equal(p1, p2);
  assert.equal(transport.requests.filter((r) => r.kind === "points").length, 1);
  assert.ok(stats.timings.points_2d >= 0);
  const one = await data.points(1);
  assert.deepEqual([one.comps, one.positions.length, one.raw.length], [2, 12, 6]);
  let fail = true;
  const flaky = { request: async (kind, args) => { if (fail) throw new Error("kernel busy"); return transport.request(kind, args); } };
  const d2 = createDataCache(flaky, { timings: {} });
  await assert.rejects(d2.field(meta, "obs:louvain"), /kernel busy/);
  fail = false;
  assert.equal((await d2.field(meta, "obs:louvain")).kind, "categorical", "asking again retries");
  await assert.rejects(data.field(meta, "obs:nope"), /obs field 'nope' is not in this export; fields: score, louvain, wide/);
  await assert.rejects(data.field(meta, "nope"), /got 'nope'/);
  assert.deepEqual(Array.from(await data.edges()), [0, 1, 1, 2]);
  assert.equal((await data.vectors("velocity", 3)).length, 18);
});

test("fields: default, validity, preparation, point size", () => {
  assert.equal(defaultField(meta), "obs:louvain", "first categorical, not the first field");
  assert.equal(defaultField({ obs: [{ key: "x", kind: "continuous" }], genes: [] }), "obs:x");
  assert.equal(defaultField({ obs: [], genes: ["G"] }), "gene:G");
  assert.equal(defaultField({ obs: [], genes: [] }), "");
  assert.equal(defaultField(null), "");
  assert.deepEqual(["obs:score", "gene:LYZ", "obs:nope", "gene:NOPE", "score"].map((f) => isValidField(meta, f)), [true, true, false, false, false]);
  const cat = prepareField("obs:louvain", meta.obs[1], { header: {}, arrays: { values: new Uint8Array([0, 0, 1, 255]) } });
  assert.deepEqual(Array.from(cat.counts), [2, 1, 0, 1], "per category, then missing");
  assert.deepEqual(cat.colors[0], [31, 119, 180, 255], "scanpy's first colour");
  assert.equal(cat.categoryIndex.get("NK"), 2);
  const cont = prepareField("gene:X", null, { header: { bits: 8, min: 0, max: 1 }, arrays: { values: new Uint8Array([0, 255, 255]) } });
  assert.deepEqual([cont.kind, cont.label, cont.nMissing, cont.qmax], ["continuous", "X", 2, 254]);
  const float = prepareField("obs:f", { kind: "continuous" }, { header: { bits: null }, arrays: { values: new Float32Array([1, NaN, 3]) } });
  assert.deepEqual([float.min, float.max, float.nMissing, float.missing], [1, 3, 1, 65535]);
  assert.deepEqual([10, 5000, 50000, 200000, 900000].map(autoPointSize), [6, 4, 3, 2, 1.5]);
});

test("legend rules: toggle, isolate, isolate again shows all", () => {
  let hidden = new Set();
  hidden = toggleEntry(hidden, 1);
  hidden = toggleEntry(hidden, MISSING_ENTRY);
  assert.deepEqual([...hidden], [1, -1]);
  assert.deepEqual([...toggleEntry(hidden, 1)], [-1]);
  const iso = isolateEntry(hidden, 0, 3);
  assert.deepEqual([...iso].sort(), [-1, 1, 2]);
  assert.equal(isolateEntry(iso, 0, 3).size, 0);
  assert.deepEqual([...isolateEntry(iso, 2, 3)].sort(), [-1, 0, 1], "isolating another entry moves the isolation");
});

test("visibility and colouring follow the hidden set", () => {
  const f = prepareField("obs:louvain", meta.obs[1], { header: {}, arrays: { values: new Uint8Array([0, 1, 2, 255]) } });
  assert.equal(visibilityTest(f, new Set()), undefined);
  const vis = visibilityTest(f, new Set([1, MISSING_ENTRY]));
  assert.deepEqual([0, 1, 2, 3].map(vis), [true, false, true, false]);
  const spec = coloringSpec(f, new Set([2]), "viridis");
  assert.equal(spec.kind, "palette");
  assert.deepEqual([spec.colors[2 * 4 + 3], spec.colors[0 * 4 + 3], spec.missing], [0, 255, 255]);
  const wide = prepareField("obs:wide", meta.obs[2], { header: {}, arrays: { values: new Uint16Array([0, 1]) } });
  const tex = coloringSpec(wide, new Set([MISSING_ENTRY]), "viridis");
  assert.equal(tex.kind, "texture");
  assert.equal(tex.lut.data[65535 * 4 + 3], 0);
  const cont = prepareField("obs:f", { kind: "continuous" }, { header: { bits: 16, min: 0, max: 1 }, arrays: { values: new Uint16Array([0, 65534]) } });
  const cs = coloringSpec(cont, new Set(), "magma");
  assert.deepEqual([cs.kind, cs.scale, cs.missing], ["palette", 254 / 65534, 65535]);
  assert.deepEqual(coloringSpec(null, new Set(), "viridis"), { kind: "uniform" });
});

test("tooltip text and highlight flags", () => {
  const f = prepareField("obs:louvain", meta.obs[1], { header: {}, arrays: { values: new Uint8Array([0, 255]) } });
  assert.deepEqual([describeCell(f, 0), describeCell(f, 1), describeCell(null, 0)], ["T cells", "missing", ""]);
  const c = prepareField("gene:G", null, { header: { bits: 8, min: 0, max: 2.54 }, arrays: { values: new Uint8Array([127, 255]) } });
  assert.deepEqual([describeCell(c, 0), describeCell(c, 1)], ["1.27", "missing"]);
  assert.deepEqual(Array.from(flagsFor([0, 2, 7], 3)), [1, 0, 1]);
  assert.equal(flagsFor([], 3), null);
  assert.equal(flagsFor(null, 3), null);
});

test("canvas buffer = CSS size x device pixel ratio, at least 1 x 1", () => {
  const canvas = { clientWidth: 300, clientHeight: 150, width: 0, height: 0 };
  assert.deepEqual(syncCanvasSize(canvas, 2), { w: 300, h: 150, dpr: 2 });
  assert.deepEqual([canvas.width, canvas.height], [600, 300]);
  syncCanvasSize(canvas, 1.25);
  assert.deepEqual([canvas.width, canvas.height], [375, 188]);
  const hidden = { clientWidth: 0, clientHeight: 0, width: 5, height: 5 };
  assert.deepEqual(syncCanvasSize(hidden, 3), { w: 1, h: 1, dpr: 3 });
  assert.deepEqual([hidden.width, hidden.height], [3, 3]);
  globalThis.devicePixelRatio = 1.5;
  assert.equal(syncCanvasSize(canvas).dpr, 1.5);
  delete globalThis.devicePixelRatio;
  assert.deepEqual(cssColorToUnit("rgb(255, 0, 51)"), [1, 0, 0.2]);
  assert.deepEqual(cssColorToUnit(""), [1, 1, 1]);
});

test("draw loop: one frame per request burst, flush draws now, stop cancels", () => {
  const frames = manualFrames();
  let draws = 0;
  const loop = createDrawLoop(() => { draws += 1; }, frames);
  loop.request();
  loop.request();
  assert.equal(frames.size, 1);
  assert.ok(loop.pending);
  frames.run();
  assert.equal(draws, 1);
  loop.request();
  loop.flush();
  assert.equal(draws, 2);
  assert.equal(frames.size, 0);
  loop.request();
  loop.stop();
  frames.run();
  loop.request();
  loop.flush();
  assert.equal(draws, 2, "nothing after stop");
});

test("start-up choice: asked dimension and field when valid, else the defaults with an error", () => {
  assert.deepEqual(initialChoice(meta, { dimension: 3, colorField: "gene:CD3E" }), { dim: 3, field: "gene:CD3E", error: null });
  const bad = initialChoice(meta, { dimension: 7, colorField: "obs:nope" });
  assert.deepEqual([bad.dim, bad.field], [2, "obs:louvain"]);
  assert.match(bad.error.message, /colour field 'obs:nope' is not in this export/);
  assert.deepEqual(initialChoice(meta, {}), { dim: 2, field: "obs:louvain", error: null });
});
