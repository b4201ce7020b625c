// The preview card: pick an embedding and an obs column, see ~20k cells on a canvas 2D.
import { field, h, select, setChildren } from "./dom.js";
import { colormapGradient } from "../common/colors.js";
import { categoryColors, decodePreview, drawPreview } from "./preview.js";

/**
 * The embeddings the preview offers: the plan's, highest dimension first.
 * @param {{embeddings?: Object<string, string>}} plan
 * @returns {{value: string, label: string, dim: number}[]}
 */
export function previewKeys(plan) {
  return Object.entries(plan.embeddings || {}).sort(([a], [b]) => Number(b) - Number(a)).map(([d, k]) => ({ value: k, label: `${k} (${d}D)`, dim: Number(d) }));
}

/**
 * Which embedding to preview: the current one while the plan keeps it, else the 2D one, else the first.
 * @param {{value: string, dim: number}[]} keys
 * @param {string} current
 */
export function chooseKey(keys, current) {
  if (keys.some((o) => o.value === current)) return current;
  return (keys.find((o) => o.dim === 2) || keys[0] || { value: "" }).value;
}

/** The colour column shown first: the first categorical one of at most 60 categories, not identifier-like. */
export function defaultColorKey(summary) {
  const c = (summary.obs || []).find((col) => col.kind === "categorical" && !col.identifier_like && col.n_categories && col.n_categories <= 60);
  return c ? c.key : "";
}

export function previewView(model, summary, draft) {
  const canvas = h("canvas", { class: "cw-preview-canvas", role: "img", "aria-label": "Preview of the embedding", "data-testid": "preview-canvas" });
  const legend = h("ul", { class: "cw-legend", "aria-label": "Preview colours" });
  const note = h("div", { class: "cw-hint", role: "status", "aria-live": "polite" });
  const keySel = select([], "", () => request());
  keySel.setAttribute("aria-label", "Embedding to preview");
  const colorSel = select([{ value: "", label: "no colour" }].concat((summary.obs || []).filter((c) => !c.identifier_like).map((c) => ({ value: c.key, label: c.key }))), "", () => request());
  colorSel.value = defaultColorKey(summary);
  let requestId = 0;
  let last = null;
  let lastKeys = "";

  function syncKeys(plan) {
    const keys = previewKeys(plan);
    const sig = JSON.stringify(keys);
    if (sig === lastKeys) return false;
    lastKeys = sig;
    const current = keySel.value;
    setChildren(keySel, keys.map((o) => h("option", { value: o.value }, o.label)));
    keySel.value = chooseKey(keys, current);
    return true;
  }

  function request() {
    if (!keySel.value) {
      last = null;
      drawPreview(canvas, null);
      note.textContent = "Choose an embedding to see a preview.";
      return;
    }
    requestId += 1;
    note.textContent = "loading preview…";
    model.send({ type: "wizard:preview", key: keySel.value, color: colorSel.value || null, request_id: requestId });
  }

  function renderLegend(p) {
    if (!p || p.kind !== "categorical") {
      setChildren(legend, p && p.kind === "continuous" ? [h("li", {}, `${Number(p.min).toPrecision(3)} `, h("span", { class: "cw-ramp", style: { background: colormapGradient("viridis", "to right") } }), ` ${Number(p.max).toPrecision(3)}`)] : []);
      return;
    }
    const colors = categoryColors(p);
    const cats = p.categories.slice(0, 24);
    setChildren(legend, cats.map((c, i) => h("li", { title: String(c) }, h("span", { class: "cw-swatch", style: { background: colors[i] } }), c)),
      p.categories.length > cats.length ? h("li", {}, `… ${p.categories.length - cats.length} more`) : null);
  }

  function onMsg(msg, buffers) {
    if (!msg || msg.type !== "wizard:preview" || msg.request_id !== requestId) return;
    if (msg.error) {
      note.textContent = msg.error;
      return;
    }
    try {
      last = decodePreview(msg, buffers);
      drawPreview(canvas, last);
      renderLegend(last);
      note.textContent = `${last.n.toLocaleString("en-US")} of ${msg.n_cells.toLocaleString("en-US")} cells`;
    } catch (e) {
      note.textContent = `preview failed: ${e.message}`;
    }
  }
  model.on("msg:custom", onMsg);
  const ro = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => last && drawPreview(canvas, last)) : null;
  ro?.observe(canvas);

  const el = h("section", { class: "cw-card cw-preview", "aria-label": "Preview" },
    h("div", { class: "cw-card-head" }, h("h3", {}, "Preview")),
    h("div", { class: "cw-grid2" }, field("Embedding", keySel), field("Colour by", colorSel)),
    canvas, legend, note);
  return {
    el,
    update(plan) {
      if (syncKeys(plan)) request();
    },
    destroy() {
      model.off("msg:custom", onMsg);
      ro?.disconnect();
    },
  };
}
