// Canvas sizing (CSS pixels x device pixel ratio) and the draw loop: at most one frame
// per animation frame, cancelled on destroy.
import { parseColor } from "../common/colors.js";

/** Milliseconds from a monotonic clock (performance.now where there is one): every timing of the viewer. */
export function now() {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}

/**
 * Size the canvas's drawing buffer to its CSS size times the device pixel ratio.
 * @param {{clientWidth: number, clientHeight: number, width: number, height: number}} canvas
 * @param {number} [dpr]  default: globalThis.devicePixelRatio or 1
 * @returns {{w: number, h: number, dpr: number}} CSS size (at least 1 x 1) and the ratio used
 */
export function syncCanvasSize(canvas, dpr = globalThis.devicePixelRatio || 1) {
  const w = Math.max(1, canvas.clientWidth), h = Math.max(1, canvas.clientHeight);
  const W = Math.round(w * dpr), H = Math.round(h * dpr);
  if (canvas.width !== W || canvas.height !== H) {
    canvas.width = W;
    canvas.height = H;
  }
  return { w, h, dpr };
}

/** A CSS colour ("rgb(...)", "#hex", a few names) as [r, g, b] in 0..1; white when unknown. */
export function cssColorToUnit(text) {
  const c = parseColor(text);
  return c ? [c[0] / 255, c[1] / 255, c[2] / 255] : [1, 1, 1];
}

/**
 * @typedef {{request: (fn: () => void) => number, cancel: (id: number) => void}} FrameScheduler
 */

/** The browser's animation frames. */
export const browserFrames = {
  request: (fn) => requestAnimationFrame(fn),
  cancel: (id) => cancelAnimationFrame(id),
};

/**
 * Follow the stage's size (`onResize`) and JupyterLab's theme (`onTheme`): JupyterLab
 * switches themes by changing <body> attributes and stylesheets, and the canvas clear
 * colour comes from CSS. Observers missing from the host are skipped.
 * @param {Element} stage
 * @param {() => void} onResize
 * @param {() => void} onTheme
 * @returns {() => void} disconnects both
 */
export function observeStage(stage, onResize, onTheme) {
  const ro = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => onResize()) : null;
  if (ro) ro.observe(stage);
  let theme = null;
  if (typeof MutationObserver !== "undefined" && globalThis.document && document.body) {
    theme = new MutationObserver(() => onTheme());
    theme.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
  }
  return () => { if (ro) ro.disconnect(); if (theme) theme.disconnect(); };
}

/**
 * One pending frame at a time.
 * @param {() => void} draw
 * @param {FrameScheduler} [frames]
 */
export function createDrawLoop(draw, frames = browserFrames) {
  let id = 0;
  let stopped = false;
  const run = () => { id = 0; if (!stopped) draw(); };
  return {
    request() { if (!id && !stopped) id = frames.request(run) || -1; },
    /** Draw now instead of at the next frame. */
    flush() { if (id) { frames.cancel(id); id = 0; } if (!stopped) draw(); },
    stop() { stopped = true; if (id) frames.cancel(id); id = 0; },
    get pending() { return id !== 0; },
  };
}
