// The one colour module shared by the wizard's preview and the viewer.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  buildCategoricalLut, categoryColors, categoryColorsCss, colormapGradient, colormapTable, COLORMAP_NAMES, continuousCss,
  continuousPalette, defaultCategoryPalette, extendedCategoryColor, MISSING_CSS, MISSING_RGBA, parseColor, rgbaCss,
  sampleColormap, SCANPY_DEFAULT_20, SCANPY_DEFAULT_28, SCANPY_DEFAULT_102,
} from "../common/colors.js";
import { categoryColors as previewColors, continuousColor } from "../wizard/preview.js";

test("parseColor reads hex, rgb() and a few names", () => {
  assert.deepEqual(parseColor("#f00"), [255, 0, 0, 255]);
  assert.deepEqual(parseColor("#1F77B4"), [31, 119, 180, 255]);
  assert.deepEqual(parseColor("#00ff0080"), [0, 255, 0, 128]);
  assert.deepEqual(parseColor("grey"), [128, 128, 128, 255]);
  assert.deepEqual(parseColor("rgb(1, 2, 3)"), [1, 2, 3, 255]);
  assert.deepEqual(parseColor("rgba(1, 2, 3, 0.5)"), [1, 2, 3, 128]);
  assert.equal(parseColor("not a colour"), null);
  assert.equal(parseColor(null), null);
  assert.equal(rgbaCss([1, 2, 3]), "rgba(1, 2, 3, 1)");
});

test("category colours follow scanpy: default_20, default_28, default_102, then distinct extra hues", () => {
  // values of scanpy.plotting.palettes (scanpy 1.11)
  assert.deepEqual(SCANPY_DEFAULT_20.slice(0, 5), ["#1f77b4", "#ff7f0e", "#279e68", "#d62728", "#aa40fc"]);
  assert.equal(SCANPY_DEFAULT_20.length, 20);
  assert.equal(SCANPY_DEFAULT_28[0], "#023fa5");
  assert.equal(SCANPY_DEFAULT_28.length, 28);
  assert.equal(SCANPY_DEFAULT_102[0], "#ffff00");
  assert.equal(SCANPY_DEFAULT_102.length, 102);
  assert.deepEqual(defaultCategoryPalette(3), ["#1f77b4", "#ff7f0e", "#279e68"]);
  assert.equal(defaultCategoryPalette(21)[0], "#023fa5", "21 categories: scanpy switches to default_28");
  assert.equal(defaultCategoryPalette(29)[0], "#ffff00");
  const many = defaultCategoryPalette(300);
  assert.equal(many.length, 300);
  assert.deepEqual(many.slice(0, 102), [...SCANPY_DEFAULT_102]);
  assert.ok(new Set(many.slice(102)).size > 190, "extra colours are mostly distinct");
  assert.deepEqual(defaultCategoryPalette(300), many, "deterministic");
  assert.deepEqual(extendedCategoryColor(102), extendedCategoryColor(102));
});

test("the export's own colours win where valid", () => {
  const c = categoryColors(3, ["#e41a1c", "bogus"]);
  assert.deepEqual(c[0], [228, 26, 28, 255]);
  assert.deepEqual(c[1], parseColor(SCANPY_DEFAULT_20[1]));
  assert.deepEqual(c[2], parseColor(SCANPY_DEFAULT_20[2]));
  assert.deepEqual(categoryColorsCss(1), ["rgba(31, 119, 180, 1)"]);
});

test("preview and viewer give a category the same colour", () => {
  const viewer = categoryColors(12).map(rgbaCss);
  assert.deepEqual(previewColors({ categories: Array.from({ length: 12 }, (_, i) => `c${i}`), colors: null }), viewer);
  assert.deepEqual(previewColors({ categories: ["a", "b"], colors: ["#111111", "#222222"] }), ["rgba(17, 17, 17, 1)", "rgba(34, 34, 34, 1)"]);
  const palette = continuousPalette("viridis");
  for (const code of [0, 17, 127, 254]) {
    assert.equal(continuousColor(code), `rgb(${palette[code * 4]},${palette[code * 4 + 1]},${palette[code * 4 + 2]})`);
  }
  assert.equal(continuousColor(255), MISSING_CSS);
  assert.deepEqual(parseColor(MISSING_CSS), [...MISSING_RGBA]);
});

test("continuous maps are matplotlib's tables: viridis ends and middle", () => {
  assert.deepEqual(sampleColormap("viridis", 0), [0x44, 0x01, 0x54]);
  assert.deepEqual(sampleColormap("viridis", 1), [0xfd, 0xe7, 0x25]);
  // matplotlib's _viridis_data[128] = (0.127568, 0.566949, 0.550556)
  assert.deepEqual(sampleColormap("viridis", 128 / 255), [33, 145, 140]);
  assert.deepEqual(sampleColormap("magma", 0), [0, 0, 4]);
  assert.deepEqual(sampleColormap("unknown", 0), [0x44, 0x01, 0x54], "unknown names fall back to viridis");
  assert.equal(colormapTable("plasma").length, 768);
  assert.deepEqual([...COLORMAP_NAMES], ["viridis", "magma", "plasma", "inferno", "cividis", "RdBu_r"]);
  const rdbu = [sampleColormap("RdBu_r", 0), sampleColormap("RdBu_r", 1)];
  assert.ok(rdbu[0][2] > rdbu[0][0] && rdbu[1][0] > rdbu[1][2], "RdBu_r: blue low, red high");
  assert.deepEqual(sampleColormap("cividis", 0), [0, 32, 81]);
  assert.match(colormapGradient("viridis"), /^linear-gradient\(to top, rgb\(68,1,84\) 0\.0%, .* rgb\(253,231,37\) 100\.0%\)$/);
});

test("continuous palette: 255 map steps then the missing colour", () => {
  const p = continuousPalette("viridis");
  assert.equal(p.length, 1024);
  assert.deepEqual(Array.from(p.slice(0, 3)), [0x44, 0x01, 0x54]);
  assert.deepEqual(Array.from(p.slice(254 * 4, 254 * 4 + 3)), [0xfd, 0xe7, 0x25]);
  assert.deepEqual(Array.from(p.slice(255 * 4, 256 * 4)), [...MISSING_RGBA.slice(0, 3), 255]);
  assert.equal(continuousPalette("magma", true)[255 * 4 + 3], 0, "hidden missing values");
  assert.equal(continuousCss(-1), MISSING_CSS);
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
