// The one colour module of the front-end: category palettes, the missing colour and
// the continuous colour maps, shared by the wizard's preview and the viewer so that a
// category has the same colour in both.
//
// Category colours follow scanpy's defaults (scanpy.plotting.palettes and
// _set_default_colors_for_categorical_obs): that is what a scanpy user sees in
// sc.pl.umap, so the viewer shows the same colours. Up to 20 categories: default_20;
// up to 28: default_28; up to 102: default_102. Beyond 102 scanpy paints everything
// grey; here a deterministic golden-angle hue sequence keeps categories apart.
// Continuous maps are the exact matplotlib tables as published by d3-scale-chromatic
// (bundled by esbuild), sampled to 256 steps.
import { interpolateCividis, interpolateInferno, interpolateMagma, interpolatePlasma, interpolateRdBu, interpolateViridis } from "d3-scale-chromatic";

/** scanpy.plotting.palettes.default_20 (scanpy's palette for up to 20 categories). */
export const SCANPY_DEFAULT_20 = Object.freeze([
  "#1f77b4", "#ff7f0e", "#279e68", "#d62728", "#aa40fc", "#8c564b", "#e377c2", "#b5bd61", "#17becf", "#aec7e8",
  "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#ad494a", "#8c6d31",
]);
/** scanpy.plotting.palettes.default_28 (zeileis_28), 21 to 28 categories. */
export const SCANPY_DEFAULT_28 = Object.freeze([
  "#023fa5", "#7d87b9", "#bec1d4", "#d6bcc0", "#bb7784", "#8e063b", "#4a6fe3", "#8595e1", "#b5bbe3", "#e6afb9",
  "#e07b91", "#d33f6a", "#11c638", "#8dd593", "#c6dec7", "#ead3c6", "#f0b98d", "#ef9708", "#0fcfc0", "#9cded6",
  "#d5eae7", "#f3e1eb", "#f6c4e1", "#f79cd4", "#7f7f7f", "#c7c7c7", "#1ce6ff", "#336600",
]);
/** scanpy.plotting.palettes.default_102 (godsnot_102), 29 to 102 categories. */
export const SCANPY_DEFAULT_102 = Object.freeze([
  "#ffff00", "#1ce6ff", "#ff34ff", "#ff4a46", "#008941", "#006fa6", "#a30059", "#ffdbe5", "#7a4900", "#0000a6",
  "#63ffac", "#b79762", "#004d43", "#8fb0ff", "#997d87", "#5a0007", "#809693", "#6a3a4c", "#1b4400", "#4fc601",
  "#3b5dff", "#4a3b53", "#ff2f80", "#61615a", "#ba0900", "#6b7900", "#00c2a0", "#ffaa92", "#ff90c9", "#b903aa",
  "#d16100", "#ddefff", "#000035", "#7b4f4b", "#a1c299", "#300018", "#0aa6d8", "#013349", "#00846f", "#372101",
  "#ffb500", "#c2ffed", "#a079bf", "#cc0744", "#c0b9b2", "#c2ff99", "#001e09", "#00489c", "#6f0062", "#0cbd66",
  "#eec3ff", "#456d75", "#b77b68", "#7a87a1", "#788d66", "#885578", "#fad09f", "#ff8a9a", "#d157a0", "#bec459",
  "#456648", "#0086ed", "#886f4c", "#34362d", "#b4a8bd", "#00a6aa", "#452c2c", "#636375", "#a3c8c9", "#ff913f",
  "#938a81", "#575329", "#00fecf", "#b05b6f", "#8cd0ff", "#3b9700", "#04f757", "#c8a1a1", "#1e6e00", "#7900d7",
  "#a77500", "#6367a9", "#a05837", "#6b002c", "#772600", "#d790ff", "#9b9700", "#549e79", "#fff69f", "#201625",
  "#72418f", "#bc23ff", "#99adc0", "#3a2465", "#922329", "#5b4534", "#fde8dc", "#404e55", "#0089a3", "#cb7e98",
  "#a4e804", "#324e72",
]);

