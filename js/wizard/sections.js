// The wizard's choice sections. Each is built once from the summary and has an
// `update(plan)` that refreshes its controls (so typing never loses focus).
// Plan fields follow ExportPlan.to_dict() (cellucid_nb/plan.py).
import { field, h, select, setChildren, uid } from "./dom.js";
import { createGeneIndex, decodeGeneIds, parseGeneList, searchGenes } from "./gene_search.js";

const BITS_OPTIONS = [
  { value: "8", label: "8-bit (smallest)" },
  { value: "16", label: "16-bit" },
  { value: "", label: "float32 (exact, 4× bigger)" },
];
const COMPRESSION_OPTIONS = [{ value: "", label: "none" }].concat(
  [1, 2, 3, 4, 5, 6, 7, 8, 9].map((l) => ({ value: String(l), label: `gzip ${l}${l === 6 ? " (default)" : l === 9 ? " (smallest, slowest)" : l === 1 ? " (fastest)" : ""}` })),
);

const bitsValue = (v) => (v === "" ? null : Number(v));
const blankToNull = (v) => (v === "" ? null : v);

/** A collapsible section: <details><summary>title</summary>body</details>. */
function section(title, body, { open = true, badge = null } = {}) {
  const badgeEl = h("span", { class: "cw-badge" }, badge ?? "");
  const el = h("details", { class: "cw-section", open }, h("summary", {}, h("span", { class: "cw-section-title" }, title), badgeEl), body);
  return { el, badgeEl };
}

// ---------------------------------------------------------------------------- embeddings

export function embeddingsSection(summary, draft, onPreview) {
  const selects = {};
  const body = h("div", { class: "cw-grid3" });
  for (const dim of [1, 2, 3]) {
    const candidates = (summary.embeddings || []).filter((e) => e.n_dims === dim);
    const options = [{ value: "", label: candidates.length ? "none" : "none available" }].concat(candidates.map((e) => ({ value: e.key, label: e.key })));
    const sel = select(options, draft.plan.embeddings?.[dim] ?? "", (value) =>
      draft.edit((p) => {
        p.embeddings = { ...(p.embeddings || {}) };
        if (value) p.embeddings[dim] = value;
        else delete p.embeddings[dim];
      }),
    { disabled: !candidates.length, "data-testid": `embedding-${dim}d` });
    selects[dim] = sel;
    body.append(field(`${dim}D embedding`, sel));
  }
  const s = section("Embeddings", body);
  return {
    el: s.el,
    update(plan) {
      for (const dim of [1, 2, 3]) selects[dim].value = plan.embeddings?.[dim] ?? "";
      s.badgeEl.textContent = Object.keys(plan.embeddings || {}).map((d) => `${d}D`).join(" · ") || "none chosen";
      onPreview?.();
    },
  };
}

// ---------------------------------------------------------------------------- latent

