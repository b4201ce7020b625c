import { test } from "node:test";
import assert from "node:assert/strict";
import { buildCategoricalLut, buildContinuousLut, categoryColors, CATEGORY_PALETTE, parseColor, sampleColormap, MISSING_RGBA } from "../viewer/colormaps.js";

test("parseColor reads short, long and alpha hex and a few names", () => {
  assert.deepEqual(parseColor("#f00"), [255, 0, 0, 255]);
  assert.deepEqual(parseColor("#1F77B4"), [31, 119, 180, 255]);
  assert.deepEqual(parseColor("#00ff0080"), [0, 255, 0, 128]);
  assert.deepEqual(parseColor("grey"), [128, 128, 128, 255]);
  assert.equal(parseColor("not a colour"), null);
  assert.equal(parseColor(null), null);
});

test("category colours come from the export when valid, else the palette", () => {
  const c = categoryColors(3, ["#e41a1c", "bogus"]);
  assert.deepEqual(c[0], [228, 26, 28, 255]);
  assert.deepEqual(c[1], parseColor(CATEGORY_PALETTE[1]));
  assert.deepEqual(c[2], parseColor(CATEGORY_PALETTE[2]));
  const many = categoryColors(300, null);
  assert.equal(many.length, 300);
  const distinct = new Set(many.slice(20).map((x) => x.join(",")));
  assert.ok(distinct.size > 200, "generated colours beyond the palette are mostly distinct");
});

test("categorical LUT: hidden categories get alpha 0, missing is grey", () => {
  const lut = buildCategoricalLut([[1, 2, 3, 255], [4, 5, 6, 255]], 255, new Set([1]));
  assert.equal(lut.width * lut.height, 256);
  assert.deepEqual(Array.from(lut.data.slice(0, 4)), [1, 2, 3, 255]);
  assert.deepEqual(Array.from(lut.data.slice(4, 8)), [4, 5, 6, 0]);
  assert.deepEqual(Array.from(lut.data.slice(255 * 4, 256 * 4)), [MISSING_RGBA[0], MISSING_RGBA[1], MISSING_RGBA[2], 255]);
  const big = buildCategoricalLut([[0, 0, 0, 255]], 65535, null, true);
  assert.equal(big.height, 256);
  assert.equal(big.data[65535 * 4 + 3], 0, "hidden missing");
});

test("continuous LUT runs from the first to the last stop of the map", () => {
  const lut = buildContinuousLut("viridis");
  assert.deepEqual(Array.from(lut.data.slice(0, 3)), [0x44, 0x01, 0x54]);
  assert.deepEqual(Array.from(lut.data.slice(255 * 4, 255 * 4 + 3)), [0xfd, 0xe7, 0x25]);
  const mid = sampleColormap("viridis", 0.5);
  assert.ok(mid[1] > mid[0], "viridis is green-ish in the middle");
});

test("continuous palette: 255 map steps then the missing colour", async () => {
  const { buildContinuousPalette } = await import("../viewer/colormaps.js");
  const p = buildContinuousPalette("viridis");
  assert.equal(p.length, 1024);
  assert.deepEqual(Array.from(p.slice(0, 3)), [0x44, 0x01, 0x54]);
  assert.deepEqual(Array.from(p.slice(254 * 4, 254 * 4 + 3)), [0xfd, 0xe7, 0x25]);
  assert.deepEqual(Array.from(p.slice(255 * 4, 256 * 4)), [...MISSING_RGBA.slice(0, 3), 255]);
  assert.equal(buildContinuousPalette("magma", true)[255 * 4 + 3], 0, "hidden missing values");
});
