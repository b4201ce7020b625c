// The toolbar's controls: filled from the export's meta, wired to the viewer's actions.
import { COLORMAP_NAMES } from "../common/colors.js";
import { attachGeneSearch } from "./gene_search.js";
import { h, markActive, segmented } from "./ui.js";

export const TOOLS = [
  { value: "pan", label: "✥", title: "Pan / orbit (p)" },
  { value: "lasso", label: "lasso", title: "Lasso selection (l, or shift-drag)" },
  { value: "box", label: "box", title: "Box selection (b)" },
];

/** Keyboard shortcut -> action name (keys typed in an input are ignored). */
export const SHORTCUTS = { Escape: "clearSelection", r: "resetView", l: "lasso", b: "box", p: "pan" };

/**
 * The obs field <select>: a blank entry, then categorical and continuous groups.
 * @param {HTMLSelectElement} select
 * @param {{key: string, kind: string}[]} obs
 */
export function fillFieldSelect(select, obs) {
  select.replaceChildren(
    h("option", { value: "", text: "— obs field —" }),
    ...["categorical", "continuous"].map((kind) => {
      const fs = obs.filter((f) => f.kind === kind);
      return fs.length ? h("optgroup", { label: kind }, fs.map((f) => h("option", { value: `obs:${f.key}`, text: f.key }))) : null;
    }).filter(Boolean),
  );
}

/** Save a data URL as a file (the PNG button). */
export function downloadURL(url, filename) {
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.click();
}

/**
 * Wire the toolbar and keyboard.
 * @param {any} ui  layout from buildLayout
 * @param {(target: EventTarget, type: string, fn: (ev: any) => void, opts?: any) => void} listen
 * @param {object} a  actions
 * @param {(field: string) => void} a.setColorField
 * @param {(d: number) => void} a.setDimension
 * @param {(id: string) => void} a.setEmbedding
 * @param {(tool: string) => void} a.setTool
 * @param {() => void} a.resetView
 * @param {() => void} a.clearSelection
 * @param {() => void} a.snapshot
 * @param {(on: boolean) => void} a.setShowEdges
 * @param {(on: boolean) => void} a.setShowVectors
 * @param {(field: string) => void} a.setVectorField
 * @param {(px: number) => void} a.setPointSize
 * @param {(name: string) => void} a.setColormap
 * @param {() => string[]} a.genes
 */
export function wireToolbar(ui, listen, a) {
  segmented(ui.tools, TOOLS, a.setTool);
  ui.cmap.replaceChildren(...COLORMAP_NAMES.map((n) => h("option", { value: n, text: n })));
  listen(ui.reset, "click", () => a.resetView());
  listen(ui.clear, "click", () => a.clearSelection());
  listen(ui.field, "change", () => { if (ui.field.value) a.setColorField(ui.field.value); });
  listen(ui.embedding, "change", () => a.setEmbedding(ui.embedding.value));
  listen(ui.snapshot, "click", () => a.snapshot());
  const edgesBox = ui.edges.querySelector("input"), vectorsBox = ui.vectors.querySelector("input");
  listen(edgesBox, "change", () => a.setShowEdges(edgesBox.checked));
  listen(vectorsBox, "change", () => a.setShowVectors(vectorsBox.checked));
  listen(ui.vectorField, "change", () => a.setVectorField(ui.vectorField.value));
  listen(ui.size, "input", () => a.setPointSize(Number(ui.size.value)));
  listen(ui.cmap, "change", () => a.setColormap(ui.cmap.value));
  listen(ui.root, "keydown", (ev) => {
    if (ev.target && ev.target.tagName === "INPUT") return;
    const action = SHORTCUTS[ev.key];
    if (action === "clearSelection" || action === "resetView") a[action]();
    else if (action) a.setTool(action);
  });
  attachGeneSearch(ui, a.genes, (gene) => a.setColorField(`gene:${gene}`), listen);
  return { edgesBox, vectorsBox };
}

/**
 * Show the controls this export supports.
 * @param {any} ui
 * @param {any} meta
 * @param {(d: number) => void} setDimension
 */
export function fillToolbar(ui, meta, setDimension) {
  fillFieldSelect(ui.field, meta.obs);
  ui.gene.disabled = meta.genes.length === 0;
  ui.gene.placeholder = meta.genes.length ? `gene (${meta.genes.length.toLocaleString()})…` : "no genes exported";
  segmented(ui.dims, meta.dimensions.map((d) => ({ value: d, label: `${d}D`, title: `${d}D embedding` })), setDimension);
  ui.edges.classList.toggle("cnb-absent", !meta.has_edges);
  const vids = Object.keys(meta.vectors || {});
  ui.vectors.classList.toggle("cnb-absent", vids.length === 0);
  ui.vectorField.classList.toggle("cnb-absent", vids.length < 2);
  ui.vectorField.replaceChildren(...vids.map((v) => h("option", { value: v, text: meta.vectors[v].label || v })));
  return vids[0] || null;
}

export { markActive };
