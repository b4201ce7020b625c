// Density-aware point opacity: dense data stay readable instead of becoming flat,
// saturated blobs. The alpha follows how many points pile up where points are, on
// screen, now:
//
//   a fixed uniform sample of the drawn points (16k) is projected with the frame's
//   matrix into a 32 x 32 grid over the canvas; the local density a typical drawn
//   point sees is sum c(c-1) / sum c per bin (unbiased for Poisson counts), scaled
//   to all drawn points; coverage = that density x point area (mean overlaps per
//   pixel around a typical point); alpha = clamp(DENSITY_TARGET / coverage, MIN_ALPHA, 1).
//
// Points off screen fall out of the grid and zooming in spreads the rest over more
// bins, so the alpha follows both the number of points on screen and the zoom; small
// data (coverage <= target) stay opaque. The cost is one projection of the sample
// per frame (well under a millisecond), whatever the number of cells.
//
// The renderer blends with premultiplied alpha (src = rgb * a, a; ONE, ONE_MINUS_SRC_ALPHA)
// and one constant alpha for every point: where points pile up the pixel converges to
// their own colour, never beyond it (no additive saturation to white), so category
// colours stay true; only the share of background shows the density.
import { projectPoints } from "./picking.js";
import { h } from "./ui.js";

/** Mean overlaps per pixel (around a typical point) at which the automatic alpha falls below 1. */
export const DENSITY_TARGET = 1;
/** Lowest automatic alpha (8-bit colour buffers lose the colour below ~1/32). */
export const MIN_ALPHA = 0.04;
/** Fewer points than this are drawn opaque by the automatic rule (small data). */
export const AUTO_MIN_POINTS = 30000;
/** Points projected per frame to estimate the density. */
export const SAMPLE_SIZE = 16384;
/** Grid of the estimate (bins per side). */
export const GRID = 32;

/**
 * Mean overlaps per pixel around a typical drawn point, from projected sample points.
 * @param {Float32Array} screen  2s CSS pixel coordinates of a uniform sample of the drawn points (NaN: behind the camera)
 * @param {number} drawn  points drawn (the sample stands for them)
 * @param {number} w  canvas CSS width
 * @param {number} hgt  canvas CSS height
 * @param {number} pointSize  CSS pixels
 * @param {number} [grid]
 */
export function typicalCoverage(screen, drawn, w, hgt, pointSize, grid = GRID) {
  const s = screen.length / 2;
  if (!s || !drawn) return 0;
  const counts = new Uint32Array(grid * grid);
  const fx = grid / w, fy = grid / hgt;
  for (let k = 0; k < s; k++) {
    const x = screen[2 * k], y = screen[2 * k + 1];
    if (!(x >= 0 && x < w && y >= 0 && y < hgt)) continue; // off screen (and NaN)
    counts[Math.floor(y * fy) * grid + Math.floor(x * fx)] += 1;
  }
  let sum = 0, pairs = 0;
  for (let b = 0; b < counts.length; b++) { const c = counts[b]; sum += c; pairs += c * (c - 1); }
  if (!sum) return 0;
  const perBin = (pairs / sum) * (drawn / s); // other points in a typical point's bin, all points drawn
  return (perBin * pointSize * pointSize) / ((w / grid) * (hgt / grid));
}

/**
 * The alpha to draw with: a fixed setting in (0, 1], or automatic for 0 / null / "auto".
 * @param {number|string|null|undefined} setting
 * @param {number} coverage  from typicalCoverage
 * @param {number} [drawn]  points drawn (fewer than AUTO_MIN_POINTS: opaque)
 * @param {number} [target]
 */
export function pointOpacity(setting, coverage, drawn = Infinity, target = DENSITY_TARGET) {
  const v = Number(setting);
  if (setting !== null && setting !== "auto" && Number.isFinite(v) && v > 0) return Math.min(1, Math.max(MIN_ALPHA, v));
  if (drawn < AUTO_MIN_POINTS || !(coverage > target)) return 1;
  return Math.max(MIN_ALPHA, target / coverage);
}

/**
 * Keeps the sample of the drawn points (evenly spread over the first `drawn` ones: in
 * the progressive draw order any such subset is uniform) and estimates the coverage.
 * @param {number} [sampleSize]
 */
export function createDensityEstimator(sampleSize = SAMPLE_SIZE) {
  let key = null, sample = new Float32Array(0), screen = undefined;
  return {
    /**
     * @param {{positions: Float32Array, comps: number}} points
     * @param {number} drawn
     * @param {Float32Array} mvp
     * @param {number} w  CSS width
     * @param {number} hgt  CSS height
     * @param {number} pointSize  CSS pixels
     */
    coverage(points, drawn, mvp, w, hgt, pointSize) {
      const { positions, comps } = points;
      const s = Math.min(sampleSize, drawn);
      if (key === null || key.positions !== positions || key.drawn !== drawn || key.comps !== comps) {
        sample = new Float32Array(s * comps);
        for (let k = 0; k < s; k++) {
          const i = Math.floor((k * drawn) / s);
          for (let c = 0; c < comps; c++) sample[k * comps + c] = positions[i * comps + c];
        }
        key = { positions, drawn, comps };
      }
      screen = projectPoints(sample, comps, mvp, w, hgt, screen);
      return typicalCoverage(screen, drawn, w, hgt, pointSize);
    },
  };
}

/**
 * A slider for the opacity, placed after `after` in the toolbar: leftmost = automatic.
 * @param {HTMLElement} after
 * @param {(target: EventTarget, type: string, fn: (ev: any) => void) => void} listen
 * @param {(value: number) => void} onChange  0 for automatic
 */
export function createOpacityControl(after, listen, onChange) {
  const input = /** @type {HTMLInputElement} */ (h("input", {
    class: "cnb-opacity", type: "range", min: "0", max: "1", step: "0.02", value: "0", "aria-label": "point opacity",
  }));
  const show = (value, effective) => {
    input.value = String(value || 0);
    input.title = `Point opacity: ${value > 0 ? value.toFixed(2) : `automatic (${effective.toFixed(2)} now)`} · leftmost: automatic from the density on screen`;
  };
  show(0, 1);
  listen(input, "input", () => onChange(Number(input.value)));
  after.after(input);
  return { input, show };
}
