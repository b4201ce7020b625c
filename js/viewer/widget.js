// anywidget entry of the Viewer widget: traits <-> controller, data over the comm.
import { mountViewer } from "./mount.js";
import { createCommTransport } from "./transport.js";

/** Trait name -> controller setter, for changes made in Python. */
const SETTERS = {
  dimension: (c, v) => c.setDimension(v),
  embedding: (c, v) => c.setEmbedding(v),
  color_field: (c, v) => c.setColorField(v),
  point_size: (c, v) => c.setPointSize(v),
  show_edges: (c, v) => c.setShowEdges(v),
  show_vectors: (c, v) => c.setShowVectors(v),
  height: (c, v) => c.setHeight(v),
  opacity: (c, v) => c.setOpacity(v),
};

/**
 * @param {{model: any, el: HTMLElement}} ctx  anywidget's render arguments
 * @param {{mount?: typeof mountViewer, createTransport?: typeof createCommTransport}} [deps]  (tests)
 */
export function render({ model, el }, deps = {}) {
  const transport = (deps.createTransport || createCommTransport)(model, { timeoutMs: model.get("timeout_ms") || undefined });
  // Traits the front-end itself is writing: their change events are echoes, not requests
  // from Python (acting on them could re-apply an older value).
  const writing = new Set();
  const controller = (deps.mount || mountViewer)(el, transport, {
    dimension: model.get("dimension"),
    embedding: model.get("embedding") || undefined,
    colorField: model.get("color_field"),
    pointSize: model.get("point_size"),
    showEdges: model.get("show_edges"),
    showVectors: model.get("show_vectors"),
    height: model.get("height"),
    opacity: model.get("opacity"),
    onStateChange(s) {
      let changed = false;
      const set = (k, v) => {
        if (model.get(k) === v) return;
        writing.add(k);
        try { model.set(k, v); } finally { writing.delete(k); }
        changed = true;
      };
      set("dimension", s.dimension);
      if (s.embedding !== undefined && model.get("embedding") !== undefined) set("embedding", s.embedding); // older models lack it
      set("color_field", s.colorField);
      set("show_edges", s.showEdges);
      set("show_vectors", s.showVectors);
      if (s.opacity !== undefined && model.get("opacity") !== undefined) set("opacity", s.opacity); // older models lack it
      if (changed) model.save_changes();
    },
  });
  const handlers = {};
  for (const [trait, apply] of Object.entries(SETTERS)) {
    handlers[`change:${trait}`] = () => { if (!writing.has(trait)) apply(controller, model.get(trait)); };
    model.on(`change:${trait}`, handlers[`change:${trait}`]);
  }
  return () => {
    for (const [ev, fn] of Object.entries(handlers)) model.off(ev, fn);
    controller.destroy();
    transport.destroy();
  };
}

export default { render };
