// anywidget entry of the Viewer widget: traits <-> controller, data over the comm.
import { mountViewer } from "./mount.js";
import { createCommTransport } from "./transport.js";

function render({ model, el }) {
  const transport = createCommTransport(model, { timeoutMs: model.get("timeout_ms") || undefined });
  let applying = false; // do not echo trait changes that came from the front-end itself
  const controller = mountViewer(el, transport, {
    dimension: model.get("dimension"),
    colorField: model.get("color_field"),
    pointSize: model.get("point_size"),
    showEdges: model.get("show_edges"),
    showVectors: model.get("show_vectors"),
    height: model.get("height"),
    onStateChange(s) {
      if (applying) return;
      let changed = false;
      const set = (k, v) => { if (model.get(k) !== v) { model.set(k, v); changed = true; } };
      set("dimension", s.dimension);
      set("color_field", s.colorField);
      set("show_edges", s.showEdges);
      set("show_vectors", s.showVectors);
      if (changed) model.save_changes();
    },
  });
  const handlers = {
    "change:dimension": () => controller.setDimension(model.get("dimension")),
    "change:color_field": () => controller.setColorField(model.get("color_field")),
    "change:point_size": () => controller.setPointSize(model.get("point_size")),
    "change:show_edges": () => controller.setShowEdges(model.get("show_edges")),
    "change:show_vectors": () => controller.setShowVectors(model.get("show_vectors")),
    "change:height": () => controller.setHeight(model.get("height")),
  };
  for (const [ev, fn] of Object.entries(handlers)) {
    const wrapped = () => { applying = true; try { fn(); } finally { applying = false; } };
    handlers[ev] = wrapped;
    model.on(ev, wrapped);
  }
  return () => {
    for (const [ev, fn] of Object.entries(handlers)) model.off(ev, fn);
    controller.destroy();
    transport.destroy();
  };
}

export default { render };
