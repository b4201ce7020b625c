// CPU picking over projected points: hover (nearest point) and lasso / box selection.
// The projection uses the same matrix the GPU draws with, so picks match pixels.

/**
 * Project positions to CSS pixels with a column-major matrix.
 * @param {Float32Array} positions  n * comps values
 * @param {number} comps 2 or 3
 * @param {Float32Array} m  data -> clip matrix
 * @param {number} w, h viewport in CSS pixels
 * @param {Float32Array} [out] reused output of 2n values (NaN for points behind the camera)
 * @returns {Float32Array}
 */
export function projectPoints(positions, comps, m, w, h, out) {
  const n = positions.length / comps;
  if (!out || out.length !== 2 * n) out = new Float32Array(2 * n);
  const hw = w / 2, hh = h / 2;
  for (let i = 0, j = 0; i < n; i++, j += comps) {
    const x = positions[j], y = positions[j + 1], z = comps === 3 ? positions[j + 2] : 0;
    const cw = m[3] * x + m[7] * y + m[11] * z + m[15];
    if (cw <= 1e-6) { out[2 * i] = NaN; out[2 * i + 1] = NaN; continue; }
    out[2 * i] = ((m[0] * x + m[4] * y + m[8] * z + m[12]) / cw + 1) * hw;
    out[2 * i + 1] = (1 - (m[1] * x + m[5] * y + m[9] * z + m[13]) / cw) * hh;
  }
  return out;
}

/**
 * Index of the visible point nearest to (x, y) within `radius` pixels, or -1.
 * @param {Float32Array} screen  2n projected coordinates
 * @param {(i: number) => boolean} [isVisible]
 */
export function nearestPoint(screen, x, y, radius, isVisible) {
  let best = -1, bestD = radius * radius;
  const n = screen.length / 2;
  for (let i = 0; i < n; i++) {
    const dx = screen[2 * i] - x;
    if (dx > radius || dx < -radius) continue; // also false for NaN
    const dy = screen[2 * i + 1] - y;
    const d = dx * dx + dy * dy;
    if (d <= bestD && (!isVisible || isVisible(i))) { bestD = d; best = i; }
  }
  return best;
}

/** Even-odd test of (x, y) against a polygon given as a flat [x0, y0, x1, y1, ...] array. */
export function insidePolygon(poly, x, y) {
  let inside = false;
  const n = poly.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = poly[2 * i], yi = poly[2 * i + 1], xj = poly[2 * j], yj = poly[2 * j + 1];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/**
 * Indices of visible points inside a lasso polygon (flat pixel coordinates).
 * @returns {Uint32Array} sorted indices
 */
export function pointsInPolygon(screen, poly, isVisible) {
  if (poly.length < 6) return new Uint32Array(0);
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let k = 0; k < poly.length; k += 2) {
    x0 = Math.min(x0, poly[k]); x1 = Math.max(x1, poly[k]);
    y0 = Math.min(y0, poly[k + 1]); y1 = Math.max(y1, poly[k + 1]);
  }
  const n = screen.length / 2;
  const hits = [];
  for (let i = 0; i < n; i++) {
    const x = screen[2 * i], y = screen[2 * i + 1];
    if (!(x >= x0 && x <= x1 && y >= y0 && y <= y1)) continue; // bounding box first (NaN fails)
    if (insidePolygon(poly, x, y) && (!isVisible || isVisible(i))) hits.push(i);
  }
  return Uint32Array.from(hits);
}

/** Indices of visible points inside the box with corners (ax, ay), (bx, by). */
export function pointsInBox(screen, ax, ay, bx, by, isVisible) {
  const x0 = Math.min(ax, bx), x1 = Math.max(ax, bx), y0 = Math.min(ay, by), y1 = Math.max(ay, by);
  const n = screen.length / 2;
  const hits = [];
  for (let i = 0; i < n; i++) {
    const x = screen[2 * i], y = screen[2 * i + 1];
    if (x >= x0 && x <= x1 && y >= y0 && y <= y1 && (!isVisible || isVisible(i))) hits.push(i);
  }
  return Uint32Array.from(hits);
}
