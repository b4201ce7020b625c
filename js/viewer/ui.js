// DOM parts of the viewer: toolbar, legend, colour bar, tooltip, labels, status line.
// Pure DOM building; the behaviour is wired in toolbar.js and mount.js.
import { colormapGradient, rgbaCss } from "../common/colors.js";

export function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of [].concat(children)) if (c) el.append(c);
  return el;
}

/** Build the static layout; returns named elements. */
export function buildLayout(root) {
  /** @type {any} */
  const ui = {};
  ui.field = h("select", { class: "cnb-field", title: "Colour by obs field", "aria-label": "colour field" });
  ui.gene = h("input", { class: "cnb-gene", type: "search", placeholder: "gene…", title: "Colour by gene", "aria-label": "gene search", autocomplete: "off", spellcheck: "false" });
  ui.geneList = h("div", { class: "cnb-gene-list", role: "listbox" });
  ui.dims = h("div", { class: "cnb-group cnb-dims" });
  ui.embedding = h("select", { class: "cnb-embedding", title: "Embedding of this dimension", "aria-label": "embedding" });
  ui.embeddingWrap = h("label", { class: "cnb-embedding-wrap cnb-absent" }, ["Embedding ", ui.embedding]);
  ui.tools = h("div", { class: "cnb-group cnb-tools" });
  ui.reset = h("button", { class: "cnb-btn cnb-reset", title: "Reset view", text: "⟲ reset" });
  ui.edges = h("label", { class: "cnb-check cnb-edges", title: "Show kNN edges" }, [h("input", { type: "checkbox" }), " edges"]);
  ui.vectors = h("label", { class: "cnb-check cnb-vectors", title: "Show vector field" }, [h("input", { type: "checkbox" }), " vectors"]);
  ui.vectorField = h("select", { class: "cnb-vector-field", title: "Vector field" });
  ui.size = h("input", { class: "cnb-size", type: "range", min: "0.5", max: "12", step: "0.5", title: "Point size" });
  ui.cmap = h("select", { class: "cnb-cmap", title: "Colour map" });
  ui.snapshot = h("button", { class: "cnb-btn cnb-snapshot", title: "Save a PNG snapshot", text: "PNG" });
  ui.clear = h("button", { class: "cnb-btn cnb-clear", title: "Clear selection (Esc)", text: "clear" });
  ui.toolbar = h("div", { class: "cnb-toolbar" }, [
    ui.field,
    h("div", { class: "cnb-gene-wrap" }, [ui.gene, ui.geneList]),
    ui.dims, ui.embeddingWrap, ui.tools, ui.clear, ui.reset, ui.edges, ui.vectors, ui.vectorField, ui.cmap, ui.size, ui.snapshot,
  ]);
  ui.canvas = h("canvas", { class: "cnb-canvas" });
  ui.labels = h("div", { class: "cnb-labels" });
  ui.overlay = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  ui.overlay.setAttribute("class", "cnb-overlay");
  ui.lassoPath = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
  ui.overlay.append(ui.lassoPath);
  ui.tooltip = h("div", { class: "cnb-tooltip" });
  ui.status = h("div", { class: "cnb-status" });
  ui.error = h("div", { class: "cnb-error", role: "alert" });
  ui.stage = h("div", { class: "cnb-stage" }, [ui.canvas, ui.labels, ui.overlay, ui.tooltip, ui.status, ui.error]);
  ui.legend = h("div", { class: "cnb-legend" });
  ui.main = h("div", { class: "cnb-main" }, [ui.stage, ui.legend]);
  ui.root = h("div", { class: "cnb-viewer", tabindex: "0" }, [ui.toolbar, ui.main]);
  root.append(ui.root);
  return ui;
}

export function segmented(container, items, onPick) {
  container.replaceChildren(
    ...items.map(({ value, label, title }) =>
      h("button", { class: "cnb-btn", "data-value": value, title, text: label, onclick: () => onPick(value) }),
    ),
  );
}

export function markActive(container, value) {
  for (const b of container.querySelectorAll("button")) b.classList.toggle("cnb-active", b.dataset.value === String(value));
}

/**
 * Legend of a categorical field: swatch, name, count; click hides, double-click or alt-click isolates.
 * @param {{categories?: string[], colors?: number[][], counts?: Uint32Array, hidden: Set<number>}} f
 */
export function renderCategoricalLegend(legend, title, f, handlers) {
  const rows = [];
  const n = f.categories.length;
  for (let i = 0; i < n; i++) {
    rows.push(
      h("div", {
        class: "cnb-legend-row" + (f.hidden.has(i) ? " cnb-hidden" : ""),
        "data-index": i,
        title: `${f.categories[i]} (${f.counts[i].toLocaleString()} cells)`,
      }, [
        h("span", { class: "cnb-swatch", style: `background:${rgbaCss(f.colors[i])}` }),
        h("span", { class: "cnb-legend-name", text: String(f.categories[i]) }),
        h("span", { class: "cnb-legend-count", text: f.counts[i].toLocaleString() }),
      ]),
    );
  }
  if (f.counts[n] > 0) {
    rows.push(h("div", { class: "cnb-legend-row cnb-legend-missing" + (f.hidden.has(-1) ? " cnb-hidden" : ""), "data-index": -1 }, [
      h("span", { class: "cnb-swatch cnb-swatch-missing" }),
      h("span", { class: "cnb-legend-name", text: "missing" }),
      h("span", { class: "cnb-legend-count", text: f.counts[n].toLocaleString() }),
    ]));
  }
  const list = h("div", { class: "cnb-legend-list" }, rows);
  list.addEventListener("click", (ev) => {
    const row = /** @type {HTMLElement} */ (ev.target).closest(".cnb-legend-row");
    if (!(row instanceof HTMLElement)) return;
    const i = Number(row.dataset.index);
    if (ev.altKey || ev.metaKey) handlers.isolate(i);
    else handlers.toggle(i);
  });
  list.addEventListener("dblclick", (ev) => {
    const row = /** @type {HTMLElement} */ (ev.target).closest(".cnb-legend-row");
    if (row instanceof HTMLElement) handlers.isolate(Number(row.dataset.index));
  });
  const showAll = h("button", { class: "cnb-btn cnb-show-all", text: "show all", onclick: handlers.showAll });
  legend.replaceChildren(h("div", { class: "cnb-legend-title", text: title, title: `${title} · click an entry: hide/show · double-click or alt-click: isolate` }), showAll, list);
}

function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}
export { fmt as formatNumber };

/** Colour bar of a continuous field. */
export function renderColorbar(legend, title, f, cmap) {
  const bar = h("div", { class: "cnb-colorbar", style: `background:${colormapGradient(cmap)}` });
  const ticks = h("div", { class: "cnb-colorbar-ticks" }, [
    h("span", { text: fmt(f.max) }),
    h("span", { text: fmt((f.min + f.max) / 2) }),
    h("span", { text: fmt(f.min) }),
  ]);
  const parts = [h("div", { class: "cnb-legend-title", text: title }), h("div", { class: "cnb-colorbar-wrap" }, [bar, ticks])];
  if (f.nMissing > 0) {
    parts.push(h("div", { class: "cnb-legend-row cnb-legend-missing" }, [
      h("span", { class: "cnb-swatch cnb-swatch-missing" }),
      h("span", { class: "cnb-legend-name", text: "missing" }),
      h("span", { class: "cnb-legend-count", text: f.nMissing.toLocaleString() }),
    ]));
  }
  legend.replaceChildren(...parts);
}
