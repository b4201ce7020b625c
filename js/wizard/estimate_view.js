// The live estimate: total size, file count, expected time, size per part, warnings.
import { h, setChildren } from "./dom.js";
import { formatBytes, formatCount, formatSeconds, partsByGroup } from "./format.js";

const PART_LABELS = {
  points: "Embeddings",
  obs: "Cell metadata",
  genes: "Genes",
  graph: "kNN graph",
  vectors: "Vector fields",
  manifests: "Manifests",
};

export function estimateView(model) {
  const total = h("div", { class: "cw-est-total", "data-testid": "estimate-total" });
  const details = h("div", { class: "cw-est-details" });
  const state = h("span", { class: "cw-est-state", role: "status", "aria-live": "polite" });
  const chart = h("div", { class: "cw-bars", role: "img", "aria-label": "Size per part" });
  const warnings = h("ul", { class: "cw-warnings", "aria-label": "Estimate warnings" });
  const err = h("div", { class: "cw-error", role: "alert", hidden: true });
  const el = h("section", { class: "cw-card cw-estimate", "aria-label": "Estimate" },
    h("div", { class: "cw-card-head" }, h("h3", {}, "Estimate"), state), total, details, chart, warnings, err);

  function render() {
    const est = model.get("estimate") || {};
    const pending = model.get("estimate_pending");
    state.textContent = pending ? "updating…" : "";
    el.classList.toggle("cw-stale", !!pending);
    const e = model.get("estimate_error");
    err.hidden = !e;
    err.textContent = e || "";
    if (est.total_bytes === undefined) {
      total.textContent = pending ? "…" : "–";
      details.textContent = "";
      setChildren(chart);
      setChildren(warnings);
      return;
    }
    total.textContent = formatBytes(est.total_bytes);
    details.textContent = `${formatCount(est.n_files)} files${est.disk_bytes ? ` (${formatBytes(est.disk_bytes)} on disk)` : ""} · about ${formatSeconds(est.seconds)} to export`;
    const groups = partsByGroup(est.parts);
    const max = Math.max(1, ...groups.map((g) => g.bytes));
    setChildren(chart, groups.map((g) => h("div", { class: "cw-bar-row" },
      h("span", { class: "cw-bar-label" }, PART_LABELS[g.part] || g.part),
      h("span", { class: "cw-bar-track" }, h("span", { class: `cw-bar cw-bar-${g.part}`, style: { width: `${Math.max(1, (100 * g.bytes) / max)}%` } })),
      h("span", { class: "cw-bar-value" }, `${g.exact ? "" : "≈"}${formatBytes(g.bytes)}`))));
    chart.setAttribute("aria-label", `Size per part: ${groups.map((g) => `${PART_LABELS[g.part] || g.part} ${formatBytes(g.bytes)}`).join(", ")}`);
    setChildren(warnings, (est.warnings || []).map((w) => h("li", { class: "cw-warn" }, "⚠ ", w)));
  }
  const events = ["change:estimate", "change:estimate_pending", "change:estimate_error"];
  for (const ev of events) model.on(ev, render);
  render();
  return {
    el,
    destroy() {
      for (const ev of events) model.off(ev, render);
    },
  };
}
