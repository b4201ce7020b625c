// The small preview scatter: canvas 2D (not WebGL, so it never competes with
// the viewer for a GL context), at most ~20k subsampled cells sent as binary.
// Colours come from common/colors.js, the viewer's own tables.

import { categoryColorsCss, continuousCss, MISSING_CSS } from "../common/colors.js";

function asArrayBuffer(buf) {
  if (buf instanceof ArrayBuffer) return buf;
  if (ArrayBuffer.isView(buf)) return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  if (buf && buf.buffer instanceof ArrayBuffer) return buf.buffer;
  throw new Error("preview buffer is not binary");
}

/** Decode a `wizard:preview` message into typed arrays; checks the sizes. */
export function decodePreview(msg, buffers) {
  const n = msg.n | 0;
  const positions = new Float32Array(asArrayBuffer(buffers[0]));
  if (positions.length !== 2 * n) throw new Error(`preview: ${positions.length} coordinates for ${n} cells, expected ${2 * n}`);
  let codes = null;
  if (msg.kind === "categorical") codes = new Uint16Array(asArrayBuffer(buffers[1]));
  else if (msg.kind === "continuous") codes = new Uint8Array(asArrayBuffer(buffers[1]));
  if (codes && codes.length !== n) throw new Error(`preview: ${codes.length} colour codes for ${n} cells`);
  return { ...msg, positions, codes };
}

/** CSS colour of a quantized continuous code (0..254 along viridis, 255 missing): the viewer's table. */
export function continuousColor(code) {
  return continuousCss(code);
}

/** CSS colour per category: the export's own colours when given, else scanpy's palette (as in the viewer). */
export function categoryColors(preview) {
  const n = (preview.categories || []).length;
  return categoryColorsCss(n, Array.isArray(preview.colors) ? preview.colors : null);
}

/**
 * Draw a decoded preview on a canvas. Points are drawn per colour (one path
 * per colour group) so 20k cells take a few milliseconds.
 */
export function drawPreview(canvas, preview, { pointSize = 0, background = null } = {}) {
  const dpr = globalThis.devicePixelRatio || 1;
  const width = canvas.clientWidth || 260;
  const height = canvas.clientHeight || 200;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  if (background) {
    ctx.fillStyle = background;
    ctx.fillRect(0, 0, width, height);
  }
  if (!preview || !preview.n) return;
  const pad = 6;
  const s = Math.min(width, height) / 2 - pad;
  const cx = width / 2;
  const cy = height / 2;
  const { positions, codes, n } = preview;
  if (!pointSize) pointSize = n > 10000 ? 1.5 : n > 2000 ? 2 : 3;
  const groups = new Map();
  for (let i = 0; i < n; i += 1) {
    const code = codes ? codes[i] : 0;
    let list = groups.get(code);
    if (!list) groups.set(code, (list = []));
    list.push(i);
  }
  const cats = preview.kind === "categorical" ? categoryColors(preview) : null;
  const fallback = getComputedStyle(canvas).color || "#1f77b4";
  for (const [code, list] of groups) {
    if (preview.kind === "categorical") ctx.fillStyle = code === 65535 ? MISSING_CSS : cats[code] || MISSING_CSS;
    else if (preview.kind === "continuous") ctx.fillStyle = continuousColor(code);
    else ctx.fillStyle = fallback;
    ctx.beginPath();
    for (const i of list) {
      const x = cx + positions[2 * i] * s;
      const y = cy - positions[2 * i + 1] * s;
      ctx.rect(x - pointSize / 2, y - pointSize / 2, pointSize, pointSize);
    }
    ctx.fill();
  }
}
