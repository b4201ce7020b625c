// The wizard's choice sections (all but genes, see genes_section.js). Each is built
// once from the summary and has an `update(plan)` that refreshes its controls (so typing
// never loses focus). The rules (how a control edits the plan, badge texts) live in
// plan_edits.js; plan fields follow ExportPlan.to_dict().
import { field, h, select, uid } from "./dom.js";
import {
  bitsLabel, bitsValue, blankToNull, embeddingOptions, embeddingsBadge, graphBadge, latentOptions, obsDescription, obsWarnings,
  setAllObs, setEmbedding, setObsKey, setVectorField, storageBadge,
} from "./plan_edits.js";

const BITS_OPTIONS = [
  { value: "8", label: "8-bit (smallest)" },
  { value: "16", label: "16-bit" },
  { value: "", label: "float32 (exact, 4× bigger)" },
];
const COMPRESSION_OPTIONS = [{ value: "", label: "none" }].concat(
  [1, 2, 3, 4, 5, 6, 7, 8, 9].map((l) => ({ value: String(l), label: `gzip ${l}${l === 6 ? " (default)" : l === 9 ? " (smallest, slowest)" : l === 1 ? " (fastest)" : ""}` })),
);

/** A collapsible section: <details><summary>title</summary>body</details>. */
export function section(title, body, { open = true, badge = null } = {}) {
  const badgeEl = h("span", { class: "cw-badge" }, badge ?? "");
  const el = h("details", { class: "cw-section", open }, h("summary", {}, h("span", { class: "cw-section-title" }, title), badgeEl), body);
  return { el, badgeEl };
}

// ---------------------------------------------------------------------------- embeddings

export function embeddingsSection(summary, draft, onPreview) {
  const selects = {};
  const body = h("div", { class: "cw-grid3" });
  for (const dim of [1, 2, 3]) {
    const options = embeddingOptions(summary, dim);
    const sel = select(options, draft.plan.embeddings?.[dim] ?? "", (value) => draft.edit((p) => setEmbedding(p, dim, value)),
      { disabled: options.length < 2, "data-testid": `embedding-${dim}d` });
    selects[dim] = sel;
    body.append(field(`${dim}D embedding`, sel));
  }
  const s = section("Embeddings", body);
  return {
    el: s.el,
    update(plan) {
      for (const dim of [1, 2, 3]) selects[dim].value = plan.embeddings?.[dim] ?? "";
      s.badgeEl.textContent = embeddingsBadge(plan);
      onPreview?.();
    },
  };
}

// ---------------------------------------------------------------------------- latent

export function latentSection(summary, draft) {
  const options = latentOptions(summary);
  const sel = select(options, draft.plan.latent ?? "", (v) => draft.edit((p) => { p.latent = blankToNull(v); }), { "data-testid": "latent" });
  const s = section("Latent space", field("Latent space for outlier quantiles", sel, "Used to rank how typical each cell is for its category."), { open: false });
  return {
    el: s.el,
    update(plan) {
      sel.value = plan.latent ?? "";
      s.badgeEl.textContent = plan.latent ?? "from embedding";
    },
  };
}

// ---------------------------------------------------------------------------- obs columns

export function obsSection(summary, draft) {
  const boxes = new Map();
  const list = h("ul", { class: "cw-obs-list", role: "list" });
  for (const col of summary.obs || []) {
    const id = uid("cw-obs");
    const box = h("input", {
      type: "checkbox", id, "data-key": col.key,
      onchange: (e) => draft.edit((p) => setObsKey(p, summary, col.key, e.target.checked)),
    });
    boxes.set(col.key, box);
    const warnings = obsWarnings(col);
    list.append(h("li", { class: "cw-obs-item" },
      box,
      h("label", { for: id }, h("span", { class: "cw-key" }, col.key), " ", h("span", { class: `cw-kind cw-kind-${col.kind}` }, obsDescription(col))),
      warnings.length ? h("span", { class: "cw-warn-inline", role: "note" }, "⚠ ", warnings.join("; ")) : null));
  }
  const setAll = (on) => draft.edit((p) => setAllObs(p, summary, on));
  const tools = h("div", { class: "cw-row" },
    h("button", { type: "button", class: "cw-btn cw-btn-small", onclick: () => setAll(true) }, "Select all useful"),
    h("button", { type: "button", class: "cw-btn cw-btn-small", onclick: () => setAll(false) }, "Select none"));
  const catSel = select([
    { value: "auto", label: "auto (uint8 up to 254 categories)" },
    { value: "uint8", label: "uint8" },
    { value: "uint16", label: "uint16" },
  ], draft.plan.obs_categorical_dtype, (v) => draft.edit((p) => { p.obs_categorical_dtype = v; }));
  const s = section("Cell metadata (obs)", [tools, list, field("Category codes", catSel)]);
  return {
    el: s.el,
    update(plan) {
      const chosen = new Set(plan.obs_keys || []);
      for (const [key, box] of boxes) box.checked = chosen.has(key);
      catSel.value = plan.obs_categorical_dtype;
      s.badgeEl.textContent = `${chosen.size} of ${boxes.size}`;
    },
  };
}

// ---------------------------------------------------------------------------- graph and vectors

