// Turning stored payloads into what the GPU and the legend need. The backend sends
// values as stored (uint8/uint16 quantized or float32); the shader reads integer
// codes directly, so only float32 fields are converted (to uint16) here.

export const QUANT_MAX = { 8: 254, 16: 65534 };
export const MISSING_CODE = { 8: 255, 16: 65535 };

/**
 * Decode one quantized value (as the format's readers do).
 * @returns {number} NaN for the missing marker
 */
export function dequantize(q, min, max, bits) {
  if (q >= MISSING_CODE[bits]) return NaN;
  return min + (q * (max - min)) / QUANT_MAX[bits];
}

/** Finite min and max of a float array ([0, 1] when none is finite, [v, v + 1] when constant). */
export function finiteRange(values) {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo) lo = v; // NaN compares false: skipped
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    // ±Inf or nothing finite: recompute over finite values only
    lo = Infinity; hi = -Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    }
    if (lo === Infinity) return [0, 1];
  }
  if (!(hi > lo)) hi = lo + 1;
  return [lo, hi];
}

/**
 * Prepare a continuous payload for drawing: integer codes 0..qmax plus a missing code.
 * Quantized payloads pass through untouched (no copy); float32 is quantized to 16 bits.
 * @param {Uint8Array|Uint16Array|Float32Array} values
 * @param {{bits: number|null, min?: number, max?: number}} info
 * @returns {{codes: Uint8Array|Uint16Array, qmax: number, missing: number, min: number, max: number, bits: number, source?: Float32Array}}
 */
export function continuousForDisplay(values, info) {
  if (info.bits === 8 || info.bits === 16) {
    return { codes: /** @type {Uint8Array|Uint16Array} */ (values), qmax: QUANT_MAX[info.bits], missing: MISSING_CODE[info.bits], min: info.min, max: info.max, bits: info.bits };
  }
  if (!(values instanceof Float32Array)) throw new Error(`continuous values without quantization must be float32, got ${values.constructor.name}`);
  const [lo, hi] = finiteRange(values);
  const codes = new Uint16Array(values.length);
  const scale = 65534 / (hi - lo);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    codes[i] = Number.isFinite(v) ? Math.round((v - lo) * scale) : 65535;
  }
  return { codes, qmax: 65534, missing: 65535, min: lo, max: hi, bits: 16, source: values };
}

/** Value of cell i of a prepared continuous field (exact for float32 sources). */
export function continuousValue(prepared, i) {
  if (prepared.source) {
    const v = prepared.source[i];
    return Number.isFinite(v) ? v : NaN;
  }
  return dequantize(prepared.codes[i], prepared.min, prepared.max, prepared.bits);
}

/**
 * Cells per category; index n is the missing count.
 * @param {Uint8Array|Uint16Array} codes
 * @param {number} n  number of categories
 * @returns {Uint32Array} length n + 1
 */
export function categoryCounts(codes, n) {
  const counts = new Uint32Array(n + 1);
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    counts[c < n ? c : n] += 1;
  }
  return counts;
}

/**
 * A 1D embedding drawn as a strip: x from the data, y a fixed pseudo-random jitter
 * (same for every draw, so hover and lasso agree with the picture).
 * @param {Float32Array} xs  n values
 * @returns {Float32Array} 2n values (x, y)
 */
export function stripFrom1D(xs, spread = 0.35) {
  const out = new Float32Array(xs.length * 2);
  for (let i = 0; i < xs.length; i++) {
    let h = Math.imul(i + 1, 2654435761) >>> 0;
    h ^= h >>> 15;
    h = Math.imul(h, 2246822519) >>> 0;
    h ^= h >>> 13;
    out[2 * i] = xs[i];
    out[2 * i + 1] = ((h & 0xffff) / 65535 - 0.5) * 2 * spread;
  }
  return out;
}

/**
 * Line segments for vector arrows: (p, p + v * scale) for every step-th cell.
 * @returns {Float32Array} 2 * comps per segment end, 3 components each
 */
export function arrowSegments(points, vectors, dim, scale, maxArrows = 20000) {
  const n = points.length / dim;
  const step = Math.max(1, Math.ceil(n / maxArrows));
  const count = Math.ceil(n / step);
  const out = new Float32Array(count * 6);
  let k = 0;
  for (let i = 0; i < n; i += step) {
    for (let c = 0; c < 3; c++) {
      const p = c < dim ? points[i * dim + c] : 0;
      const v = c < dim ? vectors[i * dim + c] : 0;
      out[k + c] = p;
      out[k + 3 + c] = p + v * scale;
    }
    k += 6;
  }
  return out;
}
