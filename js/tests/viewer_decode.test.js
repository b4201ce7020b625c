import { test } from "node:test";
import assert from "node:assert/strict";
import { categoryCounts, continuousForDisplay, continuousValue, dequantize, finiteRange, stripFrom1D, arrowSegments } from "../viewer/decode.js";

test("dequantize follows the format's formula and maps the marker to NaN", () => {
  assert.equal(dequantize(0, -1, 3, 8), -1);
  assert.equal(dequantize(254, -1, 3, 8), 3);
  assert.ok(Math.abs(dequantize(127, 0, 254, 8) - 127) < 1e-9);
  assert.ok(Number.isNaN(dequantize(255, 0, 1, 8)));
  assert.ok(Number.isNaN(dequantize(65535, 0, 1, 16)));
  assert.ok(Math.abs(dequantize(32767, 0, 65534, 16) - 32767) < 1e-9);
});

test("finiteRange skips NaN and infinities and widens constant fields", () => {
  assert.deepEqual(finiteRange(new Float32Array([NaN, 2, -3, Infinity])), [-3, 2]);
  assert.deepEqual(finiteRange(new Float32Array([NaN, NaN])), [0, 1]);
  assert.deepEqual(finiteRange(new Float32Array([5, 5])), [5, 6]);
});

test("quantized continuous payloads pass through without copying", () => {
  const q = new Uint8Array([0, 10, 255]);
  const p = continuousForDisplay(q, { bits: 8, min: 1, max: 2 });
  assert.equal(p.codes, q);
  assert.equal(p.qmax, 254);
  assert.equal(p.missing, 255);
  assert.ok(Number.isNaN(continuousValue(p, 2)));
  assert.ok(Math.abs(continuousValue(p, 1) - (1 + 10 / 254)) < 1e-9);
});

test("float32 payloads become 16-bit codes with exact values kept for hover", () => {
  const v = new Float32Array([0, 0.5, 1, NaN, -Infinity]);
  const p = continuousForDisplay(v, { bits: null });
  assert.ok(p.codes instanceof Uint16Array);
  assert.deepEqual(Array.from(p.codes), [0, 32767, 65534, 65535, 65535]);
  assert.equal(p.min, 0);
  assert.equal(p.max, 1);
  assert.equal(continuousValue(p, 1), 0.5);
  assert.ok(Number.isNaN(continuousValue(p, 3)));
});

test("category counts put missing codes last", () => {
  const counts = categoryCounts(new Uint8Array([0, 1, 1, 255, 2, 255]), 3);
  assert.deepEqual(Array.from(counts), [1, 2, 1, 2]);
  const c16 = categoryCounts(new Uint16Array([300, 65535, 300]), 400);
  assert.equal(c16[300], 2);
  assert.equal(c16[400], 1);
});

test("1D strips keep x, jitter y deterministically inside the spread", () => {
  const xs = new Float32Array([-1, 0, 0.5, 1]);
  const a = stripFrom1D(xs, 0.3), b = stripFrom1D(xs, 0.3);
  assert.deepEqual(a, b);
  for (let i = 0; i < 4; i++) {
    assert.equal(a[2 * i], xs[i]);
    assert.ok(Math.abs(a[2 * i + 1]) <= 0.3 + 1e-6);
  }
  const ys = new Set(Array.from({ length: 4 }, (_, i) => a[2 * i + 1]));
  assert.ok(ys.size > 1, "jitter differs between cells");
});

test("arrow segments go from the point along the scaled vector", () => {
  const pts = new Float32Array([0, 0, 1, 1]);
  const vec = new Float32Array([1, 0, 0, -1]);
  const seg = arrowSegments(pts, vec, 2, 0.5);
  assert.deepEqual(Array.from(seg), [0, 0, 0, 0.5, 0, 0, 1, 1, 0, 1, 0.5, 0]);
  const many = arrowSegments(new Float32Array(2000), new Float32Array(2000), 2, 1, 100);
  assert.ok(many.length / 6 <= 100);
});