export function graphSection(summary, draft) {
  const graphs = summary.graphs || [];
  const graphSel = select([{ value: "", label: "none" }].concat(graphs.map((g) => ({ value: g.key, label: `${g.key}${g.mean_neighbors ? ` (~${g.mean_neighbors.toFixed(0)} neighbours/cell)` : ""}` }))),
    draft.plan.connectivities ?? "", (v) => draft.edit((p) => { p.connectivities = blankToNull(v); }), { disabled: !graphs.length });
  const boxes = new Map();
  const vlist = h("ul", { class: "cw-obs-list", role: "list" });
  for (const v of summary.vector_fields || []) {
    const id = uid("cw-vec");
    const box = h("input", { type: "checkbox", id, onchange: (e) => draft.edit((p) => setVectorField(p, v.key, e.target.checked)) });
    boxes.set(v.key, box);
    vlist.append(h("li", { class: "cw-obs-item" }, box, h("label", { for: id }, h("span", { class: "cw-key" }, v.key), ` ${v.n_dims}D`)));
  }
  const s = section("Graph and vector fields", [
    field("kNN graph", graphSel, graphs.length ? null : "No square obsp matrix found."),
    boxes.size ? h("div", { class: "cw-sublabel" }, "Vector fields") : h("div", { class: "cw-hint" }, "No vector fields found in obsm."),
    vlist,
  ], { open: false });
  return {
    el: s.el,
    update(plan) {
      graphSel.value = plan.connectivities ?? "";
      const vf = plan.vector_fields || {};
      for (const [key, box] of boxes) box.checked = key in vf;
      s.badgeEl.textContent = graphBadge(plan);
    },
  };
}

// ---------------------------------------------------------------------------- quantization and compression

export function storageSection(draft) {
  const varSel = select(BITS_OPTIONS, bitsLabel(draft.plan.var_quantization), (v) => draft.edit((p) => { p.var_quantization = bitsValue(v); }), { "data-testid": "var-quantization" });
  const obsSel = select(BITS_OPTIONS, bitsLabel(draft.plan.obs_continuous_quantization), (v) => draft.edit((p) => { p.obs_continuous_quantization = bitsValue(v); }), { "data-testid": "obs-quantization" });
  const compSel = select(COMPRESSION_OPTIONS, bitsLabel(draft.plan.compression), (v) => draft.edit((p) => { p.compression = v === "" ? null : Number(v); }), { "data-testid": "compression" });
  const s = section("Quantization and compression", h("div", { class: "cw-grid3" },
    field("Gene values", varSel), field("Continuous obs", obsSel), field("Compression", compSel)));
  return {
    el: s.el,
    update(plan) {
      varSel.value = bitsLabel(plan.var_quantization);
      obsSel.value = bitsLabel(plan.obs_continuous_quantization);
      compSel.value = bitsLabel(plan.compression);
      s.badgeEl.textContent = storageBadge(plan);
    },
  };
}

// ---------------------------------------------------------------------------- output and metadata

const META_FIELDS = [
  ["dataset_name", "Dataset name"],
  ["dataset_description", "Description"],
  ["dataset_id", "Dataset id"],
  ["source_name", "Source name"],
  ["source_url", "Source URL"],
  ["source_citation", "Citation"],
];

/**
 * The advanced "File layout" choice: options from the model's `layout_choices`
 * ({value, label, note}), the plan's `layout` ("key" when absent), the choice's note below.
 */
export function layoutField(draft, model) {
  const choices = () => model.get("layout_choices") || [];
  const note = h("div", { class: "cw-hint", "data-testid": "layout-note" });
  const sel = select(choices(), draft.plan.layout ?? "key", (v) => draft.edit((p) => { p.layout = v; }), { "data-testid": "layout" });
  const show = (value) => {
    sel.value = value;
    note.textContent = choices().find((c) => c.value === value)?.note ?? "";
  };
  show(draft.plan.layout ?? "key");
  const el = h("details", { class: "cw-advanced" }, h("summary", {}, "Advanced"), field("File layout", sel), note);
  return { el, update: (plan) => show(plan.layout ?? "key") };
}

export function outputSection(draft, model) {
  const outDir = h("input", { type: "text", class: "cw-text", value: model.get("out_dir"), "data-testid": "out-dir", spellcheck: false,
    onchange: (e) => { model.set("out_dir", e.target.value); model.save_changes(); } });
  const overwrite = h("input", { type: "checkbox", checked: model.get("overwrite"),
    onchange: (e) => { model.set("overwrite", e.target.checked); model.save_changes(); } });
  const overwriteId = uid("cw-over");
  overwrite.id = overwriteId;
  const inputs = {};
  const meta = h("div", { class: "cw-grid2" });
  for (const [key, label] of META_FIELDS) {
    const input = h(key === "dataset_description" || key === "source_citation" ? "textarea" : "input", {
      class: "cw-text", rows: "2", type: "text",
      oninput: (e) => draft.edit((p) => { p[key] = e.target.value.trim() ? e.target.value : null; }),
    });
    inputs[key] = input;
    meta.append(field(label, input));
  }
  const layout = layoutField(draft, model);
  const s = section("Output", [
    field("Output folder", outDir, "The export is written to a temporary folder beside it and moved into place at the end."),
    h("div", { class: "cw-check" }, overwrite, h("label", { for: overwriteId }, "Overwrite an existing export")),
    meta,
    layout.el,
  ]);
  const onOut = () => { if (document.activeElement !== outDir) outDir.value = model.get("out_dir"); };
  const onOver = () => { overwrite.checked = model.get("overwrite"); };
  model.on("change:out_dir", onOut);
  model.on("change:overwrite", onOver);
  return {
    el: s.el,
    update(plan) {
      for (const [key] of META_FIELDS) {
        const el = inputs[key];
        if (document.activeElement !== el) el.value = plan[key] ?? "";
      }
      s.badgeEl.textContent = plan.dataset_name || "";
      layout.update(plan);
    },
    destroy() {
      model.off("change:out_dir", onOut);
      model.off("change:overwrite", onOver);
    },
  };
}
