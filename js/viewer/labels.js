// Category labels drawn as HTML at the projected centroids (the export's centroids per
// dimension). Placement is greedy by category size: the largest category is placed first
// and a label that would overlap one already placed is hidden.

const MAX_LABELS = 80;
const CHAR_WIDTH = 6.6; // px per character of the 11 px bold label font (estimate)
const LABEL_HEIGHT = 14;
const PAD = 2;

/**
 * Screen position of a centroid, or null when behind the camera or far off screen.
 * @param {number[]} position
 * @param {number} dim
 * @param {Float32Array|number[]} mvp
 * @param {number} w
 * @param {number} h
 * @returns {[number, number]|null}
 */
export function projectCentroid(position, dim, mvp, w, h) {
  const p = position || [];
  const x = p[0] || 0, y = dim === 1 ? 0 : p[1] || 0, z = dim === 3 ? p[2] || 0 : 0;
  const cw = mvp[3] * x + mvp[7] * y + mvp[11] * z + mvp[15];
  if (cw <= 1e-6) return null; // behind the camera
  const sx = ((mvp[0] * x + mvp[4] * y + mvp[8] * z + mvp[12]) / cw + 1) * 0.5 * w;
  const sy = (1 - (mvp[1] * x + mvp[5] * y + mvp[9] * z + mvp[13]) / cw) * 0.5 * h;
  if (sx < -50 || sy < -20 || sx > w + 50 || sy > h + 20) return null;
  return [sx, sy];
}

/**
 * Greedy label placement: candidates by decreasing size, each kept only if its box
 * does not overlap a kept one.
 * @param {{text: string, x: number, y: number, size: number}[]} candidates
 * @param {(text: string) => number} [width]  label width in px
 * @returns {{text: string, x: number, y: number, size: number}[]} kept labels, largest first
 */
export function placeLabels(candidates, width = (t) => t.length * CHAR_WIDTH + 4) {
  const order = candidates.map((c, i) => ({ c, i })).sort((a, b) => b.c.size - a.c.size || a.i - b.i);
  const boxes = [];
  const kept = [];
  for (const { c } of order) {
    const hw = width(c.text) / 2 + PAD, hh = LABEL_HEIGHT / 2 + PAD;
    const box = [c.x - hw, c.y - hh, c.x + hw, c.y + hh];
    if (boxes.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) continue;
    boxes.push(box);
    kept.push(c);
  }
  return kept;
}

/**
 * @param {HTMLElement} container  absolutely positioned over the canvas
 */
export function createLabelLayer(container) {
  /** @type {HTMLElement[]} */
  const pool = [];
  return {
    /**
     * @param {{category: string, position: number[]}[]|null} centroids
     * @param {number} dim
     * @param {(category: string) => boolean} isShown
     * @param {(category: string) => number} sizeOf  cells in the category (placement priority)
     * @param {Float32Array} mvp
     * @param {number} w
     * @param {number} h
     * @returns {number} labels shown
     */
    update(centroids, dim, isShown, sizeOf, mvp, w, h) {
      const candidates = [];
      if (centroids && centroids.length <= MAX_LABELS) {
        for (const c of centroids) {
          const text = String(c.category);
          if (!isShown(text)) continue;
          const p = projectCentroid(c.position, dim, mvp, w, h);
          if (p) candidates.push({ text, x: p[0], y: p[1], size: sizeOf(text) });
        }
      }
      const placed = placeLabels(candidates);
      placed.forEach((c, used) => {
        let label = pool[used];
        if (!label) {
          label = document.createElement("div");
          label.className = "cnb-label";
          pool.push(label);
          container.append(label);
        }
        label.textContent = c.text;
        label.style.transform = `translate(${c.x.toFixed(1)}px, ${c.y.toFixed(1)}px) translate(-50%, -50%)`;
        label.style.display = "";
      });
      for (let i = placed.length; i < pool.length; i++) pool[i].style.display = "none";
      return placed.length;
    },
  };
}
