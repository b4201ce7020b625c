// The WebGL2 renderer against a recording GL double: what it uploads, which program
// variant it draws with, and that destroy() frees every GL object it made.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createRenderer } from "../viewer/renderer.js";
import { fakeCanvas, fakeGl } from "./helpers/fake_gl.js";

const IDENTITY = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
const called = (gl, name) => gl.calls.filter(([n]) => n === name);

test("no WebGL2: a clear error", () => {
  assert.throws(() => createRenderer(fakeCanvas(null)), /WebGL2 is not available in this browser/);
});

test("shader and link failures are reported with the driver's log", () => {
  assert.throws(() => createRenderer(fakeCanvas(fakeGl({ failCompile: true }))), /shader compile failed: ERROR: 0:1: fake/);
  assert.throws(() => createRenderer(fakeCanvas(fakeGl({ failLink: true }))), /program link failed: fake link error/);
});

test("uploads, program variants per colouring, and a full draw", () => {
  const gl = fakeGl();
  const canvas = fakeCanvas(gl, 640, 480);
  const r = createRenderer(canvas);
  assert.throws(() => r.setPositions(new Float32Array(4), 4), /positions need 2 or 3 components, got 4/);
  r.setPositions(new Float32Array([0, 0, 1, 1, -1, 0.5]), 2);
  r.setValues(new Uint8Array([0, 1, 2]));
  const palette = new Uint8Array(1024).fill(255);
  r.setColoring({ kind: "palette", colors: palette, scale: 1, missing: 255 });
  const uploaded = called(gl, "bufferSubData").at(-1)[1][2];
  assert.equal(uploaded.length, 1024);
  assert.equal(uploaded[0], 1, "colours go to the GPU as 0..1 floats");
  r.setHighlight(new Uint8Array([1, 0, 0]));
  r.setEdges(new Uint32Array([0, 1, 1, 2]));
  r.setArrows(new Float32Array(12));
  r.draw(IDENTITY, { pointSize: 4, pixelRatio: 2, background: [0, 0, 0], depth: true, showEdges: true, showArrows: true, highlight: true });
  const s = r.stats();
  assert.deepEqual([s.count, s.comps, s.hasVal, s.hasFlag, s.edgeCount, s.arrowCount], [3, 2, true, true, 4, 4]);
  assert.deepEqual(s.programs, ["uh"], "uniform palette with highlight");
  assert.deepEqual(called(gl, "viewport").at(-1)[1], [0, 0, 640, 480]);
  assert.equal(called(gl, "drawArrays").length, 2, "points and arrows");
  assert.equal(called(gl, "drawElements").length, 1, "edges");
  assert.ok(called(gl, "uniform1f").some(([, [, v]]) => v === 8), "point size x device pixel ratio");
  // uint16 categories: the texture variant
  r.setValues(new Uint16Array([0, 1, 2]));
  r.setColoring({ kind: "texture", lut: { data: new Uint8Array(256 * 256 * 4), width: 256, height: 256 } });
  r.setHighlight(null);
  r.draw(IDENTITY, { pointSize: 1 });
  assert.deepEqual(r.stats().programs.sort(), ["t", "uh"]);
  r.setColoring({ kind: "uniform" });
  r.setValues(null);
  r.setEdges(null);
  r.setArrows(null);
  r.draw(IDENTITY, {});
  assert.deepEqual([r.stats().edgeCount, r.stats().arrowCount, r.stats().hasVal], [0, 0, false]);
  assert.throws(() => r.setEdges(/** @type {any} */ (new Int8Array(2))), /unsupported attribute array Int8Array/);
  r.warmUp(3, true, true);
  assert.equal(r.stats().count, 3, "warm-up keeps the drawn count");
  assert.equal(r.finish()[0], 7);
});

test("destroy frees every buffer, texture, vertex array and program, and drops the context", () => {
  const gl = fakeGl();
  const r = createRenderer(fakeCanvas(gl));
  r.setPositions(new Float32Array(9), 3);
  r.setValues(new Uint8Array(3));
  r.setColoring({ kind: "palette", colors: new Uint8Array(1024) });
  r.draw(IDENTITY, { depth: true });
  r.warmUp(2, true);
  assert.ok(gl.live.size > 10);
  r.destroy();
  assert.deepEqual([...gl.live].map((o) => o.kind), [], "nothing left alive");
  assert.equal(gl.lost, true);
});

test("drawing nothing just clears", () => {
  const gl = fakeGl();
  const r = createRenderer(fakeCanvas(gl));
  r.draw(IDENTITY, { background: [1, 1, 1] });
  assert.equal(called(gl, "clear").length, 1);
  assert.equal(called(gl, "drawArrays").length, 0);
});
