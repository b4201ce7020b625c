// Density-aware opacity (density.js): the alpha rule, the fixed setting, the toolbar
// control, what the renderer is told (premultiplied blending, draw count) and the
// widget's `opacity` trait.
import assert from "node:assert/strict";
import { test } from "node:test";
import { installDom, installObservers, settle } from "./helpers/dom.js";
import { fakeCanvas, fakeGl } from "./helpers/fake_gl.js";
import { fakeModel } from "./helpers/fakes.js";
import { mounted } from "./helpers/viewer.js";

installDom();
installObservers();
const D = await import("../viewer/density.js");
const { createRenderer } = await import("../viewer/renderer.js");
const { render } = await import("../viewer/widget.js");
const { createCamera } = await import("../viewer/camera.js");

test("typical coverage: overlaps around a typical on-screen point, from a projected sample", () => {
  // 1,000 sample points standing for 100,000, all in one 10 x 10 px bin of a 320 x 320 canvas (grid 32)
  const screen = new Float32Array(2000);
  for (let k = 0; k < 1000; k++) { screen[2 * k] = 3 + (k % 7); screen[2 * k + 1] = 4 + (k % 5); }
  // each point sees 999 others of the sample = 99,900 points in 100 px^2, x 2 px^2 points
  assert.ok(Math.abs(D.typicalCoverage(screen, 100_000, 320, 320, Math.SQRT2) - (999 * 100 * 2) / 100) < 1e-6);
  // spread evenly over 4 bins: a quarter of the density
  for (let k = 0; k < 1000; k++) screen[2 * k] = 5 + 10 * (k % 4);
  assert.ok(Math.abs(D.typicalCoverage(screen, 100_000, 320, 320, Math.SQRT2) - (249 * 100 * 2) / 100) < 1e-6);
  // points off screen or behind the camera do not count; none on screen: 0
  const off = Float32Array.from([-5, 3, 400, 3, NaN, NaN, 3, 330]);
  assert.equal(D.typicalCoverage(off, 10, 320, 320, 2), 0);
  assert.equal(D.typicalCoverage(new Float32Array(0), 10, 320, 320, 2), 0);
});

test("the estimator follows the number of points on screen and the zoom", () => {
  // 200k points uniformly in the [-0.5, 0.5] square, drawn at 2 px on a 600 x 600 canvas
  const n = 200_000, pos = new Float32Array(2 * n);
  let seed = 1;
  const rnd = () => ((seed = (seed * 48271) % 2147483647) / 2147483647); // Park-Miller, exact in doubles
  for (let i = 0; i < 2 * n; i++) pos[i] = rnd() - 0.5;
  const cam = createCamera(2);
  const est = D.createDensityEstimator(8192);
  const c1 = est.coverage({ positions: pos, comps: 2 }, n, cam.matrix(600, 600), 600, 600, 2);
  // independent: the square spans 0.46 * 600 * 2 * 1 = 552 px per unit -> 276^2 px, n * 4 px^2 over it
  const expected = (n * 4) / 276 ** 2;
  assert.ok(Math.abs(c1 / expected - 1) < 0.1, `coverage ${c1} vs ${expected}`);
  assert.ok(Math.abs(est.coverage({ positions: pos, comps: 2 }, n / 2, cam.matrix(600, 600), 600, 600, 2) / c1 - 0.5) < 0.1, "half the points drawn");
  cam.zoom(2, 300, 300, 600, 600);
  assert.ok(Math.abs(est.coverage({ positions: pos, comps: 2 }, n, cam.matrix(600, 600), 600, 600, 2) / c1 - 0.25) < 0.05, "zoom x2: a quarter");
});

test("alpha rule: opaque for small data, target / coverage beyond, floored; a fixed setting wins", () => {
  assert.equal(D.pointOpacity(0, 0.5, 1e6), 1, "little overlap: opaque");
  assert.equal(D.pointOpacity(0, 9, 1e6), 1 / 9);
  assert.equal(D.pointOpacity(0, 9, D.AUTO_MIN_POINTS - 1), 1, "small data stay opaque");
  assert.equal(D.pointOpacity(0, 1e6, 1e7), D.MIN_ALPHA);
  assert.equal(D.pointOpacity(0, 4, 1e6, 2), 0.5, "target");
  assert.equal(D.pointOpacity(0.5, 9), 0.5);
  assert.equal(D.pointOpacity(7, 9), 1);
  assert.equal(D.pointOpacity(0.001, 9), D.MIN_ALPHA);
  for (const auto of [0, null, undefined, "auto", NaN]) assert.equal(D.pointOpacity(auto, 9), 1 / 9);
});

