// Selection, highlight and hover: the projected screen positions (cached per camera,
// viewport and dimension), nearest-cell picking for the tooltip (2D and 3D, hidden
// categories and cells behind the camera skipped), lasso/box results and highlight flags.
import { continuousValue } from "./decode.js";
import { nearestPoint, projectPoints } from "./picking.js";
import { formatNumber, h } from "./ui.js";

export const HOVER_RADIUS = 8;

/**
 * What the tooltip says about cell i for the field being drawn.
 * @param {import("./fields.js").PreparedField|null} f
 * @param {number} i
 */
export function describeCell(f, i) {
  if (!f) return "";
  if (f.kind === "categorical") {
    const c = f.codes[i];
    return c < f.categories.length ? String(f.categories[c]) : "missing";
  }
  const v = continuousValue(f, i);
  return Number.isNaN(v) ? "missing" : formatNumber(v);
}

/**
 * Highlight flags for `indices` among n cells (indices out of range ignored), or null.
 * @param {ArrayLike<number>|null} indices
 * @param {number} n
 */
export function flagsFor(indices, n) {
  if (!indices || indices.length === 0) return null;
  const flags = new Uint8Array(n);
  for (let i = 0; i < indices.length; i++) if (indices[i] < n) flags[indices[i]] = 1;
  return flags;
}

/**
 * @param {object} ctx
 * @param {{tooltip: HTMLElement, clear: HTMLElement}} ctx.ui
 * @param {{matrix: (w: number, h: number) => Float32Array, version: number}} ctx.camera
 * @param {() => [number, number]} ctx.viewport
 * @param {() => {positions: Float32Array, comps: number, dim: number, loaded?: number}|null} ctx.points
 * @param {() => number} ctx.nCells
 * @param {() => any} ctx.getRenderer
 * @param {() => any} ctx.colors  the colour state (field, visibilityTest)
 * @param {(indices: Uint32Array) => void} ctx.sendSelection
 * @param {(cells: ArrayLike<number>) => ArrayLike<number>} [ctx.toPositions]  cell indices -> draw positions (progressive.js)
 * @param {(i: number) => number} [ctx.cellId]  draw position -> cell index
 * @param {(text: string) => void} ctx.setStatus
 * @param {() => void} ctx.requestDraw
 */
export function createSelection(ctx) {
  const listeners = new Set();
  let projection = { key: "", screen: null };
  let selection = new Uint32Array(0);
  /** @type {Uint8Array|null} */
  let flags = null;

  function screenPositions() {
    const p = ctx.points();
    if (!p) return new Float32Array(0);
    const [w, hgt] = ctx.viewport();
    // a progressive load projects only the cells loaded so far
    const positions = p.loaded !== undefined ? p.positions.subarray(0, p.loaded * p.comps) : p.positions;
    const key = `${ctx.camera.version}|${w}|${hgt}|${p.dim}|${positions.length}`;
    if (projection.key !== key) {
      projection.screen = projectPoints(positions, p.comps, ctx.camera.matrix(w, hgt), w, hgt, projection.screen);
      projection.key = key;
    }
    return projection.screen;
  }

  function setFlags(indices) {
    flags = flagsFor(indices && ctx.toPositions ? ctx.toPositions(indices) : indices, ctx.nCells());
    const r = ctx.getRenderer();
    if (r) r.setHighlight(flags);
    ctx.requestDraw();
  }

  function hideTooltip() {
    ctx.ui.tooltip.classList.remove("cnb-visible");
  }

  /** Index of the visible cell under (x, y) CSS pixels, or -1. */
  function pick(x, y) {
    return nearestPoint(screenPositions(), x, y, HOVER_RADIUS, ctx.colors().visibilityTest());
  }

  return {
    screenPositions,
    pick,
    hideTooltip,
    setFlags,
    /** Forget the cached projection (resize, camera reset, new positions). */
    invalidate() { projection.key = ""; },
    get selection() { return selection; },
    get flags() { return flags; },
    select(indices) {
      selection = indices;
      setFlags(indices);
      ctx.ui.clear.classList.toggle("cnb-visible", indices.length > 0);
      ctx.setStatus(indices.length ? `${indices.length.toLocaleString()} cells selected` : "");
      ctx.sendSelection(indices);
      for (const cb of listeners) cb(indices);
    },
    onSelect(cb) { listeners.add(cb); return () => listeners.delete(cb); },
    hover(x, y) {
      const i = pick(x, y);
      if (i < 0) { hideTooltip(); return; }
      const f = ctx.colors().field;
      const tip = ctx.ui.tooltip;
      const cell = ctx.cellId ? ctx.cellId(i) : i;
      tip.replaceChildren(h("b", { text: `cell ${cell}` }), ...(f ? [h("div", { text: `${f.label}: ${describeCell(f, i)}` })] : []));
      tip.dataset.cell = String(cell);
      tip.style.transform = `translate(${x + 12}px, ${y + 12}px)`;
      tip.classList.add("cnb-visible");
    },
    clearListeners() { listeners.clear(); },
  };
}
