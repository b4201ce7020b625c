// Colour maps and category palettes as RGBA lookup tables (LUTs) for the GPU:
// switching the colour field uploads one small LUT, never per-point RGBA.

/** Stops of perceptual maps, sampled evenly (value 0 -> first stop). */
export const COLORMAPS = {
  viridis: ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"],
  magma: ["#000004", "#180f3d", "#440f76", "#721f81", "#9e2f7f", "#cd4071", "#f1605d", "#fd9668", "#feca8d", "#fcfdbf"],
  plasma: ["#0d0887", "#47039f", "#7301a8", "#9c179e", "#bd3786", "#d8576b", "#ed7953", "#fb9f3a", "#fdca26", "#f0f921"],
  coolwarm: ["#3b4cc0", "#6282ea", "#8db0fe", "#b8d0f9", "#dddcdc", "#f5c4ad", "#f49a7b", "#de604d", "#b40426"],
};

/** Default category colours (scanpy's palette for up to 20 categories). */
export const CATEGORY_PALETTE = [
  "#1f77b4", "#ff7f0e", "#279e68", "#d62728", "#aa40fc", "#8c564b", "#e377c2", "#b5bd61", "#17becf", "#aec7e8",
  "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#ad494a", "#8c6d31",
];

/** Grey used for missing values (NaN, missing category). */
export const MISSING_RGBA = [170, 170, 170, 255];

const NAMED = { black: "#000000", white: "#ffffff", red: "#ff0000", green: "#008000", blue: "#0000ff", grey: "#808080", gray: "#808080", lightgray: "#d3d3d3", lightgrey: "#d3d3d3", orange: "#ffa500", purple: "#800080" };

/**
 * Parse "#rgb", "#rrggbb", "#rrggbbaa" or a few CSS names into [r, g, b, a] (0-255).
 * @returns {number[]|null} null when the string is not understood
 */
export function parseColor(text) {
  if (typeof text !== "string") return null;
  let s = text.trim().toLowerCase();
  if (NAMED[s]) s = NAMED[s];
  const m = /^#([0-9a-f]{3}|[0-9a-f]{6}|[0-9a-f]{8})$/.exec(s);
  if (!m) return null;
  let hex = m[1];
  if (hex.length === 3) hex = hex.split("").map((c) => c + c).join("");
  const v = [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
  v.push(hex.length === 8 ? parseInt(hex.slice(6, 8), 16) : 255);
  return v;
}

/** Distinct colour for category i beyond the palette (golden-angle hues). */
function generatedColor(i) {
  const h = (i * 137.508) % 360;
  const s = 0.65, l = 0.5 + 0.12 * ((i % 3) - 1);
  const k = (n) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return [Math.round(255 * f(0)), Math.round(255 * f(8)), Math.round(255 * f(4)), 255];
}

/**
 * Colours of n categories: from the export (uns) when given and valid, else the default palette.
 * @param {number} n
 * @param {string[]|null} given
 * @returns {number[][]} n RGBA colours
 */
export function categoryColors(n, given) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const parsed = given && i < given.length ? parseColor(given[i]) : null;
    out.push(parsed || (i < CATEGORY_PALETTE.length ? parseColor(CATEGORY_PALETTE[i]) : generatedColor(i)));
  }
  return out;
}

/**
 * Categorical LUT: one RGBA texel per code; hidden categories get alpha 0 (the shader drops them).
 * @param {number[][]} colors  RGBA per category
 * @param {number} missingCode 255 or 65535
 * @param {Set<number>|null} hidden category indices to hide
 * @param {boolean} hideMissing
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

/** Evaluate a colour map at t in [0, 1] -> [r, g, b]. */
export function sampleColormap(name, t) {
  const stops = (COLORMAPS[name] || COLORMAPS.viridis).map(parseColor);
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((c) => Math.round(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * f));
}

/**
 * Continuous LUT: 256 RGBA texels of a colour map (sampled linearly on the GPU).
 * @returns {{data: Uint8Array, width: number, height: number}}
 */
export function buildContinuousLut(name = "viridis") {
  const data = new Uint8Array(256 * 4);
  for (let i = 0; i < 256; i++) {
    const [r, g, b] = sampleColormap(name, i / 255);
    data.set([r, g, b, 255], i * 4);
  }
  return { data, width: 256, height: 1 };
}

/** CSS linear-gradient of a colour map (for the colour bar). */
export function colormapGradient(name = "viridis") {
  const stops = COLORMAPS[name] || COLORMAPS.viridis;
  return `linear-gradient(to top, ${stops.map((c, i) => `${c} ${(100 * i / (stops.length - 1)).toFixed(1)}%`).join(", ")})`;
}

export function rgbaCss(c) {
  return `rgba(${c[0]}, ${c[1]}, ${c[2]}, ${(c[3] ?? 255) / 255})`;
}

/**
 * 256-colour palette of a continuous map for the renderer's uniform block:
 * entries 0..254 span the map (value index q / 254), entry 255 is "missing".
 * @returns {Uint8Array} 1024 bytes RGBA
 */
export function buildContinuousPalette(name = "viridis", hideMissing = false) {
  const out = new Uint8Array(1024);
  for (let i = 0; i < 255; i++) {
    const [r, g, b] = sampleColormap(name, i / 254);
    out.set([r, g, b, 255], i * 4);
  }
  const m = MISSING_RGBA;
  out.set([m[0], m[1], m[2], hideMissing ? 0 : 255], 255 * 4);
  return out;
}