export function latentSection(summary, draft) {
  const keys = [...(summary.latents || []), ...(summary.embeddings || [])];
  const seen = new Set();
  const options = [{ value: "", label: "same as the highest-dimensional embedding" }];
  for (const e of keys) {
    if (seen.has(e.key)) continue;
    seen.add(e.key);
    options.push({ value: e.key, label: `${e.key} (${e.n_dims} dims)` });
  }
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

function obsDescription(col) {
  if (col.kind === "categorical") {
    if (col.n_categories === null || col.n_categories === undefined) return "categorical, many values";
    return `${col.n_categories} categor${col.n_categories === 1 ? "y" : "ies"}`;
  }
  const fmt = (v) => (v === null || v === undefined ? "?" : Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? Number(v).toExponential(2) : Number(v).toFixed(2));
  return `continuous ${fmt(col.min)} … ${fmt(col.max)}`;
}

export function obsSection(summary, draft) {
  const boxes = new Map();
  const list = h("ul", { class: "cw-obs-list", role: "list" });
  for (const col of summary.obs || []) {
    const id = uid("cw-obs");
    const box = h("input", {
      type: "checkbox", id, "data-key": col.key,
      onchange: (e) => draft.edit((p) => {
        const keys = new Set(p.obs_keys || []);
        if (e.target.checked) keys.add(col.key);
        else keys.delete(col.key);
        // keep the summary's column order
        p.obs_keys = (summary.obs || []).map((c) => c.key).filter((k) => keys.has(k));
      }),
    });
    boxes.set(col.key, box);
    const warnings = [];
    if (col.identifier_like) warnings.push("looks like an identifier (one value per cell): useless as categories");
    if (col.n_missing) warnings.push(`${col.n_missing.toLocaleString("en-US")} missing`);
    if (col.n_categories > 254) warnings.push("more than 254 categories: 16-bit codes");
    list.append(h("li", { class: "cw-obs-item" },
      box,
      h("label", { for: id }, h("span", { class: "cw-key" }, col.key), " ", h("span", { class: `cw-kind cw-kind-${col.kind}` }, obsDescription(col))),
      warnings.length ? h("span", { class: "cw-warn-inline", role: "note" }, "⚠ ", warnings.join("; ")) : null));
  }
  const setAll = (on) => draft.edit((p) => {
    p.obs_keys = on ? (summary.obs || []).filter((c) => !c.identifier_like).map((c) => c.key) : [];
  });
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

// ---------------------------------------------------------------------------- genes

export function genesSection(summary, draft, model) {
  let index = null;
  let requested = false;
  let waiting = [];
  // where genes come from when the plan has none ("No genes" sets expression_source to null)
  let lastSource = draft.plan.expression_source || (summary.expression || [])[0]?.name || "X";
  const status = h("div", { class: "cw-hint", role: "status", "aria-live": "polite" });

  function withIndex(cb) {
    if (index) return cb(index);
    waiting.push(cb);
    if (!requested) {
      requested = true;
      status.textContent = "loading gene ids…";
      model.send({ type: "wizard:gene_ids" });
    }
    return undefined;
  }
  function onMsg(msg, buffers) {
    if (!msg || msg.type !== "wizard:gene_ids") return;
    index = createGeneIndex(decodeGeneIds(buffers[0]));
    status.textContent = `${index.ids.length.toLocaleString("en-US")} gene ids (${msg.column})`;
    const cbs = waiting;
    waiting = [];
    for (const cb of cbs) cb(index);
  }
  model.on("msg:custom", onMsg);

  // source and id column
  const sources = (summary.expression || []).map((e) => ({ value: e.name, label: `${e.name} (${e.value_hint}, ${e.storage})` }));
  const sourceSel = select([{ value: "", label: "no gene expression" }].concat(sources), draft.plan.expression_source ?? "", (v) => {
    index = null;
    requested = false;
    draft.edit((p) => { p.expression_source = blankToNull(v); if (!v) p.genes = null; });
  }, { "data-testid": "expression-source" });
  const idColSel = select((summary.gene_id_columns || ["index"]).map((c) => ({ value: c, label: c === "index" ? "var index" : c })), draft.plan.var_gene_id_column, (v) => {
    index = null;
    requested = false;
    draft.edit((p) => { p.var_gene_id_column = v; p.genes = null; });
  });

  // presets
  const presetRow = h("div", { class: "cw-row", role: "group", "aria-label": "Gene presets" });
  const preset = (label, content, props = {}) => h("button", { type: "button", class: "cw-btn cw-btn-small", onclick: () => model.send({ type: "wizard:genes", ...content() }), ...props }, label);
  const hvgCount = summary.var_flags?.highly_variable;
  const topN = h("input", { type: "number", min: "1", step: "1", value: "200", class: "cw-num", "aria-label": "Number of top genes" });
  const topBy = select([{ value: "variance", label: "by variance" }, { value: "mean", label: "by mean" }], "variance", () => {}, { "aria-label": "Rank top genes by" });
  presetRow.append(...[
    hvgCount ? preset(`Highly variable (${hvgCount})`, () => ({ mode: "hvg" })) : null,
    preset("All genes", () => ({ mode: "all" })),
    preset("No genes", () => ({ mode: "none" })),
    h("span", { class: "cw-sep" }),
    preset("Top", () => ({ mode: "top", n: Number(topN.value) || 100, by: topBy.value })),
    topN,
    topBy,
  ].filter(Boolean));

  // type-ahead search
  const listId = uid("cw-genes-found");
  const search = h("input", {
    type: "search", class: "cw-text", placeholder: "Search gene ids…", autocomplete: "off",
    role: "combobox", "aria-expanded": "false", "aria-controls": listId, "aria-autocomplete": "list",
    "data-testid": "gene-search",
  });
  const found = h("ul", { class: "cw-suggestions", id: listId, role: "listbox", "aria-label": "Matching genes" });
  let active = -1;
  let matches = [];
  function addGene(id) {
    draft.edit((p) => {
      if (!p.expression_source) p.expression_source = lastSource;
      const current = Array.isArray(p.genes) ? p.genes : [];
      if (!current.includes(id)) p.genes = current.concat([id]);
      else p.genes = current;
    });
    search.value = "";
    renderMatches([]);
    search.focus();
  }
  function renderMatches(list) {
    matches = list;
    active = list.length ? 0 : -1;
    search.setAttribute("aria-expanded", list.length ? "true" : "false");
    setChildren(found, list.map((g, i) => h("li", {
      role: "option", id: `${listId}-${i}`, "aria-selected": i === active ? "true" : "false", class: i === active ? "cw-active" : "",
      onmousedown: (e) => { e.preventDefault(); addGene(g); },
    }, g)));
    if (active >= 0) search.setAttribute("aria-activedescendant", `${listId}-${active}`);
    else search.removeAttribute("aria-activedescendant");
  }
  function moveActive(delta) {
    if (!matches.length) return;
    active = (active + delta + matches.length) % matches.length;
    [...found.children].forEach((li, i) => {
      li.classList.toggle("cw-active", i === active);
      li.setAttribute("aria-selected", i === active ? "true" : "false");
    });
    search.setAttribute("aria-activedescendant", `${listId}-${active}`);
  }
  search.addEventListener("focus", () => withIndex(() => {}));
  search.addEventListener("input", () => withIndex((idx) => renderMatches(searchGenes(idx, search.value, 12))));
  search.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") { e.preventDefault(); moveActive(1); }
    else if (e.key === "ArrowUp") { e.preventDefault(); moveActive(-1); }
    else if (e.key === "Enter") {
      e.preventDefault();
      if (active >= 0 && matches[active]) addGene(matches[active]);
    } else if (e.key === "Escape") renderMatches([]);
  });
  search.addEventListener("blur", () => setTimeout(() => renderMatches([]), 150));

  // paste a list
  const paste = h("textarea", { class: "cw-text", rows: "2", placeholder: "CD3E, MS4A1, NKG7 …" });
  const pasteBtn = h("button", { type: "button", class: "cw-btn cw-btn-small", onclick: () => model.send({ type: "wizard:genes", mode: "list", ids: parseGeneList(paste.value) }) }, "Use this list");
  const report = h("div", { class: "cw-hint", role: "status", "aria-live": "polite" });

  // chosen genes
  const chips = h("ul", { class: "cw-chips", role: "list", "aria-label": "Chosen genes" });
  const chosenInfo = h("div", { class: "cw-hint" });

  const body = h("div", {},
    h("div", { class: "cw-grid2" }, field("Expression source", sourceSel), field("Gene id column", idColSel)),
    presetRow,
    h("div", { class: "cw-combo" }, field("Add genes by id", search), found),
    status,
    field("Or paste a list", paste),
    h("div", { class: "cw-row" }, pasteBtn),
    report,
    chosenInfo,
    chips);
  const s = section("Genes", body);

  function renderChips(plan) {
    const genes = plan.genes;
    if (!plan.expression_source) {
      chosenInfo.textContent = "No gene expression will be exported. Add genes or pick a preset to export some.";
      setChildren(chips);
      return;
    }
    if (genes === null || genes === undefined) {
      const src = (summary.expression || []).find((e) => e.name === plan.expression_source);
      chosenInfo.textContent = `All genes (${(src?.n_genes ?? summary.n_genes).toLocaleString("en-US")}).`;
      setChildren(chips);
      return;
    }
    chosenInfo.textContent = `${genes.length.toLocaleString("en-US")} gene${genes.length === 1 ? "" : "s"} chosen${genes.length > 60 ? " (first 60 shown)" : ""}.`;
    setChildren(chips, genes.slice(0, 60).map((g) => h("li", { class: "cw-chip" }, g,
      h("button", { type: "button", class: "cw-chip-x", "aria-label": `Remove ${g}`, onclick: () => draft.edit((p) => { p.genes = (p.genes || []).filter((x) => x !== g); }) }, "×"))));
  }
  function renderReport() {
    const r = model.get("gene_report") || {};
    if (r.pending) report.textContent = "working…";
    else if (r.error) report.textContent = r.error;
    else if (r.n_unknown) report.textContent = `${r.n_genes} found; ${r.n_unknown} unknown id${r.n_unknown === 1 ? "" : "s"}: ${r.unknown.join(", ")}${r.n_unknown > r.unknown.length ? " …" : ""}`;
    else if (r.mode) report.textContent = `${r.n_genes} genes (${r.mode}).`;
    else report.textContent = "";
  }
  model.on("change:gene_report", renderReport);
  renderReport();

  return {
    el: s.el,
    update(plan) {
      if (plan.expression_source && plan.expression_source !== lastSource) {
        lastSource = plan.expression_source;
        index = null; // other source, other ids
        requested = false;
      }
      sourceSel.value = plan.expression_source ?? "";
      idColSel.value = plan.var_gene_id_column;
      idColSel.disabled = !plan.expression_source;
      renderChips(plan);
      s.badgeEl.textContent = !plan.expression_source ? "none" : plan.genes == null ? "all" : `${plan.genes.length}`;
    },
    destroy() {
      model.off("change:gene_report", renderReport);
      model.off("msg:custom", onMsg);
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
    const box = h("input", { type: "checkbox", id, onchange: (e) => draft.edit((p) => {
      const vf = { ...(p.vector_fields || {}) };
      if (e.target.checked) vf[v.key] = v.key;
      else delete vf[v.key];
      p.vector_fields = vf;
    }) });
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
      s.badgeEl.textContent = [plan.connectivities ? "graph" : null, Object.keys(vf).length ? `${Object.keys(vf).length} vector field(s)` : null].filter(Boolean).join(" · ") || "none";
    },
  };
}

// ---------------------------------------------------------------------------- quantization and compression

export function storageSection(draft) {
  const bitsLabel = (v) => (v === null || v === undefined ? "" : String(v));
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
      const b = (v) => (v ? `${v}-bit` : "float32");
      s.badgeEl.textContent = `genes ${b(plan.var_quantization)} · ${plan.compression ? `gzip ${plan.compression}` : "no gzip"}`;
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
  const s = section("Output", [
    field("Output folder", outDir, "The export is written to a temporary folder beside it and moved into place at the end."),
    h("div", { class: "cw-check" }, overwrite, h("label", { for: overwriteId }, "Overwrite an existing export")),
    meta,
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
    },
    destroy() {
      model.off("change:out_dir", onOut);
      model.off("change:overwrite", onOver);
    },
  };
}