/** Colour of missing values (NaN, missing category), RGBA 0-255, in the viewer and the preview. */
export const MISSING_RGBA = Object.freeze([170, 170, 170, 255]);
export const MISSING_CSS = "#aaaaaa";

/** Continuous colour maps by name: t in [0, 1] -> CSS colour. */
const INTERPOLATORS = {
  viridis: interpolateViridis,
  magma: interpolateMagma,
  plasma: interpolatePlasma,
  inferno: interpolateInferno,
  cividis: interpolateCividis,
  // matplotlib's RdBu_r (diverging, e.g. for z-scores): blue for low values, red for high ones
  RdBu_r: (/** @type {number} */ t) => interpolateRdBu(1 - t),
};
export const COLORMAP_NAMES = Object.freeze(Object.keys(INTERPOLATORS));
export const DEFAULT_COLORMAP = "viridis";

const NAMED = { black: "#000000", white: "#ffffff", red: "#ff0000", green: "#008000", blue: "#0000ff", grey: "#808080", gray: "#808080", lightgray: "#d3d3d3", lightgrey: "#d3d3d3", orange: "#ffa500", purple: "#800080" };

/**
 * Parse "#rgb", "#rrggbb", "#rrggbbaa", "rgb(r, g, b)" or a few CSS names into [r, g, b, a] (0-255).
 * @param {unknown} text
 * @returns {number[]|null} null when the string is not understood
 */
export function parseColor(text) {
  if (typeof text !== "string") return null;
  let s = text.trim().toLowerCase();
  if (NAMED[s]) s = NAMED[s];
  const rgb = /^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:[,\s/]+([\d.]+))?\s*\)$/.exec(s);
  if (rgb) return [Number(rgb[1]), Number(rgb[2]), Number(rgb[3]), rgb[4] === undefined ? 255 : Math.round(Number(rgb[4]) * 255)];
  const m = /^#([0-9a-f]{3}|[0-9a-f]{6}|[0-9a-f]{8})$/.exec(s);
  if (!m) return null;
  let hex = m[1];
  if (hex.length === 3) hex = hex.split("").map((c) => c + c).join("");
  const v = [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
  v.push(hex.length === 8 ? parseInt(hex.slice(6, 8), 16) : 255);
  return v;
}

/** "rgba(r, g, b, a)" of an RGBA (0-255) colour. */
export function rgbaCss(c) {
  return `rgba(${c[0]}, ${c[1]}, ${c[2]}, ${(c[3] ?? 255) / 255})`;
}

/**
 * Colour of category i beyond scanpy's palettes: golden-angle hues at three lightness
 * levels, so neighbours differ and the sequence never repeats within thousands.
 * @param {number} i
 * @returns {number[]} RGBA 0-255
 */
export function extendedCategoryColor(i) {
  const h = (i * 137.508) % 360;
  const s = 0.65, l = 0.5 + 0.12 * ((i % 3) - 1);
  const k = (/** @type {number} */ n) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (/** @type {number} */ n) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return [Math.round(255 * f(0)), Math.round(255 * f(8)), Math.round(255 * f(4)), 255];
}

/**
 * scanpy's default palette for a field of n categories (CSS hex strings, length n).
 * @param {number} n
 * @returns {string[]}
 */
export function defaultCategoryPalette(n) {
  const base = n <= 20 ? SCANPY_DEFAULT_20 : n <= 28 ? SCANPY_DEFAULT_28 : SCANPY_DEFAULT_102;
  const out = [];
  for (let i = 0; i < n; i++) {
    if (i < base.length) out.push(base[i]);
    else {
      const c = extendedCategoryColor(i);
      out.push(`#${c.slice(0, 3).map((v) => v.toString(16).padStart(2, "0")).join("")}`);
    }
  }
  return out;
}

/**
 * Colours of n categories: the export's own (adata.uns["<key>_colors"]) where given and
 * valid, else scanpy's default palette for n categories.
 * @param {number} n
 * @param {unknown[]|null} [given]
 * @returns {number[][]} n RGBA colours (0-255)
 */
