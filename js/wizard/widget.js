// The export wizard: the anywidget front-end of cellucid_nb.widgets.wizard.ExportWizard.
// State lives in the model's traits; bulk data (gene ids, preview points) comes
// as custom messages with binary buffers (protocol at the top of wizard.py).
import { mountViewer } from "../viewer/mount.js";
import { createCommTransport } from "../viewer/transport.js";
import { h } from "./dom.js";
import { estimateView } from "./estimate_view.js";
import { exportView } from "./export_view.js";
import { formatCount } from "./format.js";
import { createPlanDraft } from "./plan_draft.js";
import { previewView } from "./preview_view.js";
import { genesSection } from "./genes_section.js";
import { embeddingsSection, graphSection, latentSection, obsSection, outputSection, storageSection } from "./sections.js";

/** One line of what inspect() found. */
export function summaryLine(s) {
  const bits = [`${formatCount(s.n_cells)} cells × ${formatCount(s.n_genes)} genes${s.backed ? " (backed)" : ""}`];
  const n = (list) => (list || []).length;
  bits.push(`${n(s.embeddings)} embedding${n(s.embeddings) === 1 ? "" : "s"}`);
  bits.push(`${n(s.obs)} obs column${n(s.obs) === 1 ? "" : "s"}`);
  bits.push(`${n(s.expression)} expression source${n(s.expression) === 1 ? "" : "s"}`);
  if (n(s.graphs)) bits.push(`kNN graph${n(s.graphs) > 1 ? "s" : ""}: ${s.graphs.map((g) => g.key).join(", ")}`);
  if (n(s.vector_fields)) bits.push(`${n(s.vector_fields)} vector field${n(s.vector_fields) === 1 ? "" : "s"}`);
  const hvg = s.var_flags?.highly_variable;
  if (hvg) bits.push(`${formatCount(hvg)} highly variable genes`);
  return bits.join(" · ");
}

function render({ model, el }) {
  const summary = model.get("summary") || {};
  const draft = createPlanDraft(model);
  const parts = [];

  const preview = previewView(model, summary, draft);
  const sections = [
    embeddingsSection(summary, draft),
    obsSection(summary, draft),
    genesSection(summary, draft, model),
    storageSection(draft),
    latentSection(summary, draft),
    graphSection(summary, draft),
    outputSection(draft, model),
  ];
  const estimate = estimateView(model);
  const exporter = exportView(model, {
    flushPlan: () => draft.flush(),
    mountViewer(host) {
      const transport = createCommTransport(model);
      const controller = mountViewer(host, transport, { height: 460 });
      return {
        destroy() {
          controller?.destroy?.();
          transport.destroy();
        },
      };
    },
  });
  parts.push(preview, ...sections, estimate, exporter);

  const update = (plan) => {
    for (const part of [preview, ...sections]) part.update?.(plan);
  };
  draft.onChange(update);
  update(draft.plan);

  const root = h("div", { class: "cellucid-wizard", role: "region", "aria-label": "Cellucid export wizard" },
    h("header", { class: "cw-header" },
      h("h2", { class: "cw-title" }, "Export to Cellucid"),
      h("div", { class: "cw-summary", "data-testid": "summary" }, summaryLine(summary))),
    h("div", { class: "cw-main" },
      h("div", { class: "cw-choices" }, sections.map((s) => s.el)),
      h("aside", { class: "cw-side" }, preview.el, estimate.el, exporter.el)),
    exporter.resultEl,
    exporter.viewerHost);
  el.replaceChildren(root);

  return () => {
    draft.flush();
    for (const part of parts) part.destroy?.();
    draft.destroy();
    root.remove();
  };
}

export default { render };
