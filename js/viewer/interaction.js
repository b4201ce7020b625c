// Mouse and wheel handling of the plot: pan / orbit / zoom, lasso and box selection,
// hover (coalesced to one pick per animation frame). The viewer passes callbacks in ctx.
import { browserFrames } from "./frame.js";
import { pointsInBox, pointsInPolygon } from "./picking.js";

/**
 * Wire the pointer on the stage.
 * @param {object} ui  layout from buildLayout (stage, canvas, lassoPath)
 * @param {{camera: any, viewport: () => [number, number], requestDraw: () => void, hasData: () => boolean,
 *          tool: () => string, dim: () => number, screenPositions: () => Float32Array,
 *          visibilityTest: () => ((i: number) => boolean) | undefined, select: (idx: Uint32Array) => void,
 *          hover: (x: number, y: number) => void, hideTooltip: () => void, isDestroyed: () => boolean, setTool?: (tool: string) => void}} ctx
 * @param {(target: EventTarget, type: string, fn: (ev: any) => void, opts?: any) => void} listen  adds a listener that the viewer removes on destroy
 * @param {import("./frame.js").FrameScheduler} [frames]  hover is picked once per frame
 */
export function attachPointer(ui, ctx, listen, frames = browserFrames) {
  let drag = null;
  let hoverPending = null;

  function localXY(ev) {
    const r = ui.canvas.getBoundingClientRect();
    return [ev.clientX - r.left, ev.clientY - r.top];
  }
  function drawShape(poly) {
    if (!poly) { ui.lassoPath.setAttribute("points", ""); return; }
    let s = "";
    for (let i = 0; i < poly.length; i += 2) s += `${poly[i]},${poly[i + 1]} `;
    ui.lassoPath.setAttribute("points", s);
  }
  function scheduleHover(x, y) {
    if (!ctx.hasData()) return;
    const first = hoverPending === null;
    hoverPending = [x, y];
    if (first) frames.request(() => {
      const p = hoverPending;
      hoverPending = null;
      if (p && !ctx.isDestroyed()) ctx.hover(p[0], p[1]);
    });
  }

  function onPointerDown(ev) {
    if (!ctx.hasData() || ev.button > 2) return;
    ui.stage.setPointerCapture(ev.pointerId);
    const [x, y] = localXY(ev);
    const tool = ev.shiftKey && ctx.tool() === "pan" ? "lasso" : ctx.tool();
    drag = { x, y, lastX: x, lastY: y, tool, button: ev.button, poly: [x, y], moved: false };
    ctx.hideTooltip();
    ev.preventDefault();
  }
  function onPointerMove(ev) {
    const [x, y] = localXY(ev);
    if (!drag) { scheduleHover(x, y); return; }
    const dx = x - drag.lastX, dy = y - drag.lastY;
    drag.lastX = x; drag.lastY = y;
    if (Math.abs(x - drag.x) + Math.abs(y - drag.y) > 3) drag.moved = true;
    const [w, h] = ctx.viewport();
    if (drag.tool === "pan") {
      // 3D: left drag orbits, right / ctrl drag pans
      if (ctx.dim() === 3 && drag.button === 0 && !ev.ctrlKey) ctx.camera.orbit(dx, dy);
      else ctx.camera.pan(dx, dy, w, h);
      ctx.requestDraw();
    } else if (drag.tool === "lasso") {
      drag.poly.push(x, y);
      drawShape(drag.poly);
    } else if (drag.tool === "box") {
      drawShape([drag.x, drag.y, x, drag.y, x, y, drag.x, y]);
    }
  }
  function onPointerUp(ev) {
    if (!drag) return;
    const d = drag;
    drag = null;
    try { ui.stage.releasePointerCapture(ev.pointerId); } catch (_) { /* already released */ }
    drawShape(null);
    if (d.tool === "pan") return;
    if (!d.moved) { ctx.select(new Uint32Array(0)); return; } // a click clears the selection
    const [x, y] = localXY(ev);
    const screen = ctx.screenPositions();
    const vis = ctx.visibilityTest();
    ctx.select(d.tool === "lasso" ? pointsInPolygon(screen, d.poly, vis) : pointsInBox(screen, d.x, d.y, x, y, vis));
  }
  function onWheel(ev) {
    if (!ctx.hasData()) return;
    ev.preventDefault();
    const [x, y] = localXY(ev);
    const [w, h] = ctx.viewport();
    const delta = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;
    ctx.camera.zoom(Math.exp(-delta * 0.0015), x, y, w, h);
    ctx.requestDraw();
  }

  listen(ui.stage, "pointerdown", onPointerDown);
  listen(ui.stage, "pointermove", onPointerMove);
  listen(ui.stage, "pointerup", onPointerUp);
  listen(ui.stage, "pointercancel", onPointerUp);
  listen(ui.stage, "pointerleave", () => { if (!drag) ctx.hideTooltip(); });
  listen(ui.stage, "wheel", onWheel, { passive: false });
  listen(ui.stage, "contextmenu", (ev) => ev.preventDefault());
}