export function categoryColors(n, given = null) {
  const defaults = defaultCategoryPalette(n);
  const out = [];
  for (let i = 0; i < n; i++) {
    const parsed = Array.isArray(given) && i < given.length ? parseColor(given[i]) : null;
    out.push(parsed || parseColor(defaults[i]));
  }
  return out;
}

/** Same as categoryColors, as CSS strings (the preview draws with canvas 2D). */
export function categoryColorsCss(n, given = null) {
  return categoryColors(n, given).map(rgbaCss);
}

const tables = new Map();

/**
 * The 256-step table of a continuous map: Uint8Array of 256 RGB triplets, entry i at t = i / 255.
 * Unknown names fall back to viridis.
 * @param {string} [name]
 * @returns {Uint8Array}
 */
export function colormapTable(name = DEFAULT_COLORMAP) {
  const key = INTERPOLATORS[name] ? name : DEFAULT_COLORMAP;
  let table = tables.get(key);
  if (!table) {
    table = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) table.set(parseColor(INTERPOLATORS[key](i / 255)).slice(0, 3), i * 3);
    tables.set(key, table);
  }
  return table;
}

/**
 * Evaluate a colour map at t in [0, 1] (nearest of its 256 steps).
 * @returns {number[]} [r, g, b] 0-255
 */
export function sampleColormap(name, t) {
  const table = colormapTable(name);
  const i = Math.round(Math.min(1, Math.max(0, Number(t) || 0)) * 255);
  return Array.from(table.subarray(i * 3, i * 3 + 3));
}

/**
 * The 256-colour palette of a continuous map used by the viewer's renderer and the
 * preview: entries 0..254 are quantized values (q / 254 along the map), entry 255 is missing.
 * @param {string} [name]
 * @param {boolean} [hideMissing] missing entry fully transparent
 * @returns {Uint8Array} 1024 bytes RGBA
 */
export function continuousPalette(name = DEFAULT_COLORMAP, hideMissing = false) {
  const out = new Uint8Array(1024);
  for (let q = 0; q < 255; q++) out.set([...sampleColormap(name, q / 254), 255], q * 4);
  out.set([MISSING_RGBA[0], MISSING_RGBA[1], MISSING_RGBA[2], hideMissing ? 0 : 255], 255 * 4);
  return out;
}

/**
 * CSS colour of a quantized continuous code (0..254 along the map, 255 missing).
 * @param {number} code
 * @param {string} [name]
 */
export function continuousCss(code, name = DEFAULT_COLORMAP) {
  if (code >= 255 || !(code >= 0)) return MISSING_CSS;
  const [r, g, b] = sampleColormap(name, code / 254);
  return `rgb(${r},${g},${b})`;
}

/**
 * CSS linear-gradient of a colour map, bottom (0) to top (1), for colour bars.
 * @param {string} [name]
 * @param {string} [direction]
 */
export function colormapGradient(name = DEFAULT_COLORMAP, direction = "to top") {
  const stops = [];
  for (let i = 0; i <= 16; i++) {
    const [r, g, b] = sampleColormap(name, i / 16);
    stops.push(`rgb(${r},${g},${b}) ${((100 * i) / 16).toFixed(1)}%`);
  }
  return `linear-gradient(${direction}, ${stops.join(", ")})`;
}

/**
 * Categorical LUT: one RGBA texel per code; hidden categories get alpha 0 (the shader drops them).
 * @param {number[][]} colors  RGBA per category
 * @param {number} missingCode 255 or 65535
 * @param {Set<number>|null} [hidden] category indices to hide
 * @param {boolean} [hideMissing]
 * @returns {{data: Uint8Array, width: number, height: number}}
 */
export function buildCategoricalLut(colors, missingCode, hidden = null, hideMissing = false) {
  const size = missingCode + 1;
  const width = 256, height = Math.ceil(size / 256);
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < colors.length && i < missingCode; i++) {
    const c = colors[i];
    data.set([c[0], c[1], c[2], hidden && hidden.has(i) ? 0 : 255], i * 4);
  }
  const m = MISSING_RGBA;
  data.set([m[0], m[1], m[2], hideMissing ? 0 : 255], missingCode * 4);
  return { data, width, height };
}