test("premultiplied blending of one colour with a constant alpha converges to that colour, never past it", () => {
  // dst' = src * a + dst * (1 - a)  (blendFunc(ONE, ONE_MINUS_SRC_ALPHA), src premultiplied)
  const colour = [0.9, 0.2, 0.1], background = [1, 1, 1], a = 0.05;
  let dst = background.slice();
  for (let k = 0; k < 400; k++) {
    dst = dst.map((d, c) => colour[c] * a + d * (1 - a));
    for (let c = 0; c < 3; c++) assert.ok(dst[c] <= Math.max(colour[c], background[c]) + 1e-12 && dst[c] >= Math.min(colour[c], background[c]) - 1e-12);
  }
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(dst[c] - colour[c]) < 1e-6, "a dense pile shows the category's own colour");
});

test("the renderer blends premultiplied only below alpha 1, keeps depth writes off for translucent 3D, draws `count`", () => {
  const gl = fakeGl();
  const r = createRenderer(fakeCanvas(gl, 100, 100));
  r.reservePositions(5, 3);
  assert.deepEqual(gl.calls.filter(([n]) => n === "bufferData").at(-1)[1].slice(1, 2), [60], "room for 5 x 3 floats");
  r.updatePositions(2, new Float32Array(6));
  assert.equal(gl.calls.filter(([n]) => n === "bufferSubData").at(-1)[1][1], 24, "byte offset of point 2");
  r.setValues(new Uint16Array(5));
  r.updateValues(3, new Uint16Array(2));
  assert.equal(gl.calls.filter(([n]) => n === "bufferSubData").at(-1)[1][1], 6, "byte offset of value 3");
  assert.throws(() => r.reservePositions(5, 4), /2 or 3 components/);
  const M = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  const since = () => { const k = gl.calls.length; return () => gl.calls.slice(k); };
  let take = since();
  r.draw(M, { pointSize: 2, alpha: 1, count: 3 });
  let calls = take();
  assert.ok(!calls.some(([n, a]) => n === "enable" && a[0] === gl.BLEND), "opaque: no blending");
  assert.deepEqual(calls.find(([n]) => n === "drawArrays")[1], [gl.POINTS, 0, 3]);
  take = since();
  r.draw(M, { pointSize: 2, alpha: 0.25, depth: true, count: 99 });
  calls = take();
  assert.ok(calls.some(([n, a]) => n === "enable" && a[0] === gl.BLEND));
  assert.deepEqual(calls.find(([n]) => n === "blendFunc")[1], [gl.ONE, gl.ONE_MINUS_SRC_ALPHA], "premultiplied over");
  assert.deepEqual(calls.find(([n]) => n === "depthMask")[1], [false]);
  assert.deepEqual(calls.find(([n]) => n === "drawArrays")[1], [gl.POINTS, 0, 5], "count is capped at the points held");
  assert.deepEqual(calls.filter(([n]) => n === "depthMask").at(-1)[1], [true], "depth writes restored");
  assert.ok(calls.some(([n, a]) => n === "uniform1f" && a[1] === 0.25), "alpha uniform");
  r.destroy();
});

test("the viewer draws small data opaque, honours a fixed opacity and its control, and reports it", async () => {
  const { v, renderer, frames, host, states } = await mounted();
  frames.run();
  assert.equal(renderer.draws.at(-1).alpha, 1, "6 cells: opaque");
  assert.equal(renderer.draws.at(-1).count, 6);
  const input = host.querySelector(".cnb-opacity");
  assert.ok(input, "an opacity slider in the toolbar");
  assert.match(input.title, /automatic \(1\.00 now\)/);
  input.value = "0.3";
  input.dispatchEvent(new Event("input"));
  frames.run();
  assert.equal(renderer.draws.at(-1).alpha, 0.3);
  assert.equal(states.at(-1).opacity, 0.3);
  assert.equal(v.progress.alpha, 0.3);
  v.setOpacity(0);
  frames.run();
  assert.equal(renderer.draws.at(-1).alpha, 1);
  v.destroy();
  const fixed = await mounted({ opacity: 0.5 });
  fixed.frames.run();
  assert.equal(fixed.renderer.draws.at(-1).alpha, 0.5);
  fixed.v.destroy();
});

test("the widget's opacity trait reaches the viewer both ways", async () => {
  const model = fakeModel({ dimension: 2, color_field: "", point_size: 0, show_edges: false, show_vectors: false, height: 300, opacity: 0.4, timeout_ms: 1000 });
  let options = null;
  const calls = [];
  const controller = { setOpacity: (x) => calls.push(x), destroy() {} };
  const cleanup = render({ model, el: document.createElement("div") }, {
    mount: (_el, _t, o) => { options = o; return /** @type {any} */ (controller); },
    createTransport: () => /** @type {any} */ ({ destroy() {} }),
  });
  assert.equal(options.opacity, 0.4);
  model.set("opacity", 0.7);
  assert.deepEqual(calls, [0.7]);
  options.onStateChange({ dimension: 2, colorField: "", pointSize: 0, showEdges: false, showVectors: false, opacity: 0.2 });
  assert.equal(model.get("opacity"), 0.2);
  assert.deepEqual(calls, [0.7], "its own echo is not applied again");
  cleanup();
  await settle();
});
